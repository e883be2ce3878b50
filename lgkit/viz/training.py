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

ARM_COLORS = {"fast": "tab:red", "slow": "tab:blue", "slow_answer": "tab:purple"}
ARM_LABELS = {"fast": "fast (none-CoT)", "slow": "slow (detailed CoT)",
              "slow_answer": "slow, answer-only loss"}  # fmt: skip


def _arms(df: pd.DataFrame) -> list[str]:
    order = list(ARM_COLORS)
    return sorted(df["arm"].unique(), key=lambda a: order.index(a) if a in order else 99)


def _mad(curve: np.ndarray) -> float:
    return float(np.abs(np.diff(curve)).mean()) if len(curve) > 1 else float("nan")


def probe_heatmaps(
    probe: pd.DataFrame, metric: str = "nuclear_norm", optim: str = "adamw"
) -> Figure:
    """Layer × step heatmap of the probe's mean ``metric`` (over examples, modules, seeds), one per arm."""
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
        ax.set_xticks(range(g.shape[1]), [str(s) for s in g.columns], fontsize=7)
        every = max(1, g.shape[0] // 12)
        ax.set_yticks(range(0, g.shape[0], every), [str(v) for v in g.index[::every]], fontsize=7)
        ax.set_title(ARM_LABELS.get(arm, arm), fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("layer")
    if im is not None:
        fig.colorbar(im, ax=list(axes), label=f"probe {metric}")
    fig.suptitle(f"Probe gradients along training ({optim}): mean {metric} per layer", fontsize=10)
    return fig


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
            ax.plot(
                steps, mads, "o-", color=ARM_COLORS.get(arm, "k"), label=ARM_LABELS.get(arm, arm)
            )
        ax.set_title(optim, fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"MAD across layers of probe {metric}")
        ax.legend(fontsize=7)
    return fig


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
                ax.plot(
                    m.index,
                    m.to_numpy(),
                    color=ARM_COLORS.get(arm, "k"),
                    label=ARM_LABELS.get(arm, arm),
                )
                if g.size().min() > 1:
                    ax.fill_between(m.index, (m - s).to_numpy(), (m + s).to_numpy(),
                                    color=ARM_COLORS.get(arm, "k"), alpha=0.15)  # fmt: skip
            ax.set_title(f"{optim} | {mod}", fontsize=9)
            ax.set_xlabel("layer")
            if j == 0:
                ax.set_ylabel(f"ΔW {metric}")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Accumulated update W_T − W_0 per layer (mean ± sd over seeds)", fontsize=10)
    return fig


def loss_figure(loss: pd.DataFrame, heldout: pd.DataFrame) -> Figure:
    """Training loss per step and held-out answer loss per probe step, per arm and optimizer."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    styles = {"adamw": "-", "sgd": "--"}
    for (arm, optim), d in loss.groupby(["arm", "optim"]):
        g = d.groupby("step")["loss"].mean()
        ax1.plot(g.index, g.to_numpy(), styles.get(str(optim), ":"),
                 color=ARM_COLORS.get(str(arm), "k"), label=f"{arm} | {optim}")  # fmt: skip
    for (arm, optim), d in heldout.groupby(["arm", "optim"]):
        g = d.groupby("step")["heldout_loss"].mean()
        ax2.plot(g.index, g.to_numpy(), styles.get(str(optim), ":"), marker="o",
                 color=ARM_COLORS.get(str(arm), "k"), label=f"{arm} | {optim}")  # fmt: skip
    ax1.set(xlabel="optimizer step", ylabel="training loss (the arm's own loss tokens)")
    ax2.set(xlabel="optimizer step", ylabel="held-out answer loss (question alone)")
    ax1.legend(fontsize=7)
    return fig


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
            ax.plot(
                g.index,
                g.to_numpy(),
                color=ARM_COLORS.get(arm, "k"),
                label=ARM_LABELS.get(arm, arm),
            )
        ax.set_title(f"{optim}: ΔW at the last step", fontsize=9)
        ax.set(xlabel="layer", ylabel=f"ΔW {metric} (mean over modules)")
        ax.legend(fontsize=7)
    return fig
