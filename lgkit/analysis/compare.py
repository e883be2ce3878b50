"""Comparisons of groups: relative difference (RD), per-example values, length association and matching."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis.curves import layer_curves, sort_groups
from lgkit.analysis.tables import (
    as_list,
)
from lgkit.errors import InputError

logger = logging.getLogger(__name__)


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
    norm: str = "mean",
) -> list[tuple[tuple, pd.Series, pd.Series]]:
    """[(group key + module, curve a, curve b)] aligned on common layers."""
    curves = layer_curves(
        df, metric, by + [compare], modules=modules, layers=layers, where=where, n_boot=0, norm=norm
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
    norm: str = "mean",
) -> pd.DataFrame:
    """Authors' relative difference between the mean curves of ``compare == a`` and ``== b``.

    Args:
        df: statistics table.
        metric: see :func:`metric_values`.
        compare: the column whose two values are compared (``correct``, ``model``...).
        a: reference value (denominator), e.g. ``True`` (correct responses).
        b: compared value, e.g. ``False`` (irrelevant responses).
        by: grouping columns (one comparison per group and module).
        modules, layers, where, norm: see :func:`layer_curves`.

    Returns:
        DataFrame ``*by, module, rd_mean, rd_top5_mean, top5_layers, mean_a, mean_b,
        n_layers`` (``mean_a``/``mean_b``: curve means over layers).

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> t = relative_difference_table(synthetic_stats(n_samples=5, n_layers=6), by="cot")
        >>> t.groupby("cot", sort=False)["rd_mean"].mean().idxmax()
        'detailed'
    """
    by = as_list(by)
    rows = []
    for key, ca, cb in _paired_curves(df, metric, compare, a, b, by, modules, layers, where, norm):
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
    return sort_groups(pd.DataFrame(rows)[cols], by + ["module"])


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
    norm: str = "mean",
) -> pd.DataFrame:
    """Per-layer relative differences of the ``b`` curve to the ``a`` curve.

    Returns:
        Long DataFrame ``*by, module, layer, a, b, rd_signed, rd_abs`` with
        ``rd_signed = (b - a) / |a|`` and ``rd_abs = |b - a| / |a|``.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> c = relative_difference_curves(synthetic_stats(n_samples=3, n_layers=4), by="cot")
        >>> list(c.columns[-4:])
        ['a', 'b', 'rd_signed', 'rd_abs']
    """
    by = as_list(by)
    parts = []
    for key, ca, cb in _paired_curves(df, metric, compare, a, b, by, modules, layers, where, norm):
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
    return sort_groups(pd.concat(parts, ignore_index=True)[cols], by + ["module", "layer"])
