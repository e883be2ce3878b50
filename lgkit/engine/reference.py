"""The naive reference method: what the authors' script does, for tests and benchmarks.

One example at a time, ``loss.backward()`` materialises every weight gradient and a
singular value decomposition of each gives the statistics (``full_svd=True``: the
authors' ``torch.linalg.svd`` with full U and V; otherwise ``svdvals``). lgkit's engine
must reproduce these numbers (≤1e-4 relative) without materialising gradients for the
spectrum or running any full SVD.

Example:
    >>> from lgkit.models import load_model
    >>> from lgkit.formats.records import Example
    >>> lm = load_model("tiny-random-llama")
    >>> rows, loss = naive_stats(lm.model, lm.tokenizer, Example("Hi?", "", "Hello."), instruct=True)
    >>> sorted({r["module"] for r in rows})
    ['k', 'o', 'q', 'v']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lgkit.engine.arch import ATTN_MODULES, Target, find_targets
from lgkit.engine.spectra import stats_from_singular_values
from lgkit.formats.prompts import Encoded, encode_example
from lgkit.formats.records import Example


def target_gradient(model: nn.Module, target: Target) -> torch.Tensor:
    """The materialised m×n weight gradient of one target (after ``backward``)."""
    w = model.get_submodule(target.module_name).weight
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{target.module_name}.weight is not a tensor")
    g = w.grad
    if g is None:
        raise RuntimeError(f"no gradient for {target.param_name}")
    g = g.T if target.transposed else g
    return g if target.index is None else g[target.index]


def naive_stats_encoded(
    model: nn.Module,
    enc: Encoded,
    targets: Sequence[Target],
    *,
    full_svd: bool = False,
) -> tuple[list[dict[str, Any]], float]:
    """Statistics of one encoded example by backward + SVD of each weight gradient.

    Returns:
        (one row per target with the statistics, the model's own loss)
    """
    device = next(model.parameters()).device
    saved = {n: p.requires_grad for n, p in model.named_parameters()}
    names = {t.module_name for t in targets}
    try:
        model.requires_grad_(False)
        for name in names:
            model.get_submodule(name).weight.requires_grad_(True)
        ids = torch.tensor([enc.input_ids], device=device)
        labels = ids.clone()
        labels[0, : enc.n_prompt_tokens] = -100
        model.zero_grad(set_to_none=True)
        out = model(ids, labels=labels, use_cache=False)
        out.loss.backward()
        rows = []
        for t in targets:
            g = target_gradient(model, t)
            sv = torch.linalg.svd(g)[1] if full_svd else torch.linalg.svdvals(g)
            st = stats_from_singular_values(sv)
            st["frobenius_norm"] = float(torch.linalg.norm(g))
            st.update(
                entry_mean=float(g.mean()), entry_max=float(g.max()), entry_min=float(g.min())
            )
            rows.append({"layer": t.layer, "module": t.module, "param": t.param_name, **st})
        return rows, float(out.loss.detach())
    finally:
        model.zero_grad(set_to_none=True)
        for n, p in model.named_parameters():
            p.requires_grad_(saved[n])


def naive_stats(
    model: nn.Module,
    tokenizer: Any,
    example: Example,
    *,
    instruct: bool,
    modules: Sequence[str] = ATTN_MODULES,
    max_length: int = 1024,
    compat: str | None = None,
    full_svd: bool = False,
) -> tuple[list[dict[str, Any]], float]:
    """Tokenise one example and compute its statistics the naive way."""
    enc = encode_example(
        tokenizer, example, instruct=instruct, max_length=max_length, compat=compat
    )
    return naive_stats_encoded(model, enc, find_targets(model, modules), full_svd=full_svd)
