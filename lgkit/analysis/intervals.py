"""Calibrated intervals for question-level comparisons (pure NumPy).

:func:`interval` gives the 95% interval shown in every finding and used to decide it:
Student t on the jackknife standard error (default, ``method="t"``), or the
studentised bootstrap (bootstrap-t with a jackknife SE inside every resample). Both
treat the question as the unit: paired sides are resampled / left out jointly, unpaired
sides each on their own (Hsu's df ``min(na, nb) - 1``), so both groups' uncertainty enters.
The percentile bootstrap (:func:`lgkit.analysis.inference.ci`) under-covers at a dozen
questions; ``tests/test_calibration.py`` checks coverage by simulation. :func:`tost` is
the equivalence / non-inferiority p consistent with the interval. A comparison's two
sides (:class:`Sides`, built by :func:`lgkit.analysis.inference.side_arrays`) and its
statistic (:data:`Stat`) are defined here, below the tests that use them too.

Example:
    >>> from lgkit.analysis.inference import level
    >>> a = np.random.default_rng(0).lognormal(0, 0.3, size=(12, 1, 1, 3))
    >>> s = Sides(a, a * 0.8, True, list("abcdefghijkl"), list("abcdefghijkl"), ["q"], [0, 1, 2])
    >>> iv = interval(s, lambda x, y: np.log(level(y[..., 0, :, :]) / level(x[..., 0, :, :])))
    >>> round(float(np.exp(iv.estimate)), 3), round(iv.high - iv.low, 9)  # exactly 0.8: no spread
    (0.8, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lgkit.analysis.studentt import t_cdf, t_ppf

INTERVAL_METHOD = "t"

Stat = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``stat(mean_a, mean_b)``: side means ``[..., cell, module, layer]`` -> ``[...]``."""


@dataclass
class Sides:
    """Per-question layer curves of the two sides of a comparison.

    Attributes:
        a, b: arrays ``[question, cell, module, layer]``.
        paired: True when ``a`` and ``b`` hold the same questions in the same order.
        qids_a, qids_b: the questions of each side.
        modules, layers: the axes' labels.
        truncated: per side, whether every row of the side is truncated.
    """

    a: np.ndarray
    b: np.ndarray
    paired: bool
    qids_a: list[str]
    qids_b: list[str]
    modules: list[str]
    layers: list[int]
    truncated: tuple[bool, bool] = (False, False)

    @property
    def n_questions(self) -> int:
        """Questions in the comparison (paired: common ones; else the smaller side)."""
        return len(self.qids_a) if self.paired else min(len(self.qids_a), len(self.qids_b))


def _loo(x: np.ndarray) -> np.ndarray:
    """Leave-one-out means of ``x[B, n, ...]`` over axis 1: ``[B, n, ...]``."""
    return (x.sum(axis=1, keepdims=True) - x) / (x.shape[1] - 1)


def _jackknife(
    stat: Stat, xa: np.ndarray, xb: np.ndarray, paired: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Jackknife variance and degrees of freedom of ``stat`` for a batch of samples
    ``xa[B, na, ...]``, ``xb[B, nb, ...]``: paired (leave one question out of both
    sides, df n - 1) or unpaired (sum of the per-side variances, Hsu's conservative
    df ``min(na, nb) - 1``: Welch's df under-covered at 12 questions in simulation)."""
    na, nb = xa.shape[1], xb.shape[1]
    if paired:
        th = stat(_loo(xa), _loo(xb))
        var = (na - 1) / na * ((th - th.mean(1, keepdims=True)) ** 2).sum(1)
        return var, np.full(var.shape, na - 1.0)
    ma, mb = xa.mean(1, keepdims=True), xb.mean(1, keepdims=True)
    ta = stat(_loo(xa), np.broadcast_to(mb, (mb.shape[0], na, *mb.shape[2:])))
    tb = stat(np.broadcast_to(ma, (ma.shape[0], nb, *ma.shape[2:])), _loo(xb))
    va = (na - 1) / na * ((ta - ta.mean(1, keepdims=True)) ** 2).sum(1)
    vb = (nb - 1) / nb * ((tb - tb.mean(1, keepdims=True)) ** 2).sum(1)
    return va + vb, np.full(va.shape, min(na, nb) - 1.0)


@dataclass(frozen=True)
class Interval:
    """A two-sided interval of a statistic and what it is made of.

    Attributes:
        estimate, low, high: point estimate and bounds (the statistic's own scale).
        se: jackknife standard error of the estimate.
        df: degrees of freedom (n - 1 paired, ``min(na, nb) - 1`` unpaired).
        method: ``"studentized"`` (bootstrap-t with a jackknife SE inside every
            resample) or ``"t"`` (Student t on the jackknife SE).
        level: the coverage aimed at (0.95).
        tstar: the bootstrap distribution of the studentised statistic (``"studentized"``).
    """

    estimate: float
    low: float
    high: float
    se: float
    df: float
    method: str
    level: float = 0.95
    tstar: np.ndarray | None = None

    @property
    def text(self) -> str:
        """How the interval was made, for a finding's detail."""
        if self.method == "t":
            return f"{self.level:.0%} CI: Student t on the jackknife SE (df {self.df:.3g})"
        n = 0 if self.tstar is None else len(self.tstar)
        return f"{self.level:.0%} CI: studentised bootstrap, jackknife SE ({n} resamples)"

    def p_above(self, bound: float) -> float:
        """One-sided p of ``H0: theta <= bound`` consistent with the interval: below
        ``(1 - level) / 2`` iff ``low > bound``."""
        return self._tail(self._z(bound), upper=True)

    def p_below(self, bound: float) -> float:
        """One-sided p of ``H0: theta >= bound``: below ``(1 - level) / 2`` iff ``high < bound``."""
        return self._tail(self._z(bound), upper=False)

    def _z(self, bound: float) -> float:
        d = self.estimate - bound
        if self.se > 0 or math.isnan(d):
            return d / self.se if self.se > 0 else float("nan")
        return math.copysign(math.inf, d) if d != 0 else float("nan")

    def _tail(self, z: float, *, upper: bool) -> float:
        if math.isinf(z):
            return 0.0 if (z > 0) == upper else 1.0
        if not (math.isfinite(z) and self.se > 0):
            return float("nan")
        if self.method == "t":
            c = t_cdf(z, self.df)
            return 1.0 - c if upper else c
        ts = self.tstar[np.isfinite(self.tstar)] if self.tstar is not None else np.zeros(0)
        if not len(ts):
            return float("nan")
        return float(np.mean(ts >= z) if upper else np.mean(ts <= z))


def interval(
    sides: Sides,
    stat: Stat,
    *,
    level: float = 0.95,
    method: str = INTERVAL_METHOD,
    n_boot: int = 1000,
    seed: int = 0,
    chunk: int = 200,
) -> Interval:
    """Calibrated interval of ``stat``: jackknife t (default) or studentised bootstrap.

    Both treat questions as the unit (paired: jointly; unpaired: each side on its own,
    so both groups' uncertainty enters). The t interval is ``est -/+ t(df) se``; the
    bootstrap-t interval (``n_boot`` resamples, ``seed``) is
    ``[est - q*(1 - a/2) se, est - q*(a/2) se]`` with ``q*`` the quantiles of
    ``(T* - est) / se*`` and every ``se*`` the jackknife SE of its resample.

    Example:
        >>> from lgkit.analysis.inference import level
        >>> rng = np.random.default_rng(1)
        >>> a = rng.lognormal(0, 0.3, size=(12, 1, 1, 3))
        >>> s = Sides(a, a * 0.7 * rng.lognormal(0, 0.1, size=a.shape), True,
        ...           list("abcdefghijkl"), list("abcdefghijkl"), ["q"], [0, 1, 2])
        >>> iv = interval(s, lambda x, y: np.log(level(y[..., 0, :, :]) / level(x[..., 0, :, :])))
        >>> bool(iv.low < np.log(0.7) < iv.high), iv.method
        (True, 't')

        Two groups of different questions (e.g. RD at wiki popular_500 over RD at GSM8K
        detailed; cells: correct, irrelevant): the unpaired route adds both groups'
        variances, so the interval is wider than with the reference RD held fixed.

        >>> from lgkit.analysis.inference import rd
        >>> def rd_ratio(x, y):
        ...     return np.log(rd(y[..., 0, :, :], y[..., 1, :, :]) / rd(x[..., 0, :, :], x[..., 1, :, :]))
        >>> gsm = rng.lognormal(0, 0.3, size=(12, 2, 1, 3)) * [[[1.0]], [[1.5]]]
        >>> wiki = rng.lognormal(0, 0.3, size=(10, 2, 1, 3)) * [[[1.0]], [[1.1]]]
        >>> qs = [str(k) for k in range(12)]
        >>> two = interval(Sides(gsm, wiki, False, qs, qs[:10], ["q"], [0, 1, 2]), rd_ratio)
        >>> fixed = np.broadcast_to(gsm.mean(0), gsm.shape)  # the reference as a constant
        >>> one = interval(Sides(fixed, wiki, False, qs, qs[:10], ["q"], [0, 1, 2]), rd_ratio)
        >>> two.df, bool(two.se > one.se), bool(two.high - two.low > one.high - one.low)
        (9.0, True, True)
    """
    a, b = sides.a[None], sides.b[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        est = float(stat(sides.a.mean(0), sides.b.mean(0)))
        var, df = _jackknife(stat, a, b, sides.paired)
    se, dfv = float(np.sqrt(var[0])), float(df[0])
    q = (1 - level) / 2
    if method == "t":
        crit = t_ppf(1 - q, dfv)
        return Interval(est, est - crit * se, est + crit * se, se, dfv, "t", level)
    rng = np.random.default_rng(seed)
    na, nb = len(sides.a), len(sides.b)
    out = []
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        ia = rng.integers(0, na, size=(k, na))
        ib = ia if sides.paired else rng.integers(0, nb, size=(k, nb))
        xa, xb = sides.a[ia], sides.b[ib]
        with np.errstate(divide="ignore", invalid="ignore"):
            th = stat(xa.mean(1), xb.mean(1))
            v, _ = _jackknife(stat, xa, xb, sides.paired)
            out.append((th - est) / np.sqrt(v))
    ts = np.concatenate(out) if out else np.zeros(0)
    ok = ts[np.isfinite(ts)]
    if not (len(ok) and se > 0 and math.isfinite(se)):
        return Interval(est, float("nan"), float("nan"), se, dfv, "studentized", level, ts)
    qlo, qhi = np.quantile(ok, [q, 1 - q])
    return Interval(est, est - qhi * se, est - qlo * se, se, dfv, "studentized", level, ts)


def tost(iv: Interval, low: float, high: float) -> float:
    """TOST p of ``low < theta < high`` consistent with ``iv``: twice the larger
    one-sided p, so ``p < 1 - level`` iff ``iv`` lies inside ``(low, high)`` (each
    side tested at one-sided ``(1 - level) / 2``, 2.5% for the 95% interval). An
    infinite bound (non-inferiority) contributes nothing.

    Example:
        >>> iv = Interval(0.0, -0.1, 0.1, 0.05, 30.0, "t")
        >>> tost(iv, -0.2, 0.2) < 0.05, tost(iv, -0.05, 0.2) < 0.05, tost(iv, -math.inf, 0.2) < 0.05
        (True, False, True)
    """
    p = max(iv.p_above(low), iv.p_below(high))
    return float(min(1.0, 2 * p)) if math.isfinite(p) else float("nan")


def equivalence_factor(n: int) -> float:
    """SE inflation ``1 + 1/n`` of the no-difference (equivalence / non-inferiority)
    decisions at ``n`` questions (the smaller side when unpaired).

    The jackknife t interval of a log ratio of means is a little short on the side that
    decides a no-difference claim (the log ratio is skewed): at the margin's edge the
    paired level ratio's "CI inside the margin" rate was 0.028-0.030 at n = 10, 12 and 24
    against the nominal 0.025. Scaling the SE by ``1 + 1/n`` brings it to 0.020-0.024
    (``tests/test_calibration.py``, 20,000 replications per n); difference claims keep
    the plain interval (its coverage is checked there too).

    Example:
        >>> equivalence_factor(12)
        1.0833333333333333
    """
    return 1.0 + 1.0 / max(int(n), 1)


def widened(iv: Interval, factor: float) -> Interval:
    """``iv`` with its SE and both half-widths scaled by ``factor`` (same estimate,
    method and level; :meth:`Interval.p_above` stays consistent with the bounds).

    Example:
        >>> w = widened(Interval(0.0, -0.1, 0.2, 0.05, 11.0, "t"), 2.0)
        >>> round(w.low, 9), round(w.high, 9), w.se
        (-0.2, 0.4, 0.1)
    """
    lo = iv.estimate - factor * (iv.estimate - iv.low)
    hi = iv.estimate + factor * (iv.high - iv.estimate)
    return Interval(iv.estimate, lo, hi, iv.se * factor, iv.df, iv.method, iv.level, iv.tstar)
