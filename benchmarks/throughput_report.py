"""What benchmarks/throughput.py reports: per-method summaries, ratios, targets, the printed table."""

from __future__ import annotations

import argparse
import platform
import statistics
from pathlib import Path

import torch

import lgkit
from lgkit.provenance import git_hash

# issue #21's GPU targets: lgkit/naive examples/s per shape; overhead and memory vs bare
TARGET_SPEEDUP = {"config:qwen2-1.5b": 20.0, "config:llama-3.1-8b": 50.0}
TARGET_OVERHEAD = 0.15
TARGET_MEMORY = 1.25


def summarise(res: dict[str, list[dict]], device: str) -> dict:
    """Per method with at least one round: the fastest round's rates and the peak memory."""
    summary = {}
    for m, outs in res.items():
        if not outs:
            continue
        b = min(outs, key=lambda o: o["wall"] / len(o["seconds"]))
        n = len(b["seconds"])
        summary[m] = {
            "n_examples": n,
            "examples_per_s": n / b["wall"],
            "s_per_example": b["wall"] / n,
            "fb_s_per_example": b["fb_seconds"] / n,
            "stats_s_per_example": b["stats_seconds"] / n,
            "peak_rss_growth_mb": max(o["rss_mb"] for o in outs),
            "peak_cuda_mb": max((o["cuda_mb"] or 0) for o in outs) if device.startswith("cuda") else None,
            "walls": [o["wall"] for o in outs],
        }  # fmt: skip
        if "svd_seconds_measured" in b:
            summary[m]["svd_s_per_example_measured"] = b["svd_seconds_measured"] / n
    return summary


def evaluate_targets(out: dict, a: argparse.Namespace, model_name: str) -> dict:
    """Each target with its value and whether it is met (None: not measured)."""
    speed = a.target_speedup if a.target_speedup is not None else TARGET_SPEEDUP.get(model_name)
    cands = {"speedup_vs_naive": (speed, out.get("speedup_vs_naive"), ">="),
             "overhead_vs_bare": (a.target_overhead, out.get("overhead_vs_bare"), "<="),
             "memory_ratio_vs_bare": (a.target_memory, out.get("memory_ratio_vs_bare"), "<=")}  # fmt: skip
    targets = {}
    for key, (goal, value, op) in cands.items():
        if goal is None:
            continue
        met = None if value is None else (value >= goal if op == ">=" else value <= goal)
        targets[key] = {"target": goal, "op": op, "value": value, "met": met}
    return targets


def build_output(a, lm, data, encs, res, worst, device, rounds_done) -> dict:
    summary = summarise(res, device)
    ntok = [len(e.input_ids) for e in encs]
    cuda = device.startswith("cuda")
    out = {
        "model": lm.name, "device": device, "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "lgkit": lgkit.__version__, "git": git_hash(),
        "dtype": a.dtype, "data": data, "n_examples": len(encs), "tokens_mean": statistics.mean(ntok), "tokens": ntok,
        "max_length": a.max_length, "tokenizer": getattr(a, "tokenizer_name", None), "num_layers": a.num_layers,
        "modules": list(lgkit.engine.arch.parse_modules(a.modules)), "batch_size": a.batch_size, "rounds": a.rounds,
        "rounds_done": rounds_done, "complete": rounds_done >= a.rounds, "exactness_worst_rel": worst,
        "naive_n": a.naive_n, "naive_layers": a.naive_layers, "check_layers": a.check_layers, "methods": summary,
        "per_example_seconds": {m: min(o, key=lambda x: x["wall"])["seconds"] for m, o in res.items() if o},
    }  # fmt: skip
    lg, bare = summary.get("lgkit"), summary.get("bare")
    if lg and bare:
        out["overhead_vs_bare"] = lg["s_per_example"] / bare["s_per_example"] - 1
        key = "peak_cuda_mb" if cuda else "peak_rss_growth_mb"
        out["memory_measure"] = key
        out["memory_ratio_vs_bare"] = lg[key] / bare[key] if bare[key] and bare[key] > 0 else None
    ratio = {("lgkit", "lgkit_notok"): "token_columns_cost_ratio",
             ("lgkit_tokterms", "lgkit"): "token_terms_cost_ratio",
             ("table_tok", "table"): "token_stats_table_cost_ratio"}  # fmt: skip
    for (m1, m0), key in ratio.items():
        if m1 in summary and m0 in summary:
            out[key] = summary[m1]["s_per_example"] / summary[m0]["s_per_example"]
    if lg and "naive" in summary:
        out["speedup_vs_naive"] = lg["examples_per_s"] / summary["naive"]["examples_per_s"]
    if len(set(ntok)) > 2 and all(o for o in res.values()):  # cost growth with length
        import numpy as np

        x = np.log(np.array(ntok, dtype=float))
        out["cost_vs_tokens_slope"] = {
            m: float(np.polyfit(x, np.log(np.array(secs)), 1)[0])
            for m, secs in out["per_example_seconds"].items()
            if len(secs)
            == len(ntok)  # whole runs (table*) and a shortened naive time no single example
        }
    out["targets"] = evaluate_targets(out, a, lm.name)
    return out


def print_report(out: dict) -> None:
    cuda = out["device"].startswith("cuda")
    print()
    print(f"{out['model']} {out['dtype']} on {out['device_name']}: {Path(out['data']).stem}, "
          f"{out['n_examples']} examples x {out['tokens_mean']:.0f} tokens, batch {out['batch_size']}")  # fmt: skip
    print(f"{'method':8s} {'ex/s':>8s} {'s/ex':>8s} {'fwd+bwd':>8s} {'stats':>8s} {'RSS+MB':>8s}"
          + (" CUDA-MB" if cuda else ""))  # fmt: skip
    for m, s in out["methods"].items():
        line = f"{m:8s} {s['examples_per_s']:8.3f} {s['s_per_example']:8.3f} {s['fb_s_per_example']:8.3f} {s['stats_s_per_example']:8.3f} {s['peak_rss_growth_mb']:8.0f}"
        print(line + (f" {s['peak_cuda_mb']:8.0f}" if cuda else ""))
    for key in (
        "token_columns_cost_ratio",
        "token_terms_cost_ratio",
        "token_stats_table_cost_ratio",
    ):
        if key in out:
            print(f"{key}: {out[key]:.3f} (same process, fastest of {out['rounds_done']} rounds)")
    if "speedup_vs_naive" in out:
        print(f"lgkit / naive examples/s: {out['speedup_vs_naive']:.2f}x")
    if "overhead_vs_bare" in out:
        print(f"lgkit overhead over bare forward+backward: {100 * out['overhead_vs_bare']:+.1f}%")
    if out.get("memory_ratio_vs_bare") is not None:
        print(
            f"lgkit peak memory / bare ({out['memory_measure']}): {out['memory_ratio_vs_bare']:.2f}x"
        )
    if "cost_vs_tokens_slope" in out:
        print("cost vs tokens (log-log slope): "
              + ", ".join(f"{m} {v:.2f}" for m, v in out["cost_vs_tokens_slope"].items()))  # fmt: skip
    for key, t in out["targets"].items():
        state = "not measured" if t["met"] is None else ("met" if t["met"] else "NOT met")
        print(f"target {key} {t['op']} {t['target']}: {state}")
