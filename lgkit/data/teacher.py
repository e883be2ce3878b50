"""Detailed CoT from a teacher: a file of responses keyed by id, or a local chat model.

The paper's detailed CoT was written by GPT-4o. lgkit takes either

* a user-supplied file of responses keyed by id (:func:`load_teacher_responses`), or
* responses generated with any local causal LM through transformers' ``model.generate``
  (:func:`generate_detailed`), cached in a JSONL file one line per question and resumed
  from it after an interruption.

Keys: an item's or example's ``meta["source_id"]`` (the original dataset's id), else its
``meta["qid"]``, else a hash of its prompt (``prompt:<hash>``); responses are looked up
by key and then by prompt hash.

Example:
    >>> from lgkit.data.items import Item
    >>> it = Item("2+2?", "4", {"none": "4"}, meta={"source_id": "q1"})
    >>> attach_detailed([it], {"q1": "Two plus two is four.\\nThe final answer is 4"})[0].responses["detailed"][:8]
    'Two plus'
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lgkit.data.items import Item
from lgkit.errors import InputError
from lgkit.formats.records import Example, iter_raw_records, stable_id

logger = logging.getLogger(__name__)

__all__ = [
    "DETAILED_PROMPT",
    "attach_detailed",
    "generate_detailed",
    "load_teacher_responses",
    "teacher_key",
]

#: Prompt sent to a teacher model; ``{prompt}`` is the question.
DETAILED_PROMPT = (
    "{prompt}\n\nAnswer the question above with detailed reasoning: state what is given, "
    "work through every step and explain it, then end with a line "
    '"The final answer is <answer>".'
)
DEFAULT_SYSTEM = "You are a helpful assistant."
_TEXT_FIELDS = ("output", "response", "detailed", "text", "completion")


def _prompt_of(obj: Item | Example) -> str:
    return obj.instruction + ("\n" + obj.input if obj.input else "")


def _prompt_key(prompt: str) -> str:
    return "prompt:" + stable_id(prompt, "", "")


def teacher_key(obj: Item | Example) -> str:
    """The key a teacher response is stored under for this item or example.

    Example:
        >>> teacher_key(Example("q", "", "a", meta={"qid": "d-0001"}))
        'd-0001'
    """
    meta = obj.meta or {}
    for k in ("source_id", "qid"):
        if meta.get(k):
            return str(meta[k])
    return _prompt_key(_prompt_of(obj))


def load_teacher_responses(path: str | os.PathLike) -> dict[str, str]:
    """Read teacher responses: ``{id: text}`` JSON, or a JSON list / JSONL of records.

    Records need ``id`` (or ``qid``/``source_id``) and the text in ``output`` (or
    ``response``/``detailed``/``text``/``completion``); a record with ``instruction``
    is also stored under its prompt hash.

    Raises:
        InputError: naming the file, record and field that is wrong.

    Example:
        >>> import tempfile, os, json
        >>> p = os.path.join(tempfile.mkdtemp(), "t.jsonl")
        >>> _ = open(p, "w").write(json.dumps({"id": "q1", "output": "Because."}) + "\\n")
        >>> load_teacher_responses(p)
        {'q1': 'Because.'}
    """
    p = Path(path)
    if p.suffix == ".json" and p.is_file():
        text = p.read_text(encoding="utf-8")
        if text.lstrip().startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(
                    f"malformed JSON ({e.msg})", path=p, record=f"line {e.lineno}"
                ) from None
            bad = [k for k, v in obj.items() if not isinstance(v, str)]
            if bad:
                raise InputError("values must be strings", path=p, record=bad[0])
            return dict(obj)
    out: dict[str, str] = {}
    for n, rec in iter_raw_records(p):
        if not isinstance(rec, dict):
            raise InputError("expected a JSON object", path=p, record=n)
        key = next(
            (str(rec[k]) for k in ("id", "qid", "source_id") if rec.get(k) not in (None, "")), None
        )
        text = next((rec[k] for k in _TEXT_FIELDS if k in rec), None)
        if not isinstance(text, str):
            raise InputError(
                "missing response text (output/response/detailed)", path=p, record=n, field="output"
            )
        if key is None and "instruction" not in rec:
            raise InputError("record needs an id or an instruction", path=p, record=n, field="id")
        if key is not None:
            out[key] = text
        if isinstance(rec.get("instruction"), str):
            prompt = rec["instruction"] + ("\n" + rec["input"] if rec.get("input") else "")
            out[_prompt_key(prompt)] = text
    return out


def attach_detailed(
    items: Sequence[Item], responses: Mapping[str, str], *, missing: str = "error"
) -> list[Item]:
    """Add the teacher's response as each item's ``detailed`` CoT.

    Args:
        items: the items.
        responses: ``key -> text`` (see :func:`teacher_key`).
        missing: ``"error"`` (default) or ``"drop"`` items without a (non-empty) response.

    Raises:
        InputError: an item without a response when ``missing="error"``.

    Example:
        >>> attach_detailed([Item("q", "a", {"none": "a"})], {}, missing="drop")
        []
    """
    if missing not in ("error", "drop"):
        raise InputError(f"missing must be 'error' or 'drop', got {missing!r}")
    out, dropped = [], 0
    for k, it in enumerate(items):
        text = responses.get(teacher_key(it)) or responses.get(_prompt_key(_prompt_of(it)))
        if not text or not text.strip():
            if missing == "error":
                raise InputError(
                    f"no teacher response for {teacher_key(it)!r}", record=k, field="detailed"
                )
            dropped += 1
            continue
        out.append(
            replace(
                it, responses={**it.responses, "detailed": text}, meta={**it.meta, "teacher": True}
            )
        )
    if dropped:
        logger.warning(
            "attach_detailed: dropped %d of %d items without a teacher response",
            dropped,
            len(items),
        )
    return out


def _read_cache(path: Path) -> dict[str, str]:
    done: dict[str, str] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # an interrupted last line: generated again
        if (
            isinstance(rec, dict)
            and isinstance(rec.get("id"), str)
            and isinstance(rec.get("output"), str)
        ):
            done[rec["id"]] = rec["output"]
    return done


def generate_detailed(
    questions: Sequence[Item | Example],
    model: Any,
    tokenizer: Any = None,
    *,
    cache_path: str | os.PathLike,
    prompt_template: str = DETAILED_PROMPT,
    system: str | None = DEFAULT_SYSTEM,
    max_new_tokens: int = 512,
    batch_size: int = 4,
    do_sample: bool = False,
    model_name: str | None = None,
    **generate_kwargs: Any,
) -> dict[str, str]:
    """Generate detailed CoT responses with a local model, cached and resumable.

    Each question's prompt is ``prompt_template.format(prompt=...)``, wrapped in the
    tokenizer's chat template (with ``system`` when given) when it has one. Finished
    responses are appended to ``cache_path`` (JSONL: ``id``, ``instruction``, ``input``,
    ``output``, ``model``) one batch at a time; a later call skips the cached ids.

    Args:
        questions: items or examples (keys from :func:`teacher_key`).
        model: a causal LM, or a name for :func:`lgkit.models.load_model`.
        tokenizer: its tokenizer (not needed when ``model`` is a name).
        cache_path: the JSONL cache.
        prompt_template: teacher prompt, with ``{prompt}``.
        system: system message (None: none).
        max_new_tokens: generation length limit.
        batch_size: questions per ``generate`` call (left padding).
        do_sample: sample instead of greedy decoding.
        model_name: recorded in the cache (default: the model's ``name_or_path``).
        **generate_kwargs: more ``model.generate`` arguments.

    Returns:
        ``key -> response`` for every question (cached and new).

    Example:
        >>> out = generate_detailed(items, "smollm2-135m-instruct", cache_path="teacher.jsonl")  # doctest: +SKIP
        >>> groups = build_dataset("gsm8k", "gsm8k.jsonl", teacher="teacher.jsonl")  # doctest: +SKIP
    """
    import torch
    from tqdm.auto import tqdm

    if isinstance(model, (str, os.PathLike)):
        from lgkit.models.load import load_model

        lm = load_model(str(model))
        model_name = model_name or str(model)
        model, tokenizer = lm.model, lm.tokenizer
    if tokenizer is None:
        raise InputError("generate_detailed needs the model's tokenizer")
    model_name = model_name or str(
        getattr(getattr(model, "config", None), "name_or_path", "") or "model"
    )
    cache = Path(cache_path)
    cache.parent.mkdir(parents=True, exist_ok=True)
    done = _read_cache(cache)
    todo: list[tuple[str, Item | Example]] = []
    seen = set(done)
    for q in questions:
        key = teacher_key(q)
        if key not in seen:
            todo.append((key, q))
            seen.add(key)
    if todo:
        logger.info("teacher: %d cached, %d to generate with %s", len(done), len(todo), model_name)
    use_chat = bool(getattr(tokenizer, "chat_template", None))

    def render(q: Item | Example) -> str:
        user = prompt_template.format(prompt=_prompt_of(q))
        if not use_chat:
            return user + "\n"
        msgs = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user}
        ]
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    old_side = getattr(tokenizer, "padding_side", "right")
    if (
        getattr(tokenizer, "pad_token_id", None) is None
        and getattr(tokenizer, "eos_token", None) is not None
    ):
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    try:
        tokenizer.padding_side = "left"
        with cache.open("a", encoding="utf-8") as fh:
            for start in tqdm(
                range(0, len(todo), max(1, batch_size)), desc="teacher", disable=not todo
            ):
                batch = todo[start : start + max(1, batch_size)]
                texts = [render(q) for _, q in batch]
                enc = tokenizer(
                    texts, return_tensors="pt", padding=True, add_special_tokens=not use_chat
                )
                enc = {k: v.to(device) for k, v in enc.items()}
                with torch.no_grad():
                    gen = model.generate(
                        **enc,
                        max_new_tokens=max_new_tokens,
                        do_sample=do_sample,
                        pad_token_id=tokenizer.pad_token_id,
                        **generate_kwargs,
                    )
                new = gen[:, enc["input_ids"].shape[1] :]
                for (key, q), ids in zip(batch, new, strict=True):
                    text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                    done[key] = text
                    rec = {
                        "id": key,
                        "instruction": q.instruction,
                        "input": q.input,
                        "output": text,
                        "model": model_name,
                    }
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fh.flush()
    finally:
        tokenizer.padding_side = old_side
    return {teacher_key(q): done[teacher_key(q)] for q in questions}
