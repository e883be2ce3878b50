"""Vocabulary of the analysis and table helpers: metric names, orders, filtering, example keys."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lgkit.errors import InputError
from lgkit.schema import ALL_MODULES, AUTHOR_METRIC_ALIASES, COT_LEVELS, STAT_COLUMNS

# --------------------------------------------------------------------------- constants

COT_ORDER: tuple[str, ...] = COT_LEVELS
"""Response types from fast to slow thinking (:data:`lgkit.schema.COT_LEVELS`)."""

MODULE_ORDER: tuple[str, ...] = ALL_MODULES
"""Canonical order of the abstract module names."""

OPTIONAL_METRIC_COLUMNS: tuple[str, ...] = ("cos_next_layer", "cos_pair")
"""Gradient cosines the engine stores when asked (NaN where undefined)."""

EXAMPLE_COLUMNS: tuple[str, ...] = ("loss", "n_prompt_tokens", "n_response_tokens")
"""Per-example numeric columns that can also be used as a metric."""

METRIC_ALIASES: dict[str, str] = AUTHOR_METRIC_ALIASES
"""The authors' statistic names mapped to lgkit's column names (from :mod:`lgkit.schema`)."""

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


def as_list(x: str | Sequence[str] | None) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def check_columns(df: pd.DataFrame, cols: Iterable[str], what: str = "statistics table") -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def available_metrics(df: pd.DataFrame) -> list[str]:
    """The metric names usable with ``df`` (columns present, plus derived metrics).

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
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
        check_columns(df, ("nuclear_norm", "loss"))
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
        check_columns(df, [col])
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


def value_order(values: Iterable[Any], column: str | None = None) -> list[Any]:
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


def prepare_table(
    df: pd.DataFrame,
    metric: str,
    modules: Sequence[str] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    where: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Filtered copy of the table with the metric in column ``_value``."""
    check_columns(df, REQUIRED_COLUMNS)
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
