"""``lgkit run``: params validation, --only handling, per-notebook records and the index.

The execution tests use small stand-in notebooks in a temporary project root (a kernel
start each, a few seconds); the real series runs in ``test_notebooks.py``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lgkit import cli
from lgkit.errors import InputError
from lgkit.series import report, runner
from lgkit.series.runner import NOTEBOOKS, PROFILES

pytestmark = pytest.mark.integration


REPO = Path(__file__).resolve().parent.parent
PARAM_FILES = sorted((REPO / "params").glob("*.yaml"))


# --------------------------------------------------------------------------- the real params


def test_every_notebook_has_a_yaml_per_profile():
    missing = [
        f"{n}.{p}.yaml"
        for n in NOTEBOOKS
        for p in PROFILES
        if not (REPO / "params" / f"{n}.{p}.yaml").is_file()
    ]
    assert not missing, f"missing params files: {missing}"
    for f in PARAM_FILES:
        name, profile, _ = f.name.rsplit(".", 2)
        assert name in NOTEBOOKS and profile in PROFILES, f"stray params file {f.name}"


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_every_yaml_key_is_a_notebook_parameter(path):
    name = path.name.rsplit(".", 2)[0]
    nb = REPO / "notebooks" / f"{name}.ipynb"
    params = pm.inspect_notebook(str(nb))
    doc = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(doc) - set(params))
    assert not unknown, (
        f"{path.name}: keys {unknown} are not parameters of {nb.name} ({sorted(params)})"
    )
    runner.validate_params(doc, nb, path)  # the runner's own check agrees


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_is_fully_parsed_by_papermill(name):
    """papermill silently skips a line it cannot parse (e.g. '=' inside a comment)."""
    nb = nbformat.read(str(REPO / "notebooks" / f"{name}.ipynb"), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    declared = [
        m.group(1)
        for line in cells[0].source.splitlines()
        if (m := re.match(r"^(\w+)\s*(?::[^=]*)?=", line))
    ]
    assert declared == list(pm.inspect_notebook(str(REPO / "notebooks" / f"{name}.ipynb")))


#: notebooks that read 01's data through the shared statistics cache; 07 trains its own
#: models on the released GSM8K (its own out_dir only)
CACHE_READERS = [n for n in NOTEBOOKS[1:] if n != "07_training_dynamics"]


@pytest.mark.parametrize("name", NOTEBOOKS[1:])
def test_analysis_notebooks_take_the_run_paths(name):
    params = pm.inspect_notebook(str(REPO / "notebooks" / f"{name}.ipynb"))
    needed = {"out_dir", "data_dir", "cache_dir"} if name in CACHE_READERS else {"out_dir"}
    assert needed <= set(params)


def test_default_profile_shares_statistics_settings():
    """02-06 and 08 of a profile use the same n_per_variant and max_length, so the cache is
    reused."""
    for profile in PROFILES:
        settings = set()
        for name in CACHE_READERS:
            doc = yaml.safe_load((REPO / "params" / f"{name}.{profile}.yaml").read_text()) or {}
            settings.add(
                (doc.get("n_per_variant"), doc.get("max_length"), doc.get("modules", "q,k,v,o"))
            )
        assert len(settings) == 1, f"{profile}: {settings}"


def test_full_profile_lists_the_five_pairs():
    doc = yaml.safe_load((REPO / "params" / "05_base_vs_instruct.full.yaml").read_text())
    base = doc["base_models"].split(",")
    inst = doc["instruct_models"].split(",")
    assert base == [
        "Qwen/Qwen2-1.5B",
        "google/gemma-2-2b",
        "meta-llama/Llama-3.1-8B",
        "google/gemma-2-9b",
        "meta-llama/Llama-2-7b-hf",
    ]
    assert inst == [
        "Qwen/Qwen2-1.5B-Instruct",
        "google/gemma-2-2b-it",
        "meta-llama/Llama-3.1-8B-Instruct",
        "google/gemma-2-9b-it",
        "meta-llama/Llama-2-7b-chat-hf",
    ]


def test_resolve_params_injects_run_paths(tmp_path):
    p = runner.resolve_params("02_math", "smoke", tmp_path)
    assert p["out_dir"] == str(tmp_path / "02_math")
    assert p["cache_dir"] == str(tmp_path / "stats_cache")
    assert p["data_dir"] == str(tmp_path / "01_data_prep" / "data")
    p1 = runner.resolve_params("01_data_prep", "smoke", tmp_path)
    assert p1["out_dir"] == str(tmp_path / "01_data_prep")
    assert "cache_dir" not in p1


# --------------------------------------------------------------------------- small parsers


def test_parse_only():
    assert runner.parse_only(None) == list(NOTEBOOKS)
    assert runner.parse_only("04,02") == ["02_math", "04_wiki"]
    assert runner.parse_only("5, wiki") == ["04_wiki", "05_base_vs_instruct"]
    assert runner.parse_only(["01_data_prep.ipynb"]) == ["01_data_prep"]
    with pytest.raises(InputError, match="unknown notebook '99'"):
        runner.parse_only("99")


def test_load_params_yaml_errors(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="mapping"):
        runner.load_params_yaml(bad)
    bad.write_text("a: [1,\n")
    with pytest.raises(InputError, match="malformed YAML"):
        runner.load_params_yaml(bad)
    with pytest.raises(InputError, match="not found"):
        runner.load_params_yaml(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert runner.load_params_yaml(tmp_path / "empty.yaml") == {}


# --------------------------------------------------------------------------- a stand-in project


def _nb(params_src: str, body: str) -> nbformat.NotebookNode:
    nb = new_notebook(
        cells=[
            new_markdown_cell("stand-in"),
            new_code_cell(params_src),
            new_code_cell(body),
        ]
    )
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


FAKE_01 = _nb(
    'out_dir: str = "outputs/dev/01_data_prep"  # output\nn: int = 2  # examples',
    "from pathlib import Path\nfrom lgkit.data.index import write_data_index\n"
    "write_data_index(Path(out_dir) / 'data', [], profile='fake')\n"
    "from lgkit.series import write_metrics\nwrite_metrics(out_dir, [], {'n_files': 0})",
)
FAKE_02 = _nb(
    'data_dir: str = ""  # data\nout_dir: str = "outputs/dev/02_math"  # output\n'
    'cache_dir: str = "outputs/dev/stats_cache"  # cache\nfail: bool = False  # raise',
    "import os\nfrom lgkit.analysis import Finding, invalid\nfrom lgkit.series import write_metrics\n"
    "assert os.path.isfile(os.path.join(data_dir, 'index.json'))\n"
    "assert os.getcwd() == os.environ['LGKIT_TEST_ROOT'], os.getcwd()\n"
    "if fail:\n    raise ValueError('boom on purpose')\n"
    "os.makedirs(os.path.join(out_dir, 'figures'), exist_ok=True)\n"
    "open(os.path.join(out_dir, 'figures', 'curve.png'), 'wb').write(b'png')\n"
    "write_metrics(out_dir, [Finding('Detailed CoT is flatter', 'level ratio', 0.5, 0.4, 0.6, 0.01),\n"
    "                        invalid('Only detailed CoT separates', 'RD ratio', 'no data')],\n"
    "              {'n_examples': 3, 'cache_dir': cache_dir, 'figures': ['figures/curve.png']})",
)


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """A project root with stand-in 01 and 02 notebooks and smoke params."""
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "params").mkdir()
    nbformat.write(FAKE_01, str(root / "notebooks" / "01_data_prep.ipynb"))
    nbformat.write(FAKE_02, str(root / "notebooks" / "02_math.ipynb"))
    (root / "params" / "01_data_prep.smoke.yaml").write_text("n: 2\n")
    (root / "params" / "02_math.smoke.yaml").write_text("fail: false\n")
    monkeypatch.setenv("LGKIT_TEST_ROOT", str(root))
    return root


def test_unknown_yaml_key_names_file_and_key(fake_root, tmp_path):
    y = fake_root / "params" / "02_math.smoke.yaml"
    y.write_text("fail: false\nn_per_variantt: 3\n")
    with pytest.raises(InputError) as e:
        runner.run_series(
            "smoke", only="01,02", out=tmp_path / "run", root=fake_root, progress=False
        )
    msg = str(e.value)
    assert str(y) in msg and "n_per_variantt" in msg
    assert not (tmp_path / "run").exists(), "nothing runs before every YAML is valid"


def test_cli_unknown_key_exits_2(fake_root, tmp_path, monkeypatch, capsys):
    (fake_root / "params" / "02_math.smoke.yaml").write_text("bogus_key: 1\n")
    monkeypatch.setenv("LGKIT_REPO_ROOT", str(fake_root))
    rc = cli.main(
        ["run", "--profile", "smoke", "--only", "02", "--out", str(tmp_path / "r"), "--no-progress"]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "02_math.smoke.yaml" in err and "bogus_key" in err


def test_only_without_01_needs_existing_data(fake_root, tmp_path):
    with pytest.raises(InputError, match="01_data_prep"):
        runner.run_series(
            "smoke", only="02", out=tmp_path / "empty", root=fake_root, progress=False
        )
    with pytest.raises(InputError, match="--out"):
        runner.run_series("smoke", only="02", out=None, root=fake_root, progress=False)


def test_run_series_writes_records_and_index(fake_root, tmp_path):
    run = tmp_path / "run"
    out = runner.run_series(
        "smoke", out=run, only="01,02", root=fake_root, progress=False, html_report=False
    )
    assert out == run.resolve()
    for name in ("01_data_prep", "02_math"):
        d = run / name
        assert (d / f"{name}.ipynb").is_file()
        rec = json.loads((d / "run.json").read_text())
        assert rec["status"] == "ok" and rec["kernel"] == "python3" and "git_hash" in rec
        assert rec["cwd"] == str(fake_root.resolve())
        assert yaml.safe_load((d / "params.yaml").read_text())["out_dir"] == str(d)
        assert json.loads((d / "params.json").read_text())["out_dir"] == str(d)
    p2 = yaml.safe_load((run / "02_math" / "params.yaml").read_text())
    assert p2["data_dir"] == str(run / "01_data_prep" / "data") and p2["cache_dir"] == str(
        run / "stats_cache"
    )
    executed = nbformat.read(str(run / "02_math" / "02_math.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    series = json.loads((run / "run.json").read_text())
    assert series["status"] == "ok" and series["profile"] == "smoke"
    html = (run / "index.html").read_text()
    assert (
        "Detailed CoT is flatter" in html
        and "supported" in html
        and "invalid" in html
        and "no data" in html
    )
    assert (
        "02_math/02_math.ipynb" in html
        and "02_math/metrics.json" in html
        and "02_math/figures/curve.png" in html
    )

    # --only 02 into the same run: reuses 01's data, index keeps both notebooks
    runner.run_series(
        "smoke", out=run, only="02", root=fake_root, progress=False, html_report=False
    )
    assert "01_data_prep" in (run / "index.html").read_text()


def test_failed_notebook_reports_partial_notebook(fake_root, tmp_path, monkeypatch, capsys):
    (fake_root / "params" / "02_math.smoke.yaml").write_text("fail: true\n")
    run = tmp_path / "run"
    with pytest.raises(runner.NotebookFailed) as e:
        runner.run_series(
            "smoke", out=run, root=fake_root, only="1,2", progress=False, html_report=False
        )
    failed = run.resolve() / "02_math" / "02_math.failed.ipynb"
    assert e.value.path == failed and e.value.path.is_file()
    assert not (run / "02_math" / "metrics.json").exists()  # no findings beside a failure
    assert "boom on purpose" in str(e.value)
    rec = json.loads((run / "02_math" / "run.json").read_text())
    assert rec["status"] == "failed" and "boom" in rec["error"]
    assert "failed" in (run / "index.html").read_text()
    # through the CLI: nonzero exit and the path of the partial notebook
    monkeypatch.setenv("LGKIT_REPO_ROOT", str(fake_root))
    rc = cli.main(
        [
            "run",
            "--profile",
            "smoke",
            "--only",
            "02",
            "--out",
            str(run),
            "--no-progress",
            "--no-html",
        ]
    )
    assert rc == 1
    assert str(failed) in capsys.readouterr().err


# --------------------------------------------------------------------------- index and metrics on fake outputs


def test_write_index_and_collect_findings(tmp_path):
    from lgkit.analysis import Finding, synthetic_stats
    from lgkit.series import Outputs

    run = tmp_path / "r"
    out = Outputs(run / "03_commonsense", notebook="03_commonsense", show=False)
    df = synthetic_stats(n_samples=3, n_layers=4, model="m")
    from lgkit.viz import plots

    out.figure(plots.layer_figure(df, bands=False), "curves")
    out.table(df.head(3)[["sample_id", "cot", "nuclear_norm"]], "head")
    # a ratio expected below 1 whose CI lies above 1 (was: supported False)
    out.write_metrics([Finding("Claim <b>x</b>", "ratio", 1.5, 1.3, 1.7, 0.01)], df=df, model="m")
    (run / "02_math").mkdir(parents=True)
    (run / "02_math" / "metrics.json").write_text(
        json.dumps(
            {"findings": [{"claim": "c2", "measured": "m", "supported": True, "detail": ""}]}
        )
    )
    (run / "junk").mkdir()
    rows = report.collect_findings(run)
    assert [r["notebook"] for r in rows] == ["02_math", "03_commonsense"]
    html = report.write_index(run).read_text()
    assert "Claim &lt;b&gt;x&lt;/b&gt;" in html  # escaped
    assert "contradicted" in html and "03_commonsense/figures/curves.png" in html
    assert "03_commonsense/tables/head.csv" in html and "03_commonsense/tables/head.tex" in html
    assert "junk" not in html
    m = json.loads((run / "03_commonsense" / "metrics.json").read_text())
    assert (
        m["n_examples"] == 3 * 3 * 3 * 2
        and m["models"] == ["m"]
        and m["figures"] == ["figures/curves.png"]
    )
    assert m["findings"][0]["verdict"] == "contradicted"


def test_copy_of_real_notebooks_validate(tmp_path):
    """The real notebooks validate against their own YAMLs in a copied project root."""
    root = tmp_path / "copy"
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    shutil.copytree(REPO / "params", root / "params")
    for name in NOTEBOOKS:
        for profile in PROFILES:
            runner.resolve_params(name, profile, tmp_path / "run", root=root)


def test_param_overrides_are_parsed_and_validated(fake_root, tmp_path):
    # the text is kept; it is typed against the notebook's parameters cell later
    assert runner._parse_set(["02:fail=true", "1,2:n=3"]) == {
        "02_math": {"fail": "true", "n": "3"},
        "01_data_prep": {"n": "3"},
    }
    with pytest.raises(InputError, match="NOTEBOOK:KEY=VALUE"):
        runner._parse_set(["02_math"])
    with pytest.raises(InputError, match="'nope'"):
        runner.resolve_params("02_math", "smoke", tmp_path, fake_root, {"nope": 1})
    assert (
        runner.resolve_params("02_math", "smoke", tmp_path, fake_root, {"fail": True})["fail"]
        is True
    )
    assert (
        runner.resolve_params("02_math", "smoke", tmp_path, fake_root, {"fail": "true"})["fail"]
        is True
    )


def test_data_fallback_is_said_on_the_console(tmp_path, caplog):
    """A run whose data fell back to the synthetic set says so in the log, not only on the pages."""
    from lgkit.series.runner import _warn_fallback

    data = runner.data_dir_of(tmp_path)
    data.mkdir(parents=True)
    (data / "index.json").write_text('{"files": [], "fallback": "released examples not found"}')
    with caplog.at_level("WARNING", logger="lgkit.series.runner"):
        _warn_fallback(tmp_path)
    assert "DATA FALLBACK: released examples not found" in caplog.text
    (data / "index.json").write_text('{"files": []}')
    caplog.clear()
    _warn_fallback(tmp_path)
    assert "FALLBACK" not in caplog.text
