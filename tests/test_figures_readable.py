"""Issue 11 item 6: figures a reader can use without the notebook."""

from __future__ import annotations

import pandas as pd

from lgkit import analysis as A
from lgkit.series.report import png_title, write_index
from lgkit.viz import plots as P


def _two_models() -> pd.DataFrame:
    a = A.synthetic_stats(n_samples=3, n_layers=4, model="base-4")
    b = A.synthetic_stats(n_samples=3, n_layers=8, model="instruct-8")
    return pd.concat([a, b], ignore_index=True)


def _overlaps(fig, legend) -> bool:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()  # a real draw: constrained layout places axes and legend
    lb = legend.get_window_extent()
    return any(ax.get_window_extent().overlaps(lb) for ax in fig.axes)


def test_titles_name_model_and_data_and_legends_sit_outside():
    df = A.synthetic_stats(n_samples=3, n_layers=5, model="tiny-m")
    figs = [
        P.layer_figure(df, bands=False, include_ratio=True),
        P.correct_vs_irrelevant_figure(df),
        P.relative_difference_figure(df),
        P.mad_bar_figure(A.mad_table(df, by="cot", where={"correct": True}), source=df),
    ]
    for fig in figs:
        title = fig.get_suptitle()
        assert "tiny-m" in title and "gsm8k" in title, title
        assert not any(ax.get_legend() for ax in fig.axes)  # no legend over the data
        assert len(fig.legends) == 1 and not _overlaps(fig, fig.legends[0])


def test_models_of_different_depth_on_relative_depth():
    fig = P.base_vs_instruct_figure(_two_models(), where={"correct": True}, bands=False)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("Relative depth")
    xs = [ln.get_xdata() for ln in ax.lines]
    assert all(0 <= x.min() and x.max() < 1 for x in xs)
    assert {len(x) for x in xs} == {4, 8}  # every layer of each model, on one 0..1 axis
    same = P.base_vs_instruct_figure(
        pd.concat([A.synthetic_stats(n_samples=2, n_layers=4, model=m) for m in "ab"]), bands=False
    )
    assert same.axes[0].get_xlabel() == "Layer"  # equal depth: plain layer numbers


def test_index_gives_each_figure_its_caption(tmp_path):
    df = A.synthetic_stats(n_samples=2, n_layers=3, model="tiny-m")
    d = tmp_path / "02_math"
    P.save_figure(P.layer_figure(df, bands=False), d / "figures" / "layers")
    cap = png_title(d / "figures" / "layers.png")
    assert cap and "tiny-m" in cap and "None CoT" in cap
    page = write_index(tmp_path).read_text()
    assert "<figcaption>" in page and "model: tiny-m" in page
