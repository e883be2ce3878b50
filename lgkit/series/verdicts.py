"""The reader's findings table: verdict first, the shared rule and caveats once, a count line.

* :func:`reader_findings`: findings records (``metrics.json``) split into short rows, shared
  notes and rules;
* :func:`findings_html`: the reader's table that fits a screen (rows at most three lines, the
  rest in each row's ``<details>``; rules and shared notes once, as footnotes), shown by
  ``Outputs.findings`` in a notebook and by the run's ``index.html``;
* :func:`min_p`: the smallest p-value a test on ``n`` questions can give; :func:`small_n_warning`.

Example:
    >>> rows, shared, rules, counts = reader_findings([
    ...     {"claim": "a", "verdict": "supported", "verdict_text": "supported; synthetic", "n_questions": 12,
    ...      "estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6, "p_adj": 0.01, "rule": "R"},
    ...     {"claim": "b", "verdict": "inconclusive", "verdict_text": "inconclusive; synthetic", "n_questions": 12,
    ...      "rule": "R"}])
    >>> rows[0]["verdict"], shared, rules, counts_line(counts)
    ('supported', ['synthetic'], ['R'], '1 supported, 1 inconclusive, 0 contradicted, 0 invalid')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "adjustment_of",
    "adjustment_text",
    "counts_line",
    "findings_html",
    "min_p",
    "reader_findings",
    "small_n_warning",
]

VERDICT_ORDER = ("supported", "inconclusive", "contradicted", "invalid")
ALPHA = 0.05


def min_p(n: int, paired: bool = True) -> float:
    """The smallest p-value a permutation test on ``n`` questions can reach (before Holm).

    Uses :func:`lgkit.analysis.inference.min_p` when the statistics core provides it;
    otherwise the exact bound for antisymmetric statistics: paired (sign-flip) ``2 / 2**n``,
    unpaired ``2 / C(2n, n)``.

    Example:
        >>> min_p(4)
        0.125
    """
    try:
        from lgkit.analysis.inference import min_p as core_min_p  # type: ignore[attr-defined]
    except ImportError:
        core_min_p = None
    if core_min_p is not None:
        return float(core_min_p(n, paired))
    if n <= 0:
        return 1.0
    return float(2.0 ** (1 - n)) if paired else 2.0 / math.comb(2 * n, n)


def num_text(x: Any) -> str:
    """A number in a table cell: three significant digits; "" for NaN, None, text or a bool.

    Example:
        >>> num_text(0.012345), num_text(float("nan")), num_text(True)
        ('0.0123', '', '')
    """
    return f"{x:.3g}" if isinstance(x, (int, float)) and not isinstance(x, bool) and x == x else ""


def _level(r: Mapping[str, Any]) -> str:
    """The interval's level before it when it is not 95% (a primary claim's Bonferroni level).

    Example:
        >>> _level({"ci_level": 0.99}), _level({"ci_level": 0.95}), _level({})
        ('99%: ', '', '')
    """
    lvl = r.get("ci_level")
    ok = isinstance(lvl, int | float) and lvl == lvl and abs(float(lvl) - 0.95) > 1e-9
    return f"{100 * float(lvl):.3g}%: " if ok else ""


def reader_findings(
    records: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, str]], list[str], list[str], dict[str, int]]:
    """Findings records (``metrics.json``) as a reader's table.

    Returns ``(rows, shared, rules, counts)``: one row per finding with ``claim``,
    ``statistic``, ``verdict`` (the word), ``estimate``, ``95% CI``, ``p adj``, ``n`` (with the smallest
    achievable p) and ``notes`` (what is said of this row only: the invalid reason, the
    labels not shared by every row, the caveats and the twin control); ``shared``: the
    labels every row carries (said once under the table); ``rules``: the distinct verdict
    rules; ``counts``: findings per verdict.
    """
    recs = [dict(r) for r in records]
    said = [_said(r) for r in recs]
    common = set.intersection(*(set(x) for x in said)) if len(said) > 1 else set()
    shared = [x for x in (said[0] if said else []) if x in common]
    rows = []
    for r, own in zip(recs, said, strict=True):
        verdict = str(r.get("verdict") or "")
        n = r.get("n_questions") or 0
        first = str(r.get("verdict_text") or "").split("; ")[0]
        notes = [first.removeprefix("invalid: ")] if verdict == "invalid" else []
        notes += [x for x in own if x not in common]
        lo, hi = num_text(r.get("ci_low")), num_text(r.get("ci_high"))
        rows.append(
            {
                "claim": str(r.get("claim") or ""),
                "statistic": str(r.get("statistic") or ""),
                "verdict": verdict,
                "estimate": num_text(r.get("estimate")),
                "95% CI": f"{_level(r)}[{lo}, {hi}]" if lo else "",
                "p adj": num_text(r.get("p_adj")),
                "n": str(n) if n else "",
                "min p": f"{min_p(int(n)):.2g}" if n else "",
                "notes": "; ".join(notes),
            }
        )
    rules = list(dict.fromkeys(str(r.get("rule")) for r in recs if r.get("rule")))
    counts = {v: sum(r.get("verdict") == v for r in recs) for v in VERDICT_ORDER}
    return rows, shared, rules, counts


def counts_line(counts: Mapping[str, int]) -> str:
    """``"32 supported, 20 inconclusive, 6 contradicted"`` (invalid only when there are any, but
    always in a full count).

    Example:
        >>> counts_line({"supported": 2, "inconclusive": 1, "contradicted": 0, "invalid": 0})
        '2 supported, 1 inconclusive, 0 contradicted, 0 invalid'
    """
    return ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICT_ORDER)


def adjustment_of(r: Mapping[str, Any]) -> str:
    """How a decided record's p was adjusted: "Holm", "Bonferroni", "none" (exploratory),
    "" (invalid); records of runs before ``adjust`` was kept are read from family and rule."""
    if r.get("verdict") == "invalid":
        return ""
    adj = str(r.get("adjust") or "")
    if adj:
        return adj
    rule = str(r.get("rule") or "")
    if r.get("family") == "exploratory" or rule.startswith("exploratory row"):
        return "none"
    return "Bonferroni" if "Bonferroni, p_adj" in rule else "Holm"


def adjustment_text(records: Iterable[Mapping[str, Any]]) -> str:
    """How the rows' p values were adjusted, true per notebook (from each row's own
    ``family`` and ``adjust``): which adjustment each notebook's primary family (the
    paper's claims) uses, and that the other rows are exploratory and unadjusted.

    Example:
        >>> adjustment_text([{"notebook": "02_math", "family": "primary", "adjust": "Holm"},
        ...                  {"notebook": "06_x", "family": "exploratory", "adjust": "none"},
        ...                  {"notebook": "08_y", "family": "primary", "adjust": "Bonferroni"}])
        "the paper's claims adjusted within each notebook (Holm: 02; Bonferroni: 08; 06: exploratory rows only), the other rows exploratory (own 95% CI, unadjusted p)"
        >>> adjustment_text([{"family": "primary", "adjust": "Bonferroni"}, {"adjust": "none"}])
        "the paper's claims Bonferroni-adjusted, the other rows exploratory (own 95% CI, unadjusted p)"
    """
    per_nb: dict[str, set[str]] = {}
    for r in records:
        nb = _notebook_short(str(r.get("notebook") or ""))
        adj = adjustment_of(r)
        per_nb.setdefault(nb, set())
        if adj and adj != "none":
            per_nb[nb].add(adj)
    tail = "the other rows exploratory (own 95% CI, unadjusted p)"
    if len(per_nb) <= 1:
        methods = sorted(next(iter(per_nb.values()), set()))
        if not methods:
            return "every row exploratory (own 95% CI, unadjusted p)"
        return f"the paper's claims {' and '.join(methods)}-adjusted, {tail}"
    by_method: dict[str, list[str]] = {}
    for nb, methods in per_nb.items():
        key = " and ".join(sorted(methods)) if methods else ""
        by_method.setdefault(key, []).append(nb)
    parts = [f"{k}: {', '.join(v)}" for k, v in by_method.items() if k]
    if "" in by_method:
        parts.append(f"{', '.join(by_method[''])}: exploratory rows only")
    return f"the paper's claims adjusted within each notebook ({'; '.join(parts)}), {tail}"


RAISE: dict[str, str] = {
    "": "raise n_per_variant (each question adds a factor 2 of resolution)",
    "07": (
        "raise n_train, n_probe or n_heldout (the questions compared; each adds a factor 2 of "
        "resolution), and seeds for the update rows (6 or more per arm)"
    ),
    "08": (
        "raise 01's n_per_variant (each question adds a factor 2 of resolution), and "
        "heldout_share or train_seeds for the selection rows"
    ),
}
"""What :func:`small_n_warning` tells a notebook to raise, in its own parameters (key: the
notebook's number; ``""``: 01-06's ``n_per_variant``)."""


def small_n_warning(
    records: Iterable[Mapping[str, Any]], alpha: float = ALPHA, notebook: str = ""
) -> str:
    """A warning when some comparison has too few questions for any verdict: its smallest
    achievable p is already ≥ ``alpha`` ("" otherwise). What to raise is named in
    ``notebook``'s own parameters (:data:`RAISE`; else the records' ``notebook`` field).

    Example:
        >>> small_n_warning([{"n_questions": 4, "verdict": "inconclusive"}])[:30]
        'n = 4: the smallest p a permut'
        >>> small_n_warning([{"n_questions": 4}], notebook="07_training_dynamics")[-46:]
        'seeds for the update rows (6 or more per arm).'
    """
    records = list(records)
    ns = sorted({int(r.get("n_questions") or 0) for r in records if r.get("verdict") != "invalid"})
    low = [n for n in ns if n and min_p(n) >= alpha]
    if not low:
        return ""
    n = max(low)
    if not notebook:  # the run's index: the notebooks of the small rows, when only one
        names = {
            str(r.get("notebook", ""))
            for r in records
            if int(r.get("n_questions") or 0) in low and r.get("verdict") != "invalid"
        }
        notebook = names.pop() if len(names) == 1 else ""
    advice = RAISE.get(notebook.split("_")[0], RAISE[""])
    return (
        f"n = {n}: the smallest p a permutation test on {n} questions can give is "
        f"{min_p(n):.3g} ≥ {alpha}, so these rows cannot be supported or contradicted whatever "
        f"the data; {advice}."
    )


VERDICT_STYLE = {
    "supported": "background:#e6f0ff",
    "contradicted": "background:#fff0e0",
    "inconclusive": "background:#f4f4f4",
    "invalid": "background:#eee;color:#666",
}

LINE_PX = 19
"""Line height (px, at the table's 14 px) of the reader's findings table: in px, a value
JupyterLab's sanitiser keeps; a claim shows at most :data:`CLAIM_LINES` of them."""
CLAIM_LINES = 3
"""Lines a claim takes in its row (the rest, and everything else said of the row, is one
click away in the row's ``<details>``)."""

# column widths (em of the table's 14 px): verdict, estimate, interval, p and n stay on one line
_COLUMNS = (
    ("nb", "3.6em"), ("claim", ""), ("verdict", "7.2em"), ("estimate", "5.8em"),
    ("95% CI", "10em"), ("p adj", "5.6em"), ("n", "3.2em"),
)  # fmt: skip
_CELL = "border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left"


def short_claim(claim: str, previous: str = "") -> str:
    """A claim in its table row: a claim that extends the row above (e.g. its learned-effect
    row, "<claim>: stronger after training than at random initialisation") shows only what it
    adds, after "↳ …", so what tells it apart is not clamped away (the row's details hold the
    whole claim).

    Example:
        >>> short_claim("A is smaller: stronger after training", "A is smaller")
        '↳ … stronger after training'
        >>> short_claim("B", "A")
        'B'
    """
    if previous and claim.startswith(previous) and len(claim) > len(previous):
        rest = claim[len(previous) :].lstrip(" :,;")
        if rest:
            return f"↳ … {rest}"
    return claim


def _notebook_short(name: str) -> str:
    """``06`` of ``06_length_controls`` (the full name is the link's title).

    Example:
        >>> _notebook_short("06_length_controls"), _notebook_short("x")
        ('06', 'x')
    """
    head = name.split("_", 1)[0]
    return head if head.isdigit() else name


def footnotes(
    records: Sequence[Mapping[str, Any]], shared: Iterable[str] = (), min_rows: int = 2
) -> tuple[list[str], list[str], list[list[str]]]:
    """What is said of the rows besides their numbers, each text once.

    Returns ``(rules, notes, own)``: the distinct verdict rules (footnotes R1, R2, …), the notes
    (caveats, labels, controls) said of at least ``min_rows`` rows but not of every row (footnotes
    1, 2, …: ``shared`` ones are said once for the whole table), and per row what is said of that
    row only.

    Example:
        >>> recs = [{"caveats": "a; b", "rule": "R"}, {"caveats": "a; c", "rule": "R"}]
        >>> footnotes(recs)
        (['R'], ['a'], [['b'], ['c']])
    """
    said = [_said(r) for r in records]
    skip = set(shared)
    count: dict[str, int] = {}
    for s in said:
        for x in dict.fromkeys(s):
            count[x] = count.get(x, 0) + 1
    notes = [
        x
        for x in dict.fromkeys(x for s in said for x in s)
        if count[x] >= min_rows and x not in skip
    ]
    own = [[x for x in s if x not in skip and x not in notes] for s in said]
    rules = list(dict.fromkeys(str(r.get("rule")) for r in records if r.get("rule")))
    return rules, notes, own


def _said(r: Mapping[str, Any]) -> list[str]:
    """What is said of a row besides its verdict: labels, caveats, the twin control."""
    lab = str(r.get("verdict_text") or "").split("; ")[1:]
    cav = [x for x in str(r.get("caveats") or "").split("; ") if x]
    return [*lab, *cav, *([str(r["control"])] if r.get("control") else [])]


def _row_details(
    rec: Mapping[str, Any],
    row: Mapping[str, str],
    own: Sequence[str],
    refs: Sequence[str],
    rule_ref: str,
) -> str:
    """The escaped body of a row's ``<details>``: everything said of the row but its numbers."""
    import html

    esc = html.escape
    items = [f"<b>Claim:</b> {esc(row['claim'])}"]
    if row["statistic"]:
        items.append(f"<b>Statistic:</b> {esc(row['statistic'])}")
    first = str(rec.get("verdict_text") or "").split("; ")[0]
    if first and first != row["verdict"]:
        items.append(f"<b>Verdict:</b> {esc(first)}")
    p = num_text(rec.get("p"))
    if p or row["min p"]:
        items.append(
            f"<b>p</b> before adjustment: {esc(p or '–')}; <b>min p</b> (the smallest its test can give"
            f" at n = {esc(row['n'] or '0')}): {esc(row['min p'] or '–')}"
        )
    if own:
        items.append("<b>Notes:</b> " + esc("; ".join(own)))
    if refs:
        items.append("<b>Notes</b> under the table: " + esc(", ".join(refs)))
    if rec.get("detail"):
        items.append(f"<b>How measured:</b> {esc(str(rec['detail']))}")
    if rule_ref:
        items.append(f"<b>Rule:</b> {esc(rule_ref)} (under the table)")
    return "".join(f"<div style='margin:2px 0'>{x}</div>" for x in items)


def findings_html(
    records: Iterable[Mapping[str, Any]],
    *,
    notebook_links: bool = False,
    caption: str = "",
    notebook: str = "",
) -> str:
    """The reader's findings table as HTML (every data text escaped) that fits a screen.

    The count line first; then one row per finding, at most :data:`CLAIM_LINES` lines high:
    the claim (clamped; click it for the row's ``<details>``: full claim, statistic, p before
    adjustment and the smallest achievable p, its own caveats and control, how it was measured and a
    reference to its rule), the verdict word, estimate, interval, adjusted p and n. The
    table takes the output area's width (fixed layout: no sideways scroll). Under it, each
    text once: what applies to every row, the small-sample warning, the notes several rows
    share (numbered) and the verdict rules (R1, R2, …, collapsible). Inline styles only (what
    JupyterLab's sanitiser keeps). ``notebook_links``: a first column linking to
    ``#<notebook>`` (the run's index page). ``notebook``: whose parameters the small-sample
    warning names (:data:`RAISE`).

    Example:
        >>> h = findings_html([{"claim": "<b>x</b>", "verdict": "supported", "verdict_text": "supported",
        ...                     "n_questions": 4, "rule": "R"}])
        >>> "&lt;b&gt;x&lt;/b&gt;" in h and "<details" in h and "1 supported" in h
        True
    """
    import html

    esc = html.escape
    recs = [dict(r) for r in records]
    rows, shared, _, counts = reader_findings(recs)
    rules, notes, own = footnotes(recs, shared)
    lh = f"line-height:{LINE_PX}px"
    out = [
        f"<div class='lgkit-findings' style='max-width:100%;font-size:14px;{lh}'>",
        f"<p class='counts' style='margin:.3em 0'><b>{esc(counts_line(counts))}</b>"
        f" ({esc(adjustment_text(recs))}).</p>",
        "<table class='findings' style='border-collapse:collapse;font-size:14px;width:100%;"
        f"table-layout:fixed;{lh}'>",
    ]
    if caption:
        out.append(
            f"<caption style='text-align:left;font-weight:bold;caption-side:top'>{esc(caption)}</caption>"
        )
    cols = [c for c in _COLUMNS if notebook_links or c[0] != "nb"]
    out.append(
        "<colgroup>"
        + "".join(f"<col style='width:{w}'>" if w else "<col>" for _, w in cols)
        + "</colgroup>"
    )
    head = {
        "95% CI": "CI (95% unless marked)"
    }  # a primary claim's interval is at its family's level
    out.append(
        "<tr>"
        + "".join(f"<th style='{_CELL}'>{esc(head.get(h, h))}</th>" for h, _ in cols)
        + "</tr>"
    )
    one_line = ";white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
    clamp = f"display:block;max-height:{CLAIM_LINES * LINE_PX}px;overflow:hidden;overflow-wrap:break-word;{lh}"
    prev = ""
    for rec, row, mine in zip(recs, rows, own, strict=True):
        short, prev = short_claim(row["claim"], prev), row["claim"]
        tds = []
        if notebook_links:
            nb = str(rec.get("notebook", ""))
            st = str(rec.get("status", "ok") or "ok")  # a stale or failed result says so
            tag = f"<br><b class='no' style='font-size:11px'>{esc(st)}</b>" if st != "ok" else ""
            tds.append(
                f"<td style='{_CELL};overflow:hidden'><a href='#{esc(nb)}' title='{esc(nb)}'>"
                f"{esc(_notebook_short(nb))}</a>{tag}</td>"
            )
        refs = [f"[{notes.index(x) + 1}]" for x in _said(rec) if x in notes]
        rule = str(rec.get("rule") or "")
        rule_ref = f"R{rules.index(rule) + 1}" if rule in rules else ""
        body = _row_details(rec, row, mine, list(dict.fromkeys(refs)), rule_ref)
        tds.append(
            f"<td style='{_CELL}'><details style='margin:0'><summary style='display:block;cursor:pointer;"
            f"list-style:none'><span style='{clamp}'>▸ {esc(short)}</span></summary>"
            f"<div style='font-size:12px;color:#444;margin-top:3px'>{body}</div></details></td>"
        )
        v = row["verdict"]
        tds.append(
            f"<td class='v-{esc(v)}' style='{_CELL}{one_line};{VERDICT_STYLE.get(v, '')}'>{esc(v)}</td>"
        )
        for k in ("estimate", "95% CI", "p adj", "n"):
            tds.append(f"<td style='{_CELL}{one_line}' title='{esc(row[k])}'>{esc(row[k])}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</table>")
    small = "font-size:12px;color:#444;margin:.3em 0"
    out.append(
        f"<p style='{small}'>▸ click a claim for its statistic, p before adjustment, the smallest p its "
        "test can give (min p), its caveats, control and how it was measured. <b>n</b>: questions "
        "compared; <b>p adj</b>: adjusted over its notebook's primary claims as the count line "
        "says (an exploratory row's own p, unadjusted).</p>"
    )
    if shared:
        out.append(f"<p class='shared' style='{small}'><b>Applies to every row:</b> "
                   + esc("; ".join(shared)) + "</p>")  # fmt: skip
    warn = small_n_warning(recs, notebook=notebook)
    if warn:
        out.append(f"<p class='warn' style='color:#a00'>⚠ {esc(warn)}</p>")
    if notes:
        out.append(
            f"<ol class='notes' style='{small};padding-left:2.2em'>"
            + "".join(f"<li>{esc(x)}</li>" for x in notes)
            + "</ol>"
        )
    out.append(
        "<details><summary>Verdict rules (R1"
        + (f"–R{len(rules)}" if len(rules) > 1 else "")
        + ")</summary>"
        + "".join(f"<p style='{small}'><b>R{k}:</b> {esc(r)}</p>" for k, r in enumerate(rules, 1))
        + "</details>"
        if rules
        else ""
    )
    out.append("</div>")
    return "\n".join(x for x in out if x)
