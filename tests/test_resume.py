"""A run killed at any moment (kill -9) resumes to the uninterrupted table: no row lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import lgkit
from lgkit.formats.records import Example, write_examples


def _examples(n: int) -> list[Example]:
    return [
        Example(
            f"Question {i}: what is {i} times {i + 1}?",
            "",
            f"{i} times {i + 1} is {i * (i + 1)}. " * (1 + i % 4),
            dataset="toy",
            cot="detailed",
            correct=True,
        )
        for i in range(n)
    ]


def _cmd(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "lgkit", "grads", "--model", "tiny-random-llama", "--data", str(data), "--out", str(out),
            "--flush-every", "1", "--max-length", "128", "--no-progress", "--batch-size", "2"]  # fmt: skip


def _canon(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["example_index", "layer", "module"]).reset_index(drop=True)


@pytest.mark.slow
def test_kill9_and_resume_equals_uninterrupted(tmp_path):
    data = write_examples(tmp_path / "d.jsonl", _examples(48))
    ref_dir = tmp_path / "ref"
    subprocess.run(_cmd(data, ref_dir), check=True, capture_output=True)
    ref = _canon(lgkit.load_stats(ref_dir))

    out = tmp_path / "killed"
    kills = 0
    for _ in range(3):  # kill -9 at three moments: each just after a new part is written
        before = len(list((out / "parts").glob("*.parquet"))) if (out / "parts").exists() else 0
        proc = subprocess.Popen(
            _cmd(data, out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if (out / "parts").exists() and len(list((out / "parts").glob("*.parquet"))) > before:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.01)
        proc.wait()
    assert kills >= 1
    subprocess.run(_cmd(data, out), check=True, capture_output=True)
    got = _canon(lgkit.load_stats(out))
    assert not got.duplicated(["sample_id", "layer", "module"]).any()
    assert len(got) == len(ref)
    assert got["sample_id"].tolist() == ref["sample_id"].tolist()
    num = [c for c in ref.columns if pd.api.types.is_float_dtype(ref[c])]
    pd.testing.assert_frame_equal(got[num], ref[num], rtol=1e-6)
    assert lgkit.load_manifest(out)["status"] == "complete"
    assert not list(out.rglob(".*.tmp"))
