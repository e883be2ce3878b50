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
from dataclasses import dataclass, field, replace
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
        numbers: each record's number as error messages give it (JSONL: line, JSON list
            and dataset: index).
        unscorable: records that cannot be scored, by index, with the reason (read with
            ``strict=False``: an empty response); they stay in ``examples`` (output "").
    """

    path: Path
    kind: str
    examples: list[Example]
    records: list[Any] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    dataset: Any = None
    sha256: str = ""
    numbers: list[int] = field(default_factory=list)
    unscorable: dict[int, str] = field(default_factory=dict)

    def number(self, i: int) -> int:
        """Record ``i``'s number as error messages give it."""
        return self.numbers[i] if i < len(self.numbers) else i


EMPTY_RESPONSE = "empty response"


def _example(obj: Any, path: Path, n: int, strict: bool) -> tuple[Example, str | None]:
    """A record as an :class:`Example`, and why it cannot be scored (None: it can).

    Without ``strict``, a record whose response is empty (or blank) is kept, with that
    reason; any other fault of a record is refused either way.
    """
    blank = (
        isinstance(obj, dict) and isinstance(obj.get("output"), str) and not obj["output"].strip()
    )
    if strict or not blank:
        return example_from_dict(obj, path=path, record=n), None
    ex = example_from_dict({**obj, "output": "-"}, path=path, record=n)  # every other check
    return replace(ex, output=obj["output"]), EMPTY_RESPONSE


def _folder_sha(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(path).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def read_data(path: str | Path, *, strict: bool = True) -> DataFile:
    """Read and validate ``path`` (JSON list, JSONL, or a dataset folder).

    ``strict=False``: a record with an empty response is kept and listed in
    ``unscorable`` (``lgkit score`` gives it a row with NaN scores) instead of refused.

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
        read = [_example(r, p, i, strict) for i, r in enumerate(rows)]
        return DataFile(p, "dataset", [e for e, _ in read], rows, dataset=ds,
                        sha256=_folder_sha(p), numbers=list(range(len(rows))),
                        unscorable=_reasons(read))  # fmt: skip
    pairs = list(iter_raw_records(p))
    read = [_example(obj, p, n, strict) for n, obj in pairs]
    exs = [e for e, _ in read]
    extra = {"numbers": [n for n, _ in pairs], "unscorable": _reasons(read)}
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    text = p.read_text(encoding="utf-8-sig")
    if p.suffix == ".jsonl" or not text.lstrip().startswith("["):
        lines = text.splitlines()
        return DataFile(p, "jsonl", exs, [o for _, o in pairs],
                        lines=[lines[n - 1] for n, _ in pairs], sha256=sha, **extra)  # fmt: skip
    return DataFile(p, "json", exs, [o for _, o in pairs], sha256=sha, **extra)


def _reasons(read: Sequence[tuple[Example, str | None]]) -> dict[int, str]:
    return {i: why for i, (_, why) in enumerate(read) if why is not None}


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
