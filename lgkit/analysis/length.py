"""Per-example values and length control: association with response length, length-matched comparisons."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis.curves import mad_table, sort_groups
from lgkit.analysis.tables import (
    as_list,
    check_columns,
    example_key_columns,
    filter_table,
    prepare_table,
    value_order,
)
from lgkit.errors import InputError

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- per-example values & length control


def per_example(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    *,
    modules: Sequence[str] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    where: Mapping[str, Any] | None = None,
    norm: str = "mean",
) -> pd.DataFrame:
    """One row per example × module: the metric (under ``norm``) averaged over the selected layers.

    Returns:
        DataFrame with the example key columns, ``module``, ``value`` and the
        per-example columns present (``loss``, ``n_prompt_tokens``,
        ``n_response_tokens``, ``truncated``).

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> e = per_example(synthetic_stats(n_samples=2, n_layers=3), modules=["q"])
        >>> len(e) == e["sample_id"].nunique()
        True
    """
    d = prepare_table(df, metric, modules, layers, where, norm)
    keys = example_key_columns(d)
    per_ex = ("loss", "n_prompt_tokens", "n_response_tokens", "n_loss_tokens", "truncated")
    extra = [c for c in per_ex if c in d.columns]
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
    norm: str = "mean",
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
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> a = length_association(synthetic_stats(n_samples=10, n_layers=3), by="cot")
        >>> {"slope", "spearman_rho"} <= set(a.columns)
        True
    """
    by = as_list(by)
    ex = per_example(df, metric, modules=modules, layers=layers, where=where, norm=norm)
    check_columns(ex, by + [length_col])
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
    return sort_groups(pd.DataFrame(rows)[cols], by + ["module"])


def _example_lengths(d: pd.DataFrame, length_col: str) -> pd.DataFrame:
    keys = example_key_columns(d)
    check_columns(d, [length_col])
    return d.groupby(keys, dropna=False, sort=True)[length_col].first().reset_index()


def _nearest_pairs(
    la: np.ndarray, lb: np.ndarray, tol: float | None, abs_tol: float | None
) -> list[tuple[int, int, int]]:
    """Greedy nearest pairs without replacement within the tolerances (bin -1)."""
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
    pairs: list[tuple[int, int, int]] = []
    for k in order:
        i, j = int(ia[k]), int(ib[k])
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((i, j, -1))
    return pairs


def _binned_pairs(
    la: np.ndarray, lb: np.ndarray, n_bins: int, rng: np.random.Generator
) -> list[tuple[int, int, int]]:
    """Pairs in length order inside pooled quantile bins, the larger side subsampled."""
    pooled = np.concatenate([la, lb])
    edges = np.unique(np.quantile(pooled, np.linspace(0, 1, n_bins + 1)))
    bin_a = np.clip(np.searchsorted(edges, la, side="right") - 1, 0, max(len(edges) - 2, 0))
    bin_b = np.clip(np.searchsorted(edges, lb, side="right") - 1, 0, max(len(edges) - 2, 0))
    pairs: list[tuple[int, int, int]] = []
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
    return pairs


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
    check_columns(d, ["sample_id", group_col, length_col])
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
        if method == "nearest":
            pairs = _nearest_pairs(la, lb, tol, abs_tol)
        else:
            pairs = _binned_pairs(la, lb, n_bins, rng)
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
        >>> from lgkit.analysis.fixtures import synthetic_stats
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
        mods = value_order(ex["module"].unique(), "module")
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
    return sort_groups(pd.DataFrame(rows)[cols], ["module"])
