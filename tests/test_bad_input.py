"""Issue 11: one clear line and exit 2 (no traceback) for each bad input; nothing good lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch

import lgkit
from lgkit.cli import main
from lgkit.errors import InputError
from lgkit.formats.records import Example, read_examples, write_examples
from lgkit.series.report import write_index
from lgkit.series.runner import NotebookFailed, run_notebook

REPO = Path(__file__).resolve().parent.parent


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err


def _one_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.startswith("lgkit: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def data(tmp_path) -> Path:
    return write_examples(tmp_path / "d.jsonl", [Example(f"q{i}", "", f"a{i}") for i in range(3)])


@pytest.fixture
def grads_run(tmp_path, data) -> Path:
    out = tmp_path / "run"
    assert main(["grads", "--model", "tiny-random-llama", "--data", str(data)] + ["--out", str(out), "--no-progress"]) == 0  # fmt: skip
    return out


# --------------------------------------------------------------------------- lgkit run


def test_run_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    code, err = _run(capsys, "run", "--profile", "smoke", "--out", str(f), "--no-progress")
    assert code == 2 and "is a file" in _one_line(err) and f.read_text() == "x"


def test_run_out_cannot_be_written(tmp_path, capsys):
    blocker = tmp_path / "plain"
    blocker.write_text("x")  # a directory below a file cannot be created, even by root
    code, err = _run(
        capsys, "run", "--profile", "smoke", "--out", str(blocker / "run"), "--no-progress"
    )
    assert code == 2 and "cannot write the output directory" in _one_line(err)


def _good_result(run: Path, name: str = "02_math") -> dict[str, str]:
    d = run / name
    (d / "figures").mkdir(parents=True)
    files = {
        f"{name}.ipynb": "GOOD NOTEBOOK",
        "metrics.json": json.dumps({"findings": [{"claim": "old good", "supported": True}]}),
        "figures/fig.png": "GOOD FIGURE",
        "run.json": json.dumps({"notebook": name, "status": "ok", "start_time": "T0"}),
    }
    for k, v in files.items():
        (d / k).write_text(v)
    return files


def test_bad_param_type_checked_before_anything_runs(tmp_path, capsys):
    run = tmp_path / "run"
    good = _good_result(run)
    code, err = _run(
        capsys,
        "run",
        "--profile",
        "smoke",
        "--only",
        "01,02",
        "--out",
        str(run),
        "--param",
        "02:n_per_variant=abc",
        "--no-progress",
    )
    line = _one_line(err)
    assert code == 2 and "n_per_variant" in line and "'abc'" in line and "int" in line
    for k, v in good.items():  # the good executed notebook, figures and metrics survive
        assert (run / "02_math" / k).read_text() == v
    assert not (run / "01_data_prep").exists()  # nothing started


def test_param_text_is_typed():
    from lgkit.series.guard import coerce_value

    assert coerce_value("n", "4", "int", "--param") == 4
    assert coerce_value("flag", "false", "bool", "--param") is False
    assert coerce_value("instruct", "true", "str", "--param") == "true"
    for bad, typ in (("abc", "int"), ("true", "int"), ("x", "float"), ("3", "bool")):
        with pytest.raises(InputError, match=typ):
            coerce_value("k", bad, typ, "--param")


def _failing_project(tmp_path: Path, name: str = "02_math") -> Path:
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    p = nbformat.v4.new_code_cell("out_dir = ''")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nbformat.write(nb, str(root / "notebooks" / f"{name}.ipynb"))
    return root


@pytest.mark.slow
def test_failing_notebook_never_replaces_a_good_result(tmp_path):
    root = _failing_project(tmp_path)
    run = tmp_path / "run"
    good = _good_result(run)
    params = {"out_dir": str(run / "02_math")}
    with pytest.raises(NotebookFailed) as ei:
        run_notebook("02_math", params, run, profile="smoke", root=root, html_report=False)
    d = run / "02_math"
    for k, v in good.items():
        if k != "run.json":
            assert (d / k).read_text() == v
    rec = json.loads((d / "run.json").read_text())
    assert rec["status"] == "ok" and "boom" in rec["last_failure"]["error"]
    failed = d / "02_math.failed.ipynb"
    assert ei.value.path == failed and failed.is_file()
    assert "boom" in failed.read_text()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no backup left behind
    (run / "run.json").write_text(
        json.dumps({"failed": {"notebook": "02_math", "reason": "boom", "path": str(failed)}})
    )
    page = write_index(run).read_text()
    assert "last good results are kept" in page and "a later attempt" in page
    # a first failure (nothing good before): no metrics beside the failure
    run2 = tmp_path / "run2"
    (run2 / "02_math").mkdir(parents=True)
    (run2 / "02_math" / "metrics.json").write_text('{"findings": [{"claim": "stale"}]}')
    (run2 / "02_math" / "run.json").write_text('{"status": "failed"}')
    with pytest.raises(NotebookFailed):
        run_notebook("02_math", {"out_dir": str(run2 / "02_math")}, run2, profile="smoke", root=root, html_report=False)  # fmt: skip
    assert not (run2 / "02_math" / "metrics.json").exists()
    assert (run2 / "02_math" / "02_math.failed.ipynb").is_file()
    assert "stale" not in write_index(run2).read_text()


# --------------------------------------------------------------------------- grads / export


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda(tmp_path, capsys, data):
    code, err = _run(
        capsys, "grads", "--model", "tiny-random-llama", "--data", str(data),
        "--out", str(tmp_path / "o"), "--device", "cuda",
    )  # fmt: skip
    assert code == 2 and "CUDA is not available" in _one_line(err)


def test_grads_out_is_a_file(tmp_path, capsys, data):
    code, err = _run(
        capsys, "grads", "--model", "tiny-random-llama", "--data", str(data), "--out", str(data)
    )
    assert code == 2 and "is a file" in _one_line(err)


def test_export_to_a_directory(tmp_path, capsys, grads_run):
    target = tmp_path / "adir"
    target.mkdir()
    code, err = _run(capsys, "export", str(grads_run), str(target))
    assert code == 2 and "is a directory" in _one_line(err)
    assert not list(tmp_path.glob("*.tmp")) and not list(target.iterdir())


def test_export_with_data_of_another_run(tmp_path, capsys, grads_run):
    other = write_examples(tmp_path / "other.jsonl", [Example("zz", "", "yy"), Example("q0", "", "a0")])  # fmt: skip
    out = tmp_path / "a.jsonl"
    code, err = _run(capsys, "export", str(grads_run), str(out), "--data", str(other))
    line = _one_line(err)
    assert code == 2 and "2 of 3 samples" in line and "--data" in line
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_reuse_refusal_says_how_to_start_afresh(tmp_path, capsys, data, grads_run):
    code, err = _run(
        capsys, "grads", "--model", "tiny-random-qwen2", "--data", str(data),
        "--out", str(grads_run), "--no-progress",
    )  # fmt: skip
    line = _one_line(err)
    assert code == 2 and "--overwrite" in line and "another --out" in line


def test_limit_zero_means_all(tmp_path, data):
    from lgkit.series.steps import grad_config

    out = tmp_path / "all"
    assert main(["grads", "--model", "tiny-random-llama", "--data", str(data), "--out", str(out), "--limit", "0", "--no-progress"]) == 0  # fmt: skip
    assert lgkit.load_stats(out)["sample_id"].nunique() == 3
    assert grad_config(256, "q", n_per_variant=0).limit in (None, 0)


# --------------------------------------------------------------------------- data files, models


def test_json_with_utf8_bom_loads(tmp_path):
    p = tmp_path / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"instruction": "q", "output": "a"}]).encode())
    assert [e.output for e in read_examples(p)] == ["a"]
    q = tmp_path / "bom.jsonl"
    q.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"instruction": "q", "output": "b"}).encode() + b"\n"
    )
    assert [e.output for e in read_examples(q)] == ["b"]


@pytest.mark.parametrize("text", ["", "  \n\n"])
def test_empty_data_file_says_empty(tmp_path, capsys, text):
    p = tmp_path / "empty.jsonl"
    p.write_text(text)
    code, err = _run(capsys, "grads", "--model", "tiny-random-llama", "--data", str(p), "--out", str(tmp_path / "o"))  # fmt: skip
    assert code == 2 and "empty" in _one_line(err)


@pytest.mark.parametrize(
    "env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"}]
)
def test_unknown_hub_model_fails_fast_offline(monkeypatch, env):
    from lgkit.models.load import load_model

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="cannot be reached"):
        load_model("nobody-lgkit/no-such-model-xyz", device="cpu")
    assert time.perf_counter() - t0 < 10


def test_version():
    out = subprocess.run(
        [sys.executable, "-m", "lgkit", "--version"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout
    assert out.strip() == f"lgkit {lgkit.__version__}"
