"""Names shared by every part of lgkit: modules and the statistics table's columns.

Kept free of heavy imports so analysis code can use it without torch.

Example:
    >>> "nuclear_norm" in STAT_COLUMNS and "q" in ATTN_MODULES
    True
"""

from __future__ import annotations

ATTN_MODULES: tuple[str, ...] = ("q", "k", "v", "o")
MLP_MODULES: tuple[str, ...] = ("gate", "up", "down")
ALL_MODULES: tuple[str, ...] = ATTN_MODULES + MLP_MODULES
"""Abstract projection names, in canonical order."""

STAT_COLUMNS: tuple[str, ...] = (
    "nuclear_norm",
    "sigma_max",
    "sigma_min",
    "sigma1_ratio",
    "frobenius_norm",
    "effective_rank",
    "entry_mean",
    "entry_max",
    "entry_min",
)
"""Per-gradient statistics (``sigma_min`` is exactly 0 when G's rank is below min(m, n))."""

TOKEN_COLUMNS: tuple[str, ...] = ("token_norm_sum", "coherence", "n_loss_tokens")
"""Per-token quantities of each gradient G = Σ_t d_t x_tᵀ: ``token_norm_sum`` = Σ_t ‖d_t‖‖x_t‖
(an upper bound of the nuclear norm), ``coherence`` = nuclear_norm / token_norm_sum in
(0, 1], and ``n_loss_tokens``, the tokens carrying the loss (the response, or the final
answer with ``loss_on="answer"``). Absent from tables written before they existed."""

TABLE_COLUMNS: tuple[str, ...] = (
    "sample_id", "dataset", "cot", "correct", "layer", "module", "shape", "loss",
    "n_prompt_tokens", "n_response_tokens", "truncated", *STAT_COLUMNS, *TOKEN_COLUMNS,
)  # fmt: skip
"""The statistics table's contract columns, in order (DESIGN.md)."""
