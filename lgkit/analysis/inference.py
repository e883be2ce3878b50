"""Question-level inference for the paper's claims (pure NumPy/pandas).

The unit of resampling is the *question* (``qid``: the ``sample_id`` with its
response-type tokens removed), never the layer or the example. A comparison has two
*sides* (e.g. ``cot=none`` vs ``cot=detailed``), each a list of *cells* (row filters,
e.g. correct and irrelevant responses) whose per-question layer curves are stacked
into an array ``[question, cell, module, layer]``. When both sides hold the same
questions the comparison is *paired*: the interval leaves questions out jointly and the
permutation test swaps the two sides within a question (the sign-flip test generalised
to non-linear statistics), exactly over all ``2^n`` flips when ``2^n <= 1e5``.
Otherwise each side is left out on its own (both groups' uncertainty) and the test
permutes question labels between the sides (exact when ``C(na+nb, na) <= 1e5``); beyond
the exact limit Monte Carlo with ``>= 20 m / alpha`` permutations for a Holm family of
``m`` rows (:data:`FAMILY_SIZE`). The 95% interval is :func:`interval` (jackknife t,
:mod:`lgkit.analysis.intervals`), calibrated by simulation (``tests/test_calibration.py``).

Verdict rule (written into every finding, :data:`RULE_DIFFERENCE`,
:data:`RULE_EQUIVALENCE`, :data:`RULE_NONINFERIORITY`), at ``alpha = 0.05`` after Holm:

* difference claims: *supported* iff ``p_adj < alpha`` and the 95% CI lies on the
  claimed side of the null; *contradicted* iff ``p_adj < alpha`` and the CI lies on
  the other side; else *inconclusive*;
* no-difference claims: *supported* iff the shown 95% CI lies inside the margin (TOST
  at one-sided 2.5% per side; non-inferiority: the bound on the margin's side) and the
  Holm-adjusted TOST p (below 0.05 iff the CI is inside) is below ``alpha``;
  *contradicted* iff the CI lies entirely outside the margin; else *inconclusive*;
  only from :data:`MIN_EQUIVALENCE_QUESTIONS` questions; never from a failed
  difference test;
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

import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis.intervals import (  # noqa: F401
    INTERVAL_METHOD,
    Interval,
    Sides,
    Stat,
    interval,
    tost,
)
from lgkit.analysis.tables import filter_table, metric_values

ALPHA = 0.05
MIN_QUESTIONS = 3
MIN_EQUIVALENCE_QUESTIONS = 10
FAMILY_SIZE = 50
"""Default Holm family size for the Monte Carlo permutation count (the full profile
has ~50 rows); :func:`lgkit.analysis.findings.evaluate` passes its own."""
EXACT_LIMIT = 100_000
VERDICTS = ("supported", "contradicted", "inconclusive", "invalid")
RULE_DIFFERENCE = (
    "supported iff the permutation p (exact where 2^n or C(na+nb, na) <= 1e5, else >= "
    "20m/alpha Monte Carlo permutations; Holm-adjusted over the notebook's primary claims, "
    "unadjusted for exploratory rows) < 0.05 and the CI shown (Student t on the question "
    "jackknife SE; 95%, or 1 - 0.05/m for the m primary claims) excludes the null on the "
    "claimed side; contradicted iff p_adj < 0.05 with the CI on the other side; else "
    "inconclusive, with the reason when interval and test disagree"
)
RULE_EQUIVALENCE = (
    "no-difference claim, equivalence (TOST at one-sided 2.5% per side): supported iff the "
    "shown CI (95%, 1 - 0.05/m for the m primary claims; SE x (1 + 1/n)) lies inside the "
    "margin {margin} and the TOST p (Holm-adjusted for a primary claim) < 0.05 (p < 0.05 iff "
    "the 95% CI is inside); contradicted iff the CI lies outside the margin; "
    "else inconclusive; only from {min_n} questions{note}"
)
RULE_NONINFERIORITY = (
    "no-difference claim, non-inferiority (one-sided 2.5%): supported iff the shown CI's "
    "(95%, 1 - 0.05/m for the m primary claims; SE x (1 + 1/n)) {side} bound is {word} the "
    "margin {bound} and p (Holm-adjusted for a primary claim) < 0.05; contradicted iff the "
    "whole CI is beyond the margin; else inconclusive; "
    "only from {min_n} questions{note}"
)
_RESPONSE_TOKENS = {"c", "i", "correct", "irrelevant", "none", "simplified", "detailed"}


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


def ci(boot: np.ndarray, level_: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a bootstrap distribution (not used for verdicts: it
    under-covers at a dozen questions; see :func:`interval`).

    Example:
        >>> [round(x, 6) for x in ci(np.arange(201.0))]
        [5.0, 195.0]
    """
    if len(boot) == 0 or np.all(np.isnan(boot)):
        return float("nan"), float("nan")
    q = (1 - level_) / 2
    lo, hi = np.nanquantile(boot, [q, 1 - q])
    return float(lo), float(hi)


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


# --------------------------------------------------------------------------- permutation tests


def required_permutations(family_size: int = FAMILY_SIZE, alpha: float = ALPHA) -> int:
    """Monte Carlo permutations enough for Holm over ``family_size`` rows:
    ``ceil(20 m / alpha)`` (the smallest Holm threshold ``alpha / m`` is then
    resolved by 20 permutations).

    Example:
        >>> required_permutations(50), required_permutations(1)
        (20000, 400)
    """
    return math.ceil(20 * max(family_size, 1) / alpha)


@dataclass(frozen=True)
class PermutationResult:
    """A permutation p-value and how it was computed.

    Attributes:
        p: two-sided p (``#{|T*| >= |T|} / K`` over all K exact permutations, the
            identity included; Monte Carlo: ``(1 + hits) / (1 + n_perm)``).
        exact: True when every permutation was enumerated.
        n_perm: the permutations enumerated or drawn.
        paired: sign flips within questions (True) or label permutations.
    """

    p: float
    exact: bool
    n_perm: int
    paired: bool

    @property
    def text(self) -> str:
        """E.g. ``"p: exact sign-flip test (4096 flips)"``."""
        kind = "sign-flip test" if self.paired else "label-permutation test"
        unit = "flips" if self.paired else "relabellings"
        how = "exact" if self.exact else "Monte Carlo"
        return f"p: {how} {kind} ({self.n_perm} {unit})"


def _indicators(n: int, k: int, exact: bool, rng: np.random.Generator, n_perm: int):
    """Chunks of 0/1 matrices ``[K, n]``: all 2^n sign flips (``k = 0``), all
    ``k``-subsets of ``n`` labels, or ``n_perm`` random ones of either kind."""
    if exact and k == 0:
        for start in range(0, 2**n, 4096):
            codes = np.arange(start, min(start + 4096, 2**n))
            yield ((codes[:, None] >> np.arange(n)) & 1).astype(float)
    elif exact:
        combos = itertools.combinations(range(n), k)
        while block := list(itertools.islice(combos, 4096)):
            g = np.zeros((len(block), n))
            g[np.arange(len(block))[:, None], np.array(block)] = 1.0
            yield g
    else:
        for start in range(0, n_perm, 2048):
            m = min(2048, n_perm - start)
            if k == 0:
                yield (rng.random((m, n)) < 0.5).astype(float)
            else:
                yield (np.argsort(rng.random((m, n)), axis=1) < k).astype(float)


def _paired_parts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paired sides as ``(b − a per question, Σa, Σb)``, flattened: what a swap moves."""
    n = len(a)
    return (b - a).reshape(n, -1), a.sum(0).ravel(), b.sum(0).ravel()


def _swapped(
    data: np.ndarray,
    base: tuple[np.ndarray, np.ndarray],
    sizes: tuple[int, int],
    shape: tuple[int, ...],
    stat: Stat,
    draws: tuple[int, bool, np.random.Generator, int],
) -> Iterator[tuple[int, np.ndarray]]:
    """``(batch size, stat(a, b))`` of the two sides' means after each batch of swaps
    (:func:`_indicators` with ``draws = (k, exact, rng, n_perm)``): paired, the questions
    whose sides swap; unpaired (``k`` > 0), the questions that form side a."""
    k, exact, rng, n_perm = draws
    (base_a, base_b), (na, nb) = base, sizes
    for g in _indicators(len(data), k, exact, rng, n_perm):
        moved = g @ data
        pa = ((base_a + moved) / na).reshape(len(g), *shape)
        pb = ((base_b - moved) / nb).reshape(len(g), *shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            yield len(g), stat(pa, pb)


def permutation(
    sides: Sides,
    stat: Stat,
    null: float = 0.0,
    *,
    n_perm: int = 1000,
    seed: int = 0,
    family_size: int = FAMILY_SIZE,
    alpha: float = ALPHA,
    exact_limit: int = EXACT_LIMIT,
) -> PermutationResult:
    """Two-sided permutation test of ``stat - null``, exact where cheap.

    Paired sides: the two sides of a question are swapped (the sign-flip test),
    all ``2^n`` flips when ``2^n <= exact_limit``; unpaired: question labels are
    permuted between the sides, all ``C(na + nb, na)`` relabellings when at most
    ``exact_limit``. Otherwise Monte Carlo with ``max(n_perm,
    required_permutations(family_size, alpha))`` draws. ``family_size``: the Holm
    family the p will join (default :data:`FAMILY_SIZE`, the full profile's ~50 rows).

    Example:
        >>> a = np.arange(12.0).reshape(12, 1, 1, 1) + 1
        >>> s = Sides(a, a + 5, True, list("abcdefghijkl"), list("abcdefghijkl"), ["q"], [0])
        >>> r = permutation(s, lambda x, y: np.log(level(y[..., 0, :, :]) / level(x[..., 0, :, :])))
        >>> r.p == 2 / 4096, r.text
        (True, 'p: exact sign-flip test (4096 flips)')
    """
    rng = np.random.default_rng(seed + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        obs = abs(float(stat(sides.a.mean(0), sides.b.mean(0))) - null)
    shape = sides.a.shape[1:]
    if sides.paired:
        n, k = len(sides.a), 0
        data, base_a, base_b = _paired_parts(sides.a, sides.b)
        total, na, nb = 2**n if n < 64 else math.inf, n, n
    else:
        na, nb = len(sides.a), len(sides.b)
        n, k = na + nb, na
        data = np.concatenate([sides.a, sides.b]).reshape(n, -1)
        base_a, base_b = np.zeros(data.shape[1]), data.sum(0)
        total = math.comb(n, k)
    exact = total <= exact_limit
    draws = max(n_perm, required_permutations(family_size, alpha))
    hits, count = 0, 0
    tol = obs * (1 - 1e-9) - 1e-300
    for m, t in _swapped(data, (base_a, base_b), (na, nb), shape, stat, (k, exact, rng, draws)):
        hits += int(np.sum(np.abs(t - null) >= tol))
        count += m
    if exact:
        return PermutationResult(float(hits / count), True, count, sides.paired)
    return PermutationResult(float((1 + hits) / (1 + count)), False, count, sides.paired)


def permutation_test(
    sides: Sides, stat: Stat, null: float = 0.0, *, n_perm: int = 1000, seed: int = 0, **kw: Any
) -> float:
    """The p of :func:`permutation` (same keywords).

    Example:
        >>> a = np.arange(8.0).reshape(8, 1, 1, 1) + 1
        >>> s = Sides(a, a + 5, True, list("abcdefgh"), list("abcdefgh"), ["q"], [0])
        >>> permutation_test(s, lambda x, y: level(y[..., 0, :, :] - x[..., 0, :, :])) < 0.05
        True
    """
    return permutation(sides, stat, null, n_perm=n_perm, seed=seed, **kw).p


def min_p(n: int, paired: bool = True, *, n_b: int | None = None, n_perm: int = 1000,
          family_size: int = FAMILY_SIZE, alpha: float = ALPHA) -> float:  # fmt: skip
    """Smallest p :func:`permutation` can give for ``n`` questions (``n_b``: the
    second side's questions when unpaired; default ``n``).

    Exact tests: the identity and, for the kit's antisymmetric statistics (log-ratios
    change sign when the sides swap), the swap of every question reach ``|T|``:
    ``2 / 2^n`` paired, ``2 / C(2n, n)`` unpaired with equal sides (``1 / C`` else).
    Monte Carlo: ``1 / (1 + draws)``.

    Example:
        >>> min_p(4), min_p(12), min_p(3, paired=False)
        (0.125, 0.00048828125, 0.1)
    """
    nb = n if n_b is None else n_b
    if paired:
        total, reach = (2**n if n < 64 else math.inf), 2
    else:
        total, reach = math.comb(n + nb, n), 2 if n == nb else 1
    if total <= EXACT_LIMIT:
        return reach / total
    return 1 / (1 + max(n_perm, required_permutations(family_size, alpha)))


def min_p_note(n: int, paired: bool = True, *, n_b: int | None = None, alpha: float = ALPHA,
               **kw: Any) -> str:  # fmt: skip
    """A caveat when ``n`` questions can never give ``p < alpha`` ("" otherwise).

    Example:
        >>> min_p_note(4)
        'n=4: the smallest possible p is 0.125: no verdict possible at this size'
        >>> min_p_note(12)
        ''
    """
    p = min_p(n, paired, n_b=n_b, alpha=alpha, **kw)
    if p < alpha:
        return ""
    size = f"n={n}" if paired or n_b in (None, n) else f"n={n}+{n_b}"
    return f"{size}: the smallest possible p is {p:.3g}: no verdict possible at this size"


# --------------------------------------------------------------------------- RD swap null


@dataclass(frozen=True)
class SwapNull:
    """RD of correct vs irrelevant responses against the within-question swap null.

    Attributes:
        observed: RD of the mean curves (correct = reference).
        null_mean: mean RD when correct and irrelevant are swapped within random
            subsets of questions: the RD that exchangeable responses give at this
            size (the floor to show).
        p: one-sided p of "observed RD above noise", ``#{RD* >= RD} / K`` (exact,
            identity included) or ``(1 + hits) / (1 + n_perm)`` (Monte Carlo).
        exact: every one of the ``2^n`` swaps enumerated.
        n_perm: swaps enumerated or drawn.
    """

    observed: float
    null_mean: float
    p: float
    exact: bool
    n_perm: int

    @property
    def text(self) -> str:
        """The floor as a caveat: ``"RD noise floor (within-question swap null): ..."``."""
        how = "exact" if self.exact else "Monte Carlo"
        return (
            f"RD noise floor (within-question swap null): {self.null_mean:.3g}; observed RD "
            f"{self.observed:.3g}, p(above noise)={self.p:.3g} ({how}, {self.n_perm} swaps)"
        )


def rd_swap_null(
    correct: np.ndarray,
    irrelevant: np.ndarray,
    *,
    n_perm: int = 1000,
    seed: int = 0,
    family_size: int = FAMILY_SIZE,
    alpha: float = ALPHA,
    exact_limit: int = EXACT_LIMIT,
) -> SwapNull:
    """RD(correct, irrelevant) and its within-question swap null.

    ``correct``, ``irrelevant``: per-question curves ``[question, module, layer]`` of
    the same questions. Under the null the two responses of a question are
    exchangeable, so every subset of questions may have them swapped; all ``2^n``
    subsets when ``2^n <= exact_limit``, else Monte Carlo with as many draws as
    :func:`permutation`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> q = rng.lognormal(0, 0.3, size=(12, 2, 6))  # the questions' curves
        >>> c, i = (q * rng.lognormal(0, 0.2, size=q.shape) for _ in range(2))
        >>> alike, far = rd_swap_null(c, i), rd_swap_null(c, 1.5 * i)
        >>> alike.exact, alike.n_perm, alike.p > 0.05, far.p < 0.01
        (True, 4096, True, True)
    """
    n = len(correct)
    if n < 2 or correct.shape != irrelevant.shape:
        return SwapNull(float("nan"), float("nan"), float("nan"), False, 0)
    diff, sc, si = _paired_parts(correct, irrelevant)
    with np.errstate(divide="ignore", invalid="ignore"):
        obs = float(rd(correct.mean(0), irrelevant.mean(0)))
    exact = n < 64 and 2**n <= exact_limit
    draws = max(n_perm, required_permutations(family_size, alpha))
    rng = np.random.default_rng(seed + 3)
    hits, count, total = 0, 0, 0.0
    for m, r in _swapped(diff, (sc, si), (n, n), correct.shape[1:], rd, (0, exact, rng, draws)):
        hits += int(np.sum(r >= obs * (1 - 1e-9)))
        total += float(np.sum(r))
        count += m
    p = hits / count if exact else (1 + hits) / (1 + count)
    return SwapNull(obs, total / count, float(p), exact, count)


def swap_quantile(
    sides: Sides,
    stat: Stat,
    quantile: float = 0.95,
    *,
    n_perm: int = 2000,
    seed: int = 0,
    exact_limit: int = 4096,
) -> float:
    """The ``quantile`` of ``|stat|`` when the two sides are swapped within random
    subsets of questions (paired sides): how far from 0 a statistic such as a log-ratio
    falls by noise alone at this size. All ``2^n`` swaps when at most ``exact_limit``,
    else ``n_perm`` random ones; NaN for unpaired sides.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.lognormal(0, 0.3, size=(12, 1, 1, 4))
        >>> s = Sides(a, a * rng.lognormal(0, 0.1, size=a.shape), True, list("abcdefghijkl"),
        ...           list("abcdefghijkl"), ["q"], [0, 1, 2, 3])
        >>> q = swap_quantile(s, lambda x, y: np.log(level(y[..., 0, :, :]) / level(x[..., 0, :, :])))
        >>> 0 < q < 0.1
        True
    """
    if not sides.paired or len(sides.a) != len(sides.b) or len(sides.a) < 2:
        return float("nan")
    n = len(sides.a)
    data, base_a, base_b = _paired_parts(sides.a, sides.b)
    exact = n < 64 and 2**n <= exact_limit
    draws = (0, exact, np.random.default_rng(seed + 5), n_perm)
    values = [np.abs(np.asarray(t, dtype=float))
              for _, t in _swapped(data, (base_a, base_b), (n, n), sides.a.shape[1:], stat, draws)]  # fmt: skip
    v = np.concatenate(values)
    v = v[np.isfinite(v)]
    return float(np.quantile(v, quantile)) if len(v) else float("nan")
