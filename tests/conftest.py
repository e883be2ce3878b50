"""Shared fixtures: the released data folder, small example sets, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "layer_gradient"


def pytest_configure(config: pytest.Config) -> None:
    # tests and CI read the authors' released files from ../shared through LGKIT_DATA_DIR
    if SHARED_DATA.is_dir():
        os.environ.setdefault("LGKIT_DATA_DIR", str(SHARED_DATA))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The authors' released example files (../shared/data/layer_gradient)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"released data not found at {SHARED_DATA} (CI clones ../shared beside the repo)"
        )
    return SHARED_DATA


@pytest.fixture
def mixed_examples():
    """Examples of mixed prompt/response lengths, one with an input field."""
    from lgkit.formats.records import Example

    return [
        Example("What is 2+3?", "", "5", dataset="toy", cot="none", correct=True),
        Example(
            "What is 2+3? Think step by step.",
            "",
            "2 plus 3 makes 5.\nThe final answer is 5",
            dataset="toy",
            cot="simplified",
            correct=True,
        ),
        Example(
            "Add the numbers.",
            "7 and 8",
            "First take 7. Then add 8 to it: 7 + 8 = 15. " * 3,
            dataset="toy",
            cot="detailed",
            correct=True,
        ),
        Example("Is the sky green?", "", "no", dataset="toy", cot="none", correct=False),
        Example(
            "Name a prime.",
            "",
            "Seven is prime because its only divisors are 1 and 7.",
            dataset="toy",
            cot="simplified",
            correct=True,
        ),
    ]


# --------------------------------------------------------------------------- notebooks' project root

PLANTED = {
    "model": "planted-run-model",
    "data_dir": "/nonexistent/planted-run/data",
    "cache_dir": "/nonexistent/planted-run/stats_cache",
    "n_per_variant": 99,
    "max_length": 7,
}
"""Settings of the runs planted in :func:`notebook_root`'s ``outputs/``: a notebook that read
one fails at once (no such model or data), so a test passing by accident is impossible."""


def plant_run(run_dir: Path, notebook: str, status: str = "ok", **params: object) -> Path:
    """A finished (``status="ok"``) or unfinished (``"running"``: its attempt marker is left
    behind) run of ``notebook`` in ``run_dir``, with :data:`PLANTED` settings."""
    import json

    import yaml

    nb = run_dir / notebook
    nb.mkdir(parents=True, exist_ok=True)
    values = {**PLANTED, "out_dir": str(nb), **params}
    (nb / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    (nb / "run.json").write_text(json.dumps({"notebook": notebook, "status": status}))
    if status == "ok":
        (nb / "metrics.json").write_text("{}")
    else:
        (run_dir / f".{notebook}.attempt.json").write_text(json.dumps({"pid": 2**22 + 1}))
    return nb


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="session")
def _planted_root(tmp_path_factory) -> Path:
    import shutil

    root = tmp_path_factory.mktemp("project")
    shutil.copy(REPO / "pyproject.toml", root)
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("local"))
    shutil.copytree(REPO / "params", root / "params")
    from lgkit.series.catalog import NOTEBOOKS

    for nb in NOTEBOOKS:
        plant_run(root / "outputs" / "planted", nb)
    for nb in NOTEBOOKS:  # newer, half-finished (its runner was killed)
        plant_run(root / "outputs" / "half", nb, status="running", model="half-finished-run-model")
    return root


@pytest.fixture
def notebook_root(_planted_root: Path):
    """The project root the tests' notebooks run in (their ``cwd``), never the user's clone:
    a copy of ``pyproject.toml``, ``notebooks/`` and ``params/`` whose ``outputs/`` holds a
    finished run and a newer half-finished one of every notebook, as after the main job and
    an interrupted one. A notebook must not read them (it would fail: :data:`PLANTED`) nor
    write there (checked after the test)."""
    before = _tree(_planted_root / "outputs")
    yield _planted_root
    assert _tree(_planted_root / "outputs") == before, (
        "a notebook wrote into the project's outputs/"
    )
