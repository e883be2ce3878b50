"""Findings rows of issue 16: the learned effect against the random twin, twins matched by
key and Holm-adjusted, vacuous (identical) pairs, models of different depth, 04's
two-sample reference row. Small planted tables: fast."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from lgkit import analysis as A
from lgkit.series import finalize, twin_findings

MODULES = ("q", "k", "v", "o")


def table(
    n: int = 12,
    *,
    layers: int = 6,
    detailed: float = 1.0,
    gap: dict[str, float] | None = None,
    identical_none: int = 0,
    noise: float = 0.05,
    seed: int = 0,
    prefix: str = "d",
    model: str | None = None,
    deep_fast: float = 1.0,
) -> pd.DataFrame:
    """Per question a random curve; ``cot=detailed`` is ``detailed`` x none's curve; the
    irrelevant response is ``(1 + gap[cot])`` x the correct one with its own noise, except
    the first ``identical_none`` questions at ``cot=none`` whose irrelevant rows copy the
    correct ones (the same response); ``deep_fast`` multiplies none's curve from layer 4 on."""
    rng = np.random.default_rng(seed)
    gaps = {"none": 0.0, "detailed": 0.0, **(gap or {})}
    shape = np.linspace(3.0, 1.0, layers) + rng.normal(0, 0.2, layers)
    deep = np.where(np.arange(layers) >= 4, deep_fast, 1.0)
    rows = []
    for q in range(n):
        base = shape * rng.lognormal(0, 0.2)
        for cot, factor in (("none", deep), ("detailed", detailed)):
            kept: dict[str, np.ndarray] = {}
            for correct in (True, False):
                scale = factor * (1.0 if correct else 1 + gaps[cot])
                for m in MODULES:
                    vals = base * scale * rng.lognormal(0, noise, layers)
                    if not correct and cot == "none" and q < identical_none:
                        vals = kept[m]
                    kept[m] = vals
                    tag = "correct" if correct else "irrelevant"
                    for layer, v in enumerate(vals):
                        row = {
                            "sample_id": f"{prefix}-{q:03d}-{cot}-{tag}",
                            "dataset": prefix,
                            "cot": cot,
                            "correct": correct,
                            "layer": layer,
                            "module": m,
                            "n_response_tokens": 10 if correct else 8,
                            "truncated": False,
                            "nuclear_norm": float(v),
                        }
                        if model:
                            row["model"] = model
                        rows.append(row)
    return pd.DataFrame(rows)


def claims(d: pd.DataFrame) -> list[A.Finding]:
    return A.claim_flatter_with_cot(d, segments=False, n_boot=300)


def by_stat(fs: list[A.Finding], start: str) -> A.Finding:
    return next(f for f in fs if f.statistic.startswith(start))


def learned_of(fs: list[A.Finding], f: A.Finding) -> A.Finding | None:
    k = fs.index(f)
    nxt = fs[k + 1] if k + 1 < len(fs) else None
    return nxt if nxt is not None and "trained ÷ random twin" in nxt.statistic else None


def test_learned_row_effect_only_in_trained_quotes_the_share():
    trained = table(detailed=0.3, model="m")
    twin = table(detailed=0.8, seed=7, model="m@random-init-0")
    fs = finalize(claims(trained), trained, ["m"], twin=twin_findings(twin, claims))
    lvl = by_stat(fs, "mean-curve level")
    lr = learned_of(fs, lvl)
    assert lr is not None and lr.verdict == "supported" and lr.estimate < 1
    assert lr.estimate == pytest.approx(lvl.estimate / 0.8 / 0.3 * 0.3, rel=0.15)
    m = re.search(r"(\d+)% of the log-effect at random init", lvl.verdict_text)
    assert m, lvl.verdict_text
    assert int(m.group(1)) == pytest.approx(100 * math.log(0.8) / math.log(0.3), abs=6)
    assert "training adds a" in lvl.verdict_text and "not evidence" not in lvl.verdict_text
    assert A.TWIN_LABEL not in lvl.verdict_text
    assert lvl.control.startswith("random twin:") and "p=" in lvl.control


def test_same_effect_in_both_makes_no_training_claim():
    trained = table(detailed=0.5, model="m")
    twin = table(detailed=0.5, seed=7, model="m@random-init-0")
    fs = finalize(claims(trained), trained, ["m"], twin=twin_findings(twin, claims))
    lvl = by_stat(fs, "mean-curve level")
    lr = learned_of(fs, lvl)
    assert lr is not None and lr.verdict != "supported"
    assert lvl.verdict == "supported" and A.TWIN_LABEL in lvl.verdict_text
    assert "training adds" not in lvl.verdict_text and "training adds" not in lr.verdict_text


def test_twins_matched_by_key_reordered_and_missing():
    trained = table(detailed=0.3, model="m")
    twin = table(detailed=0.8, seed=7, model="m@random-init-0")
    tw = twin_findings(twin, claims)
    assert tw is not None
    ref = finalize(claims(trained), trained, ["m"], twin=tw)
    shuffled = finalize(claims(trained), trained, ["m"], twin=[tw[1], None])  # level twin missing
    lvl, mad = by_stat(shuffled, "mean-curve level"), by_stat(shuffled, "MAD")
    assert lvl.control == "" and learned_of(shuffled, lvl) is None
    assert "random init" not in lvl.verdict_text
    assert mad.control.split(", p=")[0] == by_stat(ref, "MAD").control.split(", p=")[0]
    assert learned_of(shuffled, mad) is not None
    rev = finalize(claims(trained), trained, ["m"], twin=list(reversed(tw)))
    assert [f.verdict_text for f in rev] == [f.verdict_text for f in ref]


def test_twin_and_learned_rows_stay_out_of_the_holm_family():
    # issue 27 rule 4: controls (twin, learned) are exploratory: own 95% CI, unadjusted p
    trained = table(detailed=0.3, model="m")
    twin = table(detailed=0.8, seed=7, model="m@random-init-0")
    tw = twin_findings(twin, claims)
    own = claims(trained)
    fs = finalize(own, trained, ["m"], twin=tw)
    learned = [f for f in fs if "trained ÷ random twin" in f.statistic]
    assert learned and all(f.family == A.EXPLORATORY and f.p_adj == f.p for f in learned)
    assert all(f.ci_level == 0.95 and "exploratory" in f.verdict_text for f in learned)
    primary = [f for f in fs if f.family == A.PRIMARY]
    m = len(primary)
    assert m == 2
    lvl = by_stat(fs, "mean-curve level")
    assert lvl.p_adj == pytest.approx(min(1.0, m * min(f.p for f in own))) or lvl.p_adj >= lvl.p
    assert lvl.ci_level == pytest.approx(1 - 0.05 / m)
    assert f"Bonferroni over the {m} primary claims" in lvl.verdict_text
    raw_twin = float(re.search(r"p=([0-9.e-]+)", lvl.control).group(1))
    assert raw_twin == pytest.approx(tw[0].p, rel=1e-2)


def test_twin_seeds_pooled_with_per_seed_estimates():
    trained = table(detailed=0.3, model="m")
    seeds = pd.concat([table(detailed=0.8, seed=s, model=f"m@random-init-{s}") for s in (7, 8, 9)])
    tw = twin_findings(seeds, claims)
    assert tw is not None and len(tw) == 6
    fs = finalize(claims(trained), trained, ["m"], twin=tw)
    lvl = by_stat(fs, "mean-curve level")
    assert "pooled over 3 seeds" in lvl.control and "m@random-init-9" in lvl.control
    assert learned_of(fs, lvl) is not None


def test_identical_pairs_dropped_counted_and_invalid_when_too_few():
    t = table(12, gap={"detailed": 0.3}, identical_none=7, seed=3)
    fs = A.claim_correct_vs_irrelevant(t, n_boot=200)
    rd = by_stat(fs, "RD(correct, irrelevant) ratio")
    assert "7 of 12 pairs identical at cot=none" in rd.caveats and rd.n_questions == 5
    alike = [f for f in fs if f.kind == "equivalence"]
    assert alike and all("7 of 12 pairs identical at cot=none" in f.caveats for f in alike)
    assert all(f.n_questions == 5 or f.verdict == "invalid" for f in alike)
    few = A.claim_correct_vs_irrelevant(table(12, identical_none=10, seed=3), n_boot=200)
    assert all(f.verdict == "invalid" and "identical" in f.verdict_text for f in few)
    clean = A.claim_correct_vs_irrelevant(table(12, seed=3), n_boot=200)
    assert all("identical" not in f.caveats for f in clean)


def test_models_of_different_depth_are_not_cut():
    # the instruct model's fast-thinking excess lives only in its layers 4..9: a cut to the
    # base model's 4 layers would see nothing
    base = table(12, layers=4, detailed=0.5, model="m-base", seed=1)
    inst = table(12, layers=10, detailed=0.5, model="m-instruct", seed=2, deep_fast=3.0)
    fs = A.claim_base_vs_instruct(
        pd.concat([base, inst]), base="m-base", instruct="m-instruct", n_boot=300
    )
    lvl = by_stat(fs, "mean-curve level")
    assert "depths differ (m-base 4 layers, m-instruct 10 layers)" in lvl.caveats
    assert "no layer dropped" in lvl.caveats
    assert lvl.estimate > 1.5 and lvl.verdict == "supported"
    s, note = A.depth_sides(
        pd.concat([base, inst]), "nuclear_norm", [{"model": "m-base"}], [{"model": "m-instruct"}]
    )
    assert s.a.shape[-1] == s.b.shape[-1] == 10 and note
    # the deeper model keeps its own curve exactly (no interpolation)
    own = inst.groupby("layer")["nuclear_norm"].mean().to_numpy()
    assert np.allclose(s.b.mean(axis=(0, 1, 2)), own)


def test_length_trend_reference_is_two_sample_and_rd_against_noise():
    wiki = pd.concat(
        [
            table(12, prefix="short", seed=1).assign(group="short"),
            table(12, prefix="long", seed=2).assign(group="long"),
        ]
    )
    wiki = wiki[wiki["cot"] == "none"]
    ref = table(12, prefix="gsm8k", gap={"detailed": 0.5}, seed=3)
    fs = A.claim_length_not_enough(
        wiki, by="group", levels=["short", "long"], reference=ref, n_boot=300
    )
    two = next(f for f in fs if "detailed CoT" in f.statistic)
    assert "unpaired (two-sample)" in two.caveats and two.kind == "difference"
    assert two.estimate < 0.5 and two.ci_high < 1 and two.direction == "less"
    assert "irrelevant texts shorter than the correct ones" in two.caveats
    noise = next(f for f in fs if "above the swap-null floor" in f.claim)
    assert noise.statistic == "RD(correct, irrelevant) at long"
    trend = fs[0]
    assert trend.kind == "equivalence" and "margin 1.5" in trend.margin_note
    assert "swap-null floor" in trend.margin_note and trend.margin_note in trend.rule
    assert (
        0 <= noise.p <= 1 and noise.null > 0
    )  # the swap null is the floor the CI is compared with


def test_repaired_irrelevant_set_has_no_identical_one_word_answers():
    from lgkit.data.irrelevant import check_irrelevant, repair_collisions
    from lgkit.formats.records import Example

    answers = ["yes", "no", "yes", "yes", "no", "no", "yes", "no"]
    correct = [Example(f"q{k}?", "", a) for k, a in enumerate(answers)]
    shuffled = [Example(f"q{k}?", "", a) for k, a in enumerate(answers[3:] + answers[:3])]
    before = check_irrelevant(correct, shuffled)
    fixed, n = repair_collisions(correct, shuffled, seed=1)
    after = check_irrelevant(correct, fixed)
    assert before.same_response == n > 0 and after.same_response == 0
    assert all(f.output == s.output for f, s, c in zip(fixed, shuffled, correct, strict=True)
               if s.output != c.output)  # fmt: skip
    assert {f.meta.get("irrelevant_method") for f in fixed} >= {"donor (repaired collision)"}


# --------------------------------------------------------------------------- issue 27


def test_no_learned_row_without_a_trained_effect():
    # rule 1: trained ratio ~1.3 (reversed), twin ~3 (reversed more): trained ÷ twin < 1 but
    # there is no trained effect, so no learned row and no share of a non-existent effect
    for detailed in (1.0, 1.3):
        trained = table(detailed=detailed, model="m")
        twin = table(detailed=3.0, seed=7, model="m@random-init-0")
        fs = finalize(claims(trained), trained, ["m"], twin=twin_findings(twin, claims))
        lvl = by_stat(fs, "mean-curve level")
        assert lvl.verdict != "supported"
        assert learned_of(fs, lvl) is None
        assert A.NO_TRAINED_EFFECT in lvl.verdict_text
        assert not any("trained ÷ random twin" in f.statistic for f in fs)
        assert not re.search(r"\d+% of the log-effect", " ".join(f.verdict_text for f in fs))


def test_shares_only_between_0_and_100_percent():
    assert (
        A.share_text(0.9, 0.5, 1.8)
        == "the random twin shows a stronger effect than the trained model"
    )
    assert "%" not in A.share_text(1.1, 1.5)
    m = re.match(r"(\d+)% of the log-effect", A.share_text(0.3, 0.8, 0.375))
    assert m and 0 <= int(m.group(1)) <= 100


def test_learned_row_states_the_variance_it_leaves_out():
    # rule 7: one twin seed, one training run
    trained = table(detailed=0.3, model="m")
    twin = table(detailed=0.8, seed=7, model="m@random-init-0")
    fs = finalize(claims(trained), trained, ["m"], twin=twin_findings(twin, claims))
    lr = learned_of(fs, by_stat(fs, "mean-curve level"))
    assert lr is not None and "one twin seed, one training run" in lr.verdict_text


def _pair_table(base: str, inst: str) -> pd.DataFrame:
    b = table(detailed=0.9, model=base)
    i = table(detailed=0.4, seed=1, model=inst)
    return pd.concat([b, i], ignore_index=True)


def test_confounded_pair_rows_are_never_decided():
    # rule 2: a strong planted difference between models of different families
    from lgkit.series import pair_findings

    base, inst = "gemma3-270m", "smollm2-135m-instruct"
    two = _pair_table(base, inst)
    fs = finalize(pair_findings(two, base, inst, n_boot=200), two, [base, inst])
    pair = [f for f in fs if f.confounded]
    assert len(pair) == 3  # level, MAD ratio of ratios; RD non-inferiority
    for f in pair:
        assert f.verdict == "inconclusive", f.verdict_text
        assert f.verdict_text.startswith("inconclusive: confounded (gemma3_text vs llama: ")
    # the same data under two models of one family is decided
    same_b, same_i = "google/gemma-2-2b", "google/gemma-2-2b-it"
    two = _pair_table(same_b, same_i)
    fs = finalize(pair_findings(two, same_b, same_i, n_boot=200), two, [same_b, same_i])
    assert not any(f.confounded for f in fs)
    assert by_stat(fs, "mean-curve level none/detailed").verdict == "supported"
    twins = {
        same_b: table(detailed=0.95, seed=5, model=f"{same_b}@random-init-0"),
        same_i: table(detailed=0.95, seed=6, model=f"{same_i}@random-init-0"),
    }
    fs = finalize(
        pair_findings(two, same_b, same_i, n_boot=200, twins=twins), two, [same_b, same_i]
    )
    lp = by_stat(fs, "mean-curve level none/detailed ratio ÷ its random twin's")
    assert lp.verdict == "supported" and lp.family == A.PRIMARY and lp.estimate > 1


def test_per_model_twins_give_per_model_learned_rows():
    # rule 2: each model its own twin; the per-model claim carries its learned contrast
    from lgkit.series import pair_findings, pair_twin_findings

    base, inst = "gemma3-270m", "smollm2-135m-instruct"
    two = _pair_table(base, inst)
    twins = {
        base: table(detailed=0.95, seed=5, model=f"{base}@random-init-0"),
        inst: table(detailed=0.95, seed=6, model=f"{inst}@random-init-0"),
    }
    tw = pair_twin_findings(twins, n_boot=200)
    fs = finalize(
        pair_findings(two, base, inst, n_boot=200, twins=twins), two, [base, inst], twin=tw
    )
    learned_pair = [f for f in fs if "÷ its random twin's" in f.statistic]
    assert len(learned_pair) == 2  # the pair compared on each model's learned contrast
    assert all(f.verdict_text.startswith("inconclusive: confounded (") for f in learned_pair)
    lvl = next(f for f in fs if f.claim.startswith(f"[{inst}]") and "level" in f.statistic)
    lr = learned_of(fs, lvl)
    assert lvl.verdict == "supported" and lr is not None and lr.verdict == "supported"
    assert lr.family == A.EXPLORATORY
    nofs = finalize(pair_findings(two, base, inst, n_boot=200, no_twin="no twin: why"), two,
                    [base, inst])  # fmt: skip
    per_model = [f for f in nofs if f.claim.startswith(f"[{inst}]")]
    assert per_model and all("no twin: why" in f.verdict_text for f in per_model)


def test_the_interval_shown_decides():
    # rule 4: an interval far from the null beside "inconclusive" says why
    fs = A.decide([A.Finding("c", "s", 0.5, 0.4, 0.6, 0.2)])
    assert fs[0].verdict == "inconclusive"
    assert "CI excludes 1 but the permutation test does not reach 0.05" in fs[0].verdict_text
    # primary rows: the interval shown is the Bonferroni one of the primary family, and a
    # supported row's interval shown excludes the null; breakdowns keep their own 95%
    t = table(detailed=0.7, noise=0.2)
    fs = finalize(A.claim_flatter_with_cot(t, n_boot=300), t, ["m"])
    primary = [f for f in fs if f.family == A.PRIMARY]
    assert [f.statistic.split(" ratio")[0] for f in primary] == [
        "mean-curve level", "MAD (all layers)"
    ]  # fmt: skip
    raw = {f.statistic: f for f in A.claim_flatter_with_cot(t, n_boot=300)}
    for f in primary:
        assert f.ci_level == pytest.approx(0.975)
        r = raw[f.statistic]
        assert f.ci_low < r.ci_low and f.ci_high > r.ci_high  # wider than the 95% one
    for f in fs:
        if f.family == A.EXPLORATORY:
            assert f.ci_level == 0.95 and f.p_adj == f.p and "exploratory" in f.verdict_text
        if f.verdict == "supported":
            assert f.ci_high < 1
        elif f.verdict == "inconclusive" and (f.ci_high < 1 or f.ci_low > 1):
            assert "but" in f.verdict_text, f.verdict_text


def test_rows_that_cannot_decide_say_so_with_the_smallest_effect():
    # rule 5: the alike margin ±10% against a wide interval at 12 noisy questions
    t = table(noise=0.35, seed=3)
    fs = finalize(A.claim_correct_vs_irrelevant(t, n_boot=300), t, ["m"])
    alike = [f for f in fs if f.kind == "equivalence"]
    assert alike
    for f in alike:
        assert f.verdict == "inconclusive"
        assert f.verdict_text.startswith("inconclusive: no verdict possible at this size")
        m = re.search(r"could establish is a ratio within \[([0-9.]+), ([0-9.]+)\]", f.verdict_text)
        assert m and float(m.group(2)) > 1.1
    # a difference claim at 4 questions: no p below 0.05 exists
    small = table(n=4, detailed=0.3)
    f = finalize(claims(small), small, ["m"])[0]
    assert f.verdict == "inconclusive" and "no verdict possible at this size" in f.verdict_text


def test_headline_carries_its_controls():
    # rule 6: 06's rows per control joined with 02's headline row, one line per claim
    from lgkit.series import control_verdicts, headline_entries, tag
    from lgkit.series.controls import length_claims

    t = table(detailed=0.5, noise=0.1)
    own = finalize(A.claim_flatter_with_cot(t, segments=False, n_boot=200), t, ["m"])
    six = finalize([tag(f, "math") for f in length_claims(t, n_boot=200)], t, ["m"])
    assert all(f.family == A.EXPLORATORY for f in six)
    ctl = control_verdicts(six, "math")
    level = ctl["mean-curve level ratio detailed/none"]
    assert {"mean", "sqrt", "sum"} <= set(level)
    assert {"mean", "sqrt", "sum"} <= set(ctl["RD(correct, irrelevant) ratio detailed/none"])
    entries = headline_entries(own, ctl, "math")
    assert [e["statistic"] for e in entries] == [
        "mean-curve level ratio detailed/none", "MAD (all layers) ratio detailed/none"
    ]  # fmt: skip
    e = entries[0]
    assert e["controls"]["sqrt"]["verdict"] == level["sqrt"]["verdict"]
    assert e["controls"]["answer-only loss"]["verdict"] == "not run"
    assert e["controls"]["learned vs init"]["verdict"] == "not run"  # no twin here
    assert e["line"].startswith("math: Slow thinking") and "loss ÷ √T: " in e["line"]
