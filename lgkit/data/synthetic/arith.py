"""Synthetic arithmetic (``synth_arith``): word problems with three CoT levels.

Example:
    >>> items = synth_arith_items(2, seed=0)
    >>> len(items), sorted(items[0].responses)
    (2, ['detailed', 'none', 'simplified'])
"""

from __future__ import annotations

import random

from lgkit.data.items import Item
from lgkit.data.synthetic.arith_templates import (
    _INVERSE,
    _SYM,
    _TEMPLATES,
    _money,
    _Problem,
    _Step,
)
from lgkit.data.synthetic.common import FINAL
from lgkit.data.text import subseed
from lgkit.errors import InputError

__all__ = ["synth_arith_items"]


def _arith_texts(p: _Problem) -> dict[str, str]:
    ans = p.answer
    simple = []
    for s in p.steps:
        calc = f"{s.a} {s.op} {s.b} = {s.value}"
        simple.append(s.simple.format(calc=calc))
    simplified = " ".join(simple) + FINAL.format(ans)
    lines = ["Let's solve this step by step.", "", "**What we know:**"]
    lines += [f"- {g}" for g in p.givens]
    lines.append("")
    for k, s in enumerate(p.steps, start=1):
        ma, mb = (
            (False, s.money)
            if s.op == "*"
            else (s.money, False)
            if s.op == "/"
            else (s.money, s.money)
        )
        calc = f"{_money(s.a, ma)} {_SYM[s.op]} {_money(s.b, mb)} = {_money(s.value, s.money)}"
        lines.append(f"**Step {k}: {s.title}.** {s.why} {calc}.")
        lines.append("")
    last = p.steps[-1]
    inv_sym, inv_op = _INVERSE[last.op]
    back = _Step("", "", last.value, inv_op, last.b, "").value
    lines.append(
        f"**Check:** working backwards, {last.value} {inv_sym} {last.b} = {back}, "
        f"which matches the {back} we started this step with."
    )
    lines.append("")
    lines.append(f"So {p.conclusion.format(ans=ans)}.")
    detailed = "\n".join(lines) + FINAL.format(ans)
    return {"none": str(ans), "simplified": simplified, "detailed": detailed}


def synth_arith_items(n: int, seed: int = 0) -> list[Item]:
    """``n`` distinct multi-step arithmetic word problems with all three CoT levels.

    Templates rotate, so any prefix mixes problem types; numbers are drawn from ``seed``.

    Example:
        >>> it = synth_arith_items(1, seed=0)[0]
        >>> it.responses["none"] == it.answer and it.responses["detailed"].endswith(it.answer)
        True
    """
    rng = random.Random(subseed(seed, "synth_arith"))
    order = list(range(len(_TEMPLATES)))
    rng.shuffle(order)
    items: list[Item] = []
    seen: set[str] = set()
    k = 0
    while len(items) < n:
        if k > 50 * n + 1000:
            raise InputError(f"could not generate {n} distinct arithmetic problems")
        tpl = _TEMPLATES[order[len(items) % len(order)]]
        k += 1
        p = tpl(rng)
        if p is None or p.question in seen:
            continue
        seen.add(p.question)
        items.append(
            Item(
                p.question,
                str(p.answer),
                _arith_texts(p),
                meta={"template": p.template, "n_steps": len(p.steps)},
            )
        )
    return items
