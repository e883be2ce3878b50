"""Tests of lgkit.viz.widgets: drive the controls and check the figure updates."""

from __future__ import annotations

import ipywidgets as w
import numpy as np
import pandas as pd
import pytest

from lgkit import analysis as A
from lgkit.formats.records import Example
from lgkit.viz.widgets import ALL, ExampleDrilldown, Explorer


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return A.synthetic_stats(n_samples=4, n_layers=6)


def test_explorer_initial_figure_and_controls(df):
    ex = Explorer(df)
    assert isinstance(ex.widget, w.VBox) and isinstance(ex.image, w.Image)
    assert ex.image.format == "png" and ex.image.value[:4] == b"\x89PNG"
    assert ex.dataset.options == (ALL, "aqua", "ecqa", "gsm8k")
    assert ex.cot.value == ("none", "simplified", "detailed")
    assert ex.correct.value == "correct"
    assert ex.modules.value == ("q", "k", "v", "o")
    assert ex.layers.value == (0, 5)
    assert ex.model.disabled  # no model column
    fig = ex.figure
    assert (
        len(fig.axes) == 3
        and fig.axes[0].get_title() == "None CoT"
        and fig.axes[0].get_ylabel() == "Nuclear Norm"
    )
    curves = A.layer_curves(df, by="cot", where={"correct": True}, n_boot=0)
    exp = curves[(curves.cot == "none") & (curves.module == "q")]["mean"].to_numpy()
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), exp)


def test_explorer_metric_change_redraws(df):
    ex = Explorer(df)
    first = ex.figure
    ex.metric.value = "sigma1_ratio"
    assert ex.figure is not first
    assert ex.figure.axes[0].get_ylabel() == "σ1 Ratio"
    assert ex.figure.axes[0].get_ylabel() == "σ1 Ratio"
    curves = A.layer_curves(df, "sigma1_ratio", by="cot", where={"correct": True}, n_boot=0)
    exp = curves[(curves.cot == "none") & (curves.module == "q")]["mean"].to_numpy()
    np.testing.assert_allclose(ex.figure.axes[0].lines[0].get_ydata(), exp)


def test_explorer_filters(df):
    ex = Explorer(df)
    ex.dataset.value = "gsm8k"
    ex.correct.value = "irrelevant"
    curves = A.layer_curves(df, by="cot", where={"correct": False, "dataset": "gsm8k"}, n_boot=0)
    exp = curves[(curves.cot == "detailed") & (curves.module == "v")]["mean"].to_numpy()
    ax = ex.figure.axes[2]
    np.testing.assert_allclose(ax.lines[2].get_ydata(), exp)
    ex.modules.value = ("q", "v")
    assert [len(a.lines) for a in ex.figure.axes] == [2, 2, 2]
    ex.cot.value = ("detailed",)
    assert len(ex.figure.axes) == 1 and ex.figure.axes[0].get_title().startswith("Detailed CoT")
    ex.layers.value = (2, 4)
    assert ex.figure.axes[0].lines[0].get_xdata().tolist() == [2, 3, 4]
    ex.ratio.value = True
    assert len(ex.figure.axes) == 3  # 3 rows × 1 panel
    ex.cot.value = ()
    assert ex.figure.axes[0].texts[0].get_text() == "no rows match the selection"


def test_explorer_set_many_redraws_once_and_bands(df, monkeypatch):
    ex = Explorer(df, n_boot=20)
    calls = []
    orig = ex.redraw
    monkeypatch.setattr(ex, "redraw", lambda: calls.append(1) or orig())
    ex.set(metric="effective_rank", bands=True, modules=("k",))
    assert len(calls) == 1
    assert ex.figure.axes[0].get_ylabel() == "Effective Rank"
    assert len(ex.figure.axes[0].collections) == 1  # one band for K


def test_explorer_model_dropdown():
    df = pd.concat(
        [
            A.synthetic_stats(n_samples=2, n_layers=3, model="base"),
            A.synthetic_stats(n_samples=2, n_layers=3, model="instruct", scale=3.0),
        ]
    )
    ex = Explorer(df)
    assert not ex.model.disabled and ex.model.options == (ALL, "base", "instruct")
    ex.model.value = "base"
    y_base = ex.figure.axes[0].lines[0].get_ydata()
    ex.model.value = "instruct"
    y_inst = ex.figure.axes[0].lines[0].get_ydata()
    np.testing.assert_allclose(y_inst / y_base, 3.0, rtol=0.3)


def test_explorer_display_outside_kernel(df, capsys):
    ex = Explorer(df)
    ex.display()
    ex._ipython_display_()
    capsys.readouterr()  # no exception outside a kernel


def examples_for(df: pd.DataFrame) -> dict[str, Example]:
    return {
        s: Example(instruction=f"Question {s}?", input="ctx <b>", output=f"Answer & {s}", id=s)
        for s in df["sample_id"].unique()
    }


def test_example_drilldown_text_and_curves(df):
    exs = examples_for(df)
    dd = ExampleDrilldown(df, exs)
    sid = "gsm8k-detailed-i-002"
    dd.example.value = sid
    assert f"Question {sid}?" in dd.text.value
    assert "ctx &lt;b&gt;" in dd.text.value and f"Answer &amp; {sid}" in dd.text.value
    assert "<b>cot</b>: detailed" in dd.text.value
    ax = dd.figure.axes[0]
    assert ax.get_title() == "Nuclear Norm" and dd.figure.get_suptitle().startswith(sid)
    own = df[(df.sample_id == sid) & (df.module == "q")].sort_values("layer")["nuclear_norm"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), own.to_numpy())
    assert len(ax.lines) == 8  # 4 own curves + 4 group means
    group = A.layer_curves(
        df, where={"dataset": "gsm8k", "cot": "detailed", "correct": False}, by=None, n_boot=0
    )
    np.testing.assert_allclose(
        ax.lines[4].get_ydata(), group[group.module == "q"]["mean"].to_numpy()
    )
    dd.group_mean.value = False
    assert len(dd.figure.axes[0].lines) == 4
    dd.metric.value = "sigma1_ratio"
    assert dd.figure.axes[0].get_title() == "σ1 Ratio"
    dd.modules.value = ("o",)
    assert len(dd.figure.axes[0].lines) == 1


def test_example_drilldown_accepts_iterable_and_missing(df):
    exs = list(examples_for(df).values())[:3]
    dd = ExampleDrilldown(df, exs)
    assert len(dd.example.options) == 3
    assert dd.example.value == exs[0].sample_id
    none = ExampleDrilldown(df, {})
    assert none.example.value is None and "no example" in none.text.value


def test_explorer_redraws_picture_in_place(df):
    """A control change replaces the PNG bytes of the same Image widget (no text repr)."""
    ex = Explorer(df)
    image, before = ex.image, ex.image.value
    ex.metric.value = "sigma1_ratio"
    assert ex.image is image and image.value[:4] == b"\x89PNG" and image.value != before
    assert image in ex.widget.children


def test_drilldown_draws_png(df):
    exs = {s: Example(instruction=f"Q {s}", output="A") for s in df.sample_id.unique()}
    dd = ExampleDrilldown(df, exs)
    before = dd.image.value
    assert before[:4] == b"\x89PNG"
    dd.example.value = dd.example.options[1][1]
    assert dd.image.value[:4] == b"\x89PNG" and dd.image.value != before


def test_batch_run_displays_the_picture_not_widgets(df, monkeypatch):
    """Under `lgkit run` (LGKIT_BATCH set) a panel displays a PNG image, never a widget view."""
    from IPython.core.formatters import format_display_data
    from IPython.display import Image

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    monkeypatch.setenv("LGKIT_BATCH", "1")
    ex = Explorer(df)
    ex._ipython_display_()
    assert len(shown) == 1 and isinstance(shown[0], Image)
    assert shown[0].data[:4] == b"\x89PNG"
    assert "image/png" in format_display_data(shown[0])[0]
    monkeypatch.delenv("LGKIT_BATCH")
    shown.clear()
    ex._ipython_display_()
    # interactive: a static picture of the default view (kept after a kernel restart), then
    # the live widget box
    import base64

    assert len(shown) == 3 and isinstance(shown[1], dict) and not isinstance(shown[2], Image)
    assert base64.b64decode(shown[1]["image/png"]) == ex._default_png
    assert "Static picture" in shown[0].data and "alt='Static picture" in shown[1]["text/html"]


def test_drilldown_token_shares_from_a_real_token_table(tmp_path):
    """--token-stats on a tiny model: the drill-down colours each response token by its share."""
    import re

    import lgkit
    from lgkit.engine.config import GradConfig
    from lgkit.engine.run import compute_stats
    from lgkit.formats.records import write_examples

    exs = [
        Example("What is <2+3>?", "", "2 plus 3 makes <5> & done.", id="t-1", dataset="t"),
        Example("Add 7 and 8.", "", "15", id="t-2", dataset="t"),
    ]
    data = write_examples(tmp_path / "ex.jsonl", exs)
    out = tmp_path / "run"
    compute_stats("tiny-random-llama", data, out, GradConfig(token_stats=True), progress=False)
    stats, toks = lgkit.load_stats(out), lgkit.load_token_stats(out)
    dd = ExampleDrilldown(stats, exs, token_stats=toks)
    assert dd.tokens in dd.widget.children
    dd.example.value = "t-1"
    dd.token_layer.value, dd.token_module.value = 1, "v"
    html = dd.tokens.value
    assert "layer 1, v" in html and "&lt;" in html and "&amp;" in html and "<5" not in html
    shares = [float(x) for x in re.findall(r"title='([0-9.]+)%'", html)]
    mine = toks[
        (toks.sample_id == "t-1") & (toks.layer == 1) & (toks.module == "v") & toks.in_response
    ]
    assert len(shares) == len(mine) and sum(shares) == pytest.approx(100, abs=0.1 * len(shares))
    top = mine["token_norm"].to_numpy().argmax()
    assert max(shares) == pytest.approx(
        100 * mine["token_norm"].max() / mine["token_norm"].sum(), abs=0.06
    )
    assert shares.index(max(shares)) == top
    # without a per-token table the widget has no token row
    assert ExampleDrilldown(stats, exs).tokens not in ExampleDrilldown(stats, exs).widget.children
