"""index.html opens with what was found (issue 29): shared caveats once, the verdict counts and
the headline claims of 02/03 with their controls lines before the long table; every text from
disk escaped there too."""

from __future__ import annotations

import json

from test_faults_series import HOSTILE, _live_markup

from lgkit.series import report


def _row(claim: str, statistic: str, verdict: str = "supported", **kw) -> dict:
    return {"claim": claim, "statistic": statistic, "verdict": verdict, "verdict_text": verdict,
            "estimate": 0.8, "ci_low": 0.7, "ci_high": 0.9, "p_adj": 0.01, "n_questions": 12,
            "rule": "R", **kw}  # fmt: skip


def test_index_opens_with_counts_and_headline_claims(tmp_path):
    run = tmp_path / "run"
    weights = "weights: Q4_1 GGUF dequantised to float32 (not the original checkpoint)"
    stats = report.HEADLINE_STATISTICS
    for nb in ("02_math", "03_commonsense", "06_length_controls"):
        (run / nb).mkdir(parents=True)
        rows = [
            _row(f"{nb} pooled {k}", s, verdict_text=f"supported; {weights}")
            for k, s in enumerate(stats)
        ]
        rows += [
            _row(
                f"[gsm8k] {nb} per dataset",
                stats[0],
                "inconclusive",
                verdict_text=f"inconclusive; {weights}",
            )
        ]
        (run / nb / "metrics.json").write_text(json.dumps({
            "findings": rows, "weights": {"smollm2-135m-instruct": "Q4_1"},
            "headline_controls": {f"{nb} pooled 0": ["√T: inconclusive", "answer-only: supported"]},
        }))  # fmt: skip
    page = report.write_index(run).read_text()
    top = page[: page.index("<h2>Status</h2>")]
    assert "12 findings: 9 supported, 3 inconclusive, 0 contradicted, 0 invalid" in top
    head = top[top.index("<table class='headline'") :]
    assert (
        head.count("<tr><td>") == 6
    )  # 02's and 03's three pooled claims, not 06's, not per dataset
    assert "06_length_controls pooled" not in head and "[gsm8k]" not in head
    assert head.count("controls: √T: inconclusive · answer-only: supported") == 2
    assert page.count(weights) == 1  # said once ("Applies to every row"), not in 12 rows


def test_headline_controls_hook_escapes(tmp_path):
    run = tmp_path / "run"
    (run / "02_math").mkdir(parents=True)
    (run / "02_math" / "metrics.json").write_text(json.dumps({
        "findings": [_row(HOSTILE, report.HEADLINE_STATISTICS[0], verdict_text=HOSTILE, caveats=HOSTILE)],
        "headline_controls": [{"claim": HOSTILE, "controls": [HOSTILE]}, "junk", {"claim": 1}],
    }))  # fmt: skip
    assert report.headline_controls(run) == {("02_math", HOSTILE): [HOSTILE]}
    page = report.write_index(run).read_text()
    assert "<tr class='controls'>" in page and not _live_markup(page)
    assert "<script" not in page.lower().replace("&lt;script", "")
