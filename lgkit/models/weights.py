"""Where a model's weights came from, for honest labels on findings.

The embedded models are 4-bit GGUF files dequantised to float32: their statistics
are those of the quantised weights, not of the original checkpoint.

Example:
    >>> weights_label("smollm2-135m-instruct")
    'weights: Q4_1 GGUF dequantised to float32 (not the original checkpoint)'
    >>> weights_label("tiny-random-llama") is None
    True
"""

from __future__ import annotations

from lgkit.models.twin import TWIN_TAG

__all__ = ["quantisation", "weights_label"]


def quantisation(name: str) -> str | None:
    """The GGUF quantisation a model's weights were dequantised from (None: not quantised).

    Example:
        >>> quantisation("gemma3-270m"), quantisation("model.Q8_0.gguf")
        ('Q4_K_M', 'Q8_0')
    """
    key = str(name).strip().lower()
    if TWIN_TAG in key:
        return None  # random weights: nothing of the checkpoint is left
    from lgkit.models.embedded import EMBEDDED  # the registry says which file it ships

    if key in EMBEDDED:
        return EMBEDDED[key].quantisation or "GGUF"
    if key.endswith(".gguf"):
        stem = str(name).rsplit("/", 1)[-1][: -len(".gguf")]
        return stem.rsplit(".", 1)[-1] if "." in stem else "GGUF"
    return None


def weights_label(name: str) -> str | None:
    """The label a finding on this model's weights carries (None: plain weights)."""
    q = quantisation(name)
    return (
        None
        if q is None
        else f"weights: {q} GGUF dequantised to float32 (not the original checkpoint)"
    )
