"""``--compat oda`` against a naive re-implementation of OpenDataArena's two scorers
(one example per backward, the materialised weight gradient, a full SVD)."""

from __future__ import annotations

import json

import pytest

import lgkit
from lgkit.cli import main
from lgkit.formats.prompts import encode_example
from lgkit.formats.records import Example
from lgkit.models.load import load_model
from lgkit.models.tiny import tiny_tokenizer
from lgkit.score.oda import naive_oda_scores, oda_columns

ARCHS = [
    "tiny-random-llama",
    *(
        pytest.param(n, marks=pytest.mark.slow)
        for n in ("tiny-random-llama-gqa", "tiny-random-qwen2", "tiny-random-gemma2")
    ),
]

RECS = [
    {"id": "a", "instruction": "  Add 2 and 3. ", "input": "", "output": " 2 + 3 = 5. So 5. "},
    {"id": "b", "instruction": "Name a colour.", "input": " one word ", "output": "Blue is one."},
    {"id": "c", "instruction": "Count to four.", "input": "", "output": "one two three four " * 3},
]


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("layers", [None, pytest.param([0, 1], marks=pytest.mark.slow)])
def test_oda_compat_equals_their_method(tmp_path, name, layers):
    lm = load_model(name)
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in RECS))
    spec = "last" if layers is None else "0:2"
    df = lgkit.score(src, lm, tmp_path / "o", compat="oda", layers=spec, progress=False)
    for scorer in ("nuclear", "rank"):
        ref = naive_oda_scores(lm.model, lm.tokenizer, RECS, scorer, layers=layers)
        for i, want in enumerate(ref):
            for col in oda_columns(scorer):
                got = float(df[col].iloc[i])
                assert abs(got - want[col]) <= 1e-4 * abs(want[col]), (scorer, i, col)


def test_oda_joinings_differ_and_ignore_the_chat_template():
    tok = tiny_tokenizer()
    ex = Example(" Q ", " in ", " A b ")
    space = encode_example(tok, ex, instruct=True, compat="oda_nuclear")
    newline = encode_example(tok, ex, instruct=True, compat="oda_rank")
    assert tok.decode(space.input_ids, skip_special_tokens=True).replace(" ", "") == "Q\ninAb"
    assert space.input_ids != newline.input_ids
    assert space.n_prompt_tokens == len(tok("Q\nin ")["input_ids"])
    assert newline.n_prompt_tokens == len(tok("Q\nin\n")["input_ids"])


def test_oda_cli_selects_by_their_column(tmp_path):
    src = tmp_path / "d.json"
    src.write_text(json.dumps(RECS))
    out = tmp_path / "top.json"
    rc = main(["score", str(src), "--model", "tiny-random-llama", "--out", str(tmp_path / "s"),
               "--compat", "oda", "--no-progress", "--select", "top:1", "--by", "O_EffectiveRank",
               "--select-out", str(out)])  # fmt: skip
    assert rc == 0
    sel = json.loads((tmp_path / "top.json.selection.json").read_text())
    assert sel["by"] == "O_EffectiveRank" and sel["layers"] == "last"
    assert json.loads(out.read_text())[0]["id"] == sel["chosen_ids"][0]
