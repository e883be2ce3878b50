"""Text from data, shown in a notebook as text: escaped HTML, never Markdown.

Record text (instructions, responses), dataset names and parameter values can hold
anything (a downloaded file may carry ``<script>``, ``<img onerror=...>``, Markdown
fences or ``javascript:`` links). Rendered as Markdown or raw HTML in a notebook, it
would run in the reader's browser and in the HTML that ``lgkit run`` renders with
nbconvert. Everything here goes through :func:`html.escape` inside ``<pre>`` or plain
elements, so it is shown exactly as written.

Example:
    >>> text_html("<b>x</b>\\n```")
    "<pre style='white-space:pre-wrap;margin:.2em 0 .8em 0'>&lt;b&gt;x&lt;/b&gt;\\n```</pre>"
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["note_html", "show_examples", "show_note", "text_html"]

_PRE = "white-space:pre-wrap;margin:.2em 0 .8em 0"


def text_html(text: Any, limit: int | None = None) -> str:
    """``text`` escaped in a ``<pre>`` block (cut at ``limit`` characters, marked with …)."""
    s = str(text)
    if limit is not None and len(s) > limit:
        s = s[:limit] + " …"
    return f"<pre style='{_PRE}'>{html.escape(s)}</pre>"


def note_html(text: Any, *, bold: bool = True) -> str:
    """One escaped line (bold by default).

    Example:
        >>> note_html("a <i>b</i>")
        '<p><b>a &lt;i&gt;b&lt;/i&gt;</b></p>'
    """
    body = html.escape(str(text))
    return f"<p><b>{body}</b></p>" if bold else f"<p>{body}</p>"


def _display(markup: str) -> None:
    from IPython.display import HTML, display

    display(HTML(markup))


def show_note(text: Any, *, bold: bool = True) -> str:
    """Display :func:`note_html` of ``text`` (notebook) and return the HTML."""
    markup = note_html(text, bold=bold)
    _display(markup)
    return markup


def show_examples(
    files: Sequence[Any], families: Iterable[str] | None = None, *, limit: int = 600
) -> list[str]:
    """Display the first example of each family's first dataset, at every variant, as text.

    For each family: the dataset's name, then per data file (CoT level, correct or
    irrelevant) its first record's prompt (first 120 characters) and response (first
    ``limit`` characters), all escaped. Returns the HTML blocks shown.

    Example:
        >>> import tempfile
        >>> from lgkit.data import build_profile
        >>> files = build_profile("smoke", tempfile.mkdtemp(), n_per_variant=2, seed=0)
        >>> blocks = show_examples(files, ["math"])  # doctest: +ELLIPSIS
        <IPython.core.display.HTML object>
        ...
        >>> "<pre" in blocks[1] and "<script" not in "".join(blocks)
        True
    """
    from lgkit import data as lgd

    esc = html.escape
    shown: list[str] = []
    for fam in lgd.FAMILIES if families is None else families:
        fam_files = lgd.select(list(files), family=fam)
        if not fam_files:
            continue
        first = fam_files[0].dataset
        shown.append(f"<p><b>{esc(str(fam))}</b> · <code>{esc(str(first))}</code></p>")
        _display(shown[-1])
        for f in lgd.select(fam_files, dataset=first):
            ex = f.read(limit=1)[0]
            label = "correct" if f.correct else "irrelevant"
            prompt = ex.prompt[:120]
            block = (
                f"<p><i>{esc(str(f.cot))} · {label}</i> — prompt: <code>{esc(prompt)}</code></p>"
                + text_html(ex.output, limit)
            )
            shown.append(block)
            _display(block)
    return shown
