"""Stage 3 of a run: the rows, failures and per-token rows of whole examples, written as parts.

Example:
    >>> RunWriter.__name__
    'RunWriter'
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lgkit.engine.plan import Item, RunPlan, RunResult
from lgkit.formats.ledger import fingerprint_sha
from lgkit.formats.parts import write_failures, write_part, write_token_part
from lgkit.formats.prompts import Encoded

log = logging.getLogger(__name__)


class RunWriter:
    """Stage 3: buffers the rows, failures and per-token rows of whole examples and writes
    them as atomic parts every ``flush_every`` examples (what a kill can cost at most)."""

    def __init__(self, plan: RunPlan, result: RunResult) -> None:
        self.plan = plan
        self.result = result
        self.rows: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.tokens: list[dict[str, Any]] = []
        self.n = 0
        self.part_meta = {"fingerprint": fingerprint_sha(plan.fingerprint)}

    def meta(self, i: int) -> dict[str, Any]:
        """The example columns of record ``i``."""
        ex = self.plan.examples[i]
        return {
            "sample_id": self.plan.ids[i],
            "example_index": i,
            "dataset": ex.dataset,
            "cot": ex.cot,
            "correct": ex.correct,
        }

    def fail(
        self,
        i: int,
        reason: str,
        enc: Encoded | None = None,
        quiet: bool = False,
        kind: str = "data",
    ) -> None:
        """Record example ``i`` as a failure with its reason (``quiet``: log it later).

        ``kind``: ``data`` (fails the same way on every rerun with these settings) or
        ``runtime`` (a rerun retries it).
        """
        rec = {
            **self.meta(i),
            "reason": reason,
            "kind": kind,
            "failed_at": time.time(),
            "n_prompt_tokens": enc.n_prompt_tokens if enc else None,
            "n_tokens": len(enc.input_ids) if enc else None,
        }
        self.failures.append(rec)
        self.result.failures.append(rec)
        self.result.n_failed += 1
        self.n += 1
        if not quiet:
            self.log_failure(rec)

    def log_failure(self, rec: dict[str, Any]) -> None:
        """Log one failure record as a warning."""
        log.warning(
            "example %d (%s) failed: %s", rec["example_index"], rec["sample_id"], rec["reason"]
        )

    def add(self, item: Item, rows: list[dict[str, Any]], loss: float, terms: dict) -> None:
        """Buffer the statistics rows (and per-token rows) of one example."""
        enc = item.enc
        base = {
            **self.meta(item.index),
            "loss": loss,
            "n_prompt_tokens": enc.n_prompt_tokens,
            "n_response_tokens": enc.n_response_tokens,
            "truncated": enc.truncated,
        }
        n_loss = item.span[1] - item.span[0]
        self.rows.extend({**base, **r, "n_loss_tokens": n_loss} for r in rows)
        if terms:
            self.tokens.extend(self._token_rows(item, terms))
        self.result.n_done += 1
        self.n += 1

    def _token_rows(self, item: Item, terms: dict) -> list[dict[str, Any]]:
        tok = self.plan.bundle.tokenizer
        text = [tok.decode([t]) for t in item.enc.input_ids]
        (s0, s1), p = item.span, item.enc.n_prompt_tokens
        meta = {"sample_id": self.plan.ids[item.index], "example_index": item.index}
        return [
            {**meta, "position": t, "token": text[t], "in_response": t >= p,
             "in_loss": s0 <= t < s1, "layer": layer, "module": mod, "token_norm": v}
            for (layer, mod), vals in terms.items()
            for t, v in enumerate(vals.tolist())
        ]  # fmt: skip

    def maybe_flush(self) -> None:
        """Write the buffers once they hold ``flush_every`` examples."""
        if self.n >= self.plan.config.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered: per-token part first, then statistics, then failures."""
        out, rank = self.plan.out, self.plan.rank
        meta = self.part_meta
        write_token_part(out, self.tokens, rank=rank, meta=meta)
        write_part(out, self.rows, rank=rank, meta=meta)
        write_failures(out, self.failures, rank=rank, meta=meta)
        self.rows, self.failures, self.tokens, self.n = [], [], [], 0
