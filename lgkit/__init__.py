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
    "Example": "lgkit.records",
    "read_examples": "lgkit.records",
    "write_examples": "lgkit.records",
    "InputError": "lgkit.errors",
    "load_model": "lgkit.models",
    "GradConfig": "lgkit.engine",
    "compute_stats": "lgkit.engine",
    "load_stats": "lgkit.store",
    "load_failures": "lgkit.store",
    "load_manifest": "lgkit.store",
    "stats_dataset": "lgkit.store",
}
_SUBMODULES = (
    "analysis",
    "plots",
    "widgets",
    "data",
    "models",
    "engine",
    "store",
    "spectra",
    "capture",
    "prompts",
    "runner",
    "arch",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"lgkit.{name}")
    raise AttributeError(f"module 'lgkit' has no attribute {name!r}")
