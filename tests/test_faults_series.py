"""Faults of the notebook series (issue 17, series side): what survives what.

* a series that tells the truth: ok / failed / interrupted / not run / stale in ``run.json``
  and ``index.html``; SIGINT, SIGTERM, SIGKILL of the runner or of a kernel while 02 reruns
  over a good result put the good result back and mark the attempt;
* stale results: a notebook computed on other data than 01's current data is ``stale``;
* untrusted text is text: record, parameter and dataset strings are escaped on every path
  into HTML (notebook outputs, nbconvert pages, ``index.html``, widgets), checked in Chromium;
* a full disk while the executed notebook is saved: one line, exit 2, no truncated ``.ipynb``;
* ``--param`` errors and ranges, ``lgkit run --help`` from the catalog.

The quick tests build run folders by hand; the ``slow`` ones run small stand-in notebooks
(a kernel start each) and, once, the real notebook 01 on a hostile copy of the released files.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from lgkit import cli
from lgkit.data.index import write_data_index
from lgkit.errors import InputError
from lgkit.series import attempts, report, runner
from lgkit.series.catalog import NOTEBOOKS

REPO = Path(__file__).resolve().parent.parent

#: One payload per way text can turn into live HTML; each sets a flag if it ever runs.
PAYLOADS = (
    "<script>window.__pwned = 1; document.title = 'pwned'</script>",
    "<img src=x onerror=\"window.__pwned = 2; document.title = 'pwned'\">",
    '```\n</code></pre><img src=y onerror="window.__pwned = 3">\n```',
    '[click](javascript:window.__pwned=4) <a href="javascript:window.__pwned=5">x</a>',
)
HOSTILE = " ".join(PAYLOADS)


# --------------------------------------------------------------------------- helpers


def _good_02(run: Path, fingerprint: str | None = None) -> dict[str, str]:
    """A good 02_math result (as a finished run leaves it); returns its files' texts."""
    d = run / "02_math"
    (d / "figures").mkdir(parents=True)
    files = {
        "02_math.ipynb": '{"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
        "metrics.json": json.dumps({"findings": [{"claim": "good claim", "verdict": "supported"}]}),
        "figures/curve.png": "png",
    }
    for k, v in files.items():
        (d / k).write_text(v)
    rec = {
        "notebook": "02_math",
        "status": "ok",
        "start_time": "2026-01-01T00:00:00+00:00",
        "data_dir": "01_data_prep/data",
        "data_fingerprint": fingerprint,
        "attempt": "old",
    }
    (d / "run.json").write_text(json.dumps(rec))
    return files


def _data(run: Path, profile: str = "a") -> str | None:
    write_data_index(runner.data_dir_of(run), [], profile=profile)
    (run / "01_data_prep" / "run.json").write_text(
        json.dumps({"notebook": "01_data_prep", "status": "ok"})
    )
    return attempts.data_fingerprint(runner.data_dir_of(run))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _live_markup(page: str) -> list[tuple[str, str]]:
    """Elements of ``page`` through which a payload would run: script bodies, on* handlers, js: URLs."""
    from html.parser import HTMLParser

    found: list[tuple[str, str]] = []

    class Scan(HTMLParser):
        tag = ""

        def handle_starttag(self, tag, attrs):
            self.tag = tag
            for k, v in attrs:
                v = (v or "").strip().lower()
                if (k.startswith("on") and "__pwned" in v) or (
                    k in ("href", "src", "action") and v.startswith("javascript:")
                ):
                    found.append((tag, k))

        def handle_data(self, data):
            if self.tag == "script" and "__pwned" in data:
                found.append(("script", data[:40]))

    Scan().feed(page)
    return found


def _hrefs_exist(run: Path) -> list[str]:
    """Local links of index.html that point at nothing."""
    from urllib.parse import unquote

    page = (run / "index.html").read_text()
    broken = []
    for href in re.findall(r"href='([^']*)'", page):
        if href.startswith("#"):
            continue
        if not (run / unquote(href)).exists():
            broken.append(href)
    return broken


# --------------------------------------------------------------------------- statuses (quick)


def test_runner_killed_mid_rerun_is_recovered_when_the_index_is_rebuilt(tmp_path):
    """SIGKILL of the runner: the good result sits in a hidden folder; the next index restores it."""
    run = tmp_path / "run"
    fp = _data(run)
    good = _good_02(run, fp)
    backup = attempts.begin(run, "02_math", attempt="new")  # what the killed runner had done
    assert backup is not None and backup.name.startswith(".")
    (run / "02_math").mkdir()
    (run / "02_math" / "run.json").write_text(json.dumps({"status": "running", "attempt": "new"}))
    (run / "02_math" / "02_math.ipynb").write_text("{half a notebook")
    marker = attempts.marker_path(run, "02_math")
    doc = json.loads(marker.read_text())
    marker.write_text(json.dumps({**doc, "pid": _dead_pid()}))

    report.write_index(run)  # rebuilding the index finds and finishes the leftover attempt

    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []
    for k, v in good.items():
        assert (run / "02_math" / k).read_text() == v
    rec = json.loads((run / "02_math" / "run.json").read_text())
    assert rec["status"] == "ok" and rec["last_failure"]["status"] == "interrupted"
    assert attempts.state_of(run, "02_math")["status"] == "interrupted"
    page = (run / "index.html").read_text()
    assert "interrupted" in page and not _hrefs_exist(run)
    assert "good claim" in page  # the kept findings are shown, marked
    assert "title='02_math'>02</a><br><b class='no' style='font-size:11px'>interrupted</b>" in page


def test_a_finished_attempt_whose_cleanup_was_lost_keeps_the_new_result(tmp_path):
    run = tmp_path / "run"
    fp = _data(run)
    _good_02(run, fp)
    attempts.begin(run, "02_math", attempt="new")
    (run / "02_math").mkdir()
    (run / "02_math" / "run.json").write_text(
        json.dumps(
            {
                "status": "ok",
                "attempt": "new",
                "data_dir": "01_data_prep/data",
                "data_fingerprint": fp,
                "notebook": "02_math",
            }
        )  # fmt: skip
    )
    marker = attempts.marker_path(run, "02_math")
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "pid": _dead_pid()}))
    assert attempts.recover(run) == ["02_math"]
    assert json.loads((run / "02_math" / "run.json").read_text())["attempt"] == "new"
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
    assert attempts.state_of(run, "02_math")["status"] == "ok"


def test_a_live_runners_attempt_is_left_alone(tmp_path):
    run = tmp_path / "run"
    _good_02(run, _data(run))
    attempts.begin(run, "02_math", attempt="x")  # our own pid: alive
    assert attempts.recover(run) == []
    assert (run / ".02_math.good").is_dir()
    assert attempts.state_of(run, "02_math")["status"] == "running"


def test_every_catalog_notebook_has_a_status(tmp_path):
    run = tmp_path / "run"
    _good_02(run, _data(run))
    states = attempts.notebook_states(run)
    assert list(states)[: len(NOTEBOOKS)] == list(NOTEBOOKS)
    assert {s["status"] for s in states.values()} <= {*attempts.STATUSES, "running"}
    assert states["02_math"]["status"] == "ok" and states["03_commonsense"]["status"] == "not run"
    (run / "03_commonsense").mkdir()
    (run / "03_commonsense" / "run.json").write_text('{"status": "running"}')  # no marker
    assert attempts.state_of(run, "03_commonsense")["status"] == "interrupted"


# --------------------------------------------------------------------------- staleness (quick)


def test_results_on_older_data_are_stale_until_rerun(tmp_path):
    run = tmp_path / "run"
    fp = _data(run, "a")
    _good_02(run, fp)
    assert attempts.notebook_states(run)["02_math"]["status"] == "ok"
    assert _data(run, "a") == fp  # the same data again: same fingerprint (time not hashed)
    _data(run, "b")  # 01 re-run on other data
    st = attempts.notebook_states(run)["02_math"]
    assert st["status"] == "stale" and "other data" in st["detail"]
    page = report.write_index(run).read_text()
    assert "<td class='no'>stale</td>" in page  # the status table
    # every finding row of the stale notebook says so beside its notebook link
    assert "title='02_math'>02</a><br><b class='no' style='font-size:11px'>stale</b>" in page
    shutil.rmtree(runner.data_dir_of(run))
    assert "gone" in attempts.notebook_states(run)["02_math"]["detail"]


def test_data_fingerprint_sees_the_files_not_only_the_index(tmp_path):
    from lgkit.data import build_profile

    d = tmp_path / "d"
    build_profile("smoke", d, n_per_variant=2, seed=0)
    before = attempts.data_fingerprint(d / "data")
    f = next((d / "data").glob("*.jsonl"))
    f.write_text(f.read_text().replace("a", "b", 1))
    assert attempts.data_fingerprint(d / "data") != before


# --------------------------------------------------------------------------- parameters and help (quick)


def test_param_for_an_unknown_notebook_blames_the_param(capsys):
    with pytest.raises(InputError) as e:
        runner._parse_set(["09:x=1"])
    assert e.value.field == "--param" and "'09:x=1'" in str(e.value) and "'09'" in str(e.value)
    rc = cli.main(["run", "--profile", "smoke", "--param", "09:x=1", "--out", "/nonexistent/x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--param" in err[0] and "--only" not in err[0]


@pytest.mark.parametrize(
    "setting", ["02:n_per_variant=-3", "03:seed=-1", "04:margin=0", "02:instruct=maybe"]
)
def test_out_of_range_parameters_are_refused_up_front(setting, tmp_path, capsys):
    out = tmp_path / "run"
    nb = setting.partition(":")[0]
    rc = cli.main(["run", "--profile", "smoke", "--only", f"01,{nb}", "--out", str(out),
                   "--param", setting, "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    key, _, value = setting.partition(":")[2].partition("=")
    assert rc == 2 and len(err) == 1, err
    assert key in err[0] and value in err[0] and "--param" in err[0]
    assert not out.exists(), "nothing runs before every parameter is valid"


def test_range_table():
    from lgkit.series.guard import check_ranges

    check_ranges("01_data_prep", {"n_per_variant": -1}, "x")  # 01: 0 or less means all
    for key, bad in (("max_length", 0), ("bootstrap", -1), ("alike_margin", -0.1),
                     ("n_boot", -5), ("seed", 2**32), ("n_per_variant", float("nan"))):  # fmt: skip
        with pytest.raises(InputError, match=key):
            check_ranges("02_math", {key: bad}, "x")


def test_run_help_lists_the_catalog(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in NOTEBOOKS:
        assert name in text
    assert "01-05" not in text and "01–05" not in text


# --------------------------------------------------------------------------- escaping (quick)


def test_record_text_is_shown_as_text(monkeypatch):
    from lgkit.series import showtext

    shown: list[str] = []
    monkeypatch.setattr(showtext, "_display", shown.append)

    class F:  # a data file whose record carries every payload
        family, dataset, cot, correct, synthetic = "math", "ds<script>", "none", True, False

        def read(self, limit=None):
            from lgkit.formats.records import Example

            return [Example(instruction=HOSTILE, input="", output=HOSTILE, id="s")]

    monkeypatch.setattr("lgkit.data.select", lambda files, **kw: list(files))
    blocks = showtext.show_examples([F()], ["math"])
    assert blocks == shown and len(blocks) == 2
    text = "".join(blocks)
    assert "<script" not in text and "<img" not in text and "<a " not in text
    assert not _live_markup(text)
    assert "&lt;script&gt;" in text and "onerror" in text  # shown, as text
    assert showtext.note_html("<b>") == "<p><b>&lt;b&gt;</b></p>"


def test_findings_table_in_notebooks_is_escaped():
    from lgkit.analysis import Finding
    from lgkit.series.outputs import findings_view

    view = findings_view([Finding(HOSTILE, "ratio", 1.0, 0.9, 1.1, 0.5)])
    html = view.style.format(escape="html").to_html()
    assert "<script" not in html and "&lt;script&gt;" in html


def test_index_escapes_every_string_from_disk(tmp_path):
    """Folder and file names, errors, findings, metrics: all text in index.html."""
    run = tmp_path / "run"
    _data(run)
    odd = run / "javascript:window.__pwned=1"  # a folder name is data too
    (odd / "tables").mkdir(parents=True)
    (odd / "tables" / "<img src=x onerror=window.__pwned=2>.csv").write_text("a\n")
    (odd / "run.json").write_text(json.dumps({"status": "failed", "error": HOSTILE}))
    (odd / "metrics.json").write_text(
        json.dumps(
            {
                "findings": [
                    {
                        "claim": HOSTILE,
                        "statistic": HOSTILE,
                        "verdict": HOSTILE,
                        "detail": HOSTILE,
                        "caveats": HOSTILE,
                    }
                ],
                "models": [HOSTILE],
                "datasets": [HOSTILE],
            }
        )  # fmt: skip
    )
    (run / "run.json").write_text(
        json.dumps(
            {
                "profile": HOSTILE,
                "git_hash": HOSTILE,
                "status": HOSTILE,
                "failed": {"notebook": HOSTILE, "reason": HOSTILE, "path": HOSTILE},
            }
        )  # fmt: skip
    )
    page = report.write_index(run).read_text()
    assert "<script>window" not in page and "<img src=x" not in page and "<img src=y" not in page
    assert not _live_markup(page)
    assert not re.search(r"href=['\"]\s*javascript:", page, re.I)
    assert "./javascript%3Awindow.__pwned%3D1/run.json" in page
    assert not _hrefs_exist(run)


@pytest.mark.slow  # draws a figure
def test_widget_text_is_escaped():
    from lgkit.analysis import synthetic_stats
    from lgkit.formats.records import Example
    from lgkit.viz.widgets import ExampleDrilldown

    df = synthetic_stats(n_samples=1, n_layers=2)
    sid = str(df["sample_id"].iloc[0])
    dd = ExampleDrilldown(df, [Example(instruction=HOSTILE, input=HOSTILE, output=HOSTILE,
                                       id=sid)])  # fmt: skip
    assert "<script" not in dd.text.value and "<img" not in dd.text.value
    assert "&lt;script&gt;" in dd.text.value


def test_how_an_execution_ended_is_named():
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    from lgkit.series.execute import SeriesInterrupted, outcome

    def cell_error(ename, evalue):
        return pm.PapermillExecutionError(1, 2, "src", ename, evalue, [])

    assert outcome(cell_error("ValueError", "boom"))[:2] == ("failed", "ValueError: boom (cell 2)")
    assert outcome(cell_error("KeyboardInterrupt", ""))[0] == "interrupted"  # SIGINT to the kernel
    assert outcome(cell_error("OSError", "[Errno 28] No space left on device"))[2] is True
    assert outcome(DeadKernelError("Kernel died"))[0] == "interrupted"
    assert outcome(SeriesInterrupted(signal.SIGTERM))[:2] == (
        "interrupted",
        "interrupted (SIGTERM)",
    )
    assert outcome(RuntimeError("x"))[0::2] == ("failed", False)


# --------------------------------------------------------------------------- atomic saves (quick)


def test_a_full_disk_never_truncates_a_saved_notebook(tmp_path, monkeypatch):
    """papermill's save under atomic_saves: ENOSPC half-way leaves the previous save intact."""
    from papermill.iorw import papermill_io

    from lgkit import fsio
    from lgkit.series.execute import atomic_saves, outcome

    nb = tmp_path / "02_math" / "02_math.ipynb"
    nb.parent.mkdir()
    with atomic_saves(nb.parent):
        papermill_io.write('{"saved": 1}', str(nb))

    real_open = open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, s):
            self.fh.write(s[: len(s) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, k):
            return getattr(self.fh, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

    monkeypatch.setattr(fsio, "open", lambda *a, **k: Full(real_open(*a, **k)), raising=False)
    with atomic_saves(nb.parent), pytest.raises(OSError) as e:
        papermill_io.write('{"saved": 2, "long": "' + "x" * 1000 + '"}', str(nb))
    assert json.loads(nb.read_text()) == {"saved": 1}
    assert [p.name for p in nb.parent.iterdir()] == ["02_math.ipynb"]  # no temporary left
    assert outcome(e.value)[0::2] == ("failed", True)


# --------------------------------------------------------------------------- stand-in series (slow)


def _nb(params_src: str, body: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell(params_src), new_code_cell(body)])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


FAKE = {
    "01_data_prep": _nb(
        'out_dir: str = ""\nn: int = 2',
        "from pathlib import Path\nfrom lgkit.data.index import write_data_index\n"
        "write_data_index(Path(out_dir) / 'data', [], profile=f'fake{n}')\n"
        "from lgkit.series import write_metrics\nwrite_metrics(out_dir, [], {'n_files': 0})",
    ),
    "02_math": _nb(
        'data_dir: str = ""\nout_dir: str = ""\ncache_dir: str = ""\nfail: bool = False\n'
        "wait: bool = False\nfill: bool = False",
        "import os, time\nfrom lgkit.series import write_metrics\n"
        "if fill:  # fill the disk to the brim; the next save of this notebook finds it full\n"
        "    try:\n        with open(os.path.join(out_dir, 'filler'), 'wb') as fh:\n"
        "            while True:\n                fh.write(b'x' * 65536)\n"
        "    except OSError:\n        pass\n    print('y' * 200000)\n"
        "if wait:\n    open(os.path.join(out_dir, 'started'), 'w').write(str(os.getpid()))\n"
        "    time.sleep(300)\n"
        "if fail:\n    raise ValueError('boom on purpose')\n"
        "os.makedirs(os.path.join(out_dir, 'figures'), exist_ok=True)\n"
        "open(os.path.join(out_dir, 'figures', 'curve.png'), 'w').write('png')\n"
        "write_metrics(out_dir, [], {'n_examples': 3})",
    ),
    "03_commonsense": _nb(
        'data_dir: str = ""\nout_dir: str = ""\ncache_dir: str = ""',
        "from lgkit.series import write_metrics\nwrite_metrics(out_dir, [], {'n_examples': 1})",
    ),
}


@pytest.fixture(scope="module")
def series_root(tmp_path_factory):
    """A project of stand-in notebooks 01-03 and a run whose 01 and 02 are good."""
    root = tmp_path_factory.mktemp("proj")
    (root / "notebooks").mkdir()
    (root / "params").mkdir()
    for name, nb in FAKE.items():
        nbformat.write(nb, str(root / "notebooks" / f"{name}.ipynb"))
        (root / "params" / f"{name}.smoke.yaml").write_text("")
    template = root / "template"
    runner.run_series("smoke", only="01,02", out=template, root=root, progress=False,
                      html_report=False)  # fmt: skip
    return root


@pytest.fixture
def good_run(series_root, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(series_root / "template", run)
    monkeypatch.setenv("LGKIT_REPO_ROOT", str(series_root))
    good = {p.relative_to(run / "02_math").as_posix(): p.read_bytes()
            for p in (run / "02_math").rglob("*") if p.is_file() and p.name != "run.json"}  # fmt: skip
    return run, good


def _start(run: Path, root: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lgkit.cli", "run", "--profile", "smoke", "--out", str(run),
           "--no-progress", "--no-html", *args]  # fmt: skip
    env = {**os.environ, "LGKIT_REPO_ROOT": str(root), "PYTHONPATH": str(REPO)}
    p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    flag = run / "02_math" / "started"
    deadline = time.time() + 240
    while not flag.is_file() or not flag.read_text():
        assert p.poll() is None and time.time() < deadline, p.stderr.read() if p.stderr else ""
        time.sleep(0.2)
    return p


def _assert_good_kept(run: Path, good: dict[str, bytes], last: str) -> dict:
    for k, v in good.items():
        assert (run / "02_math" / k).read_bytes() == v, k
    rec = json.loads((run / "02_math" / "run.json").read_text())
    assert rec["status"] == "ok" and rec["last_failure"]["status"] == last
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # nothing hidden left
    assert not _hrefs_exist(run)
    return rec


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopping_the_runner_during_a_rerun_keeps_the_good_result(good_run, series_root, sig):
    run, good = good_run
    p = _start(run, series_root, "--only", "02,03", "--param", "02:wait=true")
    kernel = int((run / "02_math" / "started").read_text())
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, err
    assert err.strip().splitlines()[-1].startswith("lgkit: interrupted")
    assert not attempts._pid_alive(kernel), "the kernel is stopped before the result goes back"
    _assert_good_kept(run, good, "interrupted")
    series = json.loads((run / "run.json").read_text())
    assert series["status"] == "interrupted"
    assert series["attempted"] == {"02_math": "interrupted", "03_commonsense": "not run"}
    assert series["results"]["02_math"]["status"] == "interrupted"
    assert series["results"]["03_commonsense"]["status"] == "not run"
    page = (run / "index.html").read_text()
    assert "<td class='no'>not run</td>" in page and "<td class='no'>interrupted</td>" in page
    if sig == signal.SIGTERM:  # a later failure: the good result is still there
        with pytest.raises(runner.NotebookFailed):
            runner.run_series("smoke", only="02", out=run, root=series_root, progress=False,
                              html_report=False, overrides={"02_math": {"fail": "true"}})  # fmt: skip
        _assert_good_kept(run, good, "failed")
        assert attempts.state_of(run, "02_math")["status"] == "failed"


@pytest.mark.slow
def test_sigkill_of_the_runner_is_repaired_by_the_next_index(good_run, series_root):
    run, good = good_run
    p = _start(run, series_root, "--only", "02", "--param", "02:wait=true")
    kernel = int((run / "02_math" / "started").read_text())
    p.kill()
    p.communicate(timeout=60)
    assert (run / ".02_math.good").is_dir()  # what a killed runner leaves: no handler ran
    report.write_index(run)
    assert not attempts._pid_alive(kernel), "the orphaned kernel is stopped"
    _assert_good_kept(run, good, "interrupted")
    assert attempts.notebook_states(run)["02_math"]["status"] == "interrupted"


@pytest.mark.slow
def test_sigkill_of_the_kernel_marks_the_attempt_interrupted(good_run, series_root):
    run, good = good_run
    p = _start(run, series_root, "--only", "02,03", "--param", "02:wait=true")
    os.kill(int((run / "02_math" / "started").read_text()), signal.SIGKILL)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "interrupted" in err and "kernel died" in err, err
    _assert_good_kept(run, good, "interrupted")
    series = json.loads((run / "run.json").read_text())
    assert series["attempted"] == {"02_math": "interrupted", "03_commonsense": "not run"}


@pytest.mark.slow
def test_rerunning_01_on_other_data_marks_later_results_stale(good_run, series_root):
    run, _ = good_run
    assert attempts.notebook_states(run)["02_math"]["status"] == "ok"
    runner.run_series("smoke", only="01", out=run, root=series_root, progress=False,
                      html_report=False, overrides={"01_data_prep": {"n": "3"}})  # fmt: skip
    series = json.loads((run / "run.json").read_text())
    assert series["results"]["02_math"]["status"] == "stale"
    assert "<td class='no'>stale</td>" in (run / "index.html").read_text()
    runner.run_series("smoke", only="02", out=run, root=series_root, progress=False,
                      html_report=False)  # fmt: skip
    assert json.loads((run / "run.json").read_text())["results"]["02_math"]["status"] == "ok"


@pytest.mark.slow
def test_disk_full_while_saving_the_notebook(good_run, series_root, monkeypatch, capsys):
    """ENOSPC on a save of 02's notebook after a cell ran: one line, exit 2, no truncated .ipynb."""
    import builtins

    run, good = good_run
    real_open = builtins.open
    saves = []

    def full_open(file, mode="r", *a, **k):
        fh = real_open(file, mode, *a, **k)
        if "w" not in mode or "02_math.ipynb" not in os.path.basename(str(file)):
            return fh
        write = fh.write

        def half(s):
            if '"execution_count": 1' not in s:  # the disk fills once a cell has run
                return write(s)
            saves.append(file)
            write(s[: len(s) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(file))

        fh.write = half
        return fh

    monkeypatch.setattr(builtins, "open", full_open)
    rc = cli.main(["run", "--profile", "smoke", "--only", "02", "--out", str(run),
                   "--no-progress", "--no-html"])  # fmt: skip
    monkeypatch.undo()
    assert saves, "the fault was injected"
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("lgkit: error:") and "no space left" in err[-1], err
    for nb in run.rglob("*.ipynb"):
        nbformat.read(str(nb), as_version=4)  # every notebook left is whole
    _assert_good_kept(run, good, "failed")


# --------------------------------------------------------------------------- hostile text in a browser (slow)

RELEASE = Path(
    os.environ.get("LGKIT_DATA_DIR") or REPO.parent / "shared" / "data" / "layer_gradient"
)


def _hostile_release(dst: Path) -> None:
    """A copy of the default profile's released files with every payload in every record."""
    if not (RELEASE / "cot_500").is_dir():
        pytest.skip(f"released files not found in {RELEASE} (set LGKIT_DATA_DIR)")
    for f in RELEASE.rglob("*.json"):
        rel = f.relative_to(RELEASE)
        if "1000" in f.name or not any(k in f.name for k in ("gsm8k", "strategyqa", "wikipedia")):
            continue
        recs = json.loads(f.read_text(encoding="utf-8"))
        for r in recs:
            r["instruction"] = f"{HOSTILE} {r['instruction']}"
            r["output"] = f"{HOSTILE}\n{r['output']}"
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_text(json.dumps(recs), encoding="utf-8")


def _chromium():
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not chromium.is_file():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium and playwright are needed in CI (bash scripts/setup.sh)")
        pytest.skip("needs /usr/bin/chromium and playwright")
    return sync_playwright, chromium


def _ran_script(page, path: Path) -> dict:
    """Open ``path`` and report whether anything injected ran or is one click away."""
    page.goto(path.as_uri(), wait_until="domcontentloaded")
    page.wait_for_timeout(1500)  # broken images fire onerror by now
    return page.evaluate(
        "() => ({pwned: window.__pwned ?? null, title: document.title, text: document.body.innerText,"
        " js_links: Array.from(document.querySelectorAll('a[href]'))"
        ".filter(a => a.protocol === 'javascript:').length})"
    )


@pytest.mark.slow
def test_hostile_records_stay_text_in_every_page(tmp_path, monkeypatch):
    """Real notebook 01 on released files whose every record carries script payloads."""
    sync_playwright, chromium = _chromium()
    rel = tmp_path / "release <img src=x onerror=window.__pwned=9>"  # a path is data too
    _hostile_release(rel)
    monkeypatch.setenv("LGKIT_OFFLINE", "1")
    run = tmp_path / "run"
    runner.run_series("smoke", only="01", out=run, root=REPO, progress=False,
                      overrides={"01_data_prep": {"profile": "default", "data_dir": str(rel),
                                                  "n_per_variant": "2", "check_released": "false",
                                                  "tokenizer": "tiny-random-llama"}})  # fmt: skip
    odd = run / "javascript:window.__pwned=6"  # and the index's own strings
    odd.mkdir()
    (odd / "run.json").write_text(json.dumps({"status": "failed", "error": HOSTILE}))
    (odd / "metrics.json").write_text(
        json.dumps({"findings": [{"claim": HOSTILE}], "models": [HOSTILE]})
    )
    report.write_index(run)
    page01 = run / "01_data_prep" / "01_data_prep.html"
    raw = page01.read_text(encoding="utf-8")
    assert "&lt;script&gt;window.__pwned = 1" in raw  # the records are there, as text
    assert not _live_markup(raw) and not _live_markup((run / "index.html").read_text())
    live = tmp_path / "live.html"  # the check itself can fail
    live.write_text('<title>t</title><img src=x onerror="window.__pwned = 2">')
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        page = b.new_page()
        assert _ran_script(page, live)["pwned"] == 2
        for path in (page01, run / "index.html"):
            seen = _ran_script(page, path)
            assert seen["pwned"] is None and seen["title"] != "pwned", path
            assert seen["js_links"] == 0, path
            assert "window.__pwned" in seen["text"], path  # shown, not run
        b.close()


@pytest.mark.slow
def test_a_really_full_disk(good_run, series_root, tmp_path, capsys):
    """The run on a 4 MiB tmpfs that 02 fills: one line, exit 2, whole notebooks (root only)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                                 capture_output=True).returncode == 0  # fmt: skip
    except OSError:
        mounted = False
    if not mounted:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        run, good = good_run
        small = mnt / "run"
        shutil.copytree(run, small)
        rc = cli.main(["run", "--profile", "smoke", "--only", "02", "--out", str(small),
                       "--param", "02:fill=true", "--no-progress", "--no-html"])  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and "no space left" in err[-1], err
        for nb in small.rglob("*.ipynb"):
            nbformat.read(str(nb), as_version=4)
        _assert_good_kept(small, good, "failed")
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_stop_signal_swallowed_where_it_lands_is_raised_again(monkeypatch):
    """An exception raised from a signal handler can be swallowed where it lands (a
    ``__del__``, a callback that logs and goes on); the runner's stop is raised again
    until the runner acknowledges it, else it would wait for its kernel for ever."""
    from lgkit.series import execute

    monkeypatch.setattr(execute, "REPEAT_S", 0.2)
    swallowed: list[BaseException] = []
    with pytest.raises(execute.SeriesInterrupted) as info:
        with execute.signals_interrupt():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    if not swallowed:
                        os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.05)
                except KeyboardInterrupt as e:
                    if swallowed:
                        raise
                    swallowed.append(e)  # the first one lost
    assert swallowed and info.value.signum == signal.SIGINT


def test_an_acknowledged_stop_is_not_raised_again(monkeypatch):
    from lgkit.series import execute

    monkeypatch.setattr(execute, "REPEAT_S", 0.2)
    with execute.signals_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except execute.SeriesInterrupted:
            execute.acknowledge()  # what the runner does when it catches it
        time.sleep(1.0)  # five repeat periods: nothing more arrives
