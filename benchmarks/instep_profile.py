"""Where a measured in-step training step's time goes (issue #28).

Runs :func:`train_overhead.run` with in-step statistics at every step (``--every`` steps
after one warm-up round, one off/on pair) and times, around it, the parts of the in-step
hooks: the engine's eigen-solves (``solve_spectra``), its Grams and entry statistics
(``BatchStats.__call__`` less its solves) and each :class:`lgkit.train.instep.InStep` hook
method (``_post``: keeping the fitted logits and each example's loss; ``_on_logits``:
reading the trainer's scale; ``_on_grad``: the engine's work per projection).

Usage (repo root, quiet machine, ``LGKIT_DATA_DIR`` set):

    .venv/bin/python benchmarks/instep_profile.py --every 2 --batch-size 2 --max-length 512
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_overhead as TO

import lgkit.engine.batch as B
import lgkit.train.instep as I

HOOKS = ("_pre", "_post", "_on_logits", "_on_grad", "_finish_last")


def profile(a: argparse.Namespace) -> dict[str, Any]:
    """Seconds per part over the run's measured steps (module functions patched, then restored)."""
    t: dict[str, float] = {"solve": 0.0, "gram_and_entry": 0.0, **dict.fromkeys(HOOKS, 0.0)}
    solve0, call0 = B.solve_spectra, B.BatchStats.__call__
    hooks0 = {h: getattr(I.InStep, h) for h in HOOKS}

    def solve(jobs: Any, workers: Any = None, backend: Any = None) -> Any:
        t0 = time.perf_counter()
        out = solve0(jobs, workers, backend)
        t["solve"] += time.perf_counter() - t0
        return out

    def call(self: Any, group: Any, X: Any, D: Any) -> None:
        t0, s0 = time.perf_counter(), t["solve"]
        call0(self, group, X, D)
        t["gram_and_entry"] += time.perf_counter() - t0 - (t["solve"] - s0)

    def timed(name: str) -> Any:
        f = hooks0[name]

        def g(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            out = f(*args, **kw)
            t[name] += time.perf_counter() - t0
            return out

        return g

    B.solve_spectra, B.BatchStats.__call__ = solve, call
    for h in HOOKS:
        setattr(I.InStep, h, timed(h))
    try:
        res = TO.run(a)
    finally:
        B.solve_spectra, B.BatchStats.__call__ = solve0, call0
        for h, f in hooks0.items():
            setattr(I.InStep, h, f)
    return {"instep_seconds_per_step": res["callback_part_seconds"]["instep"],
            "step_seconds_off": res["step_seconds_median"], "seconds": t,
            "examples_measured": a.every * a.batch_size, "torch": res["torch"], "git": res["git"]}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument(
        "--every", type=int, default=2, help="measured steps (every step of the on round)"
    )
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    ns = argparse.Namespace(model=a.model, data=None, every=a.every, rounds=1, probe=0, heldout=0,
                            steps_data=None, batch_size=a.batch_size, max_length=a.max_length,
                            spectra_repeats=0, instep_every=1, out=None, device=None,
                            tokenizer=None, num_layers=None)  # fmt: skip
    text = json.dumps(profile(ns), indent=2)
    print(text)
    if a.out:
        a.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
