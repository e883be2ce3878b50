"""Notebook 01 (data preparation): parameters, committed state, and a papermill smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "01_data_prep.ipynb"
PARAMS = sorted((REPO / "params").glob("01_data_prep.*.yaml"))
RELEASE_DIR = (REPO / ".." / "shared" / "data" / "layer_gradient").resolve()


def test_params_are_real_parameters():
    papermill = pytest.importorskip("papermill")
    yaml = pytest.importorskip("yaml")
    declared = papermill.inspect_notebook(str(NOTEBOOK))
    assert {"profile", "out_dir", "n_per_variant", "seed", "data_dir", "tokenizer"} <= set(declared)
    assert {p.name.split(".")[1] for p in PARAMS} >= {"smoke", "default", "full"}
    for p in PARAMS:
        values = yaml.safe_load(p.read_text())
        unknown = set(values) - set(declared)
        assert not unknown, f"{p.name}: not parameters of the notebook: {sorted(unknown)}"


def test_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            assert c["outputs"] == [] and c["execution_count"] is None
            src = "".join(c["source"])
            assert "sys.path" not in src and "%pip" not in src


@pytest.mark.slow
def test_smoke_run_offline(tmp_path, monkeypatch, notebook_root):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "run"
    for var in (
        "LGKIT_OFFLINE",
        "HF_HUB_OFFLINE",
        "HF_DATASETS_OFFLINE",
    ):  # no network, no download
        monkeypatch.setenv(var, "1")
    if RELEASE_DIR.is_dir():
        monkeypatch.setenv("LGKIT_DATA_DIR", str(RELEASE_DIR))
    else:
        monkeypatch.delenv("LGKIT_DATA_DIR", raising=False)
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "01_data_prep.ipynb"),
        kernel_name="python3",
        progress_bar=False,
        parameters={**_yaml(REPO / "params" / "01_data_prep.smoke.yaml"), "out_dir": str(out)},
        cwd=str(notebook_root),
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["profile"] == "smoke" and m["synthetic"] is True
    assert m["families"] == ["commonsense", "math", "wiki"]
    assert m["n_files"] == 24 and set(m["counts"].values()) == {8}
    assert m["written_collision_free"] is True
    assert (out / "token_lengths.png").stat().st_size > 0
    stats = m["token_lengths"]["synth_arith__detailed__correct"]
    assert (
        stats["n"] == 8
        and stats["tokens_mean"]
        > m["token_lengths"]["synth_arith__simplified__correct"]["tokens_mean"]
    )
    assert m["length_ratios"]["synth_arith"]["detailed_over_simplified"] > 2
    from lgkit.data import read_data_index

    assert len(read_data_index(out / "data")) == 24
    if RELEASE_DIR.is_dir():
        assert m["released_available"] is True
        col = m["collisions_released"]
        assert len(col) == 28
        sqa = col["cot_500_wrong_answer_shuffle/strategyqa_train_no_cot.json"]
        assert sqa["same_final_answer"] == 250 and sqa["rate"] == 0.5
    else:
        assert m["released_available"] is False and m["collisions_released"] is None


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())
