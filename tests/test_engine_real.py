"""Exactness on the embedded real model (SmolLM2-135M-Instruct) with released GSM8K examples."""

from __future__ import annotations

import json
import math

import pytest
from test_engine import assert_rows_match

from lgkit.engine.arch import find_targets
from lgkit.engine.batch import run_batch
from lgkit.engine.reference import naive_stats_encoded
from lgkit.formats.prompts import encode_example
from lgkit.formats.records import read_examples
from lgkit.models.load import load_model


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m-instruct")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "batch_size"),
    [
        ("with_cot", 1),
        ("with_cot", 3),
        ("no_cot", 3),
    ],  # no_cot: 2-token answers, heavy cancellation
)
def test_smollm2_gsm8k_exact(smollm2, shared_data, variant, batch_size):
    examples = read_examples(shared_data / "cot_500" / f"gsm8k_train_{variant}.json", limit=3)
    model, tok = smollm2
    assert smollm2.instruct
    targets = find_targets(model, ("q", "k", "v", "o"))
    assert len({t.layer for t in targets}) == 30
    encs = [encode_example(tok, ex, instruct=True, max_length=1024) for ex in examples]
    model.requires_grad_(False)
    rows, losses, _ = run_batch(model, targets, encs[:batch_size], pad_id=tok.pad_token_id or 0)
    for enc, r, loss in zip(encs, rows, losses, strict=False):
        ref_rows, ref_loss = naive_stats_encoded(model, enc, targets)
        assert math.isclose(loss, ref_loss, rel_tol=1e-5)
        assert_rows_match(r, ref_rows)


@pytest.mark.slow
def test_smollm2_prompt_convention(smollm2, shared_data):
    """Prompt part = chat template of [system, user] + generation prompt; response tokenised apart."""
    tok = smollm2.tokenizer
    ex = read_examples(shared_data / "cot_500" / "gsm8k_train_no_cot.json", limit=1)[0]
    enc = encode_example(tok, ex, instruct=True)
    prompt = tok.decode(enc.input_ids[: enc.n_prompt_tokens])
    assert "You are a helpful assistant." in prompt and ex.instruction in prompt
    assert prompt.rstrip().endswith("assistant")
    assert (
        enc.input_ids[enc.n_prompt_tokens :]
        == tok(ex.output, add_special_tokens=False)["input_ids"]
    )
    assert json.dumps(tok.decode(enc.input_ids[enc.n_prompt_tokens :])) == json.dumps(ex.output)
