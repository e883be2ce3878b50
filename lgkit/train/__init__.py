"""Training: watch the layers while a model is fine-tuned.

``SpectraCallback`` (a ``transformers.TrainerCallback``) measures, along a run, the
engine's exact per-example statistics of a probe set, the spectra of each projection's
accumulated update ΔW and the held-out answer loss; ``train`` (``lgkit train``) fine-tunes
a model on a data file with it. May import: lgkit.engine, lgkit.models, lgkit.formats and
the leaves; never lgkit.analysis, lgkit.viz or lgkit.series (tests/test_boundaries.py).
Names are imported on first use, so ``lgkit --help`` does not load transformers.

Example:
    >>> from lgkit.train import TrainConfig
    >>> TrainConfig(steps=5).probe_every
    10
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lgkit.train.callback import SpectraCallback, isolated
    from lgkit.train.config import TrainConfig, TrainResult
    from lgkit.train.run import finished, train
    from lgkit.train.tables import (
        heldout_summary,
        load_heldout,
        load_instep,
        load_train_loss,
        load_trajectory,
        load_updates,
    )

_WHERE = {
    "SpectraCallback": "callback",
    "isolated": "callback",
    "TrainConfig": "config",
    "TrainResult": "config",
    "train": "run",
    "finished": "run",
    "heldout_summary": "tables",
    "load_heldout": "tables",
    "load_instep": "tables",
    "load_train_loss": "tables",
    "load_trajectory": "tables",
    "load_updates": "tables",
}

__all__ = [
    "SpectraCallback",
    "TrainConfig",
    "TrainResult",
    "finished",
    "heldout_summary",
    "isolated",
    "load_heldout",
    "load_instep",
    "load_train_loss",
    "load_trajectory",
    "load_updates",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"lgkit.train.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'lgkit.train' has no attribute {name!r}")
