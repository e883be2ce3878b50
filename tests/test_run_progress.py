"""Issue 11 item 3: a batch run that talks, and loads each model once per notebook."""

from __future__ import annotations

import logging

import pytest

import lgkit.models.load as load_mod
from lgkit.errors import InputError
from lgkit.series import steps
from lgkit.series.progress import Reporter, Watcher, describe, status_printer


def test_reporter_and_watcher_give_counts_and_eta(tmp_path):
    path = tmp_path / "p.jsonl"
    w = Watcher(path)
    assert w.poll() is None  # no file yet
    r = Reporter("m", total=10, path=path)
    r.file("gsm8k__none__correct")
    r.skip(4)  # cached: counts as done, says nothing about speed
    assert w.poll() == "m | gsm8k__none__correct | 4/10 examples"
    r.step(2, 4.0)
    line = w.poll()
    assert line == "m | gsm8k__none__correct | 6/10 examples | 2.00 s/example | ETA 8 s"
    with path.open("a") as fh:
        fh.write('{"model": "m", "do')  # a half-written line is left for the next poll
    assert w.poll() == line


def test_reporter_keeps_one_bar_with_eta_from_computed_examples():
    import io

    from tqdm import tqdm

    buf = io.StringIO()
    bar = tqdm(total=10, file=buf, bar_format="{n_fmt}/{total_fmt} examples{postfix}")
    r = Reporter("m", total=10, path="", bar=bar)
    r.file("a")
    r.skip(4)  # cached: no pace, no ETA yet
    assert (bar.n, bar.postfix) == (4, "a")
    r.step(2, 4.0)
    assert (bar.n, bar.postfix) == (6, "2.00 s/example, ETA 8 s, a")  # 4 left at 2 s each
    bar.close()
    assert buf.getvalue().replace("\r", "\n").splitlines()[-1].startswith("6/10 examples, 2.00")


def test_log_lines_when_not_a_terminal(caplog):
    show = status_printer(bar=None, tty=False)
    ev = {"model": "m", "file": "a", "done": 1, "total": 4, "computed": 1, "seconds": 2.0}
    with caplog.at_level(logging.INFO, logger="lgkit.series.runner"):
        show("02_math", describe(ev))
        show("02_math", describe({**ev, "done": 2, "computed": 2}))  # same file, < 30 s: quiet
        show("02_math", describe({**ev, "file": "b", "done": 3, "computed": 3}))
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == [
        "02_math: m | a | 1/4 examples | 2.00 s/example | ETA 6 s",
        "02_math: m | b | 3/4 examples | 0.67 s/example | ETA 1 s",
    ]
    assert all("\r" not in m for m in msgs)


def test_family_stats_loads_the_model_once(tmp_path, monkeypatch):
    from lgkit.data.profile import build_profile

    build_profile("smoke", tmp_path, n_per_variant=2, seed=0)
    calls = []
    real = load_mod.load_model

    def counting(name, **kw):
        calls.append(name)
        return real(name, **kw)

    monkeypatch.setattr(load_mod, "load_model", counting)
    monkeypatch.setattr(steps, "_LOADED", {})
    monkeypatch.setenv("LGKIT_PROGRESS_FILE", str(tmp_path / "progress.jsonl"))
    cfg = steps.grad_config(512, "q,o", n_per_variant=2)
    cache = tmp_path / "cache"
    df = steps.family_stats(tmp_path / "data", "math", "tiny-random-llama", cfg, cache, progress=False)  # fmt: skip
    assert df["data_file"].nunique() > 1 and calls == ["tiny-random-llama"]
    last = Watcher(tmp_path / "progress.jsonl")
    last.poll()
    assert last.last["done"] == last.last["total"] == df.groupby(["data_file", "sample_id"]).ngroups
    steps.family_stats(tmp_path / "data", "math", "tiny-random-llama", cfg, cache, progress=False)
    assert calls == ["tiny-random-llama"]  # all cached: not loaded again


def test_training_runs_report_progress(tmp_path, monkeypatch):
    """07's arms (training runs, minutes each) give lgkit run a status line too: runs done
    of all, seconds per run and an ETA; a finished run of the same settings is read, not
    trained again, and counts as done without timing."""
    import json

    import lgkit.train as train_mod
    from lgkit.formats.records import Example, write_examples
    from lgkit.series import training
    from lgkit.train.run import _record

    trained = []

    def fake_train(model, data, out, cfg, **kw):  # what train() leaves: run.json, done.json
        trained.append(out.name)
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text(json.dumps(_record(model, str(data), cfg)))
        (out / "done.json").write_text("{}")

    monkeypatch.setattr(train_mod, "train", fake_train)
    monkeypatch.setattr(load_mod, "load_model", lambda name, **kw: name)
    ex = [Example(f"q{i}", "", f"The answer is {i}", id=f"q{i}") for i in range(2)]
    files = {
        k: write_examples(tmp_path / f"{k}.jsonl", ex) for k in ("fast", "slow", "probe", "heldout")
    }
    training.run_arms("m", files, tmp_path / "out", arms=("fast",), optims=("adamw",), steps=2)
    monkeypatch.setenv("LGKIT_PROGRESS_FILE", str(tmp_path / "progress.jsonl"))
    training.run_arms(
        "m", files, tmp_path / "out", arms=("fast", "slow"), optims=("adamw",), steps=2
    )
    assert trained == [training.run_name(a, "adamw", 0) for a in ("fast", "slow")]  # fast: read
    line = Watcher(tmp_path / "progress.jsonl").poll()
    assert line is not None and line.startswith(f"m | {trained[1]} | 2/2 runs | ")
    assert " s/run | ETA 0 s" in line
    # a finished run of other settings is never silently reused
    with pytest.raises(InputError, match="other settings"):
        training.run_arms("m", files, tmp_path / "out", arms=("fast",), optims=("adamw",), steps=3)
