"""Rows a referee's audit of a default run flagged (issue 27): one training run per arm and the
seeds the update rows need (07), non-inferiority rows that cannot decide (04, 05), 05's pair
claims in the primary family, the "alike" margin against the data's own null variation
(02/03), no random twin for the length baseline and matched rows naming their matching (08),
the adjustment each notebook uses (index.html, the notebooks' count lines and "What this
shows"), answer-only rows with fewer questions (06) and 02/03's headline rows under √T and sum.
Planted tables and records: fast."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_findings_rows import by_stat, table
from test_score_quality import SCORES, _examples
from test_train_findings import _instep, _tables

from lgkit import analysis as A
from lgkit import series as S
from lgkit.analysis import inference as I
from lgkit.formats.records import Example
from lgkit.series.findings import HEADLINE_STATISTICS

# --------------------------------------------------------------------------- 07


def test_rows_of_one_training_run_per_arm_say_their_interval_is_questions_only():
    from lgkit.series.training import ONE_RUN_NOTE, instep_findings, training_findings

    t = _instep(0.5)
    ins = t["instep"]
    t["instep"] = pd.concat([ins, ins[ins["arm"] == "slow"].assign(arm="slow_answer")])
    fs = A.decide(instep_findings(t, n_boot=200))
    assert len(fs) == 10  # level, MAD, early, late, change per other arm
    primary = [f for f in fs if f.family == A.PRIMARY]
    assert len(primary) == 2 and all(f.verdict == "supported" for f in primary)
    for f in fs:  # primary and exploratory alike
        assert ONE_RUN_NOTE in f.verdict_text, (f.claim, f.verdict_text)
    assert "question-to-question variance only" in ONE_RUN_NOTE
    assert "one training run per arm" in ONE_RUN_NOTE
    # probe rows of one seed say it too; with two seeds per arm the note is not given
    probe = [f for f in A.decide(training_findings(_tables(1), n_boot=200)) if "probe" in f.claim]
    assert probe and all(ONE_RUN_NOTE in f.verdict_text for f in probe)
    two = pd.concat([_instep(0.5)["instep"], _instep(0.5)["instep"].assign(seed=1)])
    fs2 = A.decide(instep_findings({"instep": two}, n_boot=200))
    assert fs2 and not any(ONE_RUN_NOTE in f.verdict_text for f in fs2)


def test_update_rows_need_the_seeds_their_exact_test_can_decide_with():
    import yaml

    from lgkit.series.training import MIN_SEEDS, min_seeds, training_findings

    # derived from the test: the fewest k with 2 / 2^k below 0.05
    assert MIN_SEEDS == min_seeds() == 6
    assert I.min_p(MIN_SEEDS) < 0.05 <= I.min_p(MIN_SEEDS - 1)
    assert min_seeds(0.01) == 8
    for k in (1, 3, 5):
        fs = {f.claim: f for f in A.decide(training_findings(_tables(k), n_boot=200))}
        f = fs["[adamw] Fast-arm updates are larger than the slow arm's"]
        assert f.verdict == "inconclusive"
        assert f.verdict_text.startswith(
            f"inconclusive: {k} seed(s) per arm: no verdict possible at this size"
        ), f.verdict_text
        assert "needs at least 6 seeds per arm" in f.verdict_text
        seeds = "seed" if k == 1 else "seeds"
        assert f"smallest p attainable with {k} {seeds} is {I.min_p(k):.3g}" in f.verdict_text
    # the caveat says what the full profile runs, and that it cannot decide either
    root = Path(__file__).resolve().parents[1]
    full = yaml.safe_load((root / "params" / "07_training_dynamics.full.yaml").read_text())
    k_full = len([s for s in str(full["seeds"]).split(",") if s.strip()])
    assert f"the full profile runs {k_full} seeds per arm" in f.caveats
    assert ("still too few" in f.caveats) == (k_full < MIN_SEEDS)
    assert "runs 3 seeds" not in f.caveats or k_full == 3
    # at the derived size the rows can decide
    fs = {f.claim: f for f in A.decide(training_findings(_tables(MIN_SEEDS), n_boot=200))}
    f = fs["[adamw] Fast-arm updates are larger than the slow arm's"]
    assert f.n_questions == 6 and f.verdict == "supported", f.verdict_text


# --------------------------------------------------------------------------- 04 / 05


def test_non_inferiority_that_cannot_decide_says_so_with_the_narrowest_margin():
    # 04's RD row of the run: 98.3% CI [0.0723, 9.75] against the margin 1.5
    f = A.Finding("c", "RD ratio", 0.84, 0.0723, 9.75, 0.5, kind="equivalence",
                  margin=(0.0, 1.5), n_questions=12)  # fmt: skip
    g = A.decide([f])[0]
    assert g.verdict == "inconclusive"
    assert g.verdict_text.startswith("inconclusive: no verdict possible at this size")
    m = re.search(r"could establish is a ratio below ([0-9.]+)", g.verdict_text)
    hw = (math.log(9.75) - math.log(0.0723)) / 2
    assert m and float(m.group(1)) == pytest.approx(math.exp(hw), rel=1e-2)  # about 11.6
    # a narrow interval could decide: no such text
    ok = A.decide([A.Finding("c", "s", 1.0, 0.8, 1.6, 0.5, kind="equivalence",
                             margin=(0.0, 1.5), n_questions=12)])[0]  # fmt: skip
    assert "no verdict possible" not in ok.verdict_text
    # a lower one-sided margin and a difference scale (null 0) too
    lo = A.Finding("c", "s", 0.0, -2.0, 2.0, 0.5, kind="equivalence", margin=(-1.0, math.inf),
                   null=0.0, n_questions=12)  # fmt: skip
    text = A.cannot_decide(lo)
    assert "could establish is a difference above -2" in text, text
    assert A.cannot_decide(replace(lo, ci_low=-0.5, ci_high=0.5)) == ""


def test_pair_claims_are_the_primary_family_adjusted_yet_never_decided():
    from lgkit.series import pair_findings

    base, inst = "gemma3-270m", "smollm2-135m-instruct"
    two = pd.concat([table(detailed=0.9, model=base, noise=0.6, seed=4),
                     table(detailed=0.4, seed=1, model=inst, noise=0.6)], ignore_index=True)  # fmt: skip
    fs = S.finalize(pair_findings(two, base, inst, n_boot=200), two, [base, inst])
    pair = [f for f in fs if f.confounded]
    assert len(pair) == 3
    holm = I.holm([f.p for f in pair])
    for f, h in zip(pair, holm, strict=True):
        assert f.family == A.PRIMARY and f.adjust == "Holm"
        assert f.p_adj == pytest.approx(h) and f.p_adj >= f.p
        assert f.ci_level == pytest.approx(1 - 0.05 / 3)
        assert f.verdict == "inconclusive"
        assert f.verdict_text.startswith("inconclusive: confounded (gemma3_text vs llama: ")
        assert "primary claim: 98.3% CI (Bonferroni over the 3 primary claims)" in f.verdict_text
    # the RD non-inferiority row could not decide at this size even without the confound
    rd = next(f for f in pair if f.kind == "equivalence")
    assert "even without the confound, no verdict possible at this size" in rd.verdict_text
    assert "narrowest margin 12 questions could establish is a ratio below" in rd.verdict_text
    # per-model rows stay exploratory and unadjusted
    rest = [f for f in fs if not f.confounded]
    assert rest and all(f.family == A.EXPLORATORY and f.adjust == "none" for f in rest)
    # a confounded comparison that is itself invalid (identical groups) says both, unadjusted
    same = pd.concat([table(model=base), table(model=inst)], ignore_index=True)
    bad = [f for f in S.finalize(pair_findings(same, base, inst, n_boot=100), same, [base, inst])
           if f.confounded and "the comparison itself is invalid" in f.verdict_text]  # fmt: skip
    assert bad and all(f.verdict == "inconclusive" and f.adjust == "" for f in bad)
    assert not any("primary claim" in f.verdict_text for f in bad)


# --------------------------------------------------------------------------- 02 / 03 alike


def test_swap_quantile_by_hand():
    a = np.array([1.0, 2.0, 4.0]).reshape(3, 1, 1, 1)
    b = np.array([1.5, 1.0, 5.0]).reshape(3, 1, 1, 1)
    s = I.Sides(a, b, True, list("xyz"), list("xyz"), ["q"], [0])

    def stat(x, y):
        return np.log(I.level(y[..., 0, :, :]) / I.level(x[..., 0, :, :]))

    vals = []
    for flips in itertools.product((0, 1), repeat=3):
        x = np.where(np.array(flips)[:, None, None, None] == 1, b, a)
        y = np.where(np.array(flips)[:, None, None, None] == 1, a, b)
        vals.append(abs(float(stat(x.mean(0), y.mean(0)))))
    assert I.swap_quantile(s, stat, 0.5) == pytest.approx(np.quantile(vals, 0.5))
    assert I.swap_quantile(s, stat, 0.95) == pytest.approx(np.quantile(vals, 0.95))


def test_alike_margin_is_justified_by_the_data_and_each_row_names_its_statistic():
    t = table(noise=0.1, seed=2)
    fs = S.finalize(A.claim_correct_vs_irrelevant(t, n_boot=200), t, ["m"])
    alike = {f.statistic.split(" ratio")[0]: f for f in fs if f.kind == "equivalence"}
    assert set(alike) == {"mean-curve level", "MAD (all layers)"}
    for name, word, wrong in (("mean-curve level", "level", "MAD"), ("MAD (all layers)", "MAD", "level")):  # fmt: skip
        f = alike[name]
        note = f.margin_note
        assert note.startswith(f"margin ±10%: the irrelevant responses' {word} within a factor 1.1")
        assert f"responses' {wrong}" not in note and "(MAD)" not in note
        m = re.search(r"give a \S+ ratio within a factor ([0-9.]+) in 95% of swaps, so the margin "
                      r"is ([0-9.]+)x that noise", note)  # fmt: skip
        assert m, note
        assert note in f.caveats and "margin: " + note in f.rule  # shown in the row
        # the numbers are the swap null's, recomputed
        sides = f.recipe.sides
        q = I.swap_quantile(sides, f.recipe.stat)
        assert float(m.group(1)) == pytest.approx(math.exp(q), rel=1e-2)
        assert float(m.group(2)) == pytest.approx(math.log(1.1) / q, rel=5e-2)


# --------------------------------------------------------------------------- 08


def test_length_baseline_has_no_twin_and_matched_rows_name_their_matching():
    from lgkit.series.quality import NO_TWIN_LENGTH, auroc_findings, auroc_table, decide

    ex = _examples()
    ex.loc[ex.cot == "detailed", "loss"] += 5.0  # no loss-matched pair across CoT levels
    t = auroc_table(ex, SCORES)
    twin_ex = _examples(seed=7, er_shift=0.0)
    fs = decide(auroc_findings(t), auroc_findings(auroc_table(twin_ex, SCORES)))
    length = [f for f in fs if f.claim.startswith("[baseline] The better response is longer")]
    assert len(length) == 4  # as it is and loss-matched, both contrasts
    for f in length:
        assert f.control == NO_TWIN_LENGTH, f.control
        assert "random initialisation" not in f.verdict_text
    loss = [f for f in fs if f.claim.startswith("[baseline] The better response has lower loss")]
    assert any(f.control.startswith("random twin: ") for f in loss)  # the loss keeps its twin
    # the loss-matched rows of the length-confounded contrast name their own matching first
    for score in ("higher effective rank", "lower nuclear norm"):
        f = next(g for g in fs if g.claim == f"Better data has {score}: detailed vs none CoT "
                 "(correct), loss-matched")  # fmt: skip
        row = t[(t.contrast == "detailed_vs_none") & (t.adjust == "loss")].iloc[0]
        assert row.n_units == 0
        assert f.verdict_text.startswith(
            "invalid: 0 loss-matched pairs (< 3); confounded by length"
        )
        assert f.verdict_text.split(";")[0].count("length-matched") == 0
    # families and adjustments: Bonferroni for 08's primary family, none for the rest
    prim = [f for f in fs if f.family == A.PRIMARY and f.verdict != "invalid"]
    assert prim and all(f.adjust == "Bonferroni" for f in prim)
    expl = [f for f in fs if f.family == A.EXPLORATORY and f.verdict != "invalid"]
    assert expl and all(f.adjust == "none" and f.p_adj == f.p for f in expl)


# --------------------------------------------------------------------------- index / notebooks


def _rec(claim: str, verdict: str, family: str, adjust: str, text: str = "") -> dict:
    return {"claim": claim, "statistic": "s", "verdict": verdict, "verdict_text": text or verdict,
            "estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6, "p": 0.01, "p_adj": 0.02,
            "n_questions": 12, "rule": "R", "family": family, "adjust": adjust,
            "ci_level": 0.95}  # fmt: skip


def test_index_says_which_adjustment_each_notebook_uses(tmp_path):
    import json

    from lgkit.series import report

    run = tmp_path / "run"
    planted = {
        "02_math": [_rec("a", "supported", "primary", "Holm")],
        "05_base_vs_instruct": [_rec("b", "inconclusive", "primary", "Holm")],
        "06_length_controls": [_rec("c", "supported", "exploratory", "none")],
        "08_data_quality": [
            _rec("d", "supported", "primary", "Bonferroni"),
            _rec("e", "supported", "exploratory", "none"),
        ],  # fmt: skip
    }
    for nb, recs in planted.items():
        (run / nb).mkdir(parents=True)
        (run / nb / "metrics.json").write_text(json.dumps({"findings": recs}))
    page = report.write_index(run).read_text()
    top = page[: page.index("<h2>Status</h2>")]
    assert "Holm-adjusted within each notebook" not in page
    assert "Holm: 02, 05; Bonferroni: 08; 06: exploratory rows only" in top
    # a notebook's own count line says its own adjustment
    h = S.findings_html(planted["08_data_quality"])
    assert "the paper&#x27;s claims Bonferroni-adjusted" in h and "Holm" not in h.split("</p>")[0]
    # records written before ``adjust`` was kept: read from family and rule
    old = [{"verdict": "supported", "family": "primary", "rule": "primary family (3 rows): "
            "Bonferroni, p_adj = 3 p; ..."}]  # fmt: skip
    assert S.adjustment_text(old).startswith("the paper's claims Bonferroni-adjusted")


def test_what_this_shows_is_true_to_each_rows_family_and_reason():
    recs = [
        _rec("primary claim", "supported", "primary", "Holm"),
        _rec("a breakdown", "supported", "exploratory", "none"),
        _rec("too small", "inconclusive", "exploratory", "none",
             "inconclusive: no verdict possible at this size: the smallest possible p (0.125)"),
        _rec("could decide", "inconclusive", "primary", "Holm"),
        _rec("pair", "inconclusive", "primary", "Holm", "inconclusive: confounded (x): not decided"),
    ]  # fmt: skip
    text = S.what_this_shows(recs)
    assert "the data cannot tell at this sample size" not in text
    prim = text.index("**Supported**, the paper's claims (Holm-adjusted p < 0.05")
    expl = text.index("**Supported**, exploratory rows (unadjusted p < 0.05")
    assert text.index("- primary claim:") > prim and text.index("- primary claim:") < expl
    assert text.index("- a breakdown:") > expl
    assert "- a breakdown: estimate 0.5 [0.4, 0.6], p 0.02" in text
    inc = text[text.index("**Inconclusive** (3)") :].split("\n")[0]
    assert "1 confounded" in inc and "1 cannot decide at this sample size" in inc
    assert "1 could have decided at this size" in inc


# --------------------------------------------------------------------------- 06


def test_answer_only_rows_say_why_they_have_fewer_questions():
    ok = Example("q?", "", "So the answer is yes.", meta={"answer": "yes"})
    lost = Example("q?", "", "It could indeed have been eaten.", meta={"answer": "yes"})
    assert S.missing_answer_spans([ok, ok]) == ""
    note = S.missing_answer_spans([ok, lost, lost])
    assert note == ("2 of 3 records without a final-answer span (the answer ('yes') is not in "
                    "the response text)")  # fmt: skip
    df = A.synthetic_stats(n_samples=6, n_layers=4, datasets=("gsm8k",))
    df.attrs["partial_files"] = {"strategyqa__detailed__correct": note}
    fs = S.answer_claims(df, n_boot=50)
    assert fs and all(f"strategyqa__detailed__correct: {note}" in f.caveats for f in fs)
    assert all("left out of the paired comparison" in f.caveats for f in fs)
    df.attrs["partial_files"] = {}
    assert not any("final-answer span" in f.caveats for f in S.answer_claims(df, n_boot=50))


@pytest.mark.slow
def test_answer_stats_count_the_records_without_an_answer_span(tmp_path):
    """06 with 4 examples, 2 of the commonsense detailed responses without their answer: the
    file stays, the 2 are counted with their reason, and every answer-only row says so."""
    from lgkit.data.profile import build_profile
    from lgkit.formats.records import write_examples

    files = build_profile("smoke", tmp_path, n_per_variant=4, seed=0)
    for f in files:
        if f.family == "commonsense" and f.cot == "detailed" and f.correct:
            exs = f.read()
            exs[:2] = [replace(e, output="A long story without the final word.") for e in exs[:2]]
            write_examples(f.path, exs)
            name = f.name
    config = S.grad_config(2304, "q,o", n_per_variant=4)
    df = S.answer_stats(tmp_path / "data", "commonsense", "tiny-random-llama", config,
                        tmp_path / "cache", tmp_path / "ans", progress=False)  # fmt: skip
    assert not df.attrs["failed_files"]
    note = df.attrs["partial_files"][name]
    assert note.startswith("2 of 4 records without a final-answer span (the answer (")
    fs = S.answer_claims(df, n_boot=50)
    assert fs and all(f"{name}: {note}" in f.caveats for f in fs)
    assert all(f.n_questions == 2 for f in fs)  # the 2 questions with both responses


# --------------------------------------------------------------------------- 02 / 03 headline


def test_headline_rows_carry_the_same_claim_under_sqrt_and_sum():
    from lgkit.series.controls import length_claims

    t = table(detailed=0.5, noise=0.1)
    own = S.finalize(S.reasoning_claims(t, n_boot=200), t, ["m"])
    fs = S.headline_length_controls(own, t, n_boot=200)
    six = S.finalize([S.tag(f, "math") for f in length_claims(t, n_boot=200)], t, ["m"])
    ctl = S.control_verdicts(six, "math")  # what 06 reports for the same claims
    heads = [f for f in fs if f.statistic in HEADLINE_STATISTICS]
    assert len(heads) == 3
    for f in heads:
        line = f.control.split("; ")[-1]
        assert line.startswith("same claim under 06's length controls")
        for key, name in (("sqrt", "loss ÷ √T"), ("sum", "summed loss")):
            assert f"{name}: {ctl[f.statistic][key]['verdict']} (" in line, (line, ctl)
        assert line.endswith("answer-only loss: notebook 06")
    others = [
        (g, f) for g, f in zip(own, fs, strict=True) if f.statistic not in HEADLINE_STATISTICS
    ]
    assert others and all(g.control == f.control for g, f in others)  # only the headline rows
    assert by_stat(fs, "mean-curve level").verdict == by_stat(own, "mean-curve level").verdict
