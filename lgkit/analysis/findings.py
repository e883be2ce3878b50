"""Findings: one claim's effect size, interval, test and three-valued verdict.

:func:`evaluate` turns a two-sided comparison (:class:`~lgkit.analysis.inference.Sides`)
into a :class:`Finding` under its verdict rule (:func:`verdict_of`, :func:`cannot_decide`,
:func:`interval_at`); :func:`lgkit.analysis.decision.decide` then applies Holm within a
notebook, the random-initialisation control and the honest labels (synthetic data,
quantised weights, confounded pairs) to a notebook's findings.

Example:
    >>> from lgkit.analysis.claims import claim_flatter_with_cot
    >>> from lgkit.analysis.fixtures import synthetic_stats
    >>> f = claim_flatter_with_cot(synthetic_stats(n_samples=8, n_layers=6))[0]
    >>> f.statistic, math.isnan(f.p_adj)  # Holm has not run yet
    ('mean-curve level ratio detailed/none', True)
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
PRIMARY = "primary"
EXPLORATORY = "exploratory"
NO_TRAINED_EFFECT = "learned vs init: not applicable (no trained effect)"
COLUMNS = [
    "claim", "statistic", "estimate", "ci_low", "ci_high", "p", "p_adj", "n_questions",
    "verdict", "verdict_text", "rule", "caveats", "control", "detail", "family", "ci_level",
    "adjust",
]  # fmt: skip
ADJUSTMENTS = ("Holm", "Bonferroni", "none")
"""How a decided row's ``p_adj`` was adjusted (:attr:`Finding.adjust`)."""


@dataclass
class Finding:
    """One claim of the paper tested on a table.

    Attributes:
        claim: the claim, phrased as in the paper.
        statistic: the paper's statistic compared (e.g. "MAD ratio detailed/none").
        estimate, ci_low, ci_high: point estimate and the calibrated 95% CI (question
            jackknife t, :func:`~lgkit.analysis.inference.interval`) that decides the row.
        p: exact or Monte Carlo permutation p (difference claims) or the TOST /
            non-inferiority p of the shown CI (no-difference claims).
        p_adj: ``p`` after Holm within the notebook (set by
            :func:`~lgkit.analysis.decision.decide`).
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
        margin_note: why the equivalence margin is what it is (in units a reader can
            check, e.g. the twin's spread); shown inside ``rule``.
        family: :data:`PRIMARY` (a claim of the paper: Holm over the notebook's primary
            rows, shown and decided at the Bonferroni level of that family) or
            :data:`EXPLORATORY` (breakdowns, normalisations, controls, twin and learned
            rows: own 95% interval, unadjusted p, outside the Holm budget).
        family_note: why a row is exploratory (e.g. "layer breakdown").
        ci_level: the level of the interval shown, which is the level that decides.
        se, dof: the decision interval's SE and degrees of freedom on the statistic's
            (log) scale, to show it at another level (internal).
        confounded: why the comparison is confounded (never decided; "" when not).
        adjust: how ``p_adj`` was adjusted (:data:`ADJUSTMENTS`): "Holm" (a primary row of
            :func:`decide`), "Bonferroni" (08's primary family), "none" (exploratory,
            twin and learned rows: ``p_adj = p``); "" before a decision and for invalid rows.

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
    margin_note: str = ""
    family: str = PRIMARY
    family_note: str = ""
    ci_level: float = 0.95
    se: float = float("nan")
    dof: float = float("nan")
    confounded: str = ""
    adjust: str = ""

    def __post_init__(self) -> None:
        if not self.verdict:
            self.verdict = verdict_of(self, self.p)
        if not self.verdict_text:
            self.verdict_text = self.verdict

    @property
    def supported(self) -> bool:
        """True iff the verdict is "supported"."""
        return self.verdict == "supported"


def is_number(x: float | None) -> bool:
    """True unless ``x`` is None or NaN (a statistic that was computed).

    Example:
        >>> is_number(0.5), is_number(float("nan")), is_number(None)
        (True, False, False)
    """
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
    if f.verdict == "invalid" or not (
        is_number(p) and is_number(f.ci_low) and is_number(f.ci_high)
    ):
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


def _decision_interval(
    sides: I.Sides, stat: I.Stat, kind: str, *, level: float = 0.95, **kw: Any
) -> I.Interval:
    """The interval that decides a row: :func:`~lgkit.analysis.inference.interval`, for
    no-difference claims with the SE scaled by
    :func:`~lgkit.analysis.intervals.equivalence_factor` (their size at the margin)."""
    iv = I.interval(sides, stat, level=level, **kw)
    if kind != "equivalence":
        return iv
    from lgkit.analysis.intervals import equivalence_factor, widened

    n = min(len(sides.a), len(sides.b))
    return widened(iv, equivalence_factor(n))


def interval_at(f: Finding, level: float) -> tuple[float, float] | None:
    """``f``'s decision interval at ``level`` (shown scale), recomputed from its recipe
    (same method, resamples and seed), else from its SE and df (t); None when neither.

    Example:
        >>> f = Finding("c", "s", 1.0, math.exp(-0.2), math.exp(0.2), 0.01, se=0.1, dof=1000)
        >>> [round(math.log(x), 3) for x in interval_at(f, 0.99)]
        [-0.258, 0.258]
    """
    rec = f.recipe if f.recipe is not None and hasattr(f.recipe, "sides") else None
    log = bool(rec.kw.get("log", True)) if rec is not None else f.null == 1.0
    fwd = math.exp if log else (lambda v: v)
    if rec is not None:
        kw = {k: rec.kw[k] for k in ("n_boot", "seed") if k in rec.kw}
        if "interval_method" in rec.kw:
            kw["method"] = rec.kw["interval_method"]
        with np.errstate(divide="ignore", invalid="ignore"):
            iv = _decision_interval(rec.sides, rec.stat, f.kind, level=level, **kw)
        return float(fwd(iv.low)), float(fwd(iv.high))
    if is_number(f.se) and is_number(f.dof) and is_number(f.estimate) and f.dof > 0:
        from lgkit.analysis.studentt import t_ppf

        est = math.log(f.estimate) if log and f.estimate > 0 else f.estimate
        h = t_ppf(1 - (1 - level) / 2, f.dof) * f.se
        return float(fwd(est - h)), float(fwd(est + h))
    return None


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
                f"(n={n}): no verdict possible at this size"
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
    iv = _decision_interval(sides, stat, kind, n_boot=n_boot, seed=seed, method=interval_method)
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
        se=iv.se,
        dof=iv.df,
        **kw,
    )
    if size_notes and f.verdict == "inconclusive":  # the reason in the verdict's text
        f.verdict_text = f"inconclusive: {size_notes[0]}"
    return f


def fmt3(x: float | None) -> str:
    """``x`` to 3 significant digits, as every verdict text shows numbers ("nan" if missing).

    Example:
        >>> fmt3(0.012345), fmt3(float("nan"))
        ('0.0123', 'nan')
    """
    return "nan" if not is_number(x) else f"{x:.3g}"


def control_text(twin: Finding) -> str:
    """One line describing the random twin's result (own 95% CI, unadjusted p: a control).

    Example:
        >>> control_text(Finding("c", "s", 0.5, 0.4, 0.6, 0.01))
        'random twin: 0.5 [0.4, 0.6], p=0.01 -> supported'
    """
    if twin.verdict == "invalid":
        return f"random twin: {twin.verdict_text}"
    p = f"p={fmt3(twin.p)}"
    text = (
        f"random twin: {fmt3(twin.estimate)} [{fmt3(twin.ci_low)}, {fmt3(twin.ci_high)}], "
        f"{p} -> {twin.verdict}"
    )
    return f"{text} ({twin.detail})" if twin.detail.startswith("random twin pooled") else text


def exploratory(f: Finding, why: str) -> Finding:
    """A copy of ``f`` in the :data:`EXPLORATORY` family, ``why`` naming the breakdown.

    Example:
        >>> exploratory(Finding("c"), "layer breakdown").family
        'exploratory'
    """
    return replace(f, family=EXPLORATORY, family_note=why)


def cannot_decide(f: Finding, m: int = 1, alpha: float = I.ALPHA) -> str:
    """Why ``f`` can reach no verdict at its size, with the smallest effect it could
    detect ("" when it could decide).

    Equivalence with a two-sided margin: the interval's half-width is at least the
    margin's (even an estimate of exactly no difference would not fit inside); the
    narrowest margin this size could establish is the half-width. Non-inferiority (a
    one-sided margin, the other bound open): even an estimate of exactly no difference
    would put the interval's bound on the margin's side at or beyond the margin; the
    narrowest margin this size could establish is no difference plus (minus) the
    half-width. Difference claims: the smallest p the permutation test can give, times
    the ``m`` claims of a Holm family, is not below ``alpha``.

    Example:
        >>> eq = Finding("c", estimate=1.0, ci_low=0.74, ci_high=1.35, p=0.4,
        ...              kind="equivalence", margin=(1 / 1.1, 1.1), n_questions=12)
        >>> cannot_decide(eq).split(";")[1]
        ' the narrowest margin 12 questions could establish is a ratio within [0.74, 1.35]'
        >>> cannot_decide(replace(eq, margin=(0.5, 2.0)))
        ''
        >>> ni = replace(eq, ci_low=0.0723, ci_high=9.75, margin=(0.0, 1.5))
        >>> cannot_decide(ni).split("; ")[1]
        'the narrowest margin 12 questions could establish is a ratio below 11.6'
        >>> cannot_decide(replace(ni, ci_low=0.9, ci_high=1.2))
        ''
    """
    if f.kind == "equivalence":
        return _cannot_reach_margin(f)
    rec = f.recipe
    if rec is None or not hasattr(rec, "sides"):
        return ""
    s = rec.sides
    mp = I.min_p(len(s.a), s.paired, n_b=len(s.b), n_perm=int(rec.kw.get("n_boot", 1000)))
    if mp * max(m, 1) < alpha:
        return ""
    times = f" × {m} primary claims (Holm)" if m > 1 else ""
    return (
        f"no verdict possible at this size: the smallest possible p ({mp:.3g}){times} is not "
        f"below {alpha:g}; no effect, however large, can be detected"
    )


def _cannot_reach_margin(f: Finding) -> str:
    """:func:`cannot_decide` of a no-difference row (equivalence or non-inferiority)."""
    lo, hi = f.margin
    log = f.null == 1.0
    if not (is_number(f.ci_low) and is_number(f.ci_high)) or (log and f.ci_low <= 0):
        return ""
    open_lo = lo == -math.inf or (log and lo <= 0)
    open_hi = hi == math.inf
    if open_lo and open_hi:
        return ""
    tr = math.log if log else (lambda v: v)
    back = math.exp if log else (lambda v: v)
    hw = (tr(f.ci_high) - tr(f.ci_low)) / 2
    null = tr(f.null)
    unit = " in logs" if log else ""
    what = "a ratio" if log else "a difference"
    n = f.n_questions
    if open_lo or open_hi:  # non-inferiority: only the bound on the margin's side counts
        bound = hi if open_lo else lo
        gap = tr(bound) - null if open_lo else null - tr(bound)
        if hw < gap:
            return ""
        side, best = ("below", back(null + hw)) if open_lo else ("above", back(null - hw))
        return (
            f"no verdict possible at this size: the interval's half-width (±{hw:.3g}{unit}) is "
            f"at least the margin's distance from no difference ({gap:.3g}{unit}), so even an "
            f"estimate of exactly no difference would not establish it; the narrowest margin "
            f"{n} questions could establish is {what} {side} {best:.3g}"
        )
    mw = (tr(hi) - tr(lo)) / 2
    if hw < mw:
        return ""
    low, high = (back(-hw), back(hw)) if log else (-hw, hw)
    return (
        f"no verdict possible at this size: the interval's half-width (±{hw:.3g}{unit}) is "
        f"at least the margin's (±{mw:.3g}); the narrowest margin {n} questions "
        f"could establish is {what} within [{low:.3g}, {high:.3g}]"
    )


def findings_table(findings: Iterable[Finding]) -> pd.DataFrame:
    """Findings as a DataFrame with the reader-facing columns (:data:`COLUMNS`).

    Example:
        >>> findings_table([Finding("x", "s", 1.0)]).columns.tolist()[:4]
        ['claim', 'statistic', 'estimate', 'ci_low']
    """
    rows = [{k: getattr(f, k) for k in COLUMNS} for f in findings]
    return pd.DataFrame(rows, columns=COLUMNS)
