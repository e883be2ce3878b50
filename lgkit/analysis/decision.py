"""A notebook's findings decided together: families, Holm, verdicts, the twin, the learned rows.

:func:`decide` takes the rows :func:`~lgkit.analysis.findings.evaluate` made (each
:class:`~lgkit.analysis.findings.Finding` with its verdict rule) and applies Holm within the
notebook's primary family, shows each primary row at its Bonferroni level, matches and pools
the random-initialisation twin (:mod:`lgkit.analysis.learned`), adds the learned-effect rows
and the honest labels (synthetic data, quantised weights, confounded pairs).

Example:
    >>> from lgkit.analysis.claims import claim_flatter_with_cot
    >>> from lgkit.analysis.fixtures import synthetic_stats
    >>> fs = decide(claim_flatter_with_cot(synthetic_stats(n_samples=8, n_layers=6)))
    >>> fs[0].verdict, fs[0].statistic
    ('supported', 'mean-curve level ratio detailed/none')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from lgkit.analysis import inference as I
from lgkit.analysis.findings import (
    EXPLORATORY,
    NO_TRAINED_EFFECT,
    TWIN_LABEL,
    Finding,
    cannot_decide,
    control_text,
    exploratory,
    fmt3,
    interval_at,
    is_number,
    verdict_of,
)
from lgkit.analysis.learned import key, learned_row, pooled_twin, share_text


def _twin_parts(f: Finding, tw: Finding | None, lr: Finding | None, learned: bool) -> list[str]:
    """What the twin and the learned contrast say about trained finding ``f``'s verdict."""
    if tw is None:
        return []
    if tw.verdict == "invalid":
        return ["twin control invalid"]
    if f.kind != "difference":
        return (
            ["also at random initialisation (twin supported)"] if tw.verdict == "supported" else []
        )
    if f.verdict != "supported":
        return [NO_TRAINED_EFFECT] if learned and f.verdict != "invalid" else []
    lv = lr.verdict if lr is not None else "invalid"
    if lv in ("supported", "contradicted"):
        assert lr is not None
        share = share_text(f.estimate, tw.estimate, lr.estimate)
        return [share or f"learned contrast {lv}"] + (
            ["learned contrast contradicted"] if lv == "contradicted" else []
        )
    share = share_text(f.estimate, tw.estimate)
    if tw.verdict == "supported":
        return [TWIN_LABEL] + ([share] if share else [])
    if tw.verdict == "contradicted":
        return [
            "opposite at random initialisation (twin contradicted); learned contrast not supported"
        ]
    return [
        f"twin inconclusive, learned contrast {lv}: cannot tell how much of it is present at init"
    ]


def _pct(level: float) -> str:
    return f"{100 * level:.3g}%"


def _excludes_null(f: Finding) -> bool:
    return (
        is_number(f.ci_low) and is_number(f.ci_high) and (f.ci_high < f.null or f.ci_low > f.null)
    )


def _reason(f: Finding, v: str, p: float, alpha: float, m: int, p_name: str) -> str:
    """The head of a row's text: the verdict, with why when it is inconclusive."""
    if v == "invalid":
        return f.verdict_text if f.verdict_text.startswith("invalid") else "invalid"
    if v != "inconclusive":
        return v
    if f.verdict_text.startswith("inconclusive: ") and "confounded" not in f.verdict_text:
        return f.verdict_text  # the sample-size reason :func:`evaluate` gave
    why = cannot_decide(f, m, alpha)
    if why:
        return f"inconclusive: {why}"
    lvl = _pct(f.ci_level)
    if f.kind == "equivalence":
        lo, hi = f.margin
        inside = is_number(f.ci_low) and lo < f.ci_low and f.ci_high < hi
        if inside:
            return (
                f"inconclusive: the {lvl} CI lies inside the margin but the {p_name} "
                f"({fmt3(p)}) is not below {alpha:g}"
            )
        return "inconclusive"
    if _excludes_null(f):
        return (
            f"inconclusive: the {lvl} CI excludes {fmt3(f.null)} but the permutation test does not "
            f"reach {alpha:g} ({p_name}={fmt3(p)})"
        )
    if is_number(p) and p < alpha:
        return (
            f"inconclusive: {p_name}={fmt3(p)} < {alpha:g} but the {lvl} CI includes {fmt3(f.null)}"
        )
    return "inconclusive"


def _settle(f: Finding, p_adj: float, alpha: float, m: int, level: float | None) -> Finding:
    """``f`` decided at ``p_adj``; with ``level`` its interval is shown (and decides) there."""
    g = replace(f, p_adj=p_adj)
    if level is not None and f.verdict != "invalid":
        iv = interval_at(f, level)
        if iv is not None:
            g = replace(g, ci_low=iv[0], ci_high=iv[1], ci_level=level)
    v = g.verdict if g.verdict == "invalid" else verdict_of(g, p_adj, alpha)
    name = "Holm-adjusted p" if f.family != EXPLORATORY and level is not None else "p"
    head = _reason(g, v, p_adj, alpha, m, name)
    return replace(g, verdict=v, verdict_text=head)


def _confounded(f: Finding, m: int, alpha: float) -> Finding:
    """Settled row ``f`` of a confounded comparison, not decided: "inconclusive: confounded
    (...)", and why its size could not decide it either (:func:`cannot_decide`) or why the
    comparison itself is invalid (then outside the family: no adjustment)."""
    text = f"inconclusive: confounded ({f.confounded}): not decided"
    if f.verdict == "invalid":
        why = f.verdict_text.removeprefix("invalid: ")
        return replace(f, verdict="inconclusive", adjust="",
                       verdict_text=f"{text}; the comparison itself is invalid: {why}")  # fmt: skip
    why = cannot_decide(f, m, alpha)
    return replace(f, verdict="inconclusive",
                   verdict_text=f"{text}; even without the confound, {why}" if why else text)  # fmt: skip


def _family_tail(f: Finding, m: int) -> str:
    if f.verdict == "invalid" or (f.confounded and not f.adjust):  # in no family
        return ""
    if f.family == EXPLORATORY:
        why = f" ({f.family_note})" if f.family_note else ""
        return f"exploratory{why}: own 95% CI and unadjusted p, outside the Holm family"
    if m > 1 and f.ci_level != 0.95:
        return (
            f"primary claim: {_pct(f.ci_level)} CI (Bonferroni over the {m} primary claims) "
            "and Holm-adjusted p"
        )
    if m > 1:  # no recipe or SE to show it at the Bonferroni level
        return f"primary claim: Holm-adjusted p over the {m} primary claims, 95% CI"
    return "primary claim: 95% CI (the only primary claim)"


def seed_note(twin: Finding) -> str:
    """Which seed-to-seed variance a twin-based interval leaves out (rule: say so).

    Example:
        >>> seed_note(Finding("c", detail="x"))
        'interval: question-to-question variance only (one twin seed, one training run: seed-to-seed variance not included)'
    """
    if twin.detail.startswith("random twin pooled over "):
        k = twin.detail.split("random twin pooled over ")[1].split(" ")[0]
        return (
            f"interval: questions of a twin pooled over {k} seeds, one training run "
            "(training-seed variance not included)"
        )
    return (
        "interval: question-to-question variance only (one twin seed, one training run: "
        "seed-to-seed variance not included)"
    )


def _twins(
    fs: list[Finding], controls: Sequence[Finding | None] | None, learned: bool
) -> tuple[list[Finding | None], list[Finding | None]]:
    """Per finding: its twin (matched by key, seeds pooled) and its learned row."""
    by_key: dict[tuple[str, str], list[Finding]] = {}
    for t in controls or []:
        if t is not None:
            by_key.setdefault(key(t), []).append(t)
    twins: list[Finding | None] = []
    rows: list[Finding | None] = []
    for f in fs:
        found = by_key.get(key(f))
        tw = pooled_twin(found) if found else None
        twins.append(tw)
        ok = learned and tw is not None and f.verdict != "invalid" and tw.verdict != "invalid"
        rows.append(learned_row(f, tw) if ok and tw is not None else None)
    return twins, rows


def decide(
    findings: Iterable[Finding],
    *,
    controls: Sequence[Finding | None] | None = None,
    labels: Sequence[str] = (),
    alpha: float = I.ALPHA,
    learned: bool = False,
) -> list[Finding]:
    """Families, Holm, verdicts on the interval shown, twin control, learned rows, labels.

    Families: the :data:`~lgkit.analysis.findings.PRIMARY` rows (the paper's claims) are
    one Holm family of ``m`` tests; each is shown, and decided, with its interval at the
    Bonferroni level ``1 - alpha/m`` (``ci_level``) together with its Holm-adjusted p.
    :data:`~lgkit.analysis.findings.EXPLORATORY` rows (breakdowns, normalisations,
    controls), the twin and the learned rows keep their own 95% interval and unadjusted p
    (``p_adj = p``) and say so. Where interval and test disagree, or where the size cannot
    decide (:func:`~lgkit.analysis.findings.cannot_decide`), the verdict says why. A
    confounded row (``confounded`` set) stays in its family (a primary one is in the Holm
    family, shown at its level with its Holm p) but is never decided: "inconclusive:
    confounded (...)", with "no verdict possible at this size" when ``cannot_decide`` says
    so even without the confound. ``adjust`` records each decided row's adjustment
    ("Holm" or "none").

    ``controls``: the same claims on the random-initialisation twin, matched by key
    (tagged claim + statistic; several findings with one key are the twin's seeds,
    pooled), shown as a contrast with its own interval (``control``). With ``learned``,
    a difference claim whose trained row is supported gets a learned-effect row right
    after it (trained ratio ÷ twin ratio; exploratory), and its verdict says how much of
    the log-effect is present at init; a trained row without a trained effect says
    :data:`~lgkit.analysis.findings.NO_TRAINED_EFFECT` and gets no learned row. ``labels``
    (e.g. :data:`~lgkit.analysis.findings.SYNTHETIC_LABEL`) are added to every verdict text.

    Example:
        >>> fs = decide([Finding("c", "s", 0.5, 0.4, 0.6, 0.01), Finding("d", "s", 0.9, 0.7, 1.1, 0.4)])
        >>> [(round(f.p_adj, 6), f.verdict) for f in fs]
        [(0.02, 'supported'), (0.4, 'inconclusive')]
    """
    fs = list(findings)
    twins, rows = _twins(fs, controls, learned)
    tested = [i for i, f in enumerate(fs) if f.family != EXPLORATORY and f.verdict != "invalid"]
    adj = dict(zip(tested, I.holm([float(fs[i].p) for i in tested]), strict=True))
    m = len(tested)
    level = 1 - alpha / m if m > 1 else None
    out = []
    for i, f in enumerate(fs):
        if i in adj:
            f = replace(_settle(f, adj[i], alpha, m, level), adjust="Holm")
        else:
            f = replace(_settle(f, f.p, alpha, 1, None), adjust="none")
        if f.confounded:
            f = _confounded(f, m if i in adj else 1, alpha)
        if f.verdict == "invalid":
            f = replace(f, adjust="")
        twin = twins[i]
        tw = _settle(twin, twin.p, alpha, 1, None) if twin is not None else None
        lr = rows[i] if f.verdict == "supported" else None
        if lr is not None:
            lr = _settle(exploratory(lr, "learned-vs-init control"), lr.p, alpha, 1, None)
            lr = replace(lr, adjust="none" if lr.verdict != "invalid" else "")
        parts = [f.verdict_text] + _twin_parts(f, tw, lr, learned)
        labs = [x for x in [*f.labels, *labels] if x]
        tail = [x for x in [_family_tail(f, m)] if x] + labs
        control = control_text(tw) if tw is not None else f.control
        out.append(replace(f, verdict_text="; ".join(parts + tail), control=control))
        if lr is not None and tw is not None:
            lparts = [lr.verdict_text]
            if lr.verdict != "invalid":
                lparts.append(f"trained {fmt3(f.estimate)} vs twin {fmt3(tw.estimate)}")
                if lr.verdict == "supported":
                    lparts.append(share_text(f.estimate, tw.estimate, lr.estimate))
                lparts.append(seed_note(tw))
            lparts.append(_family_tail(lr, m))
            out.append(replace(lr, verdict_text="; ".join([p for p in lparts if p] + labs),
                               labels=list(f.labels), control=control))  # fmt: skip
    return out
