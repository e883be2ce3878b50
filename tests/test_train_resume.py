"""``lgkit train`` killed with kill -9 resumes from its last checkpoint: no lost or doubled rows.

And under ``torchrun`` (2 CPU processes, gloo) the probe is sharded into one table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lgkit.formats.records import Example, write_examples
from lgkit.train import (
    heldout_summary,
    load_instep,
    load_train_loss,
    load_trajectory,
    load_updates,
)

STEPS = 24


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    exs = [
        Example(
            f"Add {i} and {i + 1}.",
            "",
            f"{i} + {i + 1} = {2 * i + 1}. The final answer is {2 * i + 1}",
            id=f"q{i}",
        )  # fmt: skip
        for i in range(24)
    ]
    return write_examples(d / "train.jsonl", exs[:20]), write_examples(d / "held.jsonl", exs[20:])


def _cmd(data, out: Path, *extra: str) -> list[str]:
    train, held = data
    return [sys.executable, "-m", "lgkit", "train", "--model", "tiny-random-llama",
            "--data", str(train), "--heldout", str(held), "--out", str(out),
            "--steps", str(STEPS), "--probe-every", "3", "--batch-size", "2",
            "--probe-limit", "4", "--lr", "1e-3", "--no-progress", "--instep-every", "5",
            *extra]  # fmt: skip


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    traj = load_trajectory(out)
    num = [c for c in traj.columns if pd.api.types.is_float_dtype(traj[c])]
    return {
        "probe": traj.sort_values(["step", "sample_id", "layer", "module"])[["step", "sample_id", "layer", "module", *num]].reset_index(drop=True),
        "updates": load_updates(out).sort_values(["step", "kind", "layer", "module"]).reset_index(drop=True),
        "heldout": heldout_summary(out),
        "loss": load_train_loss(out)[["step", "loss"]],
        "instep": load_instep(out).drop(columns=["spectrum"], errors="ignore"),
    }  # fmt: skip


def _no_duplicates(t: dict[str, pd.DataFrame]) -> None:
    assert not t["probe"].duplicated(["step", "sample_id", "layer", "module"]).any()
    assert not t["updates"].duplicated(["step", "kind", "layer", "module"]).any()
    assert t["loss"]["step"].tolist() == list(range(1, STEPS + 1))
    assert t["heldout"]["step"].tolist() == list(range(0, STEPS + 1, 3))
    assert not t["instep"].duplicated(["step", "sample_id", "layer", "module"]).any()
    assert sorted(t["instep"]["step"].unique()) == [1, *range(5, STEPS + 1, 5)]
    assert (t["instep"].groupby("step")["sample_id"].nunique() == 2).all()


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(data, tmp_path):
    ref_out = tmp_path / "ref"
    r = subprocess.run(_cmd(data, ref_out), capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ref = _tables(ref_out)
    _no_duplicates(ref)

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(data, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(), start_new_session=True)  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (out / "checkpoints" / "checkpoint-9").exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(load_train_loss(out)) < STEPS
    r = subprocess.run(_cmd(data, out), capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stderr
    got = _tables(out)
    _no_duplicates(got)
    for k in ref:
        pd.testing.assert_frame_equal(got[k], ref[k], rtol=1e-6, atol=1e-9, check_dtype=False)
    _equal_compute_stats(got["instep"][got["instep"]["step"] == 1], data, tmp_path / "ref1")


@pytest.mark.slow
def test_other_settings_in_the_same_out_are_refused(data, tmp_path):
    out = tmp_path / "o"
    r = subprocess.run(_cmd(data, out, "--steps", "2"), capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(_cmd(data, out, "--steps", "2", "--optim", "sgd"), capture_output=True,
                       text=True, env=_env())  # fmt: skip
    assert r.returncode == 2 and "other settings" in r.stderr


@pytest.mark.slow
def test_two_rank_gloo_writes_one_probe_table(data, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    single, two = tmp_path / "single", tmp_path / "two"
    args = ["--steps", "4", "--probe-every", "2", "--batch-size", "1"]
    r = subprocess.run(_cmd(data, single, *args), capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr[-3000:]
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", *_cmd(data, two, *args)[1:]]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    parts = sorted(p.name for p in (two / "probe" / "step-000000" / "parts").glob("*.parquet"))
    assert any("-r000-" in p for p in parts) and any("-r001-" in p for p in parts)
    a, b = _tables(single), _tables(two)
    assert sorted(b["probe"]["step"].unique()) == [0, 2, 4]
    assert b["probe"].groupby("step")["sample_id"].nunique().tolist() == [4, 4, 4]
    assert not b["probe"].duplicated(["step", "sample_id", "layer", "module"]).any()
    step0 = [x["probe"][x["probe"]["step"] == 0].reset_index(drop=True) for x in (a, b)]
    pd.testing.assert_frame_equal(step0[1], step0[0], rtol=1e-5, atol=1e-9)
    assert sorted(b["updates"]["step"].unique()) == [0, 2, 4]
    assert not b["updates"].duplicated(["step", "kind", "layer", "module"]).any()
    # in-step: each rank measured its own example of step 1 into the one table, and the rows
    # equal compute_stats on the initial weights (the DDP world size undone)
    inparts = sorted(p.name for p in (two / "instep" / "step-000001" / "parts").glob("*.parquet"))
    assert [p[5:9] for p in inparts] == ["r000", "r001"], inparts
    first = b["instep"][b["instep"]["step"] == 1]
    assert first["sample_id"].nunique() == 2
    _equal_compute_stats(first, data, tmp_path / "ref1")


def _equal_compute_stats(rows: pd.DataFrame, data, out: Path) -> None:
    from lgkit.engine.config import GradConfig
    from lgkit.engine.run import compute_stats
    from lgkit.formats.records import read_examples
    from lgkit.formats.store import load_stats
    from lgkit.models import load_model

    exs = [e for e in read_examples(data[0]) if e.sample_id in set(rows["sample_id"])]
    cfg = GradConfig(modules=("q", "k", "v", "o"), max_length=1024)
    compute_stats(load_model("tiny-random-llama"), exs, out, cfg, progress=False)
    m = rows.merge(load_stats(out), on=["sample_id", "layer", "module"], suffixes=("", "_ref"))
    assert len(m) == len(rows)
    for c in ("nuclear_norm", "sigma_max", "frobenius_norm", "effective_rank", "loss"):
        rel = ((m[c] - m[f"{c}_ref"]).abs() / m[f"{c}_ref"].abs()).max()
        assert rel <= 1e-4, (c, rel)
