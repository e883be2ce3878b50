"""The gradient-spectrum engine: per-example statistics of every projection, resumable.

For each example one forward and one backward pass run with the loss on the response
tokens only (mean token cross-entropy; or the final-answer tokens, ``loss_on="answer"``).
No weight gradient is formed: parameters are frozen and the backward runs to the input
embeddings, while hooks hand each projection's inputs X and output gradients D to
:mod:`lgkit.engine.spectra` as soon as they exist (:mod:`lgkit.engine.batch`).

:func:`compute_stats` runs in three stages: :func:`plan_run` (read, dedupe, resume,
shard), :func:`run_batches` (padded batches through :func:`lgkit.engine.batch.forward_backward`)
and a :class:`RunWriter` (parts, failures, per-token rows, manifest).

Example:
    >>> from lgkit.engine import GradConfig, compute_stats
    >>> res = compute_stats("tiny-random-llama", "data.jsonl", "outputs/run",
    ...                     GradConfig(modules=("q", "k", "v", "o")))  # doctest: +SKIP
    >>> lgkit.load_stats("outputs/run").head()  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lgkit import __version__
from lgkit.engine.arch import Target, find_targets, parse_layers
from lgkit.engine.batch import (
    BatchResult,
    Span,
    chunked_response_losses,
    forward_backward,
    per_example_losses,
    response_span,
    run_batch,
)
from lgkit.engine.config import NUMERIC_SETTINGS, GradConfig, numeric_settings
from lgkit.engine.folder import barrier, check_out_dir, run_lock
from lgkit.engine.ledger import file_ledger, fingerprint_sha, ids_sha
from lgkit.engine.spans import answer_token_span
from lgkit.engine.store import (
    MANIFEST,
    clean_temporaries,
    completed_ids,
    load_failures,
    load_manifest,
    load_stats,
    now_iso,
    stats_ids,
    write_json_atomic,
)
from lgkit.engine.writer import RunWriter
from lgkit.errors import InputError
from lgkit.formats.prompts import Encoded, encode_example, has_chat_template
from lgkit.formats.records import Example, read_examples
from lgkit.locks import folder_lock
from lgkit.provenance import git_hash as _git_hash

__all__ = [
    "FINGERPRINT_KEYS",
    "GradConfig",
    "RunResult",
    "chunked_response_losses",
    "compute_stats",
    "per_example_losses",
    "run_batch",
    "run_fingerprint",
    "stats_for",
]

log = logging.getLogger(__name__)

FINGERPRINT_KEYS = ("model", "revision", "dtype", "data_sha256", *NUMERIC_SETTINGS)
"""What a resumed run must share: the model, the data and :data:`NUMERIC_SETTINGS`."""


@dataclass
class RunResult:
    """What a call of :func:`compute_stats` did.

    Attributes:
        out_dir: the run directory.
        n_done: examples processed in this call.
        n_failed: examples recorded as failures in this call.
        n_skipped: examples already done by an earlier call (resume).
        seconds_model: time in forward + backward (statistics excluded).
        seconds_stats: time computing statistics.
    """

    out_dir: Path
    n_done: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    seconds_model: float = 0.0
    seconds_stats: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)


@functools.cache
def git_hash() -> str | None:
    """The git commit of the lgkit checkout (``+dirty`` with uncommitted changes), if any.

    Asked once per process (two ``git`` subprocesses; seconds on a loaded machine): the
    code a process runs is the code it imported, so every manifest it writes names the same.
    """
    return _git_hash()


def _dist_info(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None:
        rank = int(os.environ.get("RANK", "0"))
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if not 0 <= rank < world_size:
        raise InputError(f"rank {rank} outside world size {world_size}", field="rank")
    return rank, world_size


def _unique_ids(examples: Sequence[Example], source: str) -> list[str]:
    """Sample ids, unique: an explicit id used twice is an error; equal texts get ~k."""
    seen: dict[str, int] = {}
    ids = []
    for i, ex in enumerate(examples):
        sid = ex.sample_id
        if sid in seen:
            if ex.id:
                raise InputError(
                    f"duplicate id {sid!r} (also record {seen[sid]})",
                    path=source,
                    record=i,
                    field="id",
                )
            k = 2
            while f"{sid}~{k}" in seen:
                k += 1
            sid = f"{sid}~{k}"
        seen[sid] = i
        ids.append(sid)
    return ids


def _data_fingerprint(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class RunPlan:
    """Stage 1: what a call of :func:`compute_stats` runs (read, deduplicated, resumed, sharded)."""

    config: GradConfig
    examples: list[Example]
    ids: list[str]
    source: str
    data_sha: str
    bundle: Any
    instruct: bool
    targets: list[Target]
    out: Path
    rank: int
    world_size: int
    fingerprint: dict[str, Any]
    old_manifest: dict[str, Any]
    todo: list[int]
    n_skipped: int


@dataclass
class Item:
    """One encoded example and the token positions carrying its loss."""

    index: int
    enc: Encoded
    span: Span


def run_fingerprint(bundle: Any, config: GradConfig, data_sha: str) -> dict[str, Any]:
    """The settings that determine the numbers of a run (compared on resume)."""
    instruct = (
        config.instruct if config.instruct is not None else bool(getattr(bundle, "instruct", False))
    )
    settings = numeric_settings(config)
    settings.update(instruct=instruct, system_prompt=config.system_prompt if instruct else None)
    return {
        "model": getattr(bundle, "name", None),
        "revision": getattr(bundle, "revision", None),
        "dtype": str(getattr(bundle, "dtype", None)),
        "data_sha256": data_sha,
        **settings,
    }


def plan_run(
    model: Any,
    data: str | Path | Sequence[Example],
    out_dir: str | Path,
    config: GradConfig,
    *,
    device: str | None = None,
    dtype: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    overwrite: bool = False,
) -> RunPlan:
    """Stage 1: read and deduplicate the data, load the model, check ``out_dir``, pick this rank's undone examples."""
    rank, world_size = _dist_info(rank, world_size)
    source = str(data) if isinstance(data, (str, Path)) else "<examples>"
    examples = read_examples(data) if isinstance(data, (str, Path)) else list(data)
    if config.limit:  # None or 0: all
        examples = examples[: config.limit]
    ids = _unique_ids(examples, source)
    data_sha = _data_fingerprint(examples)
    bundle = _resolve_model(model, config, device, dtype)
    instruct = config.instruct if config.instruct is not None else bool(bundle.instruct)
    if instruct and not has_chat_template(bundle.tokenizer):
        raise InputError(
            f"model {bundle.name!r} has no chat template; run it as a base model (--base)",
            field="instruct",
        )
    targets = find_targets(bundle.model, config.modules)
    if config.layers is not None:
        keep = set(parse_layers(config.layers, max(t.layer for t in targets) + 1))
        targets = [t for t in targets if t.layer in keep]
    out = Path(out_dir)
    fp = run_fingerprint(bundle, config, data_sha)
    old = check_out_dir(out, fp, overwrite, world_size, rank)
    barrier(world_size)  # rank 0's repair is done before any rank reads what is done
    done = completed_ids(out) if out.exists() else set()
    mine = [i for i in range(len(examples)) if i % world_size == rank]
    todo = [i for i in mine if ids[i] not in done]
    if len(mine) > len(todo):
        log.info("resuming %s: %d examples already done", out, len(mine) - len(todo))
    return RunPlan(
        config, examples, ids, source, data_sha, bundle, instruct, targets, out, rank,
        world_size, fp, old, todo, len(mine) - len(todo),
    )  # fmt: skip


def run_manifest(plan: RunPlan) -> dict[str, Any]:
    """The manifest of a run starting now (keeps an earlier call's start time)."""
    config, bundle = plan.config, plan.bundle
    old = {k: v for k, v in (plan.old_manifest or {}).items() if k not in ("files", "ids_sha256")}
    manifest = {
        **old,
        "fingerprint": plan.fingerprint,
        "fingerprint_sha256": fingerprint_sha(plan.fingerprint),
        "lgkit_version": __version__,
        "git_hash": git_hash(),
        "model": bundle.name,
        "model_source": getattr(bundle, "source", None),
        "revision": getattr(bundle, "revision", None),
        "dtype": str(getattr(bundle, "dtype", None)),
        "device": str(next(bundle.model.parameters()).device),
        "instruct": plan.instruct,
        "convention": config.compat or "lgkit",
        "max_length": config.max_length,
        "modules": list(config.modules),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "data": plan.source,
        "data_sha256": plan.data_sha,
        "n_examples": len(plan.examples),
        "n_layers": len({t.layer for t in plan.targets}),
        "world_size": plan.world_size,
        "status": "running",
    }
    manifest.setdefault("start_time", now_iso())
    return manifest


def _loss_span(plan: RunPlan, i: int, enc: Encoded) -> Span | str:
    if plan.config.loss_on == "answer":
        return answer_token_span(plan.bundle.tokenizer, plan.examples[i], enc)
    return response_span(enc)


def encode_items(plan: RunPlan, writer: RunWriter) -> list[Item]:
    """Tokenise this rank's undone examples; those that cannot run become failure rows."""
    cfg = plan.config
    kw = {"instruct": plan.instruct, "max_length": cfg.max_length,
          "system_prompt": cfg.system_prompt, "compat": cfg.compat, "model_name": plan.bundle.name}  # fmt: skip
    items = []
    for i in plan.todo:
        try:
            enc = encode_example(plan.bundle.tokenizer, plan.examples[i], **kw)
        except InputError:
            raise
        except Exception as e:  # a tokenizer error on this record
            writer.fail(i, f"tokenisation failed: {type(e).__name__}: {e}", quiet=True)
            continue
        if enc.n_response_tokens == 0:
            writer.fail(
                i,
                f"response cut away entirely by max_length={cfg.max_length} (prompt has {enc.prompt_length} tokens)",
                enc,
                quiet=True,
            )
            continue
        if enc.n_prompt_tokens == 0:
            writer.fail(
                i, "empty prompt part: the first response token has no context", enc, quiet=True
            )
            continue
        span = _loss_span(plan, i, enc)
        if isinstance(span, str):
            writer.fail(i, span, enc, quiet=True)
            continue
        items.append(Item(i, enc, span))
    if cfg.loss_on == "answer" and plan.todo and not items:
        raise InputError(
            "no record has a findable final answer for --loss-on answer (an 'answer' in meta, "
            "or 'The final answer is ...', 'the answer is ...', '#### ...', \\boxed{...} in the output)",
            path=plan.source,
        )
    log_failures(writer.failures)  # logged once it is clear the run goes on
    return items


def log_failures(failures: list[dict[str, Any]], shown: int = 3) -> None:
    """One warning line per reason, however many examples share it (e.g. "answer span not
    found" for most of a file), naming the first ``shown`` examples.

    Example:
        >>> import logging, sys
        >>> h = logging.StreamHandler(sys.stdout); log.addHandler(h)
        >>> log_failures([{"example_index": i, "sample_id": f"s{i}", "reason": "r"} for i in range(5)])
        5 examples failed: r (s0, s1, s2, …)
        >>> log.removeHandler(h)
    """
    by_reason: dict[str, list[str]] = {}
    for rec in failures:
        by_reason.setdefault(str(rec["reason"]), []).append(str(rec["sample_id"]))
    for reason, ids in by_reason.items():
        more = ", …" if len(ids) > shown else ""
        log.warning(
            "%d example%s failed: %s (%s%s)",
            len(ids), "s" if len(ids) > 1 else "", reason, ", ".join(ids[:shown]), more,
        )  # fmt: skip


def make_batches(items: list[Item], batch_size: int) -> list[list[Item]]:
    """Padded batches of ``batch_size`` examples; similar lengths share a batch (less padding)."""
    if batch_size > 1:
        items = sorted(items, key=lambda it: len(it.enc.input_ids))
    return [items[k : k + batch_size] for k in range(0, len(items), batch_size)]


def _forward_backward(plan: RunPlan, batch: list[Item], pad_id: int) -> BatchResult:
    cfg = plan.config
    return forward_backward(
        plan.bundle.model,
        plan.targets,
        [it.enc for it in batch],
        pad_id=pad_id,
        spectrum=cfg.spectrum,
        similarities=cfg.similarities,
        stats_threads=cfg.stats_threads,
        loss_chunk=cfg.loss_chunk,
        spans=[it.span for it in batch],
        token_stats=cfg.token_stats,
    )


def _run_isolating(plan: RunPlan, batch: list[Item], pad_id: int) -> tuple[list[tuple], float]:
    """One batch; if it fails, each example alone, so only the failing ones are lost.

    Returns ``([(item, rows, loss, terms, error)], seconds in statistics)``.
    """
    try:
        r = _forward_backward(plan, batch, pad_id)
        terms = r.token_terms or [{}] * len(batch)
        return [
            (it, r.rows[k], r.losses[k], terms[k], None) for k, it in enumerate(batch)
        ], r.seconds
    except (RuntimeError, ValueError, IndexError) as e:  # isolate the failing example(s)
        if _is_oom(e) and torch.cuda.is_available():
            torch.cuda.empty_cache()
    outcome, seconds = [], 0.0
    for it in batch:
        try:
            r = _forward_backward(plan, [it], pad_id)
            outcome.append((it, r.rows[0], r.losses[0], (r.token_terms or [{}])[0], None))
            seconds += r.seconds
        except (RuntimeError, ValueError, IndexError) as e1:
            outcome.append((it, None, None, None, f"{type(e1).__name__}: {e1}"))
    return outcome, seconds


def run_batches(
    plan: RunPlan,
    items: list[Item],
    writer: RunWriter,
    progress: bool,
    on_progress: Callable[[int, float], None] | None = None,
) -> None:
    """Stage 2: every batch through forward + backward, results handed to the writer."""
    mdl, tok, result = plan.bundle.model, plan.bundle.tokenizer, writer.result
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    saved_flags = {n: p.requires_grad for n, p in mdl.named_parameters()}
    mdl.requires_grad_(False)
    bar = tqdm(total=len(plan.todo), desc=f"grads {Path(plan.source).name}",
               disable=not progress, initial=0, unit="ex")  # fmt: skip
    bar.update(result.n_failed)
    try:
        for batch in make_batches(items, plan.config.batch_size):
            t0 = time.perf_counter()
            outcome, s_stats = _run_isolating(plan, batch, pad_id)
            result.seconds_stats += s_stats
            result.seconds_model += time.perf_counter() - t0 - s_stats
            for it, rows, loss, terms, err in outcome:
                kind = "runtime"  # an error: a rerun may get through
                if err is None and not torch.isfinite(torch.tensor(loss)):
                    err, kind = f"non-finite loss {loss}", "data"  # the same on every rerun
                if err is not None:
                    writer.fail(it.index, err, it.enc, kind=kind)
                else:
                    writer.add(it, rows, loss, terms)
            bar.update(len(batch))
            if on_progress is not None:
                on_progress(len(batch), time.perf_counter() - t0)
            writer.maybe_flush()
        writer.flush()
    finally:
        bar.close()
        for n, p in mdl.named_parameters():
            p.requires_grad_(saved_flags.get(n, p.requires_grad))


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
    rank, world_size = _dist_info(rank, world_size)
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


def _resolve_model(model: Any, config: GradConfig, device: str | None, dtype: str | None) -> Any:
    if isinstance(model, (str, Path)):
        from lgkit.models.load import load_model

        kw: dict[str, Any] = {"instruct": config.instruct}
        if device:
            kw["device"] = device
        if dtype:
            kw["dtype"] = dtype
        return load_model(str(model), **kw)
    return model


def _is_oom(e: BaseException) -> bool:
    return "out of memory" in str(e).lower()


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
    data>``; a complete run there, once verified (:mod:`lgkit.engine.ledger`), is read
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
