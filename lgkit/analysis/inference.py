"""Question-level inference for the paper's claims (pure NumPy/pandas).

The unit of resampling is the *question* (``qid``: the ``sample_id`` with its
response-type tokens removed), never the layer or the example. A comparison has two
*sides* (e.g. ``cot=none`` vs ``cot=detailed``), each a list of *cells* (row filters,
e.g. correct and irrelevant responses) whose per-question layer curves are stacked
into an array ``[question, cell, module, layer]``. When both sides hold the same
questions the comparison is *paired*: the bootstrap resamples questions jointly and
the permutation test swaps the two sides within a question (the sign-flip test
generalised to non-linear statistics). Otherwise each side is resampled on its own
(cluster bootstrap) and the test permutes question labels between the sides.

Verdict rule (written into every finding, :data:`RULE_DIFFERENCE` and
:data:`RULE_EQUIVALENCE`), at ``alpha = 0.05`` after Holm within a notebook:

* difference claims: *supported* iff ``p_adj < alpha`` and the 95% CI lies on the
  claimed side of the null; *contradicted* iff ``p_adj < alpha`` and the CI lies on
  the other side; else *inconclusive*;
* no-difference claims: *supported* iff the equivalence (TOST) ``p_adj < alpha``, i.e.
  the 90% CI lies inside the stated margin; *contradicted* iff the 95% CI lies
  entirely outside the margin; else *inconclusive*; never from a failed difference test;
* *invalid* when the comparison is vacuous: identical groups, a group whose rows are
  all truncated, or fewer than :data:`MIN_QUESTIONS` questions.

Example:
    >>> from lgkit.analysis.fixtures import synthetic_stats
    >>> df = synthetic_stats(n_samples=6, n_layers=4, datasets=("gsm8k",))
    >>> sides = side_arrays(df, "nuclear_norm", [{"cot": "none", "correct": True}],
    ...                     [{"cot": "detailed", "correct": True}])
    >>> sides.paired, sides.a.shape
    (True, (6, 1, 4, 4))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis.tables import filter_table, metric_values

ALPHA = 0.05
MIN_QUESTIONS = 3
VERDICTS = ("supported", "contradicted", "inconclusive", "invalid")
RULE_DIFFERENCE = (
    "supported iff Holm-adjusted permutation p < 0.05 and the 95% question-bootstrap CI "
    "excludes the null on the claimed side; contradicted iff p_adj < 0.05 with the CI on "
    "the other side; else inconclusive"
)
RULE_EQUIVALENCE = (
    "no-difference claim, equivalence test (TOST): supported iff Holm-adjusted TOST p < 0.05 "
    "(90% CI inside the margin {margin}); contradicted iff the 95% CI lies outside the "
    "margin; else inconclusive"
)
_RESPONSE_TOKENS = {"c", "i", "correct", "irrelevant", "none", "simplified", "detailed"}

Stat = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``stat(mean_a, mean_b)``: side means ``[..., cell, module, layer]`` -> ``[...]``."""


def question_ids(df: pd.DataFrame) -> pd.Series:
    """The question of every row: ``qid`` when present, else ``sample_id`` without
    the response-type tokens (cot level, correct/irrelevant tag).

    Example:
        >>> question_ids(pd.DataFrame({"sample_id": ["gsm8k-0003-detailed-correct",
        ...                                          "gsm8k-none-c-003"]})).tolist()
        ['gsm8k-0003', 'gsm8k-003']
    """
    if "qid" in df.columns:
        return df["qid"].astype(str)

    def strip(s: str) -> str:
        return "-".join(t for t in re.split(r"-", str(s)) if t not in _RESPONSE_TOKENS)

    return df["sample_id"].map(strip)


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


def _cell_frame(
    df: pd.DataFrame, metric: str, cell: Mapping[str, Any], norm: str = "mean"
) -> pd.DataFrame:
    d = filter_table(df, cell)
    if d.empty:
        return pd.DataFrame()
    d = d.assign(_q=question_ids(d).to_numpy(), _v=metric_values(d, metric, norm).to_numpy())
    return d.pivot_table(index="_q", columns=["module", "layer"], values="_v", aggfunc="mean")


def _stack(frames: list[pd.DataFrame], qids: list[str], cols: pd.Index) -> np.ndarray:
    mods = list(dict.fromkeys(cols.get_level_values(0)))
    lays = sorted(set(cols.get_level_values(1)))
    out = np.stack([f.loc[qids, cols].to_numpy(dtype=float) for f in frames], axis=1)
    return out.reshape(len(qids), len(frames), len(mods), len(lays))


def side_arrays(
    df: pd.DataFrame,
    metric: str,
    cells_a: Sequence[Mapping[str, Any]],
    cells_b: Sequence[Mapping[str, Any]],
    *,
    modules: Sequence[str] | None = None,
    df_b: pd.DataFrame | None = None,
    norm: str = "mean",
) -> Sides:
    """Stack the per-question curves of two sides (see the module docstring).

    Questions missing from any cell of a side are dropped from it; when both sides
    then share at least 80% of their questions the comparison is paired on the
    common ones. ``df_b`` (default ``df``) is the table of side ``b``. ``norm``: the
    loss normalisation of the metric (:func:`lgkit.analysis.tables.metric_values`).
    """
    other: pd.DataFrame = df if df_b is None else df_b
    if modules is not None:
        df = df[df["module"].isin(list(modules))]
        other = other[other["module"].isin(list(modules))]
    fa = [_cell_frame(df, metric, c, norm) for c in cells_a]
    fb = [_cell_frame(other, metric, c, norm) for c in cells_b]
    empty = np.zeros((0, max(len(cells_a), 1), 0, 0))
    if any(f.empty for f in fa + fb):
        return Sides(empty, empty, False, [], [], [], [])
    cols = fa[0].columns
    for f in fa[1:] + fb:
        cols = cols.intersection(f.columns)
    cols = cols.sort_values()
    qa = sorted(set.intersection(*(set(f.dropna(subset=list(cols)).index) for f in fa)))
    qb = sorted(set.intersection(*(set(f.dropna(subset=list(cols)).index) for f in fb)))
    common = sorted(set(qa) & set(qb))
    paired = len(cells_a) == len(cells_b) and len(common) >= 0.8 * max(min(len(qa), len(qb)), 1)
    if paired:
        qa = qb = common
    trunc = tuple(
        bool("truncated" in d.columns and len(x) and filter_table(d, c)["truncated"].all())
        for d, cs, x in ((df, cells_a, qa), (other, cells_b, qb))
        for c in cs[:1]
    )
    return Sides(
        _stack(fa, qa, cols),
        _stack(fb, qb, cols),
        paired and len(common) > 0,
        qa,
        qb,
        list(dict.fromkeys(cols.get_level_values(0))),
        sorted(set(cols.get_level_values(1))),
        (trunc[0], trunc[1]),
    )


# --------------------------------------------------------------------------- statistics


def level(curves: np.ndarray) -> np.ndarray:
    """Mean-curve level: mean over layers and modules of ``[..., module, layer]``.

    Example:
        >>> float(level(np.array([[1.0, 3.0], [2.0, 2.0]])))
        2.0
    """
    return curves.mean(axis=(-1, -2))


def mad(curves: np.ndarray, layers: slice | None = None) -> np.ndarray:
    """Authors' MAD (mean |adjacent difference| over layers), averaged over modules.

    Example:
        >>> float(mad(np.array([[1.0, 3.0, 2.0]])))
        1.5
    """
    c = curves if layers is None else curves[..., layers]
    return np.abs(np.diff(c, axis=-1)).mean(axis=(-1, -2))


def relative_mad(curves: np.ndarray) -> np.ndarray:
    """MAD ÷ level: :func:`mad` over :func:`level`, scale-free ("flatter" beyond "smaller").

    Example:
        >>> float(relative_mad(np.array([[2.0, 4.0, 6.0]])))  # MAD 2 / level 4
        0.5
    """
    return mad(curves) / level(curves)


def rd(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Authors' RD ``mean_l |ref - other| / |ref|`` averaged over modules.

    Example:
        >>> float(rd(np.array([[1.0, 2.0, 4.0]]), np.array([[1.5, 2.0, 2.0]])))
        0.3333333333333333
    """
    den = np.where(ref == 0, 1e-10, np.abs(ref))
    return (np.abs(ref - other) / den).mean(axis=(-1, -2))


# --------------------------------------------------------------------------- resampling


def _means(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return x[idx].mean(axis=-4)


def bootstrap(
    sides: Sides, stat: Stat, *, n_boot: int = 1000, seed: int = 0, chunk: int = 250
) -> np.ndarray:
    """Bootstrap distribution of ``stat`` resampling questions (paired or per side).

    Example:
        >>> s = Sides(np.ones((4, 1, 1, 2)), 2 * np.ones((4, 1, 1, 2)), True,
        ...           list("abcd"), list("abcd"), ["q"], [0, 1])
        >>> bootstrap(s, lambda a, b: level(b[..., 0, :, :]) / level(a[..., 0, :, :]), n_boot=5)
        array([2., 2., 2., 2., 2.])
    """
    rng = np.random.default_rng(seed)
    qa, qb = len(sides.a), len(sides.b)
    out = []
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        ia = rng.integers(0, qa, size=(k, qa))
        ib = ia if sides.paired else rng.integers(0, qb, size=(k, qb))
        out.append(stat(_means(sides.a, ia), _means(sides.b, ib)))
    return np.concatenate(out) if out else np.zeros(0)


def permutation_test(
    sides: Sides, stat: Stat, null: float = 0.0, *, n_perm: int = 1000, seed: int = 0
) -> float:
    """Two-sided permutation p-value of ``stat - null``.

    Paired sides: each question's two sides are swapped with probability 1/2 (the
    sign-flip test); unpaired: question labels are permuted between the sides.
    ``p = (1 + #{|T*| >= |T|}) / (1 + n_perm)``.

    Example:
        >>> a = np.arange(8.0).reshape(8, 1, 1, 1) + 1
        >>> s = Sides(a, a + 5, True, list("abcdefgh"), list("abcdefgh"), ["q"], [0])
        >>> permutation_test(s, lambda x, y: level(y[..., 0, :, :] - x[..., 0, :, :]), n_perm=200) < 0.05
        True
    """
    rng = np.random.default_rng(seed + 1)
    obs = abs(float(stat(sides.a.mean(0), sides.b.mean(0))) - null)
    hits = 0
    for start in range(0, n_perm, 100):
        k = min(100, n_perm - start)
        if sides.paired:
            f = (rng.random((k, len(sides.a))) < 0.5)[:, :, None, None, None]
            pa = np.where(f, sides.b[None], sides.a[None]).mean(1)
            pb = np.where(f, sides.a[None], sides.b[None]).mean(1)
        else:
            pool = np.concatenate([sides.a, sides.b])
            perms = np.argsort(rng.random((k, len(pool))), axis=1)
            na = len(sides.a)
            pa, pb = pool[perms[:, :na]].mean(1), pool[perms[:, na:]].mean(1)
        t = np.abs(stat(pa, pb) - null)
        hits += int(np.sum(t >= obs - 1e-12 * max(obs, 1.0)))
    return float((1 + hits) / (1 + n_perm))


def holm(p: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (NaN entries are left out and stay NaN).

    Example:
        >>> [round(p, 6) for p in holm([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    arr = np.asarray(p, dtype=float)
    ok = np.flatnonzero(~np.isnan(arr))
    out = np.full(arr.shape, np.nan)
    m, running = len(ok), 0.0
    for rank, i in enumerate(ok[np.argsort(arr[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * arr[i]))
        out[i] = running
    return [float(x) for x in out]


def tost_p(boot: np.ndarray, low: float, high: float) -> float:
    """Bootstrap TOST p-value that the statistic lies inside ``(low, high)``.

    The larger of the two one-sided p-values ``P*(T <= low)`` and ``P*(T >= high)``
    (with the +1 correction); ``p < alpha`` iff the ``1 - 2 alpha`` percentile CI
    lies inside the margin.

    Example:
        >>> tost_p(np.linspace(0.9, 1.1, 101), 0.8, 1.25) < 0.05
        True
    """
    n = len(boot)
    if n == 0:
        return float("nan")
    lo = (1 + np.sum(boot <= low)) / (1 + n)
    hi = (1 + np.sum(boot >= high)) / (1 + n)
    return float(max(lo, hi))


def ci(boot: np.ndarray, level_: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a bootstrap distribution.

    Example:
        >>> [round(x, 6) for x in ci(np.arange(201.0))]
        [5.0, 195.0]
    """
    if len(boot) == 0 or np.all(np.isnan(boot)):
        return float("nan"), float("nan")
    q = (1 - level_) / 2
    lo, hi = np.nanquantile(boot, [q, 1 - q])
    return float(lo), float(hi)


def noise_floor_rd(curves: np.ndarray, *, n_split: int = 200, seed: int = 0) -> float:
    """RD between the mean curves of two random halves of the same responses.

    ``curves`` is ``[question, module, layer]`` (e.g. the correct responses of one
    CoT level); the mean over ``n_split`` random splits is the RD that noise alone
    produces at this sample size.

    Example:
        >>> c = np.random.default_rng(0).normal(10, 1, size=(20, 2, 5))
        >>> 0 < noise_floor_rd(c) < 0.1
        True
    """
    q = len(curves)
    if q < 2:
        return float("nan")
    rng = np.random.default_rng(seed + 2)
    order = np.argsort(rng.random((n_split, q)), axis=1)
    h = q // 2
    return float(np.mean(rd(curves[order[:, :h]].mean(1), curves[order[:, h : 2 * h]].mean(1))))
