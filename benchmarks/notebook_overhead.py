"""What the notebooks and the engine's bookkeeping cost around the forward and backward.

Two comparisons, each alternating round by round on the same examples (the VM's speed
drifts, so only ratios measured side by side mean something):

``paths`` (issue 29 item 1; one process): the same released files through

* ``bare``     — forward + ``loss.backward()`` with the projection weights trainable, batch 1
  (as ``benchmarks/throughput.py``'s ``bare``; no statistics, nothing written);
* ``engine``   — what ``lgkit grads`` does per file: :func:`lgkit.engine.run.compute_stats`
  into a fresh folder (locks, manifest, parts, ledger included), the model already loaded;
* ``notebook`` — the notebooks' statistics path: :func:`lgkit.series.steps.family_stats`
  with an empty cache (:func:`lgkit.engine.run.stats_for` per file, cache look-ups, read
  back verified), the model already loaded (a notebook loads it once; the one load is
  reported on its own line).

It prints seconds per example of each and the ratios notebook/engine (goal ≤ 1.05) and
engine/bare (the engine's overhead over a bare forward+backward).

``versions`` (issue 29 item 2): ``bare`` and ``engine`` as above, run by this tree and by
an older commit (default ``e087d39``) in **alternating subprocesses** (one per version and
round; each loads the model once, untimed, then times bare and engine on the same
examples). An older lgkit cannot be imported beside this one under another name (its
modules import ``lgkit.*`` absolutely), so each version runs in its own interpreter with
``PYTHONPATH`` set to its tree: ``git worktree add --detach`` of the commit into a
temporary folder (removed afterwards). The worker below only uses APIs both versions
have (``load_model``, ``compute_stats``, ``GradConfig``, ``read_examples``,
``encode_example``).

Usage (from the repo root; ``LGKIT_DATA_DIR`` = the released files):

    .venv/bin/python benchmarks/notebook_overhead.py paths --n 12 --rounds 3 --json benchmarks/results/notebook-overhead-cpu.json
    .venv/bin/python benchmarks/notebook_overhead.py versions --ref e087d39 --n 12 --rounds 3 --json benchmarks/results/engine-versions-cpu.json
    .venv/bin/python benchmarks/notebook_overhead.py paths --n 1 --rounds 1 --cots none   # a quick try

``--data`` takes a data folder of notebook 01 (``<run>/01_data_prep/data``); without it the
default profile's folder is built from the released files into a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("benchmark")


# --------------------------------------------------------------------------- shared by both versions


def bare_seconds(model: Any, encs: list[Any]) -> float:
    """Forward + backward (projection weights trainable, batch 1) of ``encs``: total seconds."""
    import torch

    from lgkit.engine.arch import find_targets

    names = {t.module_name for t in find_targets(model, ("q", "k", "v", "o"))}
    model.requires_grad_(False)
    for n in names:
        model.get_submodule(n).weight.requires_grad_(True)
    t0 = time.perf_counter()
    for e in encs:
        ids = torch.tensor([e.input_ids])
        labels = ids.clone()
        labels[0, : e.n_prompt_tokens] = -100
        model(ids, labels=labels, use_cache=False).loss.backward()
        model.zero_grad(set_to_none=True)
    dt = time.perf_counter() - t0
    model.requires_grad_(False)
    return dt


def engine_seconds(lm: Any, paths: list[str], config: Any) -> tuple[float, int]:
    """``lgkit grads`` per file (model loaded): total seconds and examples done."""
    from lgkit.engine.run import compute_stats

    n, t0 = 0, time.perf_counter()
    for p in paths:
        d = tempfile.mkdtemp(prefix="lgkit-bench-")
        try:
            n += compute_stats(lm, p, d, config, progress=False).n_done
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return time.perf_counter() - t0, n


def encodings(lm: Any, paths: list[str], config: Any) -> list[Any]:
    """The examples of ``paths`` tokenised as the engine does (first ``config.limit`` of each)."""
    from lgkit.formats.prompts import encode_example
    from lgkit.formats.records import read_examples

    instruct = config.instruct if config.instruct is not None else bool(lm.instruct)
    encs = []
    for p in paths:
        for ex in read_examples(p)[: config.limit or None]:
            encs.append(
                encode_example(
                    lm.tokenizer, ex, instruct=instruct, max_length=config.max_length,
                    system_prompt=config.system_prompt, compat=config.compat, model_name=lm.name,
                )
            )  # fmt: skip
    return encs


def worker(a: argparse.Namespace) -> int:
    """One version, one round: print ``{"bare": s, "engine": s, "n": examples}`` as JSON."""
    import torch

    from lgkit.engine.config import GradConfig
    from lgkit.models.load import load_model

    torch.manual_seed(0)
    lm = load_model(a.model)
    cfg = GradConfig(max_length=a.max_length, limit=a.n or None)
    encs = encodings(lm, a.files, cfg)
    bare_seconds(lm.model, encs[:1])  # warm-up
    engine_seconds(lm, a.files[:1], GradConfig(max_length=a.max_length, limit=1))
    b = bare_seconds(lm.model, encs)
    e, n = engine_seconds(lm, a.files, cfg)
    import lgkit

    print(json.dumps({"bare": b, "engine": e, "n": n, "lgkit": lgkit.__file__}))
    return 0


# --------------------------------------------------------------------------- data


def data_folder(a: argparse.Namespace, tmp: Path) -> Path:
    """``--data``, or the default profile's data built from the released files."""
    if a.data:
        return Path(a.data)
    from lgkit.data.profile import build_profile

    build_profile("default", tmp, n_per_variant=max(a.n, 1), seed=0)
    return tmp / "data"


def chosen_files(a: argparse.Namespace, data: Path) -> list[Any]:
    from lgkit.series.steps import data_files

    return data_files(data, a.family, datasets=a.datasets, cots=a.cots)


# --------------------------------------------------------------------------- paths


def run_paths(a: argparse.Namespace) -> dict[str, Any]:
    """bare, engine and notebook path alternating in this process."""
    import torch

    from lgkit.models.load import load_model
    from lgkit.series import steps

    tmp = Path(tempfile.mkdtemp(prefix="lgkit-nb-overhead-"))
    try:
        data = data_folder(a, tmp)
        files = chosen_files(a, data)
        cfg = steps.grad_config(a.max_length, n_per_variant=a.n)
        t0 = time.perf_counter()
        lm = load_model(a.model, instruct=cfg.instruct)
        load_s = time.perf_counter() - t0
        paths = [str(f.path) for f in files]
        encs = encodings(lm, paths, cfg)
        n = len(encs)
        bare_seconds(lm.model, encs[:1])  # warm-up (first-call allocations, lazy imports)
        engine_seconds(lm, paths[:1], dataclasses.replace(cfg, limit=1))
        rounds: list[dict[str, float]] = []
        for r in range(a.rounds):
            torch.manual_seed(r)
            got: dict[str, float] = {}
            order = ["bare", "engine", "notebook"]
            for name in order if r % 2 == 0 else order[::-1]:
                if name == "bare":
                    got[name] = bare_seconds(lm.model, encs)
                elif name == "engine":
                    s, done = engine_seconds(lm, paths, cfg)
                    if done != n:
                        raise RuntimeError(f"engine did {done} of {n} examples")
                    got[name] = s
                else:
                    cache = tmp / f"cache-{r}"
                    steps._LOADED.clear()
                    steps._LOADED[(a.model, cfg.instruct)] = lm  # loaded once per notebook
                    t = time.perf_counter()
                    df = steps.family_stats(
                        data, a.family, a.model, cfg, cache,
                        datasets=a.datasets, cots=a.cots, progress=False,
                    )  # fmt: skip
                    got[name] = time.perf_counter() - t
                    if df.groupby(["data_file", "sample_id"]).ngroups != n:
                        raise RuntimeError("the notebook path did not compute every example")
            rounds.append(got)
            print(
                f"round {r + 1}: " + ", ".join(f"{k} {v / n:.3f} s/ex" for k, v in got.items()),
                flush=True,
            )
        steps._LOADED.clear()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per = {k: [rd[k] / n for rd in rounds] for k in ("bare", "engine", "notebook")}
    best = {k: min(v) for k, v in per.items()}
    ratio_nb = [rd["notebook"] / rd["engine"] for rd in rounds]
    ratio_eng = [rd["engine"] / rd["bare"] for rd in rounds]
    out = {
        "mode": "paths",
        "model": a.model,
        "files": [f.name for f in files],
        "examples": n,
        "mean_tokens": statistics.fmean(len(e.input_ids) for e in encs),
        "rounds": rounds,
        "seconds_per_example": per,
        "best_seconds_per_example": best,
        "notebook_over_engine": ratio_nb,
        "engine_over_bare": ratio_eng,
        "model_load_seconds": load_s,
        "env": _env(),
    }
    print(
        f"{n} examples × {out['mean_tokens']:.0f} mean tokens ({', '.join(out['files'])}); "
        f"model load {load_s:.1f} s (once per notebook, not counted)\n"
        f"notebook / engine per example: median {statistics.median(ratio_nb):.3f} "
        f"(rounds {', '.join(f'{x:.3f}' for x in ratio_nb)}; goal ≤ 1.05)\n"
        f"engine / bare forward+backward: median {statistics.median(ratio_eng):.3f} "
        f"(rounds {', '.join(f'{x:.3f}' for x in ratio_eng)})"
    )
    return out


# --------------------------------------------------------------------------- versions


def _worktree(ref: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=f"lgkit-{ref[:10]}-"))
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(d), ref],
        check=True,
        capture_output=True,
    )
    # a fresh checkout's index is "racily clean" (files as new as the index): `git status`,
    # which the engine at e087d39 runs for every manifest, then rereads every file (23 s
    # on the loaded VM, 9 ms once refreshed); refresh it here, untimed, a second later
    time.sleep(1.5)
    for _ in range(2):
        subprocess.run(["git", "-C", str(d), "status", "--porcelain"], capture_output=True)
    return d


def run_versions(a: argparse.Namespace) -> dict[str, Any]:
    """bare and engine of this tree and of ``--ref``, alternating subprocesses."""
    tmp = Path(tempfile.mkdtemp(prefix="lgkit-versions-"))
    ref_tree = Path(a.ref_tree) if a.ref_tree else _worktree(a.ref)
    try:
        data = data_folder(a, tmp)
        paths = [str(f.path) for f in chosen_files(a, data)]
        trees = {"current": REPO, a.ref: ref_tree}
        res: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
        for r in range(a.rounds):
            names = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for name in names:
                env = {**os.environ, "PYTHONPATH": str(trees[name])}
                cmd = [sys.executable, __file__, "worker", "--model", a.model,
                       "--n", str(a.n), "--max-length", str(a.max_length), "--files", *paths]  # fmt: skip
                p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=trees[name])
                if p.returncode:
                    raise RuntimeError(f"{name} worker failed:\n{p.stderr[-3000:]}")
                got = json.loads(p.stdout.strip().splitlines()[-1])
                if not got["lgkit"].startswith(str(trees[name])):
                    raise RuntimeError(f"{name} imported {got['lgkit']}, not its own tree")
                res[name].append(got)
                print(
                    f"round {r + 1} {name}: bare {got['bare'] / got['n']:.3f} s/ex, engine "
                    f"{got['engine'] / got['n']:.3f} s/ex, engine/bare {got['engine'] / got['bare']:.3f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not a.ref_tree:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(ref_tree)],
                           capture_output=True)  # fmt: skip
    out: dict[str, Any] = {"mode": "versions", "model": a.model, "files": paths, "rounds": res,
                           "env": _env()}  # fmt: skip
    for name, rs in res.items():
        ratios = [g["engine"] / g["bare"] for g in rs]
        out[f"engine_over_bare[{name}]"] = ratios
        print(
            f"{name}: engine / bare median {statistics.median(ratios):.3f} "
            f"(rounds {', '.join(f'{x:.3f}' for x in ratios)})"
        )
    return out


def _env() -> dict[str, Any]:
    import torch

    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "cpu_count": os.cpu_count(),
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("paths", "versions", "worker"))
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data", default="", help="a data folder of notebook 01 (default: built)")
    p.add_argument("--family", default="math")
    p.add_argument("--datasets", default="gsm8k")
    p.add_argument("--cots", default="", help="e.g. detailed,none (default: all)")
    p.add_argument("--n", type=int, default=12, help="examples per file (0: all)")
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ref", default="e087d39", help="versions: the older commit")
    p.add_argument("--ref-tree", default="", help="versions: a checkout of --ref to use as is")
    p.add_argument("--files", nargs="*", default=[], help=argparse.SUPPRESS)
    p.add_argument("--json", default="", help="write the results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    a = parse_args(argv)
    if a.mode == "worker":
        return worker(a)
    out = run_paths(a) if a.mode == "paths" else run_versions(a)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
