"""Training data under the engine's convention: prompt tokens masked, loss on the response.

Each record is tokenised by :func:`lgkit.formats.prompts.encode_example` (the same
prompt/response split the statistics use); labels are -100 on the prompt part, so the
loss is the cross-entropy over the response tokens (token mean over a batch, as the
Trainer computes it). Held-out records become *answer* examples: the question alone,
with the final answer (found by :func:`lgkit.engine.spans.answer_text_span`) as the
whole response.

Example:
    >>> from lgkit.models.tiny import tiny_tokenizer
    >>> from lgkit.formats.records import Example
    >>> rows = encode_records(tiny_tokenizer(), [Example("2+2?", "", "4")], instruct=False, max_length=64)
    >>> rows[0]["labels"][-1] == rows[0]["input_ids"][-1], rows[0]["labels"][0]
    (True, -100)
    >>> ex = Example("2+2?", "", "2+2=4. The final answer is 4")
    >>> row = encode_records(tiny_tokenizer(), [ex], instruct=False, max_length=64, loss_on="answer")[0]
    >>> [t for t in row["labels"] if t != -100] == tiny_tokenizer()("4", add_special_tokens=False)["input_ids"]
    True
    >>> answer_examples([Example("2+2?", "", "2+2=4. The final answer is 4")])[0].output
    '4'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from lgkit.engine.spans import answer_text_span, answer_token_span
from lgkit.errors import InputError
from lgkit.formats.prompts import encode_example
from lgkit.formats.records import Example, read_examples


def load_records(data: str | Path | Sequence[Example], what: str) -> tuple[list[Example], str]:
    """Records from a file (validated, errors name file/record/field) or a list; never empty."""
    if isinstance(data, (str, Path)):
        if not Path(data).is_file():
            raise InputError("no such file", path=data, field=what)
        examples, source = read_examples(data), str(data)
    else:
        examples, source = list(data), f"<{what}>"
    if not examples:
        raise InputError("holds no records", path=source, field=what)
    return examples, source


def encode_records(
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    instruct: bool,
    max_length: int,
    source: str = "<data>",
    loss_on: str = "response",
) -> list[dict[str, list[int]]]:
    """``{"input_ids", "labels"}`` per record; a record left without loss tokens is an error.

    ``loss_on="answer"``: only the final-answer tokens carry the loss (the engine's
    :func:`lgkit.engine.spans.answer_token_span`), the rest of the response stays in context.
    """
    rows = []
    for i, ex in enumerate(examples):
        enc = encode_example(tokenizer, ex, instruct=instruct, max_length=max_length)
        if enc.n_response_tokens == 0 or enc.n_prompt_tokens == 0:
            why = (
                f"response cut away entirely by max_length={max_length} "
                f"(prompt has {enc.n_prompt_tokens} tokens); raise --max-length"
                if enc.n_response_tokens == 0
                else "empty prompt part: the first response token has no context"
            )
            raise InputError(why, path=source, record=i, field="output")
        ids = list(enc.input_ids)
        s0, s1 = enc.n_prompt_tokens, len(ids)
        if loss_on == "answer":
            span = answer_token_span(tokenizer, ex, enc)
            if isinstance(span, str):
                raise InputError(span, path=source, record=i, field="output")
            s0, s1 = span
        labels = [-100] * s0 + ids[s0:s1] + [-100] * (len(ids) - s1)
        rows.append({"input_ids": ids, "labels": labels})
    return rows


class Collator:
    """Pads ``input_ids`` (pad id), ``labels`` (-100) and builds the attention mask (right padding).

    Example:
        >>> b = Collator(0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [5, 6], "labels": [-100, 6]}])
        >>> b["input_ids"].tolist(), b["labels"][1].tolist(), b["attention_mask"][1].tolist()
        ([[5, 6, 7], [5, 6, 0]], [-100, 6, -100], [1, 1, 0])
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        n = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), n), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        for b, r in enumerate(rows):
            k = len(r["input_ids"])
            ids[b, :k] = torch.tensor(r["input_ids"])
            labels[b, :k] = torch.tensor(r["labels"])
            mask[b, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class ListDataset(torch.utils.data.Dataset):
    """A list of encoded rows as a map-style dataset (what the Trainer samples from)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


def answer_examples(examples: Sequence[Example], source: str = "<heldout>") -> list[Example]:
    """Each held-out record as (question, its final answer as the whole response).

    The answer is the record's ``meta["answer"]`` or else the one its response states
    (:func:`lgkit.engine.spans.answer_text_span`); a record with neither is an error.
    """
    out = []
    for i, ex in enumerate(examples):
        gold = ex.meta.get("answer")
        if gold not in (None, ""):
            out.append(replace(ex, output=str(gold).strip(), id=ex.sample_id))
            continue
        where = answer_text_span(ex.output)
        if where is None:
            raise InputError(
                "no final answer found (an 'answer' in meta, or 'The final answer is ...', "
                "'#### ...', \\boxed{...} or a short response)",
                path=source,
                record=i,
                field="output",
            )
        out.append(replace(ex, output=ex.output[where[0] : where[1]], id=ex.sample_id))
    return out
