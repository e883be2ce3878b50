"""From the statistics table (one row per example × layer × module) to one row per example.

Aggregation (documented in the README, ``lgkit score``): each per-matrix statistic
(:data:`MATRIX_SCORES`) is the **arithmetic mean over the chosen layers × modules** of
the example; ``loss``, ``n_response_tokens`` and ``n_loss_tokens`` are per example and
taken as they are. With ``by_module=True`` a column ``<score>_<module>`` per module
(mean over the chosen layers only) is added, the shape OpenDataArena reports.

Example:
    >>> import pandas as pd
    >>> t = pd.DataFrame({"sample_id": ["a"] * 4, "layer": [0, 0, 1, 1],
    ...     "module": ["q", "o", "q", "o"], "nuclear_norm": [1.0, 2.0, 3.0, 4.0],
    ...     "effective_rank": [1.0] * 4, "sigma1_ratio": [0.5] * 4, "coherence": [0.9] * 4,
    ...     "loss": [2.0] * 4, "n_response_tokens": [7] * 4})
    >>> aggregate(t, layers="last")[["sample_id", "nuclear_norm", "loss"]].to_dict("records")
    [{'sample_id': 'a', 'nuclear_norm': 3.5, 'loss': 2.0}]
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from lgkit.engine.arch import parse_layers
from lgkit.errors import InputError

__all__ = [
    "ALIASES",
    "EXAMPLE_SCORES",
    "MATRIX_SCORES",
    "SCORES",
    "aggregate",
    "parse_layers",
    "score_name",
]

MATRIX_SCORES: tuple[str, ...] = ("nuclear_norm", "effective_rank", "sigma1_ratio", "coherence")
"""Scores computed per gradient matrix and averaged over the chosen layers and modules."""

EXAMPLE_SCORES: tuple[str, ...] = ("loss", "n_response_tokens")
"""Scores of the example itself (the loss and the response length in tokens)."""

SCORES: tuple[str, ...] = MATRIX_SCORES + EXAMPLE_SCORES
"""Every score ``--by`` accepts (``response_length`` is an alias of ``n_response_tokens``)."""

ALIASES = {"response_length": "n_response_tokens", "length": "n_response_tokens"}


def score_name(name: str, available: Sequence[str] = SCORES) -> str:
    """The column of score ``name`` (aliases resolved).

    Raises:
        InputError: an unknown score, naming the ones there are.

    Example:
        >>> score_name("response_length")
        'n_response_tokens'
    """
    col = ALIASES.get(name, name)
    if col not in available:
        raise InputError(
            f"unknown score {name!r}; choose one of {', '.join(available)}", field="--by"
        )
    return col


def aggregate(
    table: pd.DataFrame,
    *,
    layers: str | Sequence[int] | None = "all",
    modules: Sequence[str] | None = None,
    by_module: bool = False,
) -> pd.DataFrame:
    """One row per example: :data:`MATRIX_SCORES` averaged over the chosen layers and
    modules, plus :data:`EXAMPLE_SCORES` (and ``n_loss_tokens`` where present).

    Rows keep the order of first appearance of each ``sample_id`` in ``table``.

    Raises:
        InputError: no row left after choosing layers and modules.
    """
    if table.empty:
        return pd.DataFrame(columns=["sample_id", *SCORES])
    n_layers = int(table["layer"].max()) + 1
    keep = table[table["layer"].isin(parse_layers(layers, n_layers))]
    if modules:
        missing = sorted(set(modules) - set(keep["module"]))
        if missing:
            raise InputError(
                f"module(s) {missing} not in the statistics (have {sorted(set(keep['module']))})",
                field="--modules",
            )
        keep = keep[keep["module"].isin(list(modules))]
    mats = [c for c in MATRIX_SCORES if c in keep.columns]
    per_ex = [c for c in ("loss", "n_response_tokens", "n_loss_tokens") if c in keep.columns]
    g = keep.groupby("sample_id", sort=False)
    out = g[mats].mean()
    out[per_ex] = g[per_ex].first()
    if by_module:
        wide = keep.groupby(["sample_id", "module"], sort=False)[mats].mean().unstack("module")
        wide.columns = [f"{s}_{m}" for s, m in wide.columns]
        out = out.join(wide)
    return out.reset_index()
