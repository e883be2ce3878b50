"""Spectra of each projection's accumulated update ΔW = W_step − W_0 and of minibatch gradients.

The weight of a projection is its *effective* weight: the module's own for full
fine-tuning, base + the active LoRA deltas for a peft model. Singular values come from
the float64 Gram on the small side (:func:`lgkit.engine.spectra.solve_spectra`), so every
statistic matches a full SVD of ΔW to well inside 1e-4 (``tests/test_train.py``).

Example:
    >>> from lgkit.models import load_model
    >>> from lgkit.engine.arch import find_targets
    >>> lm = load_model("tiny-random-llama")
    >>> targets = find_targets(lm.model, ("q",))
    >>> w0 = snapshot(lm.model, targets)
    >>> with torch.no_grad():
    ...     _ = lm.model.model.layers[0].self_attn.q_proj.weight.add_(1.0)
    >>> rows = update_rows(lm.model, targets, w0, step=3)
    >>> rows[0]["step"], rows[0]["layer"], round(rows[0]["sigma_max"], 3)   # a rank-one ΔW of ones (64×64)
    (3, 0, 64.0)
    >>> round(rows[0]["effective_rank"], 3), rows[1]["nuclear_norm"]
    (1.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lgkit.engine.arch import Target
from lgkit.engine.spectra import entry_stats, solve_spectra, stats_from_singular_values

UPDATE_COLUMNS: tuple[str, ...] = (
    "step", "kind", "layer", "module", "param", "shape", "nuclear_norm", "sigma_max",
    "sigma_min", "sigma1_ratio", "frobenius_norm", "effective_rank", "entry_mean",
    "entry_max", "entry_min",
)  # fmt: skip
"""Columns of the update table; ``kind`` is ``update`` (ΔW) or ``grad`` (minibatch gradient)."""


def _select(w: torch.Tensor, target: Target) -> torch.Tensor:
    w = w.T if target.transposed else w
    return w if target.index is None else w[target.index]


def effective_weight(model: nn.Module, target: Target) -> torch.Tensor:
    """The m×n weight a projection applies (LoRA deltas of a peft model added), detached."""
    mod = model.get_submodule(target.module_name)
    with torch.no_grad():
        base = getattr(mod, "base_layer", None)
        if base is not None and hasattr(mod, "get_delta_weight"):
            w = base.weight.detach().clone()
            if not getattr(mod, "merged", False):
                for name in getattr(mod, "active_adapters", []):
                    if name in getattr(mod, "lora_A", {}):
                        w = w + mod.get_delta_weight(name).to(w.dtype)
        else:
            w = mod.weight.detach()
        return _select(w, target)


def snapshot(model: nn.Module, targets: Sequence[Target]) -> dict[str, torch.Tensor]:
    """W_0: a CPU copy of every target's effective weight, keyed by its parameter name."""
    return {t.param_name: effective_weight(model, t).to("cpu", copy=True) for t in targets}


def _rows(
    mats: Sequence[tuple[Target, torch.Tensor]], step: int, kind: str, workers: int | None
) -> list[dict[str, Any]]:
    jobs = [(m.double(), min(m.shape), None, False) for _, m in mats]
    svs = solve_spectra(jobs, workers)
    rows = []
    for (t, m), sv in zip(mats, svs, strict=True):
        rows.append({
            "step": step, "kind": kind, "layer": t.layer, "module": t.module,
            "param": t.param_name, "shape": f"{t.shape[0]} x {t.shape[1]}",
            **stats_from_singular_values(sv), **entry_stats(m.float()),
        })  # fmt: skip
    return rows


def update_rows(
    model: nn.Module,
    targets: Sequence[Target],
    w0: dict[str, torch.Tensor],
    step: int,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """One row per target with the spectral statistics of ΔW = W_step − W_0."""
    mats = []
    for t in targets:
        w = effective_weight(model, t)
        mats.append((t, (w.to("cpu", torch.float64) - w0[t.param_name].double())))
    return _rows(mats, step, "update", workers)


def gradient_rows(
    model: nn.Module, targets: Sequence[Target], step: int, workers: int | None = None
) -> list[dict[str, Any]]:
    """One row per target with a materialised ``.grad`` (full fine-tuning): the minibatch gradient.

    Targets without a gradient (frozen weights, LoRA) are left out.
    """
    mats = []
    for t in targets:
        p = getattr(model.get_submodule(t.module_name), "weight", None)
        g = getattr(p, "grad", None)
        if isinstance(g, torch.Tensor):
            mats.append((t, _select(g.detach(), t).to("cpu", torch.float64)))
    return _rows(mats, step, "grad", workers) if mats else []
