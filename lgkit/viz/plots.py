"""Paper-style figures of layer-wise gradient statistics.

Every function returns a :class:`matplotlib.figure.Figure` built with the
object-oriented API (``Figure()``, not ``pyplot``): no backend is selected at import,
nothing is registered with pyplot, so figures never pile up in memory or display
twice, and they work in scripts (rendered by Agg when saved), in JupyterLab (show one
with ``display(fig)`` or by leaving it as the cell's last expression) and inside
``ipywidgets.Output``. :func:`save_figure` writes PNG and PDF.

Colours follow the authors' order (Q red, K green, V blue, O dark; MLP modules orange, purple,
sky blue) in the colour-blind-safe Okabe–Ito palette, and every projection has its own marker
(Q circle, K square, V triangle, O diamond). Text is ≥ 12 pt and figures ≤ 8 in wide
(:func:`lgkit.viz.style.readable`), so they stay legible on a projector.

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

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lgkit import analysis as A
from lgkit.errors import InputError
from lgkit.viz.style import (
    LINESTYLES,
    MODULE_COLORS,
    MODULE_MARKERS,
    column_label,
    empty_figure,
    finish_figure,
    module_label,
    modules_of,
    panel_values,
    plot_curve,
    relative_depth,
    style_axis,
)
from lgkit.viz.summaries import (  # noqa: F401  (plots stays their public face)
    length_level_figure,
    mad_bar_figure,
    relative_difference_figure,
    token_share_figure,
)

logger = logging.getLogger(__name__)


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
    reference: Mapping[Any, float] | None = None,
    reference_label: str = "reference",
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
        reference: a dashed horizontal line per panel value (e.g. 06's 1/√T for coherence),
            labelled ``reference_label`` in the legend.

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
    panels = panel_values(d, columns, column_order)
    mods = modules_of(d, modules)
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
        title = column_label(columns, pv, column_labels) if columns else ""
        c = curves[curves[columns] == pv] if columns else curves
        ax = axs[0, j]
        for m in mods:
            plot_curve(
                ax,
                c[c["module"] == m],
                MODULE_COLORS.get(m, "k"),
                module_label(m),
                bands,
                marker=MODULE_MARKERS.get(m),
            )
        style_axis(ax, title or mlabel, ylabel=mlabel if j == 0 else None)
        if reference and pv in reference:
            ax.axhline(reference[pv], color="0.35", linestyle="--", linewidth=1.2,
                       label=reference_label)  # fmt: skip
        if ylim is not None:
            ax.set_ylim(*ylim)
        if include_ratio and ratio_curves is not None:
            rc = ratio_curves[ratio_curves[columns] == pv] if columns else ratio_curves
            for row, pair in ((1, ("q", "k")), (2, ("v", "o"))):
                rax = axs[row, j]
                for m in pair:
                    if m in mods:
                        plot_curve(
                            rax,
                            rc[rc["module"] == m],
                            MODULE_COLORS[m],
                            module_label(m),
                            bands,
                            marker=MODULE_MARKERS.get(m),
                        )
                names = ", ".join(p.upper() for p in pair)
                rl = A.metric_label(ratio_metric)
                style_axis(
                    rax,
                    f"{title} | Ratio ({names})" if title else f"Ratio ({names})",
                    ylabel=rl if j == 0 else None,
                )
    finish_figure(fig, d, suptitle, axs[0, 0].get_legend_handles_labels()[0])
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
    panels = panel_values(d, columns, column_order)
    hues = panel_values(d, hue, hue_order)
    if len(hues) > len(LINESTYLES):
        raise InputError(f"at most {len(LINESTYLES)} {hue} values can be overlaid, got {hues}")
    mods = modules_of(d, modules)
    by = ([columns] if columns else []) + [hue]
    curves = A.layer_curves(
        d, metric, by, modules=mods, layers=layers, ci=ci, n_boot=n_boot if bands else 0, seed=seed
    )
    relative = relative_depth(curves, d, hue)
    ncols = len(panels)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1]), layout="constrained")
    axs = fig.subplots(1, ncols, squeeze=False, sharey=sharey)
    mlabel = A.metric_label(metric)
    handles = [
        Line2D(
            [],
            [],
            color=MODULE_COLORS.get(m, "k"),
            marker=MODULE_MARKERS.get(m),
            label=module_label(m),
        )
        for m in mods
    ]
    handles += [
        Line2D([], [], color="k", linestyle=LINESTYLES[i], label=column_label(hue, h, hue_labels))
        for i, h in enumerate(hues)
    ]
    for j, pv in enumerate(panels):
        ax = axs[0, j]
        c = curves[curves[columns] == pv] if columns else curves
        for i, h in enumerate(hues):
            ch = c[c[hue] == h]
            for m in mods:
                plot_curve(
                    ax,
                    ch[ch["module"] == m],
                    MODULE_COLORS.get(m, "k"),
                    f"{module_label(m)} ({column_label(hue, h, hue_labels)})",
                    bands,
                    LINESTYLES[i],
                    MODULE_MARKERS.get(m),
                )
        title = column_label(columns, pv, column_labels) if columns else ""
        style_axis(
            ax,
            title or mlabel,
            xlabel="Relative depth (layer / number of layers)" if relative else "Layer",
            ylabel=mlabel if j == 0 else None,
        )
    finish_figure(fig, d, suptitle, handles)
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


def figure_caption(fig: Figure) -> str:
    """The figure's title and its panels' titles, as one line.

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> figure_caption(layer_figure(synthetic_stats(n_samples=2, n_layers=3), bands=False))[:40]
        'model: not named in the table · data: aq'
    """
    # a line break in a title is layout (lgkit.viz.style.fit_texts), not meaning
    sup = fig.get_suptitle().replace("\n", " ") if hasattr(fig, "get_suptitle") else ""
    panels = [ax.get_title().replace("\n", " ") for ax in fig.axes if ax.get_title()]
    return sup + (f". Panels: {'; '.join(panels)}" if panels else "")


def save_figure(
    fig: Figure,
    path_stem: str | Path,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 150,
    caption: str | None = None,
) -> list[Path]:
    """Write a figure as ``<path_stem>.png`` and ``<path_stem>.pdf`` (parents created).

    A known image suffix on ``path_stem`` (``.png``, ``.pdf``, ``.svg``) is dropped.
    The figure's caption (``caption``, else :func:`figure_caption`) is stored as the files' ``Title``
    metadata, which the run's index page shows under each figure.

    Args:
        fig: the figure.
        path_stem: path without suffix.
        formats: file formats.
        dpi: resolution of raster formats.
        caption: the caption to store (what to look for); default :func:`figure_caption`.

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
    caption = caption or figure_caption(fig)
    out = []
    for fmt in formats:
        p = stem.parent / f"{stem.name}.{fmt}"
        meta = {"Title": caption} if caption and fmt in ("png", "pdf", "svg") else None
        fig.savefig(p, dpi=dpi, format=fmt, metadata=meta)
        out.append(p)
        logger.info("wrote %s", p)
    return out
