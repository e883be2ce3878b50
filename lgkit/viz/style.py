"""Shared look of every figure: module colours, labels, titles naming model and data, axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lgkit import analysis as A
from lgkit.errors import InputError
from lgkit.schema import ATTN_MODULES

MODULE_COLORS: dict[str, str] = {
    "q": "r",
    "k": "g",
    "v": "b",
    "o": "gray",
    "gate": "tab:orange",
    "up": "tab:purple",
    "down": "tab:brown",
}
"""Line colour per module (the authors' r/g/b/gray for Q/K/V/O)."""

LINESTYLES: tuple[str, ...] = ("-", "--", ":", "-.")
"""Line styles of the overlaid groups (first group solid)."""

COLUMN_LABELS: dict[str, dict[Any, str]] = {
    "cot": {"none": "None CoT", "simplified": "Simplified CoT", "detailed": "Detailed CoT"},
    "correct": {True: "Correct", False: "Irrelevant"},
}
"""Panel titles for known column values."""


def module_label(module: str) -> str:
    """Legend label of a module, as in the authors' figures (``Proj_Q``).

    Example:
        >>> module_label("q")
        'Proj_Q'
    """
    return f"Proj_{module.upper()}"


def column_label(column: str | None, value: Any, labels: Mapping[Any, str] | None = None) -> str:
    if labels and value in labels:
        return labels[value]
    if column in COLUMN_LABELS and value in COLUMN_LABELS[column]:
        return COLUMN_LABELS[column][value]
    return str(value)


def panel_values(df: pd.DataFrame, column: str | None, order: Sequence[Any] | None) -> list[Any]:
    if column is None:
        return [None]
    if column not in df.columns:
        raise InputError(f"no column {column!r} to split panels by", field="columns")
    present = A.value_order(df[column].dropna().unique(), column)
    if order is None:
        return present
    return [v for v in order if v in set(present)]


def modules_of(df: pd.DataFrame, modules: Sequence[str] | None) -> list[str]:
    present = A.value_order(df["module"].unique(), "module")
    if modules is None:
        return [m for m in present if m in ATTN_MODULES] or present
    return [m for m in modules if m in present]


def plot_curve(
    ax: Axes, g: pd.DataFrame, color: str, label: str | None, bands: bool, linestyle: str = "-"
) -> None:
    g = g.sort_values("layer")
    x = g["layer"].to_numpy()
    ax.plot(x, g["mean"].to_numpy(), c=color, label=label, linestyle=linestyle)
    if bands and g["lo"].notna().any():
        ax.fill_between(
            x,
            g["lo"].to_numpy(dtype=float),
            g["hi"].to_numpy(dtype=float),
            color=color,
            alpha=0.15,
            linewidth=0,
        )


def style_axis(
    ax: Axes, title: str, xlabel: str | None = "Layer", ylabel: str | None = None
) -> None:
    ax.set_title(title)
    if xlabel == "Layer":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, color="lightgray", linestyle="--", linewidth=0.5, alpha=1)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)


def data_title(df: pd.DataFrame) -> str:
    """Which model(s) and data a figure shows, for its title.

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> data_title(synthetic_stats(n_samples=2, n_layers=3, model="m1"))
        'model: m1 · data: aqua, ecqa, gsm8k · 2 examples per group'
    """
    models = A.value_order(df["model"].dropna().unique(), "model") if "model" in df else []
    parts = [f"model: {', '.join(map(str, models))}" if models else "model: not named in the table"]
    if "dataset" in df:
        ds = A.value_order(df["dataset"].dropna().unique(), "dataset")
        shown = ", ".join(map(str, ds[:6])) + (f" (+{len(ds) - 6})" if len(ds) > 6 else "")
        parts.append(f"data: {shown}")
    if "sample_id" in df and len(df):
        keys = [c for c in ("dataset", "cot", "correct", "model") if c in df]
        n = df.groupby(keys, dropna=False)["sample_id"].nunique() if keys else None
        if n is not None and len(n):
            lo, hi = int(n.min()), int(n.max())
            parts.append(
                f"{lo} examples per group" if lo == hi else f"{lo}–{hi} examples per group"
            )
    return " · ".join(parts)


def finish_figure(
    fig: Figure, df: pd.DataFrame, suptitle: str | None, handles: list | None
) -> None:
    """Title naming model and data; one legend below the panels (never over the data)."""
    title = data_title(df)
    fig.suptitle(f"{suptitle}\n{title}" if suptitle else title, fontsize="medium")
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=min(len(handles), 8),
            fontsize="small",
            frameon=False,
        )


def relative_depth(curves: pd.DataFrame, d: pd.DataFrame, hue: str) -> bool:
    """Models of different depth: put ``layer / number of layers`` in ``curves['layer']``."""
    if hue != "model" or "layer" not in d:
        return False
    n_layers = d.groupby(hue)["layer"].max() + 1
    if n_layers.nunique() <= 1:
        return False
    curves["layer"] = curves["layer"] / curves[hue].map(n_layers).astype(float)
    return True


def empty_figure(message: str) -> Figure:
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig
