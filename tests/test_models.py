"""Tests of lgkit.models: tiny tokenizer, tiny random models, embedded real models."""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path

import pytest
import torch

from lgkit.errors import InputError
from lgkit.models.load import (
    EMBEDDED,
    TINY,
    LoadedModel,
    is_instruct,
    load_model,
    model_cache_dir,
    tiny_tokenizer,
)

# --------------------------------------------------------------------------- tiny tokenizer


def test_tiny_tokenizer_round_trip_and_one_bos():
    tok = tiny_tokenizer()
    for text in ["hello world", "  two  spaces\nnewline\t", "héllo wörld 日本 🙂", "a<b>c", ""]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.bos_token_id not in ids
        assert tok.decode(ids) == text
        with_bos = tok(text)["input_ids"]
        assert with_bos[0] == tok.bos_token_id
        assert with_bos.count(tok.bos_token_id) == 1
        assert with_bos[1:] == ids
    assert tok.eos_token == "<eos>" and tok.pad_token == "<pad>" and tok.bos_token == "<bos>"
    assert len(tok) == 261
    # concatenating separately tokenised parts equals their text (no merges at the boundary)
    a = tok("Question: 1+1?\n", add_special_tokens=False)["input_ids"]
    b = tok("2", add_special_tokens=False)["input_ids"]
    assert tok.decode(a + b) == "Question: 1+1?\n2"


def test_tiny_tokenizer_deterministic():
    a, b = tiny_tokenizer(), tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    assert a("same text")["input_ids"] == b("same text")["input_ids"]


def test_tiny_chat_template():
    tok = tiny_tokenizer()
    assert is_instruct(tok)
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )
    no_gen = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
    assert not no_gen.endswith("assistant\n")
    full = msgs + [{"role": "assistant", "content": "A"}]
    assert "<|im_start|>assistant\nA<|im_end|>" in tok.apply_chat_template(full, tokenize=False)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
    assert tok.bos_token_id not in ids


def test_tiny_tokenizer_without_template():
    tok = tiny_tokenizer(chat_template=False)
    assert not is_instruct(tok)


# --------------------------------------------------------------------------- tiny models

_QKVO = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]
_EXPECTED_MODULES = {
    "tiny-random-llama": _QKVO,
    "tiny-random-llama-gqa": _QKVO,
    "tiny-random-qwen2": _QKVO,
    "tiny-random-gemma2": _QKVO,
    "tiny-random-gpt2": ["attn.c_attn", "attn.c_proj"],
    "tiny-random-phi3": ["self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj"],
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_model_loads_and_runs(name):
    t0 = time.perf_counter()
    lm = load_model(name, device="cpu")
    assert time.perf_counter() - t0 < 5  # < 1 s normally; generous for busy CI
    assert isinstance(lm, LoadedModel)
    model, tok = lm
    assert lm.source == "tiny" and lm.instruct is True and lm.name == name
    assert lm.dtype == "float32" and lm.device == "cpu"
    assert not model.training
    assert model.config.vocab_size == len(tok)
    names = {n for n, _ in model.named_modules()}
    for suffix in _EXPECTED_MODULES[name]:
        assert any(n.endswith(suffix) for n in names), (name, suffix)
    ids = tok("Hello there", return_tensors="pt")
    out = model(**ids, labels=ids["input_ids"])
    assert out.logits.shape == (1, ids["input_ids"].shape[1], len(tok))
    assert torch.isfinite(out.loss)
    out.loss.backward()  # gradients flow (the whole point of lgkit)


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_model_deterministic(name):
    a, _ = load_model(name, device="cpu")
    b, _ = load_model(name, device="cpu")
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    # and the global RNG is not disturbed by loading
    torch.manual_seed(7)
    x = torch.rand(3)
    torch.manual_seed(7)
    load_model(name, device="cpu")
    assert torch.equal(torch.rand(3), x)


def test_tiny_model_shapes():
    gqa, _ = load_model("tiny-random-llama-gqa", device="cpu")
    attn = gqa.model.layers[0].self_attn
    assert attn.k_proj.weight.shape[0] < attn.q_proj.weight.shape[0]
    qwen, _ = load_model("tiny-random-qwen2", device="cpu")
    attn = qwen.model.layers[0].self_attn
    assert attn.q_proj.bias is not None and attn.k_proj.bias is not None
    assert attn.o_proj.bias is None
    gemma, _ = load_model("tiny-random-gemma2", device="cpu")
    attn = gemma.model.layers[0].self_attn
    assert attn.q_proj.weight.shape == (4 * 24, 64)  # head_dim != hidden / heads
    assert gemma.config.attn_logit_softcapping and gemma.config.final_logit_softcapping


def test_tiny_model_base_and_dtype():
    lm = load_model("tiny-random-llama", device="cpu", instruct=False, dtype="bfloat16")
    assert lm.instruct is False
    assert lm.dtype == "bfloat16"
    assert next(lm.model.parameters()).dtype == torch.bfloat16


def test_instruct_without_template_raises(tmp_path):
    model, _ = load_model("tiny-random-llama", device="cpu")
    folder = tmp_path / "base-model"
    model.save_pretrained(folder)
    tiny_tokenizer(chat_template=False).save_pretrained(folder)
    lm = load_model(str(folder), device="cpu")
    assert lm.source == "local" and lm.instruct is False
    for key, value in model.state_dict().items():
        assert torch.equal(lm.model.state_dict()[key], value), key
    with pytest.raises(InputError, match="base-model"):
        load_model(str(folder), device="cpu", instruct=True)


def test_unknown_names_raise(tmp_path):
    with pytest.raises(InputError, match="smollm2-135m-instruct"):
        load_model(str(tmp_path / "does-not-exist"), device="cpu")
    with pytest.raises(InputError, match="config.json"):
        load_model(str(tmp_path), device="cpu")
    with pytest.raises(InputError):
        load_model("./nope/model.gguf", device="cpu")
    with pytest.raises(InputError, match="did you mean 'tiny-random-llama'"):
        load_model("tiny-random-lama", device="cpu")  # fails fast, no Hub lookup
    with pytest.raises(InputError, match="dtype"):
        load_model("tiny-random-llama", dtype="float8")


def test_model_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LGKIT_CACHE", str(tmp_path))
    assert model_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("LGKIT_CACHE")
    assert model_cache_dir() == Path.home() / ".cache" / "lgkit" / "models"


# --------------------------------------------------------------------------- embedded models


def _installed(package: str) -> bool:
    try:
        importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="session")
def embedded_cache(tmp_path_factory):
    """One cache folder (hence one conversion per model) for the whole test session."""
    return tmp_path_factory.mktemp("lgkit_cache")


def _convert_once(name: str, cache: Path, monkeypatch) -> tuple[LoadedModel, float]:
    monkeypatch.setenv("LGKIT_CACHE", str(cache))
    t0 = time.perf_counter()
    lm = load_model(name, device="cpu")
    return lm, time.perf_counter() - t0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_model_converts_loads_and_matches_gguf(name, embedded_cache, monkeypatch):
    spec = EMBEDDED[name]
    if not _installed(spec.package):
        pytest.skip(f"embedded model package {spec.package!r} is not installed")
    lm, _ = _convert_once(name, embedded_cache, monkeypatch)
    folder = model_cache_dir() / name
    assert (folder / "config.json").is_file() and (folder / "lgkit_embedded.json").is_file()
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]  # temp dirs cleaned

    t0 = time.perf_counter()
    lm2 = load_model(name, device="cpu")
    assert time.perf_counter() - t0 < 5, "a converted embedded model must reload in < 5 s"
    assert lm2.source == "embedded" and lm2.revision == spec.version()
    assert lm2.instruct is spec.instruct
    assert not lm2.model.training

    # conversion reloads the saved folder and checks it against transformers' own GGUF
    # loading (same token ids, same logits); its result is recorded in the marker
    info = json.loads((folder / "lgkit_embedded.json").read_text())
    assert info["package_version"] == spec.version()
    assert info["check_max_abs_logit_diff"] <= 1e-4
    ids = lm2.tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = lm2.model(**ids).logits
    assert torch.isfinite(logits).all()
    # a real pretrained model, not random weights: a plain sentence is well predicted
    text = "Paris is the capital and most populous city of France."
    ids = lm2.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        loss = lm2.model(**ids, labels=ids["input_ids"]).loss
    assert loss.exp() < 100


# --------------------------------------------------------------------------- conversion cache


@pytest.fixture
def fake_embedded(monkeypatch, tmp_path):
    """An embedded entry whose 'GGUF conversion' saves the tiny llama (fast)."""
    from lgkit.models import embedded as models

    calls = []

    def fake_convert(gguf_path, out_dir):
        calls.append(gguf_path)
        time.sleep(0.3)  # widen the race window
        if getattr(fake_convert, "fail", False):
            raise RuntimeError("interrupted")
        model, tok = load_model("tiny-random-llama", device="cpu")
        model.save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
        return {"check_max_abs_logit_diff": 0.0}

    spec = models.EmbeddedModel(
        name="fake-embedded",
        package="torch",
        instruct=True,
        hf_id="none/fake",
        gguf=lambda workdir: Path(workdir) / "fake.gguf",
    )
    monkeypatch.setitem(models.EMBEDDED, "fake-embedded", spec)
    monkeypatch.setattr(models, "_convert_gguf_to_folder", fake_convert)
    monkeypatch.setenv("LGKIT_CACHE", str(tmp_path))
    return fake_convert, calls


def test_conversion_once_under_concurrency(fake_embedded):
    import threading

    _, calls = fake_embedded
    results, errors = [], []

    def worker():
        try:
            results.append(load_model("fake-embedded", device="cpu"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(calls) == 1
    assert all(r.source == "embedded" and r.instruct for r in results)
    assert all(r.revision == importlib.metadata.version("torch") for r in results)
    cache = model_cache_dir()
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == [
        "fake-embedded"
    ]
    load_model("fake-embedded", device="cpu")  # cached: no new conversion
    assert len(calls) == 1


def test_interrupted_conversion_leaves_no_folder(fake_embedded):
    fake_convert, calls = fake_embedded
    cache = model_cache_dir()
    stale = cache / ".fake-embedded.tmp-deadbeef"
    stale.mkdir(parents=True)  # as left by a killed process
    fake_convert.fail = True
    with pytest.raises(RuntimeError, match="interrupted"):
        load_model("fake-embedded", device="cpu")
    assert not (cache / "fake-embedded").exists()
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]
    fake_convert.fail = False
    assert load_model("fake-embedded", device="cpu").source == "embedded"
    assert len(calls) == 2
