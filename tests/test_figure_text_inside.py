"""No figure title or label cut off (issue 29): every text of every saved figure lies inside
its canvas, checked on the figure as saved (each text's extent after the layout) and on the
saved PNG itself (no ink on its outermost pixels: a cut title touches the edge)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from lgkit.analysis import mad_table, synthetic_stats
from lgkit.viz import plots
from lgkit.viz import summaries as VS
from lgkit.viz import training as VT
from lgkit.viz.style import empty_figure, text_width_pt, wrap_to_width

LONG = "smollm2-135m-instruct | commonsense | correct responses"  # 06's titles


def text_outside(fig, tol_px: float = 1.0) -> list[tuple[str, tuple[float, ...]]]:
    """The visible texts of ``fig`` (as laid out when saved) that reach outside its canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    W, H = fig.bbox.width, fig.bbox.height
    undrawn = set()  # tick labels of ticks outside the view: kept by matplotlib, never drawn
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            drawn = {id(t) for tick in axis._update_ticks() for t in (tick.label1, tick.label2)}
            for tick in [*axis.majorTicks, *axis.minorTicks]:
                undrawn |= {id(t) for t in (tick.label1, tick.label2) if id(t) not in drawn}
    out = []
    for t in fig.findobj(Text):
        if not (t.get_visible() and t.get_text().strip()) or id(t) in undrawn:
            continue
        b = t.get_window_extent(r)
        if b.x0 < -tol_px or b.y0 < -tol_px or b.x1 > W + tol_px or b.y1 > H + tol_px:
            out.append((t.get_text(), (round(b.x0), round(b.y0), round(b.x1), round(b.y1), W, H)))
    return out


def ink_on_edges(png: bytes, edge: int = 2) -> list[str]:
    """The edges of a PNG (top, bottom, left, right) with non-white pixels within ``edge`` px."""
    import io

    from matplotlib.image import imread

    a = imread(io.BytesIO(png), format="png")[..., :3]
    dark = (a < 0.85).any(axis=2)
    sides = {
        "top": dark[:edge],
        "bottom": dark[-edge:],
        "left": dark[:, :edge],
        "right": dark[:, -edge:],
    }
    return [k for k, v in sides.items() if v.any()]


def _training() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    probe, upd, loss, held = [], [], [], []
    for arm in ("fast", "slow", "slow_answer"):
        for step in (0, 3):
            loss.append(dict(arm=arm, optim="adamw", seed=0, step=step, loss=2 - 0.1 * step))
            held.append(
                dict(arm=arm, optim="adamw", seed=0, step=step, heldout_loss=3 - 0.1 * step)
            )
            for layer in range(12):
                for module in ("q", "k", "v", "o"):
                    probe.append(dict(arm=arm, optim="adamw", seed=0, step=step, layer=layer,
                                      module=module, nuclear_norm=rng.random()))  # fmt: skip
                    upd.append(dict(arm=arm, optim="adamw", seed=0, step=step, kind="update",
                                    layer=layer, module=module, nuclear_norm=rng.random(),
                                    effective_rank=rng.random()))  # fmt: skip
    return {"probe": pd.DataFrame(probe), "updates": pd.DataFrame(upd),
            "loss": pd.DataFrame(loss), "heldout": pd.DataFrame(held)}  # fmt: skip


def _tokens() -> pd.DataFrame:
    rows = [
        dict(sample_id=f"commonsense-ecqa-{s}-detailed-correct", position=p, token=f"t{p}",
             in_response=True, layer=layer, module="q", token_norm=1.0 + (p % 5))
        for s in range(3) for p in range(60) for layer in range(6)
    ]  # fmt: skip
    return pd.DataFrame(rows)


DF = synthetic_stats(n_samples=4, n_layers=6, model="smollm2-135m-instruct")
FIGURES = {
    "layer": lambda: plots.layer_figure(DF, "cot", suptitle=f"{LONG} | mean loss (the paper)"),
    "length_level": lambda: VS.length_level_figure(DF, suptitle=LONG),
    "token_shares": lambda: VS.token_share_figure(
        _tokens(), suptitle=f"{LONG} | correct detailed CoT: token shares, Q"
    ),
    "mad_bars": lambda: VS.mad_bar_figure(mad_table(DF, by=["cot"]), "cot", source=DF),
    "relative_difference": lambda: VS.relative_difference_figure(DF, "correct", True, False, "cot"),
    "correct_vs_irrelevant": lambda: plots.correct_vs_irrelevant_figure(DF, "cot"),
    "empty": lambda: empty_figure(
        "no examples of this family at this CoT level in the data folder"
    ),
    "07_probe_mad": lambda: VT.probe_mad_figure(_training()["probe"]),
    "07_heatmaps": lambda: VT.probe_heatmaps(_training()["probe"]),
    "07_loss": lambda: VT.loss_figure(_training()["loss"], _training()["heldout"]),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_saved_figure_text_inside_the_canvas(name, tmp_path):
    fig = FIGURES[name]()
    (png,) = [p for p in plots.save_figure(fig, tmp_path / name) if p.suffix == ".png"]
    assert not text_outside(fig), text_outside(fig)
    assert not ink_on_edges(png.read_bytes()), (name, ink_on_edges(png.read_bytes()))


def test_a_cut_title_is_caught():
    """The checks can fail: a title wider than its figure is outside the canvas and inks the edges."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3), layout="constrained")
    fig.subplots()
    fig.suptitle("a title much wider than this small figure can show " * 2)
    assert text_outside(fig)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    assert "left" in ink_on_edges(buf.getvalue())


def test_wrap_keeps_every_word_within_the_width():
    text = (
        "model: smollm2-135m-instruct · data: aqua, ecqa, gsm8k, strategyqa · 12 examples per group"
    )
    lines = wrap_to_width(text, 13, 300).split("\n")
    assert len(lines) > 1 and " ".join(lines) == text
    assert all(text_width_pt(ln, 13) <= 300 for ln in lines)
