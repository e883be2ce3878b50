"""Tests of lgkit.viz.plots: figure layout, line data, files written, no pyplot state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from lgkit import analysis as A
from lgkit.viz import plots as P
from lgkit.viz.style import MODULE_COLORS


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return A.synthetic_stats(n_samples=6, n_layers=6)


def test_import_does_not_touch_pyplot_or_backend():
    import inspect

    import matplotlib.pyplot as plt

    src = inspect.getsource(P)
    assert "import matplotlib.pyplot" not in src and "matplotlib.use(" not in src
    n = len(plt.get_fignums())
    P.layer_figure(A.synthetic_stats(n_samples=2, n_layers=3), bands=False)
    assert len(plt.get_fignums()) == n  # figures are not registered with pyplot


def test_layer_figure_layout_and_data(df):
    fig = P.layer_figure(df, columns="cot", bands=False, where={"correct": True})
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == [
        "None CoT",
        "Simplified CoT",
        "Detailed CoT",
    ]
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["Proj_Q", "Proj_K", "Proj_V", "Proj_O"]
    assert [ln.get_color() for ln in ax.lines] == [MODULE_COLORS[m] for m in "qkvo"]  # Okabe–Ito
    assert len({ln.get_marker() for ln in ax.lines}) == 4  # a marker per projection too
    curves = A.layer_curves(df, "nuclear_norm", by="cot", where={"correct": True}, n_boot=0)
    exp = curves[(curves.cot == "none") & (curves.module == "v")].sort_values("layer")["mean"]
    np.testing.assert_allclose(ax.lines[2].get_ydata(), exp.to_numpy())
    np.testing.assert_array_equal(ax.lines[2].get_xdata(), np.arange(6))


def test_layer_figure_with_ratio_rows_and_bands(df):
    fig = P.layer_figure(df, include_ratio=True, bands=True, n_boot=50, where={"correct": True})
    assert len(fig.axes) == 9
    axs = np.array(fig.axes).reshape(3, 3)
    assert [len(ax.lines) for ax in axs[0]] == [4, 4, 4]
    assert [len(ax.lines) for ax in axs[1]] == [2, 2, 2]
    assert [ln.get_label() for ln in axs[2, 0].lines] == ["Proj_V", "Proj_O"]
    assert axs[1, 2].get_title() == "Detailed CoT | Ratio (Q, K)"
    assert axs[0, 0].get_ylabel() == "Nuclear Norm"  # the metric names the y axis, not each panel
    assert sum(isinstance(c, PolyCollection) for c in axs[0, 0].collections) == 4


def test_layer_figure_options(df):
    fig = P.layer_figure(
        df, columns=None, metric="S_sum_regularized", bands=False, modules=["q", "o"], layers=(1, 4)
    )
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2
    assert fig.axes[0].get_title() == "Nuclear Norm / Loss"
    assert fig.axes[0].lines[0].get_xdata().tolist() == [1, 2, 3, 4]
    fig2 = P.layer_figure(
        df,
        columns="cot",
        column_order=["detailed", "none"],
        bands=False,
        column_labels={"none": "Fast"},
    )
    assert [ax.get_title().split(" |")[0] for ax in fig2.axes] == ["Detailed CoT", "Fast"]
    fig3 = P.layer_figure(df, columns="dataset", bands=False)
    assert [ax.get_title().split(" |")[0] for ax in fig3.axes] == ["aqua", "ecqa", "gsm8k"]
    empty = P.layer_figure(df, where={"cot": "nope"})
    assert len(empty.axes) == 1


def test_correct_vs_irrelevant_overlay(df):
    fig = P.correct_vs_irrelevant_figure(df)
    assert len(fig.axes) == 3
    ax = fig.axes[2]
    assert len(ax.lines) == 8  # 4 modules × (correct, irrelevant)
    styles = [ln.get_linestyle() for ln in ax.lines]
    assert styles == ["-"] * 4 + ["--"] * 4
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[-2:] == ["Correct", "Irrelevant"]
    # dashed (irrelevant) curve is the mean of irrelevant examples
    c = A.layer_curves(df, by=["cot", "correct"], n_boot=0)
    exp = c[(c.cot == "detailed") & ~c.correct.astype(bool) & (c.module == "q")]["mean"].to_numpy()
    np.testing.assert_allclose(ax.lines[4].get_ydata(), exp)


def test_base_vs_instruct_overlay():
    df = pd.concat(
        [
            A.synthetic_stats(n_samples=3, n_layers=4, model="base"),
            A.synthetic_stats(n_samples=3, n_layers=4, model="instruct", scale=0.5),
        ]
    )
    fig = P.base_vs_instruct_figure(
        df, where={"correct": True}, hue_order=["base", "instruct"], bands=True
    )
    assert len(fig.axes) == 3 and all(len(ax.lines) == 8 for ax in fig.axes)
    base_q = fig.axes[0].lines[0].get_ydata()
    inst_q = fig.axes[0].lines[4].get_ydata()
    np.testing.assert_allclose(inst_q / base_q, 0.5, rtol=0.3)


def test_relative_difference_figure(df):
    fig = P.relative_difference_figure(df)
    assert len(fig.axes) == 3
    assert len(fig.axes[0].lines) == 5  # 4 modules + zero line
    rd = A.relative_difference_curves(df, by="cot")
    exp = rd[(rd.cot == "none") & (rd.module == "q")]["rd_signed"].to_numpy()
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), exp)


def test_mad_bar_figure(df):
    mad = A.mad_table(df, by="cot", where={"correct": True})
    fig = P.mad_bar_figure(mad, metric="nuclear_norm")
    assert len(fig.axes) == 4
    ax = fig.axes[0]
    assert len(ax.patches) == 12  # 4 parts × 3 cot levels
    none_q = mad[(mad.cot == "none") & (mad.module == "q")].iloc[0]
    heights = [p.get_height() for p in ax.patches[:4]]
    np.testing.assert_allclose(
        heights, none_q[["early", "middle", "late", "all"]].to_numpy(dtype=float)
    )
    fig2 = P.mad_bar_figure(mad, parts=("all",), modules=["v"])
    assert len(fig2.axes) == 1 and len(fig2.axes[0].patches) == 3


def test_save_figure_writes_png_and_pdf(tmp_path, df):
    fig = P.layer_figure(df, bands=False)
    paths = P.save_figure(fig, tmp_path / "out" / "fig1.png")
    assert [p.name for p in paths] == ["fig1.png", "fig1.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert P.save_figure(fig, tmp_path / "x", formats=("svg",))[0].suffix == ".svg"
