"""The engine against the naive method: every example, layer and module, several architectures."""

from __future__ import annotations

import json
import math

import pytest
import torch

import lgkit
from lgkit.engine.arch import find_targets
from lgkit.engine.batch import per_example_losses, run_batch
from lgkit.engine.capture import GradientCapture, has_hooks
from lgkit.engine.config import GradConfig
from lgkit.engine.reference import naive_stats_encoded
from lgkit.engine.run import compute_stats
from lgkit.formats.prompts import encode_example
from lgkit.formats.records import Example, write_examples
from lgkit.models.load import load_model

ARCHS = {
    "tiny-random-llama": ("q", "k", "v", "o"),
    "tiny-random-llama-gqa": ("q", "k", "v", "o"),
    "tiny-random-qwen2": ("q", "k", "v", "o"),  # q/k/v biases
    "tiny-random-gemma2": ("q", "k", "v", "o"),
    "tiny-random-gpt2": ("q", "k", "v", "o", "up", "down"),  # fused c_attn (Conv1D)
    "tiny-random-phi3": ("q", "k", "v", "o", "gate", "up", "down"),  # fused qkv_proj, gate_up_proj
}
CHECKED = (
    "nuclear_norm",
    "sigma_max",
    "frobenius_norm",
    "sigma1_ratio",
    "effective_rank",
    "entry_mean",
    "entry_max",
    "entry_min",
)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def assert_rows_match(rows, ref_rows, tol=1e-4, entry_tol=1e-4):
    assert [(r["layer"], r["module"]) for r in rows] == [
        (r["layer"], r["module"]) for r in ref_rows
    ]
    for r, f in zip(rows, ref_rows, strict=True):
        for k in CHECKED:
            t = entry_tol if k.startswith("entry") else tol
            scale = (
                abs(f[k])
                if not k.startswith("entry")
                else max(abs(f["entry_max"]), abs(f["entry_min"]))
            )
            assert abs(r[k] - f[k]) <= t * max(scale, 1e-12), (r["param"], k, r[k], f[k])


@pytest.mark.parametrize("name", list(ARCHS))
@pytest.mark.parametrize(
    ("batch_size", "threads"),
    [
        (1, 1),
        (4, 1),
        # thread variants: the same arithmetic on more BLAS threads (slow suite)
        pytest.param(4, 2, marks=pytest.mark.slow),
        pytest.param(2, None, marks=pytest.mark.slow),
    ],
)
def test_exact_against_naive(name, batch_size, threads, mixed_examples):
    lm = load_model(name)
    targets = find_targets(lm.model, ARCHS[name])
    encs = [
        encode_example(lm.tokenizer, ex, instruct=lm.instruct, max_length=96)
        for ex in mixed_examples
    ]
    assert len({len(e.input_ids) for e in encs}) > 1  # mixed lengths
    lm.model.requires_grad_(False)
    got_rows, got_losses = [], []
    for k in range(0, len(encs), batch_size):
        rows, losses, _ = run_batch(
            lm.model,
            targets,
            encs[k : k + batch_size],
            pad_id=lm.tokenizer.pad_token_id,
            stats_threads=threads,
        )
        got_rows += rows
        got_losses += losses
    for enc, rows, loss in zip(encs, got_rows, got_losses, strict=True):
        ref_rows, ref_loss = naive_stats_encoded(lm.model, enc, targets)
        assert math.isclose(loss, ref_loss, rel_tol=1e-5), (loss, ref_loss)
        assert_rows_match(rows, ref_rows)
    assert not has_hooks(lm.model)


def test_sigma_min_exact_zero_when_rank_deficient():
    lm = load_model("tiny-random-llama")
    targets = find_targets(lm.model, ("q",))
    enc = encode_example(lm.tokenizer, Example("Hi", "", "ok"), instruct=False, max_length=64)
    assert len(enc.input_ids) < 64  # fewer tokens than hidden size
    rows, _, _ = run_batch(lm.model, targets, [enc], pad_id=0)
    assert all(r["sigma_min"] == 0.0 for r in rows[0])


def test_per_example_loss_equals_model_loss(mixed_examples):
    lm = load_model("tiny-random-qwen2")
    for ex in mixed_examples:
        enc = encode_example(lm.tokenizer, ex, instruct=True, max_length=128)
        ids = torch.tensor([enc.input_ids])
        labels = ids.clone()
        labels[0, : enc.n_prompt_tokens] = -100
        with torch.no_grad():
            out = lm.model(ids, labels=labels)
        mine = per_example_losses(out.logits, ids, [enc])[0]
        assert math.isclose(float(mine), float(out.loss), rel_tol=1e-6)


def test_compute_stats_table_and_dataset(tmp_path, mixed_examples):
    data = write_examples(tmp_path / "ex.jsonl", mixed_examples)
    res = compute_stats(
        "tiny-random-llama",
        data,
        tmp_path / "run",
        GradConfig(batch_size=2, spectrum=True),
        progress=False,
    )
    assert res.n_done == len(mixed_examples) and res.n_failed == 0
    df = lgkit.load_stats(tmp_path / "run")
    cols = ["sample_id", "dataset", "cot", "correct", "layer", "module", "shape", "loss", "n_prompt_tokens",
            "n_response_tokens", "truncated", "nuclear_norm", "sigma_max", "sigma_min", "sigma1_ratio",
            "frobenius_norm", "effective_rank", "entry_mean", "entry_max", "entry_min"]  # fmt: skip
    assert list(df.columns[: len(cols)]) == cols
    n_layers = lgkit.load_manifest(tmp_path / "run")["n_layers"]
    assert len(df) == len(mixed_examples) * n_layers * 4
    assert set(df["module"]) == {"q", "k", "v", "o"}
    assert not df.duplicated(["sample_id", "layer", "module"]).any()
    assert df["sample_id"].unique().tolist() == [e.sample_id for e in mixed_examples]
    spec = df["spectrum"].iloc[0]
    assert math.isclose(sum(spec), df["nuclear_norm"].iloc[0], rel_tol=1e-9)
    man = lgkit.load_manifest(tmp_path / "run")
    for key in (
        "model",
        "revision",
        "dtype",
        "instruct",
        "convention",
        "max_length",
        "modules",
        "lgkit_version",
        "git_hash",
        "start_time",
        "end_time",
    ):
        assert key in man
    assert man["status"] == "complete"
    ds = lgkit.stats_dataset(tmp_path / "run")
    assert ds.num_rows == len(df) and "nuclear_norm" in ds.column_names


def test_similarities_match_materialised(mixed_examples):
    lm = load_model("tiny-random-llama")
    targets = find_targets(lm.model, ("q", "k", "v", "o"))
    enc = encode_example(lm.tokenizer, mixed_examples[2], instruct=True, max_length=128)
    rows, _, _ = run_batch(lm.model, targets, [enc], similarities=True)
    from lgkit.engine.reference import target_gradient

    lm.model.requires_grad_(False)
    for t in targets:
        lm.model.get_submodule(t.module_name).weight.requires_grad_(True)
    ids = torch.tensor([enc.input_ids])
    labels = ids.clone()
    labels[0, : enc.n_prompt_tokens] = -100
    lm.model(ids, labels=labels).loss.backward()
    G = {(t.layer, t.module): target_gradient(lm.model, t).double() for t in targets}
    cos = lambda a, b: float((a * b).sum() / (a.norm() * b.norm()))  # noqa: E731
    pair = {"q": "o", "o": "q", "k": "v", "v": "k"}
    for r in rows[0]:
        nxt = G.get((r["layer"] + 1, r["module"]))
        if nxt is None:
            assert math.isnan(r["cos_next_layer"])
        else:
            assert math.isclose(
                r["cos_next_layer"],
                cos(G[(r["layer"], r["module"])], nxt),
                rel_tol=1e-4,
                abs_tol=1e-6,
            )
        a, b = G[(r["layer"], r["module"])], G[(r["layer"], pair[r["module"]])]
        assert math.isclose(r["cos_pair"], cos(a, b), rel_tol=1e-4, abs_tol=1e-6)


def test_failure_recorded_not_dropped(tmp_path):
    exs = [
        Example("short", "", "fine answer"),
        Example("x" * 300, "", "cut away"),
        Example("ok?", "", "yes"),
    ]
    data = write_examples(tmp_path / "ex.jsonl", exs)
    res = compute_stats(
        "tiny-random-llama", data, tmp_path / "run", GradConfig(max_length=64), progress=False
    )
    assert res.n_done == 2 and res.n_failed == 1
    fails = lgkit.load_failures(tmp_path / "run")
    assert fails["sample_id"].tolist() == [exs[1].sample_id]
    assert "max_length" in fails["reason"].iloc[0]
    df = lgkit.load_stats(tmp_path / "run")
    assert exs[1].sample_id not in set(df["sample_id"]) and not df["nuclear_norm"].isna().any()


def test_no_hook_left_after_exception(mixed_examples):
    lm = load_model("tiny-random-llama")
    targets = find_targets(lm.model, ("q", "k", "v", "o"))

    def boom(group, X, D):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        with GradientCapture(lm.model, targets, boom):
            lm.model(torch.tensor([[1, 2, 3]])).logits.sum().backward()
    assert not has_hooks(lm.model)
    # an exception inside the engine's batch (a layer raising mid-forward)
    layer = lm.model.model.layers[1]
    orig = layer.forward
    layer.forward = lambda *a, **k: (_ for _ in ()).throw(ValueError("layer broke"))
    try:
        enc = encode_example(lm.tokenizer, mixed_examples[0], instruct=True)
        with pytest.raises(ValueError, match="layer broke"):
            run_batch(lm.model, targets, [enc])
    finally:
        layer.forward = orig
    assert not has_hooks(lm.model)


def test_requires_grad_flags_restored(tmp_path, mixed_examples):
    lm = load_model("tiny-random-llama")
    before = {n: p.requires_grad for n, p in lm.model.named_parameters()}
    compute_stats(lm, mixed_examples[:2], tmp_path / "run", progress=False)
    assert {n: p.requires_grad for n, p in lm.model.named_parameters()} == before
    assert not has_hooks(lm.model)


def test_resume_with_other_settings_refused(tmp_path, mixed_examples):
    compute_stats("tiny-random-llama", mixed_examples[:2], tmp_path / "run", progress=False)
    with pytest.raises(lgkit.InputError, match="max_length"):
        compute_stats(
            "tiny-random-llama",
            mixed_examples[:2],
            tmp_path / "run",
            GradConfig(max_length=50),
            progress=False,
        )
    assert len(lgkit.load_stats(tmp_path / "run")) > 0


def test_duplicate_records_kept_apart(tmp_path):
    exs = [Example("q", "", "a"), Example("q", "", "a")]
    compute_stats("tiny-random-llama", exs, tmp_path / "run", progress=False)
    df = lgkit.load_stats(tmp_path / "run")
    assert df["sample_id"].nunique() == 2
    with pytest.raises(lgkit.InputError, match="duplicate id"):
        compute_stats(
            "tiny-random-llama",
            [Example("q", "", "a", id="x"), Example("r", "", "b", id="x")],
            tmp_path / "r2",
            progress=False,
        )


def test_authors_format_round_trip(tmp_path, mixed_examples):
    from lgkit.formats.authors import export_layer_gradient, import_layer_gradient

    compute_stats("tiny-random-qwen2", mixed_examples, tmp_path / "run", progress=False)
    path = export_layer_gradient(tmp_path / "run", tmp_path / "authors.jsonl", mixed_examples)
    first = json.loads(path.read_text().splitlines()[0])
    assert first["instruction"] == mixed_examples[0].prompt
    assert set(first["model.layers.0.self_attn.q_proj.weight"]) == {
        "S_sum",
        "S_max",
        "S_min",
        "frobenius_norm",
        "M_mean",
        "M_max",
        "M_min",
    }
    back = import_layer_gradient(path, dataset="toy")
    df = lgkit.load_stats(tmp_path / "run")
    assert len(back) == len(df)
    for col in (
        "nuclear_norm",
        "sigma_max",
        "sigma_min",
        "frobenius_norm",
        "entry_mean",
        "loss",
        "sigma1_ratio",
    ):
        assert back[col].to_numpy() == pytest.approx(df[col].to_numpy(), rel=1e-12)


@pytest.mark.parametrize("name", ["tiny-random-llama", "tiny-random-gemma2", "tiny-random-gpt2"])
def test_chunked_lm_head_loss_exact(name, mixed_examples):
    """Long inputs: the LM head applied in checkpointed chunks gives the same numbers."""
    lm = load_model(name)
    targets = find_targets(lm.model, ("q", "k", "v", "o"))
    encs = [
        encode_example(lm.tokenizer, ex, instruct=lm.instruct, max_length=128)
        for ex in mixed_examples
    ]
    lm.model.requires_grad_(False)
    rows, losses, _ = run_batch(
        lm.model, targets, encs, pad_id=lm.tokenizer.pad_token_id, loss_chunk=7
    )
    for enc, r, loss in zip(encs, rows, losses, strict=True):
        ref_rows, ref_loss = naive_stats_encoded(lm.model, enc, targets)
        assert math.isclose(loss, ref_loss, rel_tol=1e-5), (loss, ref_loss)
        assert_rows_match(r, ref_rows)
