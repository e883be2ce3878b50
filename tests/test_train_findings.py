"""Notebook 07's findings on hand-built tables: seeds as the unit of update rows, questions of probe rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lgkit import analysis as A
from lgkit.series.training import training_findings


def _tables(n_seeds: int, ratio: float = 0.5) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    upd, probe = [], []
    for arm, scale in (("fast", 1.0), ("slow", ratio)):
        for seed in range(n_seeds):
            for layer in range(4):
                for module in ("q", "o"):
                    for step in (0, 4):
                        v = 0.0 if step == 0 else scale * (2.0 + layer) * (1 + 0.02 * rng.normal())
                        upd.append(dict(arm=arm, optim="adamw", seed=seed, step=step, kind="update",
                                        layer=layer, module=module, nuclear_norm=v))  # fmt: skip
                        for q in range(10):
                            for cot in ("none", "detailed"):
                                probe.append(dict(arm=arm, optim="adamw", seed=seed, step=step,
                                                  qid=f"q{q}", sample_id=f"q{q}-{cot}", layer=layer,
                                                  module=module,
                                                  nuclear_norm=(1 + q) * (scale if step else 1.0)
                                                  * (1 + 0.05 * rng.normal())))  # fmt: skip
    return {"updates": pd.DataFrame(upd), "probe": pd.DataFrame(probe)}


def _by_claim(fs: list[A.Finding]) -> dict[str, A.Finding]:
    return {f.claim: f for f in fs}


def test_update_rows_decided_with_enough_seeds():
    fs = _by_claim(A.decide(training_findings(_tables(10), n_boot=2000)))
    f = fs["[adamw] Fast-arm updates are larger than the slow arm's"]
    assert f.n_questions == 10 and abs(f.estimate - 0.5) < 0.02 and f.verdict == "supported"
    p = fs[
        "[adamw] After fast-arm training the probe gradients are larger than after the slow arm's"
    ]
    assert p.n_questions == 10 and p.verdict == "supported" and abs(p.estimate - 0.5) < 0.05
    assert not any("answer-only" in c for c in fs)  # that arm was not run: no claim


def test_update_rows_inconclusive_below_six_seeds():
    fs = _by_claim(A.decide(training_findings(_tables(2), n_boot=200)))
    f = fs["[adamw] Fast-arm updates are larger than the slow arm's"]
    assert f.verdict == "inconclusive" and "2 seed(s)" in f.caveats
    # the reason leads the verdict's own text (what a reader sees in the row)
    assert f.verdict_text.startswith(
        "inconclusive: 2 seed(s) per arm: no verdict possible at this size"
    ), f.verdict_text
    assert (
        fs[
            "[adamw] After fast-arm training the probe gradients are larger than after the slow arm's"
        ].n_questions
        == 10
    )


def _instep(ratio: float, n_q: int = 12, per_step: int = 2) -> dict[str, pd.DataFrame]:
    """In-step rows: the same question at the same step in every arm (one epoch, batch ``per_step``)."""
    rng = np.random.default_rng(1)
    rows = []
    for q in range(n_q):
        step = 1 + q // per_step
        base = (1 + q) * (1 + 0.05 * rng.normal())
        for arm, scale in (("fast", 1.0), ("slow", ratio)):
            for layer in range(4):
                for module in ("q", "o"):
                    rows.append(dict(arm=arm, optim="adamw", seed=0, step=step, qid=f"q{q}",
                                     sample_id=f"q{q}-x", layer=layer, module=module,
                                     nuclear_norm=base * scale * (2 + layer)
                                     * (1 + 0.02 * rng.normal())))  # fmt: skip
    return {"instep": pd.DataFrame(rows), "updates": pd.DataFrame(), "probe": pd.DataFrame()}


def test_instep_rows_take_every_training_question_as_a_paired_unit():
    from lgkit.series.training import instep_findings

    fs = _by_claim(A.decide(instep_findings(_instep(0.5), n_boot=2000)))
    f = fs["[adamw] [in-step] Fast-arm training gradients are larger than the slow arm's"]
    assert f.n_questions == 12 and abs(f.estimate - 0.5) < 0.02 and f.verdict == "supported"
    early = next(v for k, v in fs.items() if k.startswith("[adamw] [in-step, early]"))
    late = next(v for k, v in fs.items() if k.startswith("[adamw] [in-step, late]"))
    assert early.n_questions == 6 and late.n_questions == 6
    change = next(v for k, v in fs.items() if k.startswith("[adamw] [in-step, change]"))
    assert abs(change.estimate - 1.0) < 0.05 and change.verdict != "supported"
    assert not any("answer-only" in c for c in fs)  # that arm was not run: no claim
    # with the update table and no probe (07's default): update rows, no probe rows
    t = {**_instep(0.5), "updates": _tables(3)["updates"]}
    rows = training_findings(t, n_boot=200)
    assert rows and all("probe" not in f.claim for f in rows)
    # no effect: the level row is not supported
    g = _by_claim(A.decide(instep_findings(_instep(1.0), n_boot=2000)))
    assert (
        g["[adamw] [in-step] Fast-arm training gradients are larger than the slow arm's"].verdict
        != "supported"
    )


def test_instep_families_primary_claim_and_exploratory_breakdowns():
    """Only the paper's claim (slow vs fast over all steps: level and MAD) competes for
    07's Holm budget; halves, the change, the answer-only arm, probe and update rows are
    exploratory, each with its own 95% interval."""
    from lgkit.series.training import instep_findings

    t = _instep(0.5)
    ins = t["instep"]
    t["instep"] = pd.concat([ins, ins[ins["arm"] == "slow"].assign(arm="slow_answer")])
    rows = instep_findings(t, n_boot=200) + training_findings(
        {**t, "updates": _tables(3)["updates"]}, n_boot=200
    )
    fam = {f.claim: f.family for f in rows}
    primary = sorted(c for c, f in fam.items() if f == A.PRIMARY)
    assert primary == [
        "[adamw] [in-step] Fast-arm training gradients are larger than the slow arm's",
        "[adamw] [in-step] Fast-arm training gradients are less even across layers than the slow arm's",
    ]
    assert all(fam[c] == A.EXPLORATORY for c in fam if "answer-only" in c or "update" in c)
    out = A.decide(rows)
    assert {f.ci_level for f in out if f.family == A.EXPLORATORY} == {0.95}
