"""Random-weight models with the exact architecture of public models (benchmarks, GPU tests).

Timing and memory of a forward + backward and of the statistics depend on the shapes,
not on the weights, so a model built from a public ``config.json`` with random weights
measures what the real one costs, offline. :data:`SHAPES` writes out the architecture
fields of each public config (values as published in the model's ``config.json`` on the
Hugging Face hub); :func:`build_shape` builds one, optionally cut to its first layers.

Example:
    >>> lm = build_shape("qwen2-1.5b", num_layers=1, device="meta", vocab_size=300)  # no memory
    >>> attn = lm.model.model.layers[0].self_attn
    >>> tuple(attn.q_proj.weight.shape), tuple(attn.k_proj.weight.shape), attn.q_proj.bias is not None
    ((1536, 1536), (256, 1536), True)
    >>> SHAPES["llama-3.1-8b"].config["rope_scaling"]["rope_type"]
    'llama3'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["SHAPES", "ModelShape", "build_shape"]


@dataclass(frozen=True)
class ModelShape:
    """A public model's architecture: its transformers config class and config fields.

    Attributes:
        hub_id: the model the fields are copied from.
        config_class: the ``transformers`` config class name.
        config: the architecture fields of its ``config.json``.
    """

    hub_id: str
    config_class: str
    config: dict[str, Any]


SHAPES: dict[str, ModelShape] = {
    # Qwen/Qwen2-1.5B config.json: q/k/v carry biases (Qwen2's attention always has them),
    # o and the MLP none; tied embeddings; sliding window off.
    "qwen2-1.5b": ModelShape("Qwen/Qwen2-1.5B", "Qwen2Config", dict(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, hidden_act="silu",
        max_position_embeddings=131072, max_window_layers=28, rms_norm_eps=1e-6,
        rope_theta=1000000.0, sliding_window=131072, use_sliding_window=False,
        tie_word_embeddings=True, attention_dropout=0.0, initializer_range=0.02,
        bos_token_id=151643, eos_token_id=151643,
    )),
    # meta-llama/Llama-3.1-8B config.json: no biases, untied embeddings, llama3 RoPE scaling.
    "llama-3.1-8b": ModelShape("meta-llama/Llama-3.1-8B", "LlamaConfig", dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, hidden_act="silu",
        max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling=dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=8192, rope_type="llama3"),
        attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
        attention_dropout=0.0, initializer_range=0.02, pretraining_tp=1,
        bos_token_id=128000, eos_token_id=128001,
    )),
}  # fmt: skip
"""Public architectures by short name (``config:<name>`` in the benchmarks)."""


def build_shape(
    name: str,
    *,
    num_layers: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    vocab_size: int | None = None,
    seed: int = 0,
    attn_implementation: str | None = None,
    tokenizer: Any = None,
) -> Any:
    """A random-initialised model with the architecture ``SHAPES[name]``, built on ``device``.

    Args:
        name: a key of :data:`SHAPES`.
        num_layers: keep only the first N decoder layers (None: all).
        device, dtype: where and in which precision the weights are created.
        vocab_size: override the vocabulary (small tests; None: the public one).
        seed: the random initialisation's seed.
        attn_implementation: e.g. ``"eager"`` or ``"sdpa"`` (None: transformers' default).
        tokenizer: the tokenizer to bundle (None: lgkit's tiny byte-level tokenizer).

    Returns:
        A :class:`lgkit.models.LoadedModel` named ``config:<name>`` (base, not instruct).
    """
    import transformers

    from lgkit.models.load import LoadedModel
    from lgkit.models.tiny import tiny_tokenizer

    if name not in SHAPES:
        raise KeyError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    shape = SHAPES[name]
    kw = dict(shape.config)
    if num_layers:
        kw["num_hidden_layers"] = num_layers
        if "max_window_layers" in kw:
            kw["max_window_layers"] = num_layers
    if vocab_size:  # the public special-token ids may not exist in a smaller vocabulary
        kw.update(vocab_size=vocab_size, bos_token_id=None, eos_token_id=None)
    cfg = getattr(transformers, shape.config_class)(**kw)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(device):
            model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=dtype, **extra)
    model.eval()
    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    param = next(model.parameters())
    return LoadedModel(
        model=model,
        tokenizer=tok,
        name=f"config:{name}",
        source="config",
        revision=None,
        instruct=False,
        dtype=str(param.dtype).removeprefix("torch."),
        device=str(param.device),
    )
