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
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert "02_math</a> <b class='no'>(interrupted)</b>" in page


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
    assert "<td class='no'>stale</td>" in page and "02_math</a> <b class='no'>(stale)</b>" in page
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
    assert not re.search(r"href=['\"]\s*javascript:", page, re.I)
    assert "./javascript%3Awindow.__pwned%3D1/run.json" in page
    assert not _hrefs_exist(run)


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
