"""Findings: one claim's effect size, interval, test and three-valued verdict.

:func:`evaluate` turns a two-sided comparison (:class:`~lgkit.analysis.inference.Sides`)
into a :class:`Finding`; :func:`decide` applies Holm within a notebook, the
random-initialisation control and the honest labels (synthetic data, quantised
weights, confounded pairs) to a notebook's findings.

Example:
    >>> from lgkit.analysis.claims import claim_flatter_with_cot
    >>> from lgkit.analysis.fixtures import synthetic_stats
    >>> fs = decide(claim_flatter_with_cot(synthetic_stats(n_samples=8, n_layers=6)))
    >>> fs[0].verdict, fs[0].statistic
    ('supported', 'mean-curve level ratio detailed/none')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis import inference as I

SYNTHETIC_LABEL = "synthetic data: illustrative only, not evidence about the paper"
TWIN_LABEL = (
    "also at random initialisation (twin supported) and the learned contrast is not "
    "supported: not shown to be learned"
)
CONFOUNDED_LABEL = "different families: confounded"
COLUMNS = [
    "claim", "statistic", "estimate", "ci_low", "ci_high", "p", "p_adj", "n_questions",
    "verdict", "verdict_text", "rule", "caveats", "control", "detail",
]  # fmt: skip


@dataclass
class Finding:
    """One claim of the paper tested on a table.

    Attributes:
        claim: the claim, phrased as in the paper.
        statistic: the paper's statistic compared (e.g. "MAD ratio detailed/none").
        estimate, ci_low, ci_high: point estimate and 95% question-bootstrap CI.
        p: permutation p (difference claims) or TOST p (no-difference claims).
        p_adj: ``p`` after Holm within the notebook (set by :func:`decide`).
        n_questions: questions (resampling units) in the comparison.
        verdict: one of supported, contradicted, inconclusive, invalid.
        verdict_text: the verdict with its reasons and labels, as shown to readers.
        rule: the written verdict rule.
        caveats: noise floor, truncation, sample size notes.
        control: the random-initialisation twin's result ("" when not run).
        detail: how it was measured.
        kind, null, direction, margin, log: the test's definition (internal).
        labels: labels of this finding only (e.g. the confounded pair).
        recipe: how it was measured (:class:`lgkit.analysis.learned.Recipe`: sides,
            statistic, settings), for the twin's pooling and the learned row; never shown.

    Example:
        >>> Finding("Detailed CoT is flatter", "MAD ratio", 0.5, 0.4, 0.6, 0.01).supported
        True
    """

    claim: str
    statistic: str = ""
    estimate: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    p: float = float("nan")
    p_adj: float = float("nan")
    n_questions: int = 0
    verdict: str = ""
    verdict_text: str = ""
    rule: str = I.RULE_DIFFERENCE
    caveats: str = ""
    control: str = ""
    detail: str = ""
    kind: str = "difference"
    null: float = 1.0
    direction: str = "less"
    margin: tuple[float, float] = (-math.inf, math.inf)
    labels: list[str] = field(default_factory=list)
    recipe: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.verdict:
            self.verdict = verdict_of(self, self.p)
        if not self.verdict_text:
            self.verdict_text = self.verdict

    @property
    def supported(self) -> bool:
        """True iff the verdict is "supported"."""
        return self.verdict == "supported"


def _ok(x: float) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def verdict_of(f: Finding, p: float, alpha: float = I.ALPHA) -> str:
    """The verdict of ``f`` at p-value ``p`` under its rule (see :mod:`.inference`).

    Example:
        >>> verdict_of(Finding("c", verdict="x", estimate=0.5, ci_low=0.4, ci_high=0.6), 0.01)
        'supported'
    """
    if f.verdict == "invalid" or not (_ok(p) and _ok(f.ci_low) and _ok(f.ci_high)):
        return "invalid" if f.verdict == "invalid" else "inconclusive"
    if f.kind == "equivalence":
        lo, hi = f.margin
        if p < alpha:
            return "supported"
        outside = f.ci_low > hi or f.ci_high < lo
        return "contradicted" if outside else "inconclusive"
    if p >= alpha:
        return "inconclusive"
    below, above = f.ci_high < f.null, f.ci_low > f.null
    claimed, other = (below, above) if f.direction == "less" else (above, below)
    return "supported" if claimed else "contradicted" if other else "inconclusive"


def invalid(claim: str, statistic: str, reason: str, **kw: object) -> Finding:
    """A finding whose comparison is vacuous or could not be measured.

    Example:
        >>> invalid("c", "s", "identical groups").verdict_text
        'invalid: identical groups'
    """
    return Finding(claim, statistic, verdict="invalid", verdict_text=f"invalid: {reason}", **kw)


def evaluate(
    claim: str,
    statistic: str,
    sides: I.Sides,
    stat: I.Stat,
    *,
    kind: str = "difference",
    direction: str = "less",
    log: bool = True,
    margin: tuple[float, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    detail: str = "",
    caveats: Sequence[str] = (),
) -> Finding:
    """Estimate, bootstrap CI and test of ``stat`` over ``sides``; see the module rules.

    ``log=True``: ``stat`` is a log-ratio (null 0); estimate and CI are shown as the
    ratio (null 1) and ``margin`` is given on the ratio scale.

    Example:
        >>> a = np.random.default_rng(0).normal(10, 1, size=(12, 1, 1, 4))
        >>> s = I.Sides(a, a * 0.5, True, list("abcdefghijkl"), list("abcdefghijkl"), ["q"], [0, 1, 2, 3])
        >>> f = evaluate("b smaller", "level ratio b/a", s,
        ...              lambda x, y: np.log(I.level(y[..., 0, :, :]) / I.level(x[..., 0, :, :])))
        >>> round(f.estimate, 3), f.verdict
        (0.5, 'supported')
    """
    n = sides.n_questions
    kw = dict(detail=detail, kind=kind, direction=direction, n_questions=n)
    if margin is not None:
        kw["margin"] = margin
        kw["rule"] = I.RULE_EQUIVALENCE.format(margin=f"[{margin[0]:.3g}, {margin[1]:.3g}]")
    if n < I.MIN_QUESTIONS:
        return invalid(claim, statistic, f"{n} questions (< {I.MIN_QUESTIONS})", **kw)
    if sides.a.shape == sides.b.shape and np.array_equal(sides.a, sides.b):
        return invalid(claim, statistic, "the two groups are identical (same statistics)", **kw)
    if any(sides.truncated):
        return invalid(claim, statistic, "every row of a group is truncated", **kw)
    fwd = (lambda v: np.exp(v)) if log else (lambda v: v)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = float(stat(sides.a.mean(0), sides.b.mean(0)))
    if not math.isfinite(est):
        return invalid(
            claim, statistic, "the statistic is not finite (a zero level, MAD or RD)", **kw
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = I.bootstrap(sides, stat, n_boot=n_boot, seed=seed)
    lo, hi = I.ci(boot)
    notes = list(caveats)
    if not sides.paired:
        notes.append("groups hold different questions: cluster (unpaired) bootstrap")
    if kind == "equivalence":
        mlo, mhi = margin if margin is not None else (-math.inf, math.inf)
        tlo = math.log(mlo) if log and mlo > 0 else (-math.inf if log else mlo)
        thi = math.log(mhi) if log else mhi
        p = I.tost_p(boot, tlo, thi)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            p = I.permutation_test(sides, stat, 0.0, n_perm=n_boot, seed=seed)
    return Finding(
        claim,
        statistic,
        float(fwd(est)),
        float(fwd(lo)),
        float(fwd(hi)),
        p,
        null=1.0 if log else 0.0,
        caveats="; ".join(notes),
        **kw,
    )


def _fmt(x: float) -> str:
    return "nan" if not _ok(x) else f"{x:.3g}"


def control_text(twin: Finding) -> str:
    """One line describing the random twin's result (its Holm-adjusted p when set).

    Example:
        >>> control_text(Finding("c", "s", 0.5, 0.4, 0.6, 0.01))
        'random twin: 0.5 [0.4, 0.6], p=0.01 -> supported'
    """
    if twin.verdict == "invalid":
        return f"random twin: {twin.verdict_text}"
    p = f"p_adj={_fmt(twin.p_adj)}" if _ok(twin.p_adj) else f"p={_fmt(twin.p)}"
    text = (
        f"random twin: {_fmt(twin.estimate)} [{_fmt(twin.ci_low)}, {_fmt(twin.ci_high)}], "
        f"{p} -> {twin.verdict}"
    )
    return f"{text} ({twin.detail})" if twin.detail.startswith("random twin pooled") else text


def _twin_parts(f: Finding, tw: Finding | None, lr: Finding | None) -> list[str]:
    """What the twin and the learned contrast say about trained finding ``f``'s verdict."""
    from lgkit.analysis.learned import share_text

    if tw is None:
        return []
    if tw.verdict == "invalid":
        return ["twin control invalid"]
    if f.kind != "difference":
        return (
            ["also at random initialisation (twin supported)"] if tw.verdict == "supported" else []
        )
    if f.verdict != "supported":
        return []
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


def _twins(
    fs: list[Finding], controls: Sequence[Finding | None] | None, learned: bool
) -> tuple[list[Finding | None], list[Finding | None]]:
    """Per finding: its twin (matched by key, seeds pooled) and its learned row."""
    from lgkit.analysis.learned import key, learned_row, pooled_twin

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
    """Holm within the list, verdicts at the adjusted p, twin control and labels.

    ``controls``: the same claims evaluated on the random-initialisation twin, matched
    to ``findings`` by key (tagged claim + statistic; any order, missing ones allowed;
    several findings with one key are the twin's seeds, pooled). The twins' tests join
    the Holm family and are shown as a contrast with their own interval (``control``).
    With ``learned``, every difference claim with a twin gets a learned-effect row right
    after it (trained ratio ÷ twin ratio, same Holm family), and the trained verdict says
    how much of the log-effect is present at init and what training adds; where the twin
    shows the effect and the learned contrast is not supported it says :data:`TWIN_LABEL`.
    ``labels`` (e.g. :data:`SYNTHETIC_LABEL`) are added to every verdict text.

    Example:
        >>> fs = decide([Finding("c", "s", 0.5, 0.4, 0.6, 0.01), Finding("d", "s", 0.9, 0.7, 1.1, 0.4)])
        >>> [(round(f.p_adj, 6), f.verdict) for f in fs]
        [(0.02, 'supported'), (0.4, 'inconclusive')]
    """
    fs = list(findings)
    twins, rows = _twins(fs, controls, learned)
    groups: tuple[list[Any], ...] = (fs, rows, twins)  # one Holm family: trained, learned, twin
    tests = [
        (g, i)
        for g, lst in enumerate(groups)
        for i, x in enumerate(lst)
        if x is not None and x.verdict != "invalid"
    ]
    adj = dict(zip(tests, I.holm([groups[g][i].p for g, i in tests]), strict=True))

    def settle(g: int, i: int, x: Finding) -> Finding:
        p_adj = adj.get((g, i), float("nan"))
        v = x.verdict if x.verdict == "invalid" else verdict_of(x, p_adj, alpha)
        return replace(x, p_adj=p_adj, verdict=v)

    out = []
    for i, f in enumerate(fs):
        f = settle(0, i, f)
        tw = settle(2, i, twins[i]) if twins[i] is not None else None
        lr = settle(1, i, rows[i]) if rows[i] is not None else None
        parts = [f.verdict_text if f.verdict == "invalid" else f.verdict]
        parts += _twin_parts(f, tw, lr)
        tail = [lab for lab in [*f.labels, *labels] if lab]
        control = control_text(tw) if tw is not None else f.control
        out.append(replace(f, verdict_text="; ".join(parts + tail), control=control))
        if lr is not None and tw is not None:
            lparts = [lr.verdict_text if lr.verdict == "invalid" else lr.verdict]
            if lr.verdict != "invalid":
                from lgkit.analysis.learned import share_text

                lparts.append(f"trained {_fmt(f.estimate)} vs twin {_fmt(tw.estimate)}")
                if lr.verdict == "supported":
                    lparts.append(share_text(f.estimate, tw.estimate, lr.estimate))
            out.append(replace(lr, verdict_text="; ".join([p for p in lparts if p] + tail),
                               labels=list(f.labels), caveats=f.caveats))  # fmt: skip
    return out


def findings_table(findings: Iterable[Finding]) -> pd.DataFrame:
    """Findings as a DataFrame with the reader-facing columns (:data:`COLUMNS`).

    Example:
        >>> findings_table([Finding("x", "s", 1.0)]).columns.tolist()[:4]
        ['claim', 'statistic', 'estimate', 'ci_low']
    """
    rows = [{k: getattr(f, k) for k in COLUMNS} for f in findings]
    return pd.DataFrame(rows, columns=COLUMNS)
