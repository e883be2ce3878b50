"""Figures of 07 and 08 are readable in a room (issue 18's rule, as for 02-06): at most
MAX_WIDTH_IN wide, every visible text at least BASE_PT, one legend outside the panels, and
Okabe-Ito colours with a marker per arm. Checked on the figure objects; the browser test
checks the rendered size of 02's and 06's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from lgkit.series import quality as Q
from lgkit.viz import training as VT
from lgkit.viz.style import BASE_PT, MAX_WIDTH_IN, OKABE_ITO


def _texts_ok(fig) -> None:
    fig.canvas.draw()  # layout done: what a reader sees
    assert fig.get_figwidth() <= MAX_WIDTH_IN + 1e-9
    small = [
        (t.get_text(), t.get_fontsize())
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < BASE_PT - 1e-9
    ]
    assert not small, small
    assert not any(ax.get_legend() for ax in fig.axes), "a legend over the data"


def _training_tables() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    probe, upd, loss, held = [], [], [], []
    for arm in ("fast", "slow", "slow_answer"):
        for optim in ("adamw", "sgd"):
            for step in (0, 3, 6):
                loss.append(dict(arm=arm, optim=optim, seed=0, step=step, loss=2 - 0.1 * step))
                held.append(
                    dict(arm=arm, optim=optim, seed=0, step=step, heldout_loss=3 - 0.1 * step)
                )
                for layer in range(30):
                    for module in ("q", "k", "v", "o"):
                        probe.append(dict(arm=arm, optim=optim, seed=0, step=step, layer=layer,
                                          module=module, nuclear_norm=rng.random()))  # fmt: skip
                        upd.append(dict(arm=arm, optim=optim, seed=0, step=step, kind="update",
                                        layer=layer, module=module, nuclear_norm=rng.random(),
                                        effective_rank=rng.random()))  # fmt: skip
    return {k: pd.DataFrame(v) for k, v in
            (("probe", probe), ("updates", upd), ("loss", loss), ("heldout", held))}  # fmt: skip


@pytest.mark.parametrize(
    "make",
    [
        lambda t: VT.probe_heatmaps(t["probe"]),
        lambda t: VT.probe_mad_figure(t["probe"]),
        lambda t: VT.update_layer_figure(t["updates"]),
        lambda t: VT.loss_figure(t["loss"], t["heldout"]),
        lambda t: VT.optimizer_figure(t["updates"]),
        lambda t: VT.probe_heatmaps(t["probe"], what="in-step"),
        lambda t: VT.instep_ratio_figure(
            t["probe"].assign(qid="q" + t["probe"]["step"].astype(str))
        ),
    ],
    ids=[
        "heatmaps",
        "mad",
        "update_layers",
        "loss",
        "optimizer",
        "instep_heatmaps",
        "instep_ratio",
    ],
)
def test_training_figures_are_readable(make):
    fig = make(_training_tables())
    _texts_ok(fig)
    lines = [
        ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label() in VT.ARM_LABELS.values()
    ]
    for ln in lines:  # colour-blind safe, and told apart without colour too
        assert ln.get_color() in OKABE_ITO.values() and ln.get_marker() not in (None, "None", "")


def test_auroc_figure_is_readable_and_not_shown_twice():
    import matplotlib.pyplot as plt

    rows = [
        dict(contrast=c, label=c.replace("_", " "), score=s, length_matched=m,
             auroc=0.6, ci_low=0.5, ci_high=0.7)
        for c in ("correct_vs_irrelevant", "detailed_vs_none")
        for s in ("nuclear_norm", "effective_rank", "n_response_tokens")
        for m in (False, True)
    ]  # fmt: skip
    before = plt.get_fignums()
    fig = Q.auroc_figure(pd.DataFrame(rows), pd.DataFrame(rows), title="m | math")
    assert plt.get_fignums() == before  # not a pyplot figure: the notebook shows it once
    _texts_ok(fig)


def _auroc_rows(auroc: float = 0.6) -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(contrast=c, label=c.replace("_", " "), score=s, adjust=a, n_units=8,
                 auroc=auroc, ci_low=max(auroc - 0.1, 0.0), ci_high=min(auroc + 0.1, 1.0))
            for c in ("correct_vs_irrelevant", "detailed_vs_none")
            for s in ("nuclear_norm", "effective_rank", "n_response_tokens")
            for a in (("none", "length") if c == "correct_vs_irrelevant" else ("none", "loss"))
        ]
    )  # fmt: skip


def test_auroc_figure_legend_tells_colours_and_fills_and_keeps_0_and_1_inside():
    """Issue 29 (5): every colour and marker fill in the legend, whichever panel has it
    (here only the second panel has loss-matched rows); AUROC 0 and 1 inside the axes."""
    fig = Q.auroc_figure(_auroc_rows(1.0), _auroc_rows(0.0), title="m | math")
    _texts_ok(fig)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        Q.LEGEND[k] for k in ("none", "length", "loss", "twin")
    ]
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert lo < 0 and hi > 1, (lo, hi)  # markers at 0 and 1 not cut in half


@pytest.mark.parametrize("optims", [("adamw",), ("adamw", "sgd")])
def test_loss_figure_text_matches_the_optimizers_and_arms_run(optims):
    """Issue 29 (5): no "dashed: SGD" without SGD runs; "Both arms" only with two arms."""
    t = _training_tables()
    loss, held = (t[k][t[k].optim.isin(optims)] for k in ("loss", "heldout"))
    fig = VT.loss_figure(loss, held)
    title = fig.get_suptitle()
    assert ("SGD" in title) == ("sgd" in optims) and "AdamW" in title
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("SGD" in lab for lab in labels) == ("sgd" in optims)
    assert len(labels) == 3 * len(optims)
    assert VT.loss_look_for(loss).startswith("All 3 arms")
    assert VT.loss_look_for(loss[loss.arm != "slow_answer"]).startswith("Both arms")
