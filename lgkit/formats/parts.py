"""A run folder on disk: its layout, atomic Parquet parts, a failures table, the manifest.

The format the engine writes and every reader reads (:mod:`lgkit.formats.ledger` verifies
it, :mod:`lgkit.formats.store` reads the tables through that check); no torch, no engine.

Layout of a run directory::

    DIR/manifest.json                     run metadata (model, settings, data, times, git hash)
    DIR/parts/part-r<rank>-<seq>.parquet  statistics rows of whole examples
    DIR/failures/fail-r<rank>-<seq>.parquet  examples that could not be processed, with reasons
    DIR/tokens/tok-r<rank>-<seq>.parquet  per-token terms (only with ``--token-stats``)
    DIR/.lgkit.lock                       the writer's advisory lock (:mod:`lgkit.locks`)
    DIR/quarantine/                       damaged or stray files a resumed run set aside

Every file is written to a temporary name and renamed, so a run killed at any moment
(kill -9 included) leaves only complete parts; a rerun skips the examples already in
a part and the finished table equals an uninterrupted run's. Each part carries, in its
Parquet metadata, its row count and the fingerprint of the model and settings that
wrote it; the finished manifest lists every part with its rows and sha256
(:mod:`lgkit.formats.ledger` checks both on read and on resume).

Failure rows have a ``kind``: ``data`` (the example fails the same way under these
settings: a response cut away by ``max_length``, no final answer, a non-finite loss)
or ``runtime`` (an error a rerun may not meet: out of memory, a runtime error); a rerun
retries runtime failures only.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = write_part(d, [{"sample_id": "a", "example_index": 0, "layer": 0, "module": "q"}], rank=0)
    >>> sorted(completed_ids(d))
    ['a']
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lgkit.errors import InputError
from lgkit.fsio import atomic_path, atomic_write_json
from lgkit.schema import ALL_MODULES

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PARTS = "parts"
FAILURES = "failures"
TOKENS = "tokens"

_PART_RE = re.compile(r"^(part|fail|tok)-r(\d+)-(\d+)\.parquet$")

META_KEY = b"lgkit"
"""The Parquet schema-metadata key of a part's own record: ``{"rows", "fingerprint"}``."""

FAILURE_KINDS = ("data", "runtime")


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write JSON to ``path`` via a temporary file and rename (the manifest's format).

    Example:
        >>> import tempfile, os
        >>> write_json_atomic(os.path.join(tempfile.mkdtemp(), "m.json"), {"a": 1}).read_text()
        '{\\n  "a": 1\\n}'
    """
    return atomic_write_json(path, obj, indent=2, default=str)


def _next_seq(folder: Path, rank: int) -> int:
    seqs = [
        int(m.group(3))
        for f in folder.glob("*.parquet")
        if (m := _PART_RE.match(f.name)) and int(m.group(2)) == rank
    ]
    return max(seqs, default=-1) + 1


def _append(
    out_dir: str | Path,
    sub: str,
    prefix: str,
    rows: Sequence[dict[str, Any]],
    rank: int,
    meta: dict[str, Any] | None = None,
) -> Path | None:
    if not rows:
        return None
    folder = Path(out_dir) / sub
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{prefix}-r{rank:03d}-{_next_seq(folder, rank):06d}.parquet"
    table = pa.Table.from_pylist(list(rows))
    own = json.dumps({**(meta or {}), "rows": table.num_rows}).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: own})
    with atomic_path(path, fsync=True) as tmp:
        pq.write_table(table, tmp)
    return path


def write_part(
    out_dir: str | Path,
    rows: Sequence[dict[str, Any]],
    *,
    rank: int = 0,
    meta: dict[str, Any] | None = None,
) -> Path | None:
    """Append one part of statistics rows (whole examples only) atomically.

    ``meta`` (e.g. ``{"fingerprint": ...}``) goes into the part's own metadata beside
    its row count.
    """
    return _append(out_dir, PARTS, "part", rows, rank, meta)


def write_failures(
    out_dir: str | Path,
    failures: Sequence[dict[str, Any]],
    *,
    rank: int = 0,
    meta: dict[str, Any] | None = None,
) -> Path | None:
    """Append failure records (sample_id, example_index, reason, kind, ...) atomically."""
    return _append(out_dir, FAILURES, "fail", failures, rank, meta)


def write_token_part(
    out_dir: str | Path,
    rows: Sequence[dict[str, Any]],
    *,
    rank: int = 0,
    meta: dict[str, Any] | None = None,
) -> Path | None:
    """Append one part of per-token rows atomically (written before the statistics part
    of the same examples; :func:`load_token_stats` drops what a resumed run redid)."""
    return _append(out_dir, TOKENS, "tok", rows, rank, meta)


def clean_temporaries(out_dir: str | Path, rank: int = 0) -> int:
    """Remove temporary files a killed run of this rank left; returns how many.

    Only this rank's part/failure temporaries (and, for rank 0, the manifest's) are
    touched, so ranks of a sharded run never delete each other's files in flight.
    """
    n = 0
    d = Path(out_dir)
    pattern = f".*-r{rank:03d}-*.tmp"
    victims = [f for sub in (PARTS, FAILURES, TOKENS) for f in (d / sub).glob(pattern)]
    if rank == 0:
        victims += list(d.glob(f".{MANIFEST}.*.tmp"))
    for f in victims:
        f.unlink(missing_ok=True)
        n += 1
    return n


def part_files(folder: str | Path) -> list[Path]:
    """The part files of one sub-folder (``parts``, ``failures``, ``tokens``), sorted."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(f for f in folder.glob("*.parquet") if _PART_RE.match(f.name))


def read_part(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """One part, or an :class:`InputError` naming it when it cannot be read (truncated, corrupt).

    Example:
        >>> import tempfile, os
        >>> bad = Path(tempfile.mkdtemp()) / "part-r000-000000.parquet"
        >>> _ = bad.write_bytes(b"PAR1 truncated")
        >>> read_part(bad)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        lgkit.errors.InputError: ...part-r000-000000.parquet: unreadable Parquet part...
    """
    try:
        return pq.read_table(path, columns=list(columns) if columns else None)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise InputError(
            f"unreadable Parquet part, truncated or corrupt ({str(e).splitlines()[0][:120]}); "
            "rerun the same lgkit grads command (or series) to set it aside and recompute it",
            path=path,
        ) from None


def read_folder(folder: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Every part of one sub-folder as one table, unverified (empty when there is none)."""
    files = part_files(folder)
    if not files:
        return pd.DataFrame()
    tables = [read_part(f, columns) for f in files]
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def failure_kind(reason: str) -> str:
    """The kind of a failure without a ``kind`` column (tables written before kinds existed).

    Example:
        >>> failure_kind("RuntimeError: CUDA out of memory"), failure_kind("response cut away")
        ('runtime', 'data')
    """
    return "runtime" if re.match(r"^\w*(Error|Exception): ", str(reason)) else "data"


def failure_rows(out_dir: str | Path, done: set[str]) -> pd.DataFrame:
    """Outstanding failures: one row per id (the latest), none for an id that has statistics."""
    df = read_folder(Path(out_dir) / FAILURES)
    if df.empty:
        return df
    if "kind" not in df.columns:
        df["kind"] = None
    df["kind"] = [
        k if k in FAILURE_KINDS else failure_kind(r)
        for k, r in zip(df["kind"], df["reason"], strict=True)
    ]
    if "failed_at" in df.columns:
        df = df.sort_values("failed_at", kind="stable", na_position="first")
    df = df.drop_duplicates("sample_id", keep="last")
    return df[~df["sample_id"].astype(str).isin(done)]


def stats_ids(out_dir: str | Path) -> set[str]:
    """Sample ids with statistics rows in a part."""
    df = read_folder(Path(out_dir) / PARTS, columns=["sample_id"])
    return set(df["sample_id"].astype(str)) if len(df) else set()


def completed_ids(out_dir: str | Path) -> set[str]:
    """Sample ids a rerun skips: written to a part, or failed for a reason of the data.

    Runtime failures (out of memory, an error) are not among them: a rerun retries them.
    """
    done = stats_ids(out_dir)
    fails = failure_rows(out_dir, done)
    if len(fails):
        done |= set(fails.loc[fails["kind"] == "data", "sample_id"].astype(str))
    return done


def sort_table(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    order = {m: i for i, m in enumerate(ALL_MODULES)}
    keys = [k for k in ("example_index", "sample_id") if k in df.columns]
    df = df.assign(_m=df["module"].map(order)) if "module" in df.columns else df
    by = keys + [c for c in ("layer", "_m") if c in df.columns]
    df = df.sort_values(by, kind="stable").drop(columns=["_m"], errors="ignore")
    return df.reset_index(drop=True)


def load_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The run metadata written beside the parts (empty dict if none yet).

    Raises:
        InputError: the manifest cannot be read (truncated, not JSON), naming it.
    """
    p = Path(out_dir) / MANIFEST
    if not p.exists():
        return {}
    try:
        man = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(
            f"unreadable run manifest ({type(e).__name__}: {str(e)[:80]}); delete it and rerun "
            "the same lgkit grads command: the manifest is rebuilt from the parts",
            path=p,
        ) from None
    if not isinstance(man, dict):
        raise InputError("run manifest is not a JSON object; delete it and rerun", path=p)
    return man


def now_iso() -> str:
    """Current UTC time, ISO 8601."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
