"""Errors lgkit raises for bad input.

Every error about user input names where the problem is (file, record, field) so a
user can fix it without a traceback; the CLI turns them into exit code 2.

Example:
    >>> err = InputError("must be a string", path="a.json", record=3, field="output")
    >>> str(err)
    'a.json: record 3: field output: must be a string'
"""

from __future__ import annotations

from pathlib import Path


class LgkitError(Exception):
    """Base class of lgkit's own errors."""


class InputError(LgkitError, ValueError):
    """Bad user input: a data file, a record, a parameter or a model choice.

    Args:
        message: what is wrong.
        path: the file concerned, if any.
        record: the 1-based line (JSONL) or 0-based index (JSON list) of the record.
        field: the field concerned.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        record: int | str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.record = record
        self.field = field
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if record is not None:
            parts.append(f"record {record}" if not isinstance(record, str) else record)
        if field is not None:
            parts.append(f"field {field}")
        parts.append(message)
        super().__init__(": ".join(parts))
