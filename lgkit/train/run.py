"""``lgkit train``: fine-tune a model on a data file, watching its layers with :class:`SpectraCallback`.

Full fine-tuning (AdamW by default, SGD on request) or LoRA adapters (peft) on the
measured projections, seeded, with the engine's response-only loss. Writes into
``out_dir``: ``checkpoints/`` (Trainer checkpoints with optimizer state), ``run.json``
(the settings), and the callback's tables (:mod:`lgkit.train.tables`). Rerunning the same
command after an interruption (kill -9 included) resumes from the last checkpoint.

Example:
    >>> res = train("tiny-random-llama", "train.jsonl", "outputs/ft", TrainConfig(steps=20))  # doctest: +SKIP
    >>> lgkit.train.heldout_summary(res.out_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lgkit.errors import InputError
from lgkit.formats.records import Example
from lgkit.fsio import atomic_write_json
from lgkit.train import tables as T
from lgkit.train.callback import SpectraCallback
from lgkit.train.config import OPTIMIZERS, TrainConfig, TrainResult
from lgkit.train.data import Collator, ListDataset, encode_records, load_records

log = logging.getLogger(__name__)

RUN_JSON = "run.json"
DONE_JSON = "done.json"
CHECKPOINTS = "checkpoints"
_SAME_ON_RESUME = ("model", "data", "config")
_DISPLAY_ONLY = ("progress",)
"""Settings a resumed or reused run may differ in (they change nothing it computes)."""
_NEW_DEFAULTS = {"instep_every": 0, "probe": True}
"""Settings added later: a run recorded without them had them at these values."""


def _set_dropout(model: torch.nn.Module, p: float) -> None:
    for key in ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "attn_pdrop"):
        if hasattr(model.config, key):
            setattr(model.config, key, p)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = p
        for key in ("attention_dropout", "dropout"):  # attention modules copy it at init
            if isinstance(getattr(m, key, None), float):
                setattr(m, key, p)


def _with_lora(model: torch.nn.Module, cfg: TrainConfig) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    from lgkit.engine.arch import find_targets

    names = sorted({t.module_name.rsplit(".", 1)[-1] for t in find_targets(model, cfg.modules)})
    lc = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                    target_modules=names, task_type="CAUSAL_LM")  # fmt: skip
    return get_peft_model(model, lc)


def _check_resume(out: Path, record: dict[str, Any]) -> None:
    p = out / RUN_JSON
    if not p.is_file():
        return
    old = json.loads(p.read_text(encoding="utf-8"))
    if isinstance(old.get("config"), dict):  # display-only settings may differ
        old["config"] = _settings(old["config"])
    diff = [k for k in _SAME_ON_RESUME if not _same(k, old, record)]
    if diff:
        raise InputError(
            f"holds a training run with other settings (differs in: {', '.join(diff)}); "
            "give another --out or delete this directory",
            path=out,
        )


def _same(key: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a run folder's ``run.json`` (``old``) and this call agree on ``key``.

    Data is compared by content (``data_content``: size and sha256), not by path, so a
    run folder moved elsewhere is still the same run and a data file edited in place is
    not; a ``run.json`` written before contents were recorded is compared by path.

    Example:
        >>> a = {"data": "/x/d.jsonl", "data_content": {"bytes": 3, "sha256": "ab"}}
        >>> _same("data", a, {**a, "data": "/y/d.jsonl"})
        True
        >>> _same("data", a, {**a, "data_content": {"bytes": 3, "sha256": "cd"}})
        False
    """
    if key == "data" and "data_content" in old and "data_content" in new:
        return old["data_content"] == new["data_content"]
    return old.get(key) == new.get(key)


def _data_content(source: str, examples: Sequence[Example] | None) -> dict[str, Any]:
    """The fingerprint of a run's data: a file's size and sha256 (as the statistics cache
    keys its entries), or for records given as a list their count and the sha256 of their
    JSON."""
    import hashlib

    p = Path(source)
    if not source.startswith("<") and p.is_file():
        raw = p.read_bytes()
        return {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    h = hashlib.sha256()
    for ex in examples or ():
        h.update(json.dumps(ex.to_dict(), sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return {"records": len(examples or ()), "sha256": h.hexdigest()}


def _record(
    model: Any, source: str, cfg: TrainConfig, examples: Sequence[Example] | None = None
) -> dict[str, Any]:
    """What a run folder must match to be resumed (or reused): model, data (its content,
    :func:`_data_content`; the path is kept for the reader) and settings."""
    name = str(model) if isinstance(model, (str, Path)) else getattr(model, "name", "model")
    return {"model": name, "data": source, "data_content": _data_content(source, examples),
            "config": _settings(cfg.to_json())}  # fmt: skip


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config without its display-only settings (what resuming compares)."""
    return {k: v for k, v in config.items()
            if k not in _DISPLAY_ONLY and not (k in _NEW_DEFAULTS and v == _NEW_DEFAULTS[k])}  # fmt: skip


def finished(
    model: Any,
    data: str | Path | Sequence[Example],
    out_dir: str | Path,
    config: TrainConfig | None = None,
) -> bool:
    """Whether ``out_dir`` holds a finished run (``done.json``) of this model, data and
    config, so a caller can read it instead of training again. A run of other settings
    there raises :class:`InputError`, as :func:`train` would; no folder: False.

    Example:
        >>> import tempfile
        >>> finished("tiny-random-llama", [Example("q", "", "a")], tempfile.mkdtemp())
        False
    """
    out = Path(out_dir)
    examples, source = load_records(data, "data")
    _check_resume(out, _record(model, source, config or TrainConfig(), examples))
    return (out / DONE_JSON).is_file()


def _complete(ckpt: Path) -> bool:
    try:  # trainer_state.json is the last file a checkpoint gets (a kill can cut a save short)
        json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def _last_checkpoint(out: Path) -> str | None:
    """The newest complete checkpoint; newer incomplete ones (a save cut by a kill) are removed."""
    import re
    import shutil

    d = out / CHECKPOINTS
    found = sorted(
        (int(m.group(1)), p)
        for p in (d.iterdir() if d.is_dir() else [])
        if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))
    )
    rank0 = int(os.environ.get("RANK", "0")) == 0
    for _step, p in reversed(found):
        if _complete(p):
            return str(p)
        log.warning("checkpoint %s is incomplete (interrupted while saving)%s", p,
                    "; removed" if rank0 else "")  # fmt: skip
        if rank0:
            shutil.rmtree(p, ignore_errors=True)
    return None


def _instep_index(
    tok: Any,
    examples: Sequence[Example],
    rows: list[dict[str, Any]],
    instruct: bool,
    cfg: TrainConfig,
) -> dict[str, Any]:
    """Token digest → the example's columns (id, dataset, cot, …) for the in-step rows."""
    from lgkit.formats.prompts import encode_example
    from lgkit.train.instep import ExampleInfo, example_index

    infos = []
    for ex in examples:
        enc = encode_example(tok, ex, instruct=instruct, max_length=cfg.max_length)
        infos.append(ExampleInfo(ex.sample_id, ex.dataset, ex.cot, ex.correct,
                                 enc.n_prompt_tokens, enc.n_response_tokens, enc.truncated))  # fmt: skip
    return example_index(rows, infos)


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _arguments(out: Path, cfg: TrainConfig) -> Any:
    from transformers import TrainingArguments

    save = cfg.save_every or cfg.steps
    return TrainingArguments(
        output_dir=str(out / CHECKPOINTS),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        optim=OPTIMIZERS[cfg.optim],
        weight_decay=cfg.weight_decay,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=0,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=1,
        save_strategy="steps" if cfg.checkpoints else "no",
        save_steps=save,
        save_total_limit=cfg.keep_checkpoints,
        report_to="none",
        disable_tqdm=not cfg.progress,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        ddp_backend="gloo" if _distributed() and not torch.cuda.is_available() else None,
    )


def train(
    model: Any,
    data: str | Path | Sequence[Example],
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    probe: str | Path | Sequence[Example] | None = None,
    heldout: str | Path | Sequence[Example] | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on ``data`` and record its layers along the way into ``out_dir``.

    Args:
        model: a :class:`lgkit.models.LoadedModel` or a name/path for :func:`lgkit.load_model`
            (the weights are trained in place).
        data: training records (a JSON/JSONL file or a list of :class:`Example`).
        out_dir: the run directory; rerun into it to resume (``done.json`` marks a finished run).
        config: :class:`TrainConfig`.
        probe: records whose per-example statistics are measured (None: the first 16
            training records).
        heldout: records whose final-answer loss is measured (None: none).
        device, dtype: passed to :func:`lgkit.load_model` when ``model`` is a name.

    Raises:
        InputError: bad data or settings, or ``out_dir`` holding another run.
    """
    from transformers import Trainer, set_seed

    cfg = config or TrainConfig()
    t_start = time.perf_counter()
    examples, source = load_records(data, "data")
    probe_exs = (
        (load_records(probe, "probe")[0] if probe is not None else examples[:16])
        if cfg.probe
        else None
    )
    out = Path(out_dir)
    record = _record(model, source, cfg, examples)
    _check_resume(out, record)
    set_seed(cfg.seed)
    from lgkit.models.load import as_loaded  # lazily: transformers only when needed

    bundle = as_loaded(model, instruct=cfg.instruct, device=device, dtype=dtype)
    tok = bundle.tokenizer
    instruct = cfg.instruct if cfg.instruct is not None else bool(bundle.instruct)
    rows = encode_records(tok, examples, instruct=instruct, max_length=cfg.max_length,
                          source=source, loss_on=cfg.loss_on)  # fmt: skip
    index = _instep_index(tok, examples, rows, instruct, cfg) if cfg.instep_every else None
    net = bundle.model
    if cfg.dropout is not None:
        _set_dropout(net, cfg.dropout)
    if cfg.lora:
        net = _with_lora(net, cfg)
    cb = SpectraCallback(probe_exs, out, every=cfg.probe_every, tokenizer=tok, heldout=heldout,
                         modules=cfg.modules, max_length=cfg.max_length, instruct=instruct,
                         grad_spectra=cfg.grad_spectra and not cfg.lora, model_name=record["model"],
                         probe_limit=cfg.probe_limit, heldout_limit=cfg.heldout_limit,
                         instep_every=cfg.instep_every, instep_examples=index,
                         instep_tags={"seed": cfg.seed})  # fmt: skip
    resume = _last_checkpoint(out)
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_json(out / RUN_JSON, {**record, "instruct": instruct}, indent=2)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    trainer = Trainer(model=net, args=_arguments(out, cfg), train_dataset=ListDataset(rows),
                      data_collator=Collator(pad), callbacks=[cb])  # fmt: skip
    net.train()
    trainer.train(resume_from_checkpoint=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        doc = {"steps": trainer.state.global_step, "measured": sorted(set(cb.measured)),
               "seconds_train": time.perf_counter() - t_start, "seconds_callback": cb.seconds,
               "callback_part_seconds": {k: sum(v) for k, v in cb.timings.items()}}  # fmt: skip
        atomic_write_json(out / DONE_JSON, doc, indent=2)
    files = {"heldout_loss": out / T.HELDOUT_CSV, "train_loss": out / T.TRAIN_LOSS_CSV,
             "probe": out / T.PROBE, "updates": out / T.UPDATES, "instep": out / T.INSTEP}  # fmt: skip
    return TrainResult(out, trainer.state.global_step, resume, sorted(set(cb.measured)),
                       time.perf_counter() - t_start, cb.seconds,
                       {k: v for k, v in files.items() if v.exists()})  # fmt: skip
