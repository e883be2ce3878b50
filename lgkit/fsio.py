"""Atomic file writes: write a temporary file in the target's folder, then rename it.

A reader never sees a half-written file: the content goes to ``.<name>.<pid>.<thread>.tmp``
beside the target and :func:`os.replace` swaps it in (atomic on POSIX and Windows). On
any error the temporary file is removed and the target is left as it was. ``fsync=True``
flushes the data to disk before the rename (for files a crash must not leave empty).

A leaf module: imports nothing from lgkit, so every package may use it.

Example:
    >>> import tempfile, os
    >>> p = atomic_write_json(os.path.join(tempfile.mkdtemp(), "a", "x.json"), {"k": 1})
    >>> p.read_text()
    '{\\n  "k": 1\\n}'
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "temp_name",
]


def temp_name(path: str | os.PathLike[str]) -> Path:
    """The temporary file used for ``path``: hidden, in the same folder, ends in ``.tmp``.

    Process and thread ids keep concurrent writers of the same target apart.

    Example:
        >>> temp_name("/d/x.json").name.startswith(".x.json.") and str(temp_name("/d/x")).endswith(".tmp")
        True
    """
    p = Path(path)
    return p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    For writers that take a path (e.g. ``pyarrow.parquet.write_table``). The parent
    folder is created. On an exception the temporary file is removed and re-raised; an
    :class:`OSError` (e.g. a full disk) is re-raised naming ``path`` (``e.filename``).

    Example:
        >>> import tempfile, os
        >>> target = os.path.join(tempfile.mkdtemp(), "t.txt")
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> open(target).read(), sorted(os.listdir(os.path.dirname(target)))
        ('done', ['t.txt'])
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(p)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, p)
    except OSError as e:  # disk full, no permission, ...: name the target, not the temporary
        tmp.unlink(missing_ok=True)
        if e.filename is None or str(e.filename) == str(tmp):
            raise OSError(e.errno, f"cannot write: {e.strerror or e}", str(p)) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    fsync: bool = False,
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success it replaces ``path`` atomically.

    Args:
        path: the target file.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding: text encoding (ignored for ``"wb"``).
        fsync: flush to disk before the rename.

    Example:
        >>> import tempfile, os
        >>> target = os.path.join(tempfile.mkdtemp(), "lines.jsonl")
        >>> with atomic_open(target) as fh:
        ...     _ = fh.write("a\\n")
        >>> open(target).read()
        'a\\n'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only: mode 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        enc = None if "b" in mode else encoding
        with open(tmp, mode, encoding=enc) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path.

    Example:
        >>> import tempfile, os
        >>> atomic_write_bytes(os.path.join(tempfile.mkdtemp(), "b"), b"xy").read_bytes()
        b'xy'
    """
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", fsync: bool = False
) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path.

    Example:
        >>> import tempfile, os
        >>> atomic_write_text(os.path.join(tempfile.mkdtemp(), "t"), "é").read_text("utf-8")
        'é'
    """
    with atomic_open(path, "w", encoding=encoding, fsync=fsync) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int | None = 2,
    ensure_ascii: bool = True,
    default: Callable[[Any], Any] | None = None,
    newline: bool = False,
    fsync: bool = False,
) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically; returns the path.

    Args:
        path: the target file (its folder is created).
        obj: anything :func:`json.dumps` accepts with ``default``.
        indent, ensure_ascii, default: passed to :func:`json.dumps`.
        newline: end the file with a newline.
        fsync: flush to disk before the rename.

    Example:
        >>> import tempfile, os
        >>> p = atomic_write_json(os.path.join(tempfile.mkdtemp(), "j"), {"é": 1}, indent=None,
        ...                       ensure_ascii=False, newline=True)
        >>> p.read_text("utf-8")
        '{"é": 1}\\n'
    """
    text = json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii, default=default)
    return atomic_write_text(path, text + ("\n" if newline else ""), fsync=fsync)
