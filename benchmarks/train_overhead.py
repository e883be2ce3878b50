"""Cost of :class:`lgkit.train.SpectraCallback` as a share of training, in one process.

One ``transformers.Trainer`` runs ``2 × rounds`` rounds of ``every`` optimizer steps on
the same model and data, after one untimed warm-up round. Rounds alternate: in an *off* round the callback does nothing;
in an *on* round it measures at the round's last step (the probe through the engine,
the ΔW spectra of every projection, the held-out answer loss), exactly as with
``SpectraCallback(every=every)``. The overhead is (on round − off round) / off round, the
median over round pairs, i.e. the share a probe every ``every`` steps adds to training.
The callback's own timings split it into probe, ΔW spectra and held-out loss; the ΔW
spectra are also timed alone (``--spectra-repeats`` times).

With ``--instep-every K`` the *on* rounds measure in-step instead (``SpectraCallback(
instep_every=K)``: every training example of the step from the training backward itself,
no probe, no ΔW): ``K = 1`` measures every step of an on round (the share of measuring at
every step), ``K = every`` its last step (the share of measuring every ``every``-th step).

Usage (from the repo root, on a quiet machine):

    .venv/bin/python benchmarks/train_overhead.py                     # SmolLM2-135M, probe 16, every 10
    .venv/bin/python benchmarks/train_overhead.py --instep-every 10   # in-step, every 10th step
    .venv/bin/python benchmarks/train_overhead.py --instep-every 1 --every 5  # in-step, every step
    .venv/bin/python benchmarks/train_overhead.py --model tiny-random-llama --rounds 1 --every 2 \\
        --probe 2 --heldout 2 --steps-data 8 --out /tmp/ovh.json      # a check that it runs
    .venv/bin/python benchmarks/train_overhead.py --model config:qwen2-1.5b --instep-every 10  # a GPU

By default each round trains on the same ``every × batch-size`` records (one epoch per round,
reshuffled), so that an on round and its off round see the same tokens and their difference
is the callback's cost, not the data's.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

import lgkit
from lgkit.formats.records import Example, read_examples
from lgkit.models.load import LoadedModel
from lgkit.provenance import git_hash
from lgkit.train.callback import SpectraCallback
from lgkit.train.config import TrainConfig
from lgkit.train.data import Collator, ListDataset, encode_records
from lgkit.train.run import _arguments
from lgkit.train.updates import update_rows

log = logging.getLogger("benchmark")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (
    REPO.parent
    / "shared"
    / "data"
    / "layer_gradient"
    / "cot_500"
    / "gsm8k_train_with_cot_gpt4o.json"
)


class Toggled(TrainerCallback):
    """Forwards to a SpectraCallback only in *on* rounds; times every round."""

    def __init__(self, inner: SpectraCallback, every: int) -> None:
        self.inner, self.every = inner, every
        self.rounds: list[tuple[bool, float]] = []
        self._t0 = 0.0

    def _round(self, step: int) -> int:  # round k covers steps k*every+1 .. (k+1)*every
        return (step - 1) // self.every

    def _on(self, step: int) -> bool:  # round 0 warms up (off, not timed); then off, on, ...
        k = self._round(step)
        return k > 0 and k % 2 == 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.inner.on_train_begin(args, state, control, **kw)  # W_0, targets, step 0 (untimed)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step % self.every == 0:
            self._t0 = time.perf_counter()
        if self.inner.instep_every and self._on(state.global_step + 1):
            self.inner.on_step_begin(args, state, control, **kw)  # in-step hooks on a due step

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        step = state.global_step
        if self._on(step):
            self.inner.on_step_end(args, state, control, **kw)
        if step % self.every == 0 and self._round(step) > 0:
            self.rounds.append((self._on(step), time.perf_counter() - self._t0))


def _records(path: Path | None, n: int, offset: int = 0) -> list[Example]:
    """Records of ``path``, or of the released GSM8K detailed-CoT file (gold answers in meta)."""
    if path is None:
        from lgkit.data.release import load_release

        exs = load_release("gsm8k", "detailed")
    else:
        exs = read_examples(path)
    if len(exs) < offset + n:
        raise SystemExit(f"{path} has {len(exs)} records, {offset + n} needed")
    return exs[offset : offset + n]


def _spectra_seconds(cb: SpectraCallback, model: torch.nn.Module, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        update_rows(model, cb.targets, cb.w0, step=-1)
        out.append(time.perf_counter() - t0)
    return out


def _model(a: argparse.Namespace) -> LoadedModel:
    """An lgkit model by name, or a random-weight ``config:`` shape with a real tokenizer
    (the throughput benchmark's: the same tokenizer as its runs)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from throughput import benchmark_model

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    lm, _ = benchmark_model(a.model, device=device, tokenizer=a.tokenizer, num_layers=a.num_layers)
    return lm


def run(a: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    lm = _model(a)
    n_steps = (2 * a.rounds + 1) * a.every  # a warm-up round first
    if a.steps_data is None:  # every round: the same records, one epoch
        a.steps_data = a.every * a.batch_size
    train = _records(a.data, a.steps_data)
    probe = _records(a.data, a.probe, offset=a.steps_data)
    held = _records(a.data, a.heldout, offset=a.steps_data + a.probe)
    tmp = Path(tempfile.mkdtemp(prefix="lgkit-ovh-"))
    cfg = TrainConfig(steps=n_steps, batch_size=a.batch_size, probe_every=a.every,
                      max_length=a.max_length, checkpoints=False, progress=False)  # fmt: skip
    rows = encode_records(lm.tokenizer, train, instruct=lm.instruct, max_length=a.max_length)
    if a.instep_every:
        if a.instep_every != 1 and a.every % a.instep_every:
            raise SystemExit("--every must be a multiple of --instep-every")
        cb = SpectraCallback(None, tmp / "spectra", every=0, tokenizer=lm.tokenizer, updates=False,
                             max_length=a.max_length, instruct=lm.instruct,
                             instep_every=a.instep_every)  # fmt: skip
    else:
        cb = SpectraCallback(probe, tmp / "spectra", every=a.every, tokenizer=lm.tokenizer,
                             heldout=held or None, max_length=a.max_length, instruct=lm.instruct)  # fmt: skip
    tog = Toggled(cb, a.every)
    pad = lm.tokenizer.pad_token_id or 0
    trainer = Trainer(model=lm.model, args=_arguments(tmp, cfg), train_dataset=ListDataset(rows),
                      data_collator=Collator(pad), callbacks=[tog])  # fmt: skip
    lm.model.train()
    trainer.train()
    off = [s for on, s in tog.rounds if not on]
    on = [s for on, s in tog.rounds if on]
    pairs = [(b - o) / o for o, b in zip(off, on, strict=False)]
    spectra = _spectra_seconds(cb, lm.model, a.spectra_repeats) if cb.w0 else []
    timings = {k: [round(x, 4) for x in (v if k.startswith("instep") else v[1:])]
               for k, v in cb.timings.items()}  # the probe's step 0 left out  # fmt: skip
    return {
        "mode": f"in-step every {a.instep_every} step(s)" if a.instep_every else "probe",
        "instep_every": a.instep_every,
        "model": a.model, "device": str(next(lm.model.parameters()).device),
        "steps_data": a.steps_data, "data": str(a.data or "released gsm8k detailed"), "probe_examples": len(probe),
        "heldout_examples": len(held), "every": a.every, "batch_size": a.batch_size,
        "rounds": a.rounds, "max_length": a.max_length, "n_targets": len(cb.targets),
        "round_seconds_off": [round(x, 3) for x in off], "round_seconds_on": [round(x, 3) for x in on],
        "step_seconds_median": statistics.median(off) / a.every,
        "overhead_share_median": statistics.median(pairs) if pairs else None,
        "overhead_share_per_pair": [round(x, 4) for x in pairs],
        "callback_part_seconds": timings,
        "delta_w_spectra_seconds": [round(x, 4) for x in spectra],
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "lgkit": lgkit.__version__, "git": git_hash(), "machine": platform.platform(),
        "cpu": platform.processor(),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data", type=Path, default=None,
                   help="records (JSON/JSONL; default: the released GSM8K detailed CoT, LGKIT_DATA_DIR)")  # fmt: skip
    p.add_argument(
        "--every", type=int, default=10, help="optimizer steps per round (the probe interval)"
    )
    p.add_argument("--rounds", type=int, default=3, help="pairs of off/on rounds")
    p.add_argument("--probe", type=int, default=16, help="probe examples (the CLI's default)")
    p.add_argument("--heldout", type=int, default=16, help="held-out examples (0: none)")
    p.add_argument("--steps-data", type=int, default=None,
                   help="training records, cycled (default: every × batch size, one epoch a round)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--spectra-repeats", type=int, default=3)
    p.add_argument("--instep-every", type=int, default=0,
                   help="measure in-step instead of the probe: 1 every step of an on round, "
                   "K (= --every) its last step (0: the probe mode, default)")  # fmt: skip
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--tokenizer", default=None, help="saved tokenizer folder for config: models")
    p.add_argument("--num-layers", type=int, default=None, help="truncate a config: model")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    res = run(a)
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n", encoding="utf-8")
    share = res["overhead_share_median"]
    what = (f"in-step {'at every step' if a.instep_every == 1 else f'every {a.instep_every} steps'}"
            if a.instep_every else f"a probe every {a.every} steps")  # fmt: skip
    log.info("callback overhead: %s of training with %s (median of %d pairs); "
             "ΔW spectra alone %.2fs", "n/a" if share is None else f"{100 * share:.1f}%", what,
             len(res["overhead_share_per_pair"]),
             statistics.median(res["delta_w_spectra_seconds"] or [float("nan")]))  # fmt: skip


if __name__ == "__main__":
    main()
