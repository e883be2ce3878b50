"""benchmarks/gpu_check.sh: its CPU rehearsal runs every step, and without CUDA it says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def run_check(*args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def test_bad_option_is_a_usage_error():
    r = run_check("--size", "huge", timeout=60)
    assert r.returncode == 2 and "--size must be h200 or tiny" in r.stderr


@pytest.mark.slow
def test_rehearsal_runs_every_step(tmp_path, shared_data):
    # a generous budget: the shared CI machine is slower than the idle one the default fits
    r = run_check("--dry-run", "--out", str(tmp_path), "--budget", "1000")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    summary = json.loads((tmp_path / "gpu_check-tiny" / "summary.json").read_text())
    assert summary["rehearsal"] is True and summary["all_steps_ok"] is True
    assert [(s["name"], s["status"]) for s in summary["steps"]] == [
        ("env", "ok"), ("tests", "ok"), ("bench-qwen2", "ok"), ("bench-llama", "ok"),
        ("train-instep10", "ok"), ("train-instep1", "ok"),
    ]  # fmt: skip
    train = {t["file"]: t for t in summary["train"]}
    assert set(train) == {"train-instep10.json", "train-instep1.json"}
    assert train["train-instep1.json"]["when"] == "every step"
    assert train["train-instep10.json"]["when"] == "every 10th step"
    for t in train.values():  # a share was measured (tiny CPU models: its value means nothing)
        assert t["share"] is not None and t["step_seconds"] > 0 and t["device"] == "cpu"
    assert "in-step spectra every step" in r.stdout
    tests = summary["tests"]
    assert (
        tests["tests"] >= 12 and tests["passed"] == tests["tests"]
    )  # ran on the CPU, none skipped
    runs = summary["runs"]
    assert {(r["model"], r["dtype"], Path(r["data"]).stem) for r in runs} == {
        (m, d, f)
        for m in ("tiny-random-qwen2", "tiny-random-llama-gqa")
        for d in ("float32", "bfloat16")
        for f in ("gsm8k_train_with_cot_gpt4o", "gsm8k_train_no_cot")
    }
    for run in runs:
        assert run["rounds_done"] >= 1 and set(run["methods"]) == {"bare", "lgkit", "naive"}
        assert set(run["targets"]) == {
            "speedup_vs_naive",
            "overhead_vs_bare",
            "memory_ratio_vs_bare",
        }
        assert (
            run["naive_layers"] == 1 and run["methods"]["naive"]["svd_s_per_example_measured"] > 0
        )
        if run["dtype"] == "float32":
            assert run["exactness_worst_rel"] <= 1e-4
        if any(t["met"] is False for t in run["targets"].values()):
            assert (
                tmp_path / "gpu_check-tiny" / "runs" / Path(run["profile_files"][0]).name
            ).is_file()
    assert {p["dtype"] for p in summary["projection"]} == {"float32", "bfloat16"}
    assert "REHEARSAL" in r.stdout and "NOT a result" in r.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_without_cuda_the_check_says_so(tmp_path):
    r = run_check("--out", str(tmp_path), "--budget", "300", timeout=400)
    assert r.returncode == 1
    steps = (tmp_path / "gpu_check-h200" / "steps.tsv").read_text().splitlines()
    assert steps[0].startswith("env\tfailed") and "CUDA" in steps[0]
    assert all("\tskipped\t" in s for s in steps[1:]) and len(steps) == 6
