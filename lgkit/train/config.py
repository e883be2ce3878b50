"""Settings of a fine-tuning run (:class:`TrainConfig`) and what it produced (:class:`TrainResult`).

Example:
    >>> TrainConfig(steps=20, probe_every=5).save_every
    5
    >>> TrainConfig(optim="adam")
    Traceback (most recent call last):
    ...
    lgkit.errors.InputError: field optim: unknown optimizer 'adam'; choose adamw or sgd
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lgkit.engine.arch import parse_modules
from lgkit.errors import InputError

OPTIMIZERS: dict[str, str] = {"adamw": "adamw_torch", "sgd": "sgd"}
"""lgkit's optimizer names -> the ``TrainingArguments.optim`` value."""

DEFAULT_LR: dict[str, float] = {"adamw": 1e-5, "sgd": 1e-3}
"""Learning rate by optimizer when none is given (full fine-tuning)."""


@dataclass
class TrainConfig:
    """Settings of :func:`lgkit.train.train`.

    Attributes:
        steps: optimizer steps.
        lr: learning rate (None: :data:`DEFAULT_LR` of the optimizer, ×10 with LoRA).
        optim: ``"adamw"`` (default) or ``"sgd"`` (plain, no momentum).
        batch_size: examples per optimizer step (per device).
        grad_accum: micro-batches per optimizer step.
        seed: seeds the model-independent randomness (data order, dropout, LoRA init).
        max_length: maximum tokens per example (the end of the response is cut).
        lora: train LoRA adapters (peft) on the attention projections instead of all weights.
        lora_r, lora_alpha: LoRA rank and scale.
        weight_decay: AdamW weight decay.
        max_grad_norm: clip the gradient norm to this (0: no clipping, so an SGD update
            is exactly -lr times the minibatch gradient).
        scheduler: ``TrainingArguments.lr_scheduler_type`` (constant by default: the
            step size does not change along the trajectory).
        probe_every: probe statistics, update spectra and held-out loss every K
            optimizer steps (and at step 0 and the last step); 0: only at 0 and the last.
        probe_limit: use only the first N probe records (None: all).
        heldout_limit: use only the first N held-out records (None: all).
        modules: projections probed and whose updates are measured.
        grad_spectra: also the spectra of the minibatch gradient at probe steps.
        save_every: checkpoint every K steps (None: ``probe_every``; 0: only at the end).
        keep_checkpoints: checkpoints kept on disk (the newest).
        checkpoints: write Trainer checkpoints at all (False: a killed run starts over;
            for many small runs, e.g. notebook 07, whose finished runs are kept by ``done.json``).
        instruct: chat template (None: as the model was loaded).
        dropout: set the model's attention/hidden dropout (None: as configured).
        loss_on: ``"response"`` (every response token, the engine's default) or
            ``"answer"`` (the final-answer tokens only; the rest stays in context).
        progress: tqdm bar with ETA.
        instep_every: in-step statistics of every training example at the first optimizer
            step and every K-th (:mod:`lgkit.train.instep`; 0: off).
        probe: measure the probe set at all (False: updates and held-out loss only, e.g.
            with ``instep_every``).
    """

    steps: int = 100
    lr: float | None = None
    optim: str = "adamw"
    batch_size: int = 4
    grad_accum: int = 1
    seed: int = 0
    max_length: int = 1024
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    scheduler: str = "constant"
    probe_every: int = 10
    probe_limit: int | None = None
    heldout_limit: int | None = None
    modules: tuple[str, ...] | str = ("q", "k", "v", "o")
    grad_spectra: bool = False
    save_every: int | None = None
    keep_checkpoints: int = 1
    checkpoints: bool = True
    instruct: bool | None = None
    dropout: float | None = None
    loss_on: str = "response"
    progress: bool = True
    instep_every: int = 0
    probe: bool = True

    def __post_init__(self) -> None:
        self.modules = parse_modules(self.modules)
        if self.optim not in OPTIMIZERS:
            raise InputError(
                f"unknown optimizer {self.optim!r}; choose {' or '.join(OPTIMIZERS)}",
                field="optim",
            )
        for name in ("steps", "batch_size", "grad_accum", "keep_checkpoints", "lora_r"):
            if int(getattr(self, name)) < 1:
                raise InputError("must be at least 1", field=name)
        if self.max_length < 2:
            raise InputError("must be at least 2", field="max_length")
        if self.probe_every < 0:
            raise InputError("must be >= 0", field="probe_every")
        if self.instep_every < 0:
            raise InputError("must be >= 0", field="instep_every")
        if self.lr is not None and not self.lr > 0:
            raise InputError(f"must be > 0, got {self.lr}", field="lr")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise InputError(f"must be in [0, 1), got {self.dropout}", field="dropout")
        if self.loss_on not in ("response", "answer"):
            raise InputError(
                f"unknown value {self.loss_on!r}; choose response or answer", field="loss_on"
            )
        if self.save_every is None:
            self.save_every = self.probe_every
        if self.save_every < 0:
            raise InputError("must be >= 0", field="save_every")

    @property
    def learning_rate(self) -> float:
        """The learning rate used.

        Example:
            >>> TrainConfig(optim="sgd").learning_rate, TrainConfig(lora=True).learning_rate
            (0.001, 0.0001)
        """
        if self.lr is not None:
            return self.lr
        return DEFAULT_LR[self.optim] * (10 if self.lora else 1)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists, the resolved learning rate).

        Example:
            >>> TrainConfig().to_json()["modules"]
            ['q', 'k', 'v', 'o']
        """
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
        out["learning_rate"] = self.learning_rate
        return out


@dataclass
class TrainResult:
    """What :func:`lgkit.train.train` wrote.

    Attributes:
        out_dir: the run directory.
        steps: optimizer steps reached.
        resumed_from: the checkpoint a resumed call started from (None: from scratch).
        probe_steps: steps at which the probe, the update spectra and the held-out loss
            were measured.
        seconds_train: wall time of the call.
        seconds_callback: of which inside :class:`lgkit.train.SpectraCallback`.
        files: the tables written (name -> path).
    """

    out_dir: Path
    steps: int = 0
    resumed_from: str | None = None
    probe_steps: list[int] = field(default_factory=list)
    seconds_train: float = 0.0
    seconds_callback: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)
