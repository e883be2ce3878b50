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


def svd_ready(g: torch.Tensor) -> torch.Tensor:
    """The gradient as LAPACK/cuSOLVER take it: bfloat16/float16 widened to float32.

    ``torch.linalg.svd`` has no half-precision kernels (CPU or CUDA); float32 and
    float64 gradients are returned unchanged.

    Example:
        >>> svd_ready(torch.ones(2, 2, dtype=torch.bfloat16)).dtype, svd_ready(torch.ones(1)).dtype
        (torch.float32, torch.float32)
    """
    return g if g.dtype in (torch.float32, torch.float64) else g.float()


def masked_labels(enc: Encoded, span: tuple[int, int] | None = None) -> torch.Tensor:
    """1×T labels with every position outside the loss span set to -100 (ignored).

    Example:
        >>> masked_labels(Encoded([5, 6, 7, 8], 1, 3, False), (2, 3)).tolist()
        [[-100, -100, 7, -100]]
    """
    s0, s1 = span if span is not None else (enc.n_prompt_tokens, len(enc.input_ids))
    labels = torch.tensor([enc.input_ids])
    labels[0, :s0] = -100
    labels[0, s1:] = -100
    return labels


def naive_stats_encoded(
    model: nn.Module,
    enc: Encoded,
    targets: Sequence[Target],
    *,
    full_svd: bool = False,
    span: tuple[int, int] | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """Statistics of one encoded example by backward + SVD of each weight gradient.

    ``span``: the positions carrying the loss (labels masked elsewhere; None: the response).

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
        model.zero_grad(set_to_none=True)
        out = model(ids, labels=masked_labels(enc, span).to(device), use_cache=False)
        out.loss.backward()
        rows = []
        for t in targets:
            g = target_gradient(model, t)
            gs = svd_ready(g)
            sv = torch.linalg.svd(gs)[1] if full_svd else torch.linalg.svdvals(gs)
            st = stats_from_singular_values(sv)
            st["frobenius_norm"] = float(torch.linalg.norm(gs))
            st.update(
                entry_mean=float(g.mean()), entry_max=float(g.max()), entry_min=float(g.min())
            )
            rows.append({"layer": t.layer, "module": t.module, "param": t.param_name, **st})
        return rows, float(out.loss.detach())
    finally:
        model.zero_grad(set_to_none=True)
        for n, p in model.named_parameters():
            p.requires_grad_(saved[n])


def naive_token_stats(
    model: nn.Module,
    enc: Encoded,
    targets: Sequence[Target],
    span: tuple[int, int] | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """Per-token quantities by materialising every token's m×n outer product d_t x_tᵀ.

    The loss is the model's own (labels masked outside ``span``; None: the response).
    Per target: ``token_norms`` (the nuclear norm of each token's rank-one term, by
    SVD), ``token_norm_sum`` (their sum), ``nuclear_norm`` (SVD of the materialised
    weight gradient, checked to equal Σ_t d_t x_tᵀ) and ``coherence``.

    Returns:
        (one row per target, the loss)
    """
    device = next(model.parameters()).device
    saved = {n: p.requires_grad for n, p in model.named_parameters()}
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []

    def keep(name: str) -> Any:
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            output.retain_grad()
            seen[name] = (args[0].detach(), output)

        return hook

    try:
        model.requires_grad_(False)
        for name in {t.module_name for t in targets}:
            model.get_submodule(name).weight.requires_grad_(True)
            handles.append(model.get_submodule(name).register_forward_hook(keep(name)))
        model.zero_grad(set_to_none=True)
        ids = torch.tensor([enc.input_ids], device=device)
        out = model(ids, labels=masked_labels(enc, span).to(device), use_cache=False)
        out.loss.backward()
        rows = []
        for t in targets:
            x, y = seen[t.module_name]
            grad = y.grad
            assert grad is not None, f"no gradient reached {t.module_name}"
            d = grad[0] if t.index is None else grad[0][:, t.index]
            terms = [torch.outer(d[k], x[0, k]).double() for k in range(d.shape[0])]
            norms = [float(torch.linalg.svdvals(g).sum()) for g in terms]
            g = target_gradient(model, t).double()
            if not torch.allclose(sum(terms), g, rtol=1e-4, atol=1e-6 * float(g.abs().max())):
                raise RuntimeError(f"token terms do not add up to the gradient of {t.param_name}")
            nuc = float(torch.linalg.svdvals(g).sum())
            tns = sum(norms)
            rows.append({"layer": t.layer, "module": t.module, "token_norms": norms,
                         "token_norm_sum": tns, "nuclear_norm": nuc, "coherence": nuc / tns})  # fmt: skip
        return rows, float(out.loss.detach())
    finally:
        for h in handles:
            h.remove()
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
