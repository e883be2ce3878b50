"""The run folder before and around a run: one writer (across ranks), checked and repaired.

:func:`run_lock` holds the folder's lock for a whole :func:`lgkit.engine.run.compute_stats`
(under ``torchrun`` rank 0 holds it and shares the outcome); :func:`check_out_dir` refuses a
folder holding another run (unless ``overwrite``) and, on rank 0, repairs the parts
(:func:`lgkit.formats.ledger.repair`).

Example:
    >>> import tempfile
    >>> with run_lock(Path(tempfile.mkdtemp()), 0, 1):
    ...     pass
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lgkit.errors import InputError
from lgkit.formats.ledger import fingerprint_sha, repair
from lgkit.formats.parts import load_manifest
from lgkit.locks import LOCK_FILE, FolderBusy, folder_lock

__all__ = ["barrier", "check_out_dir", "run_lock"]


def _clear(out: Path) -> None:
    """Remove a run folder's contents, keeping the lock file (held by this process)."""
    for child in out.iterdir():
        if child.name.startswith(".lgkit") and child.name.endswith(".lock"):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def check_out_dir(
    out: Path, fp: dict[str, Any], overwrite: bool, world_size: int, rank: int
) -> dict:
    """The manifest of the run already in ``out`` (empty if none or replaced), its parts verified.

    Rank 0 sets damaged, duplicate and unlisted parts aside (:func:`lgkit.formats.ledger.repair`);
    parts of another model or other settings are refused unless ``overwrite``.
    """
    old = load_manifest(out)
    if old and old.get("fingerprint") != fp:
        if not overwrite:
            diff = sorted(k for k in fp if (old.get("fingerprint") or {}).get(k) != fp[k])
            raise InputError(
                f"holds statistics of a different run (differs in: {', '.join(diff)}); "
                "to start afresh, give another --out, delete this directory, or rerun with --overwrite",
                path=out,
            )
        _overwrite(out, world_size)
        old = {}
    if rank == 0 and out.exists():
        try:
            repair(out, fingerprint_sha(fp), old, tokens=bool(fp.get("token_stats")))
        except InputError:
            if not overwrite:
                raise
            _overwrite(out, world_size)
            old = {}
    return old


def _overwrite(out: Path, world_size: int) -> None:
    if world_size > 1:
        raise InputError(
            "--overwrite cannot be used in a sharded run; remove the directory first", path=out
        )
    _clear(out)


def _distributed(world_size: int) -> bool:
    return (
        world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()
    )


def barrier(world_size: int) -> None:
    """Wait for every rank (a no-op without a process group)."""
    if _distributed(world_size):
        torch.distributed.barrier()


def _max_over_ranks(value: int) -> int:
    """The largest ``value`` over the ranks of the process group."""
    dev = "cpu"
    if torch.distributed.get_backend() == "nccl":
        dev = f"cuda:{torch.cuda.current_device()}"
    t = torch.tensor([value], dtype=torch.int64, device=dev)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return int(t.item())


@contextlib.contextmanager
def run_lock(out: Path, rank: int, world_size: int, wait: bool | float = False) -> Iterator[None]:
    """One writer per run folder (:func:`lgkit.locks.folder_lock`).

    Under ``torchrun`` (a process group) rank 0 holds the folder's lock for the whole
    run and tells the other ranks whether it got it, so ranks of one run never lock
    each other out and a second run's ranks all stop. Sharded ranks without a process
    group each hold their own lock file (rank 0: the ordinary one).
    """
    if not _distributed(world_size):
        name = LOCK_FILE if rank == 0 else f".lgkit-r{rank:03d}.lock"
        with folder_lock(out, wait=wait, name=name):
            yield
        return
    with contextlib.ExitStack() as stack:
        busy: FolderBusy | None = None
        if rank == 0:
            try:
                stack.enter_context(folder_lock(out, wait=wait))
            except FolderBusy as e:
                busy = e
        pid = _max_over_ranks((busy.pid or 1) if busy else 0)
        if busy is not None:
            raise busy
        if pid:
            raise FolderBusy(out, pid if pid > 1 else None)
        yield
