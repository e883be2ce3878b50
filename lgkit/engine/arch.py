"""One table mapping each architecture's projection modules to abstract names.

Abstract names: ``q, k, v, o`` for attention and ``gate, up, down`` for the MLP.
Fused projections (GPT-2 ``c_attn``, Phi-3 ``qkv_proj``/``gate_up_proj``, GPT-NeoX
``query_key_value``) are split into their parts by output indices, so no caller ever
branches on the model family.

Example:
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> m = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))
    >>> [(t.layer, t.module) for t in find_targets(m, ("q", "o"))]
    [(0, 'q'), (0, 'o'), (1, 'q'), (1, 'o')]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lgkit.errors import InputError
from lgkit.schema import (
    ALL_MODULES,
    ATTN_MODULES,
    MLP_MODULES,
    PROJECTION_SUFFIXES,
)

# A split is (abstract name, index) where index is None (whole output), a slice, or a
# LongTensor of output features.
Split = tuple[str, "slice | torch.Tensor | None"]


def _cfg(config: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        v = getattr(config, n, None)
        if v is not None:
            return v
    return default


def _head_dims(config: Any) -> tuple[int, int, int]:
    hidden = _cfg(config, "hidden_size", "n_embd")
    heads = _cfg(config, "num_attention_heads", "n_head")
    kv_heads = _cfg(config, "num_key_value_heads", default=heads)
    head_dim = _cfg(config, "head_dim", default=hidden // heads)
    return heads, kv_heads, head_dim


def _single(name: str) -> Callable[[nn.Module, Any], list[Split]]:
    return lambda module, config: [(name, None)]


def _fused_qkv(module: nn.Module, config: Any) -> list[Split]:
    """Contiguous [q | k | v] (Phi-3 ``qkv_proj``, GPT-2 ``c_attn``)."""
    heads, kv_heads, hd = _head_dims(config)
    q, kv = heads * hd, kv_heads * hd
    return [("q", slice(0, q)), ("k", slice(q, q + kv)), ("v", slice(q + kv, q + 2 * kv))]


def _fused_gate_up(module: nn.Module, config: Any) -> list[Split]:
    inter = _cfg(config, "intermediate_size")
    return [("gate", slice(0, inter)), ("up", slice(inter, 2 * inter))]


def _neox_qkv(module: nn.Module, config: Any) -> list[Split]:
    """GPT-NeoX ``query_key_value``: output viewed as (heads, 3, head_dim)."""
    heads, _, hd = _head_dims(config)
    idx = torch.arange(heads * 3 * hd).view(heads, 3, hd)
    return [(name, idx[:, i, :].reshape(-1)) for i, name in enumerate(("q", "k", "v"))]


# Module-name suffix (after "<layers>.<i>.") -> how to split its output. The suffixes and
# their abstract names are lgkit.schema's (one vocabulary); the splitters are the engine's.
_FUSED_SPLITTERS: dict[str, Callable[[nn.Module, Any], list[Split]]] = {
    "self_attn.qkv_proj": _fused_qkv,  # Phi-3
    "mlp.gate_up_proj": _fused_gate_up,  # Phi-3
    "attn.c_attn": _fused_qkv,  # GPT-2 (Conv1D)
    "attention.query_key_value": _neox_qkv,  # GPT-NeoX / Pythia (interleaved)
}
ARCH_TABLE: dict[str, Callable[[nn.Module, Any], list[Split]]] = {
    **{suffix: _single(name) for suffix, name in PROJECTION_SUFFIXES.items()},
    **_FUSED_SPLITTERS,
}

_LAYER_RE = re.compile(r"^(?:.*\.)?(?:layers|h|blocks)\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class Target:
    """One abstract projection of one layer.

    Attributes:
        layer: 0-based layer index.
        module: abstract name (q, k, v, o, gate, up, down).
        module_name: the model's module name, e.g. ``model.layers.0.self_attn.q_proj``.
        param_name: the weight's parameter name (``[q]`` suffix for fused parts).
        index: output features of this part (None: all).
        transposed: True for GPT-2 ``Conv1D`` (weight stored as in x out).
        shape: (m, n) = (output features, input features) of this part.
    """

    layer: int
    module: str
    module_name: str
    param_name: str
    index: slice | torch.Tensor | None
    transposed: bool
    shape: tuple[int, int]


def parse_modules(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Parse ``"q,k,v,o"``, ``"attn"``, ``"mlp"`` or ``"all"`` into abstract module names.

    Raises:
        InputError: on an unknown module name.

    Example:
        >>> parse_modules("q,o,mlp")
        ('q', 'o', 'gate', 'up', 'down')
    """
    items = (
        [s.strip() for s in spec.split(",")]
        if isinstance(spec, str)
        else [str(s).strip() for s in spec]
    )
    out: list[str] = []
    for it in items:
        if not it:
            continue
        if it == "attn":
            out.extend(ATTN_MODULES)
        elif it == "mlp":
            out.extend(MLP_MODULES)
        elif it == "all":
            out.extend(ALL_MODULES)
        elif it in ALL_MODULES:
            out.append(it)
        else:
            raise InputError(
                f"unknown module name {it!r}; choose from {', '.join(ALL_MODULES)}, attn, mlp, all",
                field="modules",
            )
    if not out:
        raise InputError("no modules selected", field="modules")
    return tuple(dict.fromkeys(out))


def _linear_shape(module: nn.Module) -> tuple[tuple[int, int], bool]:
    base = getattr(module, "base_layer", None)
    if isinstance(base, nn.Module) and hasattr(module, "get_delta_weight"):
        # a peft LoRA wrapper: its input X and output gradient D give the gradient of the
        # effective weight W + ΔW_lora (lgkit.train measures LoRA runs through it)
        return _linear_shape(base)
    w = module.weight
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{type(module).__name__}.weight is not a tensor")
    if isinstance(module, nn.Linear):
        return (w.shape[0], w.shape[1]), False
    if type(module).__name__ == "Conv1D":  # GPT-2: y = x @ W, W is (in, out)
        return (w.shape[1], w.shape[0]), True
    raise TypeError(f"unsupported projection type {type(module).__name__}")


def find_targets(model: nn.Module, modules: Sequence[str] = ATTN_MODULES) -> list[Target]:
    """Find the projection modules of every layer, in (layer, module) order.

    Args:
        model: a causal LM.
        modules: abstract names to keep.

    Raises:
        InputError: when the model has none of the requested projections (unknown
            architecture), or when a requested module is missing in some layer.
    """
    config = getattr(model, "config", None)
    text_cfg = getattr(config, "text_config", None) or config
    found: list[Target] = []
    for name, mod in model.named_modules():
        m = _LAYER_RE.match(name)
        if not m or m.group(2) not in ARCH_TABLE or not hasattr(mod, "weight"):
            continue
        layer = int(m.group(1))
        (out_f, in_f), transposed = _linear_shape(mod)
        for abstract, index in ARCH_TABLE[m.group(2)](mod, text_cfg):
            if abstract not in modules:
                continue
            if index is None:
                m_size, pname = out_f, f"{name}.weight"
            else:
                m_size = (
                    len(range(out_f)[index]) if isinstance(index, slice) else int(index.numel())
                )
                pname = f"{name}.weight[{abstract}]"
            found.append(Target(layer, abstract, name, pname, index, transposed, (m_size, in_f)))
    if not found:
        raise InputError(
            f"no {'/'.join(modules)} projections found in {type(model).__name__}; "
            "add its module names to lgkit.engine.arch.ARCH_TABLE",
            field="model",
        )
    order = {n: i for i, n in enumerate(ALL_MODULES)}
    found.sort(key=lambda t: (t.layer, order[t.module]))
    layers = sorted({t.layer for t in found})
    have = {(t.layer, t.module) for t in found}
    missing = [
        f"layer {layer} {mod}" for layer in layers for mod in modules if (layer, mod) not in have
    ]
    if missing:
        raise InputError(f"{type(model).__name__} lacks {', '.join(missing[:5])}", field="modules")
    return found


def parse_layers(spec: str | Sequence[int] | None, n_layers: int) -> list[int]:
    """The layer indices of ``spec``: ``all``, ``last``, ``a:b`` (half-open, Python style,
    negative counted from the end), one index, or a list of indices (``"0,2"``).

    Raises:
        InputError: a malformed spec or layers outside ``0..n_layers-1``.

    Example:
        >>> parse_layers("all", 4), parse_layers("last", 4), parse_layers("1:3", 4)
        ([0, 1, 2, 3], [3], [1, 2])
        >>> parse_layers("-2:", 4), parse_layers("2", 4), parse_layers("0,2", 4)
        ([2, 3], [2], [0, 2])
    """
    if spec is None or spec == "all":
        return list(range(n_layers))
    if spec == "last":
        return [n_layers - 1]
    if not isinstance(spec, str):
        out = [int(x) for x in spec]
    else:
        try:
            if "," in spec:
                out = [int(x) for x in spec.split(",")]
            elif ":" in spec:
                a, _, b = spec.partition(":")
                out = list(range(n_layers))[slice(int(a) if a else None, int(b) if b else None)]
            else:
                out = [int(spec) % n_layers if int(spec) < 0 else int(spec)]
        except ValueError:
            raise InputError(
                f"cannot read {spec!r}; use all, last, a:b or one layer index", field="--layers"
            ) from None
    bad = [x for x in out if not 0 <= x < n_layers]
    if not out or bad:
        raise InputError(
            f"{spec!r} selects no layer of 0..{n_layers - 1}" + (f" (bad: {bad})" if bad else ""),
            field="--layers",
        )
    return out
