"""Sharded runs: 2 CPU processes (torchrun, gloo) give the single-process table, also after a rank is killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

import lgkit
from lgkit.formats.records import Example, write_examples

ARGS = [
    "--model",
    "tiny-random-qwen2",
    "--max-length",
    "160",
    "--flush-every",
    "1",
    "--no-progress",
]


def _torchrun() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    assert exe.exists(), "torchrun ships with torch"
    return [str(exe), "--standalone", "--nproc-per-node", "2", "-m", "lgkit", "grads"]


def _canon(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["example_index", "layer", "module"]).reset_index(drop=True)


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    exs = [
        Example(
            f"Q{i}: add {i} and {2 * i}.",
            "",
            f"{i} + {2 * i} = {3 * i}. " * (1 + i % 5),
            dataset="toy",
            cot="detailed",
            correct=bool(i % 2),
        )
        for i in range(60)
    ]
    data = write_examples(tmp / "d.jsonl", exs)
    single = tmp / "single"
    subprocess.run(
        [sys.executable, "-m", "lgkit", "grads", "--data", str(data), "--out", str(single), *ARGS],
        check=True,
        capture_output=True,
        env=_env(),
    )
    return tmp, data, _canon(lgkit.load_stats(single))


def _assert_same(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert not got.duplicated(["sample_id", "layer", "module"]).any()
    assert got["sample_id"].tolist() == ref["sample_id"].tolist()
    num = [c for c in ref.columns if pd.api.types.is_float_dtype(ref[c])]
    pd.testing.assert_frame_equal(got[num], ref[num], rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_two_rank_gloo_equals_single(setup):
    tmp, data, ref = setup
    out = tmp / "two"
    r = subprocess.run(
        [*_torchrun(), "--data", str(data), "--out", str(out), *ARGS],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    parts = sorted(p.name for p in (out / "parts").glob("*.parquet"))
    assert any("-r000-" in p for p in parts) and any("-r001-" in p for p in parts)
    _assert_same(_canon(lgkit.load_stats(out)), ref)
    man = lgkit.load_manifest(out)
    assert man["world_size"] == 2 and man["status"] == "complete"


@pytest.mark.slow
def test_two_rank_kill_one_rank_and_restart(setup):
    tmp, data, ref = setup
    out = tmp / "killed"
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen(
        [*_torchrun(), "--data", str(data), "--out", str(out), *ARGS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
        start_new_session=True,
    )
    victim = None
    deadline = time.time() + 120
    while time.time() < deadline and victim is None:
        if (out / "parts").exists() and list((out / "parts").glob("part-r001-*.parquet")):
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    if child.environ().get("RANK") == "1":
                        victim = child
                except psutil.Error:
                    continue
        time.sleep(0.02)
    assert victim is not None, "rank 1 never wrote a part"
    victim.send_signal(signal.SIGKILL)
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    partial = lgkit.load_stats(out)
    assert partial["sample_id"].nunique() < len(ref["sample_id"].unique())
    r = subprocess.run(
        [*_torchrun(), "--data", str(data), "--out", str(out), *ARGS],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_same(_canon(lgkit.load_stats(out)), ref)
