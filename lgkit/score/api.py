"""``lgkit.score``: one row of gradient-spectrum scores per training example.

The statistics come from the engine (:func:`lgkit.engine.run.compute_stats`: exact,
resumable, sharded under ``torchrun``, with a progress bar) into ``out_dir/stats``
(``out_dir/oda_nuclear`` and ``out_dir/oda_rank`` with ``compat="oda"``); they are then
aggregated per example (:mod:`lgkit.score.aggregate`) and written as
``out_dir/scores.parquet`` and ``scores.csv`` with the settings in ``score.json``.

Example:
    >>> df = score("data.jsonl", "smollm2-135m-instruct", "outputs/score")  # doctest: +SKIP
    >>> df.sort_values("effective_rank").tail()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lgkit.engine.config import GradConfig
from lgkit.engine.plan import unique_ids
from lgkit.engine.run import compute_stats
from lgkit.errors import InputError
from lgkit.formats.store import load_failures, load_stats
from lgkit.fsio import atomic_write_json
from lgkit.score.aggregate import SCORES, aggregate, parse_layers
from lgkit.score.datafile import DataFile, read_data
from lgkit.score.oda import ODA_MAX_LENGTH, ODA_MODULES, SCORERS

log = logging.getLogger(__name__)

COMPAT = (None, "oda")
AGGREGATION = (
    "per example: nuclear_norm, effective_rank, sigma1_ratio, coherence averaged over the "
    "chosen layers x modules (oda: each module averaged over the layers, then over modules)"
)
DEFAULT_MAX_LENGTH = 1024


def _index_frame(
    data: DataFile, todo: list[int], run_dirs: Sequence[Path], scores: pd.DataFrame
) -> pd.DataFrame:
    """``index, sample_id, failure`` of every record (the reason it was not scored, or
    None), its scores beside (NaN where it has none).

    The engine scored records ``todo`` of ``data`` (the others are ``data.unscorable``);
    its sample ids are mapped back to the whole file's.
    """
    ids = unique_ids(data.examples, str(data.path))
    frame = pd.DataFrame({"index": range(len(ids)), "sample_id": ids})
    reasons = pd.Series([data.unscorable.get(i) for i in range(len(ids))], dtype=object)
    if todo:
        sub = unique_ids([data.examples[i] for i in todo], str(data.path))
        to_full = dict(zip(sub, (ids[i] for i in todo), strict=True))
        fails = pd.concat([load_failures(d) for d in run_dirs], ignore_index=True)
        if len(fails):
            by_id = fails.groupby("sample_id")["reason"].first().rename(index=to_full)
            reasons = reasons.where(reasons.notna(), frame["sample_id"].map(by_id))
        scores = scores.assign(sample_id=scores["sample_id"].map(to_full))
    frame["failure"] = reasons.where(reasons.notna(), None).astype(object)
    frame = frame.merge(scores, on="sample_id", how="left")
    for col in [*scores.columns.drop("sample_id"), *SCORES]:  # NaN where nothing was scored
        if col not in frame or frame[col].dtype == object:
            frame[col] = pd.to_numeric(frame.get(col), errors="coerce").astype(float)
    return frame


def _refuse_failures(frame: pd.DataFrame, data: DataFile) -> None:
    """``strict``: one line naming the first record that cannot be scored, and how many."""
    bad = frame.index[frame["failure"].notna()].tolist()
    if bad:
        i = int(frame["index"].iloc[bad[0]])
        raise InputError(
            f"cannot be scored: {frame['failure'].iloc[bad[0]]} ({len(bad)} of {len(frame)} "
            "records cannot; without --strict they get rows with NaN scores and the reason)",
            path=data.path, record=data.number(i), field="output",
        )  # fmt: skip


def _oda_scores(
    bundle: Any, data: DataFile, out: Path, layers: list[int], cfg_kw: dict, run_kw: dict
) -> pd.DataFrame:
    merged: pd.DataFrame | None = None
    for mode, suffix, stat in SCORERS.values():
        cfg = GradConfig(modules=ODA_MODULES, compat=mode, instruct=False, **cfg_kw)
        compute_stats(bundle, data.examples, out / mode, cfg, **run_kw)
        agg = aggregate(load_stats(out / mode), layers=layers, by_module=True)
        cols = {f"{stat}_{m}": f"{m.upper()}_{suffix}" for m in ODA_MODULES}
        part = agg[["sample_id", stat, *[c for c in cols if c in agg]]].rename(columns=cols)
        if merged is None:  # loss and length of the NuclearNorm joining
            extra = [c for c in ("loss", "n_response_tokens", "n_loss_tokens") if c in agg]
            merged = agg[["sample_id", *extra]].merge(part, on="sample_id")
        else:
            merged = merged.merge(part, on="sample_id", how="outer")
    assert merged is not None
    return merged


def score(
    data: str | Path | DataFile,
    model: Any,
    out_dir: str | Path,
    *,
    layers: str | Sequence[int] = "all",
    modules: str | Sequence[str] = ("q", "k", "v", "o"),
    compat: str | None = None,
    max_length: int | None = None,
    batch_size: int = 1,
    instruct: bool | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    strict: bool = False,
) -> pd.DataFrame:
    """Score every record of ``data`` under ``model``; one row per record.

    Columns: ``index`` (record number), ``sample_id``, :data:`lgkit.score.aggregate.SCORES`
    (``nuclear_norm``, ``effective_rank``, ``sigma1_ratio``, ``coherence``: means over
    the chosen ``layers`` × ``modules``; ``loss``; ``n_response_tokens``), and
    ``failure``: why a record could not be scored (an empty response, a response cut
    away by ``max_length``, ...; None for the scored ones), its scores NaN; the others
    are scored all the same. ``strict=True`` refuses the data instead (:class:`InputError`
    naming the first such record; an empty response before the model loads), and writes
    no scores. With
    ``compat="oda"`` the columns are OpenDataArena's (``Q_NuclearNorm`` …
    ``O_EffectiveRank``; ``layers`` default ``last``), ``nuclear_norm`` and
    ``effective_rank`` being their means over q, k, v, o.

    Rerunning into the same ``out_dir`` resumes. Under ``torchrun`` every rank computes
    its share; rank 0 writes the scores.

    Raises:
        InputError: bad data, settings, layers or modules, or an ``out_dir`` of another run.
    """
    if compat not in COMPAT:
        raise InputError(f"unknown compat mode {compat!r}; choose oda", field="--compat")
    data = data if isinstance(data, DataFile) else read_data(data, strict=strict)
    if strict and data.unscorable:
        i = min(data.unscorable)
        raise InputError(data.unscorable[i], path=data.path, record=data.number(i), field="output")
    todo = [i for i in range(len(data.examples)) if i not in data.unscorable]
    part = DataFile(data.path, data.kind, [data.examples[i] for i in todo], sha256=data.sha256)
    out = Path(out_dir)
    from lgkit.models.load import as_loaded  # lazily: transformers only when needed

    bundle = as_loaded(model, instruct=False if compat else instruct, device=device, dtype=dtype)
    kw: dict[str, Any] = {
        "max_length": max_length or (ODA_MAX_LENGTH if compat else DEFAULT_MAX_LENGTH),
        "batch_size": batch_size,
    }
    run_kw = {"progress": progress, "overwrite": overwrite, "rank": rank, "world_size": world_size}
    if compat == "oda" and layers == "all":
        layers = "last"  # their default
    chosen = parse_layers(layers, bundle.model.config.get_text_config().num_hidden_layers)
    # the engine computes the chosen layers only; "all" keeps the cache key of a full run
    kw["layers"] = None if layers == "all" else ",".join(map(str, chosen))
    scores = pd.DataFrame({"sample_id": pd.Series(dtype=object)})
    if compat == "oda":
        modules = ODA_MODULES
        if todo:
            scores = _oda_scores(bundle, part, out, chosen, kw, run_kw)
        run_dirs = [out / mode for mode, _, _ in SCORERS.values()]
    else:
        cfg = GradConfig(modules=modules if isinstance(modules, str) else tuple(modules),
                         instruct=instruct, **kw)  # fmt: skip
        modules = cfg.modules
        if todo:  # records with an empty response never reach the engine
            compute_stats(bundle, part.examples, out / "stats", cfg, **run_kw)
            scores = aggregate(load_stats(out / "stats"), layers=chosen, modules=modules)
        run_dirs = [out / "stats"]
    frame = _index_frame(data, todo, run_dirs, scores)
    if strict:
        _refuse_failures(frame, data)
    if (rank or 0) == 0:
        settings = {
            "model": getattr(bundle, "name", None), "compat": compat,
            "layers": layers if isinstance(layers, str) else list(layers),
            "layer_indices": chosen,
            "modules": list(modules), **kw,
        }  # fmt: skip
        _write(out, frame, data, settings)
    n_fail = int(frame["failure"].notna().sum())
    log.info("scored %d of %d records (%d failed) into %s", len(frame) - n_fail, len(frame),
             n_fail, out)  # fmt: skip
    return frame


def _write(out: Path, frame: pd.DataFrame, data: DataFile, settings: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / "scores.parquet", index=False)
    frame.to_csv(out / "scores.csv", index=False)
    atomic_write_json(out / "score.json", {
        "data": str(data.path), "data_kind": data.kind, "data_sha256": data.sha256,
        **settings, "aggregation": AGGREGATION, "scores": list(SCORES),
    })  # fmt: skip


def with_scores(dataset: Any, scores: pd.DataFrame, columns: Sequence[str] | None = None) -> Any:
    """``dataset`` (a ``datasets.Dataset`` in record order) with score columns added.

    ``scores`` is what :func:`score` returned for the same records; unscored records get
    None. Existing columns of the same name are refused.

    Raises:
        InputError: row counts differ or a column exists already.

    Example:
        >>> import datasets
        >>> ds = datasets.Dataset.from_list([{"instruction": "q", "output": "a"}])
        >>> s = pd.DataFrame({"index": [0], "effective_rank": [3.5]})
        >>> with_scores(ds, s, ["effective_rank"])[0]["effective_rank"]
        3.5
    """
    cols = list(columns) if columns else [c for c in scores.columns if c in SCORES]
    if len(dataset) != len(scores):
        raise InputError(f"{len(dataset)} rows but {len(scores)} scores", field="scores")
    clash = [c for c in cols if c in dataset.column_names]
    if clash:
        raise InputError(f"column(s) {clash} exist already in the dataset", field="scores")
    ordered = scores.sort_values("index")
    for c in cols:
        vals = ordered[c].astype(object).where(ordered[c].notna(), None).tolist()
        dataset = dataset.add_column(c, vals)
    return dataset
