"""How one papermill execution ends: signals, atomic notebook saves, and the outcome's name.

* :func:`signals_interrupt`: while the series runs, SIGINT, SIGTERM and SIGHUP raise
  :class:`SeriesInterrupted` (a ``KeyboardInterrupt``), again every few seconds until the
  runner acknowledges it (:func:`acknowledge`), so the good result of the notebook being
  rerun is put back before the runner exits; :func:`shielded` holds signals off while
  that happens.
* :func:`atomic_saves`: papermill saves the executed notebook after every cell; under it
  each save goes to a temporary file that replaces the notebook only when complete
  (a full disk leaves the previous save, never a truncated ``.ipynb``).
* :func:`outcome`: ``("failed" | "interrupted", reason, disk_full)`` of an exception.

Example:
    >>> outcome(KeyboardInterrupt())
    ('interrupted', 'interrupted (SIGINT)', False)
    >>> outcome(OSError(28, "No space left on device"))[0::2]
    ('failed', True)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lgkit.fsio import atomic_write_text

log = logging.getLogger(__name__)

#: Signals that end a series run the way Ctrl-C does.
STOP_SIGNALS: tuple[int, ...] = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s
)


class SeriesInterrupted(KeyboardInterrupt):
    """The runner got SIGINT, SIGTERM or SIGHUP; ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = signum
        super().__init__(f"interrupted ({signal.Signals(signum).name})")


REPEAT_S = 3.0
"""Seconds after which a stop signal not yet acknowledged is raised again."""

_pending: dict[str, Any] = {"signum": None, "received": None}
_lock = threading.Lock()


def _raise(signum: int, _frame: Any) -> None:
    with _lock:
        _pending["received"] = _pending["received"] or signum
        if _pending["signum"] is None:
            _pending["signum"] = signum
            threading.Thread(target=_repeat, args=(signum,), daemon=True).start()
    raise SeriesInterrupted(signum)


def _repeat(signum: int) -> None:
    """Raise the stop again while the runner has not acknowledged it: an exception raised
    from a signal handler can be swallowed where it lands (a ``__del__``, a callback that
    logs and goes on), and the runner would then wait for its kernel for ever."""
    import _thread
    import time

    while True:
        time.sleep(REPEAT_S)
        with _lock:
            if _pending["signum"] != signum:
                return
        log.debug("stop signal %s not acknowledged yet: raised again", signum)
        _thread.interrupt_main(signum)


def received() -> int | None:
    """The first stop signal received inside :func:`signals_interrupt` (None: none)."""
    return _pending["received"]


def acknowledge() -> None:
    """The runner has caught the stop (it puts the good result back now): stop repeating it."""
    with _lock:
        _pending["signum"] = None


def drop_pending_tasks() -> None:
    """After an interrupted execution: nbclient's abandoned asyncio tasks (polling the
    kernel that was just stopped) are cancelled and their exceptions retrieved, so that
    no "Kernel died" traceback is printed at exit after the runner's last line."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return
    if loop.is_running() or loop.is_closed():
        return
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.wait(tasks, timeout=5))
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()  # retrieved: asyncio does not log it


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise :class:`SeriesInterrupted` inside the block (main
    thread only), again every :data:`REPEAT_S` seconds until :func:`acknowledge` is called."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pending["received"] = None
    old = {s: signal.signal(s, _raise) for s in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        acknowledge()
        _pending["received"] = None
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Defer SIGINT/SIGTERM/SIGHUP while the block runs; raise the first one afterwards.

    Putting a good result back must not itself be interrupted half-way.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    sigs = (signal.SIGINT, *STOP_SIGNALS)
    old = {s: signal.signal(s, lambda n, _f: got.append(n)) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if got:
        raise SeriesInterrupted(got[0])


@contextlib.contextmanager
def atomic_saves(folder: Path) -> Iterator[None]:
    """papermill's saves of notebooks under ``folder`` are atomic inside the block."""
    from papermill.iorw import LocalHandler, papermill_io

    class _Atomic(LocalHandler):
        def write(self, buf: str, path: str) -> None:  # type: ignore[override]
            atomic_write_text(path, buf)

    entry = (str(folder.resolve()) + os.sep, _Atomic())
    papermill_io._handlers.insert(0, entry)  # papermill picks the first matching prefix
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            papermill_io._handlers.remove(entry)


def render_html(nb_out: Path) -> Path | None:
    """Render an executed notebook to HTML next to it (None without nbconvert)."""
    try:
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    try:
        # nbconvert warns per notebook about images without alt text (pyplot figures
        # shown by the inline backend have none; lgkit's own figures carry a caption)
        quiet = logging.getLogger("lgkit.series.nbconvert")
        quiet.setLevel(logging.ERROR)
        exporter = HTMLExporter(log=quiet)
        body, _ = exporter.from_notebook_node(nbformat.read(str(nb_out), as_version=4))
    except Exception as e:  # rendering is a convenience: never fail the run on it
        log.warning("could not render %s to HTML: %s", nb_out, e)
        return None
    return atomic_write_text(nb_out.with_suffix(".html"), body)


def _disk_full_text(text: str) -> bool:
    return "No space left on device" in text or f"[Errno {errno.ENOSPC}]" in text


def outcome(e: BaseException) -> tuple[str, str, bool]:
    """``(status, reason, disk_full)`` of the exception that ended an execution."""
    import papermill as pm

    if isinstance(e, SeriesInterrupted):
        return "interrupted", str(e), False
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", "interrupted (SIGINT)", False
    if isinstance(e, pm.PapermillExecutionError):
        reason = f"{e.ename}: {e.evalue} (cell {e.exec_count})"
        if e.ename == "KeyboardInterrupt":
            return "interrupted", f"the kernel was interrupted (cell {e.exec_count})", False
        return "failed", reason, _disk_full_text(f"{e.ename}: {e.evalue}")
    if type(e).__name__ == "DeadKernelError":
        return "interrupted", f"the kernel died (killed, or out of memory): {e}", False
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        where = f" writing {e.filename}" if e.filename else ""
        return "failed", f"no space left on the device{where}", True
    return "failed", f"{type(e).__name__}: {e}", _disk_full_text(str(e))


__all__ = [
    "SeriesInterrupted",
    "atomic_saves",
    "outcome",
    "render_html",
    "shielded",
    "signals_interrupt",
]
