"""``SpectraCallback``: the engine's exact per-example statistics along a fine-tuning run.

A :class:`transformers.TrainerCallback` (works with ``Trainer`` and TRL's ``SFTTrainer``).
At step 0, every ``every`` optimizer steps and at the last step it measures, with the
current weights:

* the probe set through :func:`lgkit.engine.compute_stats` (one run directory per step,
  :func:`lgkit.train.load_trajectory` reads them as one table with a ``step`` column);
* the spectra of each projection's accumulated update ΔW = W_step − W_0
  (:mod:`lgkit.train.updates`), and with ``grad_spectra`` of the minibatch gradient;
* with ``heldout``, the loss on the final-answer tokens of held-out questions given the
  question alone.

With ``instep_every=K`` it also measures every *training* example of the first optimizer
step and of every K-th one from the trainer's own forward and backward
(:mod:`lgkit.train.instep`): one row per example × layer × module, equal to
``lgkit grads`` on that step's pre-step weights (``instep/``, :func:`lgkit.train.load_instep`).
The probe is then optional (``probe=None``).

Training is left untouched: the RNG states (torch, CUDA, NumPy, Python), each module's
train/eval mode, every ``requires_grad`` flag and ``.grad`` are saved and restored, the
optimizer is never read or written, and the probe runs in eval mode (no dropout).
Under ``torchrun`` each rank measures its share of the probe into the same table; the
update spectra and the held-out loss are rank 0's.

Example:
    >>> cb = SpectraCallback("probe.jsonl", "outputs/spectra", every=10)  # doctest: +SKIP
    >>> Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb]).train()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import TrainerCallback

from lgkit.engine.arch import find_targets
from lgkit.engine.batch import per_example_losses
from lgkit.engine.config import GradConfig
from lgkit.engine.run import compute_stats
from lgkit.errors import InputError
from lgkit.formats.prompts import DEFAULT_SYSTEM_PROMPT, encode_example
from lgkit.formats.records import Example
from lgkit.models.load import LoadedModel, is_instruct
from lgkit.train import tables as T
from lgkit.train.data import answer_examples, load_records
from lgkit.train.instep import ExampleInfo, InStep, dataset_index
from lgkit.train.updates import gradient_rows, snapshot, update_rows

log = logging.getLogger(__name__)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP/DataParallel wrappers (``.module``), else ``model``."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


@contextlib.contextmanager
def isolated(model: nn.Module) -> Iterator[None]:
    """Run a measurement without a trace on training: eval mode inside, everything restored.

    Restores the RNG states of torch (CPU and CUDA), NumPy and Python, each module's
    ``training`` flag, every parameter's ``requires_grad`` and ``.grad``, and grad mode.
    Inside, a forward patched for mixed precision by accelerate is replaced by the original.

    Example:
        >>> m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
        >>> a = torch.rand(1)
        >>> with isolated(m):
        ...     _ = torch.rand(5); m.training
        False
        >>> m.training, m[1].training
        (True, True)
    """
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())  # noqa: NPY002 (the global state training uses)
    cuda_rng = torch.cuda.get_rng_state_all() if cuda else None
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    grad_mode = torch.is_grad_enabled()
    # accelerate's mixed precision patches model.forward to run under autocast: measure the
    # float weights as they are (the statistics are exact), with the original forward
    patched = model.__dict__.get("forward")
    original = model.__dict__.get("_original_forward")
    if patched is not None and original is not None:
        model.forward = original
    model.eval()
    try:
        yield
    finally:
        if patched is not None and original is not None:
            model.forward = patched
        for p, flag, g in params:
            p.requires_grad_(flag)
            p.grad = g
        for m, training in modes:
            m.training = training
        torch.set_grad_enabled(grad_mode)
        torch.set_rng_state(rng[0])
        np.random.set_state(rng[1])  # noqa: NPY002
        random.setstate(rng[2])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


@contextlib.contextmanager
def _quiet(name: str = "lgkit.engine") -> Iterator[None]:
    lg = logging.getLogger(name)
    level = lg.level
    lg.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        lg.setLevel(level)


def _rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class SpectraCallback(TrainerCallback):
    """Probe statistics, update spectra and held-out answer loss along training.

    Args:
        probe: the probe set (a JSON/JSONL file of example records, or a list; None:
            no probe, only with ``instep_every``).
        out_dir: where the tables go (:mod:`lgkit.train.tables`).
        every: measure every ``every`` optimizer steps (0: only at step 0 and the last).
        tokenizer: the tokenizer (None: the trainer's ``processing_class``).
        heldout: held-out records for the answer loss (None: none).
        modules: projections measured (``"q,k,v,o"``, ``"attn"``, ``"all"``, …).
        max_length: probe tokens per example.
        instruct: chat template for the probe (None: when the tokenizer has one).
        system_prompt: system message for instruct models.
        grad_spectra: also the minibatch gradient's spectra at measured steps (full
            fine-tuning; taken after clipping, before the update).
        updates: the ΔW spectra (False: probe and held-out loss only).
        model_name: the name recorded in the probe manifests.
        batch_size: probe examples per padded batch (results are per example either way).
        probe_limit, heldout_limit: use only the first N records.
        instep_every: in-step statistics of every training example at the first optimizer
            step and every K-th (0: off).
        instep_examples: token digest → :class:`lgkit.train.instep.ExampleInfo` of the
            training examples (None: read from the trainer's training dataset).
        instep_tags: extra columns of every in-step row (e.g. ``{"arm": ..., "seed": ...}``).

    Attributes:
        measured: the steps measured by this process.
        seconds: time spent in the callback (all events).
        timings: per part (``probe``, ``updates``, ``heldout``) the seconds of each measurement.
    """

    def __init__(
        self,
        probe: str | Path | Sequence[Example],
        out_dir: str | Path,
        every: int = 10,
        *,
        tokenizer: Any = None,
        heldout: str | Path | Sequence[Example] | None = None,
        modules: str | Sequence[str] = ("q", "k", "v", "o"),
        max_length: int = 1024,
        instruct: bool | None = None,
        system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
        grad_spectra: bool = False,
        updates: bool = True,
        model_name: str | None = None,
        batch_size: int = 1,
        probe_limit: int | None = None,
        heldout_limit: int | None = None,
        instep_every: int = 0,
        instep_examples: dict[str, ExampleInfo] | None = None,
        instep_tags: dict[str, Any] | None = None,
    ) -> None:
        if every < 0:
            raise InputError("must be >= 0", field="every")
        if instep_every < 0:
            raise InputError("must be >= 0", field="instep_every")
        if probe is None and not instep_every:
            raise InputError("give a probe set, or instep_every > 0", field="probe")
        self.probe: list[Example] = load_records(probe, "probe")[0] if probe is not None else []
        self.probe = self.probe[:probe_limit] if probe_limit else self.probe
        self.instep_every = instep_every
        self.instep_examples = instep_examples
        self.instep_tags = dict(instep_tags or {})
        self._instep: InStep | None = None
        self.heldout: list[Example] = []
        if heldout is not None:
            exs, src = load_records(heldout, "heldout")
            self.heldout = answer_examples(exs[:heldout_limit] if heldout_limit else exs, src)
        self.out = Path(out_dir)
        self.every = every
        self.tokenizer = tokenizer
        self.config = GradConfig(modules=tuple(modules) if not isinstance(modules, str) else modules,
                                 max_length=max_length, batch_size=batch_size,
                                 system_prompt=system_prompt, flush_every=64)  # fmt: skip
        self.instruct = instruct
        self.grad_spectra = grad_spectra
        self.updates = updates
        self.model_name = model_name
        self.w0: dict[str, torch.Tensor] = {}
        self.targets: list[Any] = []
        self.measured: list[int] = []
        self.seconds = 0.0
        self.timings: dict[str, list[float]] = {}
        self._grad_rows: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ Trainer events

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Find the projections, take (or reload on resume) W_0 and measure step 0."""
        t0 = time.perf_counter()
        model = unwrap(kw["model"])
        if self.tokenizer is None:
            self.tokenizer = kw.get("processing_class")
        if self.tokenizer is None:
            raise InputError("SpectraCallback needs a tokenizer (tokenizer=...)", field="tokenizer")
        if self.instruct is None:
            self.instruct = is_instruct(self.tokenizer)
        self.config.instruct = self.instruct
        self.targets = find_targets(model, self.config.modules)
        if self.instep_every:
            ckpt = bool(getattr(args, "gradient_checkpointing", False)) or bool(
                getattr(args, "activation_checkpointing", False)
            )
            for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
                if hasattr(type(model), name):  # the first one a model knows (v5 renamed it)
                    ckpt = ckpt or bool(getattr(model, name))
                    break
            if ckpt:
                raise InputError(
                    "in-step statistics do not support gradient checkpointing (the forward "
                    "runs twice); turn it off or use the probe mode (every=...)",
                    field="instep_every",
                )
            if self.instep_examples is None:
                loader = kw.get("train_dataloader")
                self.instep_examples = dataset_index(getattr(loader, "dataset", None) or [])
        rank, _ = _rank()
        w0_path = self.out / T.W0
        if state.global_step == 0:
            self.w0 = snapshot(model, self.targets) if self.updates else {}
            if rank == 0 and self.updates:
                self.out.mkdir(parents=True, exist_ok=True)
                tmp = w0_path.with_name(".w0.pt.tmp")
                torch.save(self.w0, tmp)
                os.replace(tmp, w0_path)
        elif self.updates:
            if not w0_path.is_file():
                raise InputError("resuming, but W_0 of this run is missing (w0.pt)", path=self.out)
            self.w0 = torch.load(w0_path, map_location="cpu", weights_only=True)
        self.seconds += time.perf_counter() - t0
        if state.global_step == 0:
            self.measure(model, 0)

    def instep_due(self, step: int) -> bool:
        """Whether optimizer step ``step`` (1-based) is measured in-step: the first and
        every ``instep_every``-th.

        Example:
            >>> cb = SpectraCallback(None, "x", instep_every=5)
            >>> [s for s in range(1, 12) if cb.instep_due(s)]
            [1, 5, 10]
        """
        return self.instep_every > 0 and (step == 1 or step % self.instep_every == 0)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """On an in-step measured step: put the hooks on the training model."""
        if self._instep is not None:  # a step that ended without on_step_end (never expected)
            self._instep.remove()
            self._instep = None
        if self.instep_due(state.global_step + 1):
            self._instep = InStep(unwrap(kw["model"]), self.targets, self.instep_examples,
                                  spectrum=self.config.spectrum).__enter__()  # fmt: skip

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """With ``grad_spectra``: the minibatch gradient's spectra before it is zeroed."""
        step = state.global_step + 1
        if self.grad_spectra and _rank()[0] == 0 and self._due(step, state.max_steps):
            t0 = time.perf_counter()
            model = unwrap(kw["model"])
            with isolated(model):
                self._grad_rows = gradient_rows(model, self.targets, step)
            self.seconds += time.perf_counter() - t0

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Write the in-step rows of this step (hooks removed); probe at every ``every``-th
        step and the last."""
        if self._instep is not None:
            t0 = time.perf_counter()
            ins, self._instep = self._instep, None
            ins.remove()
            rows = ins.rows(state.global_step, self.instep_tags)
            T.write_instep(self.out, state.global_step, _rank()[0], rows)
            self._time("instep_write", time.perf_counter() - t0)
            self._time("instep", ins.seconds + time.perf_counter() - t0)
            self.seconds += ins.seconds + time.perf_counter() - t0
        if self._due(state.global_step, state.max_steps):
            self.measure(unwrap(kw["model"]), state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Rewrite the training-loss table from the Trainer's log (restored on resume)."""
        if _rank()[0] == 0 and state.is_world_process_zero:
            T.write_csv(self.out / T.TRAIN_LOSS_CSV, T.train_loss_rows(state.log_history))

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Measure the final weights if training stopped between measured steps."""
        if self._instep is not None:  # a step cut short: its hooks go, its rows are not written
            self._instep.remove()
            self._instep = None
        if state.global_step not in self.measured and state.global_step > 0:
            self.measure(unwrap(kw["model"]), state.global_step)

    # ------------------------------------------------------------------ measuring

    def _due(self, step: int, max_steps: int) -> bool:
        return step == max_steps or (self.every > 0 and step % self.every == 0)

    def measure(self, model: nn.Module, step: int) -> None:
        """Probe statistics, update spectra and held-out loss of ``model`` at ``step``."""
        t0 = time.perf_counter()
        rank, world = _rank()
        with isolated(model), _quiet():
            self._probe(model, step, rank, world)
            t1 = time.perf_counter()
            if rank == 0:
                if self.updates:
                    rows = update_rows(model, self.targets, self.w0, step) + self._grad_rows
                    T.write_step_table(self.out, T.UPDATES, step, rows)
                self._grad_rows = []
                t2 = time.perf_counter()
                if self.heldout:
                    T.write_step_table(self.out, T.HELDOUT, step, self._heldout_rows(model, step))
                    T.write_csv(self.out / T.HELDOUT_CSV, T.heldout_summary(self.out))
                self._time("updates", t2 - t1)
                self._time("heldout", time.perf_counter() - t2)
        self._time("probe", t1 - t0)
        self.measured.append(step)
        self.seconds += time.perf_counter() - t0
        log.debug("step %d measured in %.2fs", step, time.perf_counter() - t0)

    def _time(self, part: str, seconds: float) -> None:
        self.timings.setdefault(part, []).append(seconds)

    def _bundle(self, model: nn.Module) -> LoadedModel:
        p = next(model.parameters())
        name = self.model_name or str(getattr(model.config, "name_or_path", "") or "model")
        return LoadedModel(model, self.tokenizer, name, "training", None, bool(self.instruct),
                           str(p.dtype).removeprefix("torch."), str(p.device))  # type: ignore[arg-type]  # fmt: skip

    def _probe(self, model: nn.Module, step: int, rank: int, world: int) -> None:
        if not self.probe:
            return
        out = self.out / T.PROBE / T.step_name(step)
        compute_stats(self._bundle(model), self.probe, out, self.config, rank=rank,
                      world_size=world, progress=False)  # fmt: skip

    def _heldout_rows(self, model: nn.Module, step: int) -> list[dict[str, Any]]:
        device = next(model.parameters()).device
        rows = []
        with torch.no_grad():
            for ex in self.heldout:
                enc = encode_example(self.tokenizer, ex, instruct=bool(self.instruct),
                                     max_length=self.config.max_length,
                                     system_prompt=self.config.system_prompt)  # fmt: skip
                if enc.n_response_tokens == 0:  # recorded, not skipped: NaN loss, 0 tokens
                    log.warning("held-out %s: the answer is cut away by max_length", ex.sample_id)
                    rows.append({"step": step, "sample_id": ex.sample_id, "loss": float("nan"),
                                 "n_answer_tokens": 0})  # fmt: skip
                    continue
                ids = torch.tensor([enc.input_ids], device=device)
                logits = model(input_ids=ids, use_cache=False).logits
                loss = float(per_example_losses(logits, ids, [enc])[0])
                rows.append({"step": step, "sample_id": ex.sample_id, "loss": loss,
                             "n_answer_tokens": enc.n_response_tokens})  # fmt: skip
        return rows
