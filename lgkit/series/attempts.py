"""One notebook attempt: keep the last good result safe whatever ends the attempt.

A notebook folder ``<run>/<name>/`` holds one result. Rerunning it goes through
:func:`begin` (write the marker ``<run>/.<name>.attempt.json`` with the runner's pid,
then move a good result aside to ``<run>/.<name>.good``) and ends with :func:`finish`:
success drops the kept copy; failure or interruption puts the good result back, keeps
the attempt's notebook beside it as ``<name>.failed.ipynb`` and records the attempt in
``last_failure`` of its ``run.json``. Runners killed with SIGKILL cannot run that
code: :func:`recover` (called by ``lgkit run`` and whenever the index is rebuilt) finds
markers whose process is gone, stops the orphaned kernels and finishes the attempt as
``interrupted``.

:func:`notebook_states` tells each notebook's status, one of :data:`STATUSES`:
``ok``, ``failed``, ``interrupted``, ``not run`` or ``stale`` (a result computed on data
other than the current data of its ``data_dir``, see :func:`data_fingerprint`), plus
``running`` while a live runner works on it.

Example:
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> notebook_states(run)["02_math"]["status"]
    'not run'
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lgkit.fsio import atomic_write_json
from lgkit.series.catalog import DATA_NOTEBOOK, NOTEBOOKS

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = ("ok", "failed", "interrupted", "not run", "stale")
"""What a notebook's result can be, as shown in ``run.json`` and ``index.html``."""

KERNEL_PARENT_ENV = "JPY_PARENT_PID"  # jupyter_client sets it in every kernel it starts


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_json(path: Path) -> Any:
    """The JSON document at ``path``, or None when missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` to ``path`` atomically (indented, UTF-8)."""
    atomic_write_json(path, obj, indent=2, ensure_ascii=False, default=str, newline=True)


def marker_path(run_dir: Path, name: str) -> Path:
    """The marker of a running attempt: ``<run>/.<name>.attempt.json``."""
    return run_dir / f".{name}.attempt.json"


def _backup(nb_dir: Path) -> Path:
    return nb_dir.with_name(f".{nb_dir.name}.good")


def _status(nb_dir: Path) -> str | None:
    rec = read_json(nb_dir / "run.json")
    return rec.get("status") if isinstance(rec, dict) else None


# --------------------------------------------------------------------------- data fingerprints


def data_fingerprint(data_dir: str | Path) -> str | None:
    """A hash of a data folder: its ``index.json`` (without the time) and the listed files.

    None when the folder has no readable index. Two runs of notebook 01 on the same data
    give the same fingerprint.

    Example:
        >>> import tempfile
        >>> from lgkit.data.index import write_data_index
        >>> d = tempfile.mkdtemp(); _ = write_data_index(d, [], profile="x")
        >>> len(data_fingerprint(d)), data_fingerprint(d + "/nothing")
        (16, None)
    """
    d = Path(data_dir)
    index = read_json(d / "index.json")
    if not isinstance(index, dict):
        return None
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in index.items() if k != "created"}, sort_keys=True,
                        default=str).encode())  # fmt: skip
    for f in index.get("files") or []:
        path = d / str(f.get("path", "")) if isinstance(f, dict) else None
        try:
            h.update(path.read_bytes() if path is not None else b"?")
        except OSError:
            h.update(b"missing")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- one attempt


def begin(run_dir: Path, name: str, **info: Any) -> Path | None:
    """Mark an attempt at ``name`` and move a good result aside; returns where it went.

    A folder without a good result is emptied instead (no stale figures or metrics
    beside a new failure); returns None then.
    """
    nb_dir = run_dir / name
    good = nb_dir.is_dir() and _status(nb_dir) == "ok"
    backup = _backup(nb_dir) if good else None
    marker = {
        "pid": os.getpid(),
        "pid_started": _own_start(),
        "notebook": name,
        "start_time": _now(),
        "backup": str(backup) if backup else None,
        **info,
    }
    write_json(marker_path(run_dir, name), marker)
    if backup is not None:
        if backup.exists():
            shutil.rmtree(backup)
        nb_dir.rename(backup)
    elif nb_dir.is_dir():
        shutil.rmtree(nb_dir)
    return backup


def finish(
    run_dir: Path, name: str, backup: Path | None, failure: Mapping[str, Any] | None
) -> Path | None:
    """End an attempt: drop the kept good result (success) or put it back.

    ``failure`` is ``{"status": "failed"|"interrupted", "time": ..., "error": ...}``.
    Returns the path of the attempt's kept notebook (None on success). Robust to an
    earlier :func:`finish` that stopped half-way.
    """
    nb_dir = run_dir / name
    try:
        if failure is None:
            if backup is not None:
                shutil.rmtree(backup, ignore_errors=True)
            return None
        return _restore(nb_dir, backup, failure)
    finally:
        marker_path(run_dir, name).unlink(missing_ok=True)


def _restore(nb_dir: Path, backup: Path | None, failure: Mapping[str, Any]) -> Path:
    name = nb_dir.name
    failed = nb_dir / f"{name}.failed.ipynb"
    if backup is None or not backup.is_dir():  # nothing good to protect: the folder is the attempt
        nb_dir.mkdir(parents=True, exist_ok=True)
        for suffix in (".ipynb", ".html"):
            src = nb_dir / f"{name}{suffix}"
            if src.is_file():
                src.replace(nb_dir / f"{name}.failed{suffix}")
        (nb_dir / "metrics.json").unlink(missing_ok=True)
        found = read_json(nb_dir / "run.json")
        rec: dict[str, Any] = found if isinstance(found, dict) else {"notebook": name}
        rec.update(status=failure.get("status", "failed"), error=failure.get("error"))
        rec.setdefault("end_time", failure.get("time"))
        _write_quietly(nb_dir / "run.json", rec)
        return failed
    keep = nb_dir.with_name(f".{name}.failed")
    if keep.exists():
        shutil.rmtree(keep)
    if nb_dir.exists():
        nb_dir.rename(keep)
    backup.rename(nb_dir)
    for suffix in (".ipynb", ".html"):
        src = keep / f"{name}{suffix}"
        if src.is_file():
            src.replace(nb_dir / f"{name}.failed{suffix}")
    shutil.rmtree(keep, ignore_errors=True)
    rec = read_json(nb_dir / "run.json") or {}
    rec["last_failure"] = {**failure, "notebook": str(failed) if failed.is_file() else None}
    _write_quietly(nb_dir / "run.json", rec)
    return failed


def _write_quietly(path: Path, rec: Any) -> None:
    """Write a status file; on a full disk say so in the log instead of raising."""
    try:
        write_json(path, rec)
    except OSError as e:
        log.error("could not write %s: %s", path, e.strerror or e)


# --------------------------------------------------------------------------- kernels


def _pid_alive(pid: int, started: float | None = None) -> bool:
    """Whether process ``pid`` runs (and, given ``started``, is the one created then)."""
    import psutil

    try:
        p = psutil.Process(pid)
        if started is not None and abs(p.create_time() - started) > 1.0:
            return False  # the pid was reused by another process
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _marker_alive(m: Mapping[str, Any]) -> bool:
    started = m.get("pid_started")
    return _pid_alive(int(m["pid"]), float(started) if isinstance(started, (int, float)) else None)


def _own_start() -> float | None:
    import psutil

    try:
        return psutil.Process().create_time()
    except psutil.Error:
        return None


def kernels_of(pid: int) -> list[Any]:
    """The live kernel processes started by the process ``pid`` (psutil.Process list)."""
    import psutil

    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(KERNEL_PARENT_ENV) == str(pid) and p.pid != pid:
                found.append(p)
        except psutil.Error:
            continue
    return found


def stop_kernels(pid: int, wait: float = 5.0) -> int:
    """Terminate (then kill) the kernels started by ``pid``; returns how many there were.

    After an interruption a kernel may still run and write into the notebook folder;
    the good result is only put back once it is gone.
    """
    import psutil

    procs = kernels_of(pid)
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=wait)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=wait)
    return len(procs)


# --------------------------------------------------------------------------- leftovers


def recover(run_dir: str | Path) -> list[str]:
    """Finish the attempts of runners that died (SIGKILL, power loss); returns their notebooks.

    For each marker whose pid is gone: its orphaned kernels are stopped, an attempt that
    had completed (``status: ok``) keeps its result, any other gets the good result back
    and is recorded as ``interrupted``.
    """
    run_dir = Path(run_dir)
    done = []
    for marker in sorted(run_dir.glob(".*.attempt.json")):
        m = read_json(marker)
        if not isinstance(m, dict) or not isinstance(m.get("pid"), int) or not m.get("notebook"):
            marker.unlink(missing_ok=True)
            continue
        if m["pid"] == os.getpid() or _marker_alive(m):
            continue  # a live runner's attempt
        name = str(m["notebook"])
        stop_kernels(m["pid"])
        nb_dir = run_dir / name
        backup = Path(m["backup"]) if m.get("backup") else None
        if backup is not None and not backup.is_dir():
            backup = None
        rec = read_json(nb_dir / "run.json")
        ok = isinstance(rec, dict) and rec.get("status") == "ok"
        if ok and (backup is None or rec.get("attempt") == m.get("attempt")):
            # it had finished (or had not begun): only the cleanup was lost
            finish(run_dir, name, backup, None)
        else:
            error = f"the runner (pid {m['pid']}) stopped during this attempt (killed?)"
            finish(run_dir, name, backup, {"status": "interrupted", "time": _now(), "error": error})
            log.warning("%s: an interrupted attempt was found; %s", name,
                        "its last good result is restored" if backup else "no good result before it")  # fmt: skip
        done.append(name)
    for stray in run_dir.glob(".*.failed"):  # half-finished restores
        if stray.is_dir() and not marker_path(run_dir, stray.name[1:-7]).exists():
            shutil.rmtree(stray, ignore_errors=True)
    return done


# --------------------------------------------------------------------------- statuses


def notebook_dirs(run_dir: Path) -> list[Path]:
    """The run's notebook folders: the catalog's in series order, then others with a record."""
    if not run_dir.is_dir():
        return []
    known = [run_dir / n for n in NOTEBOOKS if (run_dir / n).is_dir()]
    extra = sorted(
        p
        for p in run_dir.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and p not in known
        and ((p / "metrics.json").is_file() or (p / "run.json").is_file())
    )
    return known + extra


def state_of(
    run_dir: Path, name: str, fingerprints: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """One notebook's status (one of :data:`STATUSES`, or ``running``) and why.

    Example:
        >>> import tempfile
        >>> state_of(Path(tempfile.mkdtemp()), "01_data_prep")
        {'status': 'not run', 'detail': ''}
    """
    fingerprints = {} if fingerprints is None else fingerprints
    nb_dir = run_dir / name
    marker = read_json(marker_path(run_dir, name))
    if isinstance(marker, dict) and isinstance(marker.get("pid"), int) and _marker_alive(marker):
        return {
            "status": "running",
            "detail": f"pid {marker['pid']} since {marker.get('start_time')}",
        }
    rec = read_json(nb_dir / "run.json")
    if not isinstance(rec, dict) or not nb_dir.is_dir():
        return {"status": "not run", "detail": ""}
    status = str(rec.get("status") or "failed")
    if status == "running" or isinstance(marker, dict):
        return {
            "status": "interrupted",
            "detail": "the attempt stopped without a word (runner killed?)",
        }
    if status != "ok":
        return {
            "status": status if status in STATUSES else "failed",
            "detail": str(rec.get("error") or ""),
        }
    detail = ""
    stale = _stale(run_dir, rec, fingerprints)
    if rec.get("last_failure"):
        lf = rec["last_failure"]
        status = str(lf.get("status") or "failed")
        detail = (f"a later attempt ({lf.get('time')}) {status}: {lf.get('error')}; shown here: "
                  f"the last good result, of {rec.get('start_time')}")  # fmt: skip
        if stale:
            detail += f"; that result is stale: {stale}"
    elif stale:
        status, detail = "stale", stale
    return {"status": status, "detail": detail}


def _stale(run_dir: Path, rec: Mapping[str, Any], fingerprints: dict[str, str | None]) -> str:
    """Why a result is stale ('' when it is not): its data changed since it was computed."""
    data = rec.get("data_dir")
    if not data or rec.get("notebook") == DATA_NOTEBOOK:
        return ""
    path = str(run_dir / data)  # relative: inside the run (absolute paths stay as they are)
    if path not in fingerprints:
        fingerprints[path] = data_fingerprint(path)
    now = fingerprints[path]
    if now is None:
        return f"its data ({data}) is gone"
    if now != rec.get("data_fingerprint"):
        return "computed on other data than the current data of notebook 01; re-run it"
    return ""


def relative_to_run(run_dir: Path, path: str | Path) -> str:
    """``path`` relative to the run when it lies inside it (runs can be moved), else as is.

    Example:
        >>> relative_to_run(Path("/r"), "/r/01_data_prep/data"), relative_to_run(Path("/r"), "/d")
        ('01_data_prep/data', '/d')
    """
    try:
        return Path(path).resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def notebook_states(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Every catalog notebook's state (and any other notebook folder's), in series order."""
    run_dir = Path(run_dir)
    names = list(NOTEBOOKS) + [d.name for d in notebook_dirs(run_dir) if d.name not in NOTEBOOKS]
    prints: dict[str, str | None] = {}
    return {n: state_of(run_dir, n, prints) for n in names}


__all__ = [
    "STATUSES",
    "begin",
    "data_fingerprint",
    "finish",
    "kernels_of",
    "marker_path",
    "notebook_dirs",
    "notebook_states",
    "recover",
    "relative_to_run",
    "state_of",
    "stop_kernels",
]
