"""Notebook 02 on the authors' released examples with the embedded SmolLM2 (issue 10).

One dataset (GSM8K), a few questions sampled with a seed (the same questions in every
variant), no twin: the findings must carry estimate, 95% CI, p and a verdict, and must
not carry the synthetic-data label.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lgkit.analysis.findings import SYNTHETIC_LABEL
from lgkit.analysis.inference import VERDICTS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def release_dir() -> Path:
    """The released files: ../shared/data/layer_gradient (CI), else ``$LGKIT_DATA_DIR``."""
    for cand in (
        REPO.parent / "shared" / "data" / "layer_gradient",
        os.environ.get("LGKIT_DATA_DIR"),
    ):
        if cand and (Path(cand) / "cot_500").is_dir():
            return Path(cand)
    pytest.fail("released data not found (../shared/data/layer_gradient or LGKIT_DATA_DIR)")


@pytest.mark.slow
def test_02_on_released_gsm8k_with_smollm2(tmp_path, release_dir, notebook_root):
    """Run in a project root whose outputs/ holds earlier runs: the passed parameters win."""
    import papermill as pm

    from lgkit.data.profile import build_profile

    files = build_profile(
        {"name": "default", "datasets": ["gsm8k"], "fallback": ""},
        tmp_path / "01",
        n_per_variant=4,
        seed=0,
        data_dir=release_dir,
    )
    assert len(files) == 6 and not any(f.synthetic for f in files)
    qids = {tuple(ex.meta["qid"] for ex in f.read()) for f in files}
    assert len(qids) == 1, qids  # the same sampled questions in every variant
    out = tmp_path / "02"
    pm.execute_notebook(
        str(REPO / "notebooks" / "02_math.ipynb"),
        str(tmp_path / "02.ipynb"),
        parameters={
            "model": "smollm2-135m-instruct",
            "data_dir": str(tmp_path / "01" / "data"),
            "out_dir": str(out),
            "cache_dir": str(tmp_path / "cache"),
            "n_per_variant": 0,
            "max_length": 512,
            "bootstrap": 0,
            "n_boot": 200,
            "control": False,
            "progress": False,
        },
        cwd=str(notebook_root),
        kernel_name="python3",
        progress_bar=False,
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"] == "released" and m["weights"] == {"smollm2-135m-instruct": "Q4_1"}
    assert m["datasets"] == ["gsm8k"] and m["models"] == ["smollm2-135m-instruct"]
    valid = [f for f in m["findings"] if f["verdict"] != "invalid"]
    assert len(valid) >= 5, m["findings"]
    for f in m["findings"]:
        assert f["verdict"] in VERDICTS and SYNTHETIC_LABEL not in f["verdict_text"]
        assert "Q4_1" in f["verdict_text"]  # quantised weights, in the verdict
    for f in valid:
        assert f["ci_low"] <= f["estimate"] <= f["ci_high"], f
        assert 0 < f["p"] <= f["p_adj"] <= 1 and f["n_questions"] == 4


def test_default_profile_falls_back_loudly_without_the_release(tmp_path, monkeypatch, caplog):
    from lgkit.data.index import read_data_index
    from lgkit.data.profile import build_profile

    monkeypatch.setenv("LGKIT_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("LGKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LGKIT_OFFLINE", "1")
    with caplog.at_level("WARNING"):
        files = build_profile("default", tmp_path / "01", n_per_variant=3, seed=0)
    assert files and all(f.synthetic for f in files)
    assert "released examples not found" in caplog.text
    doc = json.loads((tmp_path / "01" / "data" / "index.json").read_text())
    assert doc["source"] == "synthetic" and "illustrative only" in doc["fallback"]
    assert len(read_data_index(tmp_path / "01" / "data")) == len(files)


def test_default_profile_samples_the_same_questions_in_every_variant(tmp_path, release_dir):
    from lgkit.data.profile import build_profile

    files = build_profile("default", tmp_path, n_per_variant=5, seed=3, data_dir=release_dir)
    for ds in {f.dataset for f in files}:
        qids = {tuple(ex.meta["qid"] for ex in f.read()) for f in files if f.dataset == ds}
        assert len(qids) == 1 and len(next(iter(qids))) == 5, (ds, qids)
    again = build_profile("default", tmp_path / "b", n_per_variant=5, seed=3, data_dir=release_dir)
    assert [ex.meta["qid"] for ex in again[0].read()] == [ex.meta["qid"] for ex in files[0].read()]
    assert [ex.meta["qid"] for ex in files[0].read()] != [
        f"{files[0].dataset}-{k:04d}" for k in range(5)
    ]
