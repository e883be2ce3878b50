"""Stage 2 of a run: examples encoded into items, padded batches through forward + backward.

:func:`encode_items` tokenises this rank's undone examples (those that cannot run become
failure rows of kind ``data``); :func:`run_batches` runs them in padded batches of similar
length through :func:`lgkit.engine.batch.forward_backward` and hands each example's rows to
the :class:`~lgkit.engine.writer.RunWriter`; a failing batch is retried example by example
so only the failing ones are lost (kind ``runtime``, retried by a rerun).

Example:
    >>> make_batches([], 4)
    []
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from lgkit.engine.batch import BatchResult, Span, forward_backward, response_span
from lgkit.engine.plan import Item, RunPlan
from lgkit.engine.spans import answer_token_span
from lgkit.engine.writer import RunWriter
from lgkit.errors import InputError
from lgkit.formats.prompts import Encoded, encode_example

log = logging.getLogger(__name__)


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


def _is_oom(e: BaseException) -> bool:
    return "out of memory" in str(e).lower()
