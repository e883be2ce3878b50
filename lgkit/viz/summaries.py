"""Summary figures: relative differences, MAD bars, level against response length, per-token shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lgkit import analysis as A
from lgkit.schema import ATTN_MODULES
from lgkit.viz.style import (
    GROUP_COLORS,
    MODULE_COLORS,
    MODULE_MARKERS,
    column_label,
    empty_figure,
    finish_figure,
    module_label,
    modules_of,
    panel_values,
    readable,
    style_axis,
)


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
    rd = A.relative_difference_curves(d, metric, compare, a, b, by, modules=modules_of(d, modules))
    if rd.empty:
        return empty_figure(f"no {compare}={a!r}/{b!r} pairs")
    panels = panel_values(rd, columns, column_order)
    fig = Figure(figsize=(panel_size[0] * len(panels), panel_size[1]), layout="constrained")
    axs = fig.subplots(1, len(panels), squeeze=False, sharey=sharey)
    for j, pv in enumerate(panels):
        ax = axs[0, j]
        c = rd[rd[columns] == pv] if columns else rd
        for m in A.value_order(c["module"].unique(), "module"):
            g = c[c["module"] == m].sort_values("layer")
            ax.plot(g["layer"], g["rd_signed"], c=MODULE_COLORS.get(m, "k"), label=module_label(m),
                    marker=MODULE_MARKERS.get(m), markevery=max(1, len(g) // 8), markersize=5)  # fmt: skip
        ax.axhline(0.0, color="k", linewidth=0.8)
        title = column_label(columns, pv, column_labels) if columns else ""
        lab = f"({column_label(compare, b)} − {column_label(compare, a)}) / |{column_label(compare, a)}|"
        style_axis(
            ax,
            title or "Relative difference",
            ylabel=lab if j == 0 else None,
        )
    finish_figure(fig, d, None, axs[0, 0].get_legend_handles_labels()[0])
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
    xs = panel_values(mad, x, x_order)
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
    colors = [GROUP_COLORS[i % len(GROUP_COLORS)] for i in range(len(xs))]
    hatches = ["", "//", "..", "xx", "\\\\", "--"]
    for j, m in enumerate(mods):
        ax = axs[0, j]
        for i, xv in enumerate(xs):
            vals = [agg.loc[(xv, m), p] if (xv, m) in agg.index else np.nan for p in parts]
            ax.bar(
                pos + (i - (len(xs) - 1) / 2) * width,
                vals,
                width,
                color=colors[i],
                hatch=hatches[i % len(hatches)],
                edgecolor="white",
                label=column_label(x, xv, x_labels),
            )
        ax.set_xticks(pos, list(parts), rotation=30, ha="right")
        ylabel = f"MAD of {A.metric_label(metric)}" if metric else "MAD"
        style_axis(ax, module_label(m), xlabel=None, ylabel=ylabel if j == 0 else None)
    finish_figure(
        fig, mad if source is None else source, None, axs[0, 0].get_legend_handles_labels()[0]
    )
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
    markers = ["o", "s", "^", "D", "v", "P"]
    for i, v in enumerate(values):
        g = ex if v is None else ex[ex[hue] == v]
        ax.scatter(g["T"], g["value"], s=22, alpha=0.75, color=GROUP_COLORS[i % len(GROUP_COLORS)],
                   marker=markers[i % len(markers)], label=column_label(hue, v))  # fmt: skip
    if len(ex):
        lx, ly = np.log(ex["T"].to_numpy(float)), np.log(ex["value"].to_numpy(float))
        x = np.exp(np.linspace(lx.min(), lx.max(), 20))
        ax.plot(x, np.exp(ly.mean()) * (x / np.exp(lx.mean())) ** -0.5, "k--",
                label="slope −0.5 (dilution)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ylabel = f"{A.metric_label(metric)} (layer mean{'' if norm == 'mean' else ', ' + norm})"
    style_axis(ax, "Level against loss tokens", xlabel="Loss tokens T", ylabel=ylabel)
    finish_figure(fig, df, suptitle, ax.get_legend_handles_labels()[0])
    return fig


def token_share_figure(
    token_stats: pd.DataFrame,
    sample_ids: Sequence[str] | None = None,
    module: str = "q",
    *,
    max_tokens: int = 120,
    suptitle: str | None = None,
) -> Figure:
    """Each example's per-token share of every layer's gradient: one heat map per example
    (rows: layers, columns: response tokens in order), one shared colour scale in percent.

    The share of token t at a layer is ‖d_t‖‖x_t‖ / Σ_t ‖d_t‖‖x_t‖ over the response tokens
    (the per-token table of ``token_stats``); 1/T everywhere would mean every token
    contributes alike. At most ``max_tokens`` tokens are drawn per example.

    Example:
        >>> t = pd.DataFrame({"sample_id": "s", "position": [0, 1, 0, 1], "token": ["a", "b"] * 2,
        ...     "in_response": True, "layer": [0, 0, 1, 1], "module": "q", "token_norm": [1.0, 3, 2, 2]})
        >>> fig = token_share_figure(t)
        >>> fig.axes[0].images[0].get_array().tolist()
        [[25.0, 75.0], [50.0, 50.0]]
    """
    t = token_stats[(token_stats["module"] == module) & token_stats["in_response"].astype(bool)]
    ids = list(sample_ids) if sample_ids is not None else list(dict.fromkeys(t["sample_id"]))
    ids = [s for s in ids if (t["sample_id"] == s).any()]
    if not ids:
        return empty_figure(f"no per-token rows for module {module!r}")
    mats = []
    for sid in ids:
        g = t[t["sample_id"] == sid].pivot_table(
            index="layer", columns="position", values="token_norm", aggfunc="sum"
        )
        share = 100 * g.div(g.sum(axis=1).replace(0, np.nan), axis=0)
        mats.append(share.iloc[:, :max_tokens])
    vmax = max(float(np.nanmax(m.to_numpy())) for m in mats)
    fig = Figure(figsize=(8.0, 1.0 + 2.2 * len(ids)), layout="constrained")
    axs = fig.subplots(len(ids), 1, squeeze=False)[:, 0]
    im = None
    for ax, sid, m in zip(axs, ids, mats, strict=True):
        im = ax.imshow(m.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=vmax,
                       origin="lower", interpolation="nearest")  # fmt: skip
        n_tok = int(t[(t["sample_id"] == sid)]["position"].nunique())
        shown = f", first {m.shape[1]} shown" if m.shape[1] < n_tok else ""
        style_axis(ax, f"{sid} · T = {n_tok} tokens{shown}", xlabel=None, ylabel="Layer")
        ax.grid(False)
        layers = m.index.to_numpy()
        step = max(1, len(layers) // 6)
        ax.set_yticks(range(0, len(layers), step), [str(int(x)) for x in layers[::step]])
    axs[-1].set_xlabel("Response token (in order)")
    if im is not None:
        cb = fig.colorbar(im, ax=list(axs), shrink=0.9)
        cb.set_label(f"share of the layer's gradient, {module_label(module)} (%)")
    fig.suptitle(suptitle or f"Which response tokens carry the gradient ({module_label(module)})")
    readable(fig)
    if im is not None:
        cb.ax.tick_params(labelsize=12)
        cb.ax.yaxis.label.set_fontsize(12)
    return fig
