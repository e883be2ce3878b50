"""Builders from the original datasets, in their original schemas.

Each ``*_items`` function turns records of one source (dicts in the source's own
schema) into :class:`~lgkit.data.items.Item` objects with the paper's CoT levels:

* **None CoT**: the final answer only;
* **Simplified CoT**: the dataset's human rationale + ``"\\nThe final answer is X"``
  (MATH keeps its original solution, which already ends in ``\\boxed{X}``, as released);
* **Detailed CoT**: from a teacher, attached with :func:`lgkit.data.teacher.attach_detailed`
  (a file of responses keyed by id, or responses generated with a local chat model).

:func:`build_dataset` is the one-call route: it reads the source with
``datasets.load_dataset`` (a hub id for users with a network, or a local JSON/JSONL/CSV/
Parquet file in the source's schema), samples ``n`` questions, attaches a teacher and
returns every variant (correct and collision-free irrelevant).

Sources and schemas (fields used):

================  ======================================================  =====================
name              fields                                                  default hub source
================  ======================================================  =====================
``gsm8k``         question, answer (``... #### 42``)                      openai/gsm8k (main)
``aqua``          question, options (``["A)21", ...]``), rationale,       deepmind/aqua_rat (raw)
                  correct
``strategyqa``    qid, question, answer (bool), facts (list)              ChilleD/StrategyQA
``ecqa``          q_no, q_text, q_op1..q_op5, q_ans, taskB                tasksource/ecqa
``creak``         ex_id, sentence, explanation, label (true/false)        CREAK train.json (GitHub)
``sensemaking``   Correct Statement, Incorrect Statement, Right Reason1   ComVE ``ALL data/train.csv``
                  (or id, sent0, sent1, label [, reason])
``math``          problem, level (``Level 3``), type, solution            EleutherAI/hendrycks_math
``wiki``          title, text                                             wikimedia/wikipedia
================  ======================================================  =====================

Example:
    >>> items = gsm8k_items([{"question": "2+3?", "answer": "2+3=<<2+3=5>>5\\n#### 5"}])
    >>> items[0].responses["simplified"]
    '2+3=5\\nThe final answer is 5'
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lgkit.data.answers import final_answer
from lgkit.data.items import Groups, Item, make_variants
from lgkit.data.sources import HUB_SOURCES, load_source
from lgkit.data.text import count_words, cut_words, subseed
from lgkit.errors import InputError
from lgkit.formats.records import stable_id

logger = logging.getLogger(__name__)

__all__ = [
    "BUILDERS",
    "HUB_SOURCES",
    "aqua_items",
    "build_dataset",
    "creak_items",
    "ecqa_items",
    "gsm8k_items",
    "load_source",
    "math_items",
    "sensemaking_items",
    "strategyqa_items",
    "wiki_items",
]

FINAL = "\nThe final answer is {}"


def _req(rec: Mapping[str, Any], key: str, k: int, where: str) -> Any:
    if key not in rec or rec[key] is None:
        raise InputError(f"{where} record lacks field {key!r}", record=k, field=key)
    return rec[key]


def _src_id(rec: Mapping[str, Any], key: str | None, text: str) -> str:
    if key and rec.get(key) not in (None, ""):
        return str(rec[key])
    return stable_id(text, "", "")


def _clean_num(s: str) -> str:
    return s.strip().replace(",", "").rstrip(".")


def gsm8k_items(records: Iterable[Mapping[str, Any]]) -> list[Item]:
    """GSM8K (``question``, ``answer`` = rationale lines + ``#### 42``).

    Calculator annotations ``<<2*3=6>>`` are removed; the rationale lines are joined
    with spaces.

    Example:
        >>> it = gsm8k_items([{"question": "q", "answer": "a=<<1+1=2>>2\\nb\\n#### 1,200"}])[0]
        >>> it.answer, it.responses["none"], it.responses["simplified"]
        ('1200', '1200', 'a=2 b\\nThe final answer is 1200')
    """
    out = []
    for k, r in enumerate(records):
        q, a = str(_req(r, "question", k, "gsm8k")), str(_req(r, "answer", k, "gsm8k"))
        if "####" not in a:
            raise InputError("gsm8k answer lacks '#### <final answer>'", record=k, field="answer")
        rationale, final = a.rsplit("####", 1)
        final = _clean_num(final)
        rationale = re.sub(r"<<[^>]*>>", "", rationale)
        rationale = " ".join(
            line.strip() for line in rationale.strip().splitlines() if line.strip()
        )
        out.append(
            Item(
                q.strip(),
                final,
                {"none": final, "simplified": rationale + FINAL.format(final)},
                meta={"source": "gsm8k", "source_id": _src_id(r, None, q)},
            )
        )
    return out


_OPT = re.compile(r"^\s*\(?([A-Ea-e])\s*\)\s*(.*)$")


def aqua_items(records: Iterable[Mapping[str, Any]]) -> list[Item]:
    """AQuA-RAT (``question``, ``options`` like ``["A)21", ...]``, ``rationale``, ``correct``).

    The instruction lists the options as ``(A) 21``; answers are ``(A)``.

    Example:
        >>> it = aqua_items([{"question": "1+1?", "options": ["A)1", "B)2"], "rationale": "1+1=2", "correct": "B"}])[0]
        >>> it.instruction.splitlines()[-1], it.responses["simplified"]
        ('(B) 2', '1+1=2\\nThe final answer is (B)')
    """
    out = []
    for k, r in enumerate(records):
        q = str(_req(r, "question", k, "aqua")).strip()
        opts = _req(r, "options", k, "aqua")
        if isinstance(opts, str):
            opts = [o for o in re.split(r"\s*(?=\b[A-E]\))", opts) if o.strip()]
        lines = []
        for o in opts:
            m = _OPT.match(str(o))
            if not m:
                raise InputError(f"cannot parse option {o!r}", record=k, field="options")
            lines.append(f"({m.group(1).upper()}) {m.group(2).strip()}")
        corr = str(_req(r, "correct", k, "aqua")).strip().strip("()").upper()
        ans = f"({corr})"
        rationale = str(_req(r, "rationale", k, "aqua")).strip()
        out.append(
            Item(
                q + "\nOptions:\n" + "\n".join(lines),
                ans,
                {"none": ans, "simplified": rationale + FINAL.format(ans)},
                meta={"source": "aqua_rat", "source_id": _src_id(r, None, q)},
            )
        )
    return out


def _yes_no(value: Any, k: int, field: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    s = str(value).strip().lower()
    if s in ("true", "yes", "1"):
        return "yes"
    if s in ("false", "no", "0"):
        return "no"
    raise InputError(f"expected a yes/no or true/false label, got {value!r}", record=k, field=field)


def strategyqa_items(records: Iterable[Mapping[str, Any]]) -> list[Item]:
    """StrategyQA (``qid``, ``question``, ``answer`` bool, ``facts`` list or text).

    Simplified CoT = the facts joined with spaces.

    Example:
        >>> it = strategyqa_items([{"qid": "x", "question": "Q?", "answer": False, "facts": ["A.", "B."]}])[0]
        >>> it.responses["simplified"]
        'A. B.\\nThe final answer is no'
    """
    out = []
    for k, r in enumerate(records):
        q = str(_req(r, "question", k, "strategyqa")).strip()
        ans = _yes_no(_req(r, "answer", k, "strategyqa"), k, "answer")
        facts = _req(r, "facts", k, "strategyqa")
        rationale = (
            " ".join(str(f).strip() for f in facts)
            if isinstance(facts, (list, tuple))
            else str(facts).strip()
        )
        out.append(
            Item(
                q,
                ans,
                {"none": ans, "simplified": rationale + FINAL.format(ans)},
                meta={"source": "strategyqa", "source_id": _src_id(r, "qid", q)},
            )
        )
    return out


def ecqa_items(records: Iterable[Mapping[str, Any]]) -> list[Item]:
    """ECQA (``q_no``, ``q_text``, ``q_op1``..``q_op5``, ``q_ans``, ``taskB`` free-flow explanation).

    Example:
        >>> r = {"q_no": "1", "q_text": "Q?", "q_op1": "a", "q_op2": "b", "q_ans": "b", "taskB": "Because."}
        >>> it = ecqa_items([r])[0]
        >>> it.instruction, it.answer
        ('Q?\\nOptions:\\n- a\\n- b', 'b')
    """
    out = []
    for k, r in enumerate(records):
        q = str(_req(r, "q_text", k, "ecqa")).strip()
        opts = [
            str(r[f"q_op{i}"]).strip() for i in range(1, 6) if r.get(f"q_op{i}") not in (None, "")
        ]
        ans = str(_req(r, "q_ans", k, "ecqa")).strip()
        if ans not in opts:
            raise InputError(f"answer {ans!r} is not one of the options", record=k, field="q_ans")
        expl = str(_req(r, "taskB", k, "ecqa")).strip()
        out.append(
            Item(
                q + "\nOptions:\n" + "\n".join(f"- {o}" for o in opts),
                ans,
                {"none": ans, "simplified": expl + FINAL.format(ans)},
                meta={"source": "ecqa", "source_id": _src_id(r, "q_no", q)},
            )
        )
    return out


def creak_items(records: Iterable[Mapping[str, Any]]) -> list[Item]:
    """CREAK (``ex_id``, ``sentence``, ``explanation``, ``label`` true/false, ``entity``).

    Example:
        >>> it = creak_items([{"ex_id": "t1", "sentence": "Paris is in France.", "explanation": "It is.", "label": "true"}])[0]
        >>> it.instruction.splitlines()[1], it.answer
        ('"Paris is in France."', 'yes')
    """
    out = []
    for k, r in enumerate(records):
        s = str(_req(r, "sentence", k, "creak")).strip()
        ans = _yes_no(_req(r, "label", k, "creak"), k, "label")
        expl = str(_req(r, "explanation", k, "creak")).strip()
        instr = f'Is the following a verifiable fact?\n"{s}"\nOptions:\n- yes\n- no'
        meta = {"source": "creak", "source_id": _src_id(r, "ex_id", s)}
        if r.get("entity"):
            meta["entity"] = str(r["entity"])
        out.append(
            Item(instr, ans, {"none": ans, "simplified": expl + FINAL.format(ans)}, meta=meta)
        )
    return out


def sensemaking_items(records: Iterable[Mapping[str, Any]], *, seed: int = 0) -> list[Item]:
    """ComVE / Sen-Making (SemEval-2020 task 4): which of two sentences does not make sense.

    Two schemas: the combined ``ALL data`` CSV (``Correct Statement``, ``Incorrect
    Statement``, ``Right Reason1``...; the order of A/B is drawn per record from
    ``seed``), or subtask A joined with its answers (``id``, ``sent0``, ``sent1``,
    ``label`` = index of the nonsensical sentence, plus ``reason``/``Right Reason1``).

    Example:
        >>> r = {"id": "1", "sent0": "He drinks milk.", "sent1": "He drinks apple.", "label": 1, "reason": "Apples are eaten."}
        >>> it = sensemaking_items([r])[0]
        >>> it.answer, it.responses["simplified"]
        ('Sentence B', 'Apples are eaten.\\nThe final answer is Sentence B')
    """
    out = []
    for k, r in enumerate(records):
        if "Correct Statement" in r:
            good = str(_req(r, "Correct Statement", k, "sensemaking")).strip()
            bad = str(_req(r, "Incorrect Statement", k, "sensemaking")).strip()
            reason = str(_req(r, "Right Reason1", k, "sensemaking")).strip()
            bad_first = random.Random(subseed(seed, "sensemaking", good, bad)).random() < 0.5
            a, b = (bad, good) if bad_first else (good, bad)
            label = 0 if bad_first else 1
            sid = _src_id(r, "id", good + "|" + bad)
        else:
            a = str(_req(r, "sent0", k, "sensemaking")).strip()
            b = str(_req(r, "sent1", k, "sensemaking")).strip()
            try:
                label = int(_req(r, "label", k, "sensemaking"))
            except (TypeError, ValueError):
                raise InputError("label must be 0 or 1", record=k, field="label") from None
            if label not in (0, 1):
                raise InputError("label must be 0 or 1", record=k, field="label")
            reason = next(
                (
                    str(r[f]).strip()
                    for f in ("reason", "explanation", "Right Reason1", "right_reason1")
                    if r.get(f)
                ),
                None,
            )
            if reason is None:
                raise InputError(
                    "record lacks a reason (reason/explanation/Right Reason1)",
                    record=k,
                    field="reason",
                )
            sid = _src_id(r, "id", a + "|" + b)
        ans = "Sentence A" if label == 0 else "Sentence B"
        instr = (
            "Which of the following two sentences does not make sense?\nOptions:\n"
            f'- Sentence A: "{a}"\n- Sentence B: "{b}"'
        )
        out.append(
            Item(
                instr,
                ans,
                {"none": ans, "simplified": reason + FINAL.format(ans)},
                meta={"source": "comve", "source_id": sid},
            )
        )
    return out


_SUBJECT_NAMES = {
    "algebra": "algebra",
    "counting & probability": "counting_probability",
    "counting_and_probability": "counting_probability",
    "counting_probability": "counting_probability",
    "geometry": "geometry",
    "intermediate algebra": "intermediate_algebra",
    "intermediate_algebra": "intermediate_algebra",
    "number theory": "number_theory",
    "number_theory": "number_theory",
    "prealgebra": "prealgebra",
    "precalculus": "precalculus",
}


def _subject(t: str) -> str:
    key = t.strip().lower()
    return _SUBJECT_NAMES.get(key, key.replace(" & ", "_").replace(" ", "_"))


def math_items(
    records: Iterable[Mapping[str, Any]],
    *,
    subjects: Sequence[str] | None = None,
    levels: Sequence[int] | None = None,
) -> list[Item]:
    """MATH (``problem``, ``level`` e.g. ``Level 3``, ``type`` e.g. ``Counting & Probability``, ``solution``).

    Keeps ``meta["subject"]`` (``algebra``, ``counting_probability``, ``geometry``, ...)
    and ``meta["level"]`` (1-5, None for ``Level ?``). The answer is the solution's last
    ``\\boxed{}``; records without one are skipped (logged).

    Args:
        records: MATH records.
        subjects: keep only these subjects (lgkit names).
        levels: keep only these levels.

    Example:
        >>> r = {"problem": "1+1?", "level": "Level 1", "type": "Algebra", "solution": "$1+1=\\\\boxed{2}$"}
        >>> it = math_items([r])[0]
        >>> it.answer, it.meta["level"], it.meta["subject"]
        ('2', 1, 'algebra')
    """
    out, skipped = [], 0
    for k, r in enumerate(records):
        problem = str(_req(r, "problem", k, "math")).strip()
        sol = str(_req(r, "solution", k, "math")).strip()
        subj = _subject(str(r.get("type") or r.get("subject") or "unknown"))
        m = re.search(r"(\d)", str(r.get("level", "")))
        level = int(m.group(1)) if m else None
        if subjects is not None and subj not in subjects:
            continue
        if levels is not None and level not in levels:
            continue
        ans = final_answer(sol) if "\\boxed" in sol or "\\fbox" in sol else None
        if not ans:
            skipped += 1
            continue
        out.append(
            Item(
                problem,
                ans,
                {"none": ans, "simplified": sol},
                meta={
                    "source": "math",
                    "subject": subj,
                    "level": level,
                    "source_id": _src_id(r, "unique_id", problem),
                },
            )
        )
    if skipped:
        logger.info("math: skipped %d records without a \\boxed{} answer", skipped)
    return out


def wiki_items(
    records: Iterable[Mapping[str, Any]],
    *,
    popularity: str,
    words: int,
    titles: Iterable[str] | None = None,
    min_words: int = 0,
) -> list[Item]:
    """Wikipedia articles (``title``, ``text``) as "Tell me about X." items cut to ``words``.

    The text is cut at the sentence boundary closest to ``words`` words
    (:func:`~lgkit.data.text.cut_words`).

    Args:
        records: articles.
        popularity: ``popular`` or ``long_tail`` (how the articles were chosen, e.g. by page views).
        words: target length in words (e.g. 100, 500, 1000).
        titles: keep only these titles (in this order when given).
        min_words: skip articles shorter than this many words.

    Example:
        >>> it = wiki_items([{"title": "Cat", "text": "Cats purr. Cats sleep a lot. They hunt."}], popularity="popular", words=2)[0]
        >>> it.instruction, it.responses["none"], it.meta["length"]
        ('Tell me about Cat.', 'Cats purr.', 2)
    """
    if popularity not in ("popular", "long_tail"):
        raise InputError(f"popularity must be 'popular' or 'long_tail', got {popularity!r}")
    recs = list(records)
    if titles is not None:
        by_title = {str(r.get("title")): r for r in recs}
        recs = [by_title[t] for t in titles if t in by_title]
    out = []
    for k, r in enumerate(recs):
        title = str(_req(r, "title", k, "wiki")).strip()
        text = str(_req(r, "text", k, "wiki")).strip()
        if count_words(text) < max(1, min_words):
            continue
        cut = cut_words(text, words)
        out.append(
            Item(
                f"Tell me about {title}.",
                None,
                {"none": cut},
                meta={
                    "source": "wikipedia",
                    "title": title,
                    "popularity": popularity,
                    "length": words,
                    "words": words,
                    "n_words": count_words(cut),
                    "variant": f"{popularity}_wikipedia_{words}",
                    "source_id": _src_id(r, "id", title),
                },
            )
        )
    return out


#: name -> records-to-items function
BUILDERS: dict[str, Callable[..., list[Item]]] = {
    "gsm8k": gsm8k_items,
    "aqua": aqua_items,
    "strategyqa": strategyqa_items,
    "ecqa": ecqa_items,
    "creak": creak_items,
    "sensemaking": sensemaking_items,
    "math": math_items,
    "wiki": wiki_items,
}


def _sample(items: list[Item], n: int | None, seed: int, label: str) -> list[Item]:
    if n is None or n <= 0 or n >= len(items):
        return items
    idx = sorted(random.Random(subseed(seed, label, "sample")).sample(range(len(items)), n))
    return [items[i] for i in idx]


def build_dataset(
    name: str,
    source: str | os.PathLike | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    *,
    n: int | None = None,
    seed: int = 0,
    split: str = "train",
    teacher: str | os.PathLike | Mapping[str, str] | None = None,
    cots: Sequence[str] | None = None,
    irrelevant: bool = True,
    cache_dir: str | os.PathLike | None = None,
    popularity: str = "popular",
    lengths: Sequence[int] = (100, 500, 1000),
    titles: Iterable[str] | None = None,
    subjects: Sequence[str] | None = None,
    levels: Sequence[int] | None = None,
    **load_kwargs: Any,
) -> Groups:
    """Build every variant of one original dataset.

    Args:
        name: ``gsm8k``, ``aqua``, ``strategyqa``, ``ecqa``, ``creak``, ``sensemaking``,
            ``math`` or ``wiki``.
        source: records (a list of dicts), a local file, a hub id, or ``load_dataset``
            arguments (see :func:`load_source`); default: :data:`HUB_SOURCES`.
        n: number of questions to sample (seeded; default all).
        seed: sampling and irrelevant-assignment seed.
        split: split to read.
        teacher: detailed-CoT responses (a file or a mapping keyed by id; see
            :func:`lgkit.data.teacher.load_teacher_responses`); without it no detailed
            variant is built.
        cots: CoT levels to write (default: all available).
        irrelevant: also build irrelevant variants.
        cache_dir: ``datasets`` cache folder.
        popularity: wiki only: ``popular`` or ``long_tail``.
        lengths: wiki only: target lengths in words (one dataset per length).
        titles: wiki only: the article titles to keep.
        subjects: MATH only: subjects to keep (one dataset ``math_<subject>`` each).
        levels: MATH only: levels to keep.
        **load_kwargs: passed to ``datasets.load_dataset``.

    Returns:
        :data:`~lgkit.data.items.Groups`: ``(dataset, cot, correct) -> examples``.

    Example:
        >>> recs = [{"question": f"{i}+1?", "answer": f"{i}+1={i + 1}\\n#### {i + 1}"} for i in range(4)]
        >>> g = build_dataset("gsm8k", recs, n=3, seed=0)
        >>> sorted((k[1], k[2]) for k in g)[:2], len(g[("gsm8k", "none", True)])
        ([('none', False), ('none', True)], 3)
    """
    from lgkit.data.teacher import attach_detailed, load_teacher_responses

    if name not in BUILDERS:
        raise InputError(f"unknown source {name!r}; known: {sorted(BUILDERS)}")
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        records = [dict(r) for r in source]
    else:
        records = load_source(name, source, split=split, cache_dir=cache_dir, **load_kwargs)
    responses = None
    if teacher is not None:
        responses = teacher if isinstance(teacher, Mapping) else load_teacher_responses(teacher)

    def finish(items: list[Item], dataset: str) -> Groups:
        items = _sample(items, n, seed, dataset)
        if responses is not None:
            items = attach_detailed(items, responses)
        return make_variants(
            items, dataset, seed=seed, cots=cots, irrelevant=irrelevant, source=name
        )

    groups: Groups = {}
    if name == "wiki":
        for words in lengths:
            items = wiki_items(records, popularity=popularity, words=int(words), titles=titles)
            groups.update(finish(items, f"wiki_{popularity}_{int(words)}"))
        return groups
    if name == "math":
        items = math_items(records, subjects=subjects, levels=levels)
        by_subject: dict[str, list[Item]] = defaultdict(list)
        for it in items:
            by_subject[it.meta["subject"]].append(it)
        for subj, its in sorted(by_subject.items()):
            groups.update(finish(its, f"math_{subj}"))
        return groups
    fn = BUILDERS[name]
    items = fn(records, seed=seed) if name == "sensemaking" else fn(records)
    return finish(items, name)
