"""Notebook 08's statistics (lgkit.series.quality) on tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lgkit.series.quality import auroc, auroc_findings, auroc_table, selection_findings


def _examples(n_q: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_q):
        for cot, base in (("none", 8), ("detailed", 120)):
            for correct in (True, False):
                length = base + int(rng.integers(0, 40)) + (30 if correct else 0)
                rows.append({"sample_id": f"t-{q:03d}-{cot}-{'correct' if correct else 'irrelevant'}",
                             "qid": f"t-{q:03d}", "cot": cot, "correct": correct,
                             "n_response_tokens": length,
                             "effective_rank": rng.normal(3.0 if correct else 0.0),  # quality
                             "nuclear_norm": length + rng.normal(0, 3)})  # length only  # fmt: skip
    return pd.DataFrame(rows)


def test_auroc_values():
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auroc(np.array([1.0]), np.array([1.0])) == 0.5


def test_a_length_score_loses_its_separation_after_length_matching():
    t = auroc_table(_examples(), ["effective_rank", "nuclear_norm"], n_boot=300, tol=0.03)
    raw = t[(t.contrast == "correct_vs_irrelevant") & ~t.length_matched].set_index("score")
    matched = t[(t.contrast == "correct_vs_irrelevant") & t.length_matched].set_index("score")
    assert raw.loc["nuclear_norm", "auroc"] > 0.8  # longer correct responses
    assert matched.loc["nuclear_norm", "n_units"] >= 5
    assert abs(matched.loc["nuclear_norm", "auroc"] - 0.5) < 0.25
    assert raw.loc["effective_rank", "auroc"] > 0.9 and matched.loc["effective_rank", "auroc"] > 0.9
    assert raw.loc["effective_rank", "ci_low"] > 0.5 and raw.loc["effective_rank", "p"] < 0.01
    f = {x.claim: x for x in auroc_findings(t)}
    er = f["Better data has higher effective rank: correct vs irrelevant (detailed CoT)"]
    assert er.verdict == "supported" and er.n_questions == 20
    nn = f["Better data has lower nuclear norm: correct vs irrelevant (detailed CoT)"]
    assert nn.verdict == "contradicted"  # longer (better) responses have the larger norm here
    # detailed and none CoT never have lengths within 3%: nothing to match, an invalid finding
    dv = f["Better data has higher effective rank: detailed vs none CoT (correct), length-matched"]
    assert dv.verdict == "invalid"


def test_no_separation_is_not_supported():
    ex = _examples(seed=1)
    ex["effective_rank"] = np.random.default_rng(5).normal(size=len(ex))
    t = auroc_table(ex, ["effective_rank"], n_boot=300)
    f = auroc_findings(t)[0]
    assert f.verdict == "inconclusive" and f.ci_low < 0.5 < f.ci_high


def test_selection_findings_pair_by_heldout_question():
    rows = []
    for q in range(8):
        for seed in (0, 1):
            for kind, shift in (("top", -0.5), ("bottom", 0.2), ("random", 0.0)):
                rows.append({"sample_id": f"h{q}", "kind": kind, "seed": seed,
                             "loss": 2.0 + q * 0.1 + shift + 0.01 * seed})  # fmt: skip
    top, bottom = selection_findings(pd.DataFrame(rows), "effective_rank", n_boot=300)
    assert abs(top.estimate + 0.5) < 1e-9 and top.verdict == "supported"
    assert abs(bottom.estimate - 0.2) < 1e-9 and bottom.verdict == "supported"
