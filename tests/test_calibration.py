"""Calibration of the findings' interval and tests by simulation (issue 16).

Per-question curves like the real tables: 4 modules x 12 layers with a decreasing layer
shape, a lognormal level per question (shared by the two sides when paired), a lognormal
factor per response and per (module, layer); every factor has mean one, so the true
statistic is known. Checked at 12 questions (10 for equivalence, 4 for "no verdict"):
coverage of the 95% interval, size of the permutation test and of the equivalence
decision at the margin, power on a planted ratio of 0.7. Seeded; the replications are
enough for each check to fail for a broken method (the percentile bootstrap fails the
coverage check). ``python tests/test_calibration.py`` prints old vs new numbers.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from lgkit.analysis import findings as F
from lgkit.analysis import inference as I

slow = pytest.mark.slow

M, L = 4, 12
_SHAPE = (np.linspace(3.0, 1.0, L)[None] * np.array([1.0, 0.8, 1.2, 0.6])[:, None]) * np.exp(
    np.random.default_rng(123).normal(0, 0.15, (M, L))
)
_SIGN = np.where(np.random.default_rng(7).random((M, L)) < 0.5, -1.0, 1.0) * (
    1 + 0.5 * np.sin(np.arange(L))
)
KINDS = ("level", "mad", "rmad", "rd", "ror")


def _ln(rng: np.random.Generator, s: float, size) -> np.ndarray:
    return np.exp(rng.normal(-s * s / 2, s, size))  # mean one


def _side(rng, lev: np.ndarray, cells, noise: tuple[float, float] = (0.25, 0.1)) -> np.ndarray:
    """``[question, cell, module, layer]``: level x cell factor x shape x noise (lognormal
    sigmas ``noise``: per response, per response and (module, layer))."""
    n, (s_resp, s_cell) = len(lev), noise
    return np.stack(
        [
            lev[:, None, None]
            * f
            * _SHAPE
            * _ln(rng, s_resp, (n, 1, 1))
            * _ln(rng, s_cell, (n, M, L))
            for f in cells
        ],
        axis=1,
    )


def _gap(g: float) -> np.ndarray:
    """Irrelevant/correct factor per (module, layer) whose mean |gap| (the RD) is ``g``."""
    return 1 + g * _SIGN / np.abs(_SIGN).mean()


def _flatten(eff: float) -> np.ndarray:
    """Per-(module, layer) factor ``(mean shape / shape) ** g`` that makes the mean curve's
    MAD ÷ level ``eff`` times the unflattened one (``g`` by bisection; ``eff`` ≤ 1).

    Example:
        >>> r = I.relative_mad(_flatten(0.7) * _SHAPE) / I.relative_mad(_SHAPE)
        >>> round(float(r), 6)
        0.7
    """
    base, lo, hi = float(I.relative_mad(_SHAPE)), 0.0, 1.0
    for _ in range(60):
        g = (lo + hi) / 2
        f = (_SHAPE.mean() / _SHAPE) ** g
        lo, hi = (g, hi) if I.relative_mad(f * _SHAPE) / base > eff else (lo, g)
    return (_SHAPE.mean() / _SHAPE) ** ((lo + hi) / 2)


def simulate(rng, n: int, kind: str, paired: bool, eff: float, n_b: int | None = None,
             noise: tuple[float, float] = (0.25, 0.1)):  # fmt: skip
    """Sides and the true value of the log statistic (:func:`stat`) with effect ``eff``.

    level, mad: level (MAD) ratio b/a = eff; rmad: MAD ÷ level ratio b/a = eff (b's layer
    shape flattened, its level unchanged); rd: RD ratio b/a = eff (RD 0.3 at a); ror: ratio of
    the (fast/slow) level ratios b over a = 1/eff. ``noise``: see :func:`_side`.
    """
    la = _ln(rng, 0.5, n)
    lb = la if paired else _ln(rng, 0.5, n_b or n)
    cells = {
        "level": ([1.0], [eff], math.log(eff)),
        "mad": ([1.0], [eff], math.log(eff)),
        "rmad": ([1.0], [_flatten(eff)], math.log(eff)),
        "rd": ([1.0, _gap(0.3)], [1.0, _gap(0.3 * eff)], math.log(eff)),
        "ror": ([1.0, 0.5], [1.0, 0.5 * eff], -math.log(eff)),
    }[kind]
    a, b = _side(rng, la, cells[0], noise), _side(rng, lb, cells[1], noise)
    qa, qb = [str(k) for k in range(len(a))], [str(k) for k in range(len(b))]
    return I.Sides(a, b, paired, qa, qb, list("qkvo"), list(range(L))), cells[2]


def stat(kind: str) -> I.Stat:
    """The claims' log statistics: level, MAD, MAD ÷ level and RD ratios, ratio of level ratios."""
    lv, rd = I.level, I.rd
    return {
        "level": lambda a, b: np.log(lv(b[..., 0, :, :]) / lv(a[..., 0, :, :])),
        "mad": lambda a, b: np.log(I.mad(b[..., 0, :, :]) / I.mad(a[..., 0, :, :])),
        "rmad": lambda a, b: np.log(
            I.relative_mad(b[..., 0, :, :]) / I.relative_mad(a[..., 0, :, :])
        ),
        "rd": lambda a, b: np.log(
            rd(b[..., 0, :, :], b[..., 1, :, :]) / rd(a[..., 0, :, :], a[..., 1, :, :])
        ),
        "ror": lambda a, b: (
            np.log(lv(b[..., 0, :, :]) / lv(b[..., 1, :, :]))
            - np.log(lv(a[..., 0, :, :]) / lv(a[..., 1, :, :]))
        ),
    }[kind]


def coverage(kind: str, paired: bool, method: str, *, n=12, reps=2000, seed=0,
             noise: tuple[float, float] = (0.25, 0.1)) -> float:  # fmt: skip
    """Share of simulated 95% intervals holding the truth (``method``: t,
    studentized or percentile, the old one; ``noise``: see :func:`_side`)."""
    rng, st, hits = np.random.default_rng(seed), stat(kind), 0
    for r in range(reps):
        s, truth = simulate(rng, n, kind, paired, 0.7, noise=noise)
        if method == "percentile":
            lo, hi = I.ci(I.bootstrap(s, st, n_boot=1000, seed=r))
        else:
            iv = I.interval(s, st, method=method, n_boot=1000, seed=r)
            lo, hi = iv.low, iv.high
        hits += lo <= truth <= hi
    return hits / reps


def perm_size(paired: bool, *, n=12, n_b=None, reps=1000, seed=1, **kw) -> float:
    """Rejection rate at 0.05 of the permutation test of the level ratio under the null."""
    rng, st, rej = np.random.default_rng(seed), stat("level"), 0
    for r in range(reps):
        s, _ = simulate(rng, n, "level", paired, 1.0, n_b)
        rej += I.permutation(s, st, seed=r, **kw).p < I.ALPHA
    return rej / reps


def equivalence_size(kind: str, paired: bool, margin, truth: float, *, n=12, reps=1500,
                     seed=2) -> float:  # fmt: skip
    """Rate of "CI inside the margin" (the supported rule) when the truth is on the
    margin's boundary (ratio scale)."""
    rng, st, hits = np.random.default_rng(seed), stat(kind), 0
    lo, hi = (math.log(m) if m > 0 else -math.inf for m in margin)
    for _ in range(reps):
        s, _t = simulate(rng, n, kind, paired, truth if kind != "ror" else 1 / truth)
        iv = I.interval(s, st)
        hits += lo < iv.low and iv.high < hi
    return hits / reps


def power(kind: str = "level", eff: float = 0.7, *, n=12, reps=300, seed=3) -> float:
    """Share of "supported" verdicts of ``evaluate`` on a planted ratio ``eff`` (paired)."""
    rng, st, ok = np.random.default_rng(seed), stat(kind), 0
    for _ in range(reps):
        s, _ = simulate(rng, n, kind, True, eff)
        direction = "greater" if kind == "ror" else "less"  # ror's truth is 1/eff
        ok += F.evaluate("c", "s", s, st, direction=direction).verdict == "supported"
    return ok / reps


def _mc(p: float, reps: int) -> float:
    return 2 * math.sqrt(p * (1 - p) / reps)


@slow
@pytest.mark.parametrize(
    "kind,paired",
    [
        ("level", True),
        ("level", False),
        ("mad", True),
        ("rmad", True),
        ("rd", True),
        ("rd", False),
        ("ror", True),
    ],
)
def test_interval_coverage_at_12_questions(kind, paired):
    assert coverage(kind, paired, "t") >= 0.93


@slow
@pytest.mark.parametrize(
    "kind,paired", [("level", True), ("mad", True), ("rmad", True), ("rd", False)]
)
def test_interval_coverage_at_10_questions(kind, paired):
    assert coverage(kind, paired, "t", n=10, reps=1500) >= 0.93


@slow
def test_percentile_interval_fails_the_coverage_check():
    # the check bites: the old percentile bootstrap under-covers at 12 questions
    assert coverage("level", False, "percentile", reps=500) < 0.93


@slow
def test_permutation_size_under_the_null():
    bound = I.ALPHA + _mc(I.ALPHA, 400)
    assert perm_size(True, reps=400) <= bound  # exact: 4096 sign flips
    assert perm_size(False, n=6, reps=400) <= bound  # exact: C(12, 6) relabellings
    assert perm_size(False, n=12, reps=400, family_size=1) <= bound  # 400 MC relabellings


@slow
def test_equivalence_size_at_the_margin():
    bound = 0.025 + _mc(0.025, 1500)
    # two-sided margin [1/1.5, 1.5] at its upper edge, paired level ratio (a margin the
    # interval can fit in at 12 questions: at [1/1.1, 1.1] the check would be vacuous)
    assert equivalence_size("level", True, (1 / 1.5, 1.5), 1.5) <= bound
    # non-inferiority margin 1.5 on the RD ratio, paired and unpaired
    assert equivalence_size("rd", True, (0.0, 1.5), 1.5) <= bound
    assert equivalence_size("rd", False, (0.0, 1.5), 1.5) <= bound


def equivalence_size_batch(n: int, *, reps: int = 20_000, truth: float = 1.5, seed: int = 11,
                           factor: bool = True, chunk: int = 4000) -> float:  # fmt: skip
    """Vectorised :func:`equivalence_size` of the paired level ratio with the two-sided
    margin ``[1/truth, truth]`` and the truth on its upper edge: the rate of "decision
    interval inside the margin" (the supported rule), with the no-difference SE factor
    (:func:`lgkit.analysis.intervals.equivalence_factor`) or without (the old rule)."""
    from lgkit.analysis.intervals import _jackknife, equivalence_factor
    from lgkit.analysis.studentt import t_ppf

    rng, st, hits = np.random.default_rng(seed), stat("level"), 0
    crit = t_ppf(0.975, n - 1) * (equivalence_factor(n) if factor else 1.0)
    bound = math.log(truth)
    for start in range(0, reps, chunk):
        k = min(chunk, reps - start)
        lev = _ln(rng, 0.5, (k, n))
        a = (
            lev[..., None, None]
            * _SHAPE
            * _ln(rng, 0.25, (k, n, 1, 1))
            * _ln(rng, 0.1, (k, n, M, L))
        )
        b = (
            truth
            * lev[..., None, None]
            * _SHAPE
            * _ln(rng, 0.25, (k, n, 1, 1))
            * _ln(rng, 0.1, (k, n, M, L))
        )
        a, b = a[:, :, None], b[:, :, None]  # one cell
        est = st(a.mean(1), b.mean(1))
        var, _ = _jackknife(st, a, b, True)
        half = crit * np.sqrt(var)
        hits += int(np.sum((est - half > -bound) & (est + half < bound)))
    return hits / reps


def test_equivalence_batch_matches_the_decision_interval():
    # the vectorised check above uses the same interval as evaluate's no-difference rows
    rng = np.random.default_rng(5)
    s, _ = simulate(rng, 12, "level", True, 1.5)
    f = F.evaluate("c", "s", s, stat("level"), kind="equivalence", margin=(1 / 1.5, 1.5))
    from lgkit.analysis.intervals import _jackknife, equivalence_factor
    from lgkit.analysis.studentt import t_ppf

    est = float(stat("level")(s.a.mean(0), s.b.mean(0)))
    var, _ = _jackknife(stat("level"), s.a[None], s.b[None], True)
    half = t_ppf(0.975, 11) * equivalence_factor(12) * float(np.sqrt(var[0]))
    assert math.log(f.ci_low) == pytest.approx(est - half) and math.log(f.ci_high) == pytest.approx(
        est + half
    )


@pytest.mark.parametrize("n", [10, 12, 24])
def test_equivalence_size_is_nominal_at_10_12_24_questions(n):
    # issue 27 rule 8: with the plain jackknife t interval the paired level ratio's
    # equivalence decision had size 0.028-0.030 at n = 10, 12, 24 (> 0.025); the SE factor
    # 1 + 1/n brings it to <= 0.025 within Monte Carlo error. 20,000 replications: the
    # bound 0.025 + 2 MC SE = 0.0272 tells 0.025 from 0.030 (the old rule fails it).
    reps = 20_000
    assert equivalence_size_batch(n, reps=reps) <= 0.025 + _mc(0.025, reps)


@slow
def test_the_size_check_bites_on_the_old_interval():
    reps = 20_000
    assert equivalence_size_batch(12, reps=reps, factor=False) > 0.025 + _mc(0.025, reps)


@slow
def test_power_on_a_planted_effect():
    # at 12 questions this noise gives power ~0.80 at a level ratio of 0.7 (see main());
    # 0.65 must be found reliably (the noisier ratio of ratios is printed by main())
    assert power("level", 0.65) >= 0.8


def test_small_n_gives_no_verdict():
    rng = np.random.default_rng(4)
    for _ in range(20):
        s, _ = simulate(rng, 4, "level", True, 0.3)
        f = F.evaluate("c", "s", s, stat("level"))
        assert f.verdict == "inconclusive" and "no verdict possible" in f.caveats
        eq = F.evaluate("c", "s", s, stat("level"), kind="equivalence", margin=(0.1, 10.0))
        assert eq.verdict == "inconclusive" and "needs >= 10 questions" in eq.caveats
    s, _ = simulate(rng, 10, "level", True, 1.0)
    wide = F.evaluate("c", "s", s, stat("level"), kind="equivalence", margin=(0.2, 5.0))
    assert wide.verdict == "supported"  # from 10 questions equivalence can be decided


def main() -> None:
    """Print coverage, size and power of the old (percentile, 1000 MC permutations) and
    new (jackknife t, exact permutations) methods."""
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    for kind in KINDS:
        for paired in (True, False):
            row = {
                m: coverage(kind, paired, m, reps=reps) for m in ("percentile", "t", "studentized")
            }
            print(
                f"coverage n=12 {kind:5s} {'paired' if paired else 'unpaired':8s}", row, flush=True
            )
    # not a test: MAD-type ratios of a mean curve are biased at small n when each response's
    # curve is noisy along the layers (|adjacent differences| add noise), so coverage falls
    for noise in ((0.25, 0.3), (0.5, 0.5)):
        for kind in ("mad", "rmad"):
            for n in (12, 24):
                c = coverage(kind, True, "t", n=n, reps=reps, noise=noise)
                print(f"coverage n={n} {kind} paired, noise sigmas {noise}: {c}", flush=True)
    print("perm size paired n=12 exact", perm_size(True, reps=reps))
    print("perm size unpaired 12+12 MC", perm_size(False, reps=reps // 2, family_size=1))
    for kind, paired, margin, truth in (("level", True, (1 / 1.5, 1.5), 1.5),
                                        ("rd", True, (0.0, 1.5), 1.5), ("rd", False, (0.0, 1.5), 1.5)):  # fmt: skip
        print(f"equivalence size {kind} paired={paired} at {truth}",
              equivalence_size(kind, paired, margin, truth, reps=2 * reps))  # fmt: skip
    print(
        "power level 0.7 n=12", power("level", reps=reps // 2), "ror", power("ror", reps=reps // 2)
    )


if __name__ == "__main__":
    main()
