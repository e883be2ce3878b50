"""Random-initialisation control: the same architecture and tokenizer, seeded random weights.

A claim about what a model *learned* must not hold for its untrained twin: every
reasoning claim is also evaluated on :func:`random_twin` of the model (same config,
same tokenizer, same chat-template setting, weights from the architecture's own
initialiser under ``torch.manual_seed(seed)``).

Example:
    >>> from lgkit.models.load import load_model
    >>> lm = load_model("tiny-random-llama", device="cpu")
    >>> tw = random_twin(lm, seed=0)
    >>> tw.name, tw.source, tw.model.config.num_hidden_layers == lm.model.config.num_hidden_layers
    ('tiny-random-llama@random-init-0', 'random-init', True)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from lgkit.models.load import LoadedModel, load_model

__all__ = ["TWIN_TAG", "LazyTwin", "random_twin", "twin_name"]

TWIN_TAG = "@random-init-"


def twin_name(name: str, seed: int = 0) -> str:
    """The name (and statistics-cache key) of a model's random twin.

    Example:
        >>> twin_name("smollm2-135m-instruct", 3)
        'smollm2-135m-instruct@random-init-3'
    """
    return f"{name}{TWIN_TAG}{int(seed)}"


def random_twin(lm: LoadedModel, seed: int = 0) -> LoadedModel:
    """A twin of ``lm`` with the same config and tokenizer and seeded random weights.

    Two calls with the same seed give identical weights. The twin is in eval mode, on
    ``lm``'s device and dtype; its ``revision`` records the seed.
    """
    cfg = lm.model.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = AutoModelForCausalLM.from_config(
            cfg, attn_implementation=getattr(cfg, "_attn_implementation", None) or "eager"
        )
    model = model.to(device=lm.model.device, dtype=next(lm.model.parameters()).dtype).eval()
    model.name_or_path = twin_name(lm.name, seed)
    return replace(
        lm,
        model=model,
        name=twin_name(lm.name, seed),
        source="random-init",
        revision=f"seed={seed}",
    )


class LazyTwin:
    """The random twin of a named model, built only when its weights are needed.

    ``name`` and ``instruct`` are known without loading, so a statistics cache keyed on
    them is read back without touching the model; any other attribute (``model``,
    ``tokenizer``, ``revision``...) loads the base model and builds :func:`random_twin`.

    Example:
        >>> t = LazyTwin("tiny-random-llama", seed=1, instruct=True)
        >>> t.name, t.loaded
        ('tiny-random-llama@random-init-1', False)
        >>> t.model.config.num_hidden_layers, t.loaded
        (2, True)
    """

    def __init__(self, base: str, seed: int = 0, instruct: bool | None = None, **load_kw: Any):
        self.base, self.seed, self.load_kw = str(base), int(seed), load_kw
        self.name = twin_name(self.base, self.seed)
        self._instruct = instruct
        self._lm: LoadedModel | None = None

    @property
    def loaded(self) -> bool:
        """Whether the twin's weights have been built."""
        return self._lm is not None

    @property
    def instruct(self) -> bool:
        """Run with the chat template? (as given, else as the loaded base model)."""
        return self._instruct if self._instruct is not None else self.twin().instruct

    def twin(self) -> LoadedModel:
        """The loaded twin (built on first use)."""
        if self._lm is None:
            base = load_model(self.base, instruct=self._instruct, **self.load_kw)
            self._lm = random_twin(base, self.seed)
        return self._lm

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key in ("base", "seed", "load_kw", "name"):
            raise AttributeError(key)
        return getattr(self.twin(), key)

    def __iter__(self) -> Iterator[Any]:
        yield from self.twin()
