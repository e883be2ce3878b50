"""Choosing a subset by a score: ``top:10%``, ``bottom:500``, ``random:500``.

``top`` takes the highest scores, ``bottom`` the lowest (ties broken by record order),
``random`` a seeded uniform sample. With ``match_length=True`` the choice is made
within response-length strata (quantile bins of ``n_response_tokens``; at most 10, at
most the subset size, at least two examples each), each stratum contributing in
proportion to its size, so the subset has the data's length
distribution and is not simply the longest or shortest examples.

Example:
    >>> parse_rule("top:10%"), parse_rule("random:500")
    (Rule(kind='top', count=None, fraction=0.1), Rule(kind='random', count=500, fraction=None))
    >>> import pandas as pd
    >>> s = pd.DataFrame({"index": range(6), "effective_rank": [5, 1, 4, 2, 6, 3],
    ...                   "n_response_tokens": [1, 1, 1, 1, 1, 1]})
    >>> choose(s, parse_rule("top:2"), "effective_rank")
    [0, 4]
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from lgkit.errors import InputError

KINDS = ("top", "bottom", "random")
_RULE = re.compile(r"^(top|bottom|random):(\d+(?:\.\d+)?)(%?)$")


@dataclass(frozen=True)
class Rule:
    """A selection rule: its kind and either a count or a fraction of the scored examples."""

    kind: str
    count: int | None = None
    fraction: float | None = None

    def size(self, n: int) -> int:
        """How many of ``n`` scored examples the rule takes.

        Raises:
            InputError: an empty selection, or more than there are.

        Example:
            >>> Rule("top", fraction=0.25).size(10)
            2
        """
        k = self.count if self.count is not None else int(round((self.fraction or 0) * n))
        if k == 0:
            raise InputError(
                f"empty selection: {self.text()} of {n} scored example(s) selects nothing",
                field="--select",
            )
        if k > n:
            raise InputError(
                f"{self.text()} asks for {k} examples but only {n} were scored", field="--select"
            )
        return k

    def text(self) -> str:
        """The rule as written on the command line."""
        if self.count is not None:
            return f"{self.kind}:{self.count}"
        return f"{self.kind}:{100 * (self.fraction or 0):g}%"


def parse_rule(text: str) -> Rule:
    """Read ``top:10%``, ``bottom:500`` or ``random:500``.

    Raises:
        InputError: a malformed rule, ``top:0``, or a fraction above 100%.
    """
    m = _RULE.match(text.strip())
    if not m:
        raise InputError(
            f"cannot read {text!r}; use top:N, bottom:N, random:N or a percentage like top:10%",
            field="--select",
        )
    kind, num, pct = m.groups()
    value = float(num)
    if value <= 0:
        raise InputError(f"{text!r} selects nothing (size must be above 0)", field="--select")
    if pct:
        if value > 100:
            raise InputError(f"{text!r}: a fraction above 100%", field="--select")
        return Rule(kind, fraction=value / 100)
    if value != int(value):
        raise InputError(f"{text!r}: a count must be a whole number", field="--select")
    return Rule(kind, count=int(value))


def length_strata(lengths: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Stratum of each example: quantile bins of the response length (ties kept together).

    Example:
        >>> length_strata(np.array([1, 2, 3, 4]), n_bins=2).tolist()
        [0, 0, 1, 1]
    """
    ranks = pd.Series(lengths).rank(method="min").to_numpy() - 1
    return np.minimum((ranks * n_bins // len(lengths)).astype(int), n_bins - 1)


def _quota(sizes: np.ndarray, k: int) -> np.ndarray:
    """``k`` split over strata in proportion to their sizes (largest remainders)."""
    exact = sizes * k / sizes.sum()
    q = np.floor(exact).astype(int)
    for j in np.argsort(-(exact - q), kind="stable")[: k - q.sum()]:
        q[j] += 1
    return np.minimum(q, sizes)


def _pick(sub: pd.DataFrame, kind: str, col: str, k: int, rng: np.random.Generator) -> list[int]:
    if kind == "random":
        return sorted(rng.choice(sub["index"].to_numpy(), size=k, replace=False).tolist())
    key = sub[col] if kind == "bottom" else -sub[col]  # top: highest first; ties: record order
    order = sub.assign(_key=key).sort_values(["_key", "index"], kind="stable")
    return order["index"].head(k).tolist()


def choose(
    scores: pd.DataFrame,
    rule: Rule,
    by: str,
    *,
    match_length: bool = False,
    seed: int = 0,
    n_bins: int = 10,
) -> list[int]:
    """Record indices chosen by ``rule`` on column ``by`` of ``scores`` (sorted).

    ``scores`` needs ``index`` (the record number), ``by`` and, for ``match_length``,
    ``n_response_tokens``. Examples without a score (NaN) or with a ``failure`` are never
    chosen.
    """
    s = scores[scores[by].notna()]
    if "failure" in s:
        s = s[s["failure"].isna()]
    k = rule.size(len(s))
    rng = np.random.default_rng(seed)
    if not match_length:
        return sorted(_pick(s, rule.kind, by, k, rng))
    # at most k strata, each of two or more examples: every stratum gets a real choice
    bins = max(1, min(n_bins, k, len(s) // 2))
    strata = length_strata(s["n_response_tokens"].to_numpy(), bins)
    ids = np.unique(strata)
    quota = _quota(np.array([(strata == j).sum() for j in ids]), k)
    out: list[int] = []
    for j, q in zip(ids, quota, strict=True):
        if q:
            out += _pick(s[strata == j], rule.kind, by, int(q), rng)
    return sorted(out)


def selection_record(
    rule: Rule, by: str, chosen: list[int], scores: pd.DataFrame, **context: Any
) -> dict[str, Any]:
    """What is written beside a subset (``FILE.selection.json``): the rule, the score,
    the chosen records (index and id), the score range and length summary, and ``context``.

    Example:
        >>> s = pd.DataFrame({"index": [0, 1], "sample_id": ["a", "b"], "loss": [1.0, 2.0],
        ...                   "n_response_tokens": [3, 5]})
        >>> selection_record(Rule("top", count=1), "loss", [1], s)["chosen_ids"]
        ['b']
    """
    picked = scores.set_index("index").loc[chosen]
    return {
        "rule": rule.text(),
        **asdict(rule),
        "by": by,
        "n_scored": int(scores[by].notna().sum()),
        "n_selected": len(chosen),
        "score_range": [float(picked[by].min()), float(picked[by].max())],
        "score_mean": {"selected": float(picked[by].mean()), "all": float(scores[by].mean())},
        "response_tokens_mean": {
            "selected": float(picked["n_response_tokens"].mean()),
            "all": float(scores["n_response_tokens"].mean()),
        },
        "chosen_indices": [int(i) for i in chosen],
        "chosen_ids": [str(x) for x in picked["sample_id"]],
        **context,
    }
