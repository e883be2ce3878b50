"""The notebook series: committed clean, and executed end to end with the smoke profile.

``test_notebooks_are_clean`` is fast; the rest run ``lgkit run --profile smoke`` once
(session fixture, a few minutes on a 2-core CPU) and assert on every notebook's
``metrics.json`` and on ``index.html`` — never on rendered output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from html import escape as html_escape
from pathlib import Path

import nbformat
import pytest

from lgkit.analysis.findings import COLUMNS as FINDING_COLUMNS
from lgkit.analysis.findings import SYNTHETIC_LABEL
from lgkit.analysis.inference import VERDICTS
from lgkit.series.runner import NOTEBOOKS

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_FILES = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_all_notebooks_present():
    assert [p.stem for p in NOTEBOOK_FILES] == list(NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_notebooks_are_clean(path):
    """Committed without outputs or execution counts, kernel python3, one parameters cell."""
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: kernel name must be python3"
    )
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.get("outputs") == [], (
                f"{path.name}: cell {i} has outputs (clear them before committing)"
            )
            assert cell.get("execution_count") is None, (
                f"{path.name}: cell {i} has an execution count"
            )
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert not any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)
    assert "papermill" not in nb.metadata, f"{path.name}: an executed copy was committed"


@pytest.mark.parametrize(
    "path", [p for p in NOTEBOOK_FILES if p.stem != "01_data_prep"], ids=lambda p: p.name
)
def test_notebooks_are_thin(path):
    """No helper definitions in notebooks (they live in lgkit), no sys.path edits or %pip."""
    nb = nbformat.read(str(path), as_version=4)
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for bad in ("def ", "class ", "sys.path", "%pip", "!pip"):
        assert bad not in src, f"{path.name} contains {bad!r}"
    last = [c for c in nb.cells if c.cell_type == "code"][-1].source
    assert "write_metrics" in last, f"{path.name}: the last cell must write metrics.json"


# --------------------------------------------------------------------------- the smoke series


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """``lgkit run --profile smoke`` once, through the console entry point."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lgkit",
            "run",
            "--profile",
            "smoke",
            "--out",
            str(out),
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, f"lgkit run failed ({proc.returncode}):\n{proc.stderr[-6000:]}"
    print(f"\nsmoke series: {seconds:.0f} s")
    return out


def _metrics(run: Path, name: str) -> dict:
    path = run / name / "metrics.json"
    assert path.is_file(), f"{name} wrote no metrics.json"
    return json.loads(path.read_text())


EXPECTED_CLAIMS = {
    "02_math": [
        "(cot=detailed) gives smaller gradients",
        "fast thinking (cot=none)",
        "fast thinking (cot=simplified)",
        "differ more with slow thinking (cot=detailed)",
        "Without CoT (cot=none) the gradients of correct and irrelevant responses look alike",
    ],
    "03_commonsense": [
        "(cot=detailed) gives smaller gradients",
        "fast thinking (cot=none)",
        "fast thinking (cot=simplified)",
        "differ more with slow thinking (cot=detailed)",
        "Without CoT (cot=none) the gradients of correct and irrelevant responses look alike",
    ],
    "04_wiki": [
        "Longer responses on knowledge data do not reproduce slow thinking",
        "long-tail knowledge",
    ],
    "05_base_vs_instruct": [
        "Pre-trained (base) LLMs are less affected",
        "Instruction-tuned LLMs do not separate",
        "[tiny-random-gemma2] Slow thinking",
        "[tiny-random-llama] Slow thinking",
    ],
    "06_length_controls": [
        "[math] [mean] Slow thinking (cot=detailed) gives smaller gradients",
        "[math] [sum] Slow thinking",
        "[math] [sqrt] Correct and irrelevant responses differ more",
        "[commonsense] [coherence] Slow thinking",
        "[commonsense] [answer-only loss] Slow thinking",
    ],
    "08_data_quality": [
        "Better data has higher effective rank: correct vs irrelevant (detailed CoT)",
        "Better data has lower nuclear norm: detailed vs none CoT (correct), length-matched",
        "Training on the top by effective_rank gives lower held-out answer loss",
    ],
    "07_training_dynamics": [
        "[adamw] After fast-arm training the probe gradients are larger than after the slow arm's",
        "[adamw] After fast-arm training the probe gradients are larger than after the slow, answer-only loss arm's",
        "[sgd] After fast-arm training the probe gradients are less even",
        "[adamw] Fast-arm updates are larger than the slow arm's",
        "[sgd] Fast-arm updates are less even across layers than the slow arm's",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPECTED_CLAIMS))
def test_smoke_metrics(smoke_run, name):
    m = _metrics(smoke_run, name)
    assert m["notebook"] == name
    assert m["n_examples"] > 0 and m["n_rows"] > 0 and m["n_files"] > 0
    claims = [f["claim"] for f in m["findings"]]
    for want in EXPECTED_CLAIMS[name]:
        assert any(want in c for c in claims), f"{name}: no finding with {want!r} in {claims}"
    # was: keys claim/measured/supported/detail, supported in True/False/None; now every row
    # carries the statistic, estimate, 95% CI, p (Holm-adjusted), n questions and a verdict
    for f in m["findings"]:
        assert set(f) == set(FINDING_COLUMNS), sorted(f)
        assert f["verdict"] in VERDICTS and f["verdict_text"].startswith(f["verdict"])
        assert f["statistic"] and f["rule"]
        # synthetic smoke data: the label is in the verdict itself
        assert SYNTHETIC_LABEL in f["verdict_text"]
    # the headline findings are measurable on the smoke data: estimate inside its CI, p values
    for f in m["findings"][:2]:
        assert f["verdict"] != "invalid", f
        assert f["ci_low"] <= f["estimate"] <= f["ci_high"], f
        assert 0 < f["p"] <= 1 and f["p"] <= f["p_adj"] <= 1 and f["n_questions"] >= 3
    assert m["data"] == "synthetic" and "illustrative only" in m["data_note"]
    if name in ("02_math", "03_commonsense"):  # the random-initialisation control
        assert all(f["control"].startswith("random twin:") for f in m["findings"]), m["findings"]
        assert m["control"]["twin"] == "tiny-random-llama@random-init-0"
    assert m["figures"], f"{name}: no figures"
    for fig in m["figures"]:
        assert (smoke_run / name / fig).is_file()
        assert (smoke_run / name / fig).with_suffix(".pdf").is_file()
    assert any(t.endswith(".tex") for t in m["tables"]) and any(
        t.endswith(".csv") for t in m["tables"]
    )
    for t in m["tables"]:
        assert (smoke_run / name / t).is_file()
    rec = json.loads((smoke_run / name / "run.json").read_text())
    assert rec["status"] == "ok" and rec["profile"] == "smoke" and "git_hash" in rec
    assert (smoke_run / name / f"{name}.ipynb").is_file() and (
        smoke_run / name / "params.yaml"
    ).is_file()


@pytest.mark.slow
def test_smoke_key_numbers(smoke_run):
    m2 = _metrics(smoke_run, "02_math")
    assert set(m2["mean_nuclear_norm_by_cot"]) == {"none", "simplified", "detailed"}
    assert all(v > 0 for v in m2["mean_nuclear_norm_by_cot"].values())
    assert set(m2["rd_by_cot"]) == {"none", "simplified", "detailed"}
    m4 = _metrics(smoke_run, "04_wiki")
    assert m4["reference_rd"] == pytest.approx(
        m2["rd_by_cot"]["detailed"]
    )  # the math statistics, reused
    assert len(m4["groups"]) >= 2
    # the smoke wiki lengths really differ: nothing cut, medians increase short -> long
    lengths = m4["lengths_by_group"]
    popular = [lengths[g] for g in ("popular_short", "popular_medium", "popular_long")]
    assert all(x["truncated"] == 0 for x in popular), lengths
    med = [x["median_response_tokens"] for x in popular]
    assert med[0] < med[1] < med[2], med
    trend = [f for f in m4["findings"] if f["claim"].startswith("[length trend]")]
    assert trend and all(f["verdict"] != "invalid" for f in trend), trend
    m5 = _metrics(smoke_run, "05_base_vs_instruct")
    assert m5["models"] == ["tiny-random-gemma2", "tiny-random-llama"]
    assert m5["pairs"][0]["same_family"] is False
    # 05 reused 02's statistics of the instruct model (same settings): identical numbers
    m5_llama = m5["mean_nuclear_norm_by_model_cot"]["tiny-random-llama"]
    assert set(m5_llama) == {"none", "detailed"}  # 05 runs the levels its claims compare
    assert m5_llama == pytest.approx({k: m2["mean_nuclear_norm_by_cot"][k] for k in m5_llama})


@pytest.mark.slow
def test_smoke_statistics_computed_once(smoke_run):
    cache = smoke_run / "stats_cache"
    runs = sorted(p.name for p in cache.iterdir() if p.is_dir())
    llama_math = [r for r in runs if r.startswith("tiny-random-llama__synth_arith")]
    loss_on = [
        json.loads((cache / r / "manifest.json").read_text())["config"]["loss_on"]
        for r in llama_math
    ]
    # 02, 04 (reference), 05 and 06 share one run per file; 06 adds the answer-only runs
    assert loss_on.count("response") == 6 and loss_on.count("answer") == 3, llama_math


@pytest.mark.slow
def test_smoke_length_controls(smoke_run):
    """06 reused 02's response-loss statistics and added answer-only ones that make sense."""
    m6 = _metrics(smoke_run, "06_length_controls")
    m2 = _metrics(smoke_run, "02_math")
    by_norm = m6["level_mad_by_norm"]["math"]
    assert set(by_norm) == {"mean", "sum", "sqrt"}
    for cot, v in m2["level_mad_by_cot"].items():  # same cache entry, same numbers
        assert by_norm["mean"][cot]["level"] == pytest.approx(v["mean"])
    # sum >= sqrt >= mean (T >= 1), and exactly equal for a one-token-free check: ratio = sqrt(T)
    for cot in ("none", "detailed"):
        assert (
            by_norm["sum"][cot]["level"]
            >= by_norm["sqrt"][cot]["level"]
            >= by_norm["mean"][cot]["level"]
        )
    rows = {(r["loss_on"], r["cot"]): r for r in m6["loss_on"]["math"]}
    # a bare answer is all answer: answer-only and full-response loss agree for cot=none
    assert rows[("answer", "none")]["level"] == pytest.approx(rows[("response", "none")]["level"])
    assert (
        rows[("answer", "detailed")]["median_loss_tokens"]
        < rows[("response", "detailed")]["median_loss_tokens"]
    )
    assert all(0 < v["mean"] <= 1 for v in m6["coherence_by_cot"]["math"].values())
    assert m6["control"]["twin"]["math"] == "tiny-random-llama@random-init-0"
    twin_rows = [f for f in m6["findings"] if "[answer-only loss]" not in f["claim"]]
    assert all(f["control"].startswith("random twin:") for f in twin_rows)


@pytest.mark.slow
def test_smoke_data_and_index(smoke_run):
    m1 = _metrics(smoke_run, "01_data_prep")
    assert m1["n_files"] > 0
    assert (smoke_run / "01_data_prep" / "data" / "index.json").is_file()
    html = (smoke_run / "index.html").read_text()
    for name in NOTEBOOKS:
        assert f"{name}/{name}.ipynb" in html
    counts = {"supported": 0, "inconclusive": 0, "contradicted": 0, "invalid": 0}
    for name in EXPECTED_CLAIMS:
        for f in _metrics(smoke_run, name)["findings"]:
            assert html_escape(f["claim"]) in html
            counts[f["verdict"]] += 1
    # what was found first: the counts before the full table; the reader's table: verdict word,
    # estimate, CI, p, n on one short row, the rest in the row's details; rules once, collapsible
    for col in ("claim", "verdict", "estimate", "CI (95% unless marked)", "p adj", "n"):
        assert f">{col}</th>" in html
    assert "min p" in html and "<summary style=" in html  # a row's details
    line = ", ".join(f"{n} {v}" for v, n in counts.items())
    assert line in html, line
    assert html.index(line) < html.index("<table class='findings'")
    assert "<details><summary>Verdict rules (R1" in html
    assert "class='banner'" in html and html_escape(SYNTHETIC_LABEL) in html
    assert 'class="yes"' not in html
    series = json.loads((smoke_run / "run.json").read_text())
    assert series["status"] == "ok" and series["notebooks"] == list(NOTEBOOKS)


@pytest.mark.slow
def test_07_without_sgd_runs(tmp_path, monkeypatch, notebook_root):
    """The default profile's 07 trains no SGD runs: no [sgd] rows, no optimizer figure, a line saying so."""
    papermill = pytest.importorskip("papermill")
    import yaml

    monkeypatch.setenv("LGKIT_OFFLINE", "1")
    out = tmp_path / "07"
    params = yaml.safe_load((REPO / "params" / "07_training_dynamics.smoke.yaml").read_text())
    assert (
        yaml.safe_load((REPO / "params" / "07_training_dynamics.default.yaml").read_text())[
            "sgd_arms"
        ]
        == ""
    )
    nb = papermill.execute_notebook(
        str(REPO / "notebooks" / "07_training_dynamics.ipynb"),
        str(tmp_path / "07.ipynb"),
        kernel_name="python3",
        progress_bar=False,
        parameters={**params, "sgd_arms": "", "out_dir": str(out)},  # passed: no run is read
        cwd=str(notebook_root),
    )
    m = json.loads((out / "metrics.json").read_text())
    claims = [f["claim"] for f in m["findings"]]
    assert claims and all(c.startswith("[adamw]") for c in claims), claims
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "fast__adamw__s0", "slow__adamw__s0", "slow_answer__adamw__s0"
    ]  # fmt: skip
    assert not any("adamw_vs_sgd" in f for f in m["figures"])
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "No SGD runs in these settings" in printed


def _code(name: str, needle: str) -> str:
    cells = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    (src,) = ["".join(c["source"]) for c in cells if c["cell_type"] == "code" and needle in "".join(c["source"])]  # fmt: skip
    return src


def test_08_shows_the_auroc_figure_before_its_tables_and_the_read_speed_ratio():
    """Issue 29 (5): the figure first, the raw tables after it; section 3 prints the speed
    ratio also when it reads it from an earlier run's metrics.json (not only when it
    measures it)."""
    src = _code("08_data_quality", "Q.auroc_figure(")
    assert src.index("out.figure(Q.auroc_figure(") < src.index('out.table(tbl, "auroc"')
    assert src.index("out.figure(Q.auroc_figure(") < src.index('out.table(twin_tbl, "auroc_twin"')
    speed = _code("08_data_quality", "Q.oda_speed(")
    printed = [ln for ln in speed.splitlines() if "print(" in ln]
    assert printed == ["    print(Q.oda_speed_line(speed))"], printed
    # not nested under the recompute: also a speed read from the run's metrics.json
    assert any(ln.startswith("if speed is not None:") for ln in speed.splitlines())
