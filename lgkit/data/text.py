"""Small text utilities: sentence splitting, word counts, cutting at sentence boundaries.

Example:
    >>> split_sentences("One two. Three four! Five?")
    ['One two.', 'Three four!', 'Five?']
    >>> cut_words("A b c. D e f. G h i.", 5)
    'A b c. D e f.'
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["count_words", "cut_words", "normalize_text", "split_sentences", "subseed"]

# A sentence ends at . ! ? (plus closing quotes/brackets) followed by whitespace, or at a
# line break. Decimals ("3.5") and most inline dots are not followed by whitespace.
_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)|\n+")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of ``text`` (ends exclusive).

    Example:
        >>> sentence_spans("Hi there. Bye.")
        [(0, 9), (9, 14)]
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if text[start:end].strip():
            spans.append((start, end))
        start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def split_sentences(text: str) -> list[str]:
    """Split text into sentences (stripped, non-empty); line breaks also end sentences.

    Example:
        >>> split_sentences("It is 3.5 m long. Really.\\nYes")
        ['It is 3.5 m long.', 'Really.', 'Yes']
    """
    return [text[s:e].strip() for s, e in sentence_spans(text)]


def count_words(text: str) -> int:
    """Number of whitespace-separated words.

    Example:
        >>> count_words(" a  b\\nc ")
        3
    """
    return len(text.split())


def cut_words(text: str, n_words: int) -> str:
    """Cut ``text`` at the sentence boundary whose word count is closest to ``n_words``.

    At least one sentence is kept; a text shorter than ``n_words`` comes back whole
    (stripped). Ties go to the shorter cut. The original spacing and line breaks of the
    kept part are preserved.

    Args:
        text: the text to cut.
        n_words: the target number of words (> 0).

    Example:
        >>> cut_words("One two three. Four five six seven. Eight.", 4)
        'One two three.'
        >>> cut_words("One two three. Four five six seven. Eight.", 6)
        'One two three. Four five six seven.'
    """
    if n_words <= 0:
        raise ValueError("n_words must be positive")
    spans = sentence_spans(text)
    if not spans:
        return text.strip()
    best_end, best_diff = spans[0][1], None
    total = 0
    for s, e in spans:
        total += count_words(text[s:e])
        diff = abs(total - n_words)
        if best_diff is None or diff < best_diff:
            best_end, best_diff = e, diff
        if total >= n_words:
            break
    return text[:best_end].strip()


def normalize_text(text: str) -> str:
    """Lowercase and collapse whitespace (for comparing responses and sentences).

    Example:
        >>> normalize_text("  The  Cat\\n")
        'the cat'
    """
    return " ".join(text.lower().split())


def subseed(seed: int, *parts: object) -> int:
    """A stable 32-bit seed derived from ``seed`` and labels (not Python's salted ``hash``).

    Example:
        >>> subseed(0, "gsm8k") == subseed(0, "gsm8k") != subseed(1, "gsm8k")
        True
    """
    h = hashlib.sha256(repr((int(seed), *map(str, parts))).encode()).digest()
    return int.from_bytes(h[:4], "little")
