"""Interactive explorers of the statistics table for JupyterLab (ipywidgets).

:class:`Explorer` filters the table with dropdowns/sliders and redraws the paper's
figure; :class:`ExampleDrilldown` shows one example's text and its own per-layer
curves next to its group's mean. Both expose their controls as attributes, the
current figure as ``figure`` and a ``redraw()`` method, so they can be driven from
code (and tests) as well as by hand. In a notebook, leave the object as the last
expression of a cell or call ``.display()``.

Example:
    >>> from lgkit.analysis import synthetic_stats
    >>> ex = Explorer(synthetic_stats(n_samples=3, n_layers=4))
    >>> ex.metric.value = "sigma1_ratio"
    >>> ex.figure.axes[0].get_ylabel()
    'σ1 Ratio'
"""

from __future__ import annotations

import html
import io
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, cast

import ipywidgets as w
import pandas as pd
from matplotlib.figure import Figure

from lgkit import analysis as A
from lgkit.formats.records import Example
from lgkit.schema import ATTN_MODULES
from lgkit.viz import BATCH_ENV
from lgkit.viz import plots as P
from lgkit.viz import style as vstyle
from lgkit.viz.style import metric_options

logger = logging.getLogger(__name__)

ALL = "(all)"
"""Dropdown value meaning "no filter"."""


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure rendered to PNG bytes (Agg), independent of any notebook backend.

    Example:
        >>> figure_png(vstyle.empty_figure("x"))[:4]
        b'\\x89PNG'
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _width_px(fig: Figure | None) -> float:
    from lgkit.viz.style import DISPLAY_DPI

    return (fig.get_figwidth() if fig is not None else 7.5) * DISPLAY_DPI


class _Panel:
    """Shared plumbing: an ``ipywidgets.Image`` holding the current figure as PNG.

    Why an Image and not ``Output`` + ``display(fig)`` or ipympl: a bare
    :class:`~matplotlib.figure.Figure` only has a picture repr when the inline backend
    has registered its formatter (otherwise the frontend shows ``<Figure size ...>``),
    and ``clear_output``/``display`` inside an Output re-creates the output area on every
    change. Setting the PNG bytes of one Image widget updates that picture in place (no
    stale figure, no flicker), needs no extra package or backend, and renders the same in
    JupyterLab, classic Notebook and VS Code (any ipywidgets 8 frontend).

    A live widget needs its kernel: after a kernel restart (or in a saved notebook reopened
    without one) the frontend shows "Error displaying widget: model not found". So the
    notebook display puts a static PNG of the default view above the live controls: that
    picture is an ordinary output, saved with the notebook and shown without a kernel.
    """

    image: w.Image
    widget: w.Widget
    _figure: Figure | None

    @property
    def figure(self) -> Figure | None:
        """The figure drawn by the last :meth:`redraw`."""
        return self._figure

    def _show(self, fig: Figure) -> None:
        self._figure = fig
        png = figure_png(fig)
        if getattr(self, "_default_png", None) is None:
            self._default_png = png  # the default view, for the static picture
        self.image.value = png

    def display(self) -> None:
        """Display the controls and figure in the notebook."""
        from IPython.display import display

        display(self.widget)

    def _ipython_display_(self) -> None:
        if os.environ.get(BATCH_ENV):
            # a batch run (lgkit run): the picture alone. Widget views in papermill's
            # headless client serve nobody and can leave its execute_reply waiting
            # (jupyter/nbclient#312); the executed notebook still shows the figure.
            from IPython.display import Image, display

            if self._figure is not None:
                display(Image(data=figure_png(self._figure), format="png"))
            return
        self.display_static()
        self.display()

    def display_static(self) -> None:
        """Display the default view as a plain PNG output (kept after a kernel restart)."""
        from IPython.display import HTML, display

        png = getattr(self, "_default_png", None)
        if png is None:
            return
        display(
            HTML(
                "<p class='lgkit-static' style='font-size:14px'><b>Static picture of the default "
                "view</b> (saved with the notebook, shown after a kernel restart); the live "
                "controls below need a running kernel.</p>"
            )
        )
        alt = "Static picture of the default view: " + (
            self._figure.get_suptitle() if self._figure is not None else ""
        )
        display(vstyle.png_bundle(png, alt, int(_width_px(self._figure))), raw=True)


class Explorer(_Panel):
    """Filter the statistics table with controls and redraw the layer figure.

    Controls (attributes, all ipywidgets): ``dataset`` (Dropdown, ``"(all)"`` or a
    dataset), ``model`` (Dropdown; only meaningful when the table has a ``model``
    column), ``cot`` (SelectMultiple of response types = panels), ``correct``
    (Dropdown: ``"all"``, ``"correct"``, ``"irrelevant"``), ``modules``
    (SelectMultiple), ``metric`` (Dropdown of :func:`lgkit.analysis.available_metrics`),
    ``layers`` (IntRangeSlider, inclusive), ``bands`` (Checkbox, bootstrap bands) and
    ``ratio`` (Checkbox, σ1-ratio rows). Any change redraws the figure into
    ``image`` (an ipywidgets.Image, PNG); ``figure`` is the current :class:`~matplotlib.figure.Figure`.

    Args:
        df: statistics table.
        metric: initial metric.
        n_boot: bootstrap resamples when bands are on.

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> ex = Explorer(synthetic_stats(n_samples=3, n_layers=6))
        >>> ex.layers.value = (2, 4)
        >>> ex.figure.axes[0].lines[0].get_xdata().tolist()
        [2, 3, 4]
    """

    def __init__(self, df: pd.DataFrame, metric: str = "nuclear_norm", n_boot: int = 100) -> None:
        A.check_columns(df, A.REQUIRED_COLUMNS)
        self.df = df
        self.n_boot = n_boot
        self._figure = None
        self._hold = False
        style = {"description_width": "initial"}
        datasets = (
            A.value_order(df["dataset"].dropna().unique(), "dataset") if "dataset" in df else []
        )
        self.dataset = w.Dropdown(
            options=[ALL] + [str(x) for x in datasets],
            value=ALL,
            description="dataset",
            style=style,
        )
        models = A.value_order(df["model"].dropna().unique(), "model") if "model" in df else []
        self.model = w.Dropdown(
            options=[ALL] + [str(x) for x in models],
            value=ALL,
            description="model",
            style=style,
            disabled=not models,
        )
        cots = A.value_order(df["cot"].dropna().unique(), "cot") if "cot" in df else []
        self.cot = w.SelectMultiple(options=cots, value=tuple(cots), description="cot", rows=3)
        has_correct = "correct" in df and df["correct"].notna().any()
        self.correct = w.Dropdown(
            options=["all", "correct", "irrelevant"],
            value="correct" if has_correct and df["correct"].any() else "all",
            description="responses",
            style=style,
            disabled=not has_correct,
        )
        mods = A.value_order(df["module"].unique(), "module")
        default_mods = tuple(m for m in mods if m in ATTN_MODULES) or tuple(mods)
        self.modules = w.SelectMultiple(
            options=mods, value=default_mods, description="modules", rows=min(len(mods), 7)
        )
        options = metric_options(df) or [(m, m) for m in A.available_metrics(df)]
        metrics = [v for _, v in options]
        self.metric = w.Dropdown(
            options=options,
            value=metric if metric in metrics else metrics[0],
            description="metric",
            style=style,
            layout=w.Layout(width="max-content"),
        )
        lmax = int(df["layer"].max()) if len(df) else 0
        self.layers = w.IntRangeSlider(
            value=(0, lmax), min=0, max=lmax, step=1, description="layers", continuous_update=False
        )
        self.bands = w.Checkbox(
            value=False,
            description=f"95% bootstrap bands ({n_boot} resamples)",
            style=style,
            layout=w.Layout(display="flex" if n_boot > 0 else "none"),  # hidden: nothing to draw
        )
        self.ratio = w.Checkbox(value=False, description="σ1-ratio rows")
        self.image = w.Image(format="png")
        self.controls = [
            self.dataset,
            self.model,
            self.cot,
            self.correct,
            self.modules,
            self.metric,
            self.layers,
            self.bands,
            self.ratio,
        ]
        for c in self.controls:
            c.observe(self._on_change, names="value")
        self.image.layout = w.Layout(max_width="100%", height="auto")
        self.widget = w.VBox(
            [
                w.HBox(
                    [
                        w.VBox([self.dataset, self.model, self.correct, self.metric]),
                        w.VBox([self.cot, self.modules]),
                        w.VBox([self.layers, self.bands, self.ratio]),
                    ],
                    layout=w.Layout(flex_flow="row wrap"),  # controls wrap on a narrow page
                ),
                self.image,
            ]
        )
        self.redraw()

    def _on_change(self, _change: Any) -> None:
        if not self._hold:
            self.redraw()

    def set(self, **values: Any) -> None:
        """Set several controls at once with a single redraw.

        Example:
            >>> from lgkit.analysis import synthetic_stats
            >>> ex = Explorer(synthetic_stats(n_samples=2, n_layers=3))
            >>> ex.set(metric="loss", cot=("detailed",))
            >>> len(ex.figure.axes)
            1
        """
        self._hold = True
        try:
            for name, val in values.items():
                getattr(self, name).value = val
        finally:
            self._hold = False
        self.redraw()

    def filtered(self) -> pd.DataFrame:
        """The rows selected by the current controls."""
        where: dict[str, Any] = {}
        if self.dataset.value != ALL:
            where["dataset"] = self._original(self.dataset.value, "dataset")
        if self.model.value != ALL and "model" in self.df:
            where["model"] = self._original(self.model.value, "model")
        if "cot" in self.df:
            where["cot"] = list(self.cot.value)
        if self.correct.value != "all":
            where["correct"] = self.correct.value == "correct"
        d = A.filter_table(self.df, where)
        lo, hi = self.layers.value
        d = d[d["layer"].between(lo, hi) & d["module"].isin(list(self.modules.value))]
        return d

    def selection(self) -> str:
        """The current selection in words (the figure's title).

        Example:
            >>> from lgkit.analysis import synthetic_stats
            >>> Explorer(synthetic_stats(n_samples=2, n_layers=3)).selection()
            'all datasets · correct responses · layers 0–2 · Q, K, V, O'
        """
        lo, hi = self.layers.value
        parts = [
            "all datasets" if self.dataset.value == ALL else str(self.dataset.value),
            *([] if self.model.value == ALL else [str(self.model.value)]),
            {"all": "all responses", "correct": "correct responses"}.get(
                self.correct.value, "irrelevant responses"
            ),
            f"layers {lo}–{hi}",
            ", ".join(m.upper() for m in self.modules.value),
        ]
        return " · ".join(parts)

    def _original(self, text: str, col: str) -> Any:
        for v in self.df[col].dropna().unique():
            if str(v) == text:
                return v
        return text

    def redraw(self) -> Figure:
        """Recompute the curves for the current controls and redraw the figure."""
        d = self.filtered()
        if d.empty or not self.modules.value:
            fig = vstyle.empty_figure("no rows match the selection")
        else:
            fig = P.layer_figure(
                d,
                columns="cot" if "cot" in d else None,
                metric=self.metric.value,
                include_ratio=self.ratio.value and "sigma1_ratio" in d,
                bands=self.bands.value,
                modules=list(self.modules.value),
                n_boot=self.n_boot,
                column_order=list(self.cot.value) if "cot" in d else None,
                suptitle=self.selection(),
            )
        self._show(fig)
        return fig


TOKEN_COLUMNS = ("sample_id", "position", "token", "in_response", "layer", "module", "token_norm")


def token_share_html(token_stats: pd.DataFrame, sample_id: str, layer: int, module: str) -> str:
    """An example's response tokens coloured by their share of one layer/module's gradient.

    The share of token t is ``token_norm_t / Σ token_norm`` over the response tokens
    (``token_norm`` = ‖d_t‖‖x_t‖, the per-token table of ``--token-stats``); the red
    intensity is the share relative to the largest one, and each token's title shows
    its share. The text is HTML-escaped.

    Example:
        >>> t = pd.DataFrame({"sample_id": "s", "position": [0, 1], "token": ["<b>", "7"],
        ...     "in_response": True, "layer": 0, "module": "q", "token_norm": [1.0, 3.0]})
        >>> h = token_share_html(t, "s", 0, "q")
        >>> "&lt;b&gt;" in h, "75.0%" in h, h.count("<b>")  # the heading only
        (True, True, 1)
    """
    A.check_columns(token_stats, TOKEN_COLUMNS, "per-token table")
    t = token_stats[
        (token_stats["sample_id"] == sample_id)
        & (token_stats["layer"] == layer)
        & (token_stats["module"] == module)
        & token_stats["in_response"].astype(bool)
    ].sort_values("position")
    if t.empty:
        return f"<i>no response tokens of {html.escape(str(sample_id))} at layer {layer}, {html.escape(str(module))}</i>"
    share = t["token_norm"].to_numpy(dtype=float)
    total = share.sum()
    share = share / total if total > 0 else share * 0.0
    top = share.max() if share.max() > 0 else 1.0
    spans = []
    for tok, sh in zip(t["token"].astype(str), share, strict=True):
        alpha = round(float(sh / top), 3)
        spans.append(
            f"<span title='{100 * sh:.1f}%' style='background: rgba(220, 30, 30, {alpha})'>"
            f"{html.escape(tok)}</span>"
        )
    head = f"<b>Token share of the gradient</b> (layer {layer}, {html.escape(str(module))})"
    scale = (
        "<div style='font-size:13px;margin:4px 0'>colour scale: 0% "
        "<span style='display:inline-block;width:140px;height:12px;vertical-align:middle;"
        "background:linear-gradient(to right, rgba(220,30,30,0), rgba(220,30,30,1));"
        f"border:1px solid #999'></span> {100 * top:.1f}% (the largest token; "
        f"{100 / len(share):.1f}% each if all {len(share)} tokens contributed alike)</div>"
    )
    return f"{head}{scale}<div style='white-space: pre-wrap;font-size:14px'>{''.join(spans)}</div>"


class ExampleDrilldown(_Panel):
    """Pick one example: show its text and its own per-layer curves.

    Controls: ``example`` (Dropdown of sample ids present in both the table and
    ``examples``), ``metric`` (Dropdown), ``modules`` (SelectMultiple) and
    ``group_mean`` (Checkbox: overlay, dashed, the mean curve of the examples sharing
    its dataset/cot/correct/model). ``text`` is an HTML widget with the instruction,
    input, output and per-example numbers; ``figure`` is the current figure.

    Args:
        df: statistics table.
        examples: ``{sample_id: Example}`` or an iterable of Example records (keyed
            by their ``sample_id``).
        metric: initial metric.
        token_stats: optional per-token table (``lgkit.load_token_stats``): then
            ``tokens`` shows the response coloured by each token's share of the gradient
            of the layer ``token_layer`` and module ``token_module`` (Dropdowns).

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> df = synthetic_stats(n_samples=2, n_layers=4)
        >>> exs = {s: Example(instruction=f"Q {s}", output="A") for s in df.sample_id.unique()}
        >>> dd = ExampleDrilldown(df, exs)
        >>> dd.example.value = "aqua-none-c-001"
        >>> "Q aqua-none-c-001" in dd.text.value
        True
    """

    def __init__(
        self,
        df: pd.DataFrame,
        examples: Mapping[str, Example] | Iterable[Example],
        metric: str = "nuclear_norm",
        token_stats: pd.DataFrame | None = None,
    ) -> None:
        A.check_columns(df, A.REQUIRED_COLUMNS)
        if token_stats is not None:
            A.check_columns(token_stats, TOKEN_COLUMNS, "per-token table")
        self.df = df
        self.token_stats = token_stats
        self.examples: Mapping[str, Example] = (
            cast("Mapping[str, Example]", examples)  # Mapping of the Union, not of Iterable
            if isinstance(examples, Mapping)
            else {e.sample_id: e for e in examples}
        )
        examples = self.examples
        self._figure = None
        ids = [s for s in dict.fromkeys(df["sample_id"]) if s in examples]
        if not ids:
            logger.warning("ExampleDrilldown: no sample_id of the table is among the examples")
        self.example = w.Dropdown(
            options=[(self._option_label(s), s) for s in ids],
            value=ids[0] if ids else None,
            description="example",
            layout=w.Layout(width="60%"),
        )
        metrics = A.available_metrics(df)
        self.metric = w.Dropdown(
            options=metrics, value=metric if metric in metrics else metrics[0], description="metric"
        )
        mods = A.value_order(df["module"].unique(), "module")
        self.modules = w.SelectMultiple(
            options=mods,
            value=tuple(m for m in mods if m in ATTN_MODULES) or tuple(mods),
            description="modules",
            rows=min(len(mods), 7),
        )
        self.group_mean = w.Checkbox(value=True, description="group mean (dashed)")
        self.text = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(max_width="55%", height="auto"))
        src = token_stats if token_stats is not None else df
        layers = sorted(int(x) for x in src["layer"].unique())
        self.token_layer = w.Dropdown(options=layers, value=layers[0] if layers else None,
                                      description="token layer")  # fmt: skip
        tmods = A.value_order(src["module"].unique(), "module")
        self.token_module = w.Dropdown(options=tmods, value=tmods[0] if tmods else None,
                                       description="token module")  # fmt: skip
        self.tokens = w.HTML()
        for c in (self.example, self.metric, self.modules, self.group_mean):
            c.observe(lambda _ch: self.redraw(), names="value")
        for c in (self.token_layer, self.token_module):
            c.observe(lambda _ch: self.redraw_tokens(), names="value")
        rows = [
            w.HBox([self.example, self.metric]),
            w.HBox([self.modules, self.group_mean]),
            w.HBox(
                [w.Box([self.text], layout=w.Layout(width="45%")), self.image],
                layout=w.Layout(align_items="flex-start"),  # the picture keeps its aspect ratio
            ),
        ]
        if token_stats is not None:
            rows += [w.HBox([self.token_layer, self.token_module]), self.tokens]
        self.widget = w.VBox(rows)
        self.redraw()

    def redraw_tokens(self) -> None:
        """Recolour the response tokens (only with a per-token table)."""
        sid = self.example.value
        if self.token_stats is None or sid is None:
            self.tokens.value = ""
            return
        self.tokens.value = token_share_html(
            self.token_stats, sid, self.token_layer.value, self.token_module.value
        )

    def _option_label(self, sid: str) -> str:
        ex = self.examples[sid]
        first = ex.instruction.strip().splitlines()[0] if ex.instruction.strip() else ""
        return f"{sid} — {first[:60]}"

    def _rows(self, sid: str) -> pd.DataFrame:
        return self.df[self.df["sample_id"] == sid]

    def _text_html(self, sid: str, rows: pd.DataFrame) -> str:
        ex = self.examples[sid]
        esc = html.escape
        meta = rows.iloc[0] if len(rows) else pd.Series(dtype=object)
        facts = []
        for col in (
            "model",
            "dataset",
            "cot",
            "correct",
            "loss",
            "n_prompt_tokens",
            "n_response_tokens",
            "truncated",
        ):
            if col in meta.index:
                v = meta[col]
                v = f"{v:.4g}" if isinstance(v, float) else v
                facts.append(f"<b>{esc(col)}</b>: {esc(str(v))}")
        pre = "white-space: pre-wrap; max-height: 18em; overflow-y: auto; border: 1px solid #ddd; padding: 4px"
        parts = [
            f"<h4>{esc(sid)}</h4>",
            "<p>" + " · ".join(facts) + "</p>",
            f"<b>Instruction</b><div style='{pre}'>{esc(ex.instruction)}</div>",
        ]
        if ex.input:
            parts.append(f"<b>Input</b><div style='{pre}'>{esc(ex.input)}</div>")
        parts.append(f"<b>Output</b><div style='{pre}'>{esc(ex.output)}</div>")
        return "\n".join(parts)

    def redraw(self) -> Figure:
        """Redraw the text and curves for the selected example."""
        sid = self.example.value
        if sid is None:
            self.text.value = "<i>no example</i>"
            fig = vstyle.empty_figure("no example")
            self._show(fig)
            return fig
        rows = self._rows(sid)
        self.text.value = self._text_html(sid, rows)
        self.redraw_tokens()
        metric = self.metric.value
        mods = list(self.modules.value)
        fig = Figure(figsize=(7.5, 3.8), layout="constrained")
        ax = fig.subplots()
        vals = rows.assign(_v=A.metric_values(rows, metric))
        models = list(dict.fromkeys(vals["model"])) if "model" in vals else [None]
        for k, model in enumerate(models):
            vm = vals[vals["model"] == model] if model is not None else vals
            style = vstyle.LINESTYLES[k % len(vstyle.LINESTYLES)] if len(models) > 1 else "-"
            for m in mods:
                g = vm[vm["module"] == m].groupby("layer")["_v"].mean()
                lab = vstyle.module_label(m) + (
                    f" ({model})" if model is not None and len(models) > 1 else ""
                )
                ax.plot(
                    g.index.to_numpy(),
                    g.to_numpy(),
                    c=vstyle.MODULE_COLORS.get(m, "k"),
                    linestyle=style,
                    marker="o",
                    markersize=3,
                    label=lab,
                )
        if self.group_mean.value and len(rows):
            keys = [c for c in A.KEY_COLUMNS if c in rows.columns]
            where = {c: rows.iloc[0][c] for c in keys if pd.notna(rows.iloc[0][c])}
            curves = A.layer_curves(self.df, metric, by=None, modules=mods, where=where, n_boot=0)
            for m in mods:
                g = curves[curves["module"] == m]
                ax.plot(
                    g["layer"].to_numpy(),
                    g["mean"].to_numpy(),
                    c=vstyle.MODULE_COLORS.get(m, "k"),
                    linestyle="--",
                    alpha=0.6,
                    linewidth=1,
                    label=f"{vstyle.module_label(m)} group mean" if m == mods[0] else None,
                )
        vstyle.style_axis(ax, A.metric_label(metric), ylabel=A.metric_label(metric))
        fig.suptitle(vstyle.one_line_title(rows, sid))
        if ax.lines:
            fig.legend(loc="outside lower center", ncol=3, frameon=False)
        vstyle.readable(fig)
        self._show(fig)
        return fig


__all__ = [
    "Explorer",
    "ExampleDrilldown",
    "ALL",
    "figure_png",
    "metric_options",
    "token_share_html",
]
