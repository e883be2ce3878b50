"""The gradient-spectrum engine: per-example statistics of every projection, resumable.

For each example one forward and one backward pass run with the loss on the response
tokens only (mean token cross-entropy; or the final-answer tokens, ``loss_on="answer"``).
No weight gradient is formed: parameters are frozen and the backward runs to the input
embeddings, while hooks hand each projection's inputs X and output gradients D to
:mod:`lgkit.engine.spectra` as soon as they exist (:mod:`lgkit.engine.batch`).

:func:`compute_stats` runs in three stages under the folder's lock: :func:`~lgkit.engine.plan.plan_run`
(read, dedupe, resume, shard), :mod:`lgkit.engine.loop` (encode, padded batches through
:func:`lgkit.engine.batch.forward_backward`) and a :class:`~lgkit.engine.writer.RunWriter`
(parts, failures, per-token rows); then rank 0 finishes the manifest. :func:`stats_for`
is the statistics cache over it.

Example:
    >>> from lgkit.engine import GradConfig, compute_stats
    >>> res = compute_stats("tiny-random-llama", "data.jsonl", "outputs/run",
    ...                     GradConfig(modules=("q", "k", "v", "o")))  # doctest: +SKIP
    >>> lgkit.load_stats("outputs/run").head()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lgkit.engine.config import GradConfig, numeric_settings
from lgkit.engine.folder import barrier, run_lock
from lgkit.engine.loop import encode_items, run_batches
from lgkit.engine.plan import RunPlan, RunResult, dist_info, plan_run, run_manifest
from lgkit.engine.writer import RunWriter
from lgkit.errors import InputError
from lgkit.formats.ledger import file_ledger, ids_sha
from lgkit.formats.parts import (
    MANIFEST,
    clean_temporaries,
    load_manifest,
    now_iso,
    stats_ids,
    write_json_atomic,
)
from lgkit.formats.records import Example
from lgkit.formats.store import load_failures, load_stats
from lgkit.locks import folder_lock

__all__ = ["compute_stats", "stats_for"]

log = logging.getLogger(__name__)


def compute_stats(
    model: Any,
    data: str | Path | Sequence[Example],
    out_dir: str | Path,
    config: GradConfig | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    on_progress: Callable[[int, float], None] | None = None,
    wait_lock: bool | float = False,
) -> RunResult:
    """Compute the statistics table of ``data`` under ``model`` into ``out_dir``.

    Rerunning into the same ``out_dir`` continues where a previous run stopped (killed
    at any moment included); examples already written or recorded as failures are
    skipped. Examples that cannot be processed (e.g. a response cut away entirely by
    ``max_length``, or no final answer found with ``loss_on="answer"``) are recorded in
    the failures table with their reason and kind; a rerun retries ``runtime`` failures
    (out of memory, an error) but not ``data`` ones. Parts found damaged, duplicated or
    unlisted are set aside in ``quarantine/`` and their examples recomputed. One process
    writes a folder at a time (:func:`run_lock`).

    Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) each rank takes every
    ``world_size``-th example and writes its own parts; :func:`lgkit.load_stats` sees
    one table.

    Args:
        model: a :class:`lgkit.models.LoadedModel` or a name/path for
            :func:`lgkit.load_model`.
        data: a JSON/JSONL file of example records, or a list of :class:`Example`.
        out_dir: the run directory.
        config: settings (:class:`GradConfig`).
        device, dtype: passed to :func:`lgkit.load_model` when ``model`` is a name.
        rank, world_size: sharding (default: from the environment).
        progress: show a tqdm progress bar.
        overwrite: allow a directory holding a run with other settings to be replaced.
        on_progress: called after each batch with (examples finished, seconds it took).
        wait_lock: when another process writes ``out_dir``: False: raise at once;
            True: wait; a number: wait at most that many seconds.

    Raises:
        InputError: bad data, bad settings, ``out_dir`` holding another run, or
            ``loss_on="answer"`` with no record having a findable answer.
        lgkit.locks.FolderBusy: another process writes ``out_dir``.

    Example:
        >>> compute_stats("tiny-random-llama", "ex.jsonl", "outputs/t")  # doctest: +SKIP
    """
    config = config or GradConfig()
    rank, world_size = dist_info(rank, world_size)
    with run_lock(Path(out_dir), rank, world_size, wait_lock):
        return _compute_locked(model, data, out_dir, config, device, dtype, rank, world_size,
                               progress, overwrite, on_progress)  # fmt: skip


def _compute_locked(
    model: Any,
    data: str | Path | Sequence[Example],
    out_dir: str | Path,
    config: GradConfig,
    device: str | None,
    dtype: str | None,
    rank: int,
    world_size: int,
    progress: bool,
    overwrite: bool,
    on_progress: Callable[[int, float], None] | None,
) -> RunResult:
    plan = plan_run(model, data, out_dir, config, device=device, dtype=dtype, rank=rank,
                    world_size=world_size, overwrite=overwrite)  # fmt: skip
    result = RunResult(plan.out, n_skipped=plan.n_skipped)
    writer = RunWriter(plan, result)
    items = encode_items(plan, writer)
    plan.out.mkdir(parents=True, exist_ok=True)
    clean_temporaries(plan.out, plan.rank)
    manifest = run_manifest(plan)
    if plan.rank == 0:
        write_json_atomic(plan.out / MANIFEST, manifest)
    run_batches(plan, items, writer, progress, on_progress)
    _finish(plan, manifest)
    if result.n_failed:
        log.warning(
            "%d example(s) failed; see lgkit.load_failures(%r)", result.n_failed, str(out_dir)
        )
    log.info(
        "done: %d examples, %d failed, %d skipped (model %.1fs, statistics %.1fs)",
        result.n_done, result.n_failed, result.n_skipped, result.seconds_model, result.seconds_stats,
    )  # fmt: skip
    return result


def _finish(plan: RunPlan, manifest: dict[str, Any]) -> None:
    """Rank 0, once every rank is done: the manifest's counts, status and file ledger.

    "complete" only when every example of the plan has statistics or a data failure and
    no runtime failure is outstanding; ``files`` lists every part with rows and sha256.
    """
    barrier(plan.world_size)
    if plan.rank != 0:
        return
    out, plan_ids = plan.out, set(plan.ids)
    done = stats_ids(out) & plan_ids
    fails = load_failures(out)
    kinds = fails["kind"].tolist() if len(fails) else []
    data_failed = (
        set(fails.loc[fails["kind"] == "data", "sample_id"].astype(str)) if kinds else set()
    )
    n_runtime = kinds.count("runtime")
    complete = (done | data_failed) == plan_ids and n_runtime == 0
    manifest.update(
        end_time=now_iso(),
        status="complete" if complete else "partial",
        n_done=len(done),
        n_failures=len(kinds),
        n_failed_data=kinds.count("data"),
        n_failed_runtime=n_runtime,
        files=file_ledger(out),
        ids_sha256=ids_sha(plan.ids),
    )
    write_json_atomic(out / MANIFEST, manifest)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[-60:]


def stats_for(
    model: Any,
    data: str | Path,
    config: GradConfig | None = None,
    *,
    cache_dir: str | Path = "outputs/stats_cache",
    progress: bool = True,
    loader: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Statistics of ``data`` under ``model``: computed once, then reused.

    The run directory is ``cache_dir/<model>__<data stem>__<hash of settings and
    data>``; a complete run there, once verified (:mod:`lgkit.formats.ledger`), is read
    back without loading the model; a partial or damaged one is resumed (and repaired).
    The entry's lock is held throughout: a second series using the same cache waits,
    then reuses the finished entry. A ``model`` column is added (handy when combining models).

    ``loader`` (optional) returns the loaded ``model`` when something must be computed,
    so a caller looping over files loads it once (the cache key still uses ``model``).

    Returns:
        pandas.DataFrame: the statistics table.

    Example:
        >>> df = stats_for("smollm2-135m-instruct", "data/gsm8k__detailed__correct.jsonl")  # doctest: +SKIP
    """
    config = config or GradConfig()
    name = model if isinstance(model, (str, Path)) else getattr(model, "name", "model")
    data_sha = hashlib.sha256(Path(data).read_bytes()).hexdigest()
    # config.instruct as given (not resolved against the model): the key earlier caches have
    key = {"model": str(name), "data": data_sha, "limit": config.limit, **numeric_settings(config)}
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    out = Path(cache_dir) / f"{_slug(str(name))}__{_slug(Path(data).stem)}__{h}"
    with folder_lock(out, wait=True):  # a series sharing the cache waits, then reuses
        df = _complete_table(out)
        if df is None:
            target = loader() if loader is not None else model
            compute_stats(target, data, out, config, progress=progress, **kwargs)
            df = load_stats(out)
    df["model"] = str(name)
    return df


def _complete_table(out: Path) -> Any:
    """The verified table of a complete cache entry, or None (absent, partial, damaged)."""
    try:
        if load_manifest(out).get("status") != "complete":
            return None
        return load_stats(out)
    except InputError as e:
        log.warning("statistics cache not usable as is (%s); resuming it", e)
        return None
