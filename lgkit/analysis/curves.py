"""Layer curves with bootstrap bands, and the mean absolute difference (MAD) across layers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis.tables import (
    LAYER_GROUP_PRESETS,
    LAYER_GROUPS,
    as_list,
    check_columns,
    example_key_columns,
    prepare_table,
    value_order,
)
from lgkit.errors import InputError

logger = logging.getLogger(__name__)


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
    norm: str = "mean",
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
        norm: loss normalisation, ``mean`` (the paper), ``sum`` or ``sqrt`` (see
            :func:`lgkit.analysis.tables.metric_values`).

    Returns:
        Long DataFrame with columns ``*by, module, layer, metric, mean, lo, hi, n, std``
        (``n`` = number of examples averaged at that layer).

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> df = synthetic_stats(n_samples=5, n_layers=4)
        >>> c = layer_curves(df, "sigma1_ratio", by="cot", modules=["q"], n_boot=20)
        >>> c[["cot", "module", "layer"]].head(2).values.tolist()
        [['none', 'q', 0], ['none', 'q', 1]]
    """
    by = [c for c in as_list(by) if c not in ("module", "layer")]
    d = prepare_table(df, metric, modules, layers, where, norm)
    check_columns(d, by)
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
    return sort_groups(res, by + ["module", "layer"])


def sort_groups(res: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Sort by columns using the natural orders of cot/module/correct."""
    keys = []
    for c in cols:
        if c not in res.columns:
            continue
        order = {v: i for i, v in enumerate(value_order(res[c].dropna().unique(), c))}
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
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> c = layer_curves(synthetic_stats(n_samples=3, n_layers=3), by="cot", n_boot=0)
        >>> curve_dict(c, "cot")[("none", "q")].shape
        (3,)
    """
    by = as_list(by)
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
    norm: str = "mean",
    relative: bool = False,
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
        norm: loss normalisation (see :func:`layer_curves`).
        relative: divide each MAD by the level of the curve (its mean over all layers):
            the scale-free "MAD ÷ level", the same under every normalisation of a
            single curve.

    Returns:
        DataFrame with ``*by, module, early, middle, late, all, n_layers``.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> t = mad_table(synthetic_stats(n_samples=4, n_layers=6), by="cot")
        >>> t.loc[t.module == "q", "cot"].tolist()
        ['none', 'simplified', 'detailed']
        >>> c = pd.DataFrame({"module": "q", "layer": [0, 1, 2], "mean": [2.0, 4.0, 6.0]})
        >>> mad_table(c, by=None, relative=True)["all"].tolist()  # MAD 2 / level 4
        [0.5]
    """
    by = as_list(by)
    if "mean" in data.columns and "layer" in data.columns and "sample_id" not in data.columns:
        curves = data
    else:
        curves = layer_curves(
            data, metric, by, modules=modules, layers=layers, where=where, n_boot=0, norm=norm
        )
    rows = []
    for key, vals in curve_dict(curves, by).items():
        row = dict(zip(by + ["module"], key, strict=True))
        m = mad_by_group(vals, splits)
        if relative:
            lev = float(np.mean(vals)) if len(vals) else float("nan")
            m = {k: v / lev if lev else float("nan") for k, v in m.items()}
        row.update(m)
        row["n_layers"] = len(vals)
        rows.append(row)
    names = list(splits.keys()) if splits is not None else list(LAYER_GROUPS)
    cols = by + ["module"] + names + ["all", "n_layers"]
    if not rows:
        return pd.DataFrame(columns=cols)
    return sort_groups(pd.DataFrame(rows)[cols], by + ["module"])


def pivot_mad(mad: pd.DataFrame, index: str | Sequence[str] = "cot") -> pd.DataFrame:
    """The paper's MAD table layout: rows ``index``, columns (module, layer group).

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> t = pivot_mad(mad_table(synthetic_stats(n_samples=3, n_layers=6), by="cot"))
        >>> t.columns[0]
        ('q', 'early')
    """
    index = as_list(index)
    parts = [c for c in mad.columns if c not in index + ["module", "n_layers"]]
    other = [c for c in parts if c not in ("early", "middle", "late", "all")]
    if other:
        raise InputError(f"pivot_mad: columns {other} are neither index nor MAD groups")
    wide = mad.pivot_table(index=index, columns="module", values=parts, sort=False)
    wide = wide.swaplevel(0, 1, axis=1)
    mods = value_order(mad["module"].unique(), "module")
    wide = wide.reindex(columns=pd.MultiIndex.from_product([mods, parts]))
    idx_order = sort_groups(mad[index].drop_duplicates(), index)
    wide = wide.reindex(
        pd.MultiIndex.from_frame(idx_order) if len(index) > 1 else idx_order[index[0]]
    )
    return wide
