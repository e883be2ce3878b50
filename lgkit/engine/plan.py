"""Stage 1 of a run: what it computes (read, deduplicated, resumed, sharded) and its manifest.

:func:`plan_run` reads the data, gives every example a unique id, loads the model, checks
the folder (:func:`lgkit.engine.folder.check_out_dir`: refuse another run, repair this one)
and picks this rank's undone examples; :func:`run_fingerprint` is what a resumed run must
share; :func:`run_manifest` the manifest a run starts with. :class:`RunResult` is what a
call of :func:`lgkit.engine.run.compute_stats` did.

Example:
    >>> from lgkit.formats.records import Example
    >>> unique_ids([Example("q", "", "a"), Example("q", "", "a")], "d.jsonl")[1].endswith("~2")
    True
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lgkit import __version__
from lgkit.engine.arch import Target, find_targets, parse_layers
from lgkit.engine.batch import Span
from lgkit.engine.config import NUMERIC_SETTINGS, GradConfig, numeric_settings
from lgkit.engine.folder import barrier, check_out_dir
from lgkit.errors import InputError
from lgkit.formats.ledger import fingerprint_sha
from lgkit.formats.parts import completed_ids, now_iso
from lgkit.formats.prompts import Encoded, has_chat_template
from lgkit.formats.records import Example, read_examples
from lgkit.provenance import git_hash as _git_hash

log = logging.getLogger(__name__)

FINGERPRINT_KEYS = ("model", "revision", "dtype", "data_sha256", *NUMERIC_SETTINGS)
"""What a resumed run must share: the model, the data and :data:`NUMERIC_SETTINGS`."""


@dataclass
class RunResult:
    """What a call of :func:`lgkit.engine.run.compute_stats` did.

    Attributes:
        out_dir: the run directory.
        n_done: examples processed in this call.
        n_failed: examples recorded as failures in this call.
        n_skipped: examples already done by an earlier call (resume).
        seconds_model: time in forward + backward (statistics excluded).
        seconds_stats: time computing statistics.
    """

    out_dir: Path
    n_done: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    seconds_model: float = 0.0
    seconds_stats: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)


@functools.cache
def git_hash() -> str | None:
    """The git commit of the lgkit checkout (``+dirty`` with uncommitted changes), if any.

    Asked once per process (two ``git`` subprocesses; seconds on a loaded machine): the
    code a process runs is the code it imported, so every manifest it writes names the same.
    """
    return _git_hash()


def dist_info(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """This process's rank and the world size: as given, else ``RANK``/``WORLD_SIZE``."""
    if rank is None:
        rank = int(os.environ.get("RANK", "0"))
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if not 0 <= rank < world_size:
        raise InputError(f"rank {rank} outside world size {world_size}", field="rank")
    return rank, world_size


def unique_ids(examples: Sequence[Example], source: str) -> list[str]:
    """Sample ids, unique: an explicit id used twice is an error; equal texts get ~k."""
    seen: dict[str, int] = {}
    ids = []
    for i, ex in enumerate(examples):
        sid = ex.sample_id
        if sid in seen:
            if ex.id:
                raise InputError(
                    f"duplicate id {sid!r} (also record {seen[sid]})",
                    path=source,
                    record=i,
                    field="id",
                )
            k = 2
            while f"{sid}~{k}" in seen:
                k += 1
            sid = f"{sid}~{k}"
        seen[sid] = i
        ids.append(sid)
    return ids


def _data_fingerprint(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class RunPlan:
    """Stage 1: what a call of :func:`lgkit.engine.run.compute_stats` runs (read, deduplicated, resumed, sharded)."""

    config: GradConfig
    examples: list[Example]
    ids: list[str]
    source: str
    data_sha: str
    bundle: Any
    instruct: bool
    targets: list[Target]
    out: Path
    rank: int
    world_size: int
    fingerprint: dict[str, Any]
    old_manifest: dict[str, Any]
    todo: list[int]
    n_skipped: int


@dataclass
class Item:
    """One encoded example and the token positions carrying its loss."""

    index: int
    enc: Encoded
    span: Span


def run_fingerprint(bundle: Any, config: GradConfig, data_sha: str) -> dict[str, Any]:
    """The settings that determine the numbers of a run (compared on resume)."""
    instruct = (
        config.instruct if config.instruct is not None else bool(getattr(bundle, "instruct", False))
    )
    settings = numeric_settings(config)
    settings.update(instruct=instruct, system_prompt=config.system_prompt if instruct else None)
    return {
        "model": getattr(bundle, "name", None),
        "revision": getattr(bundle, "revision", None),
        "dtype": str(getattr(bundle, "dtype", None)),
        "data_sha256": data_sha,
        **settings,
    }


def plan_run(
    model: Any,
    data: str | Path | Sequence[Example],
    out_dir: str | Path,
    config: GradConfig,
    *,
    device: str | None = None,
    dtype: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    overwrite: bool = False,
) -> RunPlan:
    """Stage 1: read and deduplicate the data, load the model, check ``out_dir``, pick this rank's undone examples."""
    rank, world_size = dist_info(rank, world_size)
    source = str(data) if isinstance(data, (str, Path)) else "<examples>"
    examples = read_examples(data) if isinstance(data, (str, Path)) else list(data)
    if config.limit:  # None or 0: all
        examples = examples[: config.limit]
    ids = unique_ids(examples, source)
    data_sha = _data_fingerprint(examples)
    from lgkit.models.load import as_loaded  # lazily: transformers only when needed

    bundle = as_loaded(model, instruct=config.instruct, device=device, dtype=dtype)
    instruct = config.instruct if config.instruct is not None else bool(bundle.instruct)
    if instruct and not has_chat_template(bundle.tokenizer):
        raise InputError(
            f"model {bundle.name!r} has no chat template; run it as a base model (--base)",
            field="instruct",
        )
    targets = find_targets(bundle.model, config.modules)
    if config.layers is not None:
        keep = set(parse_layers(config.layers, max(t.layer for t in targets) + 1))
        targets = [t for t in targets if t.layer in keep]
    out = Path(out_dir)
    fp = run_fingerprint(bundle, config, data_sha)
    old = check_out_dir(out, fp, overwrite, world_size, rank)
    barrier(world_size)  # rank 0's repair is done before any rank reads what is done
    done = completed_ids(out) if out.exists() else set()
    mine = [i for i in range(len(examples)) if i % world_size == rank]
    todo = [i for i in mine if ids[i] not in done]
    if len(mine) > len(todo):
        log.info("resuming %s: %d examples already done", out, len(mine) - len(todo))
    return RunPlan(
        config, examples, ids, source, data_sha, bundle, instruct, targets, out, rank,
        world_size, fp, old, todo, len(mine) - len(todo),
    )  # fmt: skip


def run_manifest(plan: RunPlan) -> dict[str, Any]:
    """The manifest of a run starting now (keeps an earlier call's start time)."""
    config, bundle = plan.config, plan.bundle
    old = {k: v for k, v in (plan.old_manifest or {}).items() if k not in ("files", "ids_sha256")}
    manifest = {
        **old,
        "fingerprint": plan.fingerprint,
        "fingerprint_sha256": fingerprint_sha(plan.fingerprint),
        "lgkit_version": __version__,
        "git_hash": git_hash(),
        "model": bundle.name,
        "model_source": getattr(bundle, "source", None),
        "revision": getattr(bundle, "revision", None),
        "dtype": str(getattr(bundle, "dtype", None)),
        "device": str(next(bundle.model.parameters()).device),
        "instruct": plan.instruct,
        "convention": config.compat or "lgkit",
        "max_length": config.max_length,
        "modules": list(config.modules),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "data": plan.source,
        "data_sha256": plan.data_sha,
        "n_examples": len(plan.examples),
        "n_layers": len({t.layer for t in plan.targets}),
        "world_size": plan.world_size,
        "status": "running",
    }
    manifest.setdefault("start_time", now_iso())
    return manifest
