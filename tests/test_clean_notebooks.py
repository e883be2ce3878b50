"""Tracked notebooks stay clean: the nbstripout git filter that scripts/setup.sh installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def test_setup_installs_the_filter_and_attributes_name_it():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "nbstripout --install" in setup
    assert "-m nbstripout --keep-id" in setup  # the filter setup.sh configures
    attrs = (REPO / ".gitattributes").read_text()
    assert "*.ipynb filter=nbstripout" in attrs


def test_notebook_with_outputs_is_staged_clean(tmp_path):
    """A run notebook `git add`-ed through the filter is stored without outputs."""
    repo = tmp_path / "clone"
    repo.mkdir()
    _git(repo, "init", "-q")
    shutil.copy(REPO / ".gitattributes", repo / ".gitattributes")
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "nbstripout", "--install"], cwd=repo, env=env, check=True)
    _git(repo, "config", "filter.nbstripout.clean", f'"{sys.executable}" -m nbstripout --keep-id')
    nb = nbformat.read(str(REPO / "notebooks" / "02_math.ipynb"), as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 3
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="a result\n")]
    nbformat.write(nb, str(repo / "nb.ipynb"))
    _git(repo, "add", "nb.ipynb")
    staged = nbformat.reads(_git(repo, "show", ":nb.ipynb"), as_version=4)
    cells = [c for c in staged.cells if c.cell_type == "code"]
    assert cells and all(c.outputs == [] and c.execution_count is None for c in cells)
    # the working copy keeps its outputs: only what is committed is stripped
    assert nbformat.read(str(repo / "nb.ipynb"), as_version=4).cells != staged.cells


def test_committed_notebooks_are_fixed_points_of_the_filter():
    """What setup's filter makes of each tracked notebook is the notebook itself: a fresh clone
    shows no notebook as modified, and git status need not re-filter them."""
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        raw = path.read_bytes()
        out = subprocess.run(
            [sys.executable, "-m", "nbstripout", "--keep-id"],
            input=raw,
            capture_output=True,
            check=True,
        ).stdout
        assert out == raw, (
            f"{path.name} is not as the filter stores it: run nbstripout --keep-id on it"
        )
