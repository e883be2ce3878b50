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


def _blocks(sub: pd.DataFrame, tokens: str, q: int) -> list[np.ndarray]:
    """``q`` blocks of consecutive lengths (record indices), sizes as equal as possible."""
    order = sub.sort_values([tokens, "index"], kind="stable")["index"].to_numpy()
    return [b for b in np.array_split(order, q) if len(b)]


def choose_balanced(
    scores: pd.DataFrame,
    rule: Rule,
    by: str,
    *,
    strata: tuple[str, ...] = ("correct", "cot"),
    tokens: str = "n_response_tokens",
    tol: float = 0.01,
    seed: int = 0,
) -> list[int]:
    """Record indices chosen by ``rule`` on ``by``, balanced so that the top, bottom and
    random subsets of one pool have the same composition and (nearly) the same tokens.

    Each stratum of ``strata`` (e.g. correct × CoT level) gets the same quota whatever the
    kind (proportional to its size), so the shares of correct responses and of each CoT
    level are equal across kinds. Within a stratum the examples, sorted by ``tokens``,
    are cut into ``quota`` blocks of consecutive lengths and each block gives one example
    (top: its highest ``by``, bottom: its lowest, random: a seeded draw). Then, while the
    subset's total ``tokens`` is more than ``tol`` away from the pool's expectation
    (``quota × the stratum's mean``, summed), the swap within a block (else within a
    stratum) that moves the total towards it at the least cost in score is made. Every
    kind aims at the same total, so totals differ by at most ``2 tol`` when reachable.

    Example:
        >>> s = pd.DataFrame({"index": range(8), "effective_rank": [8, 7, 6, 5, 4, 3, 2, 1],
        ...                   "correct": [True] * 4 + [False] * 4, "cot": ["detailed"] * 8,
        ...                   "n_response_tokens": [10, 10, 10, 10, 12, 12, 12, 12]})
        >>> choose_balanced(s, Rule("top", count=4), "effective_rank")
        [0, 2, 4, 6]
    """
    s = scores[scores[by].notna()].reset_index(drop=True)
    k = rule.size(len(s))
    rng = np.random.default_rng(seed)
    cols = [c for c in strata if c in s]
    keys = s[cols].astype(str).agg("|".join, axis=1) if cols else pd.Series("", index=s.index)
    groups = list(dict.fromkeys(keys))
    sizes = np.array([(keys == g).sum() for g in groups])
    quota = _quota(sizes, k)
    value = s.set_index("index")[by].astype(float)
    tok = s.set_index("index")[tokens].astype(float)
    sign = {"top": 1.0, "bottom": -1.0}.get(rule.kind, 0.0)
    blocks: list[np.ndarray] = []
    block_group: list[int] = []
    chosen: list[int] = []
    target = 0.0
    for gi, (g, q) in enumerate(zip(groups, quota, strict=True)):
        sub = s[keys == g]
        target += q * float(sub[tokens].mean()) if q else 0.0
        for b in _blocks(sub, tokens, int(q)) if q else []:
            blocks.append(b)
            block_group.append(gi)
            if rule.kind == "random":
                chosen.append(int(rng.choice(b)))
            else:
                chosen.append(int(max(b, key=lambda i: (sign * value[i], -i))))
    total = float(tok[chosen].sum())
    for _ in range(10 * k):
        if abs(total - target) <= tol * target:
            break
        best = None
        for scope in ("block", "stratum"):
            for pos, c in enumerate(chosen):
                pool = (blocks[pos] if scope == "block" else
                        np.concatenate([b for b, gi in zip(blocks, block_group, strict=True)
                                        if gi == block_group[pos]]))  # fmt: skip
                for u in pool:
                    if u in chosen:
                        continue
                    new = total - tok[c] + tok[u]
                    if abs(new - target) >= abs(total - target):
                        continue
                    cost = sign * (value[c] - value[u]) if sign else rng.random()
                    key = (cost, abs(new - target))
                    if best is None or key < best[0]:
                        best = (key, pos, int(u), new)
            if best is not None:
                break
        if best is None:
            break
        _, pos, u, total = best
        chosen[pos] = u
    return sorted(chosen)
