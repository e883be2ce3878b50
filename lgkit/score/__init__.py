"""Score and select training data by exact per-example gradient spectra.

A thin layer over :mod:`lgkit.engine` (the statistics) and pandas (aggregation and
selection): :func:`score` gives one row per record (nuclear norm, effective rank,
σ₁ ratio, coherence, loss, response length), :func:`with_scores` adds them to a
``datasets.Dataset``, :func:`choose` picks ``top``/``bottom``/``random`` subsets
(optionally length-matched) and :func:`write_subset` writes one in the data's own
format. ``compat="oda"`` reproduces OpenDataArena's two gradient scorers
(:mod:`lgkit.score.oda`). The command line is ``lgkit score``.

May import the engine, formats, models, analysis and the leaves; never viz, series,
data or train.

The package itself is callable: ``lgkit.score(data, model, out_dir, ...)`` is
:func:`lgkit.score.api.score`.

Example:
    >>> import lgkit
    >>> callable(lgkit.score)
    True
    >>> from lgkit.score import parse_rule
    >>> parse_rule("bottom:5").kind
    'bottom'
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lgkit.score.aggregate import MATRIX_SCORES, SCORES, aggregate, parse_layers, score_name
    from lgkit.score.api import score, with_scores
    from lgkit.score.datafile import DataFile, check_target, read_data, write_subset
    from lgkit.score.select import Rule, choose, parse_rule, selection_record

_LAZY = {
    "MATRIX_SCORES": "aggregate", "SCORES": "aggregate", "aggregate": "aggregate",
    "parse_layers": "aggregate", "score_name": "aggregate",
    "score": "api", "with_scores": "api",
    "DataFile": "datafile", "check_target": "datafile", "read_data": "datafile",
    "write_subset": "datafile",
    "Rule": "select", "choose": "select", "parse_rule": "select", "selection_record": "select",
}  # fmt: skip
__all__ = [
    "MATRIX_SCORES", "SCORES", "aggregate", "parse_layers", "score_name", "score",
    "with_scores", "DataFile", "check_target", "read_data", "write_subset", "Rule", "choose",
    "parse_rule", "selection_record",
]  # fmt: skip


class _CallableModule(types.ModuleType):
    """``lgkit.score`` is both this package and :func:`lgkit.score.api.score`; its
    names load on first use, so ``lgkit --help`` does not import torch."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module("lgkit.score.api").score(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in _LAZY:
            return getattr(importlib.import_module(f"lgkit.score.{_LAZY[name]}"), name)
        raise AttributeError(f"module 'lgkit.score' has no attribute {name!r}")


sys.modules[__name__].__class__ = _CallableModule
