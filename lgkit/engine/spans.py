"""Which tokens carry the loss: the whole response (the paper) or the final answer only.

The answer text comes from the record (``meta["answer"]``) or, failing that, from the
response by the released files' final-answer conventions ("The final answer is …",
"So the answer is …", "#### …", ``\\boxed{…}``; :func:`lgkit.data.answers.final_answer`);
its last occurrence in the response is mapped to response tokens through the
tokenizer's character offsets. A record whose span cannot be found gets a reason
instead (a failure row, never a silent skip).

Example:
    >>> answer_text_span("So 2+2=4.\\nThe final answer is 4")
    (30, 31)
"""

from __future__ import annotations

import re
from typing import Any

from lgkit.data.answers import final_answer
from lgkit.formats.prompts import Encoded
from lgkit.formats.records import Example

Span = tuple[int, int]


def answer_text_span(output: str, answer: str | None = None) -> Span | None:
    """Character span ``[start, end)`` of the final answer in a response, or None.

    ``answer``: the record's answer text (else found by the final-answer conventions);
    its last whole-word occurrence, ignoring case, is taken.

    Example:
        >>> answer_text_span("It is 12 apples. #### 12", "12")
        (22, 24)
        >>> answer_text_span("No conclusion is drawn anywhere in this long response text.") is None
        True
        >>> answer_text_span("We cannot say, so: No.", "no")
        (19, 21)
    """
    text = answer if answer not in (None, "") else final_answer(output)
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    # the last whole-word occurrence, ignoring case: "no" is not found inside "cannot"
    rx = re.compile(
        rf"(?<!\w){re.escape(text)}(?!\w)"
        if text[0].isalnum() or text[-1].isalnum()
        else re.escape(text),
        re.IGNORECASE,
    )
    hits = list(rx.finditer(output))
    return (hits[-1].start(), hits[-1].end()) if hits else None


def _response_offsets(tokenizer: Any, output: str, resp_ids: list[int]) -> list[Span] | str:
    try:
        enc = tokenizer(output, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError) as e:
        return f"tokenizer gives no character offsets ({type(e).__name__})"
    ids, offs = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    if ids[: len(resp_ids)] != resp_ids:
        return "response tokens differ from the response tokenised alone (compat tokenisation)"
    return offs[: len(resp_ids)]


def answer_token_span(tokenizer: Any, example: Example, enc: Encoded) -> Span | str:
    """Token positions ``[start, end)`` of the final answer in ``enc``, or the reason why not.

    Example:
        >>> from lgkit.models import load_model
        >>> from lgkit.formats.prompts import encode_example
        >>> tok = load_model("tiny-random-llama").tokenizer
        >>> ex = Example("2+2?", "", "2+2=4.\\nThe final answer is 4")
        >>> enc = encode_example(tok, ex, instruct=False)
        >>> s0, s1 = answer_token_span(tok, ex, enc)
        >>> tok.decode(enc.input_ids[s0:s1]).strip()
        '4'
    """
    where = answer_text_span(example.output, example.meta.get("answer"))
    if where is None:
        if example.meta.get("answer"):
            return "answer span not found: the response does not contain the record's answer"
        return "answer span not found: no answer field and no final-answer marker in the response"
    p = enc.n_prompt_tokens
    offs = _response_offsets(tokenizer, example.output, enc.input_ids[p:])
    if isinstance(offs, str):
        return f"answer span not found: {offs}"
    c0, c1 = where
    hit = [k for k, (a, b) in enumerate(offs) if a < c1 and b > c0]
    if not hit or offs[hit[-1]][1] < c1 and enc.truncated:
        why = "(partly) cut away by max_length" if enc.truncated else "not on response tokens"
        return f"answer span not found: the answer is {why}"
    return p + hit[0], p + hit[-1] + 1
