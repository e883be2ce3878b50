"""compat="layer_gradient": the authors' procedure, followed step by step, gives our numbers."""

from __future__ import annotations

import json

import pytest
import torch

from lgkit.engine.config import GradConfig
from lgkit.engine.run import compute_stats
from lgkit.formats.authors import export_layer_gradient
from lgkit.models.load import load_model

pytestmark = pytest.mark.integration


def authors_procedure(model, tokenizer, instruction, output, *, instruct, model_name, max_length):
    """A transcription of the authors' get_gradient_values.py for one example."""
    if instruct:
        if "gemma" in model_name:
            messages = [{"role": "user", "content": instruction}]
        else:
            messages = [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": instruction},
            ]
        whole_text = (
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            + output
        )
    else:
        whole_text = instruction + "\n" + output
    input_ids = tokenizer.encode(
        whole_text, return_tensors="pt", truncation=True, max_length=max_length
    )
    start_index = whole_text.rfind(output)
    start_token = len(tokenizer.encode(whole_text[:start_index]))
    for p in model.parameters():
        p.requires_grad = False
    for name, p in model.named_parameters():
        if len(p.shape) > 1 and (p.shape[0] == p.shape[1] or "self_attn" in name):
            p.requires_grad = True
    labels = input_ids.clone()
    labels[0, :start_token] = -100
    out = model(input_ids, labels=labels)
    rec = {"loss": out.loss.item()}
    out.loss.backward()
    for name, p in model.named_parameters():
        if p.grad is not None and "self_attn" in name:
            S = torch.linalg.svd(p.grad)[1]
            rec[name] = {"M_mean": p.grad.mean().item(), "M_max": p.grad.max().item(), "M_min": p.grad.min().item(),
                         "frobenius_norm": torch.linalg.norm(p.grad).item(), "S_sum": S.sum().item(),
                         "S_max": S.max().item(), "S_min": S.min().item()}  # fmt: skip
    model.zero_grad()
    return rec


@pytest.mark.parametrize(
    ("name", "instruct"),
    [
        ("tiny-random-llama", True),
        ("tiny-random-llama", False),
        ("tiny-random-gemma2", True),
        ("tiny-random-qwen2", True),
    ],
)
def test_layer_gradient_compat_matches_authors(tmp_path, shared_data, name, instruct):
    raw = json.loads((shared_data / "cot_500" / "strategyqa_train_with_cot.json").read_text())[:3]
    data = tmp_path / "d.json"
    data.write_text(json.dumps(raw))
    max_length = 300
    lm = load_model(name, instruct=instruct)
    res = compute_stats(
        lm,
        data,
        tmp_path / "run",
        GradConfig(compat="layer_gradient", max_length=max_length),
        progress=False,
    )
    assert res.n_done == 3
    ours = [
        json.loads(line)
        for line in export_layer_gradient(tmp_path / "run", tmp_path / "o.jsonl")
        .read_text()
        .splitlines()
    ]
    for rec, mine in zip(raw, ours, strict=True):
        model = load_model(name, instruct=instruct).model  # fresh flags, as the authors' script
        ref = authors_procedure(
            model,
            lm.tokenizer,
            rec["instruction"],
            rec["output"],
            instruct=instruct,
            model_name=name,
            max_length=max_length,
        )
        assert mine["loss"] == pytest.approx(ref["loss"], rel=1e-5)
        keys = [k for k in ref if k != "loss"]
        assert keys and set(keys) == {k for k in mine if k.endswith(".weight")}
        for k in keys:
            for stat in ("S_sum", "S_max", "frobenius_norm"):
                assert mine[k][stat] == pytest.approx(ref[k][stat], rel=1e-4), (k, stat)
            scale = max(abs(ref[k]["M_max"]), abs(ref[k]["M_min"]))
            for stat in ("M_mean", "M_max", "M_min"):
                assert abs(mine[k][stat] - ref[k][stat]) <= 1e-4 * scale, (k, stat)
