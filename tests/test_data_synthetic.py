"""The synthetic set, summaries, the data index and the profiles notebook 01 writes."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from lgkit.data import (
    FAMILIES,
    SYNTH_DATASETS,
    WIKI_LENGTHS,
    DataFile,
    build_profile,
    check_data_files,
    final_answer,
    length_ratios,
    length_table,
    read_data_index,
    select,
    summary,
    synthetic_groups,
    variant_name,
    write_data_file,
    write_data_index,
)
from lgkit.data.synthetic import (
    N_POPULAR_SUBJECTS,
    synth_arith_items,
    synth_commonsense_items,
    synth_wiki_items,
)
from lgkit.errors import InputError
from lgkit.formats.records import COT_LEVELS, Example, read_examples


class WordTokenizer:
    """Any callable returning ``input_ids`` works as a tokenizer for the summaries."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


@pytest.fixture(scope="module")
def groups50():
    return synthetic_groups(50, seed=0)


def test_synthetic_covers_every_variant_with_50(groups50):
    expected = {
        (ds, cot, corr)
        for ds in SYNTH_DATASETS["math"] + SYNTH_DATASETS["commonsense"]
        for cot in COT_LEVELS
        for corr in (True, False)
    }
    expected |= {(ds, "none", corr) for ds in SYNTH_DATASETS["wiki"] for corr in (True, False)}
    assert set(groups50) == expected
    for (ds, cot, corr), exs in groups50.items():
        assert len(exs) == 50
        assert ds.startswith("synth_")
        for e in exs:
            assert (e.dataset, e.cot, e.correct) == (ds, cot, corr)
            assert e.meta["synthetic"] is True and e.meta["source"] == "synthetic"
            assert e.meta["family"] in FAMILIES and e.id and e.meta["qid"]
    assert N_POPULAR_SUBJECTS >= 50


def test_synthetic_is_deterministic_by_seed():
    a = synthetic_groups(6, seed=5)
    b = synthetic_groups(6, seed=5)
    c = synthetic_groups(6, seed=6)
    dump = lambda g: {k: [e.to_dict() for e in v] for k, v in g.items()}  # noqa: E731
    assert dump(a) == dump(b)
    assert dump(a) != dump(c)
    # generating more gives the same first examples (notebook 01 writes a prefix)
    assert [i.instruction for i in synth_arith_items(10, 3)[:4]] == [
        i.instruction for i in synth_arith_items(4, 3)
    ]


_CALC = re.compile(r"\$?(\d+) ([+\-*/×÷−]) \$?(\d+) = \$?(\d+)")
_OPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "−": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "×": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "÷": lambda a, b: a / b,
}


def test_arith_cot_is_a_faithful_derivation():
    for it in synth_arith_items(60, seed=1):
        ans = int(it.answer)
        assert it.responses["none"] == it.answer
        for cot in ("simplified", "detailed"):
            text = it.responses[cot]
            calcs = _CALC.findall(text)
            assert len(calcs) >= it.meta["n_steps"], (cot, text)
            for a, op, b, c in calcs:
                assert _OPS[op](int(a), int(b)) == int(c), (a, op, b, c, text)
            assert final_answer(text) == it.answer
        steps = [c for c in _CALC.findall(it.responses["detailed"])]
        assert int(steps[it.meta["n_steps"] - 1][3]) == ans  # the last step gives the answer
        for n in re.findall(r"\d+", it.instruction)[:1]:
            assert n in it.responses["detailed"]  # givens are restated
    assert len({it.meta["template"] for it in synth_arith_items(30, seed=0)}) == 10


def test_commonsense_balanced_and_answers_in_options():
    items = synth_commonsense_items(90, seed=2)
    assert len({it.instruction for it in items}) == 90
    for n in range(2, 91):
        top = Counter(it.answer for it in items[:n]).most_common(1)[0][1]
        assert 2 * top <= n
    kinds = Counter(it.meta["qtype"] for it in items)
    assert kinds["yes_no"] == 60 and kinds["multiple_choice"] == 30
    for it in items:
        if it.meta["qtype"] == "multiple_choice":
            assert f"- {it.answer}\n" in it.instruction + "\n"
        else:
            assert it.answer in ("yes", "no")
        assert (
            final_answer(it.responses["simplified"])
            == it.answer
            == final_answer(it.responses["detailed"])
        )
        assert len(it.responses["detailed"]) > 2 * len(it.responses["simplified"])


def test_wiki_lengths_and_popularity(groups50):
    for pop in ("popular", "long_tail"):
        titles = None
        for ln, words in WIKI_LENGTHS.items():
            exs = groups50[(f"synth_wiki_{pop}_{ln}", "none", True)]
            t = [e.meta["title"] for e in exs]
            assert titles is None or t == titles  # the same subjects at every length
            titles = t
            mean_words = sum(len(e.output.split()) for e in exs) / len(exs)
            assert 0.8 * words <= mean_words <= 1.2 * words
            for e in exs:
                assert e.instruction == f"Tell me about {e.meta['title']}."
                assert e.meta["fictional"] is (pop == "long_tail")
                assert (
                    e.meta["popularity"] == pop
                    and e.meta["length"] == ln
                    and e.meta["words"] == words
                )
                assert e.meta["variant"] == f"{pop}_wikipedia_{ln}"
    with pytest.raises(InputError):
        synth_wiki_items(N_POPULAR_SUBJECTS + 1, popularity="popular")
    with pytest.raises(InputError):
        synth_wiki_items(2, popularity="famous")


def test_summary_token_lengths(groups50):
    s = summary(groups50, WordTokenizer())
    assert {"dataset", "cot", "correct", "n", "tokens_mean", "tokens_median", "tokens_p90"} <= set(
        s.columns
    )
    assert len(s) == len(groups50) and set(s["n"]) == {50}
    r = length_ratios(s)
    assert r["synth_arith"]["detailed_over_simplified"] > 2.5
    assert r["synth_commonsense"]["detailed_over_simplified"] > 3
    arith = s[(s.dataset == "synth_arith") & s.correct].set_index("cot")["tokens_mean"]
    assert arith["none"] < arith["simplified"] < arith["detailed"]


def test_summary_with_hf_tokenizer():
    pytest.importorskip("transformers")
    from lgkit.data import get_tokenizer

    tok = get_tokenizer("tiny")
    g = synthetic_groups(4, seed=0, families=("math",))
    t = length_table(g, tok)
    ex = g[("synth_arith", "detailed", True)][0]
    row = t[(t.id == ex.id)].iloc[0]
    assert row.response_tokens == len(ex.output.encode())  # byte-level tokenizer
    assert summary(t)["n"].sum() == 24  # a length table is accepted as is


def test_build_profile_smoke_contract(tmp_path):
    out = tmp_path / "run"
    files = build_profile("smoke", out, n_per_variant=5, seed=0)
    ddir = out / "data"
    assert (ddir / "index.json").is_file()
    assert len(files) == 24 and all(f.n == 5 for f in files)
    assert sorted(p.name for p in ddir.glob("*.jsonl")) == sorted(f"{f.name}.jsonl" for f in files)
    back = read_data_index(ddir)
    assert [f.to_dict(ddir) for f in back] == [f.to_dict(ddir) for f in files]
    assert [f.name for f in read_data_index(ddir / "index.json")] == [f.name for f in files]
    assert [f.name for f in read_data_index(out)] == [
        f.name for f in files
    ]  # the run folder works too
    all_ids = []
    for f in files:
        assert f.path.name == f"{variant_name(f.dataset, f.cot, f.correct)}.jsonl"
        assert f.synthetic
        exs = read_examples(f.path)
        for e in exs:
            assert e.dataset == f.dataset and e.cot == f.cot and e.correct == f.correct
            assert e.id and e.meta["qid"] and e.meta["family"] == f.family
        all_ids += [e.id for e in exs]
    assert len(all_ids) == len(set(all_ids))
    wiki = select(files, family="wiki", popularity="long_tail", correct=True)
    assert {f.meta["length"] for f in wiki} == set(WIKI_LENGTHS) and all(
        f.meta["words"] for f in wiki
    )
    assert len(select(files, family="math", cot=["none", "detailed"])) == 4
    reports = check_data_files(files)
    assert len(reports) == 12
    assert all(
        r.same_response == r.same_final_answer == r.own_sentence == 0 for r in reports.values()
    )
    idx = json.loads((ddir / "index.json").read_text())
    assert idx["profile"] == "smoke" and idx["seed"] == 0
    # a second run replaces the files of the first
    files2 = build_profile({"name": "smoke", "families": ["math"]}, out, n_per_variant=3, seed=1)
    assert len(files2) == 6 and len(list(ddir.glob("*.jsonl"))) == 6


def test_build_profile_default_writes_n_per_variant(tmp_path):
    files = build_profile("default", tmp_path, n_per_variant=12, seed=0)
    assert {f.n for f in files} == {12}
    with pytest.raises(InputError):
        build_profile("nope", tmp_path, n_per_variant=2, seed=0)


def test_data_file_validation(tmp_path):
    ok = Example(
        "q", "", "a", id="x-1", dataset="d", cot="none", correct=True, meta={"family": "math"}
    )
    f = write_data_file(tmp_path, [ok])
    assert isinstance(f, DataFile) and f.family == "math"
    with pytest.raises(InputError, match="id"):
        write_data_file(tmp_path, [Example("q", "", "a", dataset="d", cot="none", correct=True)])
    with pytest.raises(InputError, match="duplicate"):
        write_data_file(tmp_path, [ok, ok])
    write_data_index(tmp_path, [f])
    f.path.unlink()
    with pytest.raises(InputError, match="missing"):
        read_data_index(tmp_path)
    with pytest.raises(InputError):
        read_data_index(tmp_path / "nothing-here")
