"""What ``lgkit run`` checks before it starts, and how it keeps good results.

* :func:`load_params_yaml`, :func:`validate_params`: a params YAML is a mapping whose
  keys are all parameters of the notebook (papermill itself only warns on unknown names);
* :func:`coerce_params`: every parameter value against the type the notebook's
  ``parameters`` cell declares (``n_per_variant: int = 16``), before any notebook runs;
* :func:`check_out_dir`: ``--out`` must be a directory that can be written;
* :func:`check_ranges`: numeric parameters in their ranges (:data:`RANGES`, e.g.
  ``n_per_variant >= 0``) and word parameters among their choices (:data:`CHOICES`).

How a rerun keeps the last good result is :mod:`lgkit.series.attempts`.

Example:
    >>> coerce_params({"n": "4", "name": 7}, {"n": "int", "name": "str"}, "02_math")
    {'n': 4, 'name': '7'}
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lgkit.errors import InputError

_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list,),
    "dict": (dict,),
}


def load_params_yaml(path: str | Path) -> dict[str, Any]:
    """Read a params YAML: a mapping of parameter names to values (empty file: ``{}``).

    Raises:
        InputError: missing file, bad YAML or not a mapping.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError("params file not found", path=p)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise InputError(f"malformed YAML ({e})", path=p) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError(
            f"expected a mapping of parameter names to values, got {type(doc).__name__}", path=p
        )
    for k in doc:
        if not isinstance(k, str):
            raise InputError(f"parameter names must be strings, got {k!r}", path=p)
    return doc


def notebook_parameters(nb_path: str | Path) -> dict[str, dict[str, Any]]:
    """The parameters of a notebook's ``parameters`` cell (``papermill.inspect_notebook``).

    Raises:
        InputError: no such notebook, or it has no parameters cell.
    """
    import papermill as pm

    p = Path(nb_path)
    if not p.is_file():
        raise InputError("notebook not found", path=p)
    params = pm.inspect_notebook(str(p))
    if not params:
        raise InputError("notebook has no cell tagged 'parameters'", path=p)
    return dict(params)


def validate_params(
    params: Mapping[str, Any], nb_path: str | Path, yaml_path: str | Path | None = None
) -> None:
    """Raise unless every key of ``params`` is a parameter of the notebook.

    Raises:
        InputError: naming the YAML file and the first unknown key.

    Example:
        >>> from lgkit.provenance import repo_root
        >>> validate_params({"seed": 0}, repo_root() / "notebooks" / "02_math.ipynb")  # all known
    """
    known = notebook_parameters(nb_path)
    for key in params:
        if key not in known:
            raise InputError(
                f"unknown parameter {key!r}: {Path(nb_path).name} has parameters {', '.join(sorted(known))}",
                path=yaml_path or nb_path,
                field=key,
            )


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


#: Allowed ranges of numeric parameters, by name, in every notebook that has them:
#: ``(low, high, low_inclusive)``; None: no bound. Checked before anything runs.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "n_per_variant": (0, None, True),
    "max_length": (1, None, True),
    "bootstrap": (0, None, True),
    "n_boot": (0, None, True),
    "seed": (0, 2**32 - 1, True),
    "twin_seed": (0, 2**32 - 1, True),
    "alike_margin": (0, None, False),
    "margin": (0, None, False),
}
#: Parameters whose values are one of a few words.
CHOICES: dict[str, tuple[str, ...]] = {
    "instruct": ("auto", "true", "false"),
    "irrelevant": ("released", "repaired", "rebuilt"),
}
#: Notebook-specific exceptions to :data:`RANGES` (01: n_per_variant <= 0 means all).
UNCHECKED: frozenset[tuple[str, str]] = frozenset({("01_data_prep", "n_per_variant")})


def check_ranges(notebook: str, params: Mapping[str, Any], source: str) -> None:
    """Raise unless every numeric parameter is in its range and every word is a choice.

    Raises:
        InputError: e.g. ``--param 02_math: field n_per_variant: -3 is out of range (>= 0)``.

    Example:
        >>> check_ranges("02_math", {"n_per_variant": 4, "instruct": "auto"}, "x.yaml")
        >>> check_ranges("02_math", {"seed": -1}, "--param")
        Traceback (most recent call last):
        ...
        lgkit.errors.InputError: --param: field seed: -1 is out of range (0 to 4294967295)
    """
    for key, value in params.items():
        if (notebook, key) in UNCHECKED:
            continue
        if key in CHOICES and isinstance(value, str) and value.strip().lower() not in CHOICES[key]:
            raise InputError(
                f"{value!r} is not one of {', '.join(CHOICES[key])}", path=source, field=key
            )
        if key not in RANGES or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        lo, hi, closed = RANGES[key]
        bad = (
            value != value
            or (lo is not None and (value < lo if closed else value <= lo))
            or (hi is not None and value > hi)
        )
        if bad:
            want = (
                f"{lo} to {hi}" if lo is not None and hi is not None
                else f"{'>=' if closed else '>'} {lo}" if lo is not None else f"<= {hi}"
            )  # fmt: skip
            raise InputError(f"{value!r} is out of range ({want})", path=source, field=key)


__all__ = [
    "CHOICES",
    "RANGES",
    "check_out_dir",
    "check_ranges",
    "coerce_params",
    "coerce_value",
    "load_params_yaml",
    "notebook_parameters",
    "validate_params",
]
