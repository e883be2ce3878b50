"""Models: load a causal LM with its tokenizer (hub id, local folder, GGUF, embedded, tiny random).

Modules: load (load_model), tiny (random test models), embedded (GGUF models, cached).
May import: lgkit.errors, lgkit.schema, lgkit.fsio. Nothing else of lgkit (tests/test_boundaries.py).

Example:
    >>> from lgkit.models import load_model
    >>> load_model("tiny-random-llama", device="cpu").model.config.num_hidden_layers
    2
"""

from lgkit.models.load import (
    EMBEDDED,
    TINY,
    LoadedModel,
    is_instruct,
    load_model,
    model_cache_dir,
    tiny_tokenizer,
)

__all__ = [
    "EMBEDDED",
    "TINY",
    "LoadedModel",
    "is_instruct",
    "load_model",
    "model_cache_dir",
    "tiny_tokenizer",
]
