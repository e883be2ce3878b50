"""lgkit: layer-wise gradient spectra of LLM fine-tuning, exact and fast.

Public entry points are imported lazily so ``import lgkit`` stays cheap.

Example:
    >>> import lgkit
    >>> lgkit.__version__
    '0.1.0'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Example": "lgkit.formats.records",
    "read_examples": "lgkit.formats.records",
    "write_examples": "lgkit.formats.records",
    "InputError": "lgkit.errors",
    "load_model": "lgkit.models.load",
    "GradConfig": "lgkit.engine.config",
    "compute_stats": "lgkit.engine.run",
    "load_stats": "lgkit.formats.store",
    "load_failures": "lgkit.formats.store",
    "load_manifest": "lgkit.formats.parts",
    "load_token_stats": "lgkit.formats.store",
    "stats_dataset": "lgkit.formats.store",
}
_SUBMODULES = (
    "analysis",
    "cli",
    "data",
    "engine",
    "formats",
    "models",
    "provenance",
    "schema",
    "score",
    "series",
    "viz",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"lgkit.{name}")
    raise AttributeError(f"module 'lgkit' has no attribute {name!r}")
