"""The authors' released example files: loading by name, resolution order, metadata, collisions.

The files are read from ``<repo>/../shared/data/layer_gradient`` through ``LGKIT_DATA_DIR``
(never committed); tests that need them are skipped when that folder is absent.
"""

from __future__ import annotations

import io
import json
import urllib.error
from pathlib import Path

import pytest

import lgkit.data.release as rel
from lgkit.data import (
    ReleaseUnavailableError,
    build_profile,
    check_irrelevant,
    load_release,
    make_variants,
    release_available,
    release_catalog,
    release_items,
)
from lgkit.errors import InputError

RELEASE_DIR = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "layer_gradient"
).resolve()
needs_release = pytest.mark.skipif(
    not RELEASE_DIR.is_dir(), reason=f"released files not found at {RELEASE_DIR}"
)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No LGKIT_DATA_DIR, an empty cache, no real network."""
    monkeypatch.delenv("LGKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("LGKIT_CACHE", str(tmp_path / "cache"))
    for var in ("LGKIT_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)

    def no_network(*a, **k):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(rel.urllib.request, "urlopen", no_network)
    return tmp_path


@pytest.fixture
def release_env(monkeypatch):
    monkeypatch.setenv("LGKIT_DATA_DIR", str(RELEASE_DIR))
    return RELEASE_DIR


def test_catalog_maps_file_names_to_vocabulary():
    cat = release_catalog()
    assert len(cat) == 56  # 18 + 6 + 4 files, correct and irrelevant
    by = {f.relpath: f for f in cat}
    f = by["cot_500/gsm8k_train_no_cot.json"]
    assert (f.dataset, f.cot, f.correct, f.family) == ("gsm8k", "none", True, "math")
    f = by["cot_500_wrong_answer_shuffle/creak_train_with_cot_gpt4o.json"]
    assert (f.dataset, f.cot, f.correct, f.family) == ("creak", "detailed", False, "commonsense")
    f = by["lighteval_math/counting_probability_with_cot.json"]
    assert (f.dataset, f.cot, f.meta["subject"]) == (
        "math_counting_probability",
        "simplified",
        "counting_probability",
    )
    f = by["wiki_popularity_wrong_answer_shuffle/long_tail_wikipedia.json"]
    assert (f.dataset, f.cot, f.correct, f.n_expected, f.meta["popularity"]) == (
        "wiki_long_tail",
        "none",
        False,
        454,
        "long_tail",
    )
    assert by["wiki_popularity/popular_wikipedia_500.json"].meta["length"] == 500
    assert {f.dataset for f in release_catalog(family="commonsense")} == {
        "strategyqa",
        "ecqa",
        "creak",
        "sensemaking",
    }
    assert len(release_catalog(dataset="popular_wikipedia_100")) == 2  # the authors' names work too
    assert release_catalog(dataset="gsm8k", cot="with_cot_gpt4o", correct=True)[0].cot == "detailed"


@needs_release
def test_every_released_file_loads_with_counts_and_metadata(release_env):
    assert release_available()
    for f in release_catalog():
        exs = load_release(f.dataset, f.cot, f.correct)
        assert len(exs) == (454 if f.dataset == "wiki_long_tail" else 500), f.relpath
        ids = [e.id for e in exs]
        assert len(set(ids)) == len(ids)
        tag = "correct" if f.correct else "irrelevant"
        for k, e in enumerate(exs):
            assert e.id == f"{f.dataset}-{k:04d}-{f.cot}-{tag}"
            assert (e.dataset, e.cot, e.correct) == (f.dataset, f.cot, f.correct)
            assert e.meta["qid"] == f"{f.dataset}-{k:04d}" and e.meta["index"] == k
            assert e.meta["family"] == f.family and e.meta["file"] == f.relpath
            assert e.meta["synthetic"] is False and e.meta["source"] == "layer_gradient"
            assert e.instruction and e.output.strip()
        if f.family == "wiki":
            assert all(e.meta["popularity"] in ("popular", "long_tail") for e in exs)
            assert "answer" not in exs[0].meta
        else:
            answered = sum(e.meta.get("answer") is not None for e in exs)
            assert answered >= 0.95 * len(exs), f.relpath
        if f.dataset.startswith("math_"):
            assert exs[0].meta["subject"] == f.dataset[len("math_") :]


@needs_release
def test_released_texts_kept_as_is(release_env):
    raw = json.loads((RELEASE_DIR / "cot_500/aqua_train_no_cot.json").read_text())
    exs = load_release("aqua", "none", limit=3)
    assert [e.instruction for e in exs] == [r["instruction"] for r in raw[:3]]
    assert "\\n" in exs[0].instruction  # the literal escape of the release stays
    assert (
        load_release("gsm8k", "simplified", limit=1)[0].meta["answer"] == "20"
    )  # from the no-CoT file
    assert (
        load_release("math_algebra", "detailed", limit=1)[0].meta["answer"] == "0"
    )  # \boxed{} of the solution


@needs_release
def test_released_no_cot_collisions_of_yes_no_datasets(release_env):
    rates = {}
    for ds in ("strategyqa", "creak", "sensemaking", "ecqa", "gsm8k", "aqua"):
        r = check_irrelevant(load_release(ds, "none"), load_release(ds, "none", correct=False))
        assert r.n == r.answered == 500
        rates[ds] = (r.same_final_answer, r.same_response)
    assert rates["strategyqa"] == (250, 250)
    assert rates["creak"] == (249, 249)
    assert rates["sensemaking"] == (241, 241)
    assert rates["ecqa"] == (0, 0)
    assert rates["gsm8k"] == (4, 4) and rates["aqua"] == (64, 64)


@needs_release
def test_rebuilt_irrelevant_of_released_data_has_zero_collisions(release_env):
    items = release_items("strategyqa")
    assert len(items) == 500 and sorted(items[0].responses) == ["detailed", "none", "simplified"]
    groups = make_variants(items, "strategyqa", seed=0, source="layer_gradient")
    for cot in ("none", "simplified", "detailed"):
        r = check_irrelevant(groups[("strategyqa", cot, True)], groups[("strategyqa", cot, False)])
        assert (r.same_response, r.same_final_answer, r.own_sentence) == (0, 0, 0), cot
        # independent of the recorded metadata: the texts' own final answers differ too
        for c, i in zip(
            groups[("strategyqa", cot, True)], groups[("strategyqa", cot, False)], strict=True
        ):
            if cot != "detailed":
                assert c.output.rsplit(" ", 1)[-1] != i.output.rsplit(" ", 1)[-1]


@needs_release
def test_full_profile_small(release_env, tmp_path):
    spec = {"name": "full", "families": ["commonsense"], "datasets": ["creak", "ecqa"]}
    files = build_profile(spec, tmp_path, n_per_variant=6, seed=0)
    assert len(files) == 12 and {f.n for f in files} == {6} and not any(f.synthetic for f in files)
    rebuilt = build_profile(spec, tmp_path / "r", n_per_variant=6, seed=0, irrelevant="rebuilt")
    assert len(rebuilt) == 12
    from lgkit.data import check_data_files

    assert all(r.same_final_answer == 0 for r in check_data_files(rebuilt).values())


def test_aliases_and_bad_names(isolated):
    with pytest.raises(InputError, match="unknown released dataset"):
        load_release("nope", "none")
    with pytest.raises(InputError, match="no released 'none'"):
        load_release("math_algebra", "none")
    with pytest.raises(InputError, match="give cot"):
        load_release("gsm8k")


def _fake_file(root: Path, relpath: str, n: int = 2, bad_at: int | None = None) -> Path:
    recs = [{"instruction": f"Q{i}?", "input": "", "output": str(i)} for i in range(n)]
    if bad_at is not None:
        recs[bad_at]["output"] = 5
    p = root / relpath
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(recs))
    return p


def test_resolution_order_explicit_then_env_then_cache(isolated, monkeypatch, tmp_path):
    rp = "cot_500/gsm8k_train_no_cot.json"
    explicit, env, cache = (
        tmp_path / "explicit",
        tmp_path / "env",
        tmp_path / "cache" / "data" / "layer_gradient",
    )
    _fake_file(explicit, rp, n=1)
    _fake_file(env / "data", rp, n=2)  # a clone of the repository: <root>/data/...
    _fake_file(cache, rp, n=3)
    monkeypatch.setenv("LGKIT_DATA_DIR", str(env))
    kw = {"check_count": False}
    assert len(load_release("gsm8k", "none", data_dir=explicit, **kw)) == 1
    assert len(load_release("gsm8k", "none", **kw)) == 2
    monkeypatch.delenv("LGKIT_DATA_DIR")
    assert len(load_release("gsm8k", "none", **kw)) == 3
    with pytest.raises(InputError, match="expected 500 records"):
        load_release("gsm8k", "none")


def test_download_into_cache_then_reuse(isolated, monkeypatch):
    calls = []
    payload = json.dumps([{"instruction": "q", "input": "", "output": "yes"}] * 2).encode()

    class Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return Resp(payload)

    monkeypatch.setattr(rel.urllib.request, "urlopen", fake_urlopen)
    exs = load_release("creak", "none", correct=False, check_count=False)
    assert len(exs) == 2
    assert calls[0].startswith("https://raw.githubusercontent.com/MingLiiii/Layer_Gradient/")
    assert calls[0].endswith("/data/cot_500_wrong_answer_shuffle/creak_train_no_cot.json")
    assert (
        rel.release_cache_dir() / "cot_500_wrong_answer_shuffle/creak_train_no_cot.json"
    ).is_file()
    n = len(calls)
    load_release("creak", "none", correct=False, check_count=False)
    assert len(calls) == n  # served from the cache


def test_offline_error_is_clear(isolated, monkeypatch):
    with pytest.raises(ReleaseUnavailableError, match="LGKIT_DATA_DIR") as e:
        load_release("gsm8k", "none")
    assert "download" in str(e.value) and "offline" in str(e.value)
    monkeypatch.setenv("LGKIT_OFFLINE", "1")
    with pytest.raises(ReleaseUnavailableError, match="downloads are disabled"):
        load_release("gsm8k", "none")
    assert not release_available()


def test_bad_record_names_file_index_and_field(isolated, tmp_path):
    rp = "cot_500/ecqa_train_with_cot.json"
    p = _fake_file(tmp_path / "d", rp, n=5, bad_at=3)
    with pytest.raises(InputError) as e:
        load_release("ecqa", "simplified", data_dir=tmp_path / "d", check_count=False)
    assert e.value.path == str(p) and e.value.record == 3 and e.value.field == "output"
