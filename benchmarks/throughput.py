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

On CUDA the JSON also holds the GPU targets of issue #21 (``targets``: each with its
value and whether it is met; ``--target-speedup`` etc.), and ``torch.profiler`` output
of one lgkit batch is saved beside the JSON when one is missed (on CUDA; on the CPU with
``--profile-on-miss always``). ``--naive-n`` and
``--naive-layers`` bound the naive method's cost on large shapes (its SVD time is then
scaled from the layers it ran, and the JSON says so). ``benchmarks/gpu_check.sh`` runs the
GPU series.

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
import functools
import gc
import json
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil
import torch
from throughput_report import TARGET_MEMORY, TARGET_OVERHEAD, build_output, print_report

import lgkit
from lgkit.engine.arch import find_targets
from lgkit.engine.batch import _padded, forward_backward, per_example_losses, run_batch
from lgkit.engine.reference import naive_stats_encoded, svd_ready
from lgkit.formats.prompts import Encoded, encode_example
from lgkit.formats.records import read_examples
from lgkit.models.load import LoadedModel, load_model
from lgkit.models.shapes import build_shape

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


@functools.cache
def benchmark_tokenizer(path: str | None) -> tuple[object, str]:
    """The tokenizer for a ``config:`` model and its name: a saved folder, else SmolLM2's
    (the embedded model), else lgkit's byte-level test tokenizer (more tokens per text)."""
    if path:
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        try:
            return AutoTokenizer.from_pretrained(path), path
        except (OSError, ValueError, ImportError, AttributeError) as e:  # another transformers
            log.warning("AutoTokenizer failed on %s (%s); reading its tokenizer.json", path, e)
            return PreTrainedTokenizerFast(tokenizer_file=str(Path(path) / "tokenizer.json")), path
    try:
        return load_model("smollm2-135m-instruct", device="cpu").tokenizer, "smollm2-135m-instruct"
    except Exception as e:  # not installed (a bare GPU image)
        log.warning("SmolLM2's tokenizer unavailable (%s); byte-level tokenizer used", e)
        return lgkit.models.tiny_tokenizer(), "tiny (byte-level)"


def benchmark_model(name: str, *, device: str, dtype: str = "float32", tokenizer: str | None = None,
                    num_layers: int | None = None) -> tuple[LoadedModel, str]:  # fmt: skip
    """An lgkit model by name, or a random-weight ``config:`` shape (:mod:`lgkit.models.shapes`)
    with :func:`benchmark_tokenizer`'s tokenizer; and the tokenizer's name."""
    if not name.startswith("config:"):
        return load_model(name, device=device, dtype=dtype), name
    tok, tok_name = benchmark_tokenizer(tokenizer)
    lm = build_shape(name.split(":", 1)[1], num_layers=num_layers, device=device,
                     dtype=getattr(torch, dtype), tokenizer=tok)  # fmt: skip
    return lm, tok_name


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


def _batches(encs: list[Encoded], batch_size: int) -> list[list[Encoded]]:
    """Padded batches as lgkit forms them: similar lengths together when batch_size > 1."""
    if batch_size > 1:
        encs = sorted(encs, key=lambda e: len(e.input_ids))
    return [encs[k : k + batch_size] for k in range(0, len(encs), batch_size)]


def run_bare(
    model: torch.nn.Module,
    targets,
    encs: list[Encoded],
    device: str,
    batch_size: int = 1,
    pad_id: int = 0,
) -> dict:
    """Forward + ``backward`` with the projection weights trainable, in lgkit's batches
    (batch 1: the model's own loss; larger: the sum of per-example mean losses)."""
    names = {t.module_name for t in targets}
    model.requires_grad_(False)
    for n in names:
        model.get_submodule(n).weight.requires_grad_(True)
    per = []
    for batch in _batches(encs, batch_size):
        t0 = time.perf_counter()
        if len(batch) == 1:
            e = batch[0]
            ids = torch.tensor([e.input_ids], device=device)
            labels = ids.clone()
            labels[0, : e.n_prompt_tokens] = -100
            model(ids, labels=labels, use_cache=False).loss.backward()
        else:
            ids, mask = _padded(batch, pad_id, device)
            logits = model(ids, attention_mask=mask, use_cache=False).logits
            per_example_losses(logits, ids, batch).sum().backward()
            del logits
        model.zero_grad(set_to_none=True)
        _sync(device)
        per.extend([(time.perf_counter() - t0) / len(batch)] * len(batch))
    model.requires_grad_(False)
    return {"seconds": per, "fb_seconds": sum(per), "stats_seconds": 0.0}


def naive_svd_targets(targets: list, n_layers: int | None) -> tuple[list, float]:
    """The targets whose gradients the naive method decomposes, and the factor its SVD
    time is scaled by: all (factor 1), or those of ``n_layers`` evenly spaced layers.

    Example:
        >>> from lgkit.engine.arch import Target
        >>> ts = [Target(i, "q", f"l{i}.q", f"l{i}.q.weight", None, False, (4, 4)) for i in range(8)]
        >>> sub, scale = naive_svd_targets(ts, 2)
        >>> [t.layer for t in sub], scale
        ([0, 7], 4.0)
    """
    layers = sorted({t.layer for t in targets})
    if not n_layers or n_layers >= len(layers):
        return list(targets), 1.0
    pick = {layers[round(i * (len(layers) - 1) / max(n_layers - 1, 1))] for i in range(n_layers)}
    sub = [t for t in targets if t.layer in pick]
    return sub, len(targets) / len(sub)


def run_naive(
    model: torch.nn.Module,
    targets,
    encs: list[Encoded],
    device: str,
    svd_targets=None,
    svd_scale: float = 1.0,
) -> dict:
    """The authors' method: backward materialising every target's weight gradient, then a
    full ``torch.linalg.svd`` of each (of ``svd_targets`` only, time scaled by ``svd_scale``)."""
    svd_targets = targets if svd_targets is None else svd_targets
    per, stats_s, measured = [], 0.0, 0.0
    for e in encs:
        t0 = time.perf_counter()
        ids = torch.tensor([e.input_ids], device=device)
        labels = ids.clone()
        labels[0, : e.n_prompt_tokens] = -100
        model.requires_grad_(False)
        for t in targets:
            model.get_submodule(t.module_name).weight.requires_grad_(True)
        model(ids, labels=labels, use_cache=False).loss.backward()
        _sync(device)
        t1 = time.perf_counter()
        for t in svd_targets:
            g = svd_ready(lgkit.engine.reference.target_gradient(model, t))
            _, S, _ = torch.linalg.svd(g)
            vals = (g.mean(), g.max(), g.min(), torch.linalg.norm(g), S.sum(), S.max(), S.min())
            [float(v) for v in vals]
        _sync(device)
        t2 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        _sync(device)
        fb = (t1 - t0) + (time.perf_counter() - t2)
        measured += t2 - t1
        stats_s += (t2 - t1) * svd_scale
        per.append(fb + (t2 - t1) * svd_scale)
    model.requires_grad_(False)
    return {"seconds": per, "fb_seconds": sum(per) - stats_s, "stats_seconds": stats_s,
            "svd_seconds_measured": measured}  # fmt: skip


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model",
        default="smollm2-135m-instruct",
        help="lgkit model name, or config:qwen2-1.5b / config:llama-3.1-8b (lgkit.models.shapes)",
    )
    data_dir = Path(os.environ["LGKIT_DATA_DIR"]) if os.environ.get("LGKIT_DATA_DIR") else None
    p.add_argument(
        "--data",
        default=str(data_dir / "cot_500" / "gsm8k_train_with_cot_gpt4o.json")
        if data_dir
        else str(DEFAULT_DATA),
        help="examples file; a comma list runs each in turn",
    )
    p.add_argument("--n", type=int, default=30, help="examples (default 30)")
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of bare/naive/lgkit (default 2)"
    )
    p.add_argument(
        "--batch-size", type=int, default=1, help="lgkit's (and bare's) batch size (GPU: try 8)"
    )
    p.add_argument("--modules", default="q,k,v,o")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32", help="float32, bfloat16, or a comma list of both")
    p.add_argument(
        "--num-layers", type=int, default=None, help="truncate a config: model to N layers"
    )
    p.add_argument("--tokenizer", default=None, help="saved tokenizer folder for config: models")
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
        "--naive-n", type=int, default=None, help="the naive method on the first N examples only"
    )
    p.add_argument(
        "--naive-layers",
        type=int,
        default=None,
        help="the naive method's SVDs on N evenly spaced layers, time scaled to all layers",
    )
    p.add_argument(
        "--check-layers",
        type=int,
        default=None,
        help="the exactness check (example 0) on N evenly spaced layers only",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="start no further round after this many seconds (at least one round runs)",
    )
    p.add_argument(
        "--target-speedup",
        type=float,
        default=None,
        help="target lgkit/naive examples/s (default: issue #21's for config: shapes)",
    )
    p.add_argument("--target-overhead", type=float, default=TARGET_OVERHEAD)
    p.add_argument("--target-memory", type=float, default=TARGET_MEMORY)
    p.add_argument(
        "--profile-on-miss",
        choices=("auto", "always", "never"),
        default="auto",
        help="torch.profiler output of one lgkit batch when a target is missed (auto: on CUDA)",
    )
    p.add_argument(
        "--json",
        default=None,
        help="write results here (default benchmarks/results/<model>-<data>-<device>.json)",
    )
    p.add_argument("--out-dir", default=None, help="folder of the default-named JSON files")
    return p.parse_args(argv)  # fmt: skip


def encode_data(a: argparse.Namespace, lm: LoadedModel, data: str) -> tuple[list, list[Encoded]]:
    """The examples of ``data`` and their encodings (long inputs: grown, then cut)."""
    examples = read_examples(data)[: a.n]
    tok = lm.tokenizer
    if a.lengths:  # long inputs: each example's response grown, then cut to each token budget
        grown = [dataclasses.replace(ex, output=" ".join([ex.output] * 8)) for ex in examples]
        encs = [encode_example(tok, ex, instruct=lm.instruct, max_length=n)
                for ex in grown for n in a.lengths]  # fmt: skip
    else:
        encs = [encode_example(tok, ex, instruct=lm.instruct, max_length=a.max_length)
                for ex in examples]  # fmt: skip
    return examples, [e for e in encs if e.n_response_tokens > 0]


def make_methods(a, lm: LoadedModel, targets, examples, encs, device: str, pad_id: int) -> dict:
    model, bs = lm.model, a.batch_size
    methods = {"bare": lambda: run_bare(model, targets, encs, device, bs, pad_id),
               "lgkit": lambda: run_lgkit(model, targets, encs, device, bs, pad_id)}  # fmt: skip
    if a.compare_threads:
        methods["lgkit_1thread"] = lambda: run_lgkit(
            model, targets, encs, device, bs, pad_id, stats_threads=1
        )
    if a.token_costs:
        run_cfg = {"modules": a.modules, "batch_size": bs, "max_length": a.max_length}  # fmt: skip
        methods["lgkit_notok"] = lambda: run_lgkit(
            model, targets, encs, device, bs, pad_id, token_columns=False
        )
        methods["lgkit_tokterms"] = lambda: run_lgkit(
            model, targets, encs, device, bs, pad_id, token_stats=True
        )
        if not a.lengths:
            methods["table"] = lambda: run_table(lm, examples, device, run_cfg)
            methods["table_tok"] = lambda: run_table(
                lm, examples, device, run_cfg, token_stats=True
            )
    if not a.skip_naive:
        sub, scale = naive_svd_targets(targets, a.naive_layers)
        n_naive = encs[: a.naive_n] if a.naive_n else encs
        methods["naive"] = lambda: run_naive(model, targets, n_naive, device, sub, scale)
    return methods  # fmt: skip


def save_profile(lm, targets, encs, a, device: str, pad_id: int, prefix: Path) -> list[str]:
    """``torch.profiler`` of one lgkit batch: the operator table (text) and a gzipped trace."""
    import gzip
    import shutil

    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=acts) as prof:
        run_lgkit(lm.model, targets, encs[: a.batch_size], device, a.batch_size, pad_id)
    averages = prof.key_averages()
    table = None
    cuda = device.startswith("cuda")
    for sort in ("device_time_total", "cuda_time_total", "cpu_time_total")[0 if cuda else 2 :]:
        try:  # the device column's name changed across torch versions
            table = averages.table(sort_by=sort, row_limit=40)
            break
        except (AttributeError, KeyError, ValueError):
            continue
    # names spelled out: with_suffix would cut "qwen2-1.5b-..." at its dot
    txt, trace = (prefix.parent / f"{prefix.name}{ext}" for ext in (".profile.txt", ".trace.json"))
    txt.write_text(table or str(averages))
    prof.export_chrome_trace(str(trace))
    with open(trace, "rb") as f, gzip.open(f"{trace}.gz", "wb") as g:
        shutil.copyfileobj(f, g)
    trace.unlink()
    return [str(txt), f"{trace}.gz"]


def json_path(a: argparse.Namespace, lm: LoadedModel, data: str, device: str) -> Path:
    if a.json:
        return Path(a.json)
    folder = Path(a.out_dir) if a.out_dir else REPO / "benchmarks" / "results"
    dtype = "" if a.dtype == "float32" else f"-{a.dtype}"
    return (
        folder / f"{lm.name.replace(':', '-')}-{Path(data).stem}-{device.split(':')[0]}{dtype}.json"
    )


def measure(a, lm: LoadedModel, targets, data: str, device: str) -> Path:
    """Every method on ``data``, round by round; the JSON is rewritten after each method
    (a run killed at its time limit keeps what it measured)."""
    tok = lm.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    examples, encs = encode_data(a, lm, data)
    if not encs:
        raise SystemExit(
            f"{data}: no example keeps a response token within --max-length {a.max_length}"
        )
    ntok = [len(e.input_ids) for e in encs]
    log.info("model %s %s on %s (%d threads), %s: %d examples, tokens mean %.0f [min %d, max %d]",
             lm.name, a.dtype, device, torch.get_num_threads(), Path(data).name, len(encs),
             statistics.mean(ntok), min(ntok), max(ntok))  # fmt: skip
    check, _ = naive_svd_targets(targets, a.check_layers)
    worst = check_exact(lm.model, check, encs[0], pad_id)
    log.info(
        "exactness check on example 0 (%d projections): worst relative difference %.2e",
        len(check),
        worst,
    )
    run_batch(lm.model, targets, encs[: a.batch_size], pad_id=pad_id)  # warm-up
    methods = make_methods(a, lm, targets, examples, encs, device, pad_id)
    res: dict[str, list[dict]] = {m: [] for m in methods}
    path = json_path(a, lm, data, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    t_start, rounds_done = time.perf_counter(), 0
    for r in range(a.rounds):
        t_round = time.perf_counter()
        for m, fn in methods.items():
            with PeakMemory(device) as mem:
                t0 = time.perf_counter()
                out = fn()
                out["wall"] = time.perf_counter() - t0
            out["rss_mb"], out["cuda_mb"] = mem.rss_mb, mem.cuda_mb
            res[m].append(out)
            n = len(out["seconds"])
            log.info(
                "round %d %-6s %7.2f s  (%.2f ex/s over %d)",
                r + 1,
                m,
                out["wall"],
                n / out["wall"],
                n,
            )
            path.write_text(
                json.dumps(
                    build_output(a, lm, data, encs, res, worst, device, rounds_done), indent=2
                )
            )
        rounds_done = r + 1
        spent, last = time.perf_counter() - t_start, time.perf_counter() - t_round
        if a.time_budget and r + 1 < a.rounds and spent + last > a.time_budget:
            log.info(
                "time budget %.0f s: stopping after %d of %d rounds",
                a.time_budget,
                rounds_done,
                a.rounds,
            )
            break
    out = build_output(a, lm, data, encs, res, worst, device, rounds_done)
    missed = [k for k, t in out["targets"].items() if t["met"] is False]
    profile = a.profile_on_miss == "always" or (
        a.profile_on_miss == "auto" and device.startswith("cuda")
    )
    if missed and profile:
        try:
            prefix = path.parent / path.name.removesuffix(".json")
            out["profile_files"] = save_profile(lm, targets, encs, a, device, pad_id, prefix)
            log.info(
                "targets missed (%s): profile in %s", ", ".join(missed), out["profile_files"][0]
            )
        except Exception as e:  # the measurements stand without it
            out["profile_error"] = f"{type(e).__name__}: {e}"
            log.warning("targets missed (%s); torch.profiler failed: %s", ", ".join(missed), e)
    path.write_text(json.dumps(out, indent=2))
    print_report(out)
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    datas = [d for d in a.data.split(",") if d]
    dtypes = [d for d in a.dtype.split(",") if d]
    if a.json and len(datas) * len(dtypes) > 1:
        raise SystemExit("--json names one file: give --out-dir with several --data or --dtype")
    for a.dtype in dtypes:
        run_dtype(a, datas, device)
    return 0


def run_dtype(a: argparse.Namespace, datas: list[str], device: str) -> None:
    """Build (or load) the model in ``a.dtype`` and measure it on each data file."""
    lm, a.tokenizer_name = benchmark_model(a.model, device=device, dtype=a.dtype,
                                           tokenizer=a.tokenizer, num_layers=a.num_layers)  # fmt: skip
    targets = find_targets(lm.model, lgkit.engine.arch.parse_modules(a.modules))
    for data in datas:
        measure(a, lm, targets, data, device)
    del lm, targets
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
