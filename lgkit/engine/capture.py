"""Hooks that capture each projection's inputs X and output gradients D per example.

Weight gradients are never formed by autograd: the engine freezes every parameter and
differentiates with respect to the input embeddings only, so the backward computes
activation gradients alone. Each projection's forward hook keeps its input and puts a
hook on its output; when the output's gradient arrives during the backward, the
callback receives ``(target_group, X, D)`` and can compute statistics at once, layer by
layer, so no gradient is kept longer than needed.

Hooks are registered in a context manager and always removed, also after an exception.

Example:
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> from lgkit.engine.arch import find_targets
    >>> m = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    >>> seen = []
    >>> with GradientCapture(m, find_targets(m), lambda ts, X, D: seen.append(ts[0].module)):
    ...     out = m(torch.tensor([[1, 2, 3]])).logits.sum().backward()
    >>> sorted(seen)
    ['k', 'o', 'q', 'v']
    >>> has_hooks(m)
    False
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType

import torch
from torch import nn

from lgkit.engine.arch import Target

Callback = Callable[[list[Target], torch.Tensor, torch.Tensor], None]


def has_hooks(model: nn.Module) -> bool:
    """Whether any module of the model still carries a forward or backward hook."""
    return any(
        m._forward_hooks
        or m._forward_pre_hooks
        or m._backward_hooks
        or getattr(m, "_backward_pre_hooks", None)
        for m in model.modules()
    )


class GradientCapture:
    """Context manager: hooks on the target modules, removed on exit.

    Args:
        model: the model.
        targets: from :func:`lgkit.engine.arch.find_targets`.
        callback: called once per module and backward with ``(targets of that module,
            X (B×T×n), D (B×T×m_total))``; fused modules give several targets.
    """

    def __init__(self, model: nn.Module, targets: Sequence[Target], callback: Callback) -> None:
        self.model = model
        self.callback = callback
        self.groups: dict[str, list[Target]] = {}
        for t in targets:
            self.groups.setdefault(t.module_name, []).append(t)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> GradientCapture:
        modules = dict(self.model.named_modules())
        try:
            for name, group in self.groups.items():
                self._handles.append(modules[name].register_forward_hook(self._make_hook(group)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this capture registered."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _make_hook(self, group: list[Target]) -> Callable:
        callback = self.callback

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if (
                not torch.is_grad_enabled()
                or not isinstance(output, torch.Tensor)
                or not output.requires_grad
            ):
                return
            x = args[0].detach()
            output.register_hook(lambda d: callback(group, x, d.detach()))

        return hook
