"""Irrelevant-response builders: property tests (hypothesis) and the collision check."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lgkit.data import (
    Item,
    assign_donors,
    check_irrelevant,
    final_answer,
    make_irrelevant,
    make_variants,
    normalize_answer,
    shuffle_sentences,
    split_sentences,
)
from lgkit.errors import InputError
from lgkit.formats.records import Example

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def feasible_keys(draw):
    """Answer lists where no answer covers more than half of the examples."""
    n = draw(st.integers(min_value=2, max_value=40))
    alphabet = draw(st.integers(min_value=2, max_value=6))
    keys = draw(st.lists(st.integers(0, alphabet - 1), min_size=n, max_size=n))
    top, m = Counter(keys).most_common(1)[0]
    # move surplus members of the largest class to a fresh key to make it feasible
    surplus = max(0, 2 * m - n)
    out, moved = [], 0
    for k in keys:
        if k == top and moved < surplus:
            out.append(alphabet + moved)
            moved += 1
        else:
            out.append(k)
    return out


@SETTINGS
@given(keys=feasible_keys(), seed=st.integers(0, 2**31 - 1))
def test_assign_donors_is_a_valid_permutation(keys, seed):
    donors = assign_donors(keys, seed)
    assert sorted(donors) == list(range(len(keys)))
    for i, d in enumerate(donors):
        assert d != i
        assert keys[d] != keys[i]


@SETTINGS
@given(n=st.integers(3, 40), extra=st.integers(1, 20), seed=st.integers(0, 10_000))
def test_assign_donors_when_one_answer_covers_more_than_half(n, extra, seed):
    m = min(n - 1, n // 2 + extra)  # one answer covers more than half: no permutation works
    keys = ["yes"] * m + [f"k{i % 3}" for i in range(n - m)]
    donors = assign_donors(keys, seed)
    for i, d in enumerate(donors):
        assert d != i and keys[d] != keys[i]
    assert len(set(donors)) == 2 * (n - m)  # only the 2m - n unavoidable reuses


def test_assign_donors_single_key():
    with pytest.raises(InputError, match="share the key"):
        assign_donors(["yes"] * 5, 0)
    donors = assign_donors(["yes"] * 5, 0, strict=False)
    assert sorted(donors) == list(range(5)) and all(d != i for i, d in enumerate(donors))


def test_assign_donors_is_seeded_and_varies():
    keys = [str(i % 7) for i in range(50)]
    assert assign_donors(keys, 3) == assign_donors(keys, 3)
    assert assign_donors(keys, 3) != assign_donors(keys, 4)
    with pytest.raises(InputError):
        assign_donors(["a"], 0)


def _reasoning_examples(answers: list[str], style: str) -> list[Example]:
    out = []
    for i, a in enumerate(answers):
        if style == "none":
            text = a
        elif style == "simplified":
            text = f"Reasoning for question {i}.\nThe final answer is {a}"
        else:
            text = f"Step one for {i}.\n\nStep two: compute it.\n\nSo the result is \\boxed{{{a}}}."
        out.append(
            Example(
                f"Question {i}?",
                "",
                text,
                id=f"d-{i:04d}-{style}-correct",
                dataset="d",
                cot=style,
                correct=True,
                meta={"qid": f"d-{i:04d}"},
            )
        )
    return out


@SETTINGS
@given(
    keys=feasible_keys(),
    seed=st.integers(0, 2**31 - 1),
    style=st.sampled_from(["none", "simplified", "detailed"]),
)
def test_make_irrelevant_never_own_response_or_answer(keys, seed, style):
    answers = ["yes" if k == 0 else "no" if k == 1 else f"{k * 7 + 1}" for k in keys]
    exs = _reasoning_examples(answers, style)
    irr = make_irrelevant(exs, seed=seed)  # answers extracted from the texts
    assert len(irr) == len(exs)
    assert sorted(e.output for e in irr) == sorted(
        e.output for e in exs
    )  # a permutation of responses
    for c, i in zip(exs, irr, strict=True):
        assert i.prompt == c.prompt and i.correct is False and c.correct is True
        assert i.output != c.output
        assert normalize_answer(final_answer(i.output)) != normalize_answer(final_answer(c.output))
        assert i.meta["response_from"] != c.meta["qid"]
        assert i.id.endswith("-irrelevant")
    report = check_irrelevant(exs, irr)
    assert (report.n, report.same_response, report.same_final_answer, report.own_sentence) == (
        len(exs),
        0,
        0,
        0,
    )
    assert report.answered == len(exs) and report.rate == 0.0


@SETTINGS
@given(n=st.integers(2, 25), seed=st.integers(0, 10_000))
def test_make_variants_shares_one_donor_map_across_cot_levels(n, seed):
    answers = [str(i // 2) if n >= 4 else str(i) for i in range(n)]  # pairs share an answer
    items = [
        Item(f"Q{i}?", a, {"none": a, "simplified": f"why {i}\nThe final answer is {a}"})
        for i, a in enumerate(answers)
    ]
    g = make_variants(items, "toy", seed=seed, family="math")
    src = [e.meta["response_from"] for e in g[("toy", "none", False)]]
    assert src == [e.meta["response_from"] for e in g[("toy", "simplified", False)]]
    for e in g[("toy", "none", False)]:
        assert e.meta["response_answer"] != e.meta["answer"]
    ids = [e.id for grp in g.values() for e in grp]
    assert len(ids) == len(set(ids))


def _articles(n: int, k: int) -> list[Example]:
    return [
        Example(
            f"Tell me about T{i}.",
            "",
            " ".join(f"Article {i} sentence number {j} is here." for j in range(k + i % 3)),
            dataset="wiki_x",
            cot="none",
            correct=True,
            id=f"w-{i}",
        )
        for i in range(n)
    ]


@SETTINGS
@given(n=st.integers(2, 20), k=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_shuffle_sentences_keeps_count_and_takes_only_other_articles(n, k, seed):
    exs = _articles(n, k)
    irr = shuffle_sentences(exs, seed=seed)
    for i, (c, r) in enumerate(zip(exs, irr, strict=True)):
        own = set(split_sentences(c.output))
        got = split_sentences(r.output)
        assert len(got) == len(own)
        assert not own & set(got)
        assert all(not s.startswith(f"Article {i} ") for s in got)
    report = check_irrelevant(exs, irr)
    assert report.same_response == 0 and report.own_sentence == 0 and report.rate is None


def test_shuffle_sentences_is_seeded():
    exs = _articles(6, 4)
    assert [e.output for e in shuffle_sentences(exs, seed=1)] == [
        e.output for e in shuffle_sentences(exs, seed=1)
    ]
    assert [e.output for e in shuffle_sentences(exs, seed=1)] != [
        e.output for e in shuffle_sentences(exs, seed=2)
    ]


def test_check_irrelevant_counts_collisions():
    c = [Example(f"q{i}", "", a) for i, a in enumerate(["yes", "no", "yes", "no"])]
    i = [Example(f"q{k}", "", a) for k, a in enumerate(["no", "no", "yes", "yes"])]
    r = check_irrelevant(c, i)
    assert (r.n, r.same_response, r.same_final_answer, r.answered) == (4, 2, 2, 4)
    assert r.rate == 0.5
    assert r.to_dict()["same_final_answer"] == 2
    # pairs are matched by prompt when the order differs
    r2 = check_irrelevant(c, list(reversed(i)))
    assert r2.n == 4 and r2.same_response == 2
    # gold answers given explicitly win over the texts
    r3 = check_irrelevant(c, i, answers=["no", "no", "no", "no"])
    assert r3.same_final_answer == 2
    with pytest.raises(InputError):
        check_irrelevant(c, [Example("other", "", "x")])


def test_check_irrelevant_own_sentence_ignores_shared_boilerplate():
    boiler = "Let us think about this question very carefully."
    c = [
        Example("a", "", f"{boiler} Apples grow on trees in orchards everywhere."),
        Example("b", "", f"{boiler} Bananas grow in warm tropical places mostly."),
    ]
    kept = [
        Example("a", "", f"{boiler} Apples grow on trees in orchards everywhere."),
        Example("b", "", "Something else entirely, written for another question."),
    ]
    assert check_irrelevant(c, kept).own_sentence == 1
    swapped = [Example("a", "", c[1].output), Example("b", "", c[0].output)]
    assert check_irrelevant(c, swapped).own_sentence == 0  # the shared sentence is not evidence


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x\nThe final answer is (D)", "(d)"),
        ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("Total 1,200 dollars\n#### 1,200", "1200"),
        ("**Final Answer:**\n(D) 7 1/2", "(d)"),
        ("Sentence B", "sentence b"),
        ("Yes.", "yes"),
        ("A long explanation that never states any conclusion whatsoever in the end.", None),
    ],
)
def test_final_answer_extraction(text, expected):
    assert normalize_answer(final_answer(text)) == expected
