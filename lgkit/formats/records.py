"""The Example record and reading/validating example files (JSON list or JSONL).

The contract (docs/ARCHITECTURE.md, "Example record"): ``instruction``, ``input`` (may be empty),
``output`` plus metadata ``id``, ``dataset``, ``cot`` (none|simplified|detailed),
``correct`` (bool) and free-form ``meta``. The authors' release files (a JSON list of
``{instruction, input, output}``) load as they are.

Example:
    >>> ex = Example(instruction="2+2?", input="", output="4")
    >>> ex.prompt
    '2+2?'
    >>> len(ex.sample_id)
    16
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lgkit.errors import InputError
from lgkit.fsio import atomic_open
from lgkit.schema import COT_LEVELS


def stable_id(instruction: str, input: str, output: str) -> str:
    """A stable 16-hex-digit hash of (instruction, input, output).

    Example:
        >>> stable_id("a", "", "b") == stable_id("a", "", "b")
        True
    """
    h = hashlib.sha256(json.dumps([instruction, input, output], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


@dataclass
class Example:
    """One training example: a prompt (instruction + optional input) and a response.

    Attributes:
        instruction: the task or question.
        input: optional extra context appended to the instruction after a newline.
        output: the response whose tokens carry the loss.
        id: stable identifier; a hash of the texts when not given.
        dataset: dataset name, e.g. ``gsm8k``.
        cot: ``none``, ``simplified`` or ``detailed`` (or None when unknown).
        correct: False for irrelevant responses, None when unknown.
        meta: free-form metadata (MATH level, wiki popularity, ...).
    """

    instruction: str
    input: str = ""
    output: str = ""
    id: str | None = None
    dataset: str | None = None
    cot: str | None = None
    correct: bool | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """Instruction, plus ``"\\n" + input`` when input is not empty."""
        return self.instruction + ("\n" + self.input if self.input else "")

    @property
    def sample_id(self) -> str:
        """The record's ``id`` when given, else a stable hash of its texts."""
        return self.id if self.id else stable_id(self.instruction, self.input, self.output)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the record format)."""
        return asdict(self)


_STR_FIELDS = ("instruction", "output")


def _bad_text(obj: Any) -> tuple[str, str] | None:
    """``(field path, what)`` of the first string in ``obj`` that is not valid Unicode text.

    JSON escapes can spell lone surrogates (``"\\ud800"``), which no UTF-8 writer or
    tokenizer accepts. Keys count as strings too; the walk is iterative (no recursion).

    Example:
        >>> _bad_text({"a": ["ok", {"b": "x" + chr(0xD800)}]})
        ('a.1.b', 'lone surrogate \\\\ud800 at character 1')
        >>> _bad_text({"a": "fine"}) is None
        True
    """
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        where, v = stack.pop()
        items: list[tuple[str, Any]] = []
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as e:
                bad = v[e.start]
                return (
                    where or "(record)",
                    f"lone surrogate \\u{ord(bad):04x} at character {e.start}",
                )
        elif isinstance(v, dict):
            items = [(f"{where}.{k}" if where else str(k), x) for k, x in v.items()]
            items += [(where or "(record)", k) for k in v if isinstance(k, str)]
        elif isinstance(v, list):
            items = [(f"{where}.{i}" if where else str(i), x) for i, x in enumerate(v)]
        stack.extend(reversed(items))
    return None


def example_from_dict(
    obj: Any,
    *,
    path: str | Path | None = None,
    record: int | str | None = None,
    defaults: dict[str, Any] | None = None,
) -> Example:
    """Validate one raw record and build an :class:`Example`.

    Args:
        obj: the parsed JSON object.
        path: file name for error messages.
        record: record number for error messages.
        defaults: metadata to use when the record has none (dataset, cot, correct, meta).

    Raises:
        InputError: naming the file, record and field that is wrong.

    Example:
        >>> example_from_dict({"instruction": "q", "output": "a"}).output
        'a'
    """
    where = {"path": path, "record": record}
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", **where)
    bad = _bad_text(obj)
    if bad is not None:
        raise InputError(f"not valid Unicode text: {bad[1]}", field=bad[0], **where)
    for name in _STR_FIELDS:
        if name not in obj:
            raise InputError("missing required field", field=name, **where)
        if not isinstance(obj[name], str):
            raise InputError(
                f"must be a string, got {type(obj[name]).__name__}", field=name, **where
            )
    if not obj["output"].strip():
        raise InputError("empty response", field="output", **where)
    inp = obj.get("input", "")
    if inp is None:
        inp = ""
    if not isinstance(inp, str):
        raise InputError(f"must be a string, got {type(inp).__name__}", field="input", **where)
    d = dict(defaults or {})
    d.update(
        {
            k: v
            for k, v in obj.items()
            if k in ("id", "dataset", "cot", "correct", "meta") and v is not None
        }
    )
    rid = d.get("id")
    if rid is not None and not isinstance(rid, (str, int)):
        raise InputError("must be a string or integer", field="id", **where)
    cot = d.get("cot")
    if cot is not None and cot not in COT_LEVELS:
        raise InputError(f"must be one of {COT_LEVELS}, got {cot!r}", field="cot", **where)
    correct = d.get("correct")
    if correct is not None and not isinstance(correct, bool):
        raise InputError("must be true or false", field="correct", **where)
    meta = d.get("meta") or {}
    if not isinstance(meta, dict):
        raise InputError("must be an object", field="meta", **where)
    dataset = d.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise InputError("must be a string", field="dataset", **where)
    return Example(
        instruction=obj["instruction"],
        input=inp,
        output=obj["output"],
        id=str(rid) if rid is not None else None,
        dataset=dataset,
        cot=cot,
        correct=correct,
        meta=dict(meta),
    )


def iter_raw_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(record_number, parsed_object)`` from a JSON list or a JSONL file.

    JSON lists are numbered from 0 (list index), JSONL from 1 (line number);
    blank JSONL lines are skipped.

    Raises:
        InputError: missing file, malformed JSON (with the line), or a JSON file that
            is not a list.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("data file does not exist", path=p)
    if p.is_dir():
        raise InputError("is a directory, expected a JSON or JSONL file", path=p)
    text = _read_utf8(p)
    stripped = text.lstrip()
    if not stripped:
        raise InputError("data file is empty (expected a JSON list or JSONL records)", path=p)
    if p.suffix != ".jsonl" and stripped and not stripped.startswith("["):
        try:  # a .json file holding one object (not a list, not JSONL)
            whole = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            whole = None
        if whole is not None:
            raise InputError(
                f"expected a JSON list of records (or JSONL), got {type(whole).__name__}", path=p
            )
    if p.suffix == ".jsonl" or (stripped and not stripped.startswith("[")):
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            yield lineno, _loads(line, p, f"line {lineno}")
        return
    data = _loads(text, p, None)
    if not isinstance(data, list):
        raise InputError(f"expected a JSON list of records, got {type(data).__name__}", path=p)
    yield from enumerate(data)


def _read_utf8(p: Path) -> str:
    """The file's text; a UTF-8 BOM (Windows editors) is dropped; not UTF-8: one line naming the byte."""
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(
            f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}; Latin-1 or another "
            "encoding?); save the file as UTF-8",
            path=p,
            record=f"line {line}",
        ) from None


def _loads(text: str, p: Path, record: str | None) -> Any:
    """``json.loads`` with its errors as one :class:`InputError` line (malformed, nested too deeply)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = record or f"line {e.lineno}"
        col = f" at column {e.colno}" if record else ""
        raise InputError(f"malformed JSON ({e.msg}{col})", path=p, record=where) from None
    except RecursionError:
        raise InputError(
            "JSON nested too deeply (arrays/objects inside each other beyond Python's limit)",
            path=p,
            record=record or "line 1",
        ) from None


def read_examples(
    path: str | Path,
    *,
    defaults: dict[str, Any] | None = None,
    limit: int | None = None,
) -> list[Example]:
    """Read and validate every record of a JSON list or JSONL file.

    Args:
        path: the file.
        defaults: metadata for records that have none (e.g. ``{"dataset": "gsm8k"}``).
        limit: keep only the first ``limit`` records (all are still validated).

    Raises:
        InputError: naming file, record and field of the first bad record.

    Example:
        >>> import tempfile, json, os
        >>> f = os.path.join(tempfile.mkdtemp(), "x.json")
        >>> _ = open(f, "w").write(json.dumps([{"instruction": "q", "input": "", "output": "a"}]))
        >>> [e.output for e in read_examples(f)]
        ['a']
    """
    out = [
        example_from_dict(obj, path=path, record=n, defaults=defaults)
        for n, obj in iter_raw_records(path)
    ]
    return out[:limit] if limit is not None else out


def write_examples(path: str | Path, examples: Iterable[Example]) -> Path:
    """Write examples as JSONL (one record per line), atomically.

    Example:
        >>> import tempfile, os
        >>> p = write_examples(os.path.join(tempfile.mkdtemp(), "x.jsonl"), [Example("q", "", "a")])
        >>> read_examples(p)[0].instruction
        'q'
    """
    p = Path(path)
    with atomic_open(p, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
    return p
