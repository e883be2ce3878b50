"""A synthetic statistics table with known structure, for examples, tests and teaching."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lgkit.analysis.tables import COT_ORDER
from lgkit.schema import ATTN_MODULES, STAT_COLUMNS

# --------------------------------------------------------------------------- synthetic table


_SHAPES = {
    "q": (64, 64),
    "k": (16, 64),
    "v": (16, 64),
    "o": (64, 64),
    "gate": (256, 64),
    "up": (256, 64),
    "down": (64, 256),
}
_MOD_SCALE = {"q": 1.0, "k": 0.8, "v": 1.6, "o": 1.3, "gate": 1.1, "up": 1.0, "down": 1.2}
_COT_PARAMS = {  # base level, early excess, fluctuation, length range, loss
    "none": (4.0, 12.0, 1.5, (2, 12), 2.5),
    "simplified": (2.5, 3.0, 0.5, (30, 90), 1.2),
    "detailed": (1.5, 0.6, 0.08, (150, 400), 0.7),
}


def _module_rows(
    rng: np.random.Generator,
    ex: dict,
    m: str,
    n_layers: int,
    level: tuple[float, float, float, float, float, float],
    spectrum: bool,
    model: str | None,
) -> list[dict]:
    """The rows of one example's module: a layer curve with noise, and its statistics."""
    base, early, fluct, scale, gap_f, ex_f = level
    x = np.arange(n_layers) / max(n_layers - 1, 1)
    wiggle = np.sin(np.arange(n_layers) * 2.1 + 0.5)
    curve = (base + early * np.exp(-6 * x) + fluct * wiggle) * _MOD_SCALE[m] * scale
    curve = curve * gap_f * ex_f  # this order of products: tables stay bit-identical
    noise = np.exp(rng.normal(0, 0.05, n_layers))
    nn_ = np.maximum(curve * noise, 1e-6)
    extra = 0.15 if ex["cot"] == "none" else 0.0
    ratio = np.clip(0.25 + 0.1 * rng.normal(size=n_layers) + extra, 0.02, 0.95)
    mm, nn_dim = _SHAPES[m]
    n_tokens = ex["n_response_tokens"] + ex["n_prompt_tokens"]
    rows = []
    for layer in range(n_layers):
        nuc, r = float(nn_[layer]), float(ratio[layer])
        row = {
            **{k: ex[k] for k in ("sample_id", "dataset", "cot", "correct")},
            "layer": layer,
            "module": m,
            "shape": f"{mm} x {nn_dim}",
            **{k: ex[k] for k in ("loss", "n_prompt_tokens", "n_response_tokens")},
            "truncated": False,
            "nuclear_norm": nuc,
            "sigma_max": r * nuc,
            "sigma_min": 0.0,
            "sigma1_ratio": r,
            "frobenius_norm": math.sqrt(r) * nuc,
            "effective_rank": float(min(n_tokens, mm, nn_dim) * (1 - r)),
            "entry_mean": float(rng.normal(0, 1e-4) * nuc),
            "entry_max": float(nuc / (mm * 2)),
            "entry_min": float(-nuc / (mm * 2)),
        }
        if spectrum:
            row["spectrum"] = list(r * nuc * 0.7 ** np.arange(8))
        if model is not None:
            row["model"] = model
        rows.append(row)
    return rows


def synthetic_stats(
    *,
    n_samples: int = 20,
    n_layers: int = 8,
    datasets: Sequence[str] = ("gsm8k", "aqua", "ecqa"),
    cots: Sequence[str] = COT_ORDER,
    modules: Sequence[str] = ATTN_MODULES,
    correct: Sequence[bool] = (True, False),
    model: str | None = None,
    scale: float = 1.0,
    fast_instability: float = 1.0,
    irrelevant_gap: float = 0.35,
    overlap_lengths: bool = False,
    spectrum: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """A realistic synthetic statistics table that shows the paper's patterns.

    Fast thinking (``cot="none"``) has large nuclear norms that fall steeply over the
    early layers and fluctuate; detailed CoT has small, flat curves; simplified is in
    between. Irrelevant responses differ from correct ones by ``irrelevant_gap``
    (relative) under detailed CoT only (a tenth of it under simplified, none under
    none). Each example has its own multiplicative factor shared across layers, and
    its response length depends on the cot level. For tests, demos and docs only.

    Args:
        n_samples: examples per (dataset, cot, correct).
        n_layers: layers.
        datasets, cots, modules, correct: the grid.
        model: if given, a ``model`` column with this value.
        scale: overall multiplier of the norms.
        fast_instability: multiplier of the early-layer excess and fluctuation of
            fast thinking (e.g. 2.0 for a more affected instruct model).
        irrelevant_gap: relative gap of irrelevant responses under detailed CoT.
        overlap_lengths: draw all lengths from one wide range (to test matching).
        spectrum: add a ``spectrum`` list column (top-8 singular values).
        seed: random seed.

    Example:
        >>> t = synthetic_stats(n_samples=2, n_layers=3)
        >>> len(t) == 3 * 3 * 2 * 2 * 3 * 4
        True
    """
    rng = np.random.default_rng(seed)
    rows = []
    for ds in datasets:
        for cot in cots:
            base, early, fluct, (l0, l1), loss0 = _COT_PARAMS.get(cot, _COT_PARAMS["simplified"])
            if cot == "none":
                early, fluct = early * fast_instability, fluct * fast_instability
            gap = {"detailed": irrelevant_gap, "simplified": irrelevant_gap / 10}.get(cot, 0.0)
            for corr in correct:
                for i in range(n_samples):
                    ex = {
                        "sample_id": f"{ds}-{cot}-{'c' if corr else 'i'}-{i:03d}",
                        "dataset": ds,
                        "cot": cot,
                        "correct": bool(corr),
                    }
                    ex_f = float(np.exp(rng.normal(0, 0.15)))
                    n_resp = int(
                        rng.integers(2, 400) if overlap_lengths else rng.integers(l0, l1 + 1)
                    )
                    n_prompt = int(rng.integers(20, 120))
                    loss = float(loss0 * np.exp(rng.normal(0, 0.2)) * (1.0 if corr else 1.6))
                    ex.update(loss=loss, n_prompt_tokens=n_prompt, n_response_tokens=n_resp)
                    for m in modules:
                        level = (base, early, fluct, scale, (1.0 if corr else 1.0 + gap), ex_f)
                        rows += _module_rows(rng, ex, m, n_layers, level, spectrum, model)
    cols = (
        ["sample_id"]
        + (["model"] if model is not None else [])
        + [
            "dataset",
            "cot",
            "correct",
            "layer",
            "module",
            "shape",
            "loss",
            "n_prompt_tokens",
            "n_response_tokens",
            "truncated",
            *STAT_COLUMNS,
        ]
        + (["spectrum"] if spectrum else [])
    )
    return pd.DataFrame(rows, columns=cols)
