"""Where a result came from: the checkout's commit.

Used by the engine's manifests and the series' metrics alike, so it sits below both.

Example:
    >>> h = git_hash()
    >>> h is None or len(h.split("+")[0]) == 40
    True
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The project root holding ``lgkit/``, ``notebooks/`` and ``params/`` (``$LGKIT_REPO_ROOT`` wins).

    Example:
        >>> (repo_root() / "lgkit").is_dir()
        True
    """
    env = os.environ.get("LGKIT_REPO_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def git_hash(root: Path | None = None) -> str | None:
    """The commit of the checkout (``+dirty`` when it has uncommitted changes), or None."""
    import subprocess

    root = root or repo_root()
    try:
        h = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        head = h.stdout.strip()
        if not head:
            return None
        st = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return head + ("+dirty" if st.stdout.strip() else "")
    except Exception:
        return None
