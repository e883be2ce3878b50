"""Vocabulary of the analysis and table helpers: metric names, orders, filtering, example keys."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lgkit.errors import InputError
from lgkit.schema import ALL_MODULES, AUTHOR_METRIC_ALIASES, COT_LEVELS, STAT_COLUMNS, TOKEN_COLUMNS

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
    "token_norm_sum": "Σ‖d_t‖‖x_t‖",
    "coherence": "Coherence (nuclear norm / Σ‖d_t‖‖x_t‖)",
    "n_loss_tokens": "Loss Tokens",
}
"""Human-readable metric names (used in figure titles)."""

NORMS: tuple[str, ...] = ("mean", "sum", "sqrt")
"""Normalisations of the loss a gradient statistic can be read under: ``mean`` (the paper's
mean token cross-entropy, as stored), ``sum`` (× T, the token-sum loss) and ``sqrt`` (× √T, the
scale uncorrelated per-token gradients would have), T = the tokens carrying the loss."""

SCALED_METRICS: tuple[str, ...] = (
    "nuclear_norm", "sigma_max", "sigma_min", "frobenius_norm",
    "entry_mean", "entry_max", "entry_min", "token_norm_sum",
)  # fmt: skip
"""Metrics linear in the loss (they scale with the normalisation); all others (ratios,
effective rank, coherence, cosines, loss, lengths, ``S_sum_regularized``) are scale-free
here and read the same under every normalisation."""

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
    cols = STAT_COLUMNS + TOKEN_COLUMNS + OPTIONAL_METRIC_COLUMNS + EXAMPLE_COLUMNS
    out = [c for c in cols if c in df.columns]
    if "nuclear_norm" in df.columns and "loss" in df.columns:
        out.append("S_sum_regularized")
    return out


def loss_tokens(df: pd.DataFrame) -> pd.Series:
    """T of every row: ``n_loss_tokens`` where present, else ``n_response_tokens``.

    Example:
        >>> t = pd.DataFrame({"n_response_tokens": [100, 4], "n_loss_tokens": [2, np.nan]})
        >>> loss_tokens(t).tolist()
        [2.0, 4.0]
    """
    check_columns(df, ["n_response_tokens"])
    t = pd.to_numeric(df["n_response_tokens"], errors="coerce").astype(float)
    if "n_loss_tokens" in df.columns:
        t = pd.to_numeric(df["n_loss_tokens"], errors="coerce").astype(float).fillna(t)
    return t


def norm_factor(df: pd.DataFrame, norm: str = "mean") -> pd.Series:
    """Per-row factor turning a mean-loss gradient statistic into ``norm``'s (see :data:`NORMS`).

    Example:
        >>> t = pd.DataFrame({"n_response_tokens": [4, 9]})
        >>> norm_factor(t, "sum").tolist(), norm_factor(t, "sqrt").tolist()
        ([4.0, 9.0], [2.0, 3.0])
    """
    if norm not in NORMS:
        raise InputError(f"unknown norm {norm!r}; choose one of {list(NORMS)}", field="norm")
    if norm == "mean":
        return pd.Series(1.0, index=df.index)
    t = loss_tokens(df)
    return t if norm == "sum" else t.pow(0.5)


def metric_values(df: pd.DataFrame, metric: str, norm: str = "mean") -> pd.Series:
    """The values of ``metric`` for every row of the table, as float.

    Args:
        df: statistics table.
        metric: a column name, an authors' alias (``S_sum``, ``S_ratio``, ...) or
            ``S_sum_regularized`` (``nuclear_norm / loss``; 0 where loss is 0, as the
            authors' ``ZeroDivisionError`` guard does).
        norm: ``mean`` (as stored, the paper), ``sum`` (× T) or ``sqrt`` (× √T), T the
            loss tokens (:func:`loss_tokens`); applies to :data:`SCALED_METRICS` only.

    Returns:
        A float Series aligned with ``df``.

    Raises:
        InputError: the metric is unknown or its columns are missing.

    Example:
        >>> t = pd.DataFrame({"nuclear_norm": [2.0, 3.0], "loss": [0.5, 0.0]})
        >>> metric_values(t, "S_sum_regularized").tolist()
        [4.0, 0.0]
        >>> t["n_response_tokens"] = [4, 100]
        >>> metric_values(t, "S_sum", norm="sqrt").tolist()
        [4.0, 30.0]
    """
    name = METRIC_ALIASES.get(metric, metric)
    if norm != "mean" or norm not in NORMS:
        factor = norm_factor(df, norm)
        if name in SCALED_METRICS:
            return (metric_values(df, metric) * factor).rename(metric)
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
    norm: str = "mean",
) -> pd.DataFrame:
    """Filtered copy of the table with the metric (under ``norm``) in column ``_value``."""
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
    d["_value"] = metric_values(d, metric, norm)
    d["layer"] = d["layer"].astype(int)
    return d
