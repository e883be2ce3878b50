"""Items (one question with its responses at each CoT level) and their expansion into variants.

Every source (the authors' release, the original datasets, the synthetic set) is first
turned into :class:`Item` objects; :func:`make_variants` then writes the example
variants ``(dataset, cot, correct)`` with stable ids and complete metadata, building the
irrelevant variants with one donor assignment shared by all CoT levels (reasoning) or by
sentence replacement (wiki).

Ids: the question id ``qid`` is ``<dataset>-<index:04d>`` (or the item's own); a record
id is ``<qid>-<cot>-correct`` or ``<qid>-<cot>-irrelevant``, unique across the files of a
run, and ``meta["qid"]`` links the variants of one question.

Example:
    >>> items = [Item(f"What is {i} + 1?", str(i + 1), {"none": str(i + 1)}) for i in range(3)]
    >>> groups = make_variants(items, "toy", seed=0, family="math")
    >>> sorted(groups)
    [('toy', 'none', False), ('toy', 'none', True)]
    >>> groups[("toy", "none", True)][0].id
    'toy-0000-none-correct'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lgkit.data.answers import normalize_answer
from lgkit.data.irrelevant import assign_donors, make_irrelevant, shuffle_sentences
from lgkit.data.text import normalize_text, subseed
from lgkit.errors import InputError
from lgkit.formats.records import Example
from lgkit.schema import COT_LEVELS, TASK_FAMILIES

__all__ = ["FAMILIES", "Groups", "Item", "family_of", "group_key", "make_variants", "variant_name"]

FAMILIES = TASK_FAMILIES

#: ``(dataset, cot, correct) -> examples``
Groups = dict[tuple[str, str, bool], list[Example]]

_FAMILY_BY_NAME = {
    "gsm8k": "math",
    "aqua": "math",
    "synth_arith": "math",
    "strategyqa": "commonsense",
    "ecqa": "commonsense",
    "creak": "commonsense",
    "sensemaking": "commonsense",
    "synth_commonsense": "commonsense",
}


def family_of(dataset: str) -> str:
    """The task family of a dataset name: ``math``, ``commonsense`` or ``wiki``.

    Example:
        >>> family_of("gsm8k"), family_of("math_geometry"), family_of("synth_wiki_popular_short")
        ('math', 'math', 'wiki')
    """
    name = dataset.lower()
    if name in _FAMILY_BY_NAME:
        return _FAMILY_BY_NAME[name]
    if name.startswith(("math_", "math")):
        return "math"
    if "wiki" in name:
        return "wiki"
    raise InputError(
        f"unknown dataset {dataset!r}: cannot tell its family (math, commonsense, wiki)"
    )


def variant_name(dataset: str, cot: str, correct: bool) -> str:
    """File stem of a variant: ``<dataset>__<cot>__<correct|irrelevant>``.

    Example:
        >>> variant_name("gsm8k", "none", False)
        'gsm8k__none__irrelevant'
    """
    return f"{dataset}__{cot}__{'correct' if correct else 'irrelevant'}"


def group_key(ex: Example) -> tuple[str, str, bool]:
    """``(dataset, cot, correct)`` of an example (missing values become ``"?"``/True).

    Example:
        >>> group_key(Example("q", "", "a", dataset="d", cot="none", correct=False))
        ('d', 'none', False)
    """
    return (ex.dataset or "?", ex.cot or "?", True if ex.correct is None else ex.correct)


@dataclass
class Item:
    """One question with its responses at several CoT levels.

    Attributes:
        instruction: the question (the prompt's instruction).
        answer: the gold final answer (None for knowledge texts).
        responses: ``cot -> response`` for the levels available (none/simplified/detailed).
        input: optional extra prompt input.
        meta: metadata copied to every variant (e.g. MATH level, wiki popularity).
    """

    instruction: str
    answer: str | None
    responses: dict[str, str]
    input: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def _cots_of(items: Sequence[Item], cots: Iterable[str] | None) -> list[str]:
    if cots is not None:
        wanted = list(cots)
        bad = [c for c in wanted if c not in COT_LEVELS]
        if bad:
            raise InputError(f"unknown CoT level(s) {bad}; expected {COT_LEVELS}")
        for k, it in enumerate(items):
            for c in wanted:
                if c not in it.responses:
                    raise InputError(f"item has no {c!r} response", record=k, field="responses")
        return wanted
    common = set(COT_LEVELS)
    for it in items:
        common &= set(it.responses)
    return [c for c in COT_LEVELS if c in common]


def make_variants(
    items: Sequence[Item],
    dataset: str,
    *,
    seed: int,
    family: str | None = None,
    cots: Iterable[str] | None = None,
    irrelevant: bool = True,
    synthetic: bool = False,
    source: str | None = None,
    meta: dict[str, Any] | None = None,
    strict: bool = True,
) -> Groups:
    """Expand items into example variants ``(dataset, cot, correct)``.

    Args:
        items: the questions, in a stable order (index = position in the qid).
        dataset: dataset name written into every record.
        seed: seed of the irrelevant construction (one donor permutation per dataset,
            shared by all CoT levels).
        family: ``math``, ``commonsense`` or ``wiki`` (default: :func:`family_of`).
        cots: CoT levels to write (default: those every item has).
        irrelevant: also build the irrelevant variants.
        synthetic: mark records as synthetic (``meta["synthetic"]``).
        source: provenance written into ``meta["source"]``.
        meta: extra metadata for every record.
        strict: see :func:`~lgkit.data.irrelevant.assign_donors`.

    Returns:
        :data:`Groups`, correct variants first.

    Example:
        >>> items = [Item(f"Q{i}?", "yes" if i % 2 else "no", {"none": "yes" if i % 2 else "no"}) for i in range(4)]
        >>> g = make_variants(items, "toy", seed=1, family="commonsense")
        >>> [e.output for e in g[("toy", "none", False)]]
        ['yes', 'no', 'yes', 'no']
    """
    items = list(items)
    if not items:
        raise InputError(f"no items for dataset {dataset!r}")
    family = family or family_of(dataset)
    levels = _cots_of(items, cots)
    if not levels:
        raise InputError(f"dataset {dataset!r}: no CoT level is present in every item")
    base_meta = {"family": family, "synthetic": bool(synthetic)}
    if source:
        base_meta["source"] = source
    base_meta.update(meta or {})
    groups: Groups = {}
    qids = []
    for k, it in enumerate(items):
        qids.append(str(it.meta.get("qid") or f"{dataset}-{k:04d}"))
    if len(set(qids)) != len(qids):
        raise InputError(f"dataset {dataset!r}: duplicate question ids")
    for cot in levels:
        exs = []
        for k, it in enumerate(items):
            m = {**base_meta, **it.meta, "qid": qids[k], "index": k}
            if it.answer is not None:
                m["answer"] = it.answer
                m["response_answer"] = it.answer
            exs.append(
                Example(
                    instruction=it.instruction,
                    input=it.input,
                    output=it.responses[cot],
                    id=f"{qids[k]}-{cot}-correct",
                    dataset=dataset,
                    cot=cot,
                    correct=True,
                    meta=m,
                )
            )
        groups[(dataset, cot, True)] = exs
    if not irrelevant:
        return groups
    if family == "wiki" or all(it.answer is None for it in items):
        for cot in levels:
            groups[(dataset, cot, False)] = shuffle_sentences(
                groups[(dataset, cot, True)], seed=subseed(seed, dataset, cot, "sentences")
            )
        return groups
    keys = [
        ("answer", normalize_answer(it.answer))
        if it.answer is not None
        else ("response", normalize_text(next(iter(it.responses.values()))))
        for it in items
    ]
    donors = assign_donors(keys, subseed(seed, dataset, "donors"), strict=strict)
    answers = [it.answer for it in items]
    for cot in levels:
        groups[(dataset, cot, False)] = make_irrelevant(
            groups[(dataset, cot, True)], answers=answers, donors=donors
        )
    return groups
