"""Verified, not trusted: a run folder's parts checked against their own metadata and the manifest.

Every part records its row count and the fingerprint (model, data, numeric settings) of
the run that wrote it (:func:`lgkit.formats.parts.write_part`); a finished run's manifest
lists every part with its rows and sha256 (``files``) and the hash of the example ids it
covers (``ids_sha256``). :func:`find_problems` compares a folder with both:

* ``damaged``: unreadable (truncated, corrupt), fewer or more rows than written, or a
  checksum other than the manifest's;
* ``foreign``: written by another model or other settings (or, with no manifest, by an
  unknown run);
* ``duplicate``: an example already in an earlier part;
* ``unlisted``: a part a finished run does not list;
* ``missing``: listed in the manifest, gone from the folder.

:func:`check_table` (what :func:`lgkit.load_stats` reads through) refuses a folder with
any problem, or a "complete" one whose ids are not the plan's, in one line naming the
file and the repair; :func:`repair` (a resumed run, under the folder's lock) moves
damaged, duplicate and unlisted files to ``quarantine/`` so their examples are
recomputed, and refuses foreign ones.

Example:
    >>> fingerprint_sha({"model": "m", "max_length": 8}) == fingerprint_sha({"max_length": 8, "model": "m"})
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lgkit.errors import InputError
from lgkit.formats.parts import (
    FAILURES,
    META_KEY,
    PARTS,
    TOKENS,
    failure_rows,
    load_manifest,
    part_files,
)

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"
SUBFOLDERS = (PARTS, FAILURES, TOKENS)
REPAIR = "rerun the same lgkit grads command (or series) to set it aside and recompute its examples"


def fingerprint_sha(fp: dict[str, Any]) -> str:
    """A short stable hash of a run fingerprint (stored in each part's metadata)."""
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:16]


def ids_sha(ids: Iterable[str]) -> str:
    """The hash of a set of example ids (order does not matter).

    Example:
        >>> ids_sha(["b", "a"]) == ids_sha(["a", "b", "a"])
        True
    """
    return hashlib.sha256("\n".join(sorted(set(map(str, ids)))).encode()).hexdigest()


@dataclass
class Scanned:
    """One part file as found: its bytes' sha256, its table and own metadata, or why it is unreadable."""

    path: Path
    rel: str
    sha256: str
    table: pa.Table | None = None
    meta: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Problem:
    """What is wrong with one file of a run folder (``kind``: module docstring)."""

    path: Path
    kind: str
    why: str


def scan(out: Path, subs: Iterable[str] = SUBFOLDERS) -> list[Scanned]:
    """Read every part of ``subs`` once: checksum, table, own metadata."""
    found = []
    for sub in subs:
        for f in part_files(out / sub):
            data = f.read_bytes()
            s = Scanned(f, f"{sub}/{f.name}", hashlib.sha256(data).hexdigest())
            try:
                table = s.table = pq.read_table(pa.BufferReader(data))
                raw = (table.schema.metadata or {}).get(META_KEY)
                s.meta = json.loads(raw) if raw else None
            except (OSError, ValueError, pa.ArrowException) as e:
                s.error = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
            found.append(s)
    return found


def _file_problem(
    s: Scanned, fp: str | None, listed: dict[str, Any], strict: bool
) -> Problem | None:
    if s.error is not None or s.table is None:
        return Problem(
            s.path, "damaged", f"unreadable Parquet part, truncated or corrupt ({s.error})"
        )
    if s.meta is not None and s.meta.get("rows") != s.table.num_rows:
        return Problem(
            s.path,
            "damaged",
            f"holds {s.table.num_rows} rows but was written with {s.meta.get('rows')}",
        )
    entry = listed.get(s.rel)
    if entry is not None and entry.get("sha256") != s.sha256:
        return Problem(s.path, "damaged", "its checksum differs from the one in manifest.json")
    if fp is None and s.meta is None:
        return Problem(s.path, "foreign", "a part of unknown model and settings (no manifest.json)")
    if fp is not None and s.meta is not None and s.meta.get("fingerprint") != fp:
        return Problem(s.path, "foreign", "written by another model or other settings")
    if strict and listed and entry is None:
        return Problem(s.path, "unlisted", "not one of the parts manifest.json lists")
    return None


def find_problems(
    out: Path,
    scans: list[Scanned],
    fp: str | None,
    manifest: dict,
    subs: Iterable[str] = SUBFOLDERS,
) -> list[Problem]:
    """Every problem of ``out`` (damaged, foreign, duplicate, unlisted, missing), in file order.

    ``fp``: the fingerprint hash the parts must carry (None: no manifest and no run to
    compare with). Parts without their own metadata (written before it existed) are
    trusted only under a manifest. ``subs``: the sub-folders ``scans`` covers.
    """
    listed: dict[str, Any] = manifest.get("files") or {}
    strict = manifest.get("status") == "complete"
    probs: list[Problem] = []
    seen: set[str] = set()
    for s in scans:
        p = _file_problem(s, fp, listed, strict)
        if p is None and s.rel.startswith(PARTS + "/") and s.table is not None:
            ids = set(s.table.column("sample_id").to_pylist())
            if ids & seen:
                p = Problem(
                    s.path,
                    "duplicate",
                    f"repeats example {sorted(ids & seen)[0]!r} of an earlier part",
                )
            seen |= ids
        if p is not None:
            probs.append(p)
    present = {s.rel for s in scans}
    wanted = tuple(f"{sub}/" for sub in subs)
    probs += [
        Problem(out / rel, "missing", "listed in manifest.json but gone")
        for rel in listed
        if rel.startswith(wanted) and rel not in present
    ]
    return probs


def _fp_of(manifest: dict, scans: list[Scanned]) -> str | None:
    if manifest.get("fingerprint"):
        return fingerprint_sha(manifest["fingerprint"])
    fps = [s.meta.get("fingerprint") for s in scans if s.meta]
    return fps[0] if fps else None


def check_table(out: Path) -> pd.DataFrame:
    """The statistics rows of ``out`` once verified (what :func:`lgkit.load_stats` reads).

    Raises:
        InputError: one line naming the first damaged, foreign, duplicated, unlisted or
            missing file, duplicated rows, or a "complete" run whose examples are not all
            there, with the repair.
    """
    manifest = load_manifest(out)
    scans = scan(out, (PARTS,))
    probs = find_problems(out, scans, _fp_of(manifest, scans), manifest, (PARTS,))
    if probs:
        p = probs[0]
        raise InputError(f"{p.why}; {REPAIR}", path=p.path)
    tables = [s.table for s in scans if s.table is not None]
    if not tables:
        return pd.DataFrame()
    df = pa.concat_tables(tables, promote_options="default").to_pandas()
    keys = [c for c in ("sample_id", "layer", "module") if c in df.columns]
    dup = df.duplicated(keys)
    if dup.any():
        raise InputError(
            f"duplicate rows (example {df.loc[dup, 'sample_id'].iloc[0]!r}); {REPAIR}", path=out
        )
    if manifest.get("status") == "complete":
        _check_complete(out, manifest, set(df["sample_id"].astype(str)))
    return df


def _check_complete(out: Path, manifest: dict, done: set[str]) -> None:
    fails = failure_rows(out, done)
    failed = set(fails["sample_id"].astype(str)) if len(fails) else set()
    data_failed = (
        set(fails.loc[fails["kind"] == "data", "sample_id"].astype(str)) if len(fails) else set()
    )
    if "ids_sha256" in manifest:
        ok = ids_sha(done | data_failed) == manifest["ids_sha256"]
    else:  # a manifest written before ids were recorded: count them
        ok = len(done | failed) >= int(manifest.get("n_examples", 0))
    if not ok:
        raise InputError(
            f"manifest.json says complete but the parts hold {len(done)} examples "
            f"({len(failed)} failed) of {manifest.get('n_examples')}; {REPAIR}",
            path=out,
        )


def repair(out: Path, fp: str, manifest: dict, *, tokens: bool = False) -> list[Problem]:
    """Set damaged, duplicate and unlisted files aside in ``quarantine/`` (their examples are
    then recomputed); refuse foreign ones. Call it holding the folder's lock.

    ``tokens`` (a run with ``token_stats``): a statistics part holding an example whose
    per-token rows were lost (a damaged ``tokens/`` part) is set aside too, so the
    example is recomputed with both tables.

    Returns:
        The problems found (missing files included: their examples are simply not done).

    Raises:
        InputError: a part written by another model or settings, naming it.
    """
    scans = scan(out)
    probs = find_problems(out, scans, fp, manifest)
    foreign = [p for p in probs if p.kind == "foreign"]
    if foreign:
        raise InputError(
            f"holds statistics of a different run ({foreign[0].path.relative_to(out)}: {foreign[0].why}); "
            "to start afresh, give another --out, delete this directory, or rerun with --overwrite",
            path=out,
        )
    bad = {p.path for p in probs}
    if tokens:
        probs += _lost_tokens(scans, bad)
    for p in probs:
        if p.kind == "missing":
            log.warning("%s: %s; its examples are recomputed", p.path, p.why)
            continue
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        dest = out / QUARANTINE / p.path.parent.name / f"{stamp}-{p.path.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(p.path, dest)
        log.warning("%s: %s; moved to %s, its examples are recomputed", p.path, p.why, dest)
    return probs


def _lost_tokens(scans: list[Scanned], bad: set[Path]) -> list[Problem]:
    """Good statistics parts holding an example without per-token rows in a good tokens part."""
    good = [s for s in scans if s.path not in bad and s.table is not None]
    with_tokens: set[str] = set()
    for s in good:
        if s.rel.startswith(TOKENS + "/") and s.table is not None:
            with_tokens |= set(map(str, s.table.column("sample_id").to_pylist()))
    out = []
    for s in good:
        if s.rel.startswith(PARTS + "/") and s.table is not None:
            lost = set(map(str, s.table.column("sample_id").to_pylist())) - with_tokens
            if lost:
                why = f"its example {sorted(lost)[0]!r} lost its per-token rows"
                out.append(Problem(s.path, "damaged", why))
    return out


def file_ledger(out: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"rows", "sha256"}}`` of every part, failure and per-token file."""
    return {
        s.rel: {"rows": s.table.num_rows if s.table is not None else None, "sha256": s.sha256}
        for s in scan(out)
    }
