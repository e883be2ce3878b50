"""Calibration of notebook 08's inference (lgkit.analysis.auroc) at the sizes 08 uses:
24 questions (correct vs irrelevant), 17 length-matched pairs, 10 held-out questions.

Clopper–Pearson coverage is computed exactly (sum over the binomial), the rest by
simulation of question-level data (a question effect shared by both responses)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lgkit.analysis.auroc import (
    binom_cdf,
    clopper_pearson,
    concordance,
    min_p,
    sign_test,
    signflip_interval,
    signflip_p,
    smallest_detectable,
    unit_auroc,
)

SIZES = (24, 17, 10)


def _pmf(k: int, n: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


@pytest.mark.parametrize("n", SIZES)
def test_clopper_pearson_exact_coverage_at_least_95(n):
    """Exact coverage over a fine grid of true within-question AUROCs, boundaries included."""
    cis = [clopper_pearson(k, n) for k in range(n + 1)]
    for theta in np.linspace(0.005, 0.995, 199):
        cover = sum(_pmf(k, n, theta) for k, (lo, hi) in enumerate(cis) if lo <= theta <= hi)
        assert cover >= 0.95 - 1e-9, (n, theta, cover)
    lo, hi = cis[n]  # complete separation: an interval that reflects n, never [1, 1]
    assert hi == 1.0 and abs(lo - 0.025 ** (1 / n)) < 1e-9


@pytest.mark.parametrize("n", SIZES)
def test_sign_test_exact_size_and_consistency_with_the_interval(n):
    size = sum(_pmf(k, n, 0.5) for k in range(n + 1) if sign_test(k, n) < 0.05)
    assert size <= 0.05
    for k in range(n + 1):  # the interval shown decides: CI excludes 1/2 iff p < 0.05
        lo, hi = clopper_pearson(k, n)
        assert (lo > 0.5 or hi < 0.5) == (sign_test(k, n) < 0.05), (n, k)
    assert min_p(n) == 2 * 0.5**n and sign_test(n, n) == min_p(n)
    assert binom_cdf(n, n, 0.3) == 1.0


def _questions(rng, n, delta, reps):
    """reps x n questions: score of the better and the worse response share a question
    effect (sd 2); the better is shifted by ``delta`` (noise sd 1 each)."""
    q = rng.normal(0, 2, size=(reps, n))
    return q + delta + rng.normal(size=(reps, n)), q + rng.normal(size=(reps, n))


@pytest.mark.parametrize("n", SIZES)
def test_within_question_auroc_coverage_size_power_by_simulation(n):
    rng = np.random.default_rng(n)
    reps = 4000
    units = [str(i) for i in range(n)]
    table = [concordance(np.r_[np.ones(k), np.zeros(n - k)]) for k in range(n + 1)]
    for delta, want_power in ((0.0, None), (0.5, None), (1.5, 0.55)):
        theta = 0.5 * (1 + math.erf(delta / 2))  # P(better > worse) = Phi(delta / sqrt 2)
        x, y = _questions(rng, n, delta, reps)
        for b in range(50):  # the per-unit route gives the same counts as the direct one
            u = unit_auroc(x[b], y[b], np.array(units), np.array(units), units)
            assert concordance(u)["k"] == int(np.sum(x[b] > y[b]))
        rows = [table[k] for k in np.sum(x > y, axis=1)]
        cover = np.mean([r["ci_low"] <= theta <= r["ci_high"] for r in rows])
        reject = np.mean([r["p"] < 0.05 and r["ci_low"] > 0.5 for r in rows])
        assert cover >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / reps), (n, delta, cover)
        if delta == 0.0:
            assert reject <= 0.05, (n, reject)  # size
        if want_power is not None and n >= 17:
            assert reject >= want_power, (n, reject)  # power
    assert smallest_detectable(n) == {24: 18 / 24, 17: 13 / 17, 10: 9 / 10}[n]


def test_signflip_exact_size_coverage_and_consistency_at_10_heldout_questions():
    rng = np.random.default_rng(7)
    reps, n = 600, 10
    for dist in ("normal", "t3"):
        draw = (lambda s: rng.normal(size=s)) if dist == "normal" else (
            lambda s: rng.standard_t(3, size=s))  # fmt: skip
        d0 = draw((reps, n))
        p0 = np.array([signflip_p(d) for d in d0])
        assert np.mean(p0 < 0.05) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps), dist  # size
        shift = -0.4
        hits = 0
        for d in d0[:200] + shift:
            lo, hi = signflip_interval(d)
            hits += lo <= shift <= hi
            assert (hi < 0 or lo > 0) == (signflip_p(d) < 0.05)  # one procedure
        assert hits / 200 >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / 200), (dist, hits / 200)
    power = np.mean([signflip_p(d) < 0.05 for d in rng.normal(-1.0, 1.0, size=(300, n))])
    assert power >= 0.7, power
