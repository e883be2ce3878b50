"""Summaries the notebooks show: tables by CoT level, lengths, RD, wiki groups, and file-safe names."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lgkit import analysis as A
from lgkit.schema import ATTN_MODULES

__all__ = [
    "cot_summary",
    "group_order",
    "length_summary",
    "n_examples",
    "rd_summary",
    "safe_name",
    "summary_table",
    "wiki_groups",
]


# --------------------------------------------------------------------------- summaries


def n_examples(df: pd.DataFrame) -> int:
    if df.empty:
        return 0
    return int(df.groupby(A.example_key_columns(df), dropna=False).ngroups)


def summary_table(
    df: pd.DataFrame,
    by: Sequence[str] = ("dataset", "cot", "correct"),
    metric: str = "nuclear_norm",
    modules: Sequence[str] | None = ATTN_MODULES,
) -> pd.DataFrame:
    """Per group: examples, mean response/prompt tokens, loss, and the module-averaged
    mean-curve level and MAD (all layers) of ``metric``.

    Example:
        >>> t = summary_table(A.synthetic_stats(n_samples=3, n_layers=4), by=["cot"])
        >>> list(t.columns)[:3]
        ['cot', 'n_examples', 'response_tokens']
    """
    by = [c for c in by if c in df.columns]
    keys = A.example_key_columns(df)
    ex = df.drop_duplicates(keys)
    g = ex.groupby(by, dropna=False, sort=False) if by else [((), ex)]
    rows = []
    for key, e in g:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True))
        row.update(
            n_examples=len(e),
            response_tokens=float(e["n_response_tokens"].mean()),
            prompt_tokens=float(e["n_prompt_tokens"].mean()),
            loss=float(e["loss"].mean()),
            truncated=float(e["truncated"].mean()) if "truncated" in e else np.nan,
        )
        rows.append(row)
    base = pd.DataFrame(rows)
    s = A.curve_summary(df, metric, list(by), modules)
    agg = (
        s.groupby(list(by), dropna=False, sort=False)[["level", "mad"]].mean().reset_index()
        if by
        else pd.DataFrame([s[["level", "mad"]].mean()])
    )
    agg = agg.rename(columns={"level": f"{metric}_mean", "mad": f"{metric}_mad"})
    out = base.merge(agg, on=list(by), how="left") if by else pd.concat([base, agg], axis=1)
    return A.sort_groups(out, list(by))


def cot_summary(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    correct: bool | None = True,
    by: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
) -> dict[str, dict[str, float]]:
    """Key numbers per value of ``by``: module-averaged mean-curve level and MAD.

    Example:
        >>> s = cot_summary(A.synthetic_stats(n_samples=4, n_layers=6))
        >>> s["none"]["mean"] > s["detailed"]["mean"]
        True
    """
    d = A.filter_table(df, A.with_correct(df, None, correct))
    if d.empty or by not in d.columns:
        return {}
    s = A.curve_summary(d, metric, [by], modules)
    agg = s.groupby(by, sort=False)[["level", "mad"]].mean()
    order = A.value_order(agg.index, by)
    return {
        str(k): {"mean": float(agg.loc[k, "level"]), "mad": float(agg.loc[k, "mad"])} for k in order
    }


def length_summary(df: pd.DataFrame, by: str = "group") -> dict[str, dict[str, float]]:
    """Per value of ``by``: median response tokens and the share of truncated examples.

    Example:
        >>> t = pd.DataFrame({"sample_id": ["a", "b"], "group": ["s", "l"], "n_response_tokens": [10, 90],
        ...                   "truncated": [False, True]})
        >>> length_summary(t)["l"]
        {'median_response_tokens': 90.0, 'truncated': 1.0}
    """
    keys = [c for c in A.example_key_columns(df) if c in df.columns]
    ex = df.drop_duplicates(keys + [by])
    g = ex.groupby(by, sort=False)
    trunc = g["truncated"].mean() if "truncated" in ex.columns else None
    return {
        str(k): {
            "median_response_tokens": float(v),
            "truncated": float(trunc[k]) if trunc is not None else float("nan"),
        }
        for k, v in g["n_response_tokens"].median().items()
    }


def rd_summary(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    by: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
) -> dict[str, float]:
    """Module-averaged authors' RD between correct and irrelevant mean curves per value of ``by``.

    Example:
        >>> r = rd_summary(A.synthetic_stats(n_samples=4, n_layers=6))
        >>> r["detailed"] > r["none"]
        True
    """
    if df.empty or "correct" not in df.columns or by not in df.columns:
        return {}
    rd = A.rd_by(df, metric, by, modules)
    return {str(k): float(rd[k]) for k in A.value_order(rd.index, by)}


def wiki_groups(df: pd.DataFrame) -> pd.DataFrame:
    """Add a ``group`` column to wiki statistics: ``<popularity>_<length>``.

    From the ``popularity`` and ``length`` columns (data-file metadata) when present
    (``popular_100``, ``long_tail_short``; a length of ``full``, the released long-tail
    file, gives just ``long_tail``), else the dataset name.

    Example:
        >>> t = pd.DataFrame({"dataset": ["w1", "w2", "w3"], "popularity": ["popular", "long_tail", "long_tail"],
        ...                   "length": [100, "full", "short"]})
        >>> wiki_groups(t)["group"].tolist()
        ['popular_100', 'long_tail', 'long_tail_short']
    """
    out = df.copy()
    if "popularity" in out.columns:
        pop = out["popularity"].astype(str)
        length = (
            out["length"].astype(str) if "length" in out.columns else pd.Series("", index=out.index)
        )
        plain = length.isin(["", "None", "nan", "<NA>", "full"])
        lab = pop.where(plain, pop + "_" + length)
        out["group"] = lab.where(out["popularity"].notna(), out["dataset"].astype(str))
    else:
        out["group"] = out["dataset"].astype(str)
    return out


def _nominal_length(value: Any) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return math.inf
    return math.inf if math.isnan(f) else f


def group_order(df: pd.DataFrame, column: str = "group") -> list[Any]:
    """Values of ``column``: popular first, then long-tail; each by nominal length
    (``words``, else a numeric ``length``), then median response tokens.

    Example:
        >>> t = pd.DataFrame({"group": ["long_tail", "popular_500", "popular_100"], "sample_id": ["a", "b", "c"],
        ...                   "popularity": ["long_tail", "popular", "popular"], "n_response_tokens": [300, 600, 120]})
        >>> group_order(t)
        ['popular_100', 'popular_500', 'long_tail']
    """
    keys = [c for c in A.example_key_columns(df) if c in df.columns]
    ex = df.drop_duplicates(keys + [column])
    med = ex.groupby(column)["n_response_tokens"].median()
    first = {
        c: ex.groupby(column)[c].first()
        for c in ("popularity", "words", "length")
        if c in ex.columns
    }

    def key(g: Any) -> tuple:
        pop = first["popularity"].get(g, "popular") if "popularity" in first else "popular"
        nominal = math.inf
        for c in ("words", "length"):
            if c in first and nominal == math.inf:
                nominal = _nominal_length(first[c].get(g))
        return (0 if pop == "popular" else 1, nominal, float(med[g]), str(g))

    return sorted(med.index, key=key)


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
