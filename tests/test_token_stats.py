"""Per-token quantities, the answer-only loss and the per-token table against naive references."""

from __future__ import annotations

import pytest
import torch

import lgkit
from lgkit.cli import main
from lgkit.engine.arch import find_targets
from lgkit.engine.batch import forward_backward
from lgkit.engine.config import NUMERIC_SETTINGS, GradConfig, cli_options, numeric_settings
from lgkit.engine.plan import run_fingerprint
from lgkit.engine.reference import masked_labels, naive_stats_encoded, naive_token_stats
from lgkit.engine.run import compute_stats
from lgkit.engine.spans import answer_token_span
from lgkit.errors import InputError
from lgkit.formats.parts import PARTS
from lgkit.formats.prompts import encode_example
from lgkit.formats.records import Example, write_examples
from lgkit.models.load import load_model

ARCHS = ["tiny-random-llama", "tiny-random-qwen2", "tiny-random-gemma2", "tiny-random-llama-gqa"]
CHECKED = ("nuclear_norm", "sigma_max", "frobenius_norm", "sigma1_ratio", "effective_rank")


def answer_examples() -> list[Example]:
    """Records whose final answer is findable by each convention (and one by its answer field)."""
    return [
        Example("What is 2+3? Think.", "", "2 plus 3 makes 5.\nThe final answer is 5", dataset="t"),
        Example("Add 7 and 8.", "", "First 7, then 8 more: 7 + 8 = 15.\nSo the answer is 15.", dataset="t"),
        Example("Clips?", "", "Natalia sold 48/2 = 24 clips in May.\n#### 72", dataset="gsm8k"),
        Example("Sky colour?", "", "On a clear day the sky looks blue to us.", meta={"answer": "blue"}),
        Example("Is 4 even?", "", "yes", dataset="t"),
    ]  # fmt: skip


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def _encode(lm, examples, instruct=False):
    return [encode_example(lm.tokenizer, ex, instruct=instruct) for ex in examples]


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("batch_size", [1, 4])
def test_token_norm_sum_and_coherence_exact(name, batch_size, mixed_examples):
    lm = load_model(name)
    targets = find_targets(lm.model)
    encs = _encode(lm, mixed_examples[:4])
    for k in range(0, len(encs), batch_size):
        chunk = encs[k : k + batch_size]
        r = forward_backward(lm.model, targets, chunk, token_stats=True)
        for b, enc in enumerate(chunk):
            ref, _ = naive_token_stats(lm.model, enc, targets)
            for row, f in zip(r.rows[b], ref, strict=True):
                assert (row["layer"], row["module"]) == (f["layer"], f["module"])
                assert _rel(row["token_norm_sum"], f["token_norm_sum"]) <= 1e-4
                assert _rel(row["coherence"], f["coherence"]) <= 1e-4
                assert 0 < row["coherence"] <= 1 + 1e-6
                terms = r.token_terms[b][(row["layer"], row["module"])]
                assert len(terms) == len(enc.input_ids)
                err = (terms - torch.tensor(f["token_norms"], dtype=terms.dtype)).abs().max()
                assert float(err) <= 1e-4 * f["token_norm_sum"]


def _hand_loss(model, enc, span) -> float:
    """Mean cross-entropy over the span, by hand from the logits (labels masked elsewhere)."""
    labels = masked_labels(enc, span)[0]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([enc.input_ids])).logits[0].double(), -1)
    terms = [-logp[t - 1, labels[t]] for t in range(1, len(labels)) if labels[t] != -100]
    return float(sum(terms) / len(terms))


@pytest.mark.parametrize("name", ARCHS[:3])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_answer_only_loss_and_statistics_exact(name, batch_size):
    lm = load_model(name)
    targets = find_targets(lm.model)
    exs = answer_examples()
    encs = _encode(lm, exs)
    spans = [answer_token_span(lm.tokenizer, ex, enc) for ex, enc in zip(exs, encs, strict=True)]
    for (s0, s1), ex, enc in zip(spans, exs, encs, strict=True):
        assert enc.n_prompt_tokens <= s0 < s1 <= len(enc.input_ids)
        want = ex.meta.get("answer") or lgkit.data.answers.final_answer(ex.output)
        assert want.strip(".") in lm.tokenizer.decode(enc.input_ids[s0:s1])
    assert spans[-1] == (encs[-1].n_prompt_tokens, len(encs[-1].input_ids))  # bare answer
    for k in range(0, len(encs), batch_size):
        sl = slice(k, k + batch_size)
        r = forward_backward(lm.model, targets, encs[sl], spans=spans[sl])
        for b, (enc, span) in enumerate(zip(encs[sl], spans[sl], strict=True)):
            assert _rel(r.losses[b], _hand_loss(lm.model, enc, span)) <= 1e-5
            ref, ref_loss = naive_stats_encoded(lm.model, enc, targets, span=span)
            tok_ref, _ = naive_token_stats(lm.model, enc, targets, span)
            assert _rel(r.losses[b], ref_loss) <= 1e-5
            for row, f, g in zip(r.rows[b], ref, tok_ref, strict=True):
                for key in CHECKED:
                    assert _rel(row[key], f[key]) <= 1e-4, (row["param"], key)
                assert _rel(row["coherence"], g["coherence"]) <= 1e-4
    # the answer-only loss is not the response loss (the first response is longer)
    full = forward_backward(lm.model, targets, encs[:1])
    resp = (encs[0].n_prompt_tokens, len(encs[0].input_ids))
    assert spans[0][1] - spans[0][0] < resp[1] - resp[0]
    assert _rel(full.losses[0], _hand_loss(lm.model, encs[0], resp)) <= 1e-5
    assert _rel(full.losses[0], _hand_loss(lm.model, encs[0], spans[0])) > 1e-3


def test_answer_span_failures_and_no_answer_exit(tmp_path, capsys):
    exs = [*answer_examples()[:2],
           Example("Tell me a story.", "", "Once upon a time a fox met a crow near the old river bank.")]  # fmt: skip
    data = write_examples(tmp_path / "ex.jsonl", exs)
    cfg = GradConfig(loss_on="answer")
    res = compute_stats("tiny-random-llama", data, tmp_path / "run", cfg, progress=False)
    assert res.n_done == 2 and res.n_failed == 1
    fail = lgkit.load_failures(tmp_path / "run")
    assert fail["sample_id"].tolist() == [exs[2].sample_id]
    assert fail["reason"].iloc[0].startswith("answer span not found")
    df = lgkit.load_stats(tmp_path / "run")
    assert (df["n_loss_tokens"] < df["n_response_tokens"]).all()
    bad = write_examples(tmp_path / "bad.jsonl", exs[2:])
    with pytest.raises(InputError, match="no record has a findable final answer"):
        compute_stats("tiny-random-llama", bad, tmp_path / "run2", cfg, progress=False)
    assert not (tmp_path / "run2").exists()
    code = main(["grads", "--model", "tiny-random-llama", "--data", str(bad),
                 "--out", str(tmp_path / "run3"), "--loss-on", "answer", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no record has a findable final answer" in err[0]


def test_loss_on_changes_fingerprint_and_cache_key(tmp_path, mixed_examples):
    assert "loss_on" in NUMERIC_SETTINGS and "token_stats" in NUMERIC_SETTINGS
    a, b = GradConfig(), GradConfig(loss_on="answer")
    assert numeric_settings(a) != numeric_settings(b)
    lm = load_model("tiny-random-llama")
    assert run_fingerprint(lm, a, "x") != run_fingerprint(lm, b, "x")
    data = write_examples(tmp_path / "ex.jsonl", answer_examples()[:2])
    compute_stats(lm, data, tmp_path / "run", GradConfig(limit=1), progress=False)
    with pytest.raises(InputError, match="loss_on"):
        compute_stats(
            lm, data, tmp_path / "run", GradConfig(limit=1, loss_on="answer"), progress=False
        )
    with pytest.raises(InputError, match="loss_on"):
        GradConfig(loss_on="tokens")


def test_cli_defaults_are_gradconfig_defaults():
    from lgkit.cli import build_parser

    a = build_parser().parse_args(["grads", "--model", "m", "--data", "d", "--out", "o"])
    for name, default, _ in cli_options():
        got = getattr(a, name)
        assert GradConfig(**{name: got}).__dict__[name] == GradConfig().__dict__[name], name
        assert got == (",".join(default) if isinstance(default, tuple) else default)


def test_token_stats_table_equals_terms_and_resume_keeps_one_copy(tmp_path, mixed_examples):
    data = write_examples(tmp_path / "ex.jsonl", mixed_examples[:4])
    out = tmp_path / "run"
    cfg = GradConfig(token_stats=True, flush_every=1, batch_size=2)
    compute_stats("tiny-random-qwen2", data, out, cfg, progress=False)
    stats, toks = lgkit.load_stats(out), lgkit.load_token_stats(out)
    assert {"position", "token", "in_loss", "token_norm"} <= set(toks.columns)
    sums = toks.groupby(["sample_id", "layer", "module"])["token_norm"].sum()
    for _, row in stats.iterrows():
        got = sums[(row["sample_id"], row["layer"], row["module"])]
        assert _rel(got, row["token_norm_sum"]) <= 1e-9
    n_loss = toks.groupby(["sample_id", "layer", "module"])["in_loss"].sum()
    assert (
        n_loss.values
        == stats.set_index(["sample_id", "layer", "module"])
        .loc[n_loss.index, "n_loss_tokens"]
        .values
    ).all()
    lm = load_model("tiny-random-qwen2")
    enc = encode_example(lm.tokenizer, mixed_examples[1], instruct=lm.instruct)
    ref, _ = naive_token_stats(lm.model, enc, find_targets(lm.model))
    mine = toks[toks["sample_id"] == mixed_examples[1].sample_id]
    for f in ref:
        v = mine[(mine["layer"] == f["layer"]) & (mine["module"] == f["module"])]["token_norm"]
        assert (v.to_numpy() - f["token_norms"]).__abs__().max() <= 1e-4 * f["token_norm_sum"]
    # a kill after the per-token part, before the statistics part: the rerun redoes the example
    last = sorted((out / PARTS).glob("*.parquet"))[-1]
    last.unlink()
    res = compute_stats("tiny-random-qwen2", data, out, cfg, progress=False)
    assert res.n_done >= 1
    again = lgkit.load_token_stats(out)
    assert len(again) == len(toks)
    assert not again.duplicated(["sample_id", "layer", "module", "position"]).any()


def test_answer_text_span_whole_words_and_attached_answers():
    from lgkit.data.answers import attach_answers
    from lgkit.engine.spans import answer_text_span

    out = "It cannot be known for sure, so no."
    assert out[slice(*answer_text_span(out, "No"))] == "no"
    assert answer_text_span("The total is 200 cents.", "20") is None
    cot = [Example("Q1?", "", "Thus Thomas pays \\( \\boxed{102.00} \\)."), Example("Q2?", "", "x")]
    assert attach_answers(cot, [Example("Q1?", "", "102\n"), Example("Q3?", "", "1")]) == 1
    assert cot[0].meta["answer"] == "102" and "answer" not in cot[1].meta
    lm = load_model("tiny-random-llama")
    enc = encode_example(lm.tokenizer, cot[0], instruct=False)
    s0, s1 = answer_token_span(lm.tokenizer, cot[0], enc)
    assert "102" in lm.tokenizer.decode(enc.input_ids[s0:s1])
    miss = Example("Q?", "", "It is seven.", meta={"answer": "8"})
    reason = answer_token_span(
        lm.tokenizer, miss, encode_example(lm.tokenizer, miss, instruct=False)
    )
    assert reason == "answer span not found: the response does not contain the record's answer"
