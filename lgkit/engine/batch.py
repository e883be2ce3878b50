"""One padded batch: forward, per-example losses, backward, statistics as gradients arrive.

Several examples may share one padded batch: the backward of the *sum* of the
per-example mean losses gives each example exactly its own gradients. Each example's
loss covers a span of its tokens: the response (the paper) or, with
``GradConfig.loss_on="answer"``, the final-answer tokens only.

Example:
    >>> logits = torch.zeros(1, 3, 5); ids = torch.tensor([[1, 2, 3]])
    >>> round(float(per_example_losses(logits, ids, [Encoded([1, 2, 3], 1, 2, False)])[0]), 4)
    1.6094
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from lgkit.engine.arch import ALL_MODULES, Target
from lgkit.engine.capture import GradientCapture
from lgkit.engine.spectra import (
    SpectralJob,
    default_stats_threads,
    drop_zero_rows,
    entry_stats,
    gradient_cosine,
    input_r_factor,
    nonzero_rows,
    solve_spectra,
    spectral_job,
    stats_from_singular_values,
    use_factor_route,
)
from lgkit.formats.prompts import Encoded

# Above this many response-logit values (~256 MB in float32) the LM head runs in chunks.
LOGITS_CHUNK_ABOVE = 64 * 2**20

Span = tuple[int, int]
"""Token positions ``[start, end)`` carrying an example's loss (``start`` >= 1)."""


def response_span(enc: Encoded) -> Span:
    """The loss span of the paper: every kept response token.

    Example:
        >>> response_span(Encoded([5, 6, 7, 8], 2, 2, False))
        (2, 4)
    """
    return enc.n_prompt_tokens, len(enc.input_ids)


class BatchStats:
    """Collects the statistics of one padded batch as gradients arrive.

    When a projection's gradient arrives, the cheap parts run at once on every core (G,
    its entry statistics, dropping zero rows; the T×T Gram of the factor route). The
    direct route's Grams and all eigen-solves are queued and, once a layer's worth is
    pending, solved ``workers`` at a time by :func:`lgkit.engine.spectra.solve_spectra`, each a
    single-threaded LAPACK call: a 2-core CPU solves q and o (then k and v) side by side.

    Per-token quantities come from the same factors: ``token_norm_sum`` = Σ_t ‖d_t‖‖x_t‖
    over the example's own tokens (an upper bound of the nuclear norm of G = Σ_t d_t x_tᵀ)
    and ``coherence`` = nuclear_norm / token_norm_sum; with ``token_stats`` the terms
    ‖d_t‖‖x_t‖ themselves are kept per position (:attr:`token_terms`).
    """

    def __init__(
        self,
        lengths: list[int],
        spectrum: bool,
        similarities: bool,
        workers: int = 1,
        flush_at: int = 4,
        token_stats: bool = False,
        token_columns: bool = True,
    ) -> None:
        self.lengths = lengths
        self.spectrum = spectrum
        self.similarities = similarities
        self.results: dict[tuple[int, int, str], dict[str, Any]] = {}
        self.factors: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._rx: dict[tuple[int, int, bytes], torch.Tensor] = {}
        self._pending: list[tuple[tuple[int, int, str], SpectralJob]] = []
        self.workers = max(1, workers)
        self.flush_at = max(1, flush_at)
        self.seconds = 0.0
        self.token_stats = token_stats
        self.token_columns = token_columns or token_stats
        self.token_terms: dict[tuple[int, int, str], torch.Tensor] = {}

    def __call__(self, group: list[Target], X: torch.Tensor, D: torch.Tensor) -> None:
        t0 = time.perf_counter()
        for b, L in enumerate(self.lengths):
            Xb = X[b, :L]
            x_keep = nonzero_rows(Xb)
            x_norm = torch.linalg.vector_norm(Xb, dim=1).double() if self.token_columns else None
            Db_all = D[b, :L]
            for t in group:
                Db = Db_all if t.index is None else Db_all[:, t.index]
                G = Db.T @ Xb
                keep = nonzero_rows(Db) & x_keep
                Dk, Xk = drop_zero_rows(Db, Xb, keep)
                r_x = None
                if use_factor_route(Dk.shape[0], *t.shape):  # share R of X across q/k/v
                    key = (Xb.data_ptr(), b, keep.cpu().numpy().tobytes())
                    r_x = self._rx.get(key)
                    if r_x is None:
                        r_x = self._rx[key] = input_r_factor(Xk)
                job = spectral_job(Dk, Xk, G=G, r_x=r_x)
                row: dict[str, Any] = {
                    "layer": t.layer,
                    "module": t.module,
                    "param": t.param_name,
                    "shape": f"{t.shape[0]} x {t.shape[1]}",
                    **entry_stats(G),
                }
                if x_norm is not None:
                    terms = torch.linalg.vector_norm(Db, dim=1).double() * x_norm
                    row["token_norm_sum"] = float(terms.sum())
                    if self.token_stats:
                        self.token_terms[(b, t.layer, t.module)] = terms.cpu()
                self.results[(b, t.layer, t.module)] = row
                self._pending.append(((b, t.layer, t.module), job))
                if self.similarities:
                    self.factors[(b, t.layer, t.module)] = (Dk, Xk)
        if len(self._pending) >= self.flush_at * len(self.lengths):
            self._solve()
        self.seconds += time.perf_counter() - t0

    def _solve(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        svs = solve_spectra([job for _, job in pending], self.workers)
        for (key, _), sv in zip(pending, svs, strict=True):
            row = self.results[key]
            row.update(stats_from_singular_values(sv))
            tns = row.get("token_norm_sum")
            if tns is not None:
                row["coherence"] = row["nuclear_norm"] / tns if tns > 0 else float("nan")
            if self.spectrum:
                row["spectrum"] = sv.cpu().tolist()

    def finish(self) -> None:
        """Solve what is still pending (call after the backward)."""
        t0 = time.perf_counter()
        self._solve()
        self.seconds += time.perf_counter() - t0

    def add_similarities(self) -> None:
        t0 = time.perf_counter()
        pairs = {"q": "o", "o": "q", "k": "v", "v": "k", "gate": "up", "up": "gate"}
        for (b, layer, mod), row in self.results.items():
            D1, X1 = self.factors[(b, layer, mod)]
            nxt = self.factors.get((b, layer + 1, mod))
            row["cos_next_layer"] = (
                gradient_cosine(D1, X1, *nxt)
                if nxt is not None
                and nxt[0].shape[1] == D1.shape[1]
                and nxt[1].shape[1] == X1.shape[1]
                else float("nan")
            )
            other = self.factors.get((b, layer, pairs.get(mod, "")))
            same = (
                other is not None
                and other[0].shape[1] == D1.shape[1]
                and other[1].shape[1] == X1.shape[1]
            )
            row["cos_pair"] = (
                _cos_aligned(D1, X1, *other) if same and other is not None else float("nan")
            )
        self.factors.clear()
        self.seconds += time.perf_counter() - t0


def _cos_aligned(D1: torch.Tensor, X1: torch.Tensor, D2: torch.Tensor, X2: torch.Tensor) -> float:
    # factors of different modules may have dropped different zero rows: the Gram
    # formula needs both on the same tokens, so fall back to materialising when not
    if D1.shape[0] == D2.shape[0]:
        return gradient_cosine(D1, X1, D2, X2)
    g1, g2 = (D1.T @ X1).double(), (D2.T @ X2).double()
    den = float(g1.norm() * g2.norm())
    return float((g1 * g2).sum()) / den if den > 0 else float("nan")


def per_example_losses(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    encs: Sequence[Encoded],
    spans: Sequence[Span] | None = None,
) -> torch.Tensor:
    """Mean token cross-entropy over each example's loss span (B values).

    Args:
        logits: B×T×V logits.
        input_ids: B×T token ids.
        encs: the encoded examples (prompt/response split).
        spans: per example the ``[start, end)`` positions carrying the loss (None:
            the response, :func:`response_span`).

    Example:
        >>> logits = torch.zeros(1, 3, 5); ids = torch.tensor([[1, 2, 3]])
        >>> round(float(per_example_losses(logits, ids, [Encoded([1, 2, 3], 1, 2, False)])[0]), 4)
        1.6094
    """
    out = []
    for b, e in enumerate(encs):
        s0, s1 = spans[b] if spans is not None else response_span(e)
        out.append(F.cross_entropy(logits[b, s0 - 1 : s1 - 1].float(), input_ids[b, s0:s1]))
    return torch.stack(out)


# logit post-processing lgkit reproduces outside the model; any other keeps the model's own forward
_UNSUPPORTED_LOGIT_SCALES = ("logit_scale", "logits_scaling", "output_multiplier_scale")


def chunked_response_losses(
    model: torch.nn.Module,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    ids: torch.Tensor,
    encs: Sequence[Encoded],
    chunk: int,
    spans: Sequence[Span] | None = None,
) -> torch.Tensor | None:
    """Per-example response losses with the LM head applied in checkpointed chunks.

    Only ``chunk`` positions' logits exist at a time (recomputed in the backward), so
    long examples of large-vocabulary models fit in memory. Returns None for models
    whose logits are post-processed in ways this does not reproduce (the caller then
    uses the model's own forward).
    """
    from torch.utils.checkpoint import checkpoint

    cfg = getattr(model.config, "text_config", None) or model.config
    if any(getattr(cfg, a, None) not in (None, 1, 1.0) for a in _UNSUPPORTED_LOGIT_SCALES):
        return None
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    head = model.get_output_embeddings()
    if base is None or head is None or base is model:
        return None
    softcap = getattr(cfg, "final_logit_softcapping", None)
    hidden = base(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state

    def piece(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = head(h)
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        return F.cross_entropy(logits.float(), y, reduction="sum")

    out = []
    for b, e in enumerate(encs):
        p, L = spans[b] if spans is not None else response_span(e)
        total = hidden.new_zeros((), dtype=torch.float32)
        n = L - p
        size = -(-n // -(-n // chunk))  # balanced chunks: none much smaller than the others
        for s0 in range(p - 1, L - 1, size):
            s1 = min(s0 + size, L - 1)
            total = total + checkpoint(
                piece, hidden[b, s0:s1], ids[b, s0 + 1 : s1 + 1], use_reentrant=False
            )
        out.append(total / (L - p))
    return torch.stack(out)


@dataclass
class BatchResult:
    """What one padded batch gave.

    Attributes:
        rows: per example, one statistics row per target (layer, module order).
        losses: per example, the loss.
        seconds: time spent in statistics.
        token_terms: per example, ``{(layer, module): ‖d_t‖‖x_t‖ per position}`` (only
            with ``token_stats``).
    """

    rows: list[list[dict[str, Any]]]
    losses: list[float]
    seconds: float
    token_terms: list[dict[tuple[int, str], torch.Tensor]] = field(default_factory=list)


def _padded(encs: Sequence[Encoded], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = [len(e.input_ids) for e in encs]
    ids = torch.full((len(encs), max(lengths)), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, e in enumerate(encs):
        ids[b, : lengths[b]] = torch.tensor(e.input_ids)
        mask[b, : lengths[b]] = 1
    return ids.to(device), mask.to(device)


def _losses(
    model: torch.nn.Module,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    ids: torch.Tensor,
    encs: Sequence[Encoded],
    spans: Sequence[Span],
    loss_chunk: int | None,
) -> torch.Tensor:
    head = model.get_output_embeddings()
    vocab = head.weight.shape[0] if head is not None else 0
    n_loss = sum(s1 - s0 for s0, s1 in spans)
    if loss_chunk is None:
        loss_chunk = 512 if n_loss * vocab > LOGITS_CHUNK_ABOVE else 0
    if loss_chunk:
        losses = chunked_response_losses(model, embeds, mask, ids, encs, loss_chunk, spans)
        if losses is not None:
            return losses
    # Full logits on purpose: applying the LM head to only the few response rows
    # (logits_to_keep) changed SmolLM2's gradients by 2e-4 relative on 2-token
    # answers (a different small-M GEMM path); all rows kept them within 6e-6.
    out = model(inputs_embeds=embeds, attention_mask=mask, use_cache=False)
    return per_example_losses(out.logits, ids, encs, spans)


def _rows_per_example(collector: BatchStats, B: int, expected: int) -> list[list[dict[str, Any]]]:
    rows: list[list[dict[str, Any]]] = [[] for _ in range(B)]
    order = {m: k for k, m in enumerate(ALL_MODULES)}
    for (b, _, _), row in sorted(
        collector.results.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])
    ):
        rows[b].append(row)
    for b in range(B):
        if len(rows[b]) != expected:
            raise RuntimeError(
                f"captured {len(rows[b])} of {expected} projections (gradient did not reach some modules)"
            )
    return rows


def forward_backward(
    model: torch.nn.Module,
    targets: Sequence[Target],
    encs: Sequence[Encoded],
    *,
    pad_id: int = 0,
    spectrum: bool = False,
    similarities: bool = False,
    stats_threads: int | None = None,
    loss_chunk: int | None = None,
    spans: Sequence[Span] | None = None,
    token_stats: bool = False,
    token_columns: bool = True,
) -> BatchResult:
    """One forward + backward over a padded batch; statistics rows per example.

    ``loss_chunk``: apply the LM head in checkpointed chunks of this many positions
    (None: 512 when the loss logits would exceed ``LOGITS_CHUNK_ABOVE`` values;
    0: never), so long examples of large-vocabulary models fit in memory.

    ``stats_threads``: eigen-solves run side by side on this many threads (None: one per
    torch thread, at most 8).

    ``spans``: per example the positions carrying the loss (None: the response).
    ``token_stats``: also return each position's ‖d_t‖‖x_t‖. ``token_columns`` False
    leaves out ``token_norm_sum`` and ``coherence`` (only to measure their cost).
    """
    device = next(model.parameters()).device
    B = len(encs)
    spans = list(spans) if spans is not None else [response_span(e) for e in encs]
    ids, mask = _padded(encs, pad_id, device)
    collector = BatchStats(
        [len(e.input_ids) for e in encs],
        spectrum,
        similarities,
        workers=stats_threads if stats_threads is not None else default_stats_threads(),
        flush_at=len({t.module for t in targets}),
        token_stats=token_stats,
        token_columns=token_columns,
    )
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
    embeds.requires_grad_(True)
    with GradientCapture(model, targets, collector):
        losses = _losses(model, embeds, mask, ids, encs, spans, loss_chunk)
        torch.autograd.grad(losses.sum(), embeds)
    collector.finish()
    if similarities:
        collector.add_similarities()
    terms: list[dict[tuple[int, str], torch.Tensor]] = [{} for _ in range(B)]
    for (b, layer, mod), v in collector.token_terms.items():
        terms[b][(layer, mod)] = v
    return BatchResult(
        _rows_per_example(collector, B, len(targets)),
        [float(x) for x in losses.detach()],
        collector.seconds,
        terms if token_stats else [],
    )


def run_batch(
    model: torch.nn.Module,
    targets: Sequence[Target],
    encs: Sequence[Encoded],
    *,
    pad_id: int = 0,
    spectrum: bool = False,
    similarities: bool = False,
    stats_threads: int | None = None,
    loss_chunk: int | None = None,
    spans: Sequence[Span] | None = None,
) -> tuple[list[list[dict[str, Any]]], list[float], float]:
    """:func:`forward_backward` as ``(rows per example, loss per example, seconds in statistics)``.

    Example:
        >>> from lgkit.models import load_model
        >>> from lgkit.engine.arch import find_targets
        >>> lm = load_model("tiny-random-llama")
        >>> rows, losses, _ = run_batch(lm.model, find_targets(lm.model), [Encoded([1, 5, 7, 9], 2, 2, False)])
        >>> len(rows[0]) == len(find_targets(lm.model)), 0 < rows[0][0]["coherence"] <= 1
        (True, True)
    """
    r = forward_backward(
        model,
        targets,
        encs,
        pad_id=pad_id,
        spectrum=spectrum,
        similarities=similarities,
        stats_threads=stats_threads,
        loss_chunk=loss_chunk,
        spans=spans,
    )
    return r.rows, r.losses, r.seconds
