"""Progress of a notebook's statistics, reported to ``lgkit run`` while the kernel works.

The runner sets ``LGKIT_PROGRESS_FILE`` for each notebook's kernel; :class:`Reporter`
(used by :func:`lgkit.series.family_stats`) appends one JSON line per event to it, and
:class:`Watcher` (in the runner) reads the new lines and turns them into one status
line: which model and data file, examples done of total and an ETA from the measured
seconds per computed example (cached files count as done, and do not bias the ETA).
Without the variable, reporting does nothing.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "p.jsonl")
    >>> r = Reporter("tiny", total=4, path=path)
    >>> r.file("gsm8k__none__correct")
    >>> r.step(2, 1.0)
    >>> Watcher(path).poll()
    'tiny | gsm8k__none__correct | 2/4 examples | 0.50 s/example | ETA 1 s'
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("lgkit.series.runner")

ENV = "LGKIT_PROGRESS_FILE"
"""Environment variable naming the progress file of the current notebook."""


class Reporter:
    """Append progress events of one statistics job (a model over several files).

    Args:
        model: the model's name.
        total: examples of all files of this job.
        path: the progress file (default: ``$LGKIT_PROGRESS_FILE``; none: no-op).
        unit: what is counted (``"examples"``; ``"runs"`` for training runs, whose
            ``file`` is the run's name).
        bar: a tqdm bar over ``total`` to keep current: the job's one progress line,
            its ETA from the seconds per *computed* example (cached files do not bias it).
    """

    def __init__(
        self,
        model: str,
        total: int,
        path: str | os.PathLike | None = None,
        unit: str = "examples",
        bar: Any = None,
    ) -> None:
        self.path = path if path is not None else os.environ.get(ENV)
        self.model, self.total, self.unit = str(model), int(total), str(unit)
        self.done, self.computed, self.seconds = 0, 0, 0.0
        self.current = ""
        self.bar = bar

    def _emit(self) -> None:
        if self.bar is not None:
            self._show()
        if not self.path:
            return
        ev = {**self._event(), "seconds": round(self.seconds, 3), "time": time.time()}
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(ev) + "\n")
        except OSError:  # progress is a courtesy: never fail the computation on it
            self.path = None

    def _event(self) -> dict[str, Any]:
        return {
            "model": self.model, "file": self.current, "done": self.done, "total": self.total,
            "computed": self.computed, "seconds": self.seconds, "unit": self.unit,
        }  # fmt: skip

    def _show(self) -> None:
        """The stage's one progress line (``bar``, a tqdm): its count, then file, pace and ETA."""
        parts = describe(self._event()).split(" | ")  # model | file | n/total | pace | ETA
        self.bar.n = self.done
        self.bar.set_postfix_str(", ".join([*parts[3:], parts[1]]), refresh=False)
        self.bar.refresh()

    def file(self, name: str) -> None:
        """A new data file starts."""
        self.current = name
        self._emit()

    def step(self, n: int, seconds: float) -> None:
        """``n`` examples were computed in ``seconds``."""
        self.done += n
        self.computed += n
        self.seconds += seconds
        self._emit()

    def skip(self, n: int) -> None:
        """``n`` examples were already in the cache."""
        self.done += n
        self._emit()


def fmt_seconds(s: float) -> str:
    """``75`` → ``'1m15s'``.

    Example:
        >>> fmt_seconds(3725), fmt_seconds(42)
        ('1h02m', '42 s')
    """
    s = max(0, round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def describe(ev: dict[str, Any]) -> str:
    """One readable line for a progress event.

    Example:
        >>> describe({"model": "m", "file": "fast__adamw__s0", "done": 1, "total": 5,
        ...           "computed": 1, "seconds": 90.0, "unit": "runs"})
        'm | fast__adamw__s0 | 1/5 runs | 90.00 s/run | ETA 6m00s'
    """
    parts = [str(ev.get("model", "?")), str(ev.get("file") or "…")]
    done, total = int(ev.get("done", 0)), int(ev.get("total", 0))
    unit = str(ev.get("unit") or "examples")
    parts.append(f"{done}/{total} {unit}")
    computed, secs = int(ev.get("computed", 0)), float(ev.get("seconds", 0.0))
    if computed:
        per = secs / computed
        parts.append(f"{per:.2f} s/{unit[:-1] if unit.endswith('s') else unit}")
        parts.append(f"ETA {fmt_seconds(per * max(total - done, 0))}")
    return " | ".join(parts)


class Watcher:
    """Read the new events of a progress file; :meth:`poll` gives the latest line."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._pos = 0
        self.last: dict[str, Any] | None = None

    def poll(self) -> str | None:
        """The status line of the newest event (None before the first one)."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._pos)
                chunk = fh.read()
        except OSError:
            chunk = b""
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._pos += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            try:
                self.last = json.loads(line)
            except json.JSONDecodeError:
                continue
        return describe(self.last) if self.last else None


class Ticker:
    """While a notebook runs: pass its newest progress line to ``on_status`` every second."""

    def __init__(self, watcher: Watcher, name: str, on_status: Any) -> None:
        self.watcher, self.name, self.on_status = watcher, name, on_status
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        last = None
        while not self._stop.wait(1.0):
            line = self.watcher.poll()
            if line and line != last and self.on_status is not None:
                self.on_status(self.name, line)
                last = line

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def status_printer(bar: Any, tty: bool) -> Any:
    """``on_status`` for :func:`run_notebook`: the bar's one line on a terminal, else a
    log line when the data file changes or every 30 s (clean lines in a log file)."""
    state = {"file": None, "t": 0.0}

    def show(name: str, line: str) -> None:
        if tty:
            bar.set_postfix_str(f"{name} | {line}", refresh=True)
            return
        file = line.split(" | ")[1] if " | " in line else line
        now = time.monotonic()
        if file != state["file"] or now - state["t"] >= 30:
            log.info("%s: %s", name, line)
            state.update(file=file, t=now)

    return show


__all__ = ["ENV", "Reporter", "Ticker", "Watcher", "describe", "fmt_seconds", "status_printer"]
