"""Analysis of the statistics table: layer curves, MAD, relative differences, claims.

Everything here takes the **statistics table** (one row per example × layer × module,
see DESIGN.md) as a pandas DataFrame and returns DataFrames (or small dataclasses), so
a notebook can show, export and assert on them. Nothing here needs torch.

Conventions used throughout:

* An **example** is one row of the source data seen by one model: it is identified by
  ``sample_id`` together with whichever of ``model``, ``dataset``, ``cot`` and
  ``correct`` are columns of the table (the same ``sample_id`` in two variants or two
  models is two examples). Bootstrap resampling and length matching work on
  examples, never on rows.
* A **curve** is the mean of a metric over examples, per layer, for one group and one
  module. As in the authors' code, an example whose curve has a missing (NaN) layer is
  left out of that curve (``drop_incomplete=True``).
* Metric names are the table's columns, the authors' names as aliases
  (``S_sum`` = ``nuclear_norm``, ``S_max`` = ``sigma_max``, ``S_min`` = ``sigma_min``,
  ``S_ratio`` = ``sigma1_ratio``) and the derived ``S_sum_regularized`` =
  ``nuclear_norm / loss`` (0 where the loss is 0, like the authors' zero guard).
* ``where`` filters rows before anything else: ``{"dataset": "gsm8k",
  "correct": True}``; a list/tuple/set value means "any of".

Example:
    >>> df = synthetic_stats(n_samples=5, n_layers=6, seed=0)
    >>> curves = layer_curves(df, "nuclear_norm", by=["cot"], n_boot=50)
    >>> sorted(curves.columns)[:4]
    ['cot', 'hi', 'layer', 'lo']
    >>> mad = mad_table(df, "nuclear_norm", by=["cot"], where={"correct": True})
    >>> list(mad.columns)
    ['cot', 'module', 'early', 'middle', 'late', 'all', 'n_layers']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError
from .schema import ALL_MODULES, ATTN_MODULES, STAT_COLUMNS

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- constants

COT_ORDER: tuple[str, ...] = ("none", "simplified", "detailed")
"""Response types from fast to slow thinking."""

MODULE_ORDER: tuple[str, ...] = ALL_MODULES
"""Canonical order of the abstract module names."""

OPTIONAL_METRIC_COLUMNS: tuple[str, ...] = ("cos_next_layer", "cos_pair")
"""Gradient cosines the engine stores when asked (NaN where undefined)."""

EXAMPLE_COLUMNS: tuple[str, ...] = ("loss", "n_prompt_tokens", "n_response_tokens")
"""Per-example numeric columns that can also be used as a metric."""

METRIC_ALIASES: dict[str, str] = {
    "S_sum": "nuclear_norm",
    "S_max": "sigma_max",
    "S_min": "sigma_min",
    "S_ratio": "sigma1_ratio",
}
"""The authors' statistic names mapped to lgkit's column names."""

DERIVED_METRICS: tuple[str, ...] = ("S_sum_regularized",)
"""Metrics computed from columns: ``S_sum_regularized = nuclear_norm / loss``."""

METRIC_LABELS: dict[str, str] = {
    "nuclear_norm": "Nuclear Norm",
    "sigma_max": "σ1 (largest singular value)",
    "sigma_min": "σ_min",
    "sigma1_ratio": "σ1 Ratio",
    "frobenius_norm": "Frobenius Norm",
    "effective_rank": "Effective Rank",
    "entry_mean": "Mean Entry",
    "entry_max": "Max Entry",
    "entry_min": "Min Entry",
    "cos_next_layer": "Cosine with Next Layer",
    "cos_pair": "Cosine Q×O / K×V",
    "loss": "Loss",
    "n_prompt_tokens": "Prompt Tokens",
    "n_response_tokens": "Response Tokens",
    "S_sum_regularized": "Nuclear Norm / Loss",
}
"""Human-readable metric names (used in figure titles)."""

KEY_COLUMNS: tuple[str, ...] = ("model", "dataset", "cot", "correct")
"""Columns that, with ``sample_id``, identify one example (those present are used)."""

LAYER_GROUP_PRESETS: dict[int, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    26: ((0, 7), (7, 20), (20, 26)),
    28: ((0, 7), (7, 21), (21, 28)),
    32: ((0, 10), (10, 20), (20, 32)),
    42: ((0, 12), (12, 30), (30, 42)),
}
"""Early/middle/late layer ranges ``[start, stop)`` of the authors' code, by layer count."""

LAYER_GROUPS: tuple[str, ...] = ("early", "middle", "late")

REQUIRED_COLUMNS: tuple[str, ...] = ("sample_id", "layer", "module")


def metric_label(metric: str) -> str:
    """A readable name for a metric (falls back to the metric name).

    Example:
        >>> metric_label("sigma1_ratio")
        'σ1 Ratio'
    """
    return METRIC_LABELS.get(metric, METRIC_LABELS.get(METRIC_ALIASES.get(metric, ""), metric))


# --------------------------------------------------------------------------- basic helpers


def _as_list(x: str | Sequence[str] | None) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def _check_columns(df: pd.DataFrame, cols: Iterable[str], what: str = "statistics table") -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def available_metrics(df: pd.DataFrame) -> list[str]:
    """The metric names usable with ``df`` (columns present, plus derived metrics).

    Example:
        >>> "S_sum_regularized" in available_metrics(synthetic_stats(n_samples=2, n_layers=3))
        True
    """
    out = [c for c in STAT_COLUMNS + OPTIONAL_METRIC_COLUMNS + EXAMPLE_COLUMNS if c in df.columns]
    if "nuclear_norm" in df.columns and "loss" in df.columns:
        out.append("S_sum_regularized")
    return out


def metric_values(df: pd.DataFrame, metric: str) -> pd.Series:
    """The values of ``metric`` for every row of the table, as float.

    Args:
        df: statistics table.
        metric: a column name, an authors' alias (``S_sum``, ``S_ratio``, ...) or
            ``S_sum_regularized`` (``nuclear_norm / loss``; 0 where loss is 0, as the
            authors' ``ZeroDivisionError`` guard does).

    Returns:
        A float Series aligned with ``df``.

    Raises:
        InputError: the metric is unknown or its columns are missing.

    Example:
        >>> t = pd.DataFrame({"nuclear_norm": [2.0, 3.0], "loss": [0.5, 0.0]})
        >>> metric_values(t, "S_sum_regularized").tolist()
        [4.0, 0.0]
    """
    name = METRIC_ALIASES.get(metric, metric)
    if name == "S_sum_regularized":
        _check_columns(df, ("nuclear_norm", "loss"))
        nn_ = df["nuclear_norm"].astype(float)
        loss = df["loss"].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            val = nn_ / loss
        return val.where(loss != 0, 0.0).rename(metric)
    if name not in df.columns:
        raise InputError(
            f"unknown metric {metric!r}; available: {available_metrics(df)}", field="metric"
        )
    return pd.to_numeric(df[name], errors="coerce").astype(float).rename(metric)


def filter_table(df: pd.DataFrame, where: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Rows of ``df`` matching every ``column: value`` of ``where``.

    A list, tuple or set value matches any of its items; ``None`` as a value keeps all.

    Example:
        >>> t = pd.DataFrame({"cot": ["none", "detailed", "simplified"]})
        >>> filter_table(t, {"cot": ["none", "detailed"]})["cot"].tolist()
        ['none', 'detailed']
    """
    if not where:
        return df
    mask = pd.Series(True, index=df.index)
    for col, val in where.items():
        if val is None:
            continue
        _check_columns(df, [col])
        if isinstance(val, (list, tuple, set, frozenset)):
            mask &= df[col].isin(list(val))
        else:
            mask &= df[col] == val
    return df[mask]


def example_key_columns(df: pd.DataFrame, exclude: Iterable[str] = ()) -> list[str]:
    """Columns identifying one example: ``sample_id`` + present ``KEY_COLUMNS``.

    Example:
        >>> example_key_columns(pd.DataFrame(columns=["sample_id", "cot", "layer"]))
        ['sample_id', 'cot']
    """
    ex = set(exclude)
    return ["sample_id"] + [c for c in KEY_COLUMNS if c in df.columns and c not in ex]


def _value_order(values: Iterable[Any], column: str | None = None) -> list[Any]:
    """Distinct values in a natural order (cot fast→slow, modules canonical, else sorted)."""
    vals = list(dict.fromkeys(v for v in values))
    if column == "cot":
        known = [c for c in COT_ORDER if c in vals]
        return known + sorted((v for v in vals if v not in COT_ORDER), key=str)
    if column == "module":
        known = [m for m in MODULE_ORDER if m in vals]
        return known + sorted((v for v in vals if v not in MODULE_ORDER), key=str)
    if column == "correct":
        return [v for v in (True, False) if v in vals] + [v for v in vals if v not in (True, False)]
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _prepare(
    df: pd.DataFrame,
    metric: str,
    modules: Sequence[str] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    where: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Filtered copy of the table with the metric in column ``_value``."""
    _check_columns(df, REQUIRED_COLUMNS)
    d = filter_table(df, where)
    if modules is not None:
        d = d[d["module"].isin(list(modules))]
    if layers is not None:
        if isinstance(layers, tuple) and len(layers) == 2:
            lo, hi = int(layers[0]), int(layers[1])
            d = d[(d["layer"] >= lo) & (d["layer"] <= hi)]
        else:
            d = d[d["layer"].isin([int(x) for x in layers])]
    d = d.copy()
    d["_value"] = metric_values(d, metric)
    d["layer"] = d["layer"].astype(int)
    return d


# --------------------------------------------------------------------------- layer curves


def bootstrap_mean_band(
    matrix: np.ndarray,
    *,
    ci: float = 0.95,
    n_boot: int = 1000,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Column means of an examples × layers matrix with a percentile bootstrap band.

    Whole rows (examples) are resampled with replacement; NaN cells are ignored in
    every mean (a resample whose column is all NaN gives NaN there).

    Args:
        matrix: examples × layers values.
        ci: confidence level of the band.
        n_boot: number of bootstrap resamples; 0 gives NaN bands.
        rng: a numpy Generator (seeded by the caller for reproducibility).

    Returns:
        (mean, lo, hi, n) per column; ``n`` counts the non-NaN examples.

    Example:
        >>> m = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        >>> mean, lo, hi, n = bootstrap_mean_band(m, n_boot=200, rng=np.random.default_rng(0))
        >>> mean.tolist(), bool((lo <= mean).all() and (mean <= hi).all()), n.tolist()
        ([3.0, 4.0], True, [3, 3])
    """
    m = np.asarray(matrix, dtype=float)
    valid = ~np.isnan(m)
    n = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(m, axis=0) / np.maximum(n, 1), np.nan)
    if n_boot <= 0 or m.shape[0] == 0:
        nanv = np.full(m.shape[1], np.nan)
        return mean, nanv, nanv.copy(), n
    rng = rng if rng is not None else np.random.default_rng(0)
    n_ex = m.shape[0]
    w = rng.multinomial(n_ex, np.full(n_ex, 1.0 / n_ex), size=n_boot).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ np.where(valid, m, 0.0)) / (w @ valid.astype(float))
    alpha = (1.0 - ci) / 2.0
    q = [100 * alpha, 100 * (1 - alpha)]
    if np.isnan(boot).any():
        with np.errstate(invalid="ignore"), _quiet_nan_warnings():
            lo, hi = np.nanpercentile(boot, q, axis=0)
    else:
        lo, hi = np.percentile(boot, q, axis=0)
    return mean, lo, hi, n


class _quiet_nan_warnings:
    def __enter__(self) -> None:
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


def layer_curves(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    by: str | Sequence[str] | None = ("dataset", "cot", "correct"),
    *,
    modules: Sequence[str] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    where: Mapping[str, Any] | None = None,
    ci: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    drop_incomplete: bool = True,
) -> pd.DataFrame:
    """Mean of a metric over examples per (group, module, layer) with bootstrap bands.

    Args:
        df: statistics table.
        metric: see :func:`metric_values`.
        by: grouping columns (any columns of the table, e.g. ``["dataset", "cot",
            "correct"]`` or ``["model"]``); examples are pooled over the other columns.
        modules: modules to keep (default: all present).
        layers: a tuple ``(first, last)`` is an inclusive layer range; a list or range
            is an explicit set of layers.
        where: row filter, see :func:`filter_table`.
        ci: confidence level of the band.
        n_boot: bootstrap resamples of *examples* (0: no band, ``lo``/``hi`` NaN).
        seed: seed of the bootstrap; groups are visited in sorted order, so results
            are reproducible.
        drop_incomplete: leave out an example whose curve misses a layer or has a
            NaN value (the authors' behaviour); otherwise NaNs are skipped per layer.

    Returns:
        Long DataFrame with columns ``*by, module, layer, metric, mean, lo, hi, n, std``
        (``n`` = number of examples averaged at that layer).

    Example:
        >>> df = synthetic_stats(n_samples=5, n_layers=4)
        >>> c = layer_curves(df, "sigma1_ratio", by="cot", modules=["q"], n_boot=20)
        >>> c[["cot", "module", "layer"]].head(2).values.tolist()
        [['none', 'q', 0], ['none', 'q', 1]]
    """
    by = [c for c in _as_list(by) if c not in ("module", "layer")]
    d = _prepare(df, metric, modules, layers, where)
    _check_columns(d, by)
    key_cols = example_key_columns(d, exclude=by)
    rng = np.random.default_rng(seed)
    group_cols = by + ["module"]
    cols = group_cols + ["layer", "metric", "mean", "lo", "hi", "n", "std"]
    if d.empty:
        logger.warning("layer_curves: no rows left after filtering")
        return pd.DataFrame(columns=cols)
    grouped = d.groupby(group_cols, sort=True, dropna=False)
    group_keys = list(grouped.size().index)
    compact = pd.DataFrame(
        {
            "_g": grouped.ngroup().to_numpy(),
            "_ex": d.groupby(group_cols + key_cols, sort=False, dropna=False).ngroup().to_numpy(),
            "layer": d["layer"].to_numpy(),
            "_value": d["_value"].to_numpy(dtype=float),
        }
    )
    wide = (
        compact.groupby(["_g", "_ex", "layer"])["_value"].mean().unstack("layer").sort_index(axis=1)
    )
    all_layers = wide.columns.to_numpy(dtype=int)
    values = wide.to_numpy(dtype=float)
    gidx = wide.index.get_level_values("_g").to_numpy()
    bounds = np.searchsorted(gidx, np.arange(len(group_keys) + 1))
    out: list[pd.DataFrame] = []
    for gi, key in enumerate(group_keys):
        key = key if isinstance(key, tuple) else (key,)
        mat = values[bounds[gi] : bounds[gi + 1]]
        present = ~np.isnan(mat).all(axis=0)
        mat, lay = mat[:, present], all_layers[present]
        if drop_incomplete:
            complete = ~np.isnan(mat).any(axis=1)
            if not complete.all():
                logger.info(
                    "%s: left out %d of %d examples with missing layers",
                    dict(zip(group_cols, key, strict=True)),
                    int((~complete).sum()),
                    len(mat),
                )
            mat = mat[complete]
        mean, lo, hi, n = bootstrap_mean_band(mat, ci=ci, n_boot=n_boot, rng=rng)
        with _quiet_nan_warnings():
            std = np.nanstd(mat, axis=0, ddof=1) if len(mat) > 1 else np.full(len(lay), np.nan)
        part = {col: [val] * len(lay) for col, val in zip(group_cols, key, strict=True)}
        part.update(layer=lay, metric=metric, mean=mean, lo=lo, hi=hi, n=n.astype(int), std=std)
        out.append(pd.DataFrame(part))
    res = pd.concat(out, ignore_index=True)[cols]
    return _sort_groups(res, by + ["module", "layer"])


def _sort_groups(res: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Sort by columns using the natural orders of cot/module/correct."""
    keys = []
    for c in cols:
        if c not in res.columns:
            continue
        order = {v: i for i, v in enumerate(_value_order(res[c].dropna().unique(), c))}
        keys.append(res[c].map(lambda v, o=order: o.get(v, len(o))).rename(f"_k_{c}"))
    if not keys:
        return res.reset_index(drop=True)
    tmp = pd.concat([res] + keys, axis=1)
    tmp = tmp.sort_values([k.name for k in keys], kind="stable")
    return tmp.drop(columns=[k.name for k in keys]).reset_index(drop=True)


def curve_dict(
    curves: pd.DataFrame, by: str | Sequence[str] | None = None
) -> dict[tuple, np.ndarray]:
    """Mean curves of a :func:`layer_curves` result as ``{(*group, module): array}``.

    Example:
        >>> c = layer_curves(synthetic_stats(n_samples=3, n_layers=3), by="cot", n_boot=0)
        >>> curve_dict(c, "cot")[("none", "q")].shape
        (3,)
    """
    by = _as_list(by)
    out: dict[tuple, np.ndarray] = {}
    for key, g in curves.groupby(by + ["module"], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out[key] = g.sort_values("layer")["mean"].to_numpy(dtype=float)
    return out


# --------------------------------------------------------------------------- MAD


def mean_absolute_difference(values: Sequence[float] | np.ndarray) -> float:
    """Mean absolute difference between adjacent entries (the authors' MAD).

    A sequence of fewer than two values has no adjacent difference: the result is NaN
    (the authors' code raises ``ZeroDivisionError`` there).

    Example:
        >>> mean_absolute_difference([1.0, 3.0, 2.0])
        1.5
        >>> import math; math.isnan(mean_absolute_difference([5.0]))
        True
    """
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return float("nan")
    return float(np.mean(np.abs(np.diff(v))))


def layer_groups(n_layers: int) -> dict[str, slice]:
    """Early/middle/late layer slices for a model with ``n_layers`` layers.

    The authors' presets are used for 26, 28, 32 and 42 layers (see
    ``LAYER_GROUP_PRESETS``). Any other count is split symmetrically: with
    ``k = (n_layers + 1) // 3`` the groups are ``[0:k]``, ``[k:n-k]``, ``[n-k:n]``, i.e.
    ``n = 3q`` gives q/q/q, ``n = 3q+1`` gives the extra layer to the middle
    (q/q+1/q) and ``n = 3q+2`` gives one extra to early and one to late
    (q+1/q/q+1). Examples: 18 → 6/6/6, 19 → 6/7/6, 20 → 7/6/7, 5 → 2/1/2.

    Example:
        >>> layer_groups(28)["middle"]
        slice(7, 21, None)
        >>> [s.stop - s.start for s in layer_groups(18).values()]
        [6, 6, 6]
    """
    if n_layers < 0:
        raise InputError(f"n_layers must be >= 0, got {n_layers}", field="n_layers")
    if n_layers in LAYER_GROUP_PRESETS:
        spans = LAYER_GROUP_PRESETS[n_layers]
    else:
        k = (n_layers + 1) // 3
        spans = ((0, k), (k, n_layers - k), (n_layers - k, n_layers))
    return {name: slice(a, b) for name, (a, b) in zip(LAYER_GROUPS, spans, strict=True)}


def mad_by_group(
    values: Sequence[float] | np.ndarray,
    splits: Mapping[str, slice] | None = None,
) -> dict[str, float]:
    """MAD of a curve within early/middle/late layer groups and over all layers.

    Differences are only taken between adjacent layers *inside* a group (as the
    authors do); a group of fewer than two layers gives NaN.

    Args:
        values: the curve, one value per layer in layer order.
        splits: custom ``{name: slice}`` groups; default :func:`layer_groups`.

    Returns:
        ``{"early": ..., "middle": ..., "late": ..., "all": ...}``.

    Example:
        >>> mad_by_group([0, 1, 3, 6, 10, 15])  # 6 layers -> [0:2] [2:4] [4:6]
        {'early': 1.0, 'middle': 3.0, 'late': 5.0, 'all': 3.0}
    """
    v = np.asarray(values, dtype=float)
    groups = dict(splits) if splits is not None else layer_groups(len(v))
    out = {name: mean_absolute_difference(v[s]) for name, s in groups.items()}
    out["all"] = mean_absolute_difference(v)
    return out


def mad_table(
    data: pd.DataFrame,
    metric: str = "nuclear_norm",
    by: str | Sequence[str] | None = ("dataset", "cot", "correct"),
    *,
    modules: Sequence[str] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    where: Mapping[str, Any] | None = None,
    splits: Mapping[str, slice] | None = None,
) -> pd.DataFrame:
    """MAD of the mean curve per (group, module): columns early/middle/late/all.

    Args:
        data: statistics table, or a :func:`layer_curves` result (recognised by its
            ``mean`` column; then ``metric``/``modules``/``layers``/``where`` are
            ignored except ``by``).
        metric: see :func:`metric_values`.
        by: grouping columns.
        modules: modules to keep.
        layers: layer range or list (the groups are then computed on that sub-curve).
        where: row filter.
        splits: custom ``{name: slice}`` layer groups (default :func:`layer_groups` of
            each curve's length). Slices index the curve's positions, not layer
            numbers; "adjacent" means consecutive layers present in the curve.

    Returns:
        DataFrame with ``*by, module, early, middle, late, all, n_layers``.

    Example:
        >>> t = mad_table(synthetic_stats(n_samples=4, n_layers=6), by="cot")
        >>> t.loc[t.module == "q", "cot"].tolist()
        ['none', 'simplified', 'detailed']
    """
    by = _as_list(by)
    if "mean" in data.columns and "layer" in data.columns and "sample_id" not in data.columns:
        curves = data
    else:
        curves = layer_curves(
            data, metric, by, modules=modules, layers=layers, where=where, n_boot=0
        )
    rows = []
    for key, vals in curve_dict(curves, by).items():
        row = dict(zip(by + ["module"], key, strict=True))
        m = mad_by_group(vals, splits)
        row.update(m)
        row["n_layers"] = len(vals)
        rows.append(row)
    names = list(splits.keys()) if splits is not None else list(LAYER_GROUPS)
    cols = by + ["module"] + names + ["all", "n_layers"]
    if not rows:
        return pd.DataFrame(columns=cols)
    return _sort_groups(pd.DataFrame(rows)[cols], by + ["module"])


def pivot_mad(mad: pd.DataFrame, index: str | Sequence[str] = "cot") -> pd.DataFrame:
    """The paper's MAD table layout: rows ``index``, columns (module, layer group).

    Example:
        >>> t = pivot_mad(mad_table(synthetic_stats(n_samples=3, n_layers=6), by="cot"))
        >>> t.columns[0]
        ('q', 'early')
    """
    index = _as_list(index)
    parts = [c for c in mad.columns if c not in index + ["module", "n_layers"]]
    other = [c for c in parts if c not in ("early", "middle", "late", "all")]
    if other:
        raise InputError(f"pivot_mad: columns {other} are neither index nor MAD groups")
    wide = mad.pivot_table(index=index, columns="module", values=parts, sort=False)
    wide = wide.swaplevel(0, 1, axis=1)
    mods = _value_order(mad["module"].unique(), "module")
    wide = wide.reindex(columns=pd.MultiIndex.from_product([mods, parts]))
    idx_order = _sort_groups(mad[index].drop_duplicates(), index)
    wide = wide.reindex(
        pd.MultiIndex.from_frame(idx_order) if len(index) > 1 else idx_order[index[0]]
    )
    return wide


# --------------------------------------------------------------------------- relative difference


@dataclass
class RelativeDifference:
    """The authors' averaged relative difference between two curves.

    Example:
        >>> relative_difference([1.0, 2.0], [2.0, 2.0]).mean
        0.5

    Attributes:
        mean: ``mean(|a - b| / |a|)`` over layers (``a == 0`` replaced by 1e-10).
        top5_layers: the (up to) five layers with the largest per-layer value, largest
            first (ties: the later layer first).
        top5_mean: mean of the per-layer value over those layers.
        per_layer: per-layer ``|a - b| / |a|``.
    """

    mean: float
    top5_layers: list[int]
    top5_mean: float
    per_layer: np.ndarray = field(repr=False)


def _guard(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a[a == 0] = 1e-10
    return a


def relative_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    layers: Sequence[int] | None = None,
) -> RelativeDifference:
    """The authors' relative difference of curve ``b`` to reference curve ``a``.

    ``rd_l = |a_l - b_l| / |a_l|`` with ``a_l = 0`` replaced by ``1e-10``; the result
    holds its mean over layers and the top-5 layers.

    Args:
        a: reference curve (e.g. correct responses).
        b: compared curve (e.g. irrelevant responses), same length.
        layers: layer numbers of the entries (default ``0..L-1``).

    Example:
        >>> r = relative_difference([1.0, 2.0, 4.0], [1.5, 2.0, 2.0])
        >>> r.mean, r.top5_layers
        (0.3333333333333333, [2, 0, 1])
    """
    a_ = np.asarray(a, dtype=float)
    b_ = np.asarray(b, dtype=float)
    if a_.shape != b_.shape:
        raise InputError(f"curves differ in length: {a_.shape} vs {b_.shape}")
    rd = np.abs(a_ - b_) / np.abs(_guard(a_))
    lay = np.arange(len(rd)) if layers is None else np.asarray(list(layers))
    top = np.argsort(rd, kind="stable")[-5:][::-1]
    return RelativeDifference(
        mean=float(np.mean(rd)) if rd.size else float("nan"),
        top5_layers=[int(lay[i]) for i in top],
        top5_mean=float(np.mean(rd[top])) if rd.size else float("nan"),
        per_layer=rd,
    )


def signed_relative_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Per-layer signed relative difference ``(b - a) / |a|`` (``a == 0`` → 1e-10).

    Example:
        >>> signed_relative_difference([2.0, 4.0], [3.0, 2.0]).tolist()
        [0.5, -0.5]
    """
    a_ = np.asarray(a, dtype=float)
    b_ = np.asarray(b, dtype=float)
    return (b_ - a_) / np.abs(_guard(a_))


def _paired_curves(
    df: pd.DataFrame,
    metric: str,
    compare: str,
    a: Any,
    b: Any,
    by: list[str],
    modules: Sequence[str] | None,
    layers: Any,
    where: Mapping[str, Any] | None,
) -> list[tuple[tuple, pd.Series, pd.Series]]:
    """[(group key + module, curve a, curve b)] aligned on common layers."""
    curves = layer_curves(
        df, metric, by + [compare], modules=modules, layers=layers, where=where, n_boot=0
    )
    out = []
    if curves.empty:
        return out
    for key, g in curves.groupby(by + ["module"], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        ca = g[g[compare] == a].set_index("layer")["mean"].sort_index()
        cb = g[g[compare] == b].set_index("layer")["mean"].sort_index()
        if ca.empty or cb.empty:
            continue
        common = ca.index.intersection(cb.index)
        if len(common) < max(len(ca), len(cb)):
            logger.warning(
                "%s: curves have different layers; using the %d common ones", key, len(common)
            )
        out.append((key, ca.loc[common], cb.loc[common]))
    return out


def relative_difference_table(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    compare: str = "correct",
    a: Any = True,
    b: Any = False,
    by: str | Sequence[str] | None = ("dataset", "cot"),
    *,
    modules: Sequence[str] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    where: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Authors' relative difference between the mean curves of ``compare == a`` and ``== b``.

    Args:
        df: statistics table.
        metric: see :func:`metric_values`.
        compare: the column whose two values are compared (``correct``, ``model``...).
        a: reference value (denominator), e.g. ``True`` (correct responses).
        b: compared value, e.g. ``False`` (irrelevant responses).
        by: grouping columns (one comparison per group and module).
        modules, layers, where: see :func:`layer_curves`.

    Returns:
        DataFrame ``*by, module, rd_mean, rd_top5_mean, top5_layers, mean_a, mean_b,
        n_layers`` (``mean_a``/``mean_b``: curve means over layers).

    Example:
        >>> t = relative_difference_table(synthetic_stats(n_samples=5, n_layers=6), by="cot")
        >>> t.groupby("cot", sort=False)["rd_mean"].mean().idxmax()
        'detailed'
    """
    by = _as_list(by)
    rows = []
    for key, ca, cb in _paired_curves(df, metric, compare, a, b, by, modules, layers, where):
        r = relative_difference(ca.to_numpy(), cb.to_numpy(), ca.index)
        row = dict(zip(by + ["module"], key, strict=True))
        row.update(
            rd_mean=r.mean,
            rd_top5_mean=r.top5_mean,
            top5_layers=r.top5_layers,
            mean_a=float(ca.mean()),
            mean_b=float(cb.mean()),
            n_layers=len(ca),
        )
        rows.append(row)
    cols = by + ["module", "rd_mean", "rd_top5_mean", "top5_layers", "mean_a", "mean_b", "n_layers"]
    if not rows:
        logger.warning("relative_difference_table: no group has both %s=%r and %r", compare, a, b)
        return pd.DataFrame(columns=cols)
    return _sort_groups(pd.DataFrame(rows)[cols], by + ["module"])


def relative_difference_curves(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    compare: str = "correct",
    a: Any = True,
    b: Any = False,
    by: str | Sequence[str] | None = ("dataset", "cot"),
    *,
    modules: Sequence[str] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    where: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Per-layer relative differences of the ``b`` curve to the ``a`` curve.

    Returns:
        Long DataFrame ``*by, module, layer, a, b, rd_signed, rd_abs`` with
        ``rd_signed = (b - a) / |a|`` and ``rd_abs = |b - a| / |a|``.

    Example:
        >>> c = relative_difference_curves(synthetic_stats(n_samples=3, n_layers=4), by="cot")
        >>> list(c.columns[-4:])
        ['a', 'b', 'rd_signed', 'rd_abs']
    """
    by = _as_list(by)
    parts = []
    for key, ca, cb in _paired_curves(df, metric, compare, a, b, by, modules, layers, where):
        s = signed_relative_difference(ca.to_numpy(), cb.to_numpy())
        part = pd.DataFrame(
            {
                "layer": ca.index.astype(int),
                "a": ca.to_numpy(),
                "b": cb.to_numpy(),
                "rd_signed": s,
                "rd_abs": np.abs(s),
            }
        )
        for i, (col, val) in enumerate(zip(by + ["module"], key, strict=True)):
            part.insert(i, col, val)
        parts.append(part)
    cols = by + ["module", "layer", "a", "b", "rd_signed", "rd_abs"]
    if not parts:
        return pd.DataFrame(columns=cols)
    return _sort_groups(pd.concat(parts, ignore_index=True)[cols], by + ["module", "layer"])


# --------------------------------------------------------------------------- per-example values & length control


def per_example(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    *,
    modules: Sequence[str] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    where: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per example × module: the metric averaged over the selected layers.

    Returns:
        DataFrame with the example key columns, ``module``, ``value`` and the
        per-example columns present (``loss``, ``n_prompt_tokens``,
        ``n_response_tokens``, ``truncated``).

    Example:
        >>> e = per_example(synthetic_stats(n_samples=2, n_layers=3), modules=["q"])
        >>> len(e) == e["sample_id"].nunique()
        True
    """
    d = _prepare(df, metric, modules, layers, where)
    keys = example_key_columns(d)
    extra = [
        c for c in ("loss", "n_prompt_tokens", "n_response_tokens", "truncated") if c in d.columns
    ]
    agg: dict[str, Any] = {"_value": "mean"}
    agg.update({c: "first" for c in extra})
    out = d.groupby(keys + ["module"], dropna=False, sort=False).agg(agg).reset_index()
    return out.rename(columns={"_value": "value"})


def _rank(x: np.ndarray) -> np.ndarray:
    return pd.Series(x).rank(method="average").to_numpy(dtype=float)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def spearman(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Spearman rank correlation with an approximate two-sided p-value.

    The p-value uses Fisher's z with the variance ``1.06 / (n - 3)`` (Fieller et al.),
    a normal approximation that is fine for n ≳ 10 (NaN for n < 4). NaN pairs dropped.

    Example:
        >>> rho, p = spearman([1, 2, 3, 4, 5], [2, 4, 5, 9, 10])
        >>> round(rho, 6)
        1.0
    """
    x_ = np.asarray(x, dtype=float)
    y_ = np.asarray(y, dtype=float)
    ok = ~(np.isnan(x_) | np.isnan(y_))
    x_, y_ = x_[ok], y_[ok]
    rho = _pearson(_rank(x_), _rank(y_))
    n = len(x_)
    if n < 4 or math.isnan(rho):
        return rho, float("nan")
    if abs(rho) >= 1.0:
        return rho, 0.0
    z = math.atanh(rho) * math.sqrt((n - 3) / 1.06)
    return rho, math.erfc(abs(z) / math.sqrt(2.0))


def length_association(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    by: str | Sequence[str] | None = ("dataset", "cot", "correct"),
    *,
    modules: Sequence[str] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    where: Mapping[str, Any] | None = None,
    length_col: str = "n_response_tokens",
    log_length: bool = False,
) -> pd.DataFrame:
    """Association of a per-example statistic with response length, per group × module.

    The per-example statistic is the metric averaged over the selected layers
    (:func:`per_example`); it is regressed on the length (least squares) and
    rank-correlated with it.

    Args:
        df: statistics table.
        metric: see :func:`metric_values`.
        by: grouping columns; use ``by=["dataset"]`` to pool the cot levels and see
            how much of the fast/slow difference length alone explains.
        modules, layers, where: see :func:`layer_curves`.
        length_col: the length column.
        log_length: regress on ``log(length)`` instead of length.

    Returns:
        DataFrame ``*by, module, n, slope, intercept, pearson_r, spearman_rho,
        spearman_p, length_min, length_median, length_max`` (slope in metric units per
        token, or per unit of log-length).

    Example:
        >>> a = length_association(synthetic_stats(n_samples=10, n_layers=3), by="cot")
        >>> {"slope", "spearman_rho"} <= set(a.columns)
        True
    """
    by = _as_list(by)
    ex = per_example(df, metric, modules=modules, layers=layers, where=where)
    _check_columns(ex, by + [length_col])
    rows = []
    for key, g in ex.groupby(by + ["module"], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        x = g[length_col].to_numpy(dtype=float)
        y = g["value"].to_numpy(dtype=float)
        ok = ~(np.isnan(x) | np.isnan(y))
        x, y = x[ok], y[ok]
        xl = np.log(np.maximum(x, 1e-12)) if log_length else x
        if len(x) >= 2 and np.std(xl) > 0:
            slope, intercept = np.polyfit(xl, y, 1)
        else:
            slope = intercept = float("nan")
        rho, p = spearman(x, y)
        row = dict(zip(by + ["module"], key, strict=True))
        row.update(
            n=len(x),
            slope=float(slope),
            intercept=float(intercept),
            pearson_r=_pearson(xl, y),
            spearman_rho=rho,
            spearman_p=p,
            length_min=float(np.min(x)) if len(x) else np.nan,
            length_median=float(np.median(x)) if len(x) else np.nan,
            length_max=float(np.max(x)) if len(x) else np.nan,
        )
        rows.append(row)
    cols = by + [
        "module",
        "n",
        "slope",
        "intercept",
        "pearson_r",
        "spearman_rho",
        "spearman_p",
        "length_min",
        "length_median",
        "length_max",
    ]
    if not rows:
        return pd.DataFrame(columns=cols)
    return _sort_groups(pd.DataFrame(rows)[cols], by + ["module"])


def _example_lengths(d: pd.DataFrame, length_col: str) -> pd.DataFrame:
    keys = example_key_columns(d)
    _check_columns(d, [length_col])
    return d.groupby(keys, dropna=False, sort=True)[length_col].first().reset_index()


def match_by_length(
    df: pd.DataFrame,
    group_col: str = "cot",
    a: Any = "none",
    b: Any = "detailed",
    *,
    within: Sequence[str] | None = None,
    method: str = "nearest",
    tol: float | None = 0.1,
    abs_tol: float | None = None,
    n_bins: int = 5,
    seed: int = 0,
    length_col: str = "n_response_tokens",
    where: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Pairs of examples of group ``a`` and group ``b`` with similar response length.

    Matching is done separately inside each stratum of ``within`` (default: every
    example-key column present besides ``group_col`` and ``sample_id``, e.g.
    ``model, dataset, correct``), so a pair never mixes datasets, models or
    correctness.

    Methods:
        ``"nearest"``: greedy nearest-neighbour matching *without replacement*. All
        (a, b) pairs within the tolerance are sorted by ``|len_a - len_b|`` (ties by
        the examples' sorted order) and accepted in that order when neither example
        is already used. A pair is within tolerance when
        ``|len_a - len_b| <= tol * max(len_a, len_b)`` (if ``tol`` is not None) and
        ``|len_a - len_b| <= abs_tol`` (if ``abs_tol`` is not None).
        ``"bins"``: the pooled lengths of a and b in the stratum are cut into
        ``n_bins`` quantile bins; in each bin the larger group is subsampled (seeded)
        to the size of the smaller and both are paired in length order. Tolerances
        are not applied.

    Args:
        df: statistics table (or any table with the example key and length columns).
        group_col: the column defining the two groups.
        a, b: its two values.
        within: strata columns (see above).
        method: ``"nearest"`` or ``"bins"``.
        tol: relative tolerance (nearest only).
        abs_tol: absolute tolerance in tokens (nearest only).
        n_bins: quantile bins (bins only).
        seed: subsampling seed (bins only).
        length_col: the length column.
        where: row filter.

    Returns:
        DataFrame ``*within, sample_id_a, sample_id_b, length_a, length_b, abs_diff,
        rel_diff, bin`` (``bin`` is -1 for the nearest method). Empty when no pair
        qualifies (a warning is logged).

    Example:
        >>> t = pd.DataFrame({"sample_id": list("abcdef"), "layer": 0, "module": "q",
        ...     "cot": ["none"] * 3 + ["detailed"] * 3, "n_response_tokens": [10, 50, 100, 11, 300, 98]})
        >>> match_by_length(t)[["sample_id_a", "sample_id_b"]].values.tolist()
        [['a', 'd'], ['c', 'f']]
    """
    if method not in ("nearest", "bins"):
        raise InputError(f"method must be 'nearest' or 'bins', got {method!r}", field="method")
    d = filter_table(df, where)
    _check_columns(d, ["sample_id", group_col, length_col])
    lengths = _example_lengths(d, length_col)
    if within is None:
        within = [c for c in example_key_columns(d, exclude=[group_col]) if c != "sample_id"]
    within = list(within)
    cols = within + [
        "sample_id_a",
        "sample_id_b",
        "length_a",
        "length_b",
        "abs_diff",
        "rel_diff",
        "bin",
    ]
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    strata = lengths.groupby(within, dropna=False, sort=True) if within else [((), lengths)]
    for skey, g in strata:
        skey = skey if isinstance(skey, tuple) else (skey,)
        ga = g[g[group_col] == a].sort_values(["sample_id"]).reset_index(drop=True)
        gb = g[g[group_col] == b].sort_values(["sample_id"]).reset_index(drop=True)
        if ga.empty or gb.empty:
            continue
        la = ga[length_col].to_numpy(dtype=float)
        lb = gb[length_col].to_numpy(dtype=float)
        pairs: list[tuple[int, int, int]] = []
        if method == "nearest":
            dist = np.abs(la[:, None] - lb[None, :])
            ok = np.ones_like(dist, dtype=bool)
            if tol is not None:
                ok &= dist <= tol * np.maximum(la[:, None], lb[None, :])
            if abs_tol is not None:
                ok &= dist <= abs_tol
            ia, ib = np.nonzero(ok)
            order = np.lexsort((ib, ia, dist[ia, ib]))
            used_a: set[int] = set()
            used_b: set[int] = set()
            for k in order:
                i, j = int(ia[k]), int(ib[k])
                if i in used_a or j in used_b:
                    continue
                used_a.add(i)
                used_b.add(j)
                pairs.append((i, j, -1))
        else:
            pooled = np.concatenate([la, lb])
            edges = np.unique(np.quantile(pooled, np.linspace(0, 1, n_bins + 1)))
            bin_a = np.clip(np.searchsorted(edges, la, side="right") - 1, 0, max(len(edges) - 2, 0))
            bin_b = np.clip(np.searchsorted(edges, lb, side="right") - 1, 0, max(len(edges) - 2, 0))
            for bi in np.unique(np.concatenate([bin_a, bin_b])):
                ia = np.nonzero(bin_a == bi)[0]
                ib = np.nonzero(bin_b == bi)[0]
                k = min(len(ia), len(ib))
                if k == 0:
                    continue
                if len(ia) > k:
                    ia = np.sort(rng.choice(ia, size=k, replace=False))
                if len(ib) > k:
                    ib = np.sort(rng.choice(ib, size=k, replace=False))
                ia = ia[np.argsort(la[ia], kind="stable")]
                ib = ib[np.argsort(lb[ib], kind="stable")]
                pairs.extend((int(i), int(j), int(bi)) for i, j in zip(ia, ib, strict=True))
        for i, j, bi in pairs:
            row = dict(zip(within, skey, strict=True))
            x, y = la[i], lb[j]
            row.update(
                sample_id_a=ga.loc[i, "sample_id"],
                sample_id_b=gb.loc[j, "sample_id"],
                length_a=x,
                length_b=y,
                abs_diff=abs(x - y),
                rel_diff=abs(x - y) / max(x, y) if max(x, y) > 0 else 0.0,
                bin=bi,
            )
            out.append(row)
    if not out:
        logger.warning("match_by_length: no %s=%r / %r pairs within tolerance", group_col, a, b)
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(out)[cols]


def length_matched_comparison(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    group_col: str = "cot",
    a: Any = "none",
    b: Any = "detailed",
    *,
    modules: Sequence[str] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    where: Mapping[str, Any] | None = None,
    pairs: pd.DataFrame | None = None,
    **match_kwargs: Any,
) -> pd.DataFrame:
    """Compare groups ``a`` and ``b`` on length-matched examples only.

    Args:
        df: statistics table.
        metric: see :func:`metric_values`.
        group_col, a, b: the two groups (see :func:`match_by_length`).
        modules, layers, where: see :func:`layer_curves`.
        pairs: precomputed :func:`match_by_length` result (else computed here with
            ``match_kwargs``).
        **match_kwargs: passed to :func:`match_by_length` (``method``, ``tol``, ...).

    Returns:
        One row per module: ``n_pairs, length_a, length_b`` (medians over matched
        examples), ``mean_a, mean_b`` (metric over matched examples and layers),
        ``rel_diff = (mean_b - mean_a) / |mean_a|``, ``frac_b_lt_a`` (share of pairs
        whose b value is below its a value), ``mad_a, mad_b`` (MAD over all layers of
        the matched mean curves) and ``mean_a_all, mean_b_all`` (unmatched, for
        context).

    Example:
        >>> df = synthetic_stats(n_samples=20, n_layers=4, overlap_lengths=True)
        >>> c = length_matched_comparison(df, where={"correct": True}, tol=0.25)
        >>> bool((c["n_pairs"] > 0).all())
        True
    """
    d = filter_table(df, where)
    if pairs is None:
        pairs = match_by_length(d, group_col, a, b, **match_kwargs)
    within = [
        c
        for c in pairs.columns
        if c
        not in ("sample_id_a", "sample_id_b", "length_a", "length_b", "abs_diff", "rel_diff", "bin")
    ]
    cols = [
        "module",
        "n_pairs",
        "length_a",
        "length_b",
        "mean_a",
        "mean_b",
        "rel_diff",
        "frac_b_lt_a",
        "mad_a",
        "mad_b",
        "mean_a_all",
        "mean_b_all",
    ]
    ex = per_example(d, metric, modules=modules, layers=layers)
    full = {g: ex[ex[group_col] == g].groupby("module")["value"].mean() for g in (a, b)}
    if pairs.empty:
        mods = _value_order(ex["module"].unique(), "module")
        return pd.DataFrame(
            [
                {
                    "module": m,
                    "n_pairs": 0,
                    "mean_a_all": full[a].get(m, np.nan),
                    "mean_b_all": full[b].get(m, np.nan),
                }
                for m in mods
            ],
            columns=cols,
        )
    link_a = pairs[within + ["sample_id_a"]].rename(columns={"sample_id_a": "sample_id"})
    link_b = pairs[within + ["sample_id_b"]].rename(columns={"sample_id_b": "sample_id"})
    link_a = link_a.assign(_pair=np.arange(len(pairs)), **{group_col: a})
    link_b = link_b.assign(_pair=np.arange(len(pairs)), **{group_col: b})
    on = within + ["sample_id", group_col]
    ea = ex.merge(link_a, on=on, how="inner")
    eb = ex.merge(link_b, on=on, how="inner")
    both = ea.merge(eb[["module", "_pair", "value"]], on=["module", "_pair"], suffixes=("_a", "_b"))
    rows_a = d.merge(link_a[on], on=on, how="inner")
    rows_b = d.merge(link_b[on], on=on, how="inner")
    mad_a = mad_table(rows_a, metric, by=None, modules=modules, layers=layers).set_index("module")[
        "all"
    ]
    mad_b = mad_table(rows_b, metric, by=None, modules=modules, layers=layers).set_index("module")[
        "all"
    ]
    rows = []
    for m, g in both.groupby("module", sort=False):
        ma, mb = float(g["value_a"].mean()), float(g["value_b"].mean())
        rows.append(
            {
                "module": m,
                "n_pairs": len(g),
                "length_a": float(pairs["length_a"].median()),
                "length_b": float(pairs["length_b"].median()),
                "mean_a": ma,
                "mean_b": mb,
                "rel_diff": (mb - ma) / abs(ma) if ma != 0 else np.nan,
                "frac_b_lt_a": float((g["value_b"] < g["value_a"]).mean()),
                "mad_a": float(mad_a.get(m, np.nan)),
                "mad_b": float(mad_b.get(m, np.nan)),
                "mean_a_all": float(full[a].get(m, np.nan)),
                "mean_b_all": float(full[b].get(m, np.nan)),
            }
        )
    return _sort_groups(pd.DataFrame(rows)[cols], ["module"])


# --------------------------------------------------------------------------- LaTeX


def to_latex(
    df: pd.DataFrame,
    path: str | Path | None = None,
    *,
    caption: str | None = None,
    label: str | None = None,
    precision: int = 3,
    index: bool = False,
    na_rep: str = "--",
) -> str:
    """Render a table as a booktabs LaTeX ``table``/``tabular`` (and write it to ``path``).

    Cell values and column headers are LaTeX-escaped (``rd_mean`` → ``rd\\_mean``);
    the caption is written as given, so it may contain LaTeX. Uses pandas'
    ``Styler.to_latex`` (needs jinja2).

    Args:
        df: the table; MultiIndex columns (e.g. :func:`pivot_mad`) are supported.
        path: file to write (parents created); None to only return the string.
        caption: table caption.
        label: LaTeX label, e.g. ``"tab:mad"``.
        precision: decimals of floats.
        index: include the index (always included for MultiIndex columns tables made
            by :func:`pivot_mad`, whose index holds the row labels).
        na_rep: text of missing values.

    Returns:
        The LaTeX source.

    Example:
        >>> s = to_latex(pd.DataFrame({"cot": ["none"], "rd_mean": [0.12345]}), caption="RD")
        >>> "\\\\begin{tabular}" in s and "0.123" in s and "rd\\\\_mean" in s
        True
    """
    styler = df.style.format(precision=precision, escape="latex", na_rep=na_rep)
    styler = styler.format_index(escape="latex", axis=1)
    keep_index = index or isinstance(df.columns, pd.MultiIndex)
    if keep_index:
        styler = styler.format_index(escape="latex", axis=0)
    else:
        styler = styler.hide(axis="index")
    tex = styler.to_latex(
        caption=caption,
        label=label,
        hrules=True,
        position_float="centering",
        multicol_align="c",
        environment="table",
    )
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(tex, encoding="utf-8")
        logger.info("wrote %s", p)
    return tex


# --------------------------------------------------------------------------- findings


@dataclass
class Finding:
    """One claim of the paper tested on a table.

    Example:
        >>> Finding("Detailed CoT is flatter", "MAD 3.1 vs 0.2", True).supported
        True

    Attributes:
        claim: the claim, phrased as in the paper.
        measured: the key numbers measured (a short string or one float).
        supported: True/False from the numbers; None when it could not be measured.
        detail: how it was measured and the per-module numbers.
    """

    claim: str
    measured: str | float
    supported: bool | None
    detail: str = ""


def findings_table(findings: Iterable[Finding]) -> pd.DataFrame:
    """Findings as a DataFrame with columns claim, measured, supported, detail.

    Example:
        >>> findings_table([Finding("x", 1.0, True, "d")]).columns.tolist()
        ['claim', 'measured', 'supported', 'detail']
    """
    rows = [asdict(f) for f in findings]
    t = pd.DataFrame(rows, columns=["claim", "measured", "supported", "detail"])
    t["supported"] = t["supported"].astype(object)
    t["measured"] = t["measured"].astype(object)
    return t


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _curve_summary(
    df: pd.DataFrame, metric: str, by: list[str], modules: Sequence[str] | None
) -> pd.DataFrame:
    """Per (by, module): mean over layers of the mean curve and its MAD (all layers)."""
    curves = layer_curves(df, metric, by, modules=modules, n_boot=0)
    rows = []
    for key, vals in curve_dict(curves, by).items():
        row = dict(zip(by + ["module"], key, strict=True))
        row.update(
            level=float(np.mean(vals)) if len(vals) else np.nan, mad=mean_absolute_difference(vals)
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=by + ["module", "level", "mad"])


def _with_correct(
    df: pd.DataFrame, where: Mapping[str, Any] | None, correct: bool | None
) -> dict[str, Any]:
    """``where`` plus ``correct: correct`` when df has that column (where's own wins)."""
    w = dict(where or {})
    if correct is not None and "correct" in df.columns:
        w.setdefault("correct", correct)
    return w


def claim_flatter_with_cot(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    a: str = "none",
    b: str = "detailed",
    *,
    column: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
    correct: bool | None = True,
    where: Mapping[str, Any] | None = None,
) -> Finding:
    """Slow thinking (``b``) gives smaller and flatter layer curves than fast thinking (``a``).

    Paper: "fast thinking without CoT leads to larger gradients and larger differences
    of gradients across layers than slow thinking (Detailed CoT)". Measured on the
    mean curves (over examples) per module: *level* = mean over layers, *MAD* = mean
    absolute difference of adjacent layers. Supported iff the module-averaged level
    and the module-averaged MAD of ``b`` are both below those of ``a``; the detail
    reports how many modules agree individually.

    Args:
        df: statistics table.
        metric: see :func:`metric_values`.
        a: fast-thinking value of ``column`` (default ``"none"``).
        b: slow-thinking value (default ``"detailed"``).
        column: the column holding the response type.
        modules: modules to use (default Q, K, V, O; None = all present).
        correct: keep only rows with this ``correct`` value (None: no filter); the
            paper's main comparison uses correct responses.
        where: extra row filter (e.g. ``{"dataset": "gsm8k"}``).

    Example:
        >>> f = claim_flatter_with_cot(synthetic_stats(n_samples=8, n_layers=6))
        >>> f.supported
        True
    """
    claim = (
        f"Slow thinking ({column}={b}) gives smaller gradients ({metric_label(metric)}) and "
        f"smaller differences across layers (MAD) than fast thinking ({column}={a})"
    )
    d = filter_table(df, _with_correct(df, where, correct))
    d = d[d[column].isin([a, b])] if column in d.columns else d.iloc[0:0]
    if d.empty or d[column].nunique() < 2:
        return Finding(claim, "n/a", None, f"no rows for both {column}={a!r} and {column}={b!r}")
    s = _curve_summary(d, metric, [column], modules)
    pa = s[s[column] == a].set_index("module")
    pb = s[s[column] == b].set_index("module")
    mods = [m for m in pa.index if m in pb.index]
    if not mods:
        return Finding(claim, "n/a", None, f"no module with both {column}={a!r} and {b!r}")
    la, lb = pa.loc[mods, "level"].mean(), pb.loc[mods, "level"].mean()
    ma, mb = pa.loc[mods, "mad"].mean(), pb.loc[mods, "mad"].mean()
    smaller = bool(lb < la)
    flatter = bool(mb < ma)
    agree = sum(
        bool(pb.loc[m, "level"] < pa.loc[m, "level"] and pb.loc[m, "mad"] < pa.loc[m, "mad"])
        for m in mods
    )
    per = "; ".join(
        f"{m}: level {_fmt(pa.loc[m, 'level'])}→{_fmt(pb.loc[m, 'level'])}, "
        f"MAD {_fmt(pa.loc[m, 'mad'])}→{_fmt(pb.loc[m, 'mad'])}"
        for m in mods
    )
    measured = f"level {a}={_fmt(la)} vs {b}={_fmt(lb)}; MAD {a}={_fmt(ma)} vs {b}={_fmt(mb)}"
    detail = (
        f"module-averaged mean-curve level and MAD (all layers); smaller={smaller}, "
        f"flatter={flatter}; {agree}/{len(mods)} modules both smaller and flatter. {per}"
    )
    return Finding(claim, measured, smaller and flatter, detail)


def _rd_by(
    d: pd.DataFrame, metric: str, level_col: str, modules: Sequence[str] | None
) -> pd.Series:
    """Module-averaged authors' RD (correct=a, irrelevant=b) per value of ``level_col``."""
    t = relative_difference_table(
        d, metric, "correct", True, False, by=[level_col], modules=modules
    )
    if t.empty:
        return pd.Series(dtype=float)
    return t.groupby(level_col, sort=False)["rd_mean"].mean()


def claim_correct_vs_irrelevant(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    slow: str = "detailed",
    *,
    column: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
    margin: float = 1.5,
    where: Mapping[str, Any] | None = None,
) -> Finding:
    """Only slow thinking's gradients distinguish correct from irrelevant responses.

    Paper: "the gradients of slow thinking can distinguish correct and irrelevant
    reasoning paths"; "without CoT, the gradient patterns of the two types of
    responses are similar". For every value of ``column`` the authors' relative
    difference ``mean_l |c_l - i_l| / |c_l|`` between the mean curves of correct
    (``c``) and irrelevant (``i``) responses is averaged over modules. Supported iff
    the RD of ``slow`` is at least ``margin`` times the RD of every other level.

    Args:
        df: statistics table with a boolean ``correct`` column.
        metric: see :func:`metric_values`.
        slow: the slow-thinking value of ``column``.
        column: column of the response type.
        modules: modules to use (None = all present).
        margin: required factor between the slow RD and each faster RD.
        where: extra row filter.

    Example:
        >>> f = claim_correct_vs_irrelevant(synthetic_stats(n_samples=8, n_layers=6))
        >>> f.supported
        True
    """
    claim = (
        f"Only with slow thinking ({column}={slow}) do the gradients of correct and irrelevant "
        f"responses differ clearly (relative difference ≥ {margin}× every other {column})"
    )
    d = filter_table(df, where)
    if "correct" not in d.columns or column not in d.columns:
        return Finding(claim, "n/a", None, f"table lacks 'correct' or {column!r}")
    rd = _rd_by(d, metric, column, modules)
    if slow not in rd.index or len(rd) < 2:
        return Finding(
            claim,
            "n/a",
            None,
            f"need correct and irrelevant rows for {column}={slow!r} and another level; RD={rd.to_dict()}",
        )
    others = rd.drop(index=slow)
    ok = bool((rd[slow] >= margin * others).all())
    order = _value_order(rd.index, column)
    measured = "; ".join(f"RD[{k}]={_fmt(rd[k])}" for k in order)
    detail = (
        f"authors' averaged relative difference |correct-irrelevant|/|correct| of the mean "
        f"curves ({metric}), averaged over modules; slow/other ratios: "
        + ", ".join(
            f"{k}: {_fmt(rd[slow] / others[k]) if others[k] else 'inf'}" for k in others.index
        )
    )
    return Finding(claim, measured, ok, detail)


def claim_length_not_enough(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    *,
    by: str = "dataset",
    levels: Sequence[Any] | None = None,
    modules: Sequence[str] | None = ATTN_MODULES,
    margin: float = 1.5,
    reference_rd: float | None = None,
    where: Mapping[str, Any] | None = None,
) -> Finding:
    """On knowledge data (wiki), longer responses do not reproduce the slow-thinking pattern.

    Paper: on "non-reasoning knowledge learning tasks ... trivially increasing the
    response length does not lead to similar behaviors of slow thinking". The
    slow-thinking behaviour tested is the one that distinguishes it on reasoning
    data: correct and irrelevant responses become distinguishable. The ``by`` groups
    (e.g. wiki length variants) are ordered by ``levels`` or, by default, by their
    median response length; the authors' relative difference (RD) between correct
    and irrelevant mean curves, averaged over modules, is measured per group.
    Supported iff RD of the longest group is *below* ``margin`` × RD of the shortest
    (length does not open the gap), and, when ``reference_rd`` (e.g. RD of detailed
    CoT on reasoning data) is given, also below ``reference_rd / margin``. Mean level
    and MAD per group are reported in the detail for context.

    Args:
        df: statistics table of the knowledge task (with ``correct``).
        metric: see :func:`metric_values`.
        by: column of the length variants.
        levels: those values from short to long (default: by median length of the
            correct responses). For lgkit's wiki data pass the popular sets, e.g.
            ``["wiki_popular_100", "wiki_popular_500", "wiki_popular_1000"]``: the
            long-tail set differs in popularity, not only in length.
        modules: modules to use.
        margin: factor that would count as "the gap opened".
        reference_rd: optional RD of slow thinking on reasoning data.
        where: extra row filter.

    Example:
        >>> df = synthetic_stats(n_samples=8, n_layers=6, datasets=("wiki",), cots=("none",))
        >>> df["dataset"] = df["n_response_tokens"].map(lambda n: "long" if n > 8 else "short")
        >>> claim_length_not_enough(df).supported
        True
    """
    claim = (
        "Longer responses on knowledge data do not reproduce slow thinking: correct and "
        "irrelevant responses stay about as similar as with short responses"
    )
    d = filter_table(df, where)
    if "correct" not in d.columns or by not in d.columns:
        return Finding(claim, "n/a", None, f"table lacks 'correct' or {by!r}")
    if levels is None:
        if "n_response_tokens" not in d.columns:
            return Finding(claim, "n/a", None, "no levels given and no n_response_tokens column")
        ex = d[d["correct"] == True].drop_duplicates(example_key_columns(d) + [by])  # noqa: E712
        levels = list(ex.groupby(by)["n_response_tokens"].median().sort_values(kind="stable").index)
    levels = [lv for lv in levels if lv in set(d[by])]
    if len(levels) < 2:
        return Finding(claim, "n/a", None, f"need ≥2 {by} levels, got {levels}")
    rd = _rd_by(d[d[by].isin(levels)], metric, by, modules)
    short, long_ = levels[0], levels[-1]
    if short not in rd.index or long_ not in rd.index:
        return Finding(
            claim, "n/a", None, f"need correct and irrelevant rows at {short!r} and {long_!r}"
        )
    ok = bool(rd[long_] < margin * rd[short])
    if reference_rd is not None:
        ok = ok and bool(rd[long_] < reference_rd / margin)
    s = _curve_summary(filter_table(d, {"correct": True}), metric, [by], modules)
    summ = s.groupby(by)[["level", "mad"]].mean()
    measured = "; ".join(f"RD[{lv}]={_fmt(rd.get(lv, np.nan))}" for lv in levels)
    if reference_rd is not None:
        measured += f"; reference RD={_fmt(reference_rd)}"
    detail = (
        f"RD = authors' |correct-irrelevant|/|correct| of mean {metric} curves, module-averaged; "
        f"levels short→long {levels}; criterion RD[long] < {margin}×RD[short]"
        + (f" and < reference/{margin}" if reference_rd is not None else "")
        + ". Correct-response level/MAD: "
        + ", ".join(
            f"{lv}: {_fmt(summ.loc[lv, 'level'])}/{_fmt(summ.loc[lv, 'mad'])}"
            for lv in levels
            if lv in summ.index
        )
    )
    return Finding(claim, measured, ok, detail)


def claim_base_vs_instruct(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    base: str | None = None,
    instruct: str | None = None,
    *,
    model_col: str = "model",
    fast: str = "none",
    slow: str = "detailed",
    column: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
    correct: bool | None = True,
    criterion: str = "both",
    where: Mapping[str, Any] | None = None,
) -> Finding:
    """Pre-trained (base) LLMs are less affected by the instability of fast thinking.

    Paper (abstract): "pre-trained LLMs are less affected by the instability of fast
    thinking than instruction-tuned LLMs". For each model the fast/slow ratios of
    the module-averaged mean-curve level and MAD are computed
    (``level[fast] / level[slow]``, ``MAD[fast] / MAD[slow]``). Supported iff the
    instruct model's ratio exceeds the base model's for the MAD, the level, or both
    (``criterion`` = ``"mad"``, ``"level"``, ``"both"``).

    Args:
        df: statistics table with a ``model_col`` column (two models).
        metric: see :func:`metric_values`.
        base, instruct: the two values of ``model_col`` (default: the two present,
            the one whose name contains "instruct"/"-it"/"chat" is the instruct one).
        model_col: the model column.
        fast, slow: values of ``column`` for fast and slow thinking.
        column: column of the response type.
        modules: modules to use.
        correct: ``correct`` filter (None: none).
        criterion: ``"both"``, ``"mad"`` or ``"level"``.
        where: extra row filter.

    Example:
        >>> df = pd.concat([synthetic_stats(n_samples=6, n_layers=6, model="m-base"),
        ...                 synthetic_stats(n_samples=6, n_layers=6, model="m-instruct",
        ...                                 fast_instability=2.0, scale=0.8)])
        >>> claim_base_vs_instruct(df, base="m-base", instruct="m-instruct").supported
        True
    """
    if criterion not in ("both", "mad", "level"):
        raise InputError(f"criterion must be both/mad/level, got {criterion!r}", field="criterion")
    claim = (
        "Pre-trained (base) LLMs are less affected by the instability of fast thinking "
        "than instruction-tuned LLMs"
    )
    if model_col not in df.columns:
        return Finding(claim, "n/a", None, f"table lacks {model_col!r}")
    models = list(dict.fromkeys(df[model_col].dropna()))
    if base is None or instruct is None:
        guess_i = [
            m for m in models if any(t in str(m).lower() for t in ("instruct", "-it", "chat"))
        ]
        if instruct is None and len(guess_i) == 1:
            instruct = guess_i[0]
        if base is None and instruct is not None:
            rest = [m for m in models if m != instruct]
            base = rest[0] if len(rest) == 1 else None
    if base is None or instruct is None:
        return Finding(claim, "n/a", None, f"cannot tell base from instruct among {models}")
    w = _with_correct(df, where, correct)
    w[model_col] = [base, instruct]
    w[column] = [fast, slow]
    d = filter_table(df, w)
    s = _curve_summary(d, metric, [model_col, column], modules)
    agg = s.groupby([model_col, column])[["level", "mad"]].mean()
    try:
        r = {
            m: (
                agg.loc[(m, fast), "level"] / agg.loc[(m, slow), "level"],
                agg.loc[(m, fast), "mad"] / agg.loc[(m, slow), "mad"],
            )
            for m in (base, instruct)
        }
    except KeyError:
        return Finding(
            claim, "n/a", None, f"need {fast} and {slow} rows for both {base} and {instruct}"
        )
    level_ok = bool(r[instruct][0] > r[base][0])
    mad_ok = bool(r[instruct][1] > r[base][1])
    ok = {"both": level_ok and mad_ok, "mad": mad_ok, "level": level_ok}[criterion]
    measured = (
        f"{fast}/{slow} level ratio base={_fmt(r[base][0])}, instruct={_fmt(r[instruct][0])}; "
        f"MAD ratio base={_fmt(r[base][1])}, instruct={_fmt(r[instruct][1])}"
    )
    detail = (
        f"module-averaged mean-curve level and MAD of {metric}; criterion={criterion}; "
        f"levels: "
        + ", ".join(
            f"{m}/{c}={_fmt(agg.loc[(m, c), 'level'])}"
            for m in (base, instruct)
            for c in (fast, slow)
        )
        + "; MADs: "
        + ", ".join(
            f"{m}/{c}={_fmt(agg.loc[(m, c), 'mad'])}"
            for m in (base, instruct)
            for c in (fast, slow)
        )
    )
    return Finding(claim, measured, ok, detail)


def claim_instruct_not_better_at_correctness(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    base: str | None = None,
    instruct: str | None = None,
    *,
    model_col: str = "model",
    slow: str = "detailed",
    column: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
    margin: float = 1.5,
    where: Mapping[str, Any] | None = None,
) -> Finding:
    """Instruction-tuned LLMs are not better than base LLMs at telling irrelevant responses.

    Paper (repository highlights): "The instruction-finetuned LLMs do not show
    superior capability over pre-trained base LLMs in identifying incorrect reasoning
    paths". Measured as the module-averaged authors' RD between correct and
    irrelevant mean curves under slow thinking, per model. Supported iff
    ``RD[instruct] < margin × RD[base]`` (the instruct model's separation is not
    clearly larger).

    Example:
        >>> df = pd.concat([synthetic_stats(n_samples=6, n_layers=6, model="m"),
        ...                 synthetic_stats(n_samples=6, n_layers=6, model="m-instruct", seed=1)])
        >>> claim_instruct_not_better_at_correctness(df).supported
        True
    """
    claim = (
        "Instruction-tuned LLMs do not separate correct from irrelevant responses better "
        "than pre-trained (base) LLMs"
    )
    if model_col not in df.columns or "correct" not in df.columns:
        return Finding(claim, "n/a", None, f"table lacks {model_col!r} or 'correct'")
    models = list(dict.fromkeys(df[model_col].dropna()))
    if instruct is None:
        g = [m for m in models if any(t in str(m).lower() for t in ("instruct", "-it", "chat"))]
        instruct = g[0] if len(g) == 1 else None
    if base is None and instruct is not None:
        rest = [m for m in models if m != instruct]
        base = rest[0] if len(rest) == 1 else None
    if base is None or instruct is None:
        return Finding(claim, "n/a", None, f"cannot tell base from instruct among {models}")
    w = dict(where or {})
    w[column] = slow
    w[model_col] = [base, instruct]
    rd = _rd_by(filter_table(df, w), metric, model_col, modules)
    if base not in rd.index or instruct not in rd.index:
        return Finding(
            claim, "n/a", None, f"need correct and irrelevant {slow} rows for both models"
        )
    ok = bool(rd[instruct] < margin * rd[base])
    measured = f"RD base={_fmt(rd[base])}, instruct={_fmt(rd[instruct])}"
    detail = (
        f"authors' RD |correct-irrelevant|/|correct| of mean {metric} curves at {column}={slow}, "
        f"module-averaged; criterion RD[instruct] < {margin}×RD[base]"
    )
    return Finding(claim, measured, ok, detail)


# --------------------------------------------------------------------------- synthetic table


def synthetic_stats(
    *,
    n_samples: int = 20,
    n_layers: int = 8,
    datasets: Sequence[str] = ("gsm8k", "aqua", "ecqa"),
    cots: Sequence[str] = COT_ORDER,
    modules: Sequence[str] = ATTN_MODULES,
    correct: Sequence[bool] = (True, False),
    model: str | None = None,
    scale: float = 1.0,
    fast_instability: float = 1.0,
    irrelevant_gap: float = 0.35,
    overlap_lengths: bool = False,
    spectrum: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """A realistic synthetic statistics table that shows the paper's patterns.

    Fast thinking (``cot="none"``) has large nuclear norms that fall steeply over the
    early layers and fluctuate; detailed CoT has small, flat curves; simplified is in
    between. Irrelevant responses differ from correct ones by ``irrelevant_gap``
    (relative) under detailed CoT only (a tenth of it under simplified, none under
    none). Each example has its own multiplicative factor shared across layers, and
    its response length depends on the cot level. For tests, demos and docs only.

    Args:
        n_samples: examples per (dataset, cot, correct).
        n_layers: layers.
        datasets, cots, modules, correct: the grid.
        model: if given, a ``model`` column with this value.
        scale: overall multiplier of the norms.
        fast_instability: multiplier of the early-layer excess and fluctuation of
            fast thinking (e.g. 2.0 for a more affected instruct model).
        irrelevant_gap: relative gap of irrelevant responses under detailed CoT.
        overlap_lengths: draw all lengths from one wide range (to test matching).
        spectrum: add a ``spectrum`` list column (top-8 singular values).
        seed: random seed.

    Example:
        >>> t = synthetic_stats(n_samples=2, n_layers=3)
        >>> len(t) == 3 * 3 * 2 * 2 * 3 * 4
        True
    """
    rng = np.random.default_rng(seed)
    hidden = 64
    shapes = {
        "q": (hidden, hidden),
        "k": (16, hidden),
        "v": (16, hidden),
        "o": (hidden, hidden),
        "gate": (4 * hidden, hidden),
        "up": (4 * hidden, hidden),
        "down": (hidden, 4 * hidden),
    }
    mod_scale = {"q": 1.0, "k": 0.8, "v": 1.6, "o": 1.3, "gate": 1.1, "up": 1.0, "down": 1.2}
    x = np.arange(n_layers) / max(n_layers - 1, 1)
    wiggle = np.sin(np.arange(n_layers) * 2.1 + 0.5)
    cot_params = {  # base level, early excess, fluctuation, length range, loss
        "none": (4.0, 12.0, 1.5, (2, 12), 2.5),
        "simplified": (2.5, 3.0, 0.5, (30, 90), 1.2),
        "detailed": (1.5, 0.6, 0.08, (150, 400), 0.7),
    }
    rows = []
    for ds in datasets:
        for cot in cots:
            base, early, fluct, (l0, l1), loss0 = cot_params.get(cot, cot_params["simplified"])
            if cot == "none":
                early, fluct = early * fast_instability, fluct * fast_instability
            gap = {"detailed": irrelevant_gap, "simplified": irrelevant_gap / 10}.get(cot, 0.0)
            for corr in correct:
                for i in range(n_samples):
                    sid = f"{ds}-{cot}-{'c' if corr else 'i'}-{i:03d}"
                    ex_f = float(np.exp(rng.normal(0, 0.15)))
                    n_resp = int(
                        rng.integers(2, 400) if overlap_lengths else rng.integers(l0, l1 + 1)
                    )
                    n_prompt = int(rng.integers(20, 120))
                    loss = float(loss0 * np.exp(rng.normal(0, 0.2)) * (1.0 if corr else 1.6))
                    for m in modules:
                        curve = (
                            (base + early * np.exp(-6 * x) + fluct * wiggle) * mod_scale[m] * scale
                        )
                        curve = curve * (1.0 if corr else 1.0 + gap) * ex_f
                        noise = np.exp(rng.normal(0, 0.05, n_layers))
                        nn_ = np.maximum(curve * noise, 1e-6)
                        ratio = np.clip(
                            0.25
                            + 0.1 * rng.normal(size=n_layers)
                            + (0.15 if cot == "none" else 0.0),
                            0.02,
                            0.95,
                        )
                        mm, nn_dim = shapes[m]
                        for layer in range(n_layers):
                            nuc = float(nn_[layer])
                            r = float(ratio[layer])
                            row = {
                                "sample_id": sid,
                                "dataset": ds,
                                "cot": cot,
                                "correct": bool(corr),
                                "layer": layer,
                                "module": m,
                                "shape": f"{mm} x {nn_dim}",
                                "loss": loss,
                                "n_prompt_tokens": n_prompt,
                                "n_response_tokens": n_resp,
                                "truncated": False,
                                "nuclear_norm": nuc,
                                "sigma_max": r * nuc,
                                "sigma_min": 0.0,
                                "sigma1_ratio": r,
                                "frobenius_norm": math.sqrt(r) * nuc,
                                "effective_rank": float(
                                    min(n_resp + n_prompt, mm, nn_dim) * (1 - r)
                                ),
                                "entry_mean": float(rng.normal(0, 1e-4) * nuc),
                                "entry_max": float(nuc / (mm * 2)),
                                "entry_min": float(-nuc / (mm * 2)),
                            }
                            if spectrum:
                                row["spectrum"] = list(r * nuc * 0.7 ** np.arange(8))
                            if model is not None:
                                row["model"] = model
                            rows.append(row)
    cols = (
        ["sample_id"]
        + (["model"] if model is not None else [])
        + [
            "dataset",
            "cot",
            "correct",
            "layer",
            "module",
            "shape",
            "loss",
            "n_prompt_tokens",
            "n_response_tokens",
            "truncated",
            *STAT_COLUMNS,
        ]
        + (["spectrum"] if spectrum else [])
    )
    return pd.DataFrame(rows, columns=cols)
