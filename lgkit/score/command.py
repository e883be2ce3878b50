"""``lgkit score``: score a data file and optionally write a selected subset.

Everything the command can refuse (an unknown score, a malformed or empty rule, a
fraction above 100%, a ``--select-out`` that exists) is checked before the model loads,
and nothing is written then (one line, exit 2).

A record that cannot be scored (an empty response, a response cut away by
``--max-length``) gets a row with NaN scores and its reason in ``failure``; the rest is
scored, the summary counts them, ``--select`` never picks them. ``--strict`` refuses the
file at the first such record instead (exit 2). Malformed JSON is refused either way.

Example:
    $ lgkit score --data data.jsonl --model smollm2-135m-instruct --out outputs/score \\
          --select top:10% --by effective_rank --select-out top.jsonl --match-length
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from lgkit.engine import options as O
from lgkit.errors import InputError
from lgkit.fsio import atomic_write_json

log = logging.getLogger("lgkit")


def add_score_parser(sub: Any) -> None:
    """Register ``lgkit score`` on the CLI's subparsers."""
    p = sub.add_parser(
        "score",
        help="score every example by its gradient spectra; select a subset",
        description="One row per example (nuclear norm, effective rank, sigma1 ratio, "
        "coherence, loss, response length), averaged over the chosen layers and modules; "
        "resumable, sharded under torchrun. With --select, write the chosen subset in the "
        "input's own format with the rule beside it (FILE.selection.json).",
    )
    O.add_model(p)
    O.add_data(p, "or a folder saved by datasets.save_to_disk (DATA first: the same)",
               positional=True)  # fmt: skip
    O.add_out(p, "output directory (statistics + scores)")
    O.add_modules(p)
    O.add_max_length(p, None, "default 1024; oda 2048")
    O.add_layers(p, "oda default: last")
    p.add_argument("--compat", default=None, choices=["oda"],
                   help="reproduce OpenDataArena's NuclearNormScorer and EffectiveRankScorer")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=1, help="examples per padded batch")
    O.add_model_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace a run with other settings in --out")  # fmt: skip
    p.add_argument("--strict", action="store_true",
                   help="refuse the file at a record that cannot be scored (empty response, "
                   "response cut away by --max-length) instead of giving it NaN scores")  # fmt: skip
    s = p.add_argument_group("selection")
    s.add_argument("--select", default=None, help="top:N, bottom:N, random:N, or N as a percentage (top:10%%)")  # fmt: skip
    s.add_argument("--by", default="effective_rank", help="the score to select by (default effective_rank)")  # fmt: skip
    s.add_argument("--select-out", default=None, help="the subset's file (or folder); must not exist")  # fmt: skip
    s.add_argument("--match-length", action="store_true", help="choose within response-length strata")  # fmt: skip
    s.add_argument("--seed", type=int, default=0, help="seed of random:N (default 0)")
    p.set_defaults(func=cmd_score)


def _check_selection(a: argparse.Namespace) -> Any:
    from lgkit.score.aggregate import SCORES, score_name
    from lgkit.score.datafile import check_target
    from lgkit.score.oda import oda_columns
    from lgkit.score.select import parse_rule

    if (a.select is None) != (a.select_out is None):
        raise InputError("--select and --select-out go together", field="--select")
    if a.select is None:
        return None
    rule = parse_rule(a.select)
    names = SCORES + (tuple(oda_columns("nuclear") + oda_columns("rank")) if a.compat else ())
    a.by = score_name(a.by, names)
    check_target(a.select_out)
    return rule


def _init_distributed() -> int | None:
    """Under torchrun (WORLD_SIZE > 1): the process group started, this rank returned."""
    import os

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0"))


def cmd_score(a: argparse.Namespace) -> int:
    """Run ``lgkit score`` (parsed arguments ``a``); returns the exit code."""
    O.take_positional(a, "data")
    rule = _check_selection(a)
    from lgkit.score.api import score
    from lgkit.score.datafile import read_data, write_subset
    from lgkit.score.select import choose, selection_record

    data = read_data(a.data, strict=a.strict)  # validate the data before loading a model
    if rule is not None:  # an empty or too large selection fails before any work
        rule.size(len(data.examples) - len(data.unscorable))
    import torch

    O.check_device(a.device)
    rank = _init_distributed()
    device = a.device
    if rank is not None and device is None and torch.cuda.is_available():
        device = f"cuda:{rank % torch.cuda.device_count()}"
    try:
        frame = score(data, a.model, a.out, layers=a.layers or "all", modules=a.modules,
                      compat=a.compat, max_length=a.max_length, batch_size=a.batch_size,
                      instruct=a.instruct, device=device, dtype=a.dtype,
                      progress=not a.no_progress, overwrite=a.overwrite,
                      strict=a.strict)  # fmt: skip
    finally:
        if rank is not None:
            torch.distributed.destroy_process_group()
    if rank:  # rank 0 writes the scores and the selection
        return 0
    _summary(a.out, frame)
    if rule is None:
        return 0
    chosen = choose(frame, rule, a.by, match_length=a.match_length, seed=a.seed)
    record = selection_record(rule, a.by, chosen, frame, match_length=a.match_length,
                              seed=a.seed, data=str(data.path), data_kind=data.kind,
                              data_sha256=data.sha256, model=a.model, scores_dir=str(a.out),
                              layers=a.layers or ("last" if a.compat else "all"),
                              modules=a.modules, compat=a.compat,
                              n_failed=int(frame["failure"].notna().sum()))  # fmt: skip
    out = write_subset(data, chosen, a.select_out)
    atomic_write_json(str(out) + ".selection.json", record)
    log.info("selected %d of %d by %s (%s) into %s", len(chosen), record["n_scored"], a.by,
             rule.text(), out)  # fmt: skip
    return 0


def _summary(out: str, frame: Any) -> None:
    """The summary line: records, scored, not scored (by reason, said on stderr too)."""
    import sys

    failed = frame["failure"].dropna()
    log.info("wrote %s/scores.parquet: %d records, %d scored, %d not scored", out, len(frame),
             len(frame) - len(failed), len(failed))  # fmt: skip
    if len(failed):  # said whatever the logging setup: these rows have no scores
        kinds = failed.map(_reason_kind).value_counts()
        why = ", ".join(f"{k}: {n}" for k, n in kinds.items())
        print(f"lgkit: warning: {len(failed)} of {len(frame)} record(s) not scored ({why}); "
              f"their rows in {out}/scores.parquet have NaN scores and the reason in 'failure'",
              file=sys.stderr)  # fmt: skip


def _reason_kind(reason: str) -> str:
    """A failure reason without its particulars (``response cut away entirely by
    max_length=20 (prompt has 69 tokens)`` -> ``response cut away entirely by max_length``).

    Example:
        >>> _reason_kind("response cut away entirely by max_length=20 (prompt has 69 tokens)")
        'response cut away entirely by max_length'
    """
    import re

    return re.split(r"[=(:]", str(reason), maxsplit=1)[0].strip()
