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


def _run(tmp_path, claim02="02_math pooled 0", with06=True, ci_level=0.99):
    """A run whose 02/03 hold pooled headline rows (02's level row at ``ci_level``) and
    whose 06 holds the headline controls as 06 writes them (``headline_controls``)."""
    run = tmp_path / "run"
    weights = "weights: Q4_1 GGUF dequantised to float32 (not the original checkpoint)"
    stats = report.HEADLINE_STATISTICS
    fams = {"02_math": "math", "03_commonsense": "commonsense", "06_length_controls": ""}
    for nb, fam in fams.items():
        (run / nb).mkdir(parents=True)
        rows = [
            _row(claim02 if (nb, k) == ("02_math", 0) else f"{nb} pooled {k}", s,
                 verdict_text=f"supported; {weights}", ci_level=ci_level if k == 0 else 0.95)
            for k, s in enumerate(stats)
        ]  # fmt: skip
        rows += [_row(f"[gsm8k] {nb} per dataset", stats[0], "inconclusive",
                      verdict_text=f"inconclusive; {weights}")]  # fmt: skip
        m = {"findings": rows, "family": fam, "weights": {"smollm2-135m-instruct": "Q4_1"}}
        if nb.startswith("06") and with06:
            ctl = {"sqrt": {"verdict": "inconclusive"}, "sum": {"verdict": "contradicted"},
                   "answer-only loss": {"verdict": "supported"}}  # fmt: skip
            m["headline_controls"] = {"math": {stats[0]: ctl}, "commonsense": {}}
        (run / nb / "metrics.json").write_text(json.dumps(m))
    return run, weights


def test_index_opens_with_counts_and_headline_claims(tmp_path):
    run, weights = _run(tmp_path)
    page = report.write_index(run).read_text()
    top = page[: page.index("<h2>Status</h2>")]
    assert "12 findings: 9 supported, 3 inconclusive, 0 contradicted, 0 invalid" in top
    head = top[top.index("<table class='headline'") :]
    # 02's and 03's three pooled claims, not 06's, not per dataset
    assert head.count("<tr><td>") == 6
    assert "06_length_controls pooled" not in head and "[gsm8k]" not in head
    # the interval shown is the one that decided: 02's level row at its family's 99%
    assert "0.8 99% [0.7, 0.9]" in head and "0.8 95% [0.7, 0.9]" in head
    # each headline claim carries its controls from 06, one line, "not run" where 06 has none
    assert head.count("<div class='controls small'") == 6
    assert (
        "controls: loss ÷ √T: inconclusive · summed loss: contradicted · answer-only loss: "
        "supported · learned vs init: not run" in head
    )
    assert "controls: loss ÷ √T: not run · summed loss: not run" in head
    assert page.count(weights) == 1  # said once ("Applies to every row"), not in 12 rows


def test_headline_controls_without_06_say_not_run(tmp_path):
    run, _ = _run(tmp_path, with06=False)
    got = report.headline_controls(run)
    assert set(got) == {(nb, f"{nb} pooled {k}") for nb in ("02_math", "03_commonsense")
                        for k in range(3)}  # fmt: skip
    assert all(all(x.endswith("not run") for x in v) for v in got.values())


def test_headline_controls_escape(tmp_path):
    run, _ = _run(tmp_path, claim02=HOSTILE)
    assert report.headline_controls(run)[("02_math", HOSTILE)][0] == "loss ÷ √T: inconclusive"
    page = report.write_index(run).read_text()
    assert "<div class='controls small'" in page and not _live_markup(page)
    assert "<script" not in page.lower().replace("&lt;script", "")
