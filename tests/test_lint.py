"""The code base passes ruff (configured in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _ruff() -> str:
    """The venv's pinned ruff (beside this Python), else one on PATH."""
    here = Path(sys.executable).with_name("ruff")
    return str(here) if here.exists() else (shutil.which("ruff") or "ruff")


def test_ruff_check():
    ruff = _ruff()
    r = subprocess.run(
        [ruff, "check", "lgkit", "tests", "benchmarks", "notebooks", "scripts"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format():
    ruff = _ruff()
    r = subprocess.run(
        [ruff, "format", "--check", "lgkit", "tests", "benchmarks", "scripts"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
