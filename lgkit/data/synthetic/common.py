"""Names shared by the synthetic generators: datasets, wiki lengths, the final-answer line.

Example:
    >>> SYNTH_DATASETS["math"], WIKI_LENGTHS["short"]
    (['synth_arith'], 40)
"""

from __future__ import annotations

__all__ = ["FINAL", "POPULARITIES", "SYNTH_DATASETS", "WIKI_LENGTHS"]

#: synthetic wiki lengths: name -> target words
WIKI_LENGTHS = {"short": 40, "medium": 120, "long": 300}
POPULARITIES = ("popular", "long_tail")
SYNTH_DATASETS = {
    "math": ["synth_arith"],
    "commonsense": ["synth_commonsense"],
    "wiki": [f"synth_wiki_{p}_{ln}" for p in POPULARITIES for ln in WIKI_LENGTHS],
}
FINAL = "\nThe final answer is {}"
