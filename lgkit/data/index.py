"""The data index notebook 01 writes and notebooks 02-05 read.

Layout of a data folder::

    data/
      index.json                                  # list of DataFile entries (paths relative)
      <dataset>__<cot>__<correct|irrelevant>.jsonl   # one Example record per line

Example:
    >>> import tempfile
    >>> from lgkit.formats.records import Example
    >>> d = Path(tempfile.mkdtemp())
    >>> f = write_data_file(d, [Example("q", "", "a", id="t-0000-none-correct", dataset="toy",
    ...                      cot="none", correct=True, meta={"family": "math"})])
    >>> _ = write_data_index(d, [f])
    >>> [x.name for x in select(read_data_index(d), cot="none")]
    ['toy__none__correct']
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lgkit.data.items import family_of, group_key, variant_name
from lgkit.errors import InputError
from lgkit.formats.records import Example, read_examples, write_examples
from lgkit.fsio import atomic_write_json

__all__ = [
    "INDEX_NAME",
    "DataFile",
    "read_data_index",
    "select",
    "write_data_file",
    "write_data_index",
]

INDEX_NAME = "index.json"
_INDEX_VERSION = 1


@dataclass
class DataFile:
    """One example file (one variant) of a data folder.

    Attributes:
        family: ``math``, ``commonsense`` or ``wiki``.
        dataset: dataset name (``synth_*`` for the synthetic set).
        cot: ``none``, ``simplified`` or ``detailed``.
        correct: False for irrelevant responses.
        path: the JSONL file.
        n: number of records.
        synthetic: True for the project's synthetic set.
        meta: variant metadata, e.g. ``{"popularity": "popular", "length": 500, "words": 500}``
            for wiki, ``{"subject": "algebra"}`` for MATH.
    """

    family: str
    dataset: str
    cot: str
    correct: bool
    path: Path
    n: int
    synthetic: bool
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<dataset>__<cot>__<correct|irrelevant>`` (the file stem)."""
        return variant_name(self.dataset, self.cot, self.correct)

    def read(self, limit: int | None = None) -> list[Example]:
        """Read and validate the file's examples.

        Example:
            >>> f = DataFile("math", "toy", "none", True, Path("/nonexistent.jsonl"), 0, True)
            >>> f.name
            'toy__none__correct'
        """
        return read_examples(self.path, limit=limit)

    def to_dict(self, relative_to: str | Path | None = None) -> dict[str, Any]:
        """JSON-ready dict; ``path`` relative to ``relative_to`` when given."""
        p = Path(self.path)
        if relative_to is not None:
            try:
                p = p.resolve().relative_to(Path(relative_to).resolve())
            except ValueError:
                p = Path(os.path.relpath(p.resolve(), Path(relative_to).resolve()))
        return {
            "family": self.family,
            "dataset": self.dataset,
            "cot": self.cot,
            "correct": self.correct,
            "path": p.as_posix(),
            "n": self.n,
            "synthetic": self.synthetic,
            "meta": self.meta,
        }


def _variant_meta(examples: Sequence[Example]) -> dict[str, Any]:
    keys = ("source", "popularity", "length", "words", "variant", "subject")
    first = examples[0].meta
    return {
        k: first[k] for k in keys if k in first and all(e.meta.get(k) == first[k] for e in examples)
    }


def write_data_file(
    data_dir: str | Path, examples: Sequence[Example], *, name: str | None = None
) -> DataFile:
    """Validate and write one variant's examples to ``<data_dir>/<name>.jsonl``.

    Every record must have ``id`` (unique in the file), ``dataset``, ``cot``,
    ``correct`` and ``meta``; all records must share dataset, cot and correct. The
    family is ``meta["family"]`` or follows from the dataset name.

    Raises:
        InputError: an empty list or a record with missing or inconsistent metadata.

    Example:
        >>> import tempfile
        >>> ex = Example("q", "", "a", id="x-1", dataset="toy", cot="none", correct=False, meta={"family": "math"})
        >>> write_data_file(tempfile.mkdtemp(), [ex]).name
        'toy__none__irrelevant'
    """
    exs = list(examples)
    if not exs:
        raise InputError("no examples to write")
    key = group_key(exs[0])
    seen = set()
    for k, e in enumerate(exs):
        for f in ("id", "dataset", "cot", "correct"):
            if getattr(e, f) is None:
                raise InputError("missing metadata", record=k, field=f)
        if group_key(e) != key:
            raise InputError(
                f"record belongs to {group_key(e)}, not {key}", record=k, field="dataset"
            )
        if e.id in seen:
            raise InputError(f"duplicate id {e.id!r}", record=k, field="id")
        seen.add(e.id)
    dataset, cot, correct = key
    path = Path(data_dir) / f"{name or variant_name(dataset, cot, correct)}.jsonl"
    write_examples(path, exs)
    meta = _variant_meta(exs)
    return DataFile(
        family=str(exs[0].meta.get("family") or family_of(dataset)),
        dataset=dataset,
        cot=cot,
        correct=correct,
        path=path,
        n=len(exs),
        synthetic=bool(exs[0].meta.get("synthetic", False)),
        meta=meta,
    )


def write_data_index(data_dir: str | Path, files: Iterable[DataFile], **info: Any) -> Path:
    """Write ``<data_dir>/index.json`` listing ``files`` (paths relative to ``data_dir``).

    Args:
        data_dir: the data folder.
        files: the data files.
        **info: extra JSON-ready run information stored beside the list (profile, seed, ...).

    Example:
        >>> import tempfile
        >>> write_data_index(tempfile.mkdtemp(), []).name
        'index.json'
    """
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": _INDEX_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **info,
        "files": [f.to_dict(relative_to=d) for f in files],
    }
    path = d / INDEX_NAME
    atomic_write_json(path, doc, indent=1, ensure_ascii=False, newline=True)
    return path


def _index_path(path_or_dir: str | Path) -> Path:
    p = Path(path_or_dir)
    if p.is_file():
        return p
    for cand in (p / INDEX_NAME, p / "data" / INDEX_NAME):
        if cand.is_file():
            return cand
    raise InputError(
        f"no {INDEX_NAME} here (nor in its data/ folder); run notebook 01 first", path=p
    )


def read_data_index(path_or_dir: str | Path) -> list[DataFile]:
    """Read a data index: the data folder, its ``index.json``, or a run folder holding ``data/``.

    Raises:
        InputError: no index, malformed index, or a listed file that is missing.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp(); _ = write_data_index(d, [])
        >>> read_data_index(d)
        []
    """
    path = _index_path(path_or_dir)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(
            f"malformed JSON ({e.msg})", path=path, record=f"line {e.lineno}"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise InputError("expected an object with a 'files' list", path=path)
    out = []
    for k, d in enumerate(doc["files"]):
        try:
            f = DataFile(
                family=str(d["family"]),
                dataset=str(d["dataset"]),
                cot=str(d["cot"]),
                correct=bool(d["correct"]),
                path=(path.parent / d["path"]).resolve(),
                n=int(d["n"]),
                synthetic=bool(d.get("synthetic", False)),
                meta=dict(d.get("meta") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"bad entry ({e})", path=path, record=k) from None
        if not f.path.is_file():
            raise InputError(f"listed file is missing: {f.path}", path=path, record=k, field="path")
        out.append(f)
    return out


def select(
    files: Iterable[DataFile],
    family: str | None = None,
    dataset: str | Iterable[str] | None = None,
    cot: str | Iterable[str] | None = None,
    correct: bool | None = None,
    **meta: Any,
) -> list[DataFile]:
    """Filter data files; each argument may be a value or a collection of values.

    Extra keyword arguments filter on ``meta`` (e.g. ``popularity="long_tail"``).

    Example:
        >>> fs = [DataFile("wiki", "w", "none", True, Path("a"), 1, True, {"popularity": "popular"})]
        >>> len(select(fs, family="wiki", popularity="popular")), len(select(fs, correct=False))
        (1, 0)
    """

    def ok(value: Any, want: Any) -> bool:
        if want is None:
            return True
        if isinstance(want, (str, bool, int)) or want is None:
            return value == want
        return value in set(want)

    return [
        f
        for f in files
        if ok(f.family, family)
        and ok(f.dataset, dataset)
        and ok(f.cot, cot)
        and (correct is None or f.correct == correct)
        and all(ok(f.meta.get(k), v) for k, v in meta.items())
    ]
