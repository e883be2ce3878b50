"""Figures of notebook 07 (training dynamics) from the tables of :mod:`lgkit.train`.

Every function takes DataFrames with ``arm``, ``optim``, ``seed`` and ``step`` columns
(:func:`lgkit.series.training.collect_training`) and returns a matplotlib Figure.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"arm": ["fast"] * 4, "optim": ["adamw"] * 4, "seed": [0] * 4,
    ...     "step": [0, 0, 2, 2], "layer": [0, 1, 0, 1], "module": ["q"] * 4,
    ...     "nuclear_norm": [1.0, 2.0, 1.5, 2.5]})
    >>> len(probe_heatmaps(df).axes)
    2
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lgkit.viz.style import OKABE_ITO, legend_below, readable

ARM_COLORS = {"fast": OKABE_ITO["vermillion"], "slow": OKABE_ITO["blue"],
              "slow_answer": OKABE_ITO["reddish purple"]}  # fmt: skip
"""Colour per arm: Okabe–Ito (colour-blind safe); each arm also has its own marker."""
ARM_MARKERS = {"fast": "o", "slow": "s", "slow_answer": "^"}
ARM_LABELS = {"fast": "fast (none-CoT)", "slow": "slow (detailed CoT)",
              "slow_answer": "slow, answer-only loss"}  # fmt: skip


def _style(arm: str) -> dict[str, str]:
    return {"color": ARM_COLORS.get(arm, "k"), "marker": ARM_MARKERS.get(arm, "D"),
            "label": ARM_LABELS.get(arm, arm)}  # fmt: skip


def _finish(fig: Figure, title: str = "") -> Figure:
    """One title line, one legend below the panels (never over the data), sizes for a room."""
    if title:
        fig.suptitle(title)
    handles, labels = [], []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        legend_below(fig, handles, labels, entry_in=2.6)  # arm labels are long
    return readable(fig)


def _arms(df: pd.DataFrame) -> list[str]:
    order = list(ARM_COLORS)
    return sorted(df["arm"].unique(), key=lambda a: order.index(a) if a in order else 99)


def _mad(curve: np.ndarray) -> float:
    return float(np.abs(np.diff(curve)).mean()) if len(curve) > 1 else float("nan")


def probe_heatmaps(
    probe: pd.DataFrame, metric: str = "nuclear_norm", optim: str = "adamw", what: str = "probe"
) -> Figure:
    """Layer × step heatmap of the mean ``metric`` (over examples, modules, seeds), one per arm.

    ``what``: whose statistics (``probe``; ``in-step`` for the training examples' own).
    """
    d = probe[probe["optim"] == optim]
    arms = _arms(d)
    fig = Figure(figsize=(4.2 * len(arms) + 1, 3.6), layout="constrained")
    axes = fig.subplots(1, len(arms), squeeze=False)[0]
    grids = [
        d[d["arm"] == a].groupby(["layer", "step"])[metric].mean().unstack("step") for a in arms
    ]
    vmin = min(float(np.nanmin(g.to_numpy())) for g in grids)
    vmax = max(float(np.nanmax(g.to_numpy())) for g in grids)
    im = None
    for ax, arm, g in zip(axes, arms, grids, strict=True):
        im = ax.imshow(g.to_numpy(), aspect="auto", origin="lower", vmin=vmin, vmax=vmax,
                       cmap="viridis")  # fmt: skip
        ax.set_xticks(range(g.shape[1]), [str(s) for s in g.columns])
        every = max(1, g.shape[0] // 6)
        ax.set_yticks(range(0, g.shape[0], every), [str(v) for v in g.index[::every]])
        ax.set_title(ARM_LABELS.get(arm, arm).replace(" (", "\n("))
        ax.set_xlabel("step")
    axes[0].set_ylabel("layer")
    if im is not None:
        fig.colorbar(im, ax=list(axes), label=f"{what} {metric}")
    return _finish(fig, f"{what.capitalize()} {metric} per layer along training ({optim})")


def instep_ratio_figure(
    instep: pd.DataFrame, metric: str = "nuclear_norm", optim: str = "adamw"
) -> Figure:
    """The paired ratio other/fast of the in-step ``metric`` level along training, per other arm.

    Each point is one training question at the step it was trained (level: mean over layers
    and projections; seeds averaged); the line is the geometric mean per step and the band
    the range of that step's questions. Below 1: the other arm's gradient is smaller.

    Example:
        >>> import pandas as pd
        >>> rows = [dict(arm=a, optim="adamw", seed=0, step=s, qid=f"q{s}", layer=l, module="q",
        ...              nuclear_norm=(1.0 if a == "fast" else 0.5) * (1 + l))
        ...         for a in ("fast", "slow") for s in (1, 2) for l in (0, 1)]
        >>> len(instep_ratio_figure(pd.DataFrame(rows)).axes)
        1
    """
    d = instep[instep["optim"] == optim]
    lv = d.groupby(["arm", "qid", "step"])[metric].mean()
    others = [a for a in _arms(d) if a != "fast"]
    fig = Figure(figsize=(5.2 * max(len(others), 1), 3.6), layout="constrained")
    axes = fig.subplots(1, max(len(others), 1), squeeze=False)[0]
    for ax, other in zip(axes, others, strict=False):
        if "fast" not in lv.index.get_level_values(0):
            break
        r = (lv.loc[other] / lv.loc["fast"]).dropna().reset_index()
        r = r.groupby(["qid", "step"])[metric].mean().reset_index()
        g = r.groupby("step")[metric]
        gm = np.exp(g.apply(lambda v: np.log(v).mean()))
        lo, hi = g.min(), g.max()
        st = _style(other)
        ax.fill_between(gm.index, lo.to_numpy(), hi.to_numpy(), color=st["color"], alpha=0.18,
                        label="range of the step's questions")  # fmt: skip
        ax.plot(r["step"], r[metric], linestyle="none", marker=st["marker"], color=st["color"],
                alpha=0.6, label="one training question")  # fmt: skip
        ax.plot(gm.index, gm.to_numpy(), "-", color=st["color"], label="geometric mean")
        ax.axhline(1.0, color="0.4", lw=1, ls=":")
        ax.set_title(f"{ARM_LABELS.get(other, other)} / fast")
        ax.set_xlabel("optimizer step")
    axes[0].set_ylabel(f"in-step {metric} ratio (other/fast)")
    return _finish(
        fig, f"The paired gradient ratio along training ({optim}; below 1: smaller than fast)"
    )


def probe_mad_figure(probe: pd.DataFrame, metric: str = "nuclear_norm") -> Figure:
    """MAD across layers of the probe's mean curve along training, per arm (one panel per optimizer)."""
    optims = sorted(probe["optim"].unique())
    fig = Figure(figsize=(4.5 * len(optims), 3.4), layout="constrained")
    axes = fig.subplots(1, len(optims), squeeze=False)[0]
    for ax, optim in zip(axes, optims, strict=True):
        d = probe[probe["optim"] == optim]
        for arm in _arms(d):
            g = d[d["arm"] == arm].groupby(["step", "module", "layer"])[metric].mean()
            steps = sorted(g.index.get_level_values(0).unique())
            mads = [np.mean([_mad(g.loc[s].loc[m].to_numpy()) for m in g.loc[s].index.get_level_values(0).unique()])
                    for s in steps]  # fmt: skip
            ax.plot(steps, mads, "-", **_style(arm))
        ax.set_title(optim)
        ax.set_xlabel("optimizer step")
    axes[0].set_ylabel(f"MAD of probe {metric}")
    return _finish(fig, "Unevenness across layers (MAD) of the probe gradients along training")


def update_layer_figure(updates: pd.DataFrame, metric: str = "nuclear_norm") -> Figure:
    """Per-layer spectra of the accumulated update ΔW at the last step, by arm (panel: optimizer × module)."""
    u = updates[updates["kind"] == "update"]
    u = u[u["step"] == u["step"].max()]
    optims, mods = sorted(u["optim"].unique()), sorted(u["module"].unique())
    fig = Figure(figsize=(3.2 * len(mods), 2.8 * len(optims)), layout="constrained")
    axes = fig.subplots(len(optims), len(mods), squeeze=False)
    for i, optim in enumerate(optims):
        for j, mod in enumerate(mods):
            ax = axes[i][j]
            d = u[(u["optim"] == optim) & (u["module"] == mod)]
            for arm in _arms(d):
                g = d[d["arm"] == arm].groupby("layer")[metric]
                m, s = g.mean(), g.std()
                ax.plot(m.index, m.to_numpy(), markevery=max(1, len(m) // 6), **_style(arm))
                if g.size().min() > 1:
                    ax.fill_between(m.index, (m - s).to_numpy(), (m + s).to_numpy(),
                                    color=ARM_COLORS.get(arm, "k"), alpha=0.15)  # fmt: skip
            ax.set_title(f"{optim} | {mod}")
            ax.set_xlabel("layer")
            if j == 0:
                ax.set_ylabel(f"ΔW {metric}")
    return _finish(fig, "Accumulated update W_T − W_0 per layer (mean ± sd over seeds)")


OPTIM_NAMES = {"adamw": "AdamW", "sgd": "SGD"}
OPTIM_STYLES = {"adamw": "-", "sgd": "--"}
"""Line style per optimizer in :func:`loss_figure` (others dotted)."""


def loss_title(loss: pd.DataFrame) -> str:
    """:func:`loss_figure`'s title: the line styles only of the optimizers that ran.

    Example:
        >>> loss_title(pd.DataFrame({"arm": ["fast"], "optim": ["adamw"]}))
        'Losses along training (AdamW)'
        >>> loss_title(pd.DataFrame({"arm": ["fast", "fast"], "optim": ["adamw", "sgd"]}))
        'Losses along training (solid: AdamW, dashed: SGD)'
    """
    optims = sorted(loss["optim"].astype(str).unique(), key=lambda o: (o not in OPTIM_STYLES, o))
    names = [OPTIM_NAMES.get(o, o) for o in optims]
    if len(optims) == 1:
        return f"Losses along training ({names[0]})"
    ls = {"-": "solid", "--": "dashed"}
    return "Losses along training (" + ", ".join(
        f"{ls.get(OPTIM_STYLES.get(o, ':'), 'dotted')}: {n}" for o, n in zip(optims, names, strict=True)
    ) + ")"  # fmt: skip


def loss_look_for(loss: pd.DataFrame) -> str:
    """What to look for in :func:`loss_figure`, worded for the arms that ran.

    Example:
        >>> loss_look_for(pd.DataFrame({"arm": ["fast", "slow", "slow_answer"]}))[:33]
        'All 3 arms learn (training loss f'
    """
    n = len(_arms(loss))
    if n <= 1:
        return "Does the arm learn (training loss falls), and does its held-out answer loss fall?"
    who = "Both arms learn" if n == 2 else f"All {n} arms learn"
    return f"{who} (training loss falls); which arm lowers the held-out answer loss more?"


def loss_figure(loss: pd.DataFrame, heldout: pd.DataFrame) -> Figure:
    """Training loss per step and held-out answer loss per probe step, per arm and optimizer
    (the optimizer named in the legend and title only when more than one ran)."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    several = loss["optim"].nunique() > 1
    for ax, df, col in ((ax1, loss, "loss"), (ax2, heldout, "heldout_loss")):
        for (arm, optim), d in df.groupby(["arm", "optim"]):
            g = d.groupby("step")[col].mean()
            label = ARM_LABELS.get(str(arm), str(arm))
            label = f"{label} | {OPTIM_NAMES.get(str(optim), optim)}" if several else label
            ax.plot(g.index, g.to_numpy(), OPTIM_STYLES.get(str(optim), ":"),
                    **{**_style(str(arm)), "label": label})  # fmt: skip
    ax1.set(xlabel="optimizer step", ylabel="training loss")
    ax2.set(xlabel="optimizer step", ylabel="held-out answer loss")
    ax1.set_title("own loss tokens")
    ax2.set_title("final answer, question alone")
    return _finish(fig, loss_title(loss))


def optimizer_figure(updates: pd.DataFrame, metric: str = "nuclear_norm") -> Figure:
    """AdamW against SGD: the ΔW ``metric`` curve over layers (mean over modules, seeds), fast vs slow."""
    u = updates[updates["kind"] == "update"]
    u = u[u["step"] == u["step"].max()]
    optims = sorted(u["optim"].unique())
    fig = Figure(figsize=(4.5 * len(optims), 3.4), layout="constrained")
    axes = fig.subplots(1, len(optims), squeeze=False)[0]
    for ax, optim in zip(axes, optims, strict=True):
        d = u[u["optim"] == optim]
        for arm in _arms(d):
            g = d[d["arm"] == arm].groupby("layer")[metric].mean()
            ax.plot(g.index, g.to_numpy(), markevery=max(1, len(g) // 6), **_style(arm))
        ax.set_title(optim)
        ax.set_xlabel("layer")
    axes[0].set_ylabel(f"ΔW {metric}")
    return _finish(fig, "AdamW vs SGD: ΔW per layer at the last step (mean over projections)")
