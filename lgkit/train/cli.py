"""The ``lgkit train`` subcommand (registered by :func:`lgkit.cli.build_parser`).

Example:
    $ lgkit train --model smollm2-135m-instruct --data train.json --out outputs/ft \\
        --heldout test.json --probe-every 10 --steps 100
"""

from __future__ import annotations

import argparse
import logging

from lgkit.engine import options as O
from lgkit.errors import InputError

log = logging.getLogger("lgkit")


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``lgkit train`` to the subcommands."""
    p = sub.add_parser(
        "train",
        help="fine-tune a model, recording probe statistics and update spectra (resumable)",
        description="Fine-tune a model on a data file (loss on the response tokens, as the "
        "statistics), measuring every K steps the probe set's per-example statistics, the "
        "spectra of each projection's update W_t - W_0 and the held-out answer loss. Rerun "
        "the same command to resume from the last checkpoint.",
    )
    O.add_model(p)
    O.add_data(p, "the training records")
    O.add_out(p, "run directory (checkpoints, tables)")
    p.add_argument(
        "--heldout",
        default=None,
        help="records whose final-answer loss is measured (a meta answer, a final-answer marker or a short response, e.g. the released *_no_cot.json)",
    )
    p.add_argument(
        "--probe", default=None, help="probe records (default: the first 16 training records)"
    )
    p.add_argument(
        "--probe-every", type=int, default=10, help="measure every K optimizer steps (default 10)"
    )
    p.add_argument("--probe-limit", type=int, default=None, help="only the first N probe records")
    p.add_argument("--instep-every", type=int, default=0,
                   help="in-step statistics of every training example at the first step and "
                   "every K-th, from the training backward itself (0: off, default)")  # fmt: skip
    p.add_argument("--no-probe", action="store_true",
                   help="no probe statistics (updates and held-out loss only; with --instep-every)")  # fmt: skip
    p.add_argument(
        "--heldout-limit", type=int, default=None, help="only the first N held-out records"
    )
    _add_training_options(p)
    O.add_model_options(p)
    p.set_defaults(func=_cmd_train)


def _add_training_options(p: argparse.ArgumentParser) -> None:
    """Optimisation and measurement options of ``lgkit train``."""
    p.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default 1e-5 AdamW, 1e-3 SGD; x10 with --lora)",
    )
    p.add_argument(
        "--optim", choices=["adamw", "sgd"], default="adamw", help="optimizer (default adamw)"
    )
    p.add_argument("--batch-size", type=int, default=4, help="examples per step (default 4)")
    p.add_argument(
        "--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed (data order, dropout, LoRA init)")
    p.add_argument(
        "--lora", action="store_true", help="train LoRA adapters (peft) instead of all weights"
    )
    p.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8)")
    O.add_max_length(p, 1024)
    p.add_argument(
        "--max-grad-norm", type=float, default=1.0, help="gradient clipping (0: none; default 1.0)"
    )
    O.add_modules(p, extra="probed and whose updates are measured")
    p.add_argument("--loss-on", choices=["response", "answer"], default="response",
                   help="tokens carrying the loss: the whole response (default) or the final answer")  # fmt: skip
    p.add_argument(
        "--grad-spectra", action="store_true", help="also the minibatch gradient's spectra"
    )
    p.add_argument(
        "--save-every",
        type=int,
        default=None,
        help="checkpoint every K steps (default: --probe-every)",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="set the model's dropout (default: as configured)",
    )


def _cmd_train(a: argparse.Namespace) -> int:
    from pathlib import Path

    from lgkit.formats.records import read_examples
    from lgkit.train.config import TrainConfig
    from lgkit.train.data import answer_examples
    from lgkit.train.run import train

    cfg = TrainConfig(
        steps=a.steps, lr=a.lr, optim=a.optim, batch_size=a.batch_size, grad_accum=a.grad_accum,
        seed=a.seed, max_length=a.max_length, lora=a.lora, lora_r=a.lora_r,
        probe_every=a.probe_every, probe_limit=a.probe_limit, heldout_limit=a.heldout_limit,
        modules=a.modules, grad_spectra=a.grad_spectra, save_every=a.save_every,
        instruct=a.instruct, dropout=a.dropout, loss_on=a.loss_on, max_grad_norm=a.max_grad_norm, progress=not a.no_progress,
        instep_every=a.instep_every, probe=not a.no_probe,
    )  # fmt: skip
    for what in ("data", "probe", "heldout"):  # validate every file before loading a model
        path = getattr(a, what)
        if path is not None:
            if not Path(path).is_file():
                raise InputError("no such file", path=path, field=f"--{what}")
            exs = read_examples(path)
            if what == "heldout":
                answer_examples(exs, path)
    if Path(a.out).exists() and not Path(a.out).is_dir():
        raise InputError("exists and is not a directory", path=a.out, field="--out")
    O.check_device(a.device)
    res = train(a.model, a.data, a.out, cfg, probe=a.probe, heldout=a.heldout,
                device=a.device, dtype=a.dtype)  # fmt: skip
    log.info(
        "wrote %s: %d steps%s, measured at steps %s (callback %.1fs of %.1fs)",
        a.out, res.steps, f" (resumed from {res.resumed_from})" if res.resumed_from else "",
        res.probe_steps, res.seconds_callback, res.seconds_train,
    )  # fmt: skip
    return 0
