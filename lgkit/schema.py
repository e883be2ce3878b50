"""lgkit's vocabulary, in one place: modules, CoT levels, task families, columns, authors' names.

Kept free of imports so every package (analysis without torch included) can use it.

Example:
    >>> "nuclear_norm" in STAT_COLUMNS and "q" in ATTN_MODULES
    True
    >>> COT_LEVELS, AUTHOR_METRIC_ALIASES["S_sum"]
    (('none', 'simplified', 'detailed'), 'nuclear_norm')
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
"""The statistics table's contract columns, in order (docs/ARCHITECTURE.md)."""

COT_LEVELS: tuple[str, ...] = ("none", "simplified", "detailed")
"""Response types (chain-of-thought levels), from fast to slow thinking."""

TASK_FAMILIES: tuple[str, ...] = ("math", "commonsense", "wiki")
"""Task families of the datasets (one notebook each)."""

PROJECTION_SUFFIXES: dict[str, str] = {
    # Llama, Mistral, Qwen2/3, Gemma 1/2/3, Phi, OLMo, ... (separate projections)
    "self_attn.q_proj": "q",
    "self_attn.k_proj": "k",
    "self_attn.v_proj": "v",
    "self_attn.o_proj": "o",
    "self_attn.dense": "o",  # Phi-1/2
    "mlp.gate_proj": "gate",
    "mlp.up_proj": "up",
    "mlp.down_proj": "down",
    # GPT-2 (Conv1D)
    "attn.c_proj": "o",
    "mlp.c_fc": "up",
    "mlp.c_proj": "down",
    # GPT-NeoX / Pythia
    "attention.dense": "o",
    "mlp.dense_h_to_4h": "up",
    "mlp.dense_4h_to_h": "down",
}
"""Module-name suffix (after ``<layers>.<i>.``) of a single projection -> abstract name."""

FUSED_SUFFIXES: dict[str, tuple[str, ...]] = {
    "self_attn.qkv_proj": ("q", "k", "v"),  # Phi-3
    "mlp.gate_up_proj": ("gate", "up"),  # Phi-3
    "attn.c_attn": ("q", "k", "v"),  # GPT-2
    "attention.query_key_value": ("q", "k", "v"),  # GPT-NeoX (interleaved per head)
}
"""Module-name suffix of a fused projection -> the abstract names of its parts, in order."""

AUTHOR_FILE_STATS: dict[str, str] = {
    "S_sum": "nuclear_norm",
    "S_max": "sigma_max",
    "S_min": "sigma_min",
    "frobenius_norm": "frobenius_norm",
    "M_mean": "entry_mean",
    "M_max": "entry_max",
    "M_min": "entry_min",
}
"""Per-parameter keys of the authors' JSONL files -> lgkit's columns."""

AUTHOR_METRIC_ALIASES: dict[str, str] = {
    **{k: v for k, v in AUTHOR_FILE_STATS.items() if k.startswith("S_")},
    "S_ratio": "sigma1_ratio",
}
"""The authors' statistic names accepted as metric names -> lgkit's columns."""
