"""Final answers: extract them from responses and compare them after normalisation.

Extraction is deliberately conservative: it returns ``None`` rather than guess when a
long free-form response (e.g. a GPT-4o detailed CoT without a marker) has no clear
final answer.

Example:
    >>> final_answer("3 + 4 = 7.\\nThe final answer is 7")
    '7'
    >>> same_answer("$1,200.00", "1200")
    True
"""

from __future__ import annotations

import re

__all__ = ["attach_answers", "final_answer", "normalize_answer", "same_answer"]

_FINAL_IS = re.compile(r"final answer is\s*:?\s*(.+)", re.IGNORECASE)
_FINAL_HDR = re.compile(r"final answer\s*:?\s*\**\s*:?\s*\n?\s*(.+)", re.IGNORECASE)
_ANSWER_IS = re.compile(r"(?:correct |the )answer is\s*:?\s*(.+)", re.IGNORECASE)
_HASHES = re.compile(r"^####\s*(.+)$", re.MULTILINE)
_OPTION = re.compile(r"^\(?([a-e])\)(?:\s.*)?$")
_NUMBER = re.compile(r"^[-+]?\d+(?:\.\d+)?$")
_MAX_ANSWER_WORDS = 8


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (balanced braces), or None."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, j = 1, i
    while j < len(text) and depth:
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
        j += 1
    return text[i : j - 1].strip() if depth == 0 else None


def _short(ans: str) -> str | None:
    ans = ans.strip().splitlines()[0].strip() if ans.strip() else ""
    if not ans or len(ans.split()) > _MAX_ANSWER_WORDS:
        return None
    return ans


def final_answer(text: str) -> str | None:
    """The final answer stated in a response, or None when there is no clear one.

    Looks, in order, for the last ``The final answer is X``, the last ``\\boxed{X}``,
    a GSM8K ``#### X`` line, a ``Final Answer: X`` header, ``the answer is X``; a
    short response (at most 8 words, one line) is its own answer (None-CoT responses).

    Args:
        text: the response.

    Returns:
        The raw answer text (not normalised), or None.

    Example:
        >>> final_answer("so $x=\\\\boxed{\\\\frac{1}{2}}$.")
        '\\\\frac{1}{2}'
        >>> final_answer("(D)"), final_answer("A long text without any conclusion at all here.")
        ('(D)', None)
    """
    if not text or not text.strip():
        return None
    for rx in (_FINAL_IS,):
        hits = rx.findall(text)
        if hits and (ans := _short(hits[-1])):
            return ans
    boxed = _last_boxed(text)
    if boxed:
        return boxed
    hits = _HASHES.findall(text)
    if hits and (ans := _short(hits[-1])):
        return ans
    for rx in (_FINAL_HDR, _ANSWER_IS):
        hits = rx.findall(text)
        if hits and (ans := _short(hits[-1])):
            return ans
    stripped = text.strip()
    if "\n" not in stripped and len(stripped.split()) <= 6:
        return stripped
    return None


def normalize_answer(answer: str | None) -> str | None:
    """Canonical form of an answer for comparisons.

    Lowercases, strips LaTeX wrappers (``\\boxed``, ``\\text``, ``$``), markdown emphasis,
    quotes and trailing punctuation; reduces multiple-choice answers to ``(x)``; drops
    thousands separators, currency signs and trailing zeros of numbers.

    Example:
        >>> normalize_answer("**Yes.**"), normalize_answer("(D) 46"), normalize_answer("$102.00")
        ('yes', '(d)', '102')
    """
    if answer is None:
        return None
    s = str(answer).strip()
    inner = _last_boxed(s)
    if inner is not None:
        s = inner
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\$", "$").replace("\\%", "%").replace("\\!", "")
    s = s.strip().strip("*_`\"'\u201c\u201d\u2018\u2019 ").strip()
    s = s.rstrip(".,;:!").strip().strip("*_`\"'\u201c\u201d ").strip()
    s = s.strip("$").strip()
    s = " ".join(s.lower().split())
    m = _OPTION.match(s)
    if m:
        return f"({m.group(1)})"
    num = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    num = num.lstrip("$").rstrip("%").strip()
    for unit in (" dollars", " dollar", " cents", " units"):
        if num.endswith(unit):
            num = num[: -len(unit)].strip()
    if _NUMBER.match(num):
        v = float(num)
        return str(int(v)) if v.is_integer() else repr(v)
    return s


def same_answer(a: str | None, b: str | None) -> bool:
    """Whether two answers are equal after :func:`normalize_answer` (False if either is None).

    Example:
        >>> same_answer("Sentence B", "sentence b."), same_answer("yes", None)
        (True, False)
    """
    na, nb = normalize_answer(a), normalize_answer(b)
    return na is not None and nb is not None and na != "" and na == nb


def attach_answers(examples: list, reference: list) -> int:
    """Give each example the answer of the reference example with the same prompt.

    The released files list the same questions in every CoT variant, and the no-CoT
    file's response is the bare answer: attaching it as ``meta["answer"]`` lets
    ``loss_on="answer"`` find the answer in responses without a final-answer marker
    (e.g. GPT-4o's). Existing answers are kept. Returns how many examples got one.

    Example:
        >>> from lgkit.formats.records import Example
        >>> cot = [Example("Q?", "", "So it is 7 apples.")]
        >>> attach_answers(cot, [Example("Q?", "", "7")]), cot[0].meta["answer"]
        (1, '7')
    """
    by_prompt = {r.prompt: r.output.strip() for r in reference}
    n = 0
    for ex in examples:
        if ex.meta.get("answer") or ex.prompt not in by_prompt:
            continue
        ex.meta["answer"] = by_prompt[ex.prompt]
        n += 1
    return n
