"""Shared look of every figure: module colours and markers, labels, titles naming model and data,
axes, and sizes readable in a room.

Readable on a projector: every figure is at most :data:`MAX_WIDTH_IN` inches wide and its text at
least :data:`BASE_PT` points; notebooks show the PNG at :data:`DISPLAY_DPI` pixels per inch (saved
at 150 dpi for sharpness), so 12 pt is ≥ 16 CSS pixels as long as the figure fits the output
area (≈ 830 px of a 1,280 px wide JupyterLab with its file browser open). Colours are the Okabe–Ito colour-blind-safe
palette, and each projection also has its own marker."""

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

OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}
"""The Okabe–Ito colour-blind-safe palette (Okabe & Ito 2008)."""

MODULE_COLORS: dict[str, str] = {
    "q": OKABE_ITO["vermillion"],
    "k": OKABE_ITO["bluish green"],
    "v": OKABE_ITO["blue"],
    "o": OKABE_ITO["black"],
    "gate": OKABE_ITO["orange"],
    "up": OKABE_ITO["reddish purple"],
    "down": OKABE_ITO["sky blue"],
}
"""Line colour per module: Okabe–Ito, in the authors' order (Q red-ish, K green, V blue, O dark)."""

MODULE_MARKERS: dict[str, str] = {
    "q": "o", "k": "s", "v": "^", "o": "D", "gate": "v", "up": "P", "down": "X",
}  # fmt: skip
"""Marker per module, so the projections differ without colour too."""

GROUP_COLORS: tuple[str, ...] = (
    OKABE_ITO["vermillion"], OKABE_ITO["orange"], OKABE_ITO["blue"],
    OKABE_ITO["bluish green"], OKABE_ITO["reddish purple"], OKABE_ITO["sky blue"],
)  # fmt: skip
"""Colours of groups (CoT levels, bars, scatter points): Okabe–Ito."""

BASE_PT = 12.0
"""Smallest text size (points) of a figure: ticks, legend, labels."""
TITLE_PT = 13.0
MAX_WIDTH_IN = 8.0
"""Widest figure (inches): shown at :data:`DISPLAY_DPI` (800 px) it fits the output area of a
1,280 px wide JupyterLab even with the file browser open (≈ 830 px)."""
DISPLAY_DPI = 100
"""Pixels per inch a notebook shows figures at (12 pt → 16.7 px)."""

LINESTYLES: tuple[str, ...] = ("-", "--", ":", "-.")
"""Line styles of the overlaid groups (first group solid)."""

COLUMN_LABELS: dict[str, dict[Any, str]] = {
    "cot": {"none": "None CoT", "simplified": "Simplified CoT", "detailed": "Detailed CoT"},
    "correct": {True: "Correct", False: "Irrelevant"},
}
"""Panel titles for known column values."""


METRIC_UNITS: dict[str, str] = {
    "nuclear_norm": "sum of singular values",
    "sigma_max": "largest singular value",
    "sigma_min": "smallest singular value",
    "sigma1_ratio": "σ1 / sum of singular values, 0–1",
    "frobenius_norm": "root of sum of squares",
    "effective_rank": "dimensions",
    "coherence": "0–1; 1/√T for uncorrelated tokens",
    "loss": "nats per token",
    "token_norm_sum": "Σ_t ‖d_t‖‖x_t‖",
}
"""What each explorer metric measures (shown in its dropdown)."""

EXPLORER_HIDDEN = frozenset(
    {"n_prompt_tokens", "n_response_tokens", "n_loss_tokens", "example_index", "S_sum_regularized",
     "entry_mean", "entry_max", "entry_min"}
)  # fmt: skip
"""Columns that are counts or internal, not gradient statistics: left out of the metric list."""


def metric_options(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The explorer's metric choices as (readable name with unit, column).

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> metric_options(synthetic_stats(n_samples=2, n_layers=2))[0]
        ('Nuclear Norm (sum of singular values)', 'nuclear_norm')
    """
    out = []
    for m in A.available_metrics(df):
        if m in EXPLORER_HIDDEN:
            continue
        unit = METRIC_UNITS.get(m)
        name = A.metric_label(m)
        out.append((f"{name} ({unit})" if unit and unit not in name else name, m))
    return out


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
    ax: Axes,
    g: pd.DataFrame,
    color: str,
    label: str | None,
    bands: bool,
    linestyle: str = "-",
    marker: str | None = None,
) -> None:
    g = g.sort_values("layer")
    x = g["layer"].to_numpy()
    every = max(1, len(x) // 8)
    ax.plot(x, g["mean"].to_numpy(), c=color, label=label, linestyle=linestyle,
            marker=marker, markevery=every, markersize=5)  # fmt: skip
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


def readable(fig: Figure) -> Figure:
    """Size ``fig`` for a room: at most :data:`MAX_WIDTH_IN` wide (shrunk in proportion) and
    every text at least :data:`BASE_PT` points (titles :data:`TITLE_PT`); the height is kept.

    Example:
        >>> fig = Figure(figsize=(15, 3.6)); ax = fig.subplots(); _ = ax.set_title("t")
        >>> fig = readable(fig); float(fig.get_figwidth()), ax.title.get_fontsize()
        (8.0, 13.0)
    """
    w, h = fig.get_size_inches()
    if w > MAX_WIDTH_IN:
        fig.set_size_inches(MAX_WIDTH_IN, h)  # narrower panels, same height: room for text
    for ax in fig.axes:
        ax.title.set_fontsize(TITLE_PT)
        ax.xaxis.label.set_fontsize(BASE_PT)
        ax.yaxis.label.set_fontsize(BASE_PT)
        ax.tick_params(labelsize=BASE_PT)
        for t in ax.texts:
            t.set_fontsize(max(t.get_fontsize(), BASE_PT))
    for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]:
        for t in leg.get_texts() if leg is not None else ():
            t.set_fontsize(BASE_PT)
    if fig.get_suptitle():
        fig._suptitle.set_fontsize(TITLE_PT)  # type: ignore[union-attr]
    fit_texts(fig)
    return fig


PAD_IN = 0.15
"""Room (inches) kept between the figure title and the canvas edge, each side."""
PANEL_PAD_IN = 0.05
"""Room (inches) kept between a panel's title or x label and its share of the width, each side."""


def text_width_pt(text: str, fontsize: float, weight: str | int = "normal") -> float:
    """Width (points) of the widest line of ``text`` at ``fontsize`` in the default font.

    Example:
        >>> text_width_pt("ab", 12) < text_width_pt("abcd", 12) == text_width_pt("abcd\\nx", 12)
        True
    """
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    r = RendererAgg(1, 1, 72)  # 72 dpi: pixels are points
    prop = FontProperties(size=fontsize, weight=weight)
    return max(
        (r.get_text_width_height_descent(ln, prop, ismath=False)[0] for ln in text.split("\n")),
        default=0.0,
    )


def wrap_to_width(text: str, fontsize: float, width_pt: float, weight: str | int = "normal") -> str:
    """``text`` broken at spaces into lines no wider than ``width_pt`` points (a single word
    wider than that stays whole on its own line; existing line breaks are kept).

    Example:
        >>> wrap_to_width("a title that is much too long for a small panel", 12, 120).count("\\n") > 0
        True
        >>> wrap_to_width("short", 12, 120)
        'short'
    """
    out: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}" if line else word
            if line and text_width_pt(trial, fontsize, weight) > width_pt:
                out.append(line)
                line = word
            else:
                line = trial
        out.append(line)
    return "\n".join(out)


def _panel_width_in(ax: Axes) -> float:
    """The figure width an axes' grid cell spans (inches): its share of the gridspec's columns."""
    fig_w = float(ax.get_figure().get_figwidth())  # type: ignore[union-attr]
    spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
    if spec is None:
        return fig_w * float(ax.get_position().width)
    cols = spec.colspan
    return fig_w * len(cols) / spec.get_gridspec().ncols


def fit_texts(fig: Figure) -> Figure:
    """Break every title and x label that would be wider than its room onto more lines, so no
    text is cut at the canvas edge: the figure title within the figure width, each panel's
    title and x label within its panel's share of the width, text inside an axes within the
    axes (less :data:`PAD_IN` or :data:`PANEL_PAD_IN` each side). Call after the font sizes
    are final.

    Example:
        >>> fig = Figure(figsize=(4, 3)); ax = fig.subplots()
        >>> _ = fig.suptitle("model | family | correct responses · data: aqua, ecqa, gsm8k · 12 examples per group")
        >>> "\\n" in fit_texts(fig).get_suptitle()
        True
    """
    pad = 2 * PAD_IN * 72
    sup = getattr(fig, "_suptitle", None)
    if sup is not None and sup.get_text():
        width = fig.get_figwidth() * 72 - pad
        if text_width_pt(sup.get_text(), sup.get_fontsize()) > width:  # its own breaks are kept
            sup.set_text(wrap_to_width(sup.get_text(), sup.get_fontsize(), width))
    for ax in fig.axes:
        width = (_panel_width_in(ax) - 2 * PANEL_PAD_IN) * 72
        for t in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label):  # type: ignore[attr-defined]
            if t.get_text() and text_width_pt(t.get_text(), t.get_fontsize()) > width:
                t.set_text(wrap_to_width(t.get_text(), t.get_fontsize(), width))
        for t in ax.texts:
            if t.get_text() and text_width_pt(t.get_text(), t.get_fontsize()) > width:
                t.set_text(wrap_to_width(t.get_text(), t.get_fontsize(), width))
    return fig


def one_line_title(df: pd.DataFrame, suptitle: str | None) -> str:
    """One title line: ``suptitle`` then what :func:`data_title` adds to it (the model is not
    repeated when ``suptitle`` names it).

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> one_line_title(synthetic_stats(n_samples=2, n_layers=3, model="m1"), "m1 | correct")
        'm1 | correct · data: aqua, ecqa, gsm8k · 2 examples per group'
    """
    parts = data_title(df).split(" · ")
    if suptitle:
        parts = [p for p in parts if not (p.startswith("model: ") and p[7:] in suptitle)]
        parts = [p for p in parts if p != "model: not named in the table"]
        return " · ".join([suptitle, *parts])
    return " · ".join(parts)


def finish_figure(
    fig: Figure, df: pd.DataFrame, suptitle: str | None, handles: list | None
) -> None:
    """One title line naming model and data; one legend below the panels (never over the
    data); sizes for a room (:func:`readable`)."""
    fig.suptitle(one_line_title(df, suptitle))  # broken onto lines to fit by readable()
    if handles:
        legend_below(fig, handles)
    readable(fig)


def legend_below(
    fig: Figure, handles: list, labels: list[str] | None = None, entry_in: float = 1.9
) -> None:
    """One legend under the panels (never over the data), as many entries a row as fit the
    shown width at ``entry_in`` inches each."""
    w = min(fig.get_figwidth(), MAX_WIDTH_IN)
    kw = {"labels": labels} if labels is not None else {}
    names = labels if labels is not None else [h.get_label() for h in handles]
    # an entry: marker (≈ 2.8 em) + its label; as many a row as fit the width, never wider
    need = max((text_width_pt(str(n), BASE_PT) for n in names), default=0.0) / 72 + 0.55
    ncol = max(1, min(len(handles), int(w // max(entry_in, need))))
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False, **kw)


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
    return readable(fig)


def png_bundle(png: bytes, alt: str, width: int, caption: str = "") -> dict[str, str]:
    """A display bundle of a PNG with alt text, its display width and an optional caption:
    ``text/html`` (an ``<img alt width>`` in a ``<figure>``, what JupyterLab and nbconvert
    show: the alt text reaches screen readers and the exported HTML) and ``image/png`` (kept
    for other consumers). Text is HTML-escaped.

    Example:
        >>> b = png_bundle(b"\\x89PNG", "a <b>", 600, "look")
        >>> "alt='a &lt;b&gt;'" in b["text/html"], "width='600'" in b["text/html"], sorted(b)
        (True, True, ['image/png', 'text/html', 'text/plain'])
    """
    import base64
    import html

    b64 = base64.b64encode(png).decode("ascii")
    cap = (
        f"<figcaption class='lgkit-caption' style='font-size:14px;max-width:{width}px'>"
        f"<b>What to look for:</b> {html.escape(caption)}</figcaption>"
        if caption
        else ""
    )
    img = (
        f"<img src='data:image/png;base64,{b64}' alt='{html.escape(alt, quote=True)}' "
        f"width='{width}' style='max-width:100%;height:auto'>"
    )
    return {
        "text/html": f"<figure style='margin:0'>{img}{cap}</figure>",
        "image/png": b64,
        "text/plain": alt,
    }
