"""Builders from the original datasets, each on a small local file in its source's schema.

The fixtures below are written by hand in the original schemas (GSM8K JSONL, AQuA-RAT
JSON, StrategyQA JSON list, ECQA Parquet, CREAK JSONL, ComVE CSV, MATH JSONL, Wikipedia
JSONL) and read through ``datasets.load_dataset`` exactly as a hub copy would be.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lgkit.data import (
    attach_detailed,
    build_dataset,
    check_irrelevant,
    cut_words,
    final_answer,
    load_source,
    load_teacher_responses,
    split_sentences,
)
from lgkit.data.builders import gsm8k_items, sensemaking_items
from lgkit.data.teacher import generate_detailed, teacher_key
from lgkit.errors import InputError

GSM8K = [
    {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
    },
    {
        "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
        "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10",
    },
    {
        "question": "Betty needs $100 for a wallet. She has half of the money. Her parents give her $15 and her grandparents twice as much. How much more money does Betty need?",
        "answer": "Betty has 100 / 2 = $<<100/2=50>>50.\nHer grandparents give 15 * 2 = $<<15*2=30>>30.\nShe needs 100 - 50 - 30 - 15 = $<<100-50-30-15=5>>5 more.\n#### 5",
    },
    {
        "question": "James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?",
        "answer": "He writes each friend 3*2=<<3*2=6>>6 pages a week.\nSo he writes 6*2=<<6*2=12>>12 pages every week.\nThat means he writes 12*52=<<12*52=624>>624 pages a year.\n#### 624",
    },
]

AQUA = [
    {
        "question": "A car travels 60 km in 1.5 hours. What is its speed?",
        "options": ["A)30 km/h", "B)40 km/h", "C)45 km/h", "D)50 km/h", "E)90 km/h"],
        "rationale": "Speed = 60 / 1.5 = 40 km/h.",
        "correct": "B",
    },
    {
        "question": "What is 15% of 200?",
        "options": ["A)15", "B)20", "C)30", "D)35", "E)45"],
        "rationale": "15% of 200 = 0.15 * 200 = 30.",
        "correct": "C",
    },
    {
        "question": "If x + 3 = 10, what is x?",
        "options": ["A)3", "B)5", "C)7", "D)10", "E)13"],
        "rationale": "x = 10 - 3 = 7.",
        "correct": "C",
    },
    {
        "question": "How many minutes are in 2.5 hours?",
        "options": ["A)120", "B)150", "C)160", "D)180", "E)250"],
        "rationale": "2.5 * 60 = 150 minutes.",
        "correct": "B",
    },
]

STRATEGYQA = [
    {
        "qid": "q1",
        "term": "Polar bear",
        "description": "species of bear",
        "question": "Did Polar Bears roam around in Ancient Greece?",
        "answer": False,
        "facts": [
            "Polar bears live in the Arctic.",
            "Ancient Greece had a warm Mediterranean climate.",
        ],
        "decomposition": ["Where do polar bears live?", "What was the climate of Ancient Greece?"],
    },
    {
        "qid": "q2",
        "term": "Vellum",
        "description": "parchment",
        "question": "Would a sofer be a bad job for a vegan?",
        "answer": True,
        "facts": [
            "A sofer writes religious texts on vellum.",
            "Vellum is made from calfskin.",
            "Vegans do not use animal products.",
        ],
        "decomposition": ["What does a sofer write on?", "Is it an animal product?"],
    },
    {
        "qid": "q3",
        "term": "Moon",
        "description": "satellite",
        "question": "Could a person walk to the Moon?",
        "answer": False,
        "facts": ["The Moon is about 384,000 km away through space."],
        "decomposition": ["How far is the Moon?"],
    },
    {
        "qid": "q4",
        "term": "Lemon",
        "description": "fruit",
        "question": "Is lemon juice acidic?",
        "answer": True,
        "facts": ["Lemon juice contains citric acid.", "Its pH is about 2."],
        "decomposition": ["What is in lemon juice?"],
    },
]

ECQA = [
    {
        "q_no": "e1",
        "q_concept": "knitting",
        "q_text": "Knitting for a long time can lead to what condition?",
        "q_op1": "bleeding",
        "q_op2": "have fun",
        "q_op3": "relaxation",
        "q_op4": "carpal tunnel syndrome",
        "q_op5": "sore hands",
        "q_ans": "carpal tunnel syndrome",
        "taskA_pos": "Repetitive motion strains the wrist.",
        "taskA_neg": "Knitting does not cause bleeding.",
        "taskB": "Repetitive hand motion over a long time can cause carpal tunnel syndrome.",
    },
    {
        "q_no": "e2",
        "q_concept": "fatigue",
        "q_text": "If you're feeling a little bit of fatigue what can you do?",
        "q_op1": "sit on chair",
        "q_op2": "stand up",
        "q_op3": "sit down",
        "q_op4": "sleep",
        "q_op5": "have rest",
        "q_ans": "have rest",
        "taskA_pos": "Rest restores energy.",
        "taskA_neg": "Standing up does not help.",
        "taskB": "Taking some rest helps the body recover from fatigue.",
    },
    {
        "q_no": "e3",
        "q_concept": "fruit",
        "q_text": "Why would you eat fruit?",
        "q_op1": "taste sweet",
        "q_op2": "become hungry",
        "q_op3": "lose weight",
        "q_op4": "get sick",
        "q_op5": "stay awake",
        "q_ans": "taste sweet",
        "taskA_pos": "Fruit tastes sweet.",
        "taskA_neg": "Fruit does not make you sick.",
        "taskB": "People eat fruit because it tastes sweet.",
    },
]

CREAK = [
    {
        "ex_id": "train_1",
        "sentence": "Black pepper is a common spice used in many recipes.",
        "explanation": "Black pepper is used in recipes around the world.",
        "label": "true",
        "entity": "Black pepper",
        "en_wiki_pageid": "1",
        "entity_mention_loc": [[0, 12]],
    },
    {
        "ex_id": "train_2",
        "sentence": "Astronomers can see the Sangre de Cristo Mountains on Mars with the naked eye.",
        "explanation": "The Sangre de Cristo Mountains are on Earth, not on Mars.",
        "label": "false",
        "entity": "Sangre de Cristo Mountains",
        "en_wiki_pageid": "2",
        "entity_mention_loc": [[24, 50]],
    },
    {
        "ex_id": "train_3",
        "sentence": "Paris is the capital of France.",
        "explanation": "Paris is the capital city of France.",
        "label": "true",
        "entity": "Paris",
        "en_wiki_pageid": "3",
        "entity_mention_loc": [[0, 5]],
    },
    {
        "ex_id": "train_4",
        "sentence": "Penguins fly south for the winter.",
        "explanation": "Penguins cannot fly.",
        "label": "false",
        "entity": "Penguin",
        "en_wiki_pageid": "4",
        "entity_mention_loc": [[0, 8]],
    },
]

COMVE_COLUMNS = [
    "Correct Statement",
    "Incorrect Statement",
    "Right Reason1",
    "Confusing Reason1",
    "Confusing Reason2",
    "Right Reason2",
    "Right Reason3",
]
COMVE = [
    [
        "He poured milk on his cereal.",
        "He poured orange juice on his cereal.",
        "Orange juice doesn't taste good on cereal.",
        "Orange juice is usually bright orange.",
        "Orange juice is sticky.",
        "Orange juice is poured in a glass.",
        "It tastes bad.",
    ],
    [
        "He drinks milk.",
        "He drinks apple.",
        "Apple can not be drunk, it is eaten.",
        "Apple juice is tasty.",
        "Apple cannot eat a human.",
        "An apple is a solid food.",
        "He eats an apple",
    ],
    [
        "A mosquito stings me",
        "I sting a mosquito",
        "A human has no stinger.",
        "A human is a mammal.",
        "A human is omnivorous.",
        "I do not have a stinger.",
        "Mosquitos sting people",
    ],
    [
        "Jeff ran a mile today",
        "Jeff ran 100,000 miles today",
        "100,000 miles is far too long to run in one day.",
        "Jeff is a four letter name.",
        "100,000 miles is longer than 100,000 km.",
        "This is not possible.",
        "No one can run that far",
    ],
]

MATH = [
    {
        "problem": "What is $2+3$?",
        "level": "Level 1",
        "type": "Algebra",
        "solution": "We have $2+3=\\boxed{5}$.",
    },
    {
        "problem": "Solve $x^2=9$ for $x>0$.",
        "level": "Level 2",
        "type": "Algebra",
        "solution": "$x=\\sqrt{9}=\\boxed{3}$.",
    },
    {
        "problem": "How many ways to choose 2 of 4 marbles?",
        "level": "Level 3",
        "type": "Counting & Probability",
        "solution": "$\\binom{4}{2}=\\boxed{6}$.",
    },
    {
        "problem": "A fair coin is flipped twice. What is the probability of two heads?",
        "level": "Level 2",
        "type": "Counting & Probability",
        "solution": "Each flip is heads with probability $\\frac12$, so $\\boxed{\\frac{1}{4}}$.",
    },
    {
        "problem": "What is the area of a square with side 3?",
        "level": "Level 1",
        "type": "Geometry",
        "solution": "$3^2=\\boxed{9}$.",
    },
    {
        "problem": "Unfinished problem",
        "level": "Level ?",
        "type": "Geometry",
        "solution": "No boxed answer here.",
    },
]

WIKI = [
    {
        "id": "1",
        "url": "https://en.wikipedia.org/wiki/Anarchism",
        "title": "Anarchism",
        "text": "Anarchism is a political philosophy. It is sceptical of authority.\n\nHistory\nIt has a long history. Many thinkers wrote about it. "
        * 3,
    },
    {
        "id": "2",
        "url": "https://en.wikipedia.org/wiki/Albedo",
        "title": "Albedo",
        "text": "Albedo is the fraction of sunlight that is reflected. It ranges from 0 to 1. Snow has a high albedo. Oceans have a low albedo. "
        * 3,
    },
    {
        "id": "3",
        "url": "https://en.wikipedia.org/wiki/A",
        "title": "A",
        "text": "A is the first letter of the Latin alphabet. Its name in English is a. It is a vowel. It has many forms. "
        * 3,
    },
]


def _jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    files = {
        "gsm8k": _jsonl(d / "gsm8k_train.jsonl", GSM8K),
        "creak": _jsonl(d / "creak_train.json", CREAK),  # CREAK ships JSON lines named .json
        "math": _jsonl(d / "math_train.jsonl", MATH),
        "wiki": _jsonl(d / "wiki.jsonl", WIKI),
    }
    (d / "aqua_train.json").write_text("\n".join(json.dumps(r) for r in AQUA))
    files["aqua"] = d / "aqua_train.json"
    (d / "strategyqa_train.json").write_text(json.dumps(STRATEGYQA, indent=1))  # a JSON list
    files["strategyqa"] = d / "strategyqa_train.json"
    import pandas as pd

    pd.DataFrame(ECQA).to_parquet(d / "ecqa_train.parquet")
    files["ecqa"] = d / "ecqa_train.parquet"
    with open(d / "comve_train.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COMVE_COLUMNS)
        w.writerows(COMVE)
    files["sensemaking"] = d / "comve_train.csv"
    return files


def _check_groups(groups, dataset, cots, n):
    assert set(groups) == {(dataset, c, corr) for c in cots for corr in (True, False)}
    for (ds, cot, corr), exs in groups.items():
        assert len(exs) == n
        for k, e in enumerate(exs):
            assert (e.dataset, e.cot, e.correct) == (ds, cot, corr)
            assert e.id == f"{dataset}-{k:04d}-{cot}-{'correct' if corr else 'irrelevant'}"
            assert e.meta["source_id"] and e.meta["family"] and e.meta["synthetic"] is False
        if not corr:
            r = check_irrelevant(groups[(ds, cot, True)], exs)
            assert (r.same_response, r.same_final_answer) == (0, 0)


def test_gsm8k(src, tmp_path):
    g = build_dataset("gsm8k", src["gsm8k"], cache_dir=tmp_path / "hf")
    _check_groups(g, "gsm8k", ("none", "simplified"), 4)
    ex = g[("gsm8k", "simplified", True)][0]
    assert ex.output == (
        "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and May."
        "\nThe final answer is 72"
    )
    assert g[("gsm8k", "none", True)][0].output == "72" == ex.meta["answer"]
    assert "<<" not in "".join(e.output for e in g[("gsm8k", "simplified", True)])


def test_aqua(src, tmp_path):
    g = build_dataset("aqua", src["aqua"], cache_dir=tmp_path / "hf")
    _check_groups(g, "aqua", ("none", "simplified"), 4)
    ex = g[("aqua", "simplified", True)][0]
    assert ex.instruction.endswith(
        "\nOptions:\n(A) 30 km/h\n(B) 40 km/h\n(C) 45 km/h\n(D) 50 km/h\n(E) 90 km/h"
    )
    assert ex.output.endswith("\nThe final answer is (B)")
    assert g[("aqua", "none", True)][1].output == "(C)"


def test_strategyqa(src, tmp_path):
    g = build_dataset("strategyqa", src["strategyqa"], cache_dir=tmp_path / "hf")
    _check_groups(g, "strategyqa", ("none", "simplified"), 4)
    ex = g[("strategyqa", "simplified", True)][1]
    assert ex.output == (
        "A sofer writes religious texts on vellum. Vellum is made from calfskin. Vegans do not use animal products."
        "\nThe final answer is yes"
    )
    assert ex.meta["source_id"] == "q2"
    assert [e.output for e in g[("strategyqa", "none", False)]] == ["yes", "no", "yes", "no"]


def test_ecqa(src, tmp_path):
    g = build_dataset("ecqa", src["ecqa"], cache_dir=tmp_path / "hf")
    _check_groups(g, "ecqa", ("none", "simplified"), 3)
    ex = g[("ecqa", "simplified", True)][0]
    assert ex.instruction == (
        "Knitting for a long time can lead to what condition?\nOptions:\n- bleeding\n- have fun\n"
        "- relaxation\n- carpal tunnel syndrome\n- sore hands"
    )
    assert final_answer(ex.output) == "carpal tunnel syndrome"


def test_creak(src, tmp_path):
    g = build_dataset("creak", src["creak"], cache_dir=tmp_path / "hf")
    _check_groups(g, "creak", ("none", "simplified"), 4)
    ex = g[("creak", "none", True)][1]
    assert ex.output == "no" and '"Astronomers can see' in ex.instruction and ex.meta["entity"]


def test_sensemaking(src, tmp_path):
    g = build_dataset("sensemaking", src["sensemaking"], cache_dir=tmp_path / "hf", seed=3)
    _check_groups(g, "sensemaking", ("none", "simplified"), 4)
    for e in g[("sensemaking", "none", True)]:
        letter = e.output[-1]
        bad_sentence = [
            ln for ln in e.instruction.splitlines() if ln.startswith(f"- Sentence {letter}:")
        ][0]
        assert any(
            row[1] in bad_sentence for row in COMVE
        )  # the answer points at the incorrect statement
    # the subtask-A schema (sent0/sent1/label + reason) works too
    items = sensemaking_items(
        [
            {
                "id": "1",
                "sent0": "He drinks milk.",
                "sent1": "He drinks apple.",
                "label": "1",
                "reason": "Apples are eaten.",
            }
        ]
    )
    assert items[0].answer == "Sentence B"


def test_math_keeps_subject_and_level(src, tmp_path):
    g = build_dataset("math", src["math"], cache_dir=tmp_path / "hf", irrelevant=False)
    assert {k[0] for k in g} == {"math_algebra", "math_counting_probability", "math_geometry"}
    alg = g[("math_algebra", "simplified", True)]
    assert [e.meta["level"] for e in alg] == [1, 2] and {e.meta["subject"] for e in alg} == {
        "algebra"
    }
    assert alg[0].output == MATH[0]["solution"]  # the original solution, as released
    assert g[("math_counting_probability", "none", True)][1].output == "\\frac{1}{4}"
    assert len(g[("math_geometry", "none", True)]) == 1  # the record without \boxed{} is skipped
    g2 = build_dataset(
        "math",
        src["math"],
        cache_dir=tmp_path / "hf",
        subjects=["algebra", "counting_probability"],
        levels=[1, 2, 3],
    )
    assert {k[0] for k in g2} == {"math_algebra", "math_counting_probability"}
    with pytest.raises(
        InputError, match="at least 2"
    ):  # one question cannot get another's response
        build_dataset(
            "math", src["math"], cache_dir=tmp_path / "hf", subjects=["algebra"], levels=[2]
        )


def test_wiki_cut_at_sentence_boundaries(src, tmp_path):
    g = build_dataset(
        "wiki", src["wiki"], cache_dir=tmp_path / "hf", lengths=(10, 30), popularity="long_tail"
    )
    assert {k[0] for k in g} == {"wiki_long_tail_10", "wiki_long_tail_30"}
    for (ds, _, corr), exs in g.items():
        for e in exs:
            assert e.instruction.startswith("Tell me about ")
            assert e.meta["popularity"] == "long_tail" and e.meta["length"] in (10, 30)
            if corr:
                assert e.output.rstrip().endswith(".")
                assert abs(len(e.output.split()) - e.meta["length"]) <= 8
        if not corr:
            corr_exs = g[(ds, "none", True)]
            for c, i in zip(corr_exs, exs, strict=True):
                assert len(split_sentences(i.output)) == len(split_sentences(c.output))
                assert not set(split_sentences(i.output)) & set(split_sentences(c.output))
    assert (
        cut_words("One two three. Four five. Six seven eight nine.", 5)
        == "One two three. Four five."
    )


def test_sampling_is_seeded(src, tmp_path):
    a = build_dataset("gsm8k", GSM8K, n=2, seed=1)
    b = build_dataset("gsm8k", GSM8K, n=2, seed=1)
    assert [e.instruction for e in a[("gsm8k", "none", True)]] == [
        e.instruction for e in b[("gsm8k", "none", True)]
    ]
    assert len(a[("gsm8k", "none", True)]) == 2


def test_schema_errors_name_record_and_field(tmp_path):
    with pytest.raises(InputError) as e:
        gsm8k_items([{"question": "q", "answer": "no marker"}])
    assert e.value.record == 0 and e.value.field == "answer"
    with pytest.raises(InputError, match="lacks field 'facts'"):
        build_dataset("strategyqa", [{"question": "q", "answer": True}])
    with pytest.raises(InputError, match="unknown source"):
        build_dataset("nope", [])
    with pytest.raises(InputError, match="cannot load"):
        load_source("gsm8k", tmp_path / "missing.jsonl", cache_dir=tmp_path / "hf")
    bad = _jsonl(tmp_path / "bad.jsonl", [{"question": "q"}])
    with pytest.raises(InputError, match="answer"):
        build_dataset("gsm8k", bad, cache_dir=tmp_path / "hf")


# --------------------------------------------------------------------------- teacher


def test_teacher_file_gives_detailed_variant(src, tmp_path):
    teacher = tmp_path / "teacher.jsonl"
    _jsonl(
        teacher,
        [
            {
                "id": r["qid"],
                "output": f"Detailed reasoning for {r['qid']}.\n\nStep 1 ...\nThe final answer is "
                f"{'yes' if r['answer'] else 'no'}",
            }
            for r in STRATEGYQA
        ],
    )
    g = build_dataset("strategyqa", src["strategyqa"], cache_dir=tmp_path / "hf", teacher=teacher)
    _check_groups(g, "strategyqa", ("none", "simplified", "detailed"), 4)
    assert g[("strategyqa", "detailed", True)][0].output.startswith("Detailed reasoning for q1.")
    as_dict = tmp_path / "teacher.json"
    as_dict.write_text(json.dumps({"q1": "a"}))
    assert load_teacher_responses(as_dict) == {"q1": "a"}
    with pytest.raises(InputError, match="no teacher response"):
        build_dataset("strategyqa", src["strategyqa"], cache_dir=tmp_path / "hf", teacher=as_dict)


def test_teacher_by_instruction_and_missing_drop(tmp_path):
    from lgkit.data import Item

    items = [Item("What is 1+1?", "2", {"none": "2"}), Item("What is 2+2?", "4", {"none": "4"})]
    f = _jsonl(
        tmp_path / "t.jsonl", [{"instruction": "What is 1+1?", "response": "One plus one is two."}]
    )
    out = attach_detailed(items, load_teacher_responses(f), missing="drop")
    assert len(out) == 1 and out[0].responses["detailed"] == "One plus one is two."


def test_generate_detailed_with_a_local_model_is_cached_and_resumable(tmp_path):
    torch = pytest.importorskip("torch")
    from lgkit.data import Item
    from lgkit.models.load import load_model

    lm = load_model("tiny-random-llama", device="cpu")
    items = [
        Item(f"What is {i} + {i}?", str(2 * i), {"none": str(2 * i)}, meta={"source_id": f"q{i}"})
        for i in range(3)
    ]
    cache = tmp_path / "teacher_cache.jsonl"
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.inner = model

        def generate(self, **kw):
            calls.append(kw["input_ids"].shape[0])
            return self.inner.generate(**kw)

    first = generate_detailed(
        items[:2],
        Counting(lm.model),
        lm.tokenizer,
        cache_path=cache,
        max_new_tokens=6,
        min_new_tokens=6,
        batch_size=2,
    )
    assert set(first) == {"q0", "q1"} and sum(calls) == 2
    assert len(cache.read_text().splitlines()) == 2
    # resume: only the new question is generated
    out = generate_detailed(
        items,
        Counting(lm.model),
        lm.tokenizer,
        cache_path=cache,
        max_new_tokens=6,
        min_new_tokens=6,
    )
    assert sum(calls) == 3 and set(out) == {"q0", "q1", "q2"} and out["q0"] == first["q0"]
    assert len(cache.read_text().splitlines()) == 3
    assert load_teacher_responses(cache)["q2"] == out["q2"]
    assert teacher_key(items[2]) == "q2"

    class Broken(Counting):
        def generate(self, **kw):
            raise AssertionError("everything is cached; generate must not run")

    assert generate_detailed(items, Broken(lm.model), lm.tokenizer, cache_path=cache) == out


def test_every_builder_has_a_hub_source():
    from lgkit.data.builders import BUILDERS, HUB_SOURCES

    assert sorted(BUILDERS) == sorted(HUB_SOURCES)
