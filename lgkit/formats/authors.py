"""The authors' per-sample JSONL format (arXiv 2410.23743 code): export and import.

Statistics tables convert to and from the records their ``layer_gradient`` script writes, so
numbers can be set beside the released ones (docs/ARCHITECTURE.md, "Contracts").
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from lgkit.errors import InputError
from lgkit.formats.parts import load_manifest, sort_table
from lgkit.formats.store import load_failures, load_stats
from lgkit.fsio import atomic_open
from lgkit.schema import AUTHOR_FILE_STATS, PROJECTION_SUFFIXES

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- authors' format


def export_layer_gradient(
    stats: pd.DataFrame | str | Path,
    path: str | Path,
    examples: Iterable | None = None,
    *,
    include_failed: bool = False,
) -> Path:
    """Write the authors' per-sample JSONL format (arXiv 2410.23743 code).

    One line per example: ``{"instruction", "output", "loss", "<param name>": {"M_mean",
    "M_max", "M_min", "frobenius_norm", "S_sum", "S_max", "S_min"}, ...}``. The
    instruction/output texts come from ``examples`` (Example records, matched by
    sample_id) when given. A run directory must hold a finished run (manifest status
    ``complete``); ``include_failed`` also writes each failed example, in its place in the
    run's order, with the same keys as the other lines (``loss`` and every statistic NaN,
    so a reader of the authors' format reads it as it reads any line) plus ``"failed":
    true``, ``"reason"`` and ``"kind"`` (:func:`failed_record`).

    Raises:
        InputError: an unfinished run, a directory as ``path``, or ``examples`` missing
            samples of the run.

    Example:
        >>> export_layer_gradient("outputs/run", "stats.jsonl")  # doctest: +SKIP
    """
    p = Path(path)
    if p.is_dir():
        raise InputError("is a directory; give the .jsonl file to write", path=p)
    failed = pd.DataFrame()
    if not isinstance(stats, pd.DataFrame):
        status = load_manifest(stats).get("status", "no manifest.json")
        if status != "complete":
            raise InputError(
                f"the run is not finished (status {status}); rerun the same lgkit grads command "
                "to finish it (it resumes), then export",
                path=stats,
            )
        failed = load_failures(stats) if include_failed else failed
        stats = load_stats(stats)
    texts = {ex.sample_id: ex for ex in examples or []}
    if examples is not None:
        ids = list(dict.fromkeys(stats["sample_id"]))
        missing = [s for s in ids if s not in texts]
        if missing:
            raise InputError(
                f"{len(missing)} of {len(ids)} samples of the run are not in the data file "
                f"(first: {missing[0]!r}); give the data file the run was computed from",
                field="--data",
            )
    params = list(dict.fromkeys(stats["param"])) if "param" in stats else []
    lines = [(_order(g), rec) for g, rec in _author_records(stats, texts)]
    lines += [
        (
            _order(r),
            failed_record(
                r["sample_id"], params, r["reason"], r["kind"], texts.get(r["sample_id"])
            ),
        )  # fmt: skip
        for _, r in failed.iterrows()
    ]
    lines.sort(key=lambda t: t[0])  # the run's order (stable: tables without an index keep theirs)
    with atomic_open(p, "w", encoding="utf-8") as f:
        for _, rec in lines:
            f.write(json.dumps(rec) + "\n")
    return p


def _order(row: Any) -> float:
    """A line's place in the file: the example's index in the run (inf when unknown)."""
    v = row["example_index"] if "example_index" in row else None
    if isinstance(v, pd.Series):
        v = v.iloc[0]
    return float("inf") if v is None or pd.isna(v) else float(v)


def failed_record(
    sample_id: str, params: Iterable[str], reason: str, kind: str, example: Any = None
) -> dict[str, Any]:
    """The line of a failed example: the keys of every other line, NaN values, the reason.

    Example:
        >>> r = failed_record("s1", ["model.layers.0.self_attn.q_proj.weight"], "cut", "data")
        >>> r["loss"], sorted(r["model.layers.0.self_attn.q_proj.weight"]) == sorted(AUTHOR_FILE_STATS)
        (nan, True)
        >>> r["failed"], r["reason"]
        (True, 'cut')
    """
    nan = float("nan")
    rec: dict[str, Any] = {
        "sample_id": sample_id,
        "instruction": example.prompt if example is not None else None,
        "output": example.output if example is not None else None,
        "loss": nan,
    }
    for param in params:
        rec[param] = dict.fromkeys(AUTHOR_FILE_STATS, nan)
    return {**rec, "failed": True, "reason": reason, "kind": kind}


def _author_records(
    df: pd.DataFrame, texts: dict[str, Any]
) -> Iterable[tuple[pd.DataFrame, dict[str, Any]]]:
    for sid, g in df.groupby("sample_id", sort=False):
        ex = texts.get(str(sid))
        rec: dict[str, Any] = {
            "sample_id": sid,
            "instruction": ex.prompt if ex is not None else None,
            "output": ex.output if ex is not None else None,
            "loss": float(g["loss"].iloc[0]),
        }
        for _, r in g.iterrows():
            rec[r["param"]] = {k: float(r[v]) for k, v in AUTHOR_FILE_STATS.items()}
        yield g, rec


_PARAM_RE = re.compile(r"(?:layers|h|blocks)\.(\d+)\.(.+?)\.weight(?:\[(\w+)\])?$")


def import_layer_gradient(path: str | Path, **metadata: Any) -> pd.DataFrame:
    """Read the authors' per-sample JSONL statistics into lgkit's table.

    ``effective_rank`` cannot be recovered from their fields and is NaN;
    ``sigma1_ratio`` is S_max/S_sum. Extra keyword arguments (``dataset``, ``cot``,
    ``correct``) fill those columns. Lines of failed examples (``"failed": true``, as
    ``lgkit export --include-failed`` writes them) carry no statistics: they are left out
    of the table, counted in a warning and listed in ``df.attrs["failed"]`` (sample id and
    reason).

    Raises:
        InputError: malformed line or field, naming file and line.

    Example:
        >>> df = import_layer_gradient("llama3_8b/gsm8k_with_cot.jsonl", cot="simplified")  # doctest: +SKIP
    """
    from lgkit.formats.records import iter_raw_records, stable_id

    rows = []
    failed: list[dict[str, Any]] = []
    for n, rec in iter_raw_records(path):
        if isinstance(rec, dict) and rec.get("failed") is True:
            failed.append({"sample_id": rec.get("sample_id"), "reason": rec.get("reason")})
            continue
        if not isinstance(rec, dict) or "loss" not in rec:
            raise InputError(
                "expected an object with a 'loss' field",
                path=path,
                record=f"line {n}",
                field="loss",
            )
        sid = rec.get("sample_id") or stable_id(
            rec.get("instruction") or "", "", rec.get("output") or ""
        )
        for key, val in rec.items():
            m = _PARAM_RE.search(key)
            if not m or not isinstance(val, dict):
                continue
            module = m.group(3) or PROJECTION_SUFFIXES.get(m.group(2))
            if module is None:
                continue
            try:
                row: dict[str, Any] = {v: float(val[k]) for k, v in AUTHOR_FILE_STATS.items()}
            except (KeyError, TypeError, ValueError) as e:
                raise InputError(
                    f"bad statistics ({e})", path=path, record=f"line {n}", field=key
                ) from None
            row.update(
                sample_id=sid,
                example_index=n,
                layer=int(m.group(1)),
                module=module,
                param=key,
                loss=float(rec["loss"]),
            )
            row["sigma1_ratio"] = (
                row["sigma_max"] / row["nuclear_norm"] if row["nuclear_norm"] else 0.0
            )
            row["effective_rank"] = float("nan")
            row.update({k: v for k, v in metadata.items()})
            rows.append(row)
    if failed:
        log.warning("%s: %d failed example(s) without statistics (df.attrs['failed'])",
                    path, len(failed))  # fmt: skip
    df = sort_table(pd.DataFrame(rows))
    df.attrs["failed"] = failed
    return df
