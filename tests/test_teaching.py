"""Issue 18: notebooks for a class — small settings never crash, readers' findings, runs reused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lgkit import analysis as A
from lgkit import series as S
from lgkit.data.profile import build_profile
from lgkit.formats.records import write_examples
from lgkit.series import teaching as T
from lgkit.series import verdicts as V


def _records(n: int = 4) -> list[dict]:
    fs = A.decide([A.Finding("c", "s", 0.075, 0.059, 0.098, 0.0625, n_questions=n)])
    return S.findings_records(fs)


def test_min_p_and_small_n_warning():
    assert V.min_p(4) >= 0.05 > 0.001 > V.min_p(12)  # no verdict at 4 questions; fine at 12
    rows, *_ = V.reader_findings(_records(4))
    assert rows[0]["n"] == "4" and rows[0]["min p"] == f"{V.min_p(4):.2g}"
    assert "cannot be supported or contradicted" in V.small_n_warning(_records(4))
    assert V.small_n_warning(_records(12)) == ""


def test_findings_html_one_row_each_rule_once_escaped():
    recs = [
        {**r, "claim": f"<script>{k}</script>"}
        for k, r in enumerate(_records(12) + _records(12) + _records(4))
    ]
    h = V.findings_html(recs)
    assert "<script>" not in h and "&lt;script&gt;0&lt;/script&gt;" in h
    assert h.count("<tr>") == 4  # header + 3 rows
    assert h.count(A.findings.I.RULE_DIFFERENCE[:40]) == 1  # the rule once, under the table
    assert "0 supported, 3 inconclusive, 0 contradicted, 0 invalid" in h
    assert "<details><summary>" in h and "min p" in h


def test_what_this_shows_is_written_from_findings():
    recs = _records(12)
    md = T.what_this_shows(recs, "02_math")
    assert "1 findings of 02_math" in md and recs[0]["verdict"] in md


def _project(tmp_path, monkeypatch):
    """A project root (cwd in its notebooks/) whose outputs/ holds runs of 02_math."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("LGKIT_BATCH", raising=False)
    return tmp_path


def _run(folder, status: str = "ok", **params):
    import yaml

    nb = folder / "02_math"
    nb.mkdir(parents=True)
    (nb / "params.yaml").write_text(yaml.safe_dump(params))
    (nb / "run.json").write_text(json.dumps({"notebook": "02_math", "status": status}))
    if status == "running":  # its runner was killed: the attempt's marker stays
        (folder / ".02_math.attempt.json").write_text(json.dumps({"pid": 2**22 + 1}))
    return folder


OWN = 'run: str = "latest"  # a run\nmodel: str = "m"\nn_per_variant: int = 0\nout_dir: str = "y"'
"""02's own parameters cell, as the kernel's input history holds it."""


def test_open_run_reads_the_latest_finished_run(tmp_path, monkeypatch):
    root = _project(tmp_path, monkeypatch)
    done = _run(
        root / "outputs" / "default", model="m-run", cache_dir="/c", out_dir="/o", n_per_variant=0
    )
    _run(root / "outputs" / "half", "running", model="m-half")  # newer, never finished
    _run(root / "outputs" / "bad", "failed", model="m-bad")
    assert T.latest_run("02_math") == done
    ns = {
        "model": "m",
        "cache_dir": "x",
        "out_dir": "y",
        "n_per_variant": 0,
        "In": ["", OWN, "S.start()"],
    }
    got = T.open_run("latest", "02_math", ns)  # a notebook opened by hand (Run All)
    assert got == {"model": "m-run", "cache_dir": "/c", "n_per_variant": 0}  # out_dir stays local
    assert T.open_run("latest", "02_math", {"model": "m"}) == {"model": "m-run"}  # no history
    assert T.open_run("", "02_math", {"model": "m"}) == {}
    monkeypatch.setenv("LGKIT_BATCH", "1")
    assert T.open_run("latest", "02_math", {"model": "m"}) == {}  # lgkit run itself


def test_passed_parameters_are_never_replaced(tmp_path, monkeypatch, capsys):
    """papermill -p model X -p n_per_variant 4 (no run): the notebook computes with them."""
    root = _project(tmp_path, monkeypatch)
    _run(root / "outputs" / "default", model="m-run", n_per_variant=0)
    injected = '# Parameters\nmodel = "X"\nn_per_variant = 4\nPAPERMILL_INPUT_PATH = "a"\n'
    ns = {"run": "latest", "model": "X", "n_per_variant": 4, "In": ["", OWN, injected, "S.start()"]}
    assert T.injected_parameters(ns) == {"model", "n_per_variant"}
    assert T.start("latest", "02_math", ns) == {}
    assert "computing with them, not reading an earlier run" in capsys.readouterr().out
    # the same notebook, its parameters cell run again by hand: class behaviour again
    ns["In"] += [OWN, "S.start()"]
    assert T.injected_parameters(ns) is None
    assert T.open_run("latest", "02_math", ns) == {"model": "m-run", "n_per_variant": 0}
    # a papermill run without parameters injects nothing: class behaviour
    assert T.injected_parameters({"In": ["", OWN, "S.start()"]}) is None
    assert T.injected_parameters({"model": "m"}) is None  # no kernel history (a script)


def test_run_passed_with_other_settings_stops_in_one_line(tmp_path, monkeypatch):
    root = _project(tmp_path, monkeypatch)
    _run(
        root / "outputs" / "default", model="m-run", n_per_variant=0, max_length=1024, out_dir="/o"
    )
    injected = (
        '# Parameters\nrun = "default"\nn_per_variant = 4\nmax_length = 1024\nout_dir = "/mine"\n'
    )
    ns = {"run": "default", "model": "m", "n_per_variant": 4, "max_length": 1024, "out_dir": "/mine",
          "In": ["", OWN, injected, "S.start()"]}  # fmt: skip
    with pytest.raises(T.ParameterConflict) as e:
        T.open_run("default", "02_math", ns)
    line = str(e.value)
    assert "n_per_variant=0" in line and "n_per_variant=4" in line and "run=''" in line
    assert "max_length" not in line and "out_dir" not in line and "model" not in line
    assert e.value._render_traceback_() == [f"ParameterConflict: {line}"]  # one line in a notebook
    ns["n_per_variant"] = 0  # the run's own settings (and an out_dir of its own) may be passed
    ns["In"][2] = injected.replace("n_per_variant = 4", "n_per_variant = 0")
    assert T.open_run("default", "02_math", ns) == {
        "model": "m-run",
        "n_per_variant": 0,
        "max_length": 1024,
    }


@pytest.mark.slow
def test_papermill_parameters_win_in_a_project_with_runs(tmp_path, notebook_root):
    """02 through papermill in a project whose outputs/ holds a finished and a half-finished run:
    passed parameters are used (it stops at the passed, missing data folder, not at the runs');
    run passed with a differing setting stops at once with one line naming it."""
    import nbformat
    import papermill as pm

    def execute(name: str, **params) -> tuple[str, list[str]]:
        target = tmp_path / f"{name}.ipynb"
        with pytest.raises(pm.PapermillExecutionError):
            pm.execute_notebook(
                str(notebook_root / "notebooks" / "02_math.ipynb"), str(target),
                parameters={"out_dir": str(tmp_path / name), "progress": False, **params},
                cwd=str(notebook_root), kernel_name="python3", progress_bar=False,
            )  # fmt: skip
        nb = nbformat.read(str(target), as_version=4)
        outs = [o for c in nb.cells for o in c.get("outputs", [])]
        printed = "".join(o.get("text", "") for o in outs)
        return printed, [ln for o in outs if o.output_type == "error" for ln in o.traceback]

    printed, error = execute("given", model="tiny-random-llama", data_dir=str(tmp_path / "no-data"))
    assert "computing with them, not reading an earlier run" in printed
    assert "no-data" in "".join(error) and "planted-run" not in "".join(error)
    printed, error = execute("conflict", run="planted", n_per_variant=4)
    assert (
        len(error) == 1
        and error[0].startswith("ParameterConflict: ")
        and "n_per_variant=99" in error[0]
    )


@pytest.mark.slow
def test_06_answer_only_without_spans_is_an_invalid_row(tmp_path):
    """06 with 4 examples: a file without answer spans becomes an invalid row with the reason."""
    files = build_profile("smoke", tmp_path, n_per_variant=4, seed=0)
    data = tmp_path / "data"
    for f in files:
        if f.family == "commonsense" and f.cot == "detailed" and f.correct:
            exs = [replace(e, output="A long story without the final word.") for e in f.read()]
            write_examples(f.path, exs)
    config = S.grad_config(2304, "q,o", n_per_variant=4)
    df = S.answer_stats(data, "commonsense", "tiny-random-llama", config, tmp_path / "cache",
                        tmp_path / "ans", progress=False)  # fmt: skip
    failed = df.attrs["failed_files"]
    assert len(failed) == 1 and "is not in the response text" in next(iter(failed.values()))
    fs = S.answer_claims(df, n_boot=50)
    bad = [f for f in fs if f.verdict == "invalid"]
    assert bad and "is not in the response text" in bad[-1].verdict_text
    assert json.dumps(S.findings_records(fs))  # the rest of the notebook can write them


def test_every_parameter_line_parses_with_papermill():
    """A line papermill cannot parse is silently not a parameter (lgkit run could not set it)."""
    import nbformat
    from papermill.translators import PythonTranslator

    for path in sorted((T._root() / "notebooks").glob("0*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")]
        assert len(PythonTranslator.inspect(cell)) == len(lines), path.name


def test_notebooks_local_is_ignored():
    import subprocess

    root = T._root()
    got = subprocess.run(
        ["git", "-C", str(root), "check-ignore", "notebooks/local/02_math.ipynb"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert got.returncode == 0


def test_filter_warning_names_the_fix(tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitattributes").write_text("*.ipynb filter=nbstripout\n")
    warn = T.filter_warning(tmp_path)
    assert "nbstripout" in warn and "notebooks/local/" in warn


def test_notebook_defaults_equal_the_default_profile():
    """What Run All computes interactively is what the batch report shows: each notebook's own
    defaults equal its default profile's values (issue 18), and every notebook reads a run."""
    import ast

    from lgkit.series.guard import load_params_yaml, notebook_parameters

    root = T._root()
    checked = 0
    for path in sorted((root / "notebooks").glob("0*.ipynb")):
        prof = load_params_yaml(root / "params" / f"{path.stem}.default.yaml")
        own = {k: ast.literal_eval(v["default"]) for k, v in notebook_parameters(path).items()}
        diff = {
            k: (own[k], v)
            for k, v in prof.items()
            if k not in ("progress", "out_dir") and own.get(k, v) != v
        }
        assert not diff, f"{path.name}: notebook default != default profile: {diff}"
        assert path.stem == "01_data_prep" or own.get("run") == "latest", path.name
        checked += 1
    assert checked == 8


def test_a_run_is_read_as_it_is(tmp_path):
    """07 opening a run reads the run's training files and never rebuilds them (a session
    without the released data would otherwise write the synthetic set into the run)."""
    from lgkit.errors import InputError
    from lgkit.series import training as TR

    with pytest.raises(InputError, match="no training data of the run"):
        TR.training_files(tmp_path)
    files = TR.training_data(tmp_path, source="synthetic", n_train=4, n_probe=2, n_heldout=2)
    before = {k: (p.read_bytes(), p.stat().st_mtime_ns) for k, p in files.items()}
    assert TR.training_files(tmp_path) == files
    assert {k: (p.read_bytes(), p.stat().st_mtime_ns) for k, p in files.items()} == before


def test_small_n_warning_names_the_notebooks_own_parameters():
    """Issue 29 (5): 07 has no n_per_variant; its warning names what 07 can raise."""
    w07 = V.small_n_warning(_records(4), notebook="07_training_dynamics")
    assert "n_per_variant" not in w07 and "n_train" in w07 and "seeds" in w07
    assert "n_per_variant" in V.small_n_warning(_records(4), notebook="02_math")
    recs = [{**r, "notebook": "07_training_dynamics"} for r in _records(4)]
    assert "n_train" in V.small_n_warning(recs)  # the run's index: the rows' notebook
    assert "n_train" in V.findings_html(_records(4), notebook="07_training_dynamics")
    assert "n_train" in T.what_this_shows(_records(4), "07_training_dynamics")
