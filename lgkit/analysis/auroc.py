"""Exact inference for separation scores and paired differences (pure NumPy, no SciPy).

Notebook 08 asks whether a per-example score puts the better response of a question above
the worse one. The unit is the *question* (or a matched pair of responses, each question in
at most one pair, so units are independent). Per unit, :func:`unit_auroc` is the AUROC of
its better vs worse responses (1: the better scores higher, 0: lower, 0.5: tie); the
statistic is the share of untied units in which the better response scores higher, the
**within-question AUROC** (the AUROC stratified by question: question difficulty, dataset
and the question's own length cancel). Its 95% interval is Clopper–Pearson
(:func:`clopper_pearson`, exact: coverage ≥ 95% at every n and true value, and complete
separation gives ``[0.025^(1/n), 1]``, never ``[1, 1]``); its test is the exact sign test
(:func:`sign_test`), the inversion of that same interval, so the interval shown decides.

Paired differences (held-out loss after training on two subsets, per held-out question)
get the exact sign-flip permutation test of the mean (:func:`signflip_p`: all ``2^n``
flips up to :data:`EXACT_FLIPS`) and its inversion (:func:`signflip_interval`), so again
the interval and the test are one procedure. ``tests/test_auroc.py`` checks coverage,
size and power by simulation at 08's sizes.

Example:
    >>> clopper_pearson(24, 24)[0] > 0.85, clopper_pearson(24, 24)[1]
    (True, 1.0)
    >>> round(sign_test(24, 24), 8) == round(2 * 0.5**24, 8)
    True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

ALPHA = 0.05
EXACT_FLIPS = 2**16
"""All sign flips are enumerated up to this many (``n <= 16``), else Monte Carlo."""
MC_FLIPS = 100_000


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), exact sum (n up to a few hundred).

    Example:
        >>> binom_cdf(0, 3, 0.5), binom_cdf(3, 3, 0.5)
        (0.125, 1.0)
    """
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    if p == 0.5:  # exact in binary floating point for the sign test
        return float(min(1.0, sum(math.comb(n, i) for i in range(k + 1)) / 2**n))
    q = 1 - p
    return float(min(1.0, sum(math.comb(n, i) * p**i * q ** (n - i) for i in range(k + 1))))


def _solve(f, target: float) -> float:
    """The p in [0, 1] where the decreasing function ``f(p)`` equals ``target`` (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval of a binomial proportion: ``k`` successes of ``n``.

    Example:
        >>> [round(x, 4) for x in clopper_pearson(10, 10)]
        [0.6915, 1.0]
        >>> [round(x, 4) for x in clopper_pearson(0, 24)]
        [0.0, 0.1425]
    """
    if n <= 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    # lower: P(X >= k | p) = a (increasing in p); upper: P(X <= k | p) = a (decreasing)
    lo = 0.0 if k == 0 else 1 - _solve(lambda q: 1 - binom_cdf(k - 1, n, 1 - q), a)
    hi = 1.0 if k == n else _solve(lambda p: binom_cdf(k, n, p), a)
    return lo, hi


def sign_test(k: int, n: int) -> float:
    """Exact two-sided (equal-tailed) binomial p of ``k`` of ``n`` against 1/2:
    ``2 min(P(X <= k), P(X >= k))``, capped at 1. Below ``1 - level`` exactly when
    :func:`clopper_pearson` at ``level`` excludes 1/2.

    Example:
        >>> sign_test(5, 10), sign_test(10, 10) == 2 / 1024
        (1.0, True)
    """
    if n <= 0:
        return float("nan")
    lower, upper = binom_cdf(k, n, 0.5), 1 - binom_cdf(k - 1, n, 0.5)
    return float(min(1.0, 2 * min(lower, upper)))


def min_p(n: int) -> float:
    """The smallest p the sign test (or the sign-flip test) can give with ``n`` units.

    Example:
        >>> min_p(10) == 2 / 1024
        True
    """
    return float(min(1.0, 2 * 0.5**n)) if n > 0 else float("nan")


def smallest_detectable(n: int, alpha: float = ALPHA) -> float:
    """The smallest share ``k/n`` of units in the claimed direction that the sign test
    rejects at ``alpha`` (nan when none can).

    Example:
        >>> smallest_detectable(24), smallest_detectable(5)
        (0.75, nan)
    """
    for k in range(n // 2, n + 1):
        if sign_test(k, n) < alpha:
            return k / n
    return float("nan")


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + P(tie)/2 over all pairs (the Mann–Whitney AUROC).

    Example:
        >>> auroc(np.array([3.0, 2.0]), np.array([1.0, 2.0]))
        0.875
    """
    if not (len(pos) and len(neg)):
        return float("nan")
    c = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return float(c.mean())


def unit_auroc(pos: np.ndarray, neg: np.ndarray, unit_pos: np.ndarray, unit_neg: np.ndarray,
               units: Sequence[str]) -> np.ndarray:  # fmt: skip
    """Per unit of ``units``, the AUROC of its ``pos`` vs its ``neg`` scores.

    Example:
        >>> unit_auroc(np.array([2.0, 1.0]), np.array([1.0, 3.0]), np.array(["a", "b"]),
        ...            np.array(["a", "b"]), ["a", "b"]).tolist()
        [1.0, 0.0]
    """
    return np.array([auroc(pos[unit_pos == u], neg[unit_neg == u]) for u in units], float)


def concordance(u: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """The within-unit AUROC of per-unit AUROCs ``u``: share of untied units above 1/2,
    its Clopper–Pearson interval at ``level`` and the exact sign test p.

    Example:
        >>> r = concordance(np.array([1.0] * 24))
        >>> r["estimate"], r["k"], r["n"], round(r["ci_low"], 3), r["ci_high"]
        (1.0, 24, 24, 0.858, 1.0)
    """
    wins, losses = int(np.sum(u > 0.5)), int(np.sum(u < 0.5))
    n = wins + losses
    lo, hi = clopper_pearson(wins, n, level)
    return {"estimate": wins / n if n else float("nan"), "ci_low": lo, "ci_high": hi,
            "p": sign_test(wins, n), "k": wins, "n": n, "ties": int(len(u) - n)}  # fmt: skip


def _flips(n: int, seed: int) -> np.ndarray:
    """Every sign vector (``2^n <=`` :data:`EXACT_FLIPS`) or :data:`MC_FLIPS` random ones
    (the identity first, so a Monte Carlo p is never 0)."""
    if 2**n <= EXACT_FLIPS:
        return np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    rng = np.random.default_rng(seed)
    s = rng.choice([-1.0, 1.0], size=(MC_FLIPS, n))
    s[0] = 1.0
    return s


def signflip_p(d: np.ndarray, shift: float = 0.0, *, seed: int = 0,
               flips: np.ndarray | None = None) -> float:  # fmt: skip
    """Two-sided sign-flip permutation p of ``mean(d) = shift`` (exact over all ``2^n``
    flips for ``n <= 16``; Monte Carlo with the identity included above).

    Example:
        >>> signflip_p(np.ones(10)) == 2 / 1024
        True
    """
    x = np.asarray(d, float) - shift
    s = _flips(len(x), seed) if flips is None else flips
    null = np.abs(s @ x)
    return float(np.mean(null >= abs(x.sum()) * (1 - 1e-12) - 1e-15))


def signflip_interval(d: np.ndarray, level: float = 0.95, *, seed: int = 0) -> tuple[float, float]:
    """The shifts ``delta`` that the sign-flip test of ``mean(d - delta) = 0`` does not
    reject at ``1 - level``: an exact interval of the centre of a symmetric paired
    difference, consistent with :func:`signflip_p` (it excludes 0 iff that p is below
    ``1 - level``, up to the bisection's tolerance).

    Example:
        >>> d = np.array([-0.5, -0.3, -0.4, -0.6, -0.2, -0.45, -0.35, -0.5, -0.1, -0.3])
        >>> lo, hi = signflip_interval(d)
        >>> bool(lo < d.mean() < hi < 0)
        True
    """
    x = np.asarray(d, float)
    n = len(x)
    a = 1 - level
    if n == 0 or min_p(n) >= a:
        return -math.inf, math.inf
    s = _flips(n, seed)
    m = float(x.mean())
    spread = float(np.ptp(x)) + abs(m) + 1e-12

    def accepted(delta: float) -> bool:
        return signflip_p(x, delta, flips=s) > a

    def edge(sign: float) -> float:
        inside, out = m, m + sign * spread
        while accepted(out):
            out = m + 2 * (out - m)
        for _ in range(60):
            mid = (inside + out) / 2
            if accepted(mid):
                inside = mid
            else:
                out = mid
        return (inside + out) / 2

    return edge(-1.0), edge(1.0)


def match_pairs(pos_cov: np.ndarray, neg_cov: np.ndarray, pos_q: np.ndarray, neg_q: np.ndarray,
                tol: float) -> list[tuple[int, int]]:  # fmt: skip
    """Greedy matched pairs (pos index, neg index) whose covariate values are within
    ``tol`` (relative to the larger absolute value); same-question pairs first, then the
    closest; **each question in at most one pair** (on either side), so pairs are
    independent units when questions are.

    Example:
        >>> match_pairs(np.array([100.0, 50.0]), np.array([98.0, 10.0]),
        ...             np.array(["a", "b"]), np.array(["b", "a"]), 0.1)
        [(0, 0)]
    """
    gap = np.abs(pos_cov[:, None] - neg_cov[None, :])
    scale = np.maximum(np.abs(pos_cov[:, None]), np.abs(neg_cov[None, :]))
    ok = gap <= tol * scale
    same = pos_q[:, None] == neg_q[None, :]
    cand = [(not same[i, j], gap[i, j], i, j) for i, j in zip(*np.nonzero(ok), strict=True)]
    used: set[str] = set()
    pairs = []
    for _, _, i, j in sorted(cand):
        qs = {str(pos_q[i]), str(neg_q[j])}
        if used & qs:
            continue
        used |= qs
        pairs.append((int(i), int(j)))
    return pairs
