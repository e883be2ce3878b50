"""OpenDataArena compatibility: their ``NuclearNormScorer`` and ``EffectiveRankScorer``.

What their scorers do (read from OpenDataArena/ODA-DataScorer, ``model_based/scorers``;
no code of theirs is copied here):

* text: ``instruction.strip()`` (+ ``"\\n" + input.strip()`` when the input is not
  empty), then a separator, then ``output.strip()``: a space for NuclearNorm, a
  newline for EffectiveRank. No chat template, whatever the model.
* tokens: the whole text with the tokenizer's special tokens, cut at ``max_length``
  (their default 2048); the loss (Hugging Face mean cross-entropy) skips as many leading
  tokens as ``prompt + separator`` has when tokenised alone.
* one example per forward/backward; the weight gradient of q, k, v and o of each chosen
  layer; a full ``torch.linalg.svd``; nuclear norm = Σσ; effective rank = exp of the
  entropy of σ/Σσ (σ and p below 1e-10 dropped).
* layers: the last one by default, else ``num_layers`` from ``start_layer_index``
  (``--layers a:b`` with b = a + num_layers); each module's value is the mean over those
  layers, reported per module (``Q_NuclearNorm`` … ``O_EffectiveRank``).

They run the model in training mode; with dropout 0 (Qwen, Llama and the tiny test
models) that changes nothing, while for a model configured with dropout their numbers are
random draws and lgkit's (eval mode) are the dropout-free ones.

lgkit reproduces this with the engine (``compat="oda_nuclear"``/``"oda_rank"`` in
:mod:`lgkit.formats.prompts`; the engine never forms the weight gradient), one run per
scorer since the two join the texts differently. :func:`naive_oda_scores` is their
method re-implemented naively, the reference of the tests and of
``benchmarks/oda_compare.py``.

Example:
    >>> oda_columns("nuclear")
    ['Q_NuclearNorm', 'K_NuclearNorm', 'V_NuclearNorm', 'O_NuclearNorm']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

ODA_MODULES = ("q", "k", "v", "o")
SCORERS = {"nuclear": ("oda_nuclear", "NuclearNorm", "nuclear_norm"),
           "rank": ("oda_rank", "EffectiveRank", "effective_rank")}  # fmt: skip
"""scorer -> (lgkit compat mode, their column suffix, the table statistic)."""
ODA_MAX_LENGTH = 2048
"""Their default ``max_length`` (their example configs use 512 and 2048)."""


def oda_columns(scorer: str) -> list[str]:
    """Their output columns of ``scorer`` (``nuclear`` or ``rank``)."""
    return [f"{m.upper()}_{SCORERS[scorer][1]}" for m in ODA_MODULES]


def _layers(model: Any) -> Any:
    inner = getattr(model, "model", None)
    return inner.layers if inner is not None and hasattr(inner, "layers") else model.layers


def _nuclear(g: torch.Tensor) -> float:
    return float(torch.linalg.svd(g, full_matrices=False).S.sum())


def _erank(g: torch.Tensor) -> float:
    s = torch.linalg.svd(g, full_matrices=False).S
    s = s[s > 1e-10]
    if s.numel() == 0 or float(s.sum()) <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 1e-10]
    p = p / p.sum()
    return float(torch.exp(-(p * p.log()).sum()))


def naive_oda_scores(
    model: Any,
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    scorer: str,
    *,
    layers: Sequence[int] | None = None,
    max_length: int = ODA_MAX_LENGTH,
) -> list[dict[str, float]]:
    """OpenDataArena's method, naively: one backward per record, the materialised weight
    gradient, a full SVD; per module the mean over ``layers`` (default: the last).

    Returns one dict per record with :func:`oda_columns` ``(scorer)``.
    """
    sep = " " if scorer == "nuclear" else "\n"
    measure = _nuclear if scorer == "nuclear" else _erank
    blocks = _layers(model)
    chosen = [blocks[i] for i in (layers if layers is not None else [len(blocks) - 1])]
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    model.requires_grad_(True)
    out = []
    try:
        for rec in records:
            prompt = rec["instruction"].strip()
            if (rec.get("input") or "").strip():
                prompt += "\n" + rec["input"].strip()
            text = prompt + sep + rec["output"].strip()
            ids = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            ids = ids["input_ids"]
            n_prompt = len(tokenizer(prompt + sep, truncation=True, max_length=max_length)["input_ids"])  # fmt: skip
            labels = ids.clone()
            labels[:, :n_prompt] = -100
            model.train()
            model.zero_grad()
            model(input_ids=ids, labels=labels).loss.backward()
            vals = {}
            for m in ODA_MODULES:
                per_layer = [measure(getattr(b.self_attn, f"{m}_proj").weight.grad) for b in chosen]
                vals[f"{m.upper()}_{SCORERS[scorer][1]}"] = sum(per_layer) / len(per_layer)
            out.append(vals)
            model.zero_grad()
    finally:
        model.train(was_training)
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
    return out
