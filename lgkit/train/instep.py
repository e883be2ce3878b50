"""In-step statistics: each training example's exact spectra from the trainer's own backward.

On a measured optimizer step, :class:`InStep` puts hooks on the training model (they are
removed when the step ends; nothing is kept past it):

* a forward pre-hook on the model reads the micro-batch's ``input_ids``, ``labels`` and
  ``attention_mask`` (which examples, how long, which tokens carry the loss);
* a forward hook on the LM head keeps the loss positions' logits and puts a hook on its
  output (before a final soft-cap, which is undone exactly; the head, not the model's
  output, because accelerate's mixed precision hands the trainer a float copy of the
  logits): in the backward the logits' gradient is ``c_b (softmax − onehot)`` on
  every loss token of example ``b``, whatever normalisation the trainer used
  (``num_items_in_batch``, gradient accumulation, world size, a loss scaler). ``c_b`` is
  read from it by least squares on up to :data:`FIT_TOKENS` evenly spaced loss tokens
  (a residual check there refuses losses that are not a token-weighted cross-entropy,
  e.g. label smoothing);
* the engine's :class:`lgkit.engine.capture.GradientCapture` hands each projection's X
  and D to the engine's :class:`lgkit.engine.batch.BatchStats`, with D rescaled by
  ``1 / (c_b n_b)`` (``n_b`` loss tokens): the gradient of the example's own mean loss,
  so a row equals ``lgkit grads`` on the pre-step weights for that example (dropout 0).

Hooks only read: no tensor of the training graph is changed, no RNG is drawn, so the
weights after training are bit-identical with and without them (tests/test_train_instep.py).

Example:
    >>> InStep.__name__
    'InStep'
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lgkit.engine.arch import Target
from lgkit.engine.batch import BatchStats
from lgkit.engine.capture import GradientCapture
from lgkit.engine.spectra import default_stats_threads
from lgkit.errors import InputError

log = logging.getLogger(__name__)

RESIDUAL_LIMIT = 1e-3
"""Largest relative residual ‖g − c r‖/‖g‖ of the logits gradient accepted in float32."""
RESIDUAL_LIMIT_LOW = 5e-2
"""The same for logits in bfloat16/float16 (their gradient is rounded to 8–11 bits)."""


def token_key(ids: Sequence[int]) -> str:
    """A short digest of a token sequence (how a training example is recognised in a batch).

    Example:
        >>> token_key([1, 2, 3]) == token_key((1, 2, 3)), len(token_key([1]))
        (True, 16)
    """
    return hashlib.sha1(",".join(map(str, ids)).encode()).hexdigest()[:16]


def _autocast(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except (TypeError, RuntimeError):  # older torch: no device argument
        return bool(torch.is_autocast_enabled())


FIT_TOKENS = 32
"""Loss tokens per example the trainer's scale ``c_b`` is read from (and checked on)."""


def fit_positions(n: int, k: int | None = None) -> torch.Tensor:
    """Up to ``k`` evenly spaced indices of ``n`` loss tokens (first and last included).

    The logits' gradient is ``c_b (softmax − onehot)`` on *every* loss token of example
    ``b``, so ``c_b`` is read (and the loss's form checked) on a few of them: a softmax
    over the vocabulary for every token cost more than the spectra themselves.

    Example:
        >>> fit_positions(3).tolist(), fit_positions(100, 4).tolist(), fit_positions(0).tolist()
        ([0, 1, 2], [0, 33, 66, 99], [])
    """
    k = FIT_TOKENS if k is None else k
    if n <= k:
        return torch.arange(n)
    return torch.linspace(0, n - 1, k).round().long().unique()


def _fit_scale(g: torch.Tensor, r: torch.Tensor, low: bool, where: str) -> float:
    """``c`` with ``g ≈ c r`` by least squares; refuses a loss that is not of that form.

    Example:
        >>> r = torch.tensor([[0.5, -0.5], [-0.2, 0.2]], dtype=torch.float64)
        >>> _fit_scale(0.25 * r, r, False, "logits")
        0.25
    """
    c = float((g * r).sum() / (r * r).sum())
    resid = float((g - c * r).norm() / g.norm().clamp_min(1e-300))
    if not resid <= (RESIDUAL_LIMIT_LOW if low else RESIDUAL_LIMIT) or not c > 0:
        raise InputError(
            f"the trainer's loss is not a token-weighted cross-entropy (residual {resid:.2g} "
            f"of the {where} gradient; label smoothing, a temperature or an extra loss term?): "
            "in-step statistics cannot be rescaled; use the probe mode",
            field="instep_every",
        )
    return c


@dataclass
class ExampleInfo:
    """What the in-step rows say about a training example (known from the training data)."""

    sample_id: str
    dataset: str = ""
    cot: str = ""
    correct: bool | None = None
    n_prompt_tokens: int | None = None
    n_response_tokens: int | None = None
    truncated: bool | None = None


@dataclass
class _Micro:
    """One micro-batch of a measured step (forward, then backward)."""

    index: int
    lengths: list[int]
    keys: list[str]
    loss_pos: list[torch.Tensor]  # per example: positions t whose logits predict a loss token
    labels: list[torch.Tensor]
    seq_len: int = 0
    hidden: list[torch.Tensor] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)
    scale: torch.Tensor | None = None
    collector: BatchStats | None = None
    rows: list[list[dict[str, Any]]] = field(default_factory=list)


def _model_inputs(args: tuple, kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    ids = kwargs.get("input_ids", args[0] if args else None)
    return ids, kwargs.get("labels"), kwargs.get("attention_mask")


class InStep:
    """Hooks of one measured step on a training model; rows per example × layer × module.

    Args:
        model: the model the Trainer calls (peft/DDP wrappers are fine: hooks sit on it
            and on the projections found in it).
        targets: the measured projections (:func:`lgkit.engine.arch.find_targets`).
        examples: token digest (:func:`token_key`) → :class:`ExampleInfo`; an example not
            found gets ``sample_id = "tok:<digest>"``.
        spectrum: also keep each row's singular values.
    """

    def __init__(
        self,
        model: nn.Module,
        targets: Sequence[Target],
        examples: dict[str, ExampleInfo] | None = None,
        *,
        spectrum: bool = False,
    ) -> None:
        self.model = model
        self.targets = list(targets)
        self.examples = examples or {}
        self.spectrum = spectrum
        self.micro: list[_Micro] = []
        self._capture: GradientCapture | None = None
        self._handles: list[Any] = []
        self._flush_at = len({t.module for t in self.targets})
        self.seconds = 0.0
        """Time spent in the hooks and in the statistics."""

    # ------------------------------------------------------------------ hooks

    def __enter__(self) -> InStep:
        head = self.model.get_output_embeddings()
        if head is None:
            raise InputError("in-step statistics need a model with an LM head",
                             field="instep_every")  # fmt: skip
        cfg = getattr(self.model, "config", None)
        cfg = getattr(cfg, "text_config", None) or cfg
        self._softcap = getattr(cfg, "final_logit_softcapping", None)
        inner = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        backbone = getattr(inner, "base_model", None)
        self._head = head
        self._handles = [
            self.model.register_forward_pre_hook(self._pre, with_kwargs=True),
            head.register_forward_hook(self._post),
        ]
        if isinstance(backbone, nn.Module) and backbone is not inner:
            self._handles.append(backbone.register_forward_hook(self._on_backbone))
        self._capture = GradientCapture(self.model, self.targets, self._on_grad).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook (also the ones the capture registered)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._capture is not None:
            self._capture.remove()
            self._capture = None

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        if not torch.is_grad_enabled():
            return  # an evaluation forward: not part of the step
        t0 = time.perf_counter()
        self._begin(args, kwargs)
        self.seconds += time.perf_counter() - t0

    def _begin(self, args: tuple, kwargs: dict[str, Any]) -> None:
        self._finish_last()
        ids, labels, mask = _model_inputs(args, kwargs)
        if ids is None or labels is None:
            raise InputError(
                "in-step statistics need input_ids and labels in the model call (the "
                "trainer computes its loss elsewhere); use the probe mode (every=...)",
                field="instep_every",
            )
        if kwargs.get("cu_seq_lens_q") is not None or (
            kwargs.get("position_ids") is not None and kwargs.get("attention_mask") is None
        ):
            raise InputError("in-step statistics do not support packed sequences",
                             field="instep_every")  # fmt: skip
        ids_c, labels_c = ids.detach().cpu(), labels.detach().cpu()
        B, T = ids_c.shape
        if mask is None:
            lengths = [T] * B
        else:
            m = mask.detach().cpu().bool()
            lengths = m.sum(1).tolist()
            right = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
            if not torch.equal(m, right):
                raise InputError("in-step statistics need right padding (padding_side='right')",
                                 field="instep_every")  # fmt: skip
        keys, pos, labs = [], [], []
        for b, L in enumerate(lengths):
            keys.append(token_key(ids_c[b, :L].tolist()))
            lab = labels_c[b, 1:L]
            p = torch.nonzero(lab != -100).flatten()
            pos.append(p)
            labs.append(lab[p])
        self.micro.append(_Micro(len(self.micro), lengths, keys, pos, labs, seq_len=T))

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not torch.is_grad_enabled() or not self.micro:
            return
        t0 = time.perf_counter()
        mb = self.micro[-1]
        logits = output
        if not isinstance(logits, torch.Tensor) or not logits.requires_grad:
            return
        if mb.logits:
            raise InputError("in-step statistics: the LM head ran twice in one forward "
                             "(chunked loss?); use the probe mode", field="instep_every")  # fmt: skip
        if logits.shape[1] != mb.seq_len:
            raise InputError("in-step statistics need the logits of every position "
                             "(logits_to_keep=0)", field="instep_every")  # fmt: skip
        with torch.no_grad():
            for b, p in enumerate(mb.loss_pos):
                lg = logits[b, p.to(logits.device)].detach().float()
                if self._softcap:
                    lg = torch.tanh(lg / self._softcap) * self._softcap
                fit = fit_positions(len(p)).to(lg.device)
                mb.logits.append(lg[fit])  # only the rows the scale is read from
                if len(p):
                    lab = mb.labels[b].to(lg.device)
                    mb.losses.append(float(torch.nn.functional.cross_entropy(lg, lab)))
                else:
                    mb.losses.append(float("nan"))
        low = logits.dtype in (torch.bfloat16, torch.float16) or _autocast(logits.device.type)
        logits.register_hook(lambda g: self._on_logits(mb, g, low))
        self.seconds += time.perf_counter() - t0

    def _on_logits(self, mb: _Micro, g: torch.Tensor, low: bool) -> None:
        t0 = time.perf_counter()
        with torch.no_grad():
            cs = []
            for b, p in enumerate(mb.loss_pos):
                if not len(p):
                    cs.append(None)  # no loss token: the example's gradient is zero
                    continue
                fit = fit_positions(len(p))
                gb = g[b, p[fit].to(g.device)].double()
                if self._softcap:  # gradient w.r.t. the capped logits: undo d tanh
                    t = mb.logits[b].double() / self._softcap
                    gb = gb / (1.0 - t * t).clamp_min(1e-12)
                r = torch.softmax(mb.logits[b].double(), dim=-1)
                r[torch.arange(len(fit)), mb.labels[b][fit].to(r.device)] -= 1.0
                cs.append(_fit_scale(gb, r, low, "logits"))
            mb.logits = []  # not kept past the backward
            self._start_stats(mb, cs)
        self.seconds += time.perf_counter() - t0

    def _on_backbone(self, module: nn.Module, args: tuple, output: Any) -> None:
        """The backbone's last hidden state: the fallback when no logits exist (fused heads)."""
        if not torch.is_grad_enabled() or not self.micro:
            return
        h = getattr(output, "last_hidden_state", None)
        if h is None and isinstance(output, tuple) and output:
            h = output[0]
        if (
            not isinstance(h, torch.Tensor)
            or not h.requires_grad
            or h.shape[1] != self.micro[-1].seq_len
        ):
            return
        mb = self.micro[-1]
        mb.hidden = [h[b, p.to(h.device)].detach() for b, p in enumerate(mb.loss_pos)]
        low = h.dtype in (torch.bfloat16, torch.float16) or _autocast(h.device.type)
        h.register_hook(lambda g: self._on_hidden(mb, g, low))

    def _on_hidden(self, mb: _Micro, g: torch.Tensor, low: bool) -> None:
        if mb.scale is not None:  # the logits' gradient came first and gave the scale
            mb.hidden = []
            return
        t0 = time.perf_counter()
        W = self._head.weight
        bias = getattr(self._head, "bias", None)
        with torch.no_grad():
            cs = []
            mb.losses = []
            for b, p in enumerate(mb.loss_pos):
                if not len(p):
                    cs.append(None)
                    mb.losses.append(float("nan"))
                    continue
                hs = mb.hidden[b].to(W.device, torch.float32)
                z = hs @ W.float().T + (bias.float() if bias is not None else 0.0)
                if self._softcap:
                    z = torch.tanh(z / self._softcap) * self._softcap
                lab = mb.labels[b].to(z.device)
                mb.losses.append(float(torch.nn.functional.cross_entropy(z, lab)))
                fit = fit_positions(len(p)).to(z.device)
                z = z[fit]
                r = torch.softmax(z.double(), dim=-1)
                r[torch.arange(len(fit)), lab[fit]] -= 1.0
                if self._softcap:
                    t = z.double() / self._softcap
                    r = r * (1.0 - t * t)
                rh = (r.float() @ W.float()).double()
                gh = g[b, p[fit.cpu()].to(g.device)].double()
                cs.append(_fit_scale(gh, rh, low, "hidden state"))
            mb.hidden = []
            self._start_stats(mb, cs)
        self.seconds += time.perf_counter() - t0

    def _start_stats(self, mb: _Micro, cs: list[float | None]) -> None:
        scale = torch.zeros(len(mb.lengths), dtype=torch.float64)
        for b, c in enumerate(cs):
            if c is not None:
                scale[b] = 1.0 / (c * len(mb.loss_pos[b]))
        mb.scale = scale
        mb.collector = BatchStats(mb.lengths, self.spectrum, False,
                                  workers=default_stats_threads(), flush_at=self._flush_at)  # fmt: skip

    def _on_grad(self, group: list[Target], X: torch.Tensor, D: torch.Tensor) -> None:
        mb = self.micro[-1] if self.micro else None
        if mb is None or mb.collector is None or mb.scale is None:
            raise RuntimeError("in-step: a projection's gradient arrived before the logits'")
        t0 = time.perf_counter()
        with torch.no_grad():
            s = mb.scale.to(device=D.device, dtype=torch.float32)[:, None, None]
            mb.collector(group, X.float(), D.float() * s)
        self.seconds += time.perf_counter() - t0

    def _finish_last(self) -> None:
        mb = self.micro[-1] if self.micro else None
        collector = mb.collector if mb is not None else None
        if mb is None or collector is None or mb.rows:
            return
        t0 = time.perf_counter()
        collector.finish()
        order = {(t.layer, t.module): k for k, t in enumerate(self.targets)}
        rows: list[list[dict[str, Any]]] = [[] for _ in mb.lengths]
        for (b, _, _), row in collector.results.items():
            rows[b].append(row)
        for b, rs in enumerate(rows):
            rs.sort(key=lambda r: order.get((r["layer"], r["module"]), 0))
            if len(mb.loss_pos[b]) and len(rs) != len(self.targets):
                raise RuntimeError(
                    f"in-step: captured {len(rs)} of {len(self.targets)} projections"
                )
        mb.rows = rows
        mb.collector = None
        self.seconds += time.perf_counter() - t0

    # ------------------------------------------------------------------ rows

    def rows(self, step: int, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The step's rows: engine columns plus ``step``, ``micro_step``, ``batch_index``.

        Examples without loss tokens in the batch (nothing to measure) give no rows.
        """
        self._finish_last()
        out: list[dict[str, Any]] = []
        for mb in self.micro:
            for b, rs in enumerate(mb.rows):
                if not rs:
                    continue
                info = self.examples.get(mb.keys[b]) or ExampleInfo(f"tok:{mb.keys[b]}")
                n_loss = len(mb.loss_pos[b])
                first = int(mb.loss_pos[b][0]) + 1
                base = {
                    "step": step, "micro_step": mb.index, "batch_index": b,
                    "sample_id": info.sample_id, "dataset": info.dataset, "cot": info.cot,
                    "correct": info.correct, "loss": mb.losses[b],
                    "n_prompt_tokens": info.n_prompt_tokens if info.n_prompt_tokens is not None else first,
                    "n_response_tokens": info.n_response_tokens if info.n_response_tokens is not None
                    else mb.lengths[b] - first,
                    "truncated": info.truncated, "n_loss_tokens": n_loss, **(extra or {}),
                }  # fmt: skip
                out.extend({**base, **r} for r in rs)
        return out


def example_index(
    rows: Sequence[dict[str, Any]],
    infos: Sequence[ExampleInfo],
) -> dict[str, ExampleInfo]:
    """Token digest → :class:`ExampleInfo` for encoded training rows (``input_ids``)."""
    return {token_key(r["input_ids"]): info for r, info in zip(rows, infos, strict=True)}


def dataset_index(dataset: Any, limit: int = 200_000) -> dict[str, ExampleInfo]:
    """Token digest → :class:`ExampleInfo` read from a Trainer's training dataset.

    The sample id is the record's ``sample_id``/``id`` column when it has one, else its
    index. Datasets without ``__len__``/``input_ids`` (or larger than ``limit``) give an
    empty index: rows then name examples ``tok:<digest>``.
    """
    try:
        n = len(dataset)
    except TypeError:
        return {}
    if n > limit:
        return {}
    out: dict[str, ExampleInfo] = {}
    for i in range(n):
        try:
            rec = dataset[i]
            ids = rec["input_ids"]
        except (KeyError, TypeError, IndexError):
            return {}
        sid = rec.get("sample_id", rec.get("id", i)) if isinstance(rec, dict) else i
        out.setdefault(token_key(list(ids)), ExampleInfo(str(sid)))
    return out
