"""Irrelevant responses that are really irrelevant, and a check for the ones that are not.

*Reasoning tasks* (math, commonsense): each example gets the response of another
example of the same dataset, never its own and never one whose final answer equals the
example's correct answer (:func:`assign_donors`, :func:`make_irrelevant`). The donor
map is a permutation, so the irrelevant set holds exactly the same responses as the
correct set, only attached to other questions.

*Knowledge (wiki)*: each sentence of an article is replaced by a random sentence of
other articles, keeping the sentence count (:func:`shuffle_sentences`).

:func:`repair_collisions` keeps a released irrelevant set but replaces each collision (the
correct response itself, or one with the example's own final answer: in the yes/no files
most ``none`` pairs are the same one-word answer) with another question's response of a
different answer.

:func:`check_irrelevant` counts the collisions of an (example, irrelevant example)
pairing: identical responses, identical final answers, and irrelevant responses that
still contain a sentence of the example's own correct response.

Example:
    >>> donors = assign_donors(["1", "2", "3", "3"], seed=0)
    >>> all(d != i for i, d in enumerate(donors))
    True
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from lgkit.data.answers import final_answer, normalize_answer
from lgkit.data.text import normalize_text, split_sentences
from lgkit.errors import InputError
from lgkit.formats.records import Example

logger = logging.getLogger(__name__)

__all__ = [
    "IrrelevanceReport",
    "assign_donors",
    "check_irrelevant",
    "make_irrelevant",
    "repair_collisions",
    "shuffle_sentences",
]

_MIN_SENTENCE_WORDS = 5  # shorter sentences ("The final answer is no.") are not evidence


def assign_donors(keys: Sequence[Hashable], seed: int, *, strict: bool = True) -> list[int]:
    """Seeded donors with ``donors[i] != i`` and ``keys[donors[i]] != keys[i]`` for every ``i``.

    ``keys`` are the (normalised) correct answers, or any label that must differ between
    an example and its donor. When no key covers more than half of the examples the
    donors form a permutation (every response is used exactly once, so the irrelevant
    set holds the same responses as the correct set). Otherwise — e.g. a yes/no dataset
    with 252 "yes" of 500 — no permutation can avoid every same-answer donor, and the
    fewest possible responses (``2m - n`` for a largest class of ``m``) are given twice.

    Construction: sort by key (largest class first, random order otherwise), shift by
    the largest class size, mix by random donor swaps that keep the constraints, then
    (only when needed) re-draw the remaining same-key donors among the other keys.

    Args:
        keys: one hashable label per example.
        seed: random seed.
        strict: when every example has the same key (no valid donor exists), raise (True)
            or only avoid each example's own response (False, logged).

    Returns:
        ``donors[i]``: the index whose response example ``i`` receives.

    Raises:
        InputError: fewer than 2 examples, or (strict) a single key for all examples.

    Example:
        >>> keys = ["yes", "no", "yes", "no", "maybe"]
        >>> d = assign_donors(keys, seed=3)
        >>> sorted(d) == list(range(5)) and all(keys[d[i]] != keys[i] for i in range(5))
        True
        >>> keys = ["yes", "yes", "yes", "no"]
        >>> d = assign_donors(keys, seed=0)
        >>> all(d[i] != i and keys[d[i]] != keys[i] for i in range(4))
        True
    """
    n = len(keys)
    if n < 2:
        raise InputError(f"need at least 2 examples to build irrelevant responses, got {n}")
    rng = random.Random(seed)
    classes: dict[Hashable, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        classes[k].append(i)
    groups = list(classes.values())
    m = max(len(g) for g in groups)
    if m == n:
        msg = f"all {n} examples share the key {keys[0]!r} (e.g. the same answer): no donor has another answer"
        if strict:
            raise InputError(msg)
        logger.warning("%s; only avoiding each example's own response", msg)
    rng.shuffle(groups)
    for g in groups:
        rng.shuffle(g)
    groups.sort(key=len, reverse=True)  # stable: ties stay in random order
    order = [i for g in groups for i in g]
    donors = [0] * n
    shift = m if m < n else 1
    for p, i in enumerate(order):
        donors[i] = order[(p + shift) % n]

    def ok(i: int, d: int) -> bool:
        return d != i and (m == n or keys[d] != keys[i])

    for _ in range(4 * n):  # random valid swaps: mix while keeping the constraints
        i, j = rng.randrange(n), rng.randrange(n)
        if i != j and ok(i, donors[j]) and ok(j, donors[i]):
            donors[i], donors[j] = donors[j], donors[i]
    bad = [i for i in range(n) if not ok(i, donors[i])]
    if bad:  # 2m > n: no permutation works; reuse the fewest responses
        for i in bad:
            others = [j for g in groups if keys[g[0]] != keys[i] for j in g]
            donors[i] = rng.choice(others)
        logger.info(
            "irrelevant donors: key %r covers %d of %d examples; %d responses used twice",
            keys[groups[0][0]],
            m,
            n,
            len(bad),
        )
    return donors


def _answer_of(ex: Example) -> str | None:
    ans = ex.meta.get("answer")
    return str(ans) if ans is not None else final_answer(ex.output)


def make_irrelevant(
    examples: Sequence[Example],
    *,
    seed: int = 0,
    answers: Sequence[str | None] | None = None,
    donors: Sequence[int] | None = None,
    strict: bool = True,
) -> list[Example]:
    """Irrelevant variants of reasoning examples: each gets another example's response.

    The donor never is the example itself and never has the same final answer as the
    example's correct answer (see :func:`assign_donors`; the donors are a permutation
    whenever the answers allow it). Answers come from ``answers``, else ``meta["answer"]``,
    else :func:`~lgkit.data.answers.final_answer` of the response; examples without any
    answer are only kept apart from identical responses.

    Args:
        examples: correct examples of one dataset and CoT level.
        seed: random seed of the donor assignment.
        answers: the correct answer of each example (overrides the records).
        donors: a ready donor assignment (from :func:`assign_donors`), e.g. to use the
            same pairing for every CoT level of a dataset.
        strict: see :func:`assign_donors`.

    Returns:
        New examples (``correct=False``; id suffix ``-irrelevant`` when the id ends in
        ``-correct``) with ``meta["response_from"]`` (the donor's qid or id) and
        ``meta["response_answer"]`` (the donor's answer).

    Example:
        >>> exs = [Example("q1", "", "The final answer is 1"), Example("q2", "", "The final answer is 2")]
        >>> [e.output for e in make_irrelevant(exs, seed=0)]
        ['The final answer is 2', 'The final answer is 1']
    """
    exs = list(examples)
    ans = list(answers) if answers is not None else [_answer_of(e) for e in exs]
    if len(ans) != len(exs):
        raise InputError(f"got {len(ans)} answers for {len(exs)} examples")
    if donors is None:
        keys = [
            ("answer", normalize_answer(a))
            if a is not None
            else ("response", normalize_text(e.output))
            for a, e in zip(ans, exs, strict=True)
        ]
        donors = assign_donors(keys, seed, strict=strict)
    if len(donors) != len(exs):
        raise InputError(f"got {len(donors)} donors for {len(exs)} examples")
    out = []
    for i, ex in enumerate(exs):
        d = exs[donors[i]]
        meta = dict(ex.meta)
        meta["answer"] = ans[i]
        meta["response_from"] = d.meta.get("qid", d.sample_id)
        meta["response_answer"] = ans[donors[i]]
        meta["irrelevant_method"] = "donor"
        out.append(replace(ex, output=d.output, correct=False, id=_irrelevant_id(ex.id), meta=meta))
    return out


def repair_collisions(
    correct: Sequence[Example],
    irrelevant: Sequence[Example],
    *,
    answers: Sequence[str | None] | None = None,
    seed: int = 0,
    same_answer: bool = False,
) -> tuple[list[Example], int]:
    """A released irrelevant set with every collision replaced (position-aligned files).

    A pair collides when its irrelevant response is the correct one (whitespace and case
    ignored: at ``none`` in the yes/no files, the same one-word answer), or, with
    ``same_answer``, states the example's own final answer (a reasoning path about another
    question that ends in the same answer is still irrelevant reasoning, so it is kept by
    default). Its irrelevant response becomes the
    correct response of another question whose answer differs and whose text differs
    (seeded draw; ``meta["irrelevant_method"] = "donor (repaired collision)"``). Pairs
    that do not collide keep the authors' response. ``answers``: the gold answer per
    example (default: ``meta["answer"]``, else the final answer of the correct response).

    Returns:
        The irrelevant examples and the number replaced.

    Example:
        >>> c = [Example(f"q{k}", "", a) for k, a in enumerate(["yes", "no", "yes", "no"])]
        >>> i = [Example(f"q{k}", "", a) for k, a in enumerate(["yes", "yes", "no", "no"])]
        >>> out, n = repair_collisions(c, i, seed=0)
        >>> n, [e.output for e in out], check_irrelevant(c, out).same_response
        (2, ['no', 'yes', 'no', 'yes'], 0)
    """
    cs, irs = list(correct), list(irrelevant)
    if len(cs) != len(irs):
        raise InputError(f"got {len(irs)} irrelevant examples for {len(cs)} correct ones")
    ans = list(answers) if answers is not None else [
        c.meta.get("answer") if c.meta.get("answer") is not None else final_answer(c.output) for c in cs
    ]  # fmt: skip
    keys = [normalize_answer(a) if a is not None else None for a in ans]
    texts = [normalize_text(c.output) for c in cs]
    rng = random.Random(seed)
    out, n = [], 0
    for k, ir in enumerate(irs):
        same = normalize_text(ir.output) == texts[k]
        if same_answer and not same and keys[k]:
            got = ir.meta.get("response_answer")
            same = normalize_answer(got if got is not None else final_answer(ir.output)) == keys[k]
        if not same:
            out.append(ir)
            continue
        pool = [j for j in range(len(cs)) if j != k and texts[j] != texts[k] and keys[j] != keys[k]]
        if not pool:
            logger.warning("record %d: no other question with another answer; collision kept", k)
            out.append(ir)
            continue
        j = rng.choice(pool)
        meta = dict(ir.meta)
        meta.update(
            response_from=cs[j].meta.get("qid", cs[j].sample_id),
            response_answer=ans[j],
            irrelevant_method="donor (repaired collision)",
        )
        out.append(replace(ir, output=cs[j].output, meta=meta))
        n += 1
    return out, n


def _irrelevant_id(rid: str | None) -> str | None:
    if rid is None:
        return None
    return (
        rid[: -len("-correct")] + "-irrelevant" if rid.endswith("-correct") else rid + "-irrelevant"
    )


def shuffle_sentences(examples: Sequence[Example], *, seed: int = 0) -> list[Example]:
    """Irrelevant variants of knowledge texts: every sentence replaced by one of other articles.

    Each example keeps its sentence count; each sentence is drawn at random from the
    sentences of the *other* examples, excluding any sentence that also occurs in the
    example's own text. Sentences are joined with single spaces.

    Args:
        examples: correct examples of one dataset (e.g. wiki articles at one length).
        seed: random seed.

    Returns:
        New examples with ``correct=False`` and ``meta["irrelevant_method"] = "sentences"``.

    Raises:
        InputError: fewer than 2 examples, or no usable sentence in the other examples.

    Example:
        >>> exs = [Example("a", "", "A one. A two."), Example("b", "", "B one. B two. B three.")]
        >>> out = shuffle_sentences(exs, seed=0)
        >>> out[0].output.count("B"), out[1].output.count("A")
        (2, 3)
    """
    exs = list(examples)
    if len(exs) < 2:
        raise InputError(f"need at least 2 examples to shuffle sentences, got {len(exs)}")
    rng = random.Random(seed)
    sents = [split_sentences(e.output) for e in exs]
    pool = [(j, s) for j, ss in enumerate(sents) for s in ss]
    out = []
    for i, ex in enumerate(exs):
        own = {normalize_text(s) for s in sents[i]}
        k = max(1, len(sents[i]))
        picked: list[str] = []
        used: set[str] = set()
        tries = 0
        while len(picked) < k:
            j, s = pool[rng.randrange(len(pool))]
            tries += 1
            ns = normalize_text(s)
            if j != i and ns not in own and (ns not in used or tries > 20 * k + 200):
                picked.append(s)
                used.add(ns)
            elif tries > 50 * k + 1000:
                candidates = [s for j, s in pool if j != i and normalize_text(s) not in own]
                if not candidates:
                    raise InputError("no sentence of another example is usable", record=i)
                picked.append(rng.choice(candidates))
        meta = dict(ex.meta)
        meta["irrelevant_method"] = "sentences"
        meta["response_from"] = "sentences of other articles"
        out.append(
            replace(ex, output=" ".join(picked), correct=False, id=_irrelevant_id(ex.id), meta=meta)
        )
    return out


@dataclass
class IrrelevanceReport:
    """Collision counts of a correct/irrelevant pairing (see :func:`check_irrelevant`).

    Attributes:
        n: number of pairs.
        same_response: irrelevant response identical to the correct one (whitespace and
            case ignored).
        same_final_answer: irrelevant response whose final answer equals the example's
            correct answer (among the ``answered`` pairs).
        answered: pairs where both answers are known (None-answer pairs are not counted).
        own_sentence: irrelevant responses that contain a sentence (>= 5 words) found in
            the example's own correct response and in no other correct response.
        rate: ``same_final_answer / answered`` (None when nothing was answered).
    """

    n: int
    same_response: int
    same_final_answer: int
    answered: int
    own_sentence: int
    rate: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _pair(correct: list[Example], irrelevant: list[Example]) -> list[tuple[int, int]]:
    if len(correct) == len(irrelevant) and all(
        c.prompt == i.prompt for c, i in zip(correct, irrelevant, strict=True)
    ):
        return [(k, k) for k in range(len(correct))]
    by_prompt: dict[str, list[int]] = defaultdict(list)
    for k, c in enumerate(correct):
        by_prompt[c.prompt].append(k)
    pairs = []
    for k, ex in enumerate(irrelevant):
        if not by_prompt.get(ex.prompt):
            raise InputError(
                "irrelevant example has no correct counterpart with the same prompt", record=k
            )
        pairs.append((by_prompt[ex.prompt].pop(0), k))
    return pairs


def check_irrelevant(
    correct: Sequence[Example],
    irrelevant: Sequence[Example],
    *,
    answers: Sequence[str | None] | None = None,
) -> IrrelevanceReport:
    """Count the irrelevant responses that are not really irrelevant.

    Pairs are matched by position when the prompts line up, else by prompt. The correct
    answer of pair k is ``answers[k]`` (aligned with ``correct``), else the correct or
    irrelevant record's ``meta["answer"]``, else the final answer extracted from the
    correct response. The irrelevant response's answer is its ``meta["response_answer"]``
    when a builder recorded it, else the final answer extracted from its text (see
    :func:`~lgkit.data.answers.final_answer`; unclear long texts count as unanswered).

    Args:
        correct: the correct examples.
        irrelevant: their irrelevant variants.
        answers: optional gold answers aligned with ``correct``.

    Returns:
        An :class:`IrrelevanceReport`.

    Example:
        >>> c = [Example("q1", "", "yes"), Example("q2", "", "no"), Example("q3", "", "yes")]
        >>> i = [Example("q1", "", "yes"), Example("q2", "", "yes"), Example("q3", "", "no")]
        >>> r = check_irrelevant(c, i)
        >>> r.n, r.same_response, r.same_final_answer, r.rate
        (3, 1, 1, 0.3333333333333333)
    """
    cs, irs = list(correct), list(irrelevant)
    if answers is not None and len(answers) != len(cs):
        raise InputError(f"got {len(answers)} answers for {len(cs)} correct examples")
    pairs = _pair(cs, irs)
    own_sents = [
        {
            normalize_text(s)
            for s in split_sentences(c.output)
            if len(s.split()) >= _MIN_SENTENCE_WORDS
        }
        for c in cs
    ]
    freq = Counter(s for ss in own_sents for s in ss)
    same_resp = same_ans = answered = own = 0
    for kc, ki in pairs:
        c, ir = cs[kc], irs[ki]
        if normalize_text(c.output) == normalize_text(ir.output):
            same_resp += 1
        gold = answers[kc] if answers is not None else None
        if gold is None:
            gold = c.meta.get("answer", ir.meta.get("answer"))
        if gold is None:
            gold = final_answer(c.output)
        got = ir.meta.get("response_answer")
        if got is None:
            got = final_answer(ir.output)
        g, a = normalize_answer(gold), normalize_answer(got)
        if g and a:
            answered += 1
            same_ans += int(g == a)
        distinctive = {s for s in own_sents[kc] if freq[s] == 1}
        if distinctive:
            irr = {normalize_text(s) for s in split_sentences(ir.output)}
            own += int(bool(distinctive & irr))
    return IrrelevanceReport(
        n=len(pairs),
        same_response=same_resp,
        same_final_answer=same_ans,
        answered=answered,
        own_sentence=own,
        rate=(same_ans / answered) if answered else None,
    )
