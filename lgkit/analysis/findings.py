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
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis import inference as I

SYNTHETIC_LABEL = "synthetic data: illustrative only, not evidence about the paper"
TWIN_LABEL = "also at random initialisation: not evidence of anything learned"
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
        margin_note: why the equivalence margin is what it is (in units a reader can
            check, e.g. the twin's spread); shown inside ``rule``.

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
    margin_note: str = ""

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

    Difference claims need ``p < alpha`` and the 95% CI on one side of the null.
    Equivalence and non-inferiority claims need the 95% CI inside the margin (one-sided
    2.5% per side) and ``p < alpha`` (their p is below 0.05 iff the CI is inside, so
    only Holm can make it stricter), and at least
    :data:`~lgkit.analysis.inference.MIN_EQUIVALENCE_QUESTIONS` questions.

    Example:
        >>> verdict_of(Finding("c", verdict="x", estimate=0.5, ci_low=0.4, ci_high=0.6), 0.01)
        'supported'
        >>> eq = Finding("c", verdict="x", ci_low=0.9, ci_high=1.1, kind="equivalence", margin=(0.8, 1.25))
        >>> verdict_of(eq, 0.01), verdict_of(replace(eq, n_questions=6), 0.01)
        ('supported', 'inconclusive')
    """
    if f.verdict == "invalid" or not (_ok(p) and _ok(f.ci_low) and _ok(f.ci_high)):
        return "invalid" if f.verdict == "invalid" else "inconclusive"
    if f.kind == "equivalence":
        if 0 < f.n_questions < I.MIN_EQUIVALENCE_QUESTIONS:
            return "inconclusive"
        lo, hi = f.margin
        if lo < f.ci_low and f.ci_high < hi and p < alpha:
            return "supported"
        outside = f.ci_low > hi or f.ci_high < lo
        return "contradicted" if outside else "inconclusive"
    if p >= alpha:
        return "inconclusive"
    below, above = f.ci_high < f.null, f.ci_low > f.null
    claimed, other = (below, above) if f.direction == "less" else (above, below)
    return "supported" if claimed else "contradicted" if other else "inconclusive"


def invalid(claim: str, statistic: str, reason: str, **kw: Any) -> Finding:
    """A finding whose comparison is vacuous or could not be measured.

    Example:
        >>> invalid("c", "s", "identical groups").verdict_text
        'invalid: identical groups'
    """
    return Finding(claim, statistic, verdict="invalid", verdict_text=f"invalid: {reason}", **kw)


def rule_text(margin: tuple[float, float], *, log: bool = True, note: str = "") -> str:
    """The written rule of a no-difference claim with ``margin`` (ratio scale when
    ``log``): equivalence when both bounds are finite, non-inferiority when one is
    open (``-inf``, or 0 for a ratio); ``note`` justifies the margin.

    Example:
        >>> rule_text((0.0, 1.5), note="the twin's spread")[:60]
        'no-difference claim, non-inferiority (one-sided 2.5%): suppo'
        >>> "the twin's spread" in rule_text((0.0, 1.5), note="the twin's spread")
        True
    """
    lo, hi = margin
    open_lo = lo == -math.inf or (log and lo <= 0)
    open_hi = hi == math.inf
    tail = f"; margin: {note}" if note else ""
    n = I.MIN_EQUIVALENCE_QUESTIONS
    if open_lo != open_hi:
        side, word, bound = ("upper", "below", hi) if open_lo else ("lower", "above", lo)
        return I.RULE_NONINFERIORITY.format(
            side=side, word=word, bound=f"{bound:.3g}", min_n=n, note=tail
        )
    return I.RULE_EQUIVALENCE.format(margin=f"[{lo:.3g}, {hi:.3g}]", min_n=n, note=tail)


def _test(
    sides: I.Sides,
    stat: I.Stat,
    iv: I.Interval,
    kind: str,
    bounds: tuple[float, float],
    n_perm: int,
    seed: int,
    family_size: int,
) -> tuple[float, str, list[str]]:
    """The row's p, how it was computed and its size caveats."""
    n = sides.n_questions
    if kind == "equivalence":
        notes = []
        if n < I.MIN_EQUIVALENCE_QUESTIONS:
            notes.append(
                f"equivalence needs >= {I.MIN_EQUIVALENCE_QUESTIONS} questions "
                f"(n={n}): no equivalence verdict at this size"
            )
        how = "p: TOST/non-inferiority p of that interval (twice the larger one-sided p)"
        return I.tost(iv, *bounds), how, notes
    with np.errstate(divide="ignore", invalid="ignore"):
        res = I.permutation(sides, stat, n_perm=n_perm, seed=seed, family_size=family_size)
    note = I.min_p_note(len(sides.a), sides.paired, n_b=len(sides.b), n_perm=n_perm,
                        family_size=family_size)  # fmt: skip
    return res.p, res.text, [note] if note else []


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
    family_size: int = I.FAMILY_SIZE,
    margin_note: str = "",
    interval_method: str = I.INTERVAL_METHOD,
) -> Finding:
    """Estimate, calibrated 95% CI and test of ``stat`` over ``sides``; see the rules.

    ``log=True``: ``stat`` is a log-ratio (null 0); estimate and CI are shown as the
    ratio (null 1) and ``margin`` is given on the ratio scale. The interval is
    :func:`~lgkit.analysis.inference.interval`; difference claims get the exact (or
    enough-permutation, for a Holm family of ``family_size``) permutation p,
    no-difference claims the TOST/non-inferiority p of that same interval.
    ``margin_note`` justifies the margin inside the rule. Unpaired sides (different
    questions) carry both groups' uncertainty into the interval and the test.

    Example:
        >>> a = np.random.default_rng(0).normal(10, 1, size=(12, 1, 1, 4))
        >>> s = I.Sides(a, a * 0.5, True, list("abcdefghijkl"), list("abcdefghijkl"), ["q"], [0, 1, 2, 3])
        >>> f = evaluate("b smaller", "level ratio b/a", s,
        ...              lambda x, y: np.log(I.level(y[..., 0, :, :]) / I.level(x[..., 0, :, :])))
        >>> round(f.estimate, 3), f.verdict, f.p == 2 / 4096
        (0.5, 'supported', True)
    """
    n = sides.n_questions
    kw: dict[str, Any] = dict(
        detail=detail, kind=kind, direction=direction, n_questions=n, margin_note=margin_note
    )
    if margin is not None:
        kw["margin"] = margin
        kw["rule"] = rule_text(margin, log=log, note=margin_note)
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
    iv = I.interval(sides, stat, n_boot=n_boot, seed=seed, method=interval_method)
    mlo, mhi = margin if margin is not None else (-math.inf, math.inf)
    bounds = (math.log(mlo) if mlo > 0 else -math.inf, math.log(mhi)) if log else (mlo, mhi)
    p, how, size_notes = _test(sides, stat, iv, kind, bounds, n_boot, seed, family_size)
    notes = [*caveats, *size_notes]
    if not sides.paired:
        notes.append(
            "groups hold different questions: unpaired (two-sample) interval and test, "
            "both groups' uncertainty included"
        )
    kw["detail"] = "; ".join(x for x in (detail, iv.text, how) if x)
    f = Finding(
        claim,
        statistic,
        float(fwd(est)),
        float(fwd(iv.low)),
        float(fwd(iv.high)),
        p,
        null=1.0 if log else 0.0,
        caveats="; ".join(x for x in notes if x),
        **kw,
    )
    if size_notes and f.verdict == "inconclusive":  # the reason in the verdict's text
        f.verdict_text = f"inconclusive: {size_notes[0]}"
    return f


def _fmt(x: float) -> str:
    return "nan" if not _ok(x) else f"{x:.3g}"


def control_text(twin: Finding) -> str:
    """One line describing the random twin's result.

    Example:
        >>> control_text(Finding("c", "s", 0.5, 0.4, 0.6, 0.01))
        'random twin: 0.5 [0.4, 0.6], p=0.01 -> supported'
    """
    if twin.verdict == "invalid":
        return f"random twin: {twin.verdict_text}"
    return (
        f"random twin: {_fmt(twin.estimate)} [{_fmt(twin.ci_low)}, {_fmt(twin.ci_high)}], "
        f"p={_fmt(twin.p)} -> {twin.verdict}"
    )


def decide(
    findings: Iterable[Finding],
    *,
    controls: Sequence[Finding | None] | None = None,
    labels: Sequence[str] = (),
    alpha: float = I.ALPHA,
) -> list[Finding]:
    """Holm within the list, verdicts at the adjusted p, twin control and labels.

    ``controls[k]`` is the same claim evaluated on the random-initialisation twin (or
    None). Where the twin shows the effect too (its own verdict "supported" for a
    difference claim), the verdict text says :data:`TWIN_LABEL`. ``labels`` (e.g.
    :data:`SYNTHETIC_LABEL`, the weights' quantisation) are added to every verdict text.

    Example:
        >>> fs = decide([Finding("c", "s", 0.5, 0.4, 0.6, 0.01), Finding("d", "s", 0.9, 0.7, 1.1, 0.4)])
        >>> [(round(f.p_adj, 6), f.verdict) for f in fs]
        [(0.02, 'supported'), (0.4, 'inconclusive')]
    """
    fs = list(findings)
    valid = [k for k, f in enumerate(fs) if f.verdict != "invalid"]
    adj = I.holm([fs[k].p for k in valid])
    out = []
    for k, f in enumerate(fs):
        p_adj = adj[valid.index(k)] if k in valid else float("nan")
        v = f.verdict if f.verdict == "invalid" else verdict_of(f, p_adj, alpha)
        parts = [f.verdict_text if v == "invalid" else v]
        control = f.control
        twin = controls[k] if controls is not None and k < len(controls) else None
        if twin is not None:
            control = control_text(twin)
            if f.kind == "difference" and twin.verdict == "supported":
                parts.append(TWIN_LABEL)
        parts += [lab for lab in [*f.labels, *labels] if lab]
        out.append(
            replace(f, p_adj=p_adj, verdict=v, verdict_text="; ".join(parts), control=control)
        )
    return out


def findings_table(findings: Iterable[Finding]) -> pd.DataFrame:
    """Findings as a DataFrame with the reader-facing columns (:data:`COLUMNS`).

    Example:
        >>> findings_table([Finding("x", "s", 1.0)]).columns.tolist()[:4]
        ['claim', 'statistic', 'estimate', 'ci_low']
    """
    rows = [{k: v for k, v in asdict(f).items() if k in COLUMNS} for f in findings]
    return pd.DataFrame(rows, columns=COLUMNS)
