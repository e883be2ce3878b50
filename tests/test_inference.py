"""Question-level inference on constructed tables with a known answer (issue 10)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lgkit import analysis as A
from lgkit.analysis import inference as I

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
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_unpaired_groups_cluster_bootstrap():
    a = table(15, prefix="short")
    b = table(15, prefix="long", irrelevant={"none": 0.6}, seed=1)
    both = pd.concat([a, b])
    fs = A.claim_length_not_enough(both, by="dataset", levels=["short", "long"], n_boot=400)
    f = fs[0]
    assert "cluster (unpaired) bootstrap" in f.caveats and f.n_questions == 15
    # RD long/short: 0.6 vs the noise-level RD of `short`: far above the margin 1.5
    assert f.verdict == "contradicted"


def test_noise_floor_shrinks_with_questions():
    rng = np.random.default_rng(0)
    small = I.noise_floor_rd(rng.lognormal(0, 0.3, size=(8, 2, 5)) + 5)
    large = I.noise_floor_rd(rng.lognormal(0, 0.3, size=(200, 2, 5)) + 5)
    assert 0 < large < small


def test_tost_and_verdict_rule():
    boot = np.random.default_rng(0).normal(1.0, 0.05, 2000)
    assert I.tost_p(boot, 0.8, 1.25) < 0.05
    assert I.tost_p(boot, 0.99, 1.01) > 0.05
    eq = A.Finding("c", "s", 1.0, 0.9, 1.1, 0.01, kind="equivalence", margin=(0.8, 1.25))
    assert eq.verdict == "supported"
    out = A.Finding("c", "s", 2.0, 1.8, 2.2, 0.9, kind="equivalence", margin=(0.8, 1.25))
    assert out.verdict == "contradicted"
    wrong_side = A.Finding("c", "s", 1.5, 1.3, 1.7, 0.001, direction="less")
    assert wrong_side.verdict == "contradicted"


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
    assert pair and all(A.CONFOUNDED_LABEL in f.labels for f in pair)
    decided = finalize(pf, two, ["gemma3-270m", "smollm2-135m-instruct"])
    assert all(
        A.CONFOUNDED_LABEL in f.verdict_text
        for f in decided
        if f.verdict == "supported" and f in pair
    )
