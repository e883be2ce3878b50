"""Throughput of lgkit against the naive method (the authors'), in one process.

For the same model, examples and settings it alternates, round by round:

* ``bare``  — forward + ``loss.backward()`` with the projection weights trainable (what
  fine-tuning those weights on the example costs; no statistics);
* ``naive`` — the authors' method: one example at a time, every projection's weight
  gradient materialised and a full ``torch.linalg.svd`` of each;
* ``lgkit`` — the engine (:func:`lgkit.engine.run_batch`): activation-only backward and
  exact statistics from the gradient factors.

It prints examples/s, seconds per example split into forward+backward and statistics,
peak memory (RSS growth over the loaded model, and CUDA peak on a GPU), the ratio
lgkit/naive and lgkit's overhead over ``bare``, plus cost against token count, and
writes everything as JSON.

Usage (from the repo root, after ``bash scripts/setup.sh``):

    .venv/bin/python benchmarks/throughput.py                      # SmolLM2-135M, 30 GSM8K detailed-CoT
    .venv/bin/python benchmarks/throughput.py --model gemma3-270m --n 10
    .venv/bin/python benchmarks/throughput.py --model config:qwen2-1.5b --device cuda --n 30
    .venv/bin/python benchmarks/throughput.py --model config:llama-3.1-8b --num-layers 2 --n 5
    .venv/bin/python benchmarks/throughput.py --data .../gsm8k_train_no_cot.json   # short inputs
    .venv/bin/python benchmarks/throughput.py --model gemma3-270m --n 2 --skip-naive --rounds 1 \
        --lengths 512,1024,2048,4096 --data .../popular_wikipedia_1000.json   # long inputs
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

import lgkit
from lgkit.engine.arch import find_targets
from lgkit.engine.batch import forward_backward
from lgkit.engine.reference import naive_stats_encoded
from lgkit.engine.run import run_batch
from lgkit.formats.prompts import Encoded, encode_example
from lgkit.formats.records import read_examples
from lgkit.models.load import LoadedModel, load_model
from lgkit.provenance import git_hash

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

# Exact architecture configs of public models (random weights: timing does not depend on them).
CONFIGS = {
    "qwen2-1.5b": ("Qwen2Config", dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                   num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1000000.0,
                   rms_norm_eps=1e-6, tie_word_embeddings=True)),
    "llama-3.1-8b": ("LlamaConfig", dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072, rope_theta=500000.0,
                     rms_norm_eps=1e-5, tie_word_embeddings=False)),
}  # fmt: skip


def build_from_config(
    name: str, num_layers: int | None, device: str, dtype: torch.dtype
) -> LoadedModel:
    """A random-initialised model with a public model's exact architecture."""
    import transformers

    cls_name, kw = CONFIGS[name]
    kw = dict(kw)
    if num_layers:
        kw["num_hidden_layers"] = num_layers
    cfg = getattr(transformers, cls_name)(**kw)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.eval()
    try:
        tok = load_model("smollm2-135m-instruct").tokenizer
    except Exception:
        tok = lgkit.models.tiny_tokenizer()
    return LoadedModel(
        model, tok, f"config:{name}", "config", None, True, str(dtype).replace("torch.", ""), device
    )


class PeakMemory:
    """Peak RSS growth (sampled every 5 ms) and CUDA peak during a block."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.proc = psutil.Process()

    def __enter__(self) -> PeakMemory:
        gc.collect()
        _trim()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.cuda_base = torch.cuda.memory_allocated()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.rss_mb = (self.peak - self.base) / 2**20
        self.cuda_mb = None
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.cuda_mb = (torch.cuda.max_memory_allocated() - self.cuda_base) / 2**20


def _trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_bare(model: torch.nn.Module, targets, encs: list[Encoded], device: str) -> dict:
    names = {t.module_name for t in targets}
    model.requires_grad_(False)
    for n in names:
        model.get_submodule(n).weight.requires_grad_(True)
    per = []
    for e in encs:
        t0 = time.perf_counter()
        ids = torch.tensor([e.input_ids], device=device)
        labels = ids.clone()
        labels[0, : e.n_prompt_tokens] = -100
        model(ids, labels=labels, use_cache=False).loss.backward()
        model.zero_grad(set_to_none=True)
        _sync(device)
        per.append(time.perf_counter() - t0)
    model.requires_grad_(False)
    return {"seconds": per, "fb_seconds": sum(per), "stats_seconds": 0.0}


def run_naive(model: torch.nn.Module, targets, encs: list[Encoded], device: str) -> dict:
    per, stats_s = [], 0.0
    for e in encs:
        t0 = time.perf_counter()
        # naive_stats_encoded = backward + full SVD per gradient; time the SVD part separately
        ids = torch.tensor([e.input_ids], device=device)
        labels = ids.clone()
        labels[0, : e.n_prompt_tokens] = -100
        model.requires_grad_(False)
        for t in targets:
            model.get_submodule(t.module_name).weight.requires_grad_(True)
        model(ids, labels=labels, use_cache=False).loss.backward()
        _sync(device)
        t1 = time.perf_counter()
        for t in targets:
            g = lgkit.engine.reference.target_gradient(model, t)
            _, S, _ = torch.linalg.svd(g)
            vals = (g.mean(), g.max(), g.min(), torch.linalg.norm(g), S.sum(), S.max(), S.min())
            [float(v) for v in vals]
        model.zero_grad(set_to_none=True)
        _sync(device)
        t2 = time.perf_counter()
        stats_s += t2 - t1
        per.append(t2 - t0)
    model.requires_grad_(False)
    return {"seconds": per, "fb_seconds": sum(per) - stats_s, "stats_seconds": stats_s}


def run_lgkit(
    model: torch.nn.Module,
    targets,
    encs: list[Encoded],
    device: str,
    batch_size: int,
    pad_id: int,
    stats_threads: int | None = None,
    **options: bool,
) -> dict:
    """lgkit's engine over ``encs``; ``options``: ``token_columns``/``token_stats`` of
    :func:`lgkit.engine.batch.forward_backward`."""
    model.requires_grad_(False)
    per, stats_s = [], 0.0
    order = (
        sorted(range(len(encs)), key=lambda i: len(encs[i].input_ids))
        if batch_size > 1
        else list(range(len(encs)))
    )
    for k in range(0, len(order), batch_size):
        batch = [encs[i] for i in order[k : k + batch_size]]
        t0 = time.perf_counter()
        s = forward_backward(
            model, targets, batch, pad_id=pad_id, stats_threads=stats_threads, **options
        ).seconds
        _sync(device)
        dt = time.perf_counter() - t0
        stats_s += s
        per.extend([dt / len(batch)] * len(batch))
    return {"seconds": per, "fb_seconds": sum(per) - stats_s, "stats_seconds": stats_s}


def run_table(lm: LoadedModel, examples: list, device: str, config: dict, **options) -> dict:
    """The whole run (:func:`lgkit.compute_stats`, Parquet included) into a fresh directory."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="lgkit-bench-")
    try:
        cfg = lgkit.GradConfig(**config, **options)
        t0 = time.perf_counter()
        res = lgkit.compute_stats(lm, examples, d, cfg, progress=False)
        _sync(device)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(d, ignore_errors=True)
    n = max(res.n_done, 1)
    return {
        "seconds": [wall / n] * n,
        "fb_seconds": res.seconds_model,
        "stats_seconds": res.seconds_stats,
    }


def check_exact(model, targets, enc: Encoded, pad_id: int) -> float:
    """Worst relative difference lgkit vs naive on one example (nuclear norm, σ_max, Frobenius)."""
    rows, _, _ = run_batch(model, targets, [enc], pad_id=pad_id)
    ref, _ = naive_stats_encoded(model, enc, targets)
    worst = 0.0
    for a, b in zip(rows[0], ref, strict=True):
        for k in ("nuclear_norm", "sigma_max", "frobenius_norm"):
            worst = max(worst, abs(a[k] - b[k]) / max(abs(b[k]), 1e-30))
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model",
        default="smollm2-135m-instruct",
        help="lgkit model name, or config:qwen2-1.5b / config:llama-3.1-8b",
    )
    p.add_argument(
        "--data",
        default=str(
            Path(os.environ["LGKIT_DATA_DIR"]) / "cot_500" / "gsm8k_train_with_cot_gpt4o.json"
        )
        if os.environ.get("LGKIT_DATA_DIR")
        else str(DEFAULT_DATA),
    )
    p.add_argument("--n", type=int, default=30, help="examples (default 30)")
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of bare/naive/lgkit (default 2)"
    )
    p.add_argument("--batch-size", type=int, default=1, help="lgkit batch size (GPU: try 8)")
    p.add_argument("--modules", default="q,k,v,o")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32")
    p.add_argument(
        "--num-layers",
        type=int,
        default=None,
        help="truncate a config: model to N layers (CPU memory)",
    )
    p.add_argument(
        "--compare-threads",
        action="store_true",
        help="also time lgkit with its eigen-solves on one thread",
    )
    p.add_argument(
        "--lengths",
        type=lambda v: [int(x) for x in v.split(",")],
        default=None,
        help="long inputs: responses repeated, then cut to these token budgets (e.g. 512,1024,2048,4096)",
    )
    p.add_argument(
        "--token-costs",
        action="store_true",
        help="also time lgkit without the token_norm_sum/coherence columns, with the per-token "
        "terms, and whole runs (compute_stats) without and with --token-stats",
    )
    p.add_argument(
        "--skip-naive", action="store_true", help="only bare and lgkit (for very long inputs)"
    )
    p.add_argument(
        "--json",
        default=None,
        help="write results here (default benchmarks/results/<model>-<data>-<device>.json)",
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, a.dtype)
    if a.model.startswith("config:"):
        lm = build_from_config(a.model.split(":", 1)[1], a.num_layers, device, dtype)
    else:
        lm = load_model(a.model, device=device, dtype=a.dtype)
    model, tok = lm.model, lm.tokenizer
    modules = lgkit.engine.arch.parse_modules(a.modules)
    targets = find_targets(model, modules)
    examples = read_examples(a.data)[: a.n]
    if a.lengths:  # long inputs: each example's response grown, then cut to each token budget
        grown = [dataclasses.replace(ex, output=" ".join([ex.output] * 8)) for ex in examples]
        encs = [
            encode_example(tok, ex, instruct=lm.instruct, max_length=n)
            for ex in grown
            for n in a.lengths
        ]
    else:
        encs = [
            encode_example(tok, ex, instruct=lm.instruct, max_length=a.max_length)
            for ex in examples
        ]
    encs = [e for e in encs if e.n_response_tokens > 0]
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    ntok = [len(e.input_ids) for e in encs]
    log.info("model %s on %s (%d threads), %d examples, tokens mean %.0f [min %d, max %d], modules %s",
             lm.name, device, torch.get_num_threads(), len(encs), statistics.mean(ntok), min(ntok), max(ntok), ",".join(modules))  # fmt: skip

    worst = check_exact(model, targets, encs[0], pad_id)
    log.info("exactness check on example 0: worst relative difference %.2e", worst)
    run_batch(model, targets, encs[:1], pad_id=pad_id)  # warm-up
    methods = {"bare": lambda: run_bare(model, targets, encs, device),
               "lgkit": lambda: run_lgkit(model, targets, encs, device, a.batch_size, pad_id)}  # fmt: skip
    if a.compare_threads:
        methods["lgkit_1thread"] = lambda: run_lgkit(
            model, targets, encs, device, a.batch_size, pad_id, stats_threads=1
        )
    if a.token_costs:
        run_cfg = {"modules": modules, "batch_size": a.batch_size, "max_length": a.max_length}
        methods["lgkit_notok"] = lambda: run_lgkit(
            model, targets, encs, device, a.batch_size, pad_id, token_columns=False
        )
        methods["lgkit_tokterms"] = lambda: run_lgkit(
            model, targets, encs, device, a.batch_size, pad_id, token_stats=True
        )
        if not a.lengths:
            methods["table"] = lambda: run_table(lm, examples, device, run_cfg)
            methods["table_tok"] = lambda: run_table(
                lm, examples, device, run_cfg, token_stats=True
            )
    if not a.skip_naive:
        methods["naive"] = lambda: run_naive(model, targets, encs, device)
    res: dict[str, list[dict]] = {m: [] for m in methods}
    for r in range(a.rounds):
        for m, fn in methods.items():
            with PeakMemory(device) as mem:
                t0 = time.perf_counter()
                out = fn()
                out["wall"] = time.perf_counter() - t0
            out["rss_mb"], out["cuda_mb"] = mem.rss_mb, mem.cuda_mb
            res[m].append(out)
            log.info(
                "round %d %-6s %7.2f s  (%.2f ex/s)", r + 1, m, out["wall"], len(encs) / out["wall"]
            )

    def best(m: str) -> dict:  # the fastest round of each method
        return min(res[m], key=lambda o: o["wall"])

    summary = {}
    for m in methods:
        b = best(m)
        summary[m] = {
            "examples_per_s": len(encs) / b["wall"],
            "s_per_example": b["wall"] / len(encs),
            "fb_s_per_example": b["fb_seconds"] / len(encs),
            "stats_s_per_example": b["stats_seconds"] / len(encs),
            "peak_rss_growth_mb": max(o["rss_mb"] for o in res[m]),
            "peak_cuda_mb": max((o["cuda_mb"] or 0) for o in res[m])
            if device.startswith("cuda")
            else None,
            "walls": [o["wall"] for o in res[m]],
        }
    lg, bare = summary["lgkit"], summary["bare"]
    out = {
        "model": lm.name, "device": device, "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "lgkit": lgkit.__version__, "git": git_hash(),
        "data": a.data, "n_examples": len(encs), "tokens_mean": statistics.mean(ntok), "tokens": ntok, "max_length": a.max_length,
        "modules": list(modules), "batch_size": a.batch_size, "rounds": a.rounds, "exactness_worst_rel": worst, "methods": summary,
        "overhead_vs_bare": lg["s_per_example"] / bare["s_per_example"] - 1,
        "memory_ratio_vs_bare": lg["peak_rss_growth_mb"] / bare["peak_rss_growth_mb"] if bare["peak_rss_growth_mb"] > 0 else None,
        "per_example_seconds": {m: best(m)["seconds"] for m in methods},
    }  # fmt: skip
    ratio = {("lgkit", "lgkit_notok"): "token_columns_cost_ratio",
             ("lgkit_tokterms", "lgkit"): "token_terms_cost_ratio",
             ("table_tok", "table"): "token_stats_table_cost_ratio"}  # fmt: skip
    for (m1, m0), key in ratio.items():
        if m1 in summary and m0 in summary:
            out[key] = summary[m1]["s_per_example"] / summary[m0]["s_per_example"]
    if "naive" in summary:
        out["speedup_vs_naive"] = lg["examples_per_s"] / summary["naive"]["examples_per_s"]
    if len(set(ntok)) > 2:  # cost growth with length: log-log slope of seconds vs tokens
        import numpy as np

        x = np.log(np.array(ntok, dtype=float))
        out["cost_vs_tokens_slope"] = {
            m: float(np.polyfit(x, np.log(np.array(best(m)["seconds"])), 1)[0])
            for m in methods
            if len(best(m)["seconds"]) == len(ntok)  # whole runs (table*) time no single example
        }

    print()
    print(
        f"{'method':8s} {'ex/s':>8s} {'s/ex':>8s} {'fwd+bwd':>8s} {'stats':>8s} {'RSS+MB':>8s}"
        + (" CUDA-MB" if device.startswith("cuda") else "")
    )
    for m, s in summary.items():
        line = f"{m:8s} {s['examples_per_s']:8.3f} {s['s_per_example']:8.3f} {s['fb_s_per_example']:8.3f} {s['stats_s_per_example']:8.3f} {s['peak_rss_growth_mb']:8.0f}"
        if device.startswith("cuda"):
            line += f" {s['peak_cuda_mb']:8.0f}"
        print(line)
    for key in ratio.values():
        if key in out:
            print(f"{key}: {out[key]:.3f} (same process, fastest of {a.rounds} rounds)")
    if "speedup_vs_naive" in out:
        print(f"lgkit / naive examples/s: {out['speedup_vs_naive']:.2f}x")
    print(f"lgkit overhead over bare forward+backward: {100 * out['overhead_vs_bare']:+.1f}%")
    if out["memory_ratio_vs_bare"] is not None:
        print(f"lgkit peak memory / bare: {out['memory_ratio_vs_bare']:.2f}x")
    if "cost_vs_tokens_slope" in out:
        print(
            "cost vs tokens (log-log slope): "
            + ", ".join(f"{m} {v:.2f}" for m, v in out["cost_vs_tokens_slope"].items())
        )
    path = (
        Path(a.json)
        if a.json
        else REPO
        / "benchmarks"
        / "results"
        / f"{lm.name.replace(':', '-')}-{Path(a.data).stem}-{device}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
