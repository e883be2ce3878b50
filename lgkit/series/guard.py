"""What ``lgkit run`` checks before it starts, and how it keeps good results.

* :func:`coerce_params`: every parameter value against the type the notebook's
  ``parameters`` cell declares (``n_per_variant: int = 16``), before any notebook runs;
* :func:`check_out_dir`: ``--out`` must be a directory that can be written;
* :func:`stash_good` / :func:`settle`: a notebook folder holding a good (``status: ok``)
  result is moved aside while the notebook runs again; if the new run fails, the good
  one is put back and the failed notebook is kept beside it as ``<name>.failed.ipynb``
  (with ``last_failure`` in its ``run.json``), so a failure never replaces a good
  executed notebook, its figures or its metrics.

Example:
    >>> coerce_params({"n": "4", "name": 7}, {"n": "int", "name": "str"}, "02_math")
    {'n': 4, 'name': '7'}
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lgkit.errors import InputError
from lgkit.fsio import atomic_write_json
from lgkit.series.report import read_json

_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list,),
    "dict": (dict,),
}


def coerce_value(key: str, value: Any, type_name: str, source: str) -> Any:
    """``value`` as the declared ``type_name``, or raise naming key, value and type.

    Text (from ``--param``) is read as YAML first (``4`` → 4, ``true`` → True); a
    ``str`` parameter keeps the text as given. Unknown type names are not checked.

    Raises:
        InputError: e.g. ``--param: field n_per_variant: 'abc' is not a valid int``.

    Example:
        >>> coerce_value("margin", "2", "float", "--param")
        2.0
    """
    want = _TYPES.get(type_name)
    if want is None:
        return value
    if type_name == "str":
        if isinstance(value, (bool, int, float)):
            return str(value).lower() if isinstance(value, bool) else str(value)
        if value is None:
            return ""
    elif isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            pass
    ok = isinstance(value, want) and not (type_name in ("int", "float") and isinstance(value, bool))
    if not ok:
        raise InputError(f"{value!r} is not a valid {type_name}", path=source, field=key)
    return float(value) if type_name == "float" else value


def coerce_params(
    params: Mapping[str, Any], types: Mapping[str, str], source: str
) -> dict[str, Any]:
    """Every value of ``params`` checked/converted by :func:`coerce_value`."""
    return {k: coerce_value(k, v, types.get(k, ""), source) for k, v in params.items()}


def check_out_dir(path: str | Path) -> Path:
    """``path`` as a writable directory (created), or one clear :class:`InputError`.

    Example:
        >>> check_out_dir(tempfile.mkdtemp()).is_dir()
        True
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError("--out is a file, not a directory; give a directory", path=p)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".write-test")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(
            f"cannot write the output directory ({e.strerror or e})", path=p, field="--out"
        ) from None
    return p


def _status(nb_dir: Path) -> str | None:
    rec = read_json(nb_dir / "run.json")
    return rec.get("status") if isinstance(rec, dict) else None


def stash_good(nb_dir: Path) -> Path | None:
    """Move a good result out of the way before a rerun; returns where it went.

    A folder without a good result is emptied instead (so no stale figures or
    metrics can sit beside a new failure). Returns None then.
    """
    if not nb_dir.is_dir():
        return None
    if _status(nb_dir) == "ok":
        backup = nb_dir.with_name(f".{nb_dir.name}.good")
        if backup.exists():
            shutil.rmtree(backup)
        nb_dir.rename(backup)
        return backup
    shutil.rmtree(nb_dir)
    return None


def settle(nb_dir: Path, backup: Path | None, failure: Mapping[str, Any] | None) -> Path | None:
    """After a run: drop the backup (success) or restore it and keep the failure beside.

    Returns the path of the kept failed notebook (None on success).
    """
    name = nb_dir.name
    if failure is None:
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        return None
    failed = nb_dir / f"{name}.failed.ipynb"
    if backup is None:  # nothing good to protect: the folder is the failed run
        for suffix in (".ipynb", ".html"):
            src = nb_dir / f"{name}{suffix}"
            if src.is_file():
                src.replace(nb_dir / f"{name}.failed{suffix}")
        (nb_dir / "metrics.json").unlink(missing_ok=True)
        return failed
    keep = nb_dir.with_name(f".{name}.failed")
    if keep.exists():
        shutil.rmtree(keep)
    nb_dir.rename(keep)
    backup.rename(nb_dir)
    for suffix in (".ipynb", ".html"):
        src = keep / f"{name}{suffix}"
        if src.is_file():
            src.replace(nb_dir / f"{name}.failed{suffix}")
    shutil.rmtree(keep, ignore_errors=True)
    rec_path = nb_dir / "run.json"
    rec = json.loads(rec_path.read_text(encoding="utf-8"))
    rec["last_failure"] = {**failure, "notebook": str(failed)}
    atomic_write_json(rec_path, rec, indent=2, default=str, newline=True)
    return failed


__all__ = ["check_out_dir", "coerce_params", "coerce_value", "settle", "stash_good"]
