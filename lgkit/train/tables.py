"""Where a training run's tables live and how they are read back as one DataFrame each.

Layout of a callback's ``out_dir``::

    probe/step-000010/     the engine's statistics table of the probe set at step 10
    instep/step-000010/parts/part-rRRR-000000.parquet
                           in-step statistics of the training examples of step 10, one
                           engine part per rank (replaced whole when the step is measured again)
    updates/step-000010.parquet   ΔW (and minibatch gradient) spectra at step 10
    heldout/step-000010.parquet   held-out answer loss per question at step 10
    heldout_loss.csv       step, mean held-out answer loss, n (rewritten at each probe step)
    train_loss.csv         step, loss, learning_rate, grad_norm (from the Trainer's log)
    w0.pt                  W_0 of every measured projection (the reference of ΔW on resume)

Every file is written whole and atomically, named by its step: a step measured again
after a resume replaces its own file, so no row is lost or doubled.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_step_table(d, "heldout", 5, [{"step": 5, "sample_id": "a", "loss": 1.0}]).name
    'step-000005.parquet'
    >>> load_step_tables(d, "heldout")[["step", "loss"]].values.tolist()
    [[5.0, 1.0]]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lgkit.errors import InputError
from lgkit.formats.parts import META_KEY, PARTS, part_files, read_part, write_part
from lgkit.formats.store import load_stats
from lgkit.fsio import atomic_open, atomic_path

PROBE, UPDATES, HELDOUT, INSTEP = "probe", "updates", "heldout", "instep"
HELDOUT_CSV, TRAIN_LOSS_CSV, W0 = "heldout_loss.csv", "train_loss.csv", "w0.pt"
_STEP_RE = re.compile(r"^step-(\d+)(?:\.parquet)?$")


def step_name(step: int) -> str:
    """``step-000010`` for step 10.

    Example:
        >>> step_name(10)
        'step-000010'
    """
    return f"step-{step:06d}"


def _steps(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_RE.match(p.name))]
    return sorted(found)


def write_step_table(
    out_dir: str | Path, kind: str, step: int, rows: Sequence[dict[str, Any]]
) -> Path:
    """Write (or replace) the table of one step atomically."""
    path = Path(out_dir) / kind / f"{step_name(step)}.parquet"
    with atomic_path(path, fsync=True) as tmp:
        pq.write_table(pa.Table.from_pylist(list(rows)), tmp)
    return path


def load_step_tables(out_dir: str | Path, kind: str) -> pd.DataFrame:
    """Every step's table of ``kind`` (``updates`` or ``heldout``) as one DataFrame."""
    parts = [pq.read_table(p).to_pandas() for _, p in _steps(Path(out_dir) / kind)]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def load_trajectory(out_dir: str | Path) -> pd.DataFrame:
    """The probe statistics of every measured step: ``lgkit grads`` columns plus ``step``.

    Raises:
        InputError: when ``out_dir`` holds no probe steps.
    """
    found = _steps(Path(out_dir) / PROBE)
    if not found:
        raise InputError("holds no probe statistics (probe/step-*)", path=out_dir)
    parts = []
    for step, d in found:
        df = load_stats(d)
        df.insert(0, "step", step)
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def write_instep(
    out_dir: str | Path, step: int, rank: int, rows: Sequence[dict[str, Any]]
) -> Path | None:
    """Write (or replace) one rank's in-step rows of one step as an engine part.

    A step measured again after a resume first loses this rank's earlier part of that
    step (the step was not checkpointed, so it is recomputed whole): nothing is doubled.
    """
    folder = Path(out_dir) / INSTEP / step_name(step)
    for old in part_files(folder / PARTS):
        if f"-r{rank:03d}-" in old.name:
            old.unlink()
    return write_part(folder, rows, rank=rank, meta={"step": step})


def load_instep(out_dir: str | Path) -> pd.DataFrame:
    """The in-step statistics of every measured step, all ranks: the engine's columns plus
    ``step``, ``micro_step``, ``batch_index`` (and the run's tags, e.g. ``arm``, ``seed``).

    Each part's own row count is checked; sorted by step, micro-step, example, layer, module.

    Raises:
        InputError: when ``out_dir`` holds no in-step statistics, or a part is damaged.
    """
    import json

    found = _steps(Path(out_dir) / INSTEP)
    tables = []
    for _, d in found:
        for f in part_files(d / PARTS):
            t = read_part(f)
            own = json.loads((t.schema.metadata or {}).get(META_KEY, b"{}"))
            if own.get("rows") not in (None, t.num_rows):
                raise InputError(
                    f"part holds {t.num_rows} rows, its record says {own['rows']}", path=f
                )
            tables.append(t)
    if not tables:
        raise InputError("holds no in-step statistics (instep/step-*)", path=out_dir)
    df = pa.concat_tables(tables, promote_options="default").to_pandas()
    from lgkit.schema import ALL_MODULES

    order = {m: i for i, m in enumerate(ALL_MODULES)}
    df["_m"] = df["module"].map(order)
    df = df.sort_values(["step", "micro_step", "batch_index", "layer", "_m"], kind="stable")
    return df.drop(columns="_m").reset_index(drop=True)


def load_updates(out_dir: str | Path) -> pd.DataFrame:
    """ΔW (``kind == "update"``) and minibatch-gradient (``"grad"``) spectra per step, layer, module."""
    return load_step_tables(out_dir, UPDATES)


def load_heldout(out_dir: str | Path) -> pd.DataFrame:
    """Held-out answer loss per step and question (``step, sample_id, loss, n_answer_tokens``)."""
    return load_step_tables(out_dir, HELDOUT)


def heldout_summary(out_dir: str | Path) -> pd.DataFrame:
    """Mean held-out answer loss per step, written as ``heldout_loss.csv``.

    Columns ``step, heldout_loss, n`` and ``n_cut`` (questions whose answer ``max_length``
    cut away: recorded with a NaN loss, left out of the mean).
    """
    df = load_heldout(out_dir)
    if df.empty:
        return pd.DataFrame(columns=["step", "heldout_loss", "n", "n_cut"])
    g = df.groupby("step")["loss"]
    out = pd.DataFrame({"heldout_loss": g.mean(), "n": g.count(), "n_cut": g.size() - g.count()})
    return out.reset_index()


def write_csv(path: str | Path, df: pd.DataFrame) -> Path:
    """Write a small table as CSV atomically."""
    with atomic_open(path) as fh:
        df.to_csv(fh, index=False)
    return Path(path)


def load_train_loss(out_dir: str | Path) -> pd.DataFrame:
    """Training loss per optimizer step (``step, loss, learning_rate, grad_norm``)."""
    p = Path(out_dir) / TRAIN_LOSS_CSV
    return pd.read_csv(p) if p.is_file() else pd.DataFrame(columns=["step", "loss"])


def train_loss_rows(log_history: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The per-step training-loss rows of a Trainer's ``state.log_history`` (last entry per step).

    Example:
        >>> train_loss_rows([{"step": 1, "loss": 2.0, "learning_rate": 0.1}, {"step": 1, "train_runtime": 3}])
           step  loss  learning_rate  grad_norm
        0     1   2.0            0.1        NaN
    """
    cols = ["step", "loss", "learning_rate", "grad_norm"]
    rows = [{c: h.get(c) for c in cols} for h in log_history if "loss" in h and "step" in h]
    df = pd.DataFrame(rows, columns=cols).astype({"grad_norm": float})
    return df.drop_duplicates("step", keep="last").reset_index(drop=True)
