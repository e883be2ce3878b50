"""The engine on a GPU: exactness against the naive method, and bfloat16 against float32.

Every test here carries the ``gpu`` marker and runs on ``$LGKIT_TEST_DEVICE`` (default
``cuda``; skipped when CUDA is missing). ``LGKIT_TEST_DEVICE=cpu`` runs the very same
functions on the CPU: the rehearsal of ``benchmarks/gpu_check.sh --dry-run``.

* float32, batch 1 and 8, the tiny architectures and the first layers of a random-weight
  Qwen2-1.5B (``lgkit.models.shapes``): every statistic within 1e-4 relative of the naive
  method (materialised gradient + SVD). For the Qwen2-1.5B shape the naive method runs
  on a float64 copy of the model: at these sizes the float32 naive reference's own error
  reaches 1e-4 (its Frobenius norm, benchmarks/RESULTS.md), lgkit's is ~1e-6.
* bfloat16 against float32 (same weights, rounded): bfloat16 keeps 8 significant bits,
  unit roundoff u = 2⁻⁸ ≈ 3.9e-3. The bfloat16 model rounds every activation and
  activation gradient to u, so the factors D and X of a projection carry relative errors
  of a few u (each is a smooth function of the model's rounded intermediates); lgkit's
  statistics of them run in float64 and add nothing at this scale. Tolerance for
  ``nuclear_norm``, ``sigma_max`` and ``frobenius_norm``: each gradient within 8u
  (3.1e-2), the median over all gradients within 2u (7.8e-3). Measured on the CPU
  (tiny architectures, 8 GSM8K examples of 384 tokens): worst 3.4u (Gemma 2, logit
  soft-capping), medians 0.2u–1.1u. ``effective_rank`` depends on the smallest singular
  values, which bfloat16's rounding noise dominates; it is not compared.
"""

from __future__ import annotations

import copy
import os
import statistics

import pytest
import torch

from lgkit.engine.arch import find_targets
from lgkit.engine.batch import run_batch
from lgkit.engine.reference import naive_stats_encoded
from lgkit.formats.prompts import Encoded, encode_example
from lgkit.formats.records import Example
from lgkit.models.load import load_model
from lgkit.models.shapes import build_shape

DEVICE = os.environ.get("LGKIT_TEST_DEVICE", "cuda")
ON_CUDA = DEVICE.startswith("cuda")
# first layers of the Qwen2-1.5B shape (CPU rehearsal: 1; LGKIT_GPU_TEST_LAYERS overrides)
QWEN_LAYERS = int(os.environ.get("LGKIT_GPU_TEST_LAYERS", "3" if ON_CUDA else "1"))
QWEN_MAX_LENGTH = 1024 if ON_CUDA else 96  # on CUDA one example takes q/o's direct route
# the CPU rehearsal exercises the code, not the sizes: a small vocabulary (the layers keep
# their shapes) and the naive reference on the shortest and the longest example
QWEN_VOCAB = None if ON_CUDA else 1024
NAIVE_EXAMPLES = range(8) if ON_CUDA else (0, 7)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        ON_CUDA and not torch.cuda.is_available(),
        reason="no CUDA device (LGKIT_TEST_DEVICE=cpu rehearses these tests on the CPU)",
    ),
]

TINY_ARCHS = [
    "tiny-random-llama",
    "tiny-random-llama-gqa",
    "tiny-random-qwen2",
    "tiny-random-gemma2",
]
CHECKED = ("nuclear_norm", "sigma_max", "frobenius_norm", "sigma1_ratio", "effective_rank",
           "entry_mean", "entry_max", "entry_min")  # fmt: skip
U_BF16 = 2.0**-8
BF16_CHECKED = ("nuclear_norm", "sigma_max", "frobenius_norm")


@pytest.fixture(autouse=True)
def _full_float32_matmuls():
    """Exact float32 products (no TF32), whatever the environment set."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


def eight_examples() -> list[Example]:
    """Eight examples of mixed lengths (2 to ~1,300 characters of response)."""
    step = "First take 7. Then add 8 to it: 7 + 8 = 15. Check: 15 - 8 = 7. "
    return [
        Example("What is 2+3?", "", "5"),
        Example("Is the sky green?", "", "no"),
        Example("What is 2+3? Think step by step.", "", "2 plus 3 makes 5.\nThe final answer is 5"),
        Example("Add the numbers.", "7 and 8", step * 3),
        Example("Name a prime.", "", "Seven is prime because its only divisors are 1 and 7."),
        Example("Count to five.", "", "one, two, three, four, five"),
        Example("Explain the sum slowly.", "", step * 8),
        Example("Explain it at length.", "", step * 20),
    ]


def encode_all(lm, max_length: int) -> list[Encoded]:
    encs = [encode_example(lm.tokenizer, ex, instruct=lm.instruct, max_length=max_length)
            for ex in eight_examples()]  # fmt: skip
    assert len({len(e.input_ids) for e in encs}) > 4
    return encs


def worst_relative(rows: list[dict], ref: list[dict], keys=CHECKED) -> dict[str, float]:
    """Per statistic, the largest relative difference (entries: relative to the entry range)."""
    assert [(r["layer"], r["module"]) for r in rows] == [(r["layer"], r["module"]) for r in ref]
    out = dict.fromkeys(keys, 0.0)
    for r, f in zip(rows, ref, strict=True):
        for k in keys:
            scale = (max(abs(f["entry_max"]), abs(f["entry_min"])) if k.startswith("entry")
                     else abs(f[k]))  # fmt: skip
            out[k] = max(out[k], abs(r[k] - f[k]) / max(scale, 1e-30))
    return out


def engine_rows(model, targets, encs, pad_id: int, batch_size: int) -> list[list[dict]]:
    model.requires_grad_(False)
    rows = []
    for k in range(0, len(encs), batch_size):
        rows += run_batch(model, targets, encs[k : k + batch_size], pad_id=pad_id)[0]
    return rows


def assert_exact(model, ref_model, encs, pad_id: int, checked=range(8), tol: float = 1e-4) -> None:
    """lgkit at batch 1 and 8 on ``model`` vs the naive method on ``ref_model`` (examples ``checked``)."""
    targets = find_targets(model, ("q", "k", "v", "o"))
    ref_targets = find_targets(ref_model, ("q", "k", "v", "o"))
    refs = {i: naive_stats_encoded(ref_model, encs[i], ref_targets)[0] for i in checked}
    for batch_size in (1, 8):
        got = engine_rows(model, targets, encs, pad_id, batch_size)
        for i, ref in refs.items():
            rows = got[i]
            worst = worst_relative(rows, ref)
            bad = {k: v for k, v in worst.items() if v > tol}
            assert not bad, (
                f"batch {batch_size}, example {i} ({len(encs[i].input_ids)} tokens): {bad}"
            )


def test_device_is_the_one_asked_for():
    lm = load_model("tiny-random-llama", device=DEVICE)
    assert next(lm.model.parameters()).device.type == torch.device(DEVICE).type


@pytest.mark.parametrize("name", TINY_ARCHS)
def test_float32_exact_tiny(name):
    lm = load_model(name, device=DEVICE)
    assert_exact(lm.model, lm.model, encode_all(lm, 256), lm.tokenizer.pad_token_id)


def test_float32_exact_qwen2_1p5b_first_layers():
    lm = build_shape("qwen2-1.5b", num_layers=QWEN_LAYERS, device=DEVICE, vocab_size=QWEN_VOCAB)
    ref = copy.deepcopy(lm.model).double()
    encs = encode_all(lm, QWEN_MAX_LENGTH)
    assert_exact(lm.model, ref, encs, lm.tokenizer.pad_token_id, NAIVE_EXAMPLES)


def bf16_errors(model32, encs, pad_id: int) -> dict[str, list[float]]:
    """Relative differences of the bfloat16 engine (batch 8) from the float32 one, per statistic."""
    model16 = copy.deepcopy(model32).to(torch.bfloat16)
    t32, t16 = (
        find_targets(model32, ("q", "k", "v", "o")),
        find_targets(model16, ("q", "k", "v", "o")),
    )
    rows32 = engine_rows(model32, t32, encs, pad_id, 8)
    rows16 = engine_rows(model16, t16, encs, pad_id, 8)
    errs: dict[str, list[float]] = {k: [] for k in BF16_CHECKED}
    for r16, r32 in zip(rows16, rows32, strict=True):
        for a, b in zip(r16, r32, strict=True):
            for k in BF16_CHECKED:
                errs[k].append(abs(a[k] - b[k]) / max(abs(b[k]), 1e-30))
    return errs


def assert_bf16_close(errs: dict[str, list[float]]) -> None:
    for k, e in errs.items():
        assert max(e) <= 8 * U_BF16, (k, f"worst {max(e) / U_BF16:.2f}u")
        assert statistics.median(e) <= 2 * U_BF16, (
            k,
            f"median {statistics.median(e) / U_BF16:.2f}u",
        )


@pytest.mark.parametrize("name", TINY_ARCHS)
def test_bfloat16_against_float32_tiny(name):
    lm = load_model(name, device=DEVICE)
    assert_bf16_close(bf16_errors(lm.model, encode_all(lm, 256), lm.tokenizer.pad_token_id))


def test_bfloat16_against_float32_qwen2_1p5b_first_layers():
    lm = build_shape("qwen2-1.5b", num_layers=QWEN_LAYERS, device=DEVICE, vocab_size=QWEN_VOCAB)
    errs = bf16_errors(lm.model, encode_all(lm, QWEN_MAX_LENGTH), lm.tokenizer.pad_token_id)
    assert_bf16_close(errs)


def test_bfloat16_naive_reference_runs_and_agrees():
    """The naive method on a bfloat16 model (its SVD widened to float32) agrees with lgkit."""
    lm = load_model("tiny-random-qwen2", device=DEVICE, dtype="bfloat16")
    targets = find_targets(lm.model, ("q", "k", "v", "o"))
    encs = encode_all(lm, 256)[:3]
    got = engine_rows(lm.model, targets, encs, lm.tokenizer.pad_token_id, 1)
    for rows, enc in zip(got, encs, strict=True):
        ref = naive_stats_encoded(lm.model, enc, targets)[0]
        worst = worst_relative(rows, ref, BF16_CHECKED)
        assert all(v <= 8 * U_BF16 for v in worst.values()), worst
