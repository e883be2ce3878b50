"""Paper-style figures of layer-wise gradient statistics.

Every function returns a :class:`matplotlib.figure.Figure` built with the
object-oriented API (``Figure()``, not ``pyplot``): no backend is selected at import,
nothing is registered with pyplot, so figures never pile up in memory or display
twice, and they work in scripts (rendered by Agg when saved), in JupyterLab (show one
with ``display(fig)`` or by leaving it as the cell's last expression) and inside
``ipywidgets.Output``. :func:`save_figure` writes PNG and PDF.

Colours follow the authors' figures: Q red, K green, V blue, O gray (MLP modules:
orange, purple, brown).

Example:
    >>> from lgkit.analysis import synthetic_stats
    >>> df = synthetic_stats(n_samples=4, n_layers=6)
    >>> fig = layer_figure(df, columns="cot", include_ratio=True, bands=False)
    >>> len(fig.axes)
    9
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from lgkit import analysis as A
from lgkit.errors import InputError
from lgkit.schema import ATTN_MODULES

logger = logging.getLogger(__name__)

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


def _label(column: str | None, value: Any, labels: Mapping[Any, str] | None = None) -> str:
    if labels and value in labels:
        return labels[value]
    if column in COLUMN_LABELS and value in COLUMN_LABELS[column]:
        return COLUMN_LABELS[column][value]
    return str(value)


def _panel_values(df: pd.DataFrame, column: str | None, order: Sequence[Any] | None) -> list[Any]:
    if column is None:
        return [None]
    if column not in df.columns:
        raise InputError(f"no column {column!r} to split panels by", field="columns")
    present = A.value_order(df[column].dropna().unique(), column)
    if order is None:
        return present
    return [v for v in order if v in set(present)]


def _modules(df: pd.DataFrame, modules: Sequence[str] | None) -> list[str]:
    present = A.value_order(df["module"].unique(), "module")
    if modules is None:
        return [m for m in present if m in ATTN_MODULES] or present
    return [m for m in modules if m in present]


def _plot_curve(
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


def _finish(fig: Figure, df: pd.DataFrame, suptitle: str | None, handles: list | None) -> None:
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


def _relative_depth(curves: pd.DataFrame, d: pd.DataFrame, hue: str) -> bool:
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


def layer_figure(
    df: pd.DataFrame,
    columns: str | None = "cot",
    metric: str = "nuclear_norm",
    include_ratio: bool = False,
    bands: bool = True,
    *,
    modules: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    column_order: Sequence[Any] | None = None,
    column_labels: Mapping[Any, str] | None = None,
    ratio_metric: str = "sigma1_ratio",
    ci: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
    sharey: bool = True,
    ylim: tuple[float, float] | None = None,
    suptitle: str | None = None,
    panel_size: tuple[float, float] = (5.0, 3.6),
) -> Figure:
    """The paper's figure: one panel per response type, one curve per module.

    Row 1 shows ``metric`` (default nuclear norm) per layer for Q/K/V/O; with
    ``include_ratio`` two more rows show the σ1 ratio of Q, K and of V, O, as in the
    authors' ``draw_figure``. Examples are pooled over every column other than
    ``columns`` (use ``where`` to select, e.g. ``{"correct": True, "dataset": "gsm8k"}``).

    Args:
        df: statistics table.
        columns: column whose values make the panels (None: one panel).
        metric: metric of the first row (see :func:`lgkit.analysis.metric_values`).
        include_ratio: add the two σ1-ratio rows.
        bands: draw bootstrap confidence bands (resampling examples).
        modules: modules to draw (default: Q, K, V, O present).
        where: row filter.
        layers: layer range ``(first, last)`` or list.
        column_order: order (and subset) of panel values; default natural order
            (cot: none, simplified, detailed).
        column_labels: panel titles per value (default "None CoT", ...).
        ratio_metric: metric of the ratio rows.
        ci, n_boot, seed: bootstrap settings (see :func:`lgkit.analysis.layer_curves`).
        sharey: share the y axis within each row (honest comparison across panels).
        ylim: y limits of the first row.
        suptitle: figure title.
        panel_size: inches per panel.

    Returns:
        The figure: ``rows × len(panels)`` axes; the first row has one line per module.

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> fig = layer_figure(synthetic_stats(n_samples=3, n_layers=4), bands=False)
        >>> [len(ax.lines) for ax in fig.axes]
        [4, 4, 4]
    """
    d = A.filter_table(df, where)
    if d.empty:
        return empty_figure("no data")
    panels = _panel_values(d, columns, column_order)
    mods = _modules(d, modules)
    by = [columns] if columns else []
    nb = n_boot if bands else 0
    curves = A.layer_curves(d, metric, by, modules=mods, layers=layers, ci=ci, n_boot=nb, seed=seed)
    nrows = 3 if include_ratio else 1
    ncols = len(panels)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axs = fig.subplots(nrows, ncols, squeeze=False, sharey="row" if sharey else False)
    ratio_curves = None
    if include_ratio:
        ratio_curves = A.layer_curves(
            d, ratio_metric, by, modules=mods, layers=layers, ci=ci, n_boot=nb, seed=seed
        )
    mlabel = A.metric_label(metric)
    for j, pv in enumerate(panels):
        title = _label(columns, pv, column_labels) if columns else ""
        c = curves[curves[columns] == pv] if columns else curves
        ax = axs[0, j]
        for m in mods:
            _plot_curve(ax, c[c["module"] == m], MODULE_COLORS.get(m, "k"), module_label(m), bands)
        style_axis(
            ax, f"{title} | {mlabel}" if title else mlabel, ylabel=mlabel if j == 0 else None
        )
        if ylim is not None:
            ax.set_ylim(*ylim)
        if include_ratio and ratio_curves is not None:
            rc = ratio_curves[ratio_curves[columns] == pv] if columns else ratio_curves
            for row, pair in ((1, ("q", "k")), (2, ("v", "o"))):
                rax = axs[row, j]
                for m in pair:
                    if m in mods:
                        _plot_curve(
                            rax, rc[rc["module"] == m], MODULE_COLORS[m], module_label(m), bands
                        )
                names = ", ".join(p.upper() for p in pair)
                rl = A.metric_label(ratio_metric)
                style_axis(
                    rax,
                    f"{title} | Ratio ({names})" if title else f"Ratio ({names})",
                    ylabel=rl if j == 0 else None,
                )
    _finish(fig, d, suptitle, axs[0, 0].get_legend_handles_labels()[0])
    return fig


def overlay_figure(
    df: pd.DataFrame,
    hue: str,
    columns: str | None = "cot",
    metric: str = "nuclear_norm",
    *,
    hue_order: Sequence[Any] | None = None,
    hue_labels: Mapping[Any, str] | None = None,
    modules: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    layers: tuple[int, int] | Sequence[int] | None = None,
    column_order: Sequence[Any] | None = None,
    column_labels: Mapping[Any, str] | None = None,
    bands: bool = False,
    ci: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
    sharey: bool = True,
    suptitle: str | None = None,
    panel_size: tuple[float, float] = (5.0, 3.6),
) -> Figure:
    """Overlay the curves of several groups (``hue``) in each panel.

    Colour = module, line style = ``hue`` value (first solid, then dashed, dotted,
    dash-dot). Each panel holds ``len(modules) × len(hue values)`` lines.

    Args:
        df: statistics table.
        hue: the column whose values are overlaid (``correct``, ``model``, ...).
        columns: column of the panels (None: one panel).
        metric: metric to plot.
        hue_order: order/subset of the hue values.
        hue_labels: legend labels of the hue values.
        modules, where, layers, column_order, column_labels, bands, ci, n_boot, seed,
            sharey, suptitle, panel_size: as in :func:`layer_figure`.

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> fig = overlay_figure(synthetic_stats(n_samples=3, n_layers=4), "correct")
        >>> len(fig.axes[0].lines)
        8
    """
    d = A.filter_table(df, where)
    if d.empty:
        return empty_figure("no data")
    if hue not in d.columns:
        raise InputError(f"no column {hue!r} to overlay", field="hue")
    panels = _panel_values(d, columns, column_order)
    hues = _panel_values(d, hue, hue_order)
    if len(hues) > len(LINESTYLES):
        raise InputError(f"at most {len(LINESTYLES)} {hue} values can be overlaid, got {hues}")
    mods = _modules(d, modules)
    by = ([columns] if columns else []) + [hue]
    curves = A.layer_curves(
        d, metric, by, modules=mods, layers=layers, ci=ci, n_boot=n_boot if bands else 0, seed=seed
    )
    relative = _relative_depth(curves, d, hue)
    ncols = len(panels)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1]), layout="constrained")
    axs = fig.subplots(1, ncols, squeeze=False, sharey=sharey)
    mlabel = A.metric_label(metric)
    handles = [Line2D([], [], color=MODULE_COLORS.get(m, "k"), label=module_label(m)) for m in mods]
    handles += [
        Line2D([], [], color="k", linestyle=LINESTYLES[i], label=_label(hue, h, hue_labels))
        for i, h in enumerate(hues)
    ]
    for j, pv in enumerate(panels):
        ax = axs[0, j]
        c = curves[curves[columns] == pv] if columns else curves
        for i, h in enumerate(hues):
            ch = c[c[hue] == h]
            for m in mods:
                _plot_curve(
                    ax,
                    ch[ch["module"] == m],
                    MODULE_COLORS.get(m, "k"),
                    f"{module_label(m)} ({_label(hue, h, hue_labels)})",
                    bands,
                    LINESTYLES[i],
                )
        title = _label(columns, pv, column_labels) if columns else ""
        style_axis(
            ax,
            f"{title} | {mlabel}" if title else mlabel,
            xlabel="Relative depth (layer / number of layers)" if relative else "Layer",
            ylabel=mlabel if j == 0 else None,
        )
    _finish(fig, d, suptitle, handles)
    return fig


def correct_vs_irrelevant_figure(
    df: pd.DataFrame, columns: str | None = "cot", metric: str = "nuclear_norm", **kwargs: Any
) -> Figure:
    """Correct (solid) vs irrelevant (dashed) responses, one panel per response type.

    Args:
        df: statistics table with a boolean ``correct`` column.
        columns: panel column.
        metric: metric to plot.
        **kwargs: passed to :func:`overlay_figure`.

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> fig = correct_vs_irrelevant_figure(synthetic_stats(n_samples=3, n_layers=4))
        >>> fig.legends[0].get_texts()[-1].get_text()
        'Irrelevant'
    """
    kwargs.setdefault("hue_order", [True, False])
    return overlay_figure(df, "correct", columns, metric, **kwargs)


def base_vs_instruct_figure(
    df: pd.DataFrame,
    columns: str | None = "cot",
    metric: str = "nuclear_norm",
    *,
    model_col: str = "model",
    **kwargs: Any,
) -> Figure:
    """Base vs instruction-tuned model curves overlaid (line style = model).

    Args:
        df: statistics table with a ``model`` column (e.g. two runs concatenated).
        columns: panel column.
        metric: metric to plot.
        model_col: the model column.
        **kwargs: passed to :func:`overlay_figure` (``hue_order=[base, instruct]``...).

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> df = pd.concat([synthetic_stats(n_samples=3, n_layers=4, model="base"),
        ...                 synthetic_stats(n_samples=3, n_layers=4, model="instruct")])
        >>> len(base_vs_instruct_figure(df, where={"correct": True}).axes)
        3
    """
    return overlay_figure(df, model_col, columns, metric, **kwargs)


def relative_difference_figure(
    df: pd.DataFrame,
    compare: str = "correct",
    a: Any = True,
    b: Any = False,
    columns: str | None = "cot",
    metric: str = "nuclear_norm",
    *,
    modules: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    column_order: Sequence[Any] | None = None,
    column_labels: Mapping[Any, str] | None = None,
    sharey: bool = True,
    panel_size: tuple[float, float] = (5.0, 3.6),
) -> Figure:
    """Signed per-layer relative difference ``(b - a) / |a|`` of the mean curves.

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> fig = relative_difference_figure(synthetic_stats(n_samples=3, n_layers=4))
        >>> len(fig.axes), len(fig.axes[0].lines)
        (3, 5)
    """
    d = A.filter_table(df, where)
    by = [columns] if columns else []
    rd = A.relative_difference_curves(d, metric, compare, a, b, by, modules=_modules(d, modules))
    if rd.empty:
        return empty_figure(f"no {compare}={a!r}/{b!r} pairs")
    panels = _panel_values(rd, columns, column_order)
    fig = Figure(figsize=(panel_size[0] * len(panels), panel_size[1]), layout="constrained")
    axs = fig.subplots(1, len(panels), squeeze=False, sharey=sharey)
    for j, pv in enumerate(panels):
        ax = axs[0, j]
        c = rd[rd[columns] == pv] if columns else rd
        for m in A.value_order(c["module"].unique(), "module"):
            g = c[c["module"] == m].sort_values("layer")
            ax.plot(g["layer"], g["rd_signed"], c=MODULE_COLORS.get(m, "k"), label=module_label(m))
        ax.axhline(0.0, color="k", linewidth=0.8)
        title = _label(columns, pv, column_labels) if columns else ""
        lab = f"({_label(compare, b)} − {_label(compare, a)}) / |{_label(compare, a)}|"
        style_axis(
            ax,
            f"{title} | Relative difference" if title else "Relative difference",
            ylabel=lab if j == 0 else None,
        )
    _finish(fig, d, None, axs[0, 0].get_legend_handles_labels()[0])
    return fig


def mad_bar_figure(
    mad: pd.DataFrame,
    x: str = "cot",
    parts: Sequence[str] = ("early", "middle", "late", "all"),
    *,
    modules: Sequence[str] | None = None,
    x_order: Sequence[Any] | None = None,
    x_labels: Mapping[Any, str] | None = None,
    metric: str | None = None,
    panel_size: tuple[float, float] = (4.0, 3.2),
    source: pd.DataFrame | None = None,
) -> Figure:
    """Bar charts of MAD by layer group: one panel per module, bars grouped by part.

    Args:
        mad: a :func:`lgkit.analysis.mad_table` result with one row per (``x``, module)
            (filter it first if it has other grouping columns; rows with the same
            ``x`` and module are averaged).
        x: the column whose values become the bars in each group (e.g. ``cot``).
        parts: layer groups to show.
        modules: modules (panels); default all present.
        x_order: order/subset of ``x`` values.
        x_labels: legend labels of ``x`` values.
        metric: metric name for the y label.
        panel_size: inches per panel.
        source: the statistics table ``mad`` was computed from (names model and data
            in the title; default: what ``mad`` itself has).

    Returns:
        Figure with one axes per module and ``len(parts) × len(x values)`` bars each.

    Example:
        >>> from lgkit.analysis import synthetic_stats, mad_table
        >>> t = mad_table(synthetic_stats(n_samples=3, n_layers=6), by="cot", where={"correct": True})
        >>> fig = mad_bar_figure(t)
        >>> len(fig.axes), len(fig.axes[0].patches)
        (4, 12)
    """
    if mad.empty:
        return empty_figure("no MAD values")
    A.check_columns(mad, [x, "module", *parts], what="MAD table")
    xs = _panel_values(mad, x, x_order)
    mods = [
        m
        for m in (modules or A.value_order(mad["module"].unique(), "module"))
        if m in set(mad["module"])
    ]
    agg = mad.groupby([x, "module"], sort=False)[list(parts)].mean()
    fig = Figure(figsize=(panel_size[0] * len(mods), panel_size[1]), layout="constrained")
    axs = fig.subplots(1, len(mods), squeeze=False, sharey=True)
    width = 0.8 / max(len(xs), 1)
    pos = np.arange(len(parts))
    colors = [f"C{i}" for i in range(len(xs))]
    for j, m in enumerate(mods):
        ax = axs[0, j]
        for i, xv in enumerate(xs):
            vals = [agg.loc[(xv, m), p] if (xv, m) in agg.index else np.nan for p in parts]
            ax.bar(
                pos + (i - (len(xs) - 1) / 2) * width,
                vals,
                width,
                color=colors[i],
                label=_label(x, xv, x_labels),
            )
        ax.set_xticks(pos, list(parts))
        ylabel = f"MAD of {A.metric_label(metric)}" if metric else "MAD"
        style_axis(ax, module_label(m), xlabel=None, ylabel=ylabel if j == 0 else None)
    _finish(fig, mad if source is None else source, None, axs[0, 0].get_legend_handles_labels()[0])
    return fig


def length_level_figure(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    hue: str = "cot",
    *,
    modules: Sequence[str] | None = ATTN_MODULES,
    where: Mapping[str, Any] | None = None,
    norm: str = "mean",
    suptitle: str | None = None,
) -> Figure:
    """Per-example level (metric averaged over layers and modules) against the loss tokens T,
    log-log, one colour per ``hue`` value, with the slope -0.5 dilution line (uncorrelated
    per-token gradients averaged by the mean loss) through the geometric mean of the points.

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> fig = length_level_figure(synthetic_stats(n_samples=4, n_layers=3))
        >>> fig.axes[0].get_xscale(), fig.axes[0].get_yscale()
        ('log', 'log')
    """
    ex = A.per_example(df, metric, modules=modules, where=where, norm=norm)
    if ex.empty:
        return empty_figure("no examples")
    ex["_t"] = A.loss_tokens(ex)
    keys = [c for c in A.example_key_columns(ex) if c in ex.columns]
    ex = ex.groupby(keys, dropna=False).agg(value=("value", "mean"), T=("_t", "first"))
    ex = ex.reset_index()
    ex = ex[(ex["value"] > 0) & (ex["T"] > 0)]
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    values = A.value_order(ex[hue].dropna().unique(), hue) if hue in ex else [None]
    colors = ["tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:gray"]
    for i, v in enumerate(values):
        g = ex if v is None else ex[ex[hue] == v]
        ax.scatter(g["T"], g["value"], s=14, alpha=0.7, color=colors[i % len(colors)],
                   label=_label(hue, v))  # fmt: skip
    if len(ex):
        lx, ly = np.log(ex["T"].to_numpy(float)), np.log(ex["value"].to_numpy(float))
        x = np.exp(np.linspace(lx.min(), lx.max(), 20))
        ax.plot(x, np.exp(ly.mean()) * (x / np.exp(lx.mean())) ** -0.5, "k--",
                label="slope −0.5 (dilution)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ylabel = f"{A.metric_label(metric)} (layer mean{'' if norm == 'mean' else ', ' + norm})"
    style_axis(ax, "Level against loss tokens", xlabel="Loss tokens T", ylabel=ylabel)
    _finish(fig, df, suptitle, ax.get_legend_handles_labels()[0])
    return fig


def figure_caption(fig: Figure) -> str:
    """The figure's title and its panels' titles, as one line.

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> figure_caption(layer_figure(synthetic_stats(n_samples=2, n_layers=3), bands=False))[:40]
        'model: not named in the table · data: aq'
    """
    sup = fig.get_suptitle().replace("\n", " — ") if hasattr(fig, "get_suptitle") else ""
    panels = [ax.get_title() for ax in fig.axes if ax.get_title()]
    return sup + (f". Panels: {'; '.join(panels)}" if panels else "")


def save_figure(
    fig: Figure,
    path_stem: str | Path,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 150,
) -> list[Path]:
    """Write a figure as ``<path_stem>.png`` and ``<path_stem>.pdf`` (parents created).

    A known image suffix on ``path_stem`` (``.png``, ``.pdf``, ``.svg``) is dropped.
    The figure's caption (:func:`figure_caption`) is stored as the files' ``Title``
    metadata, which the run's index page shows under each figure.

    Args:
        fig: the figure.
        path_stem: path without suffix.
        formats: file formats.
        dpi: resolution of raster formats.

    Returns:
        The written paths.

    Example:
        >>> import tempfile, os
        >>> fig = empty_figure("x")
        >>> paths = save_figure(fig, os.path.join(tempfile.mkdtemp(), "fig"))
        >>> [p.suffix for p in paths]
        ['.png', '.pdf']
    """
    stem = Path(path_stem)
    if stem.suffix.lower() in (".png", ".pdf", ".svg"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    caption = figure_caption(fig)
    out = []
    for fmt in formats:
        p = stem.parent / f"{stem.name}.{fmt}"
        meta = {"Title": caption} if caption and fmt in ("png", "pdf", "svg") else None
        fig.savefig(p, dpi=dpi, format=fmt, metadata=meta)
        out.append(p)
        logger.info("wrote %s", p)
    return out
