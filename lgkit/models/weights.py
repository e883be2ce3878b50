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

__all__ = ["QUANTISATION", "quantisation", "weights_label"]

#: Quantisation of the embedded models' GGUF files (see ``lgkit.models.load.EMBEDDED``).
QUANTISATION: dict[str, str] = {"smollm2-135m-instruct": "Q4_1", "gemma3-270m": "Q4_K_M"}


def quantisation(name: str) -> str | None:
    """The GGUF quantisation a model's weights were dequantised from (None: not quantised).

    Example:
        >>> quantisation("gemma3-270m"), quantisation("model.Q8_0.gguf")
        ('Q4_K_M', 'Q8_0')
    """
    key = str(name).strip().lower()
    if TWIN_TAG in key:
        return None  # random weights: nothing of the checkpoint is left
    if key in QUANTISATION:
        return QUANTISATION[key]
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
