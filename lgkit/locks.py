"""One writer per folder: an advisory lock on a lock file inside the folder.

:func:`folder_lock` takes an exclusive ``fcntl.flock`` on ``<folder>/.lgkit.lock`` and
writes the holder's pid into it. A second process asking for the same folder gets
:class:`FolderBusy` (an :class:`~lgkit.errors.InputError`: one line naming the holder's
pid, exit 2 in the CLI) or, with ``wait=True``, waits until the holder is done. The
lock dies with its holder (kill -9 included), so no stale lock is ever left behind.
Within one process the lock is re-entrant (a function holding it may call one that
takes it again). Where ``fcntl`` does not exist (Windows) the lock is a no-op.

A leaf module: imports only :mod:`lgkit.errors`.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with folder_lock(d):
    ...     lock_holder(d) == os.getpid()
    True
    >>> lock_holder(d) is None
    True
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from lgkit.errors import InputError

__all__ = ["LOCK_FILE", "FolderBusy", "folder_lock", "lock_holder"]

log = logging.getLogger(__name__)

LOCK_FILE = ".lgkit.lock"

_held: dict[str, tuple[int, int]] = {}  # resolved lock path -> (fd, depth), this process
_guard = threading.Lock()


class FolderBusy(InputError):
    """Another process holds the folder's lock (``pid``: the holder, when known)."""

    def __init__(self, folder: str | Path, pid: int | None, name: str = LOCK_FILE) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "an unknown pid"
        super().__init__(
            f"another lgkit process ({who}) is writing here; wait for it to finish, "
            "rerun with --wait-lock to wait, or give another --out",
            path=folder,
        )


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def lock_holder(folder: str | Path, name: str = LOCK_FILE) -> int | None:
    """The pid holding ``folder``'s lock, or None when nobody holds it.

    Example:
        >>> import tempfile
        >>> lock_holder(tempfile.mkdtemp()) is None
        True
    """
    path = Path(folder) / name
    if not path.exists():
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    if str(path.resolve()) in _held:
        return os.getpid()
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _acquire(fd: int, folder: Path, wait: bool | float) -> None:
    import fcntl

    start, told = time.monotonic(), False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pid = _read_pid(fd)
            limit = None if wait is True else float(wait)
            if not wait or (limit is not None and time.monotonic() - start > limit):
                raise FolderBusy(folder, pid) from None
            if not told:
                log.info("waiting for lgkit process %s to finish writing %s", pid, folder)
                told = True
            time.sleep(0.2)


@contextlib.contextmanager
def folder_lock(
    folder: str | Path, *, wait: bool | float = False, name: str = LOCK_FILE
) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created) while the block runs.

    Args:
        folder: the folder to guard.
        wait: False: raise :class:`FolderBusy` at once when held; True: wait as long
            as it takes; a number: wait at most that many seconds.
        name: the lock file's name inside ``folder`` (a rank of a sharded run may use its own).

    Yields:
        The lock file's path.

    Raises:
        FolderBusy: another process holds it (and ``wait`` ran out or was False).
    """
    d = Path(folder)
    created = not d.exists()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the folder ({e.strerror or e})", path=d) from None
    path = d / name
    try:
        with _locked(d, path, wait):
            yield path
    except BaseException:
        if created:  # a block that failed at once (bad input) leaves no empty folder behind
            _remove_if_only_locks(d)
        raise


def _remove_if_only_locks(d: Path) -> None:
    with contextlib.suppress(OSError):
        if all(c.name.startswith(".lgkit") and c.name.endswith(".lock") for c in d.iterdir()):
            for c in d.iterdir():
                c.unlink()
            d.rmdir()


@contextlib.contextmanager
def _locked(d: Path, path: Path, wait: bool | float) -> Iterator[None]:
    key = str(path.resolve())
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        yield
        return
    with _guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            _release(key)
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(fd, d, wait)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    with _guard:
        _held[key] = (fd, 1)
    try:
        yield
    finally:
        _release(key)


def _release(key: str) -> None:
    import fcntl

    with _guard:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
            return
        del _held[key]
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
