"""Notebook 08's statistics (lgkit.series.quality) on tables with known answers (issue 27,
rules 3, 4, 5, 7 and 9 for 08)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lgkit.analysis import Finding
from lgkit.analysis.auroc import clopper_pearson
from lgkit.score.select import Rule, choose, choose_balanced
from lgkit.series.quality import (
    auroc,
    auroc_findings,
    auroc_table,
    decide,
    notebook_findings,
    selection_findings,
)

SCORES = ["effective_rank", "nuclear_norm", "loss", "n_response_tokens"]


def _examples(n_q: int = 24, seed: int = 0, er_shift: float = 3.0) -> pd.DataFrame:
    """Per question: none and detailed CoT, correct and irrelevant. Detailed responses are
    ~10x longer than none (length separates detailed vs none perfectly); correct ones are a
    little longer; effective rank separates correct from irrelevant (quality), the nuclear
    norm is the length plus noise, the loss is lower for correct responses."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_q):
        for cot, base in (("none", 8), ("detailed", 120)):
            for correct in (True, False):
                length = base + int(rng.integers(0, 40)) + (30 if correct else 0)
                rows.append({"sample_id": f"t-{q:03d}-{cot}-{'correct' if correct else 'irrelevant'}",
                             "qid": f"t-{q:03d}", "cot": cot, "correct": correct,
                             "n_response_tokens": length,
                             "effective_rank": rng.normal(er_shift if correct else 0.0),
                             "nuclear_norm": length + rng.normal(0, 8),
                             "loss": rng.normal(1.0 if correct else 2.0, 0.3)})  # fmt: skip
    return pd.DataFrame(rows)


def _by_claim(fs):
    return {f.claim: f for f in fs}


def test_auroc_values():
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auroc(np.array([1.0]), np.array([1.0])) == 0.5


def test_complete_separation_gets_an_exact_interval_that_reflects_n():
    t = auroc_table(_examples(er_shift=50.0), SCORES)
    r = t[(t.contrast == "correct_vs_irrelevant") & (t.adjust == "none")].set_index("score")
    er = r.loc["effective_rank"]
    assert er.auroc == 1.0 and er.n_units == 24 and er.ci_high == 1.0
    assert abs(er.ci_low - 0.025 ** (1 / 24)) < 1e-6 and er.ci_low < 0.9  # never [1, 1]
    assert abs(er.p - 2 * 0.5**24) < 1e-15
    f = _by_claim(decide(auroc_findings(t)))
    row = f["Better data has higher effective rank: correct vs irrelevant (detailed CoT)"]
    assert row.verdict == "supported" and row.ci_low < row.estimate == row.ci_high == 1.0
    lo10, hi10 = clopper_pearson(10, 10)
    assert 0.69 < lo10 < 0.70 and hi10 == 1.0  # at 10 units the bound is lower still


def test_length_confounded_contrast_is_invalid_and_baselines_and_adjusted_rows_are_shown():
    t = auroc_table(_examples(), SCORES, tol=0.1)
    fs = _by_claim(decide(auroc_findings(t)))
    for score in ("higher effective rank", "lower nuclear norm"):
        raw = fs[f"Better data has {score}: detailed vs none CoT (correct)"]
        assert raw.verdict == "invalid" and raw.verdict_text.startswith(
            "invalid: confounded by length"
        ), raw.verdict_text
        assert "0 length-matched pairs" in raw.verdict_text
        assert "[1, 1]" not in raw.verdict_text and np.isnan(raw.ci_low)
        lm = fs[f"Better data has {score}: detailed vs none CoT (correct), length-matched"]
        assert lm.verdict == "invalid"
    # the length itself is the baseline that shows the confound, decided on its own interval
    length = fs["[baseline] The better response is longer: detailed vs none CoT (correct)"]
    assert length.verdict.startswith("supported") and length.estimate == 1.0 and length.ci_low < 1
    # loss and length baseline rows, and every claim as it is, length- and loss-matched
    label = "correct vs irrelevant (detailed CoT)"
    for claim in (
        f"[baseline] The better response has lower loss: {label}",
        f"[baseline] The better response is longer: {label}",
        f"[baseline] The better response has lower loss: {label}, length-matched",
        f"[baseline] The better response is longer: {label}, loss-matched",
        f"Better data has higher effective rank: {label}, length-matched",
        f"Better data has higher effective rank: {label}, loss-matched",
        f"Better data has lower nuclear norm: {label}, loss-matched",
    ):
        assert claim in fs, claim
    loss = fs[f"[baseline] The better response has lower loss: {label}"]
    assert loss.verdict == "supported" and loss.estimate < 0.2
    assert not any("learned contrast" in f.verdict_text for f in fs.values())


def test_a_loss_that_separates_every_question_leaves_nothing_to_adjust_and_says_so():
    ex = _examples()
    ex["loss"] = np.where(ex.correct, 1.0, 3.0) + np.random.default_rng(2).normal(0, 0.05, len(ex))
    fs = _by_claim(decide(auroc_findings(auroc_table(ex, SCORES))))
    label = "correct vs irrelevant (detailed CoT)"
    er = fs[f"Better data has higher effective rank: {label}, loss-matched"]
    assert er.verdict == "invalid" and er.verdict_text.startswith("invalid: 0 loss-matched pairs")
    assert (
        "the loss alone gives a within-question AUROC of 0.00 (0 of 24 questions)"
        in er.verdict_text
    )
    assert "what a score adds beyond the loss cannot be measured at this size" in er.verdict_text


def test_a_length_score_loses_its_separation_after_length_matching():
    t = auroc_table(_examples(n_q=80), SCORES, tol=0.03)
    ci = t[t.contrast == "correct_vs_irrelevant"]
    raw = ci[ci.adjust == "none"].set_index("score")
    matched = ci[ci.adjust == "length"].set_index("score")
    assert raw.loc["nuclear_norm", "auroc"] > 0.8  # longer correct responses
    assert matched.loc["nuclear_norm", "n_units"] >= 15
    assert abs(matched.loc["nuclear_norm", "auroc"] - 0.5) < 0.25
    assert raw.loc["effective_rank", "auroc"] > 0.9 and matched.loc["effective_rank", "auroc"] > 0.9
    # matched pairs are independent units: no question in two pairs
    assert matched.loc["effective_rank", "n_better"] <= 80


def test_no_separation_is_not_supported_and_small_n_says_so():
    ex = _examples(seed=1)
    ex["effective_rank"] = np.random.default_rng(5).normal(size=len(ex))
    t = auroc_table(ex, SCORES, tol=0.03)
    fs = decide(auroc_findings(t))
    f = fs[0]
    assert f.claim == "Better data has higher effective rank: correct vs irrelevant (detailed CoT)"
    assert f.verdict == "inconclusive" and f.ci_low < 0.5 < f.ci_high
    assert "at n=24 only a within-question AUROC of 0.75 or more" in f.verdict_text, f.verdict_text
    assert all(g.n_questions >= 6 for g in fs if g.verdict != "invalid")  # min p 2/2^n < 0.05
    lo, hi = clopper_pearson(4, 4)
    four = Finding("Better data has higher effective rank: x, length-matched",
                   "within-question AUROC (better > worse)", 1.0, lo, hi, 0.125, n_questions=4,
                   null=0.5, direction="greater", recipe=(4, 4))  # fmt: skip
    (g,) = decide([four])
    assert g.verdict_text.startswith(
        "inconclusive: no verdict possible at this size (n=4: the smallest p is 0.125)"
    ), g.verdict_text
    assert all("exploratory" in g.verdict_text for g in fs[2:] if g.verdict != "invalid")


def test_the_interval_shown_decides_and_a_family_level_miss_is_explained():
    """18 of 24 questions: the exact 95% CI excludes 0.5 (p = 0.023) but the primary family
    of 4 rows (Bonferroni) does not: inconclusive, and the row says why."""
    ex = _examples()
    sign = np.where(np.arange(24) < 18, 1.0, -1.0)
    for q in range(24):
        m = (ex.qid == f"t-{q:03d}") & (ex.cot == "detailed")
        ex.loc[m & ex.correct, "effective_rank"] = sign[q]
        ex.loc[m & ~ex.correct, "effective_rank"] = 0.0
    t = auroc_table(ex, SCORES)
    sel = selection_findings(_losses(top=-0.5, bottom=0.2), "effective_rank")
    fs = _by_claim(notebook_findings(t, sel, None, ex.assign(dataset="gsm8k"), "m"))
    er = fs["Better data has higher effective rank: correct vs irrelevant (detailed CoT)"]
    assert er.estimate == 0.75 and er.ci_low > 0.5 and abs(er.p_adj - 4 * er.p) < 1e-12
    assert er.verdict == "inconclusive"
    assert "the 95% CI excludes 0.5 but the 98.75% interval" in er.verdict_text
    top = fs[
        "Training on the top by effective_rank gives lower held-out answer loss than a random subset"
    ]
    assert top.verdict == "supported" and top.ci_high < 0 and top.p_adj < 0.05
    assert "compares single training runs (seed-to-seed variance not included)" in top.verdict_text


def _losses(top: float, bottom: float, n: int = 10, seeds=(0,)) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(3)
    for q in range(n):
        noise = rng.normal(0, 0.05, 3)
        for seed in seeds:
            for i, (kind, shift) in enumerate((("top", top), ("bottom", bottom), ("random", 0.0))):
                rows.append({"sample_id": f"h{q}", "kind": kind, "seed": seed,
                             "loss": 2.0 + q * 0.1 + shift + noise[i] + 0.01 * seed})  # fmt: skip
    return pd.DataFrame(rows)


def test_selection_findings_exact_and_say_they_compare_single_runs():
    subsets = pd.DataFrame({"kind": ["top", "bottom", "random"], "seed": 0,
                            "share_correct": 0.5, "loss_tokens": [4100, 4080, 4090]})  # fmt: skip
    top, bottom = selection_findings(_losses(-0.5, 0.2), "effective_rank", subsets)
    assert top.verdict == "supported" and bottom.verdict == "supported"
    assert abs(top.p - 2 / 1024) < 1e-12 and "exact over all 2^n flips" in top.detail
    assert top.ci_low < top.estimate < top.ci_high < 0
    for f in (top, bottom):
        assert "compares single training runs (1 seed(s) per subset)" in f.caveats
        assert "top 50% correct, 4100 loss tokens" in f.caveats
    none, _ = selection_findings(_losses(0.0, 0.0), "effective_rank")
    assert none.verdict == "inconclusive" and none.ci_low < 0 < none.ci_high


def _pool(n: int = 72, seed: int = 0) -> pd.DataFrame:
    """Like 08's pool: correct/irrelevant x none/simplified/detailed; the score favours
    irrelevant and longer responses, so an unbalanced top subset differs in both."""
    rng = np.random.default_rng(seed)
    cot = np.tile(np.repeat(["none", "simplified", "detailed"], 2), n // 6)
    correct = np.tile([True, False], n // 2)
    base = pd.Series(cot).map({"none": 20, "simplified": 120, "detailed": 300}).to_numpy()
    length = (base * rng.lognormal(0, 0.4, n)).astype(int) + 5
    score = np.log(length) + np.where(correct, 0.0, 0.8) + rng.normal(0, 0.3, n)
    return pd.DataFrame({"index": range(n), "correct": correct, "cot": cot,
                         "n_response_tokens": length, "effective_rank": score})  # fmt: skip


def test_selection_subsets_are_balanced_on_correct_share_and_loss_tokens():
    pool = _pool()
    rule = Rule("top", fraction=0.25)

    def summary(fn):
        out = {}
        for kind in ("top", "bottom", "random"):
            sub = pool.iloc[fn(kind)]
            out[kind] = (sub.correct.mean(), sub.n_response_tokens.sum(), sub.effective_rank.mean())
        return out

    old = summary(
        lambda k: choose(pool, Rule(k, fraction=0.25), "effective_rank", match_length=True)
    )
    shares = [v[0] for v in old.values()]
    assert max(shares) - min(shares) > 0.1  # the imbalance the issue reports
    new = summary(lambda k: choose_balanced(pool, Rule(k, fraction=0.25), "effective_rank"))
    assert len({v[0] for v in new.values()}) == 1  # the same share of correct responses
    tokens = [v[1] for v in new.values()]
    assert (max(tokens) - min(tokens)) / min(tokens) <= 0.02, tokens
    assert new["top"][2] > new["random"][2] > new["bottom"][2]  # still a selection by score
    assert len(choose_balanced(pool, rule, "effective_rank")) == 18
    for seed in range(5):  # other pools and random draws
        p = _pool(seed=seed + 1)
        t = [p.iloc[choose_balanced(p, Rule(k, fraction=0.25), "effective_rank", seed=seed)]
             .n_response_tokens.sum() for k in ("top", "bottom", "random")]  # fmt: skip
        assert (max(t) - min(t)) / min(t) <= 0.02, (seed, t)
