"""Data in its own format: a JSON list, JSONL, or a folder saved by ``datasets.save_to_disk``.

:func:`read_data` keeps what is needed to write a subset back in the same format with
every field and id untouched (JSONL: the original lines, byte for byte; JSON list: the
parsed records; dataset folder: the ``datasets.Dataset`` itself).

Example:
    >>> import json, os, tempfile
    >>> d = tempfile.mkdtemp(); src = os.path.join(d, "x.jsonl")
    >>> _ = open(src, "w").write('{"id": 7, "instruction": "q", "output": "a", "x": 1}\\n')
    >>> data = read_data(src)
    >>> data.kind, data.examples[0].id
    ('jsonl', '7')
    >>> _ = write_subset(data, [0], os.path.join(d, "y.jsonl"))
    >>> open(os.path.join(d, "y.jsonl")).read() == open(src).read()
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lgkit.errors import InputError
from lgkit.formats.records import Example, example_from_dict, iter_raw_records
from lgkit.fsio import atomic_open


@dataclass
class DataFile:
    """A data file read for scoring and selection.

    Attributes:
        path: where it came from.
        kind: ``json`` (a list), ``jsonl`` or ``dataset`` (a ``save_to_disk`` folder).
        examples: the validated records as :class:`Example`.
        records: the parsed records (JSON kinds).
        lines: JSONL only: each record's original line.
        dataset: dataset folders only: the ``datasets.Dataset``.
        sha256: hash of the file (folder: of its data files).
    """

    path: Path
    kind: str
    examples: list[Example]
    records: list[Any] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    dataset: Any = None
    sha256: str = ""


def _folder_sha(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(path).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def read_data(path: str | Path) -> DataFile:
    """Read and validate ``path`` (JSON list, JSONL, or a dataset folder).

    Raises:
        InputError: a missing path, a folder that is not a saved dataset, or a bad record
            (naming file, record and field).
    """
    p = Path(path)
    if p.is_dir():
        if not (p / "dataset_info.json").exists() and not (p / "state.json").exists():
            raise InputError(
                "is a folder but not a dataset saved with datasets.save_to_disk", path=p
            )
        import datasets

        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            raise InputError(
                f"holds a DatasetDict ({', '.join(map(str, ds))}); give one split's folder", path=p
            )
        rows = ds.to_list()
        exs = [example_from_dict(r, path=p, record=i) for i, r in enumerate(rows)]
        return DataFile(p, "dataset", exs, rows, dataset=ds, sha256=_folder_sha(p))
    pairs = list(iter_raw_records(p))
    exs = [example_from_dict(obj, path=p, record=n) for n, obj in pairs]
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    text = p.read_text(encoding="utf-8-sig")
    if p.suffix == ".jsonl" or not text.lstrip().startswith("["):
        lines = text.splitlines()
        return DataFile(p, "jsonl", exs, [o for _, o in pairs],
                        lines=[lines[n - 1] for n, _ in pairs], sha256=sha)  # fmt: skip
    return DataFile(p, "json", exs, [o for _, o in pairs], sha256=sha)


def check_target(path: str | Path) -> Path:
    """``path`` as a Path, refused when something is there already.

    Raises:
        InputError: the file or folder exists (nothing is overwritten).
    """
    p = Path(path)
    if p.exists() or Path(str(p) + ".selection.json").exists():
        raise InputError("exists already; choose another --select-out or remove it", path=p)
    return p


def write_subset(data: DataFile, indices: Sequence[int], path: str | Path) -> Path:
    """Write records ``indices`` of ``data`` to ``path`` in ``data``'s own format, atomically.

    Raises:
        InputError: ``path`` exists already.
    """
    p = check_target(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if data.kind == "dataset":
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=p.parent))
        try:
            data.dataset.select(list(indices)).save_to_disk(str(tmp / "ds"))
            os.replace(tmp / "ds", p)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return p
    with atomic_open(p, "w", encoding="utf-8") as f:
        if data.kind == "jsonl":
            f.write("".join(data.lines[i] + "\n" for i in indices))
        else:
            json.dump([data.records[i] for i in indices], f, ensure_ascii=False, indent=2)
            f.write("\n")
    return p
