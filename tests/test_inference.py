"""Question-level inference on constructed tables with a known answer (issue 10)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from lgkit import analysis as A
from lgkit.analysis import inference as I
from lgkit.analysis.studentt import t_ppf

LAYERS = 6
MODULES = ("q", "k", "v", "o")


def table(
    n: int = 30,
    *,
    detailed: float = 1.0,
    irrelevant: dict[str, float] | None = None,
    noise: float = 0.05,
    seed: int = 0,
    prefix: str = "d",
    truncated_cot: str | None = None,
) -> pd.DataFrame:
    """Per question a random curve; ``cot=detailed`` is ``detailed`` x none's curve, the
    irrelevant response of a cot level is ``(1 + irrelevant[cot])`` x the correct one;
    every example gets its own multiplicative noise."""
    rng = np.random.default_rng(seed)
    gaps = {"none": 0.0, "detailed": 0.0, **(irrelevant or {})}
    shape = np.linspace(3.0, 1.0, LAYERS) + rng.normal(0, 0.2, LAYERS)
    rows = []
    for q in range(n):
        base = shape * rng.lognormal(0, 0.2)
        for cot, factor in (("none", 1.0), ("detailed", detailed)):
            for correct in (True, False):
                scale = factor * (1.0 if correct else 1 + gaps[cot])
                tag = "correct" if correct else "irrelevant"
                for m in MODULES:
                    vals = base * scale * rng.lognormal(0, noise, LAYERS)
                    for layer, v in enumerate(vals):
                        rows.append(
                            {
                                "sample_id": f"{prefix}-{q:03d}-{cot}-{tag}",
                                "dataset": prefix,
                                "cot": cot,
                                "correct": correct,
                                "layer": layer,
                                "module": m,
                                "n_response_tokens": 10,
                                "truncated": cot == truncated_cot,
                                "nuclear_norm": float(v),
                            }
                        )
    return pd.DataFrame(rows)


def level_row(fs: list[A.Finding]) -> A.Finding:
    return next(f for f in fs if f.statistic.startswith("mean-curve level"))


def test_question_ids_pair_variants():
    ids = I.question_ids(
        pd.DataFrame({"sample_id": ["d-007-none-correct", "d-007-detailed-irrelevant"]})
    )
    assert ids.tolist() == ["d-007", "d-007"]
    s = I.side_arrays(table(5), "nuclear_norm", [{"cot": "none"}], [{"cot": "detailed"}])
    assert s.paired and s.n_questions == 5 and s.a.shape == (5, 1, 4, LAYERS)


def test_planted_effect_supported_with_ci_covering_it():
    f = level_row(A.claim_flatter_with_cot(table(30, detailed=0.7), n_boot=1000))
    assert f.verdict == "supported" and f.n_questions == 30
    assert f.ci_low <= 0.7 <= f.ci_high and f.ci_high < 1
    assert f.estimate == pytest.approx(0.7, rel=0.03) and f.p < 0.01


def test_null_table_difference_inconclusive_no_difference_only_by_equivalence():
    null = table(30, detailed=1.0, irrelevant={"none": 0.0, "detailed": 0.0})
    fs = A.decide(
        A.claim_flatter_with_cot(null, segments=False, n_boot=500)
        + A.claim_correct_vs_irrelevant(null, n_boot=500)
    )
    difference = [f for f in fs if f.kind == "difference"]
    assert difference and all(f.verdict == "inconclusive" for f in difference), [
        (f.statistic, f.p_adj, f.verdict) for f in difference
    ]
    alike = [f for f in fs if f.kind == "equivalence"]
    assert len(alike) == 2 and all(f.verdict == "supported" for f in alike)
    assert all(1 / 1.1 < f.ci_low and f.ci_high < 1.1 for f in alike)  # within the stated margin
    # the same null but too noisy to resolve the margin: not "supported" by failing to differ
    noisy = table(6, detailed=1.0, noise=0.4, seed=3)
    eq = next(
        f for f in A.claim_correct_vs_irrelevant(noisy, n_boot=500) if f.kind == "equivalence"
    )
    assert eq.verdict == "inconclusive" and (eq.ci_high > 1.1 or eq.ci_low < 1 / 1.1)
    assert "RD noise floor" in eq.caveats


def test_planted_effect_in_random_twin_flagged():
    model = A.claim_flatter_with_cot(table(25, detailed=0.7), segments=False, n_boot=400)
    twin_same = A.claim_flatter_with_cot(
        table(25, detailed=0.7, seed=9), segments=False, n_boot=400
    )
    twin_null = A.claim_flatter_with_cot(
        table(25, detailed=1.0, seed=9), segments=False, n_boot=400
    )
    flagged = A.decide(model, controls=twin_same)
    assert all(f.verdict == "supported" and A.TWIN_LABEL in f.verdict_text for f in flagged)
    assert all(f.control.startswith("random twin:") for f in flagged)
    clean = A.decide(model, controls=twin_null)
    assert all(f.verdict == "supported" and A.TWIN_LABEL not in f.verdict_text for f in clean)


def test_identical_or_truncated_groups_invalid():
    t = table(10)
    same = t.copy()
    same.loc[same["cot"] == "detailed", "nuclear_norm"] = same.loc[
        same["cot"] == "none", "nuclear_norm"
    ].to_numpy()
    fs = A.claim_flatter_with_cot(same, n_boot=100)
    assert all(f.verdict == "invalid" and "identical" in f.verdict_text for f in fs)
    cut = A.claim_flatter_with_cot(table(10, truncated_cot="detailed"), n_boot=100)
    assert all(f.verdict == "invalid" and "truncated" in f.verdict_text for f in cut)
    few = A.claim_flatter_with_cot(table(2, detailed=0.5), n_boot=100)
    assert all(f.verdict == "invalid" for f in few)
    # invalid rows take no part in Holm
    fs = A.decide(A.claim_flatter_with_cot(table(10, detailed=0.6), segments=False) + few[:1])
    assert np.isnan(fs[-1].p_adj) and fs[0].p_adj == pytest.approx(2 * max(fs[0].p, fs[1].p))


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04)
    assert I.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert I.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    out = I.holm([0.02, float("nan"), 0.01])
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_fixed_seed_same_ci():
    t = table(12, detailed=0.8, noise=0.2)
    a = level_row(A.claim_flatter_with_cot(t, n_boot=300, seed=5))
    b = level_row(A.claim_flatter_with_cot(t, n_boot=300, seed=5))
    c = level_row(A.claim_flatter_with_cot(t, n_boot=300, seed=6))
    assert (a.ci_low, a.ci_high, a.p) == (b.ci_low, b.ci_high, b.p)
    # the default jackknife-t interval and the exact 2^12 sign-flip test use no random numbers
    assert (a.ci_low, a.ci_high, a.p) == (c.ci_low, c.ci_high, c.p)
    assert "exact sign-flip test (4096 flips)" in a.detail and "jackknife" in a.detail
    s = I.side_arrays(t, "nuclear_norm", [{"cot": "none"}], [{"cot": "detailed"}])

    def st(x, y):
        return np.log(I.level(y[..., 0, :, :]) / I.level(x[..., 0, :, :]))

    boot = [I.interval(s, st, method="studentized", n_boot=300, seed=k) for k in (5, 5, 6)]
    assert (boot[0].low, boot[0].high) == (boot[1].low, boot[1].high)
    assert (boot[0].low, boot[0].high) != (boot[2].low, boot[2].high)


def test_unpaired_groups_cluster_bootstrap():
    a = table(15, prefix="short")
    b = table(15, prefix="long", irrelevant={"none": 0.6}, seed=1)
    both = pd.concat([a, b])
    fs = A.claim_length_not_enough(both, by="dataset", levels=["short", "long"], n_boot=400)
    f = fs[0]
    assert "unpaired (two-sample) interval and test" in f.caveats and f.n_questions == 15
    # RD long/short: 0.6 vs the noise-level RD of `short`: far above the margin 1.5
    assert f.verdict == "contradicted"


def _log_level(x, y):
    return np.log(I.level(y[..., 0, :, :]) / I.level(x[..., 0, :, :]))


def _sides(a, b, paired):
    qa, qb = [str(k) for k in range(len(a))], [str(k) for k in range(len(b))]
    return I.Sides(a, b, paired, qa, qb, ["q"], list(range(a.shape[-1])))


def test_swap_null_exact_and_shrinking():
    rng = np.random.default_rng(0)

    def pair(n):  # exchangeable correct / irrelevant responses of n questions
        q = rng.lognormal(0, 0.3, size=(n, 2, 5)) + 5
        return [q * rng.lognormal(0, 0.1, size=q.shape) for _ in range(2)]

    small, large = I.rd_swap_null(*pair(8)), I.rd_swap_null(*pair(200), n_perm=500)
    assert small.exact and small.n_perm == 2**8 and not large.exact
    assert large.n_perm == I.required_permutations()  # enough for the Holm family
    assert 0 < large.null_mean < small.null_mean
    c, i = pair(12)
    # naive reference: every subset of swapped questions, RD of the mean curves
    ref = []
    for code in range(2**12):
        f = ((code >> np.arange(12)) & 1).astype(bool)[:, None, None]
        ref.append(float(I.rd(np.where(f, i, c).mean(0), np.where(f, c, i).mean(0))))
    got = I.rd_swap_null(c, i)
    obs = float(I.rd(c.mean(0), i.mean(0)))
    assert got.observed == pytest.approx(obs) and got.null_mean == pytest.approx(np.mean(ref))
    assert got.p == pytest.approx(np.mean(np.array(ref) >= obs * (1 - 1e-9)))
    assert I.rd_swap_null(c, 1.3 * i).p < 0.01


def test_exact_permutation_against_brute_force():
    rng = np.random.default_rng(1)
    a = rng.lognormal(0, 0.4, size=(6, 1, 1, 3))
    b = a * rng.lognormal(-0.3, 0.3, size=a.shape)
    obs = abs(float(_log_level(a.mean(0), b.mean(0))))
    flips = []
    for code in range(2**6):
        f = ((code >> np.arange(6)) & 1).astype(bool)[:, None, None, None]
        pa, pb = np.where(f, b, a).mean(0), np.where(f, a, b).mean(0)
        flips.append(abs(float(_log_level(pa, pb))) >= obs * (1 - 1e-9))
    r = I.permutation(_sides(a, b, True), _log_level)
    assert r.exact and r.n_perm == 64 and r.p == pytest.approx(np.mean(flips))
    # unpaired 4 vs 5: every split of the 9 questions
    x, y = a[:4], b[:5]
    pool = np.concatenate([x, y])
    obs = abs(float(_log_level(x.mean(0), y.mean(0))))
    splits = [
        abs(float(_log_level(pool[list(g)].mean(0), np.delete(pool, list(g), 0).mean(0))))
        >= obs * (1 - 1e-9)
        for g in itertools.combinations(range(9), 4)
    ]
    r = I.permutation(_sides(x, y, False), _log_level)
    assert r.exact and r.n_perm == 126 and r.p == pytest.approx(np.mean(splits))
    # beyond the exact limit: enough Monte Carlo permutations for the Holm family
    big = _sides(rng.lognormal(0, 0.3, (20, 1, 1, 3)), rng.lognormal(0, 0.3, (20, 1, 1, 3)), False)
    r = I.permutation(big, _log_level, n_perm=100, family_size=10)
    assert not r.exact and r.n_perm == 4000 and "Monte Carlo label-permutation" in r.text


def test_min_p_and_small_n_caveat():
    assert I.min_p(12) == 2 / 4096 and I.min_p(4) == 0.125 and I.min_p(6) == 2 / 64
    assert I.min_p(12, paired=False) == 1 / 20001  # C(24, 12) > 1e5: 20000 MC relabellings
    assert I.min_p(3, paired=False, n_b=4) == 1 / 35
    a = np.arange(1.0, 5.0).reshape(4, 1, 1, 1)
    f = A.evaluate("c", "s", _sides(a, a * 0.5, True), _log_level)
    assert f.p == 0.125 and f.verdict == "inconclusive" and "no verdict" in f.verdict_text
    assert "n=4: the smallest possible p is 0.125: no verdict possible at this size" in f.caveats
    big = A.evaluate("c", "s", _sides(np.tile(a, (3, 1, 1, 1)), np.tile(a, (3, 1, 1, 1)) * 0.5, True),
                     _log_level)  # fmt: skip
    assert "smallest possible p" not in big.caveats


def test_two_sample_ratio_carries_both_groups():
    rng = np.random.default_rng(2)
    a = rng.lognormal(0, 0.3, size=(12, 1, 2, 4))
    b_quiet = rng.lognormal(np.log(0.5), 0.05, size=(12, 1, 2, 4))
    b_noisy = rng.lognormal(np.log(0.5), 0.6, size=(12, 1, 2, 4))
    quiet = I.interval(_sides(a, b_quiet, False), _log_level)
    noisy = I.interval(_sides(a, b_noisy, False), _log_level)
    # the SE of a difference of two independent log-levels: both groups' variances
    va = I.interval(_sides(a, np.broadcast_to(a.mean(0), a.shape), False), _log_level).se ** 2
    vb = I.interval(_sides(np.broadcast_to(a.mean(0), a.shape), b_noisy, False), _log_level).se ** 2
    assert noisy.se == pytest.approx(np.sqrt(va + vb), rel=1e-9)
    assert noisy.high - noisy.low > quiet.high - quiet.low > 0


def test_tost_consistent_with_the_shown_interval():
    rng = np.random.default_rng(3)
    for _ in range(50):
        est, se = rng.normal(0, 0.2), rng.uniform(0.01, 0.2)
        crit = t_ppf(0.975, 11)
        iv = I.Interval(est, est - crit * se, est + crit * se, se, 11.0, "t")
        lo, hi = sorted(rng.normal(0, 0.3, 2))
        inside = lo < iv.low and iv.high < hi
        assert (I.tost(iv, lo, hi) < 0.05) == inside
        assert (I.tost(iv, -np.inf, hi) < 0.05) == (iv.high < hi)  # non-inferiority
    exact = I.Interval(0.1, 0.1, 0.1, 0.0, 11.0, "t")  # no spread at all
    assert I.tost(exact, 0.0, 0.2) == 0.0 and I.tost(exact, 0.2, 0.3) == 1.0
    assert np.isnan(I.tost(exact, 0.1, 0.3))
    eq = A.Finding("c", "s", 1.0, 0.9, 1.1, 0.01, kind="equivalence", margin=(0.8, 1.25))
    assert eq.verdict == "supported"
    wide = A.Finding("c", "s", 1.0, 0.7, 1.1, 0.01, kind="equivalence", margin=(0.8, 1.25))
    assert wide.verdict == "inconclusive"  # the shown CI decides, whatever p says
    few = A.Finding("c", "s", 1.0, 0.9, 1.1, 0.01, kind="equivalence", margin=(0.8, 1.25),
                    n_questions=9)  # fmt: skip
    assert few.verdict == "inconclusive"
    out = A.Finding("c", "s", 2.0, 1.8, 2.2, 0.9, kind="equivalence", margin=(0.8, 1.25))
    assert out.verdict == "contradicted"
    wrong_side = A.Finding("c", "s", 1.5, 1.3, 1.7, 0.001, direction="less")
    assert wrong_side.verdict == "contradicted"
    ni = A.rule_text((0.0, 1.5), note="half the twin's spread")
    assert "non-inferiority (one-sided 2.5%)" in ni and "upper bound is below the margin 1.5" in ni
    assert "margin: half the twin's spread" in ni
    assert "TOST at one-sided 2.5% per side" in A.rule_text((0.9, 1.1))


def test_equivalence_rows_need_ten_questions():
    null = table(8, detailed=1.0, noise=0.01)
    f = next(f for f in A.claim_correct_vs_irrelevant(null, n_boot=100) if f.kind == "equivalence")
    assert f.ci_low > 1 / 1.1 and f.ci_high < 1.1  # inside the margin, yet
    assert f.verdict == "inconclusive" and "needs >= 10 questions (n=8)" in f.caveats
    assert f.verdict_text == (
        "inconclusive: equivalence needs >= 10 questions (n=8): no verdict possible at this size"
    )


def test_labels_in_the_verdict():
    from lgkit.series import finalize, pair_findings

    t = table(10, detailed=0.6)
    t["synthetic"] = True
    fs = finalize(
        A.claim_flatter_with_cot(t, segments=False, n_boot=200), t, ["smollm2-135m-instruct"]
    )
    assert all(A.SYNTHETIC_LABEL in f.verdict_text and "Q4_1" in f.verdict_text for f in fs)
    two = pd.concat([t.assign(model="gemma3-270m"), t.assign(model="smollm2-135m-instruct")])
    pf = pair_findings(two, "gemma3-270m", "smollm2-135m-instruct", n_boot=100)
    pair = [f for f in pf if "base" in f.claim.lower() or "instruction" in f.claim.lower()]
    assert pair and all(f.confounded.startswith("gemma3_text vs llama: ") for f in pair)
    decided = finalize(pf, two, ["gemma3-270m", "smollm2-135m-instruct"])
    confounded = [f for f in decided if f.confounded]
    assert len(confounded) == len(pair)
    assert all(
        f.verdict == "inconclusive" and f.verdict_text.startswith("inconclusive: confounded (")
        for f in confounded
    )
