"""The paper's claims as findings computed from a statistics table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis import inference as I
from lgkit.analysis.compare import relative_difference_table
from lgkit.analysis.curves import curve_dict, layer_curves, layer_groups, mean_absolute_difference
from lgkit.analysis.findings import Finding, exploratory, invalid
from lgkit.analysis.fixtures import synthetic_stats  # noqa: F401  (doctests)
from lgkit.analysis.learned import drop_identical, measured
from lgkit.analysis.tables import example_key_columns, filter_table, metric_label, value_order
from lgkit.schema import ATTN_MODULES

# --------------------------------------------------------------------------- findings


def fmt_number(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def curve_summary(
    df: pd.DataFrame,
    metric: str,
    by: list[str],
    modules: Sequence[str] | None,
    norm: str = "mean",
) -> pd.DataFrame:
    """Per (by, module): mean over layers of the mean curve and its MAD (all layers)."""
    curves = layer_curves(df, metric, by, modules=modules, n_boot=0, norm=norm)
    rows = []
    for key, vals in curve_dict(curves, by).items():
        row = dict(zip(by + ["module"], key, strict=True))
        row.update(
            level=float(np.mean(vals)) if len(vals) else np.nan, mad=mean_absolute_difference(vals)
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=by + ["module", "level", "mad"])


def with_correct(
    df: pd.DataFrame, where: Mapping[str, Any] | None, correct: bool | None
) -> dict[str, Any]:
    """``where`` plus ``correct: correct`` when df has that column (where's own wins)."""
    w = dict(where or {})
    if correct is not None and "correct" in df.columns:
        w.setdefault("correct", correct)
    return w


def _cell(df: pd.DataFrame, where: Mapping[str, Any] | None, **kv: Any) -> dict[str, Any]:
    w = dict(where or {})
    for k, v in kv.items():
        if v is not None and (k != "correct" or "correct" in df.columns):
            w[k] = v
    return w


def _log_ratio(f: Any) -> I.Stat:
    """``log(f(b[cell 0]) / f(a[cell 0]))``."""
    return lambda a, b: np.log(f(b[..., 0, :, :]) / f(a[..., 0, :, :]))


def _rd_log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log(RD_b / RD_a)``, each side's cells being (correct, irrelevant)."""
    return np.log(I.rd(b[..., 0, :, :], b[..., 1, :, :]) / I.rd(a[..., 0, :, :], a[..., 1, :, :]))


def _rd_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RD of side ``b``'s cell 0 to side ``a``'s cell 0 (reference)."""
    return I.rd(a[..., 0, :, :], b[..., 0, :, :])


def _tail(norm: str) -> str:
    return "" if norm == "mean" else f", {norm}-normalised"


def swap_null(c: np.ndarray, i: np.ndarray, seed: int = 0) -> Any:
    """:func:`~lgkit.analysis.inference.rd_swap_null` of per-question curves (None when
    there are fewer than 2 questions or the shapes differ)."""
    if len(c) < 2 or c.shape != i.shape:
        return None
    return I.rd_swap_null(c, i, seed=seed)


def floor_note(
    sides: I.Sides, seed: int = 0, within: str = "cells", names: Sequence[str] = ("a", "b")
) -> str:
    """RD(correct, irrelevant) of each side against its within-question swap null: a caveat.

    ``within="cells"``: each side's cells are (correct, irrelevant); ``"sides"``: side a
    is correct, side b irrelevant. The null's mean RD (correct and irrelevant swapped
    within random subsets of questions) is the floor that noise alone gives.
    """
    if within == "sides":
        pairs = [(sides.a[:, 0], sides.b[:, 0], names[0])] if sides.paired else []
    else:
        pairs = [(x[:, 0], x[:, 1], nm) for x, nm in ((sides.a, names[0]), (sides.b, names[1]))]
    parts = []
    for c, i, name in pairs:
        s = swap_null(c, i, seed)
        if s is not None:
            parts.append(f"{name}: {s.text}")
    return " / ".join(parts)


def rd_margin_note(margin: float, sides: I.Sides, names: Sequence[str], seed: int = 0) -> str:
    """The margin of an RD-ratio no-difference row in units a reader can check: the RD
    gain it allows over side a's RD, against side a's swap-null floor.

    Example:
        >>> a = np.random.default_rng(0).lognormal(0, 0.2, size=(12, 2, 1, 4))
        >>> rd_margin_note(1.25, I.Sides(a, a, True, list("abcdefghijkl"), list("abcdefghijkl"), ["q"], [0, 1, 2, 3]),
        ...                ("base", "instruct")).split(":")[0]
        'margin 1.25'
    """
    text = (
        f"margin {margin:g}: RD at {names[1]} up to {100 * (margin - 1):.0f}% above RD at "
        f"{names[0]} still counts as no more distinguishable"
    )
    s = (
        swap_null(sides.a[:, 0], sides.a[:, 1], seed)
        if sides.a.ndim == 4 and sides.a.shape[1] > 1
        else None
    )
    if s is None or not (s.null_mean > 0):
        return text
    gain = (margin - 1) * s.observed
    return (
        f"{text}: an RD gain of up to {fmt_number(gain)}, {gain / s.null_mean:.2g}x the swap-null "
        f"floor at {names[0]} ({fmt_number(s.null_mean)}; RD there {fmt_number(s.observed)})"
    )


def secondary_reason(norm: str, *, pair: bool, headline: bool, what: str) -> str:
    """Why a reasoning row is exploratory ("" for a primary claim of the paper: the
    none-vs-detailed level, MAD over all layers, RD ratio and the alike rows, under the
    paper's mean-token loss).

    Example:
        >>> secondary_reason("sqrt", pair=True, headline=True, what="x")
        'loss normalisation control (sqrt)'
        >>> secondary_reason("mean", pair=True, headline=False, what="layer breakdown")
        'layer breakdown'
    """
    if norm != "mean":
        return f"loss normalisation control ({norm})"
    if not pair:
        return f"breakdown: {what}"
    return "" if headline else what


def claim_flatter_with_cot(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    a: str = "none",
    b: str = "detailed",
    *,
    column: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
    correct: bool | None = True,
    where: Mapping[str, Any] | None = None,
    segments: bool = True,
    relative_mad: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    norm: str = "mean",
) -> list[Finding]:
    """Slow thinking (``b``) gives smaller and flatter layer curves than fast thinking (``a``).

    Paper: "fast thinking without CoT leads to larger gradients and larger differences
    of gradients across layers than slow thinking (Detailed CoT)". Statistics of the
    mean curves over questions, module-averaged: the ratio ``b/a`` of the *level*
    (mean over layers) and of the *MAD* (all layers and, with ``segments``, the early,
    middle and late layers). One finding per statistic, each expecting a ratio < 1,
    paired over questions (see :mod:`lgkit.analysis.inference`). ``relative_mad`` adds
    the scale-free MAD ÷ level (flatter beyond smaller); ``norm`` reads the metric under
    another loss normalisation (:data:`lgkit.analysis.tables.NORMS`, named in the
    statistic when not ``mean``).

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> fs = claim_flatter_with_cot(synthetic_stats(n_samples=8, n_layers=6), n_boot=200)
        >>> [f.statistic.split(" ratio")[0] for f in fs]
        ['mean-curve level', 'MAD (all layers)', 'MAD (early layers)', 'MAD (middle layers)', 'MAD (late layers)']
        >>> fs[0].verdict, fs[0].estimate < 1
        ('supported', True)
    """
    base = f"Slow thinking ({column}={b}) gives smaller "
    fast = f" than fast thinking ({column}={a})"
    claims = [(f"{base}gradients ({metric_label(metric)}){fast}", "mean-curve level", I.level)]
    sides = I.side_arrays(
        df,
        metric,
        [_cell(df, where, **{column: a}, correct=correct)],
        [_cell(df, where, **{column: b}, correct=correct)],
        modules=modules,
        norm=norm,
    )
    groups = {"all": None}
    if segments and len(sides.layers) >= 3:
        spans = layer_groups(len(sides.layers)).items()
        groups.update({k: sl for k, sl in spans if sl.stop - sl.start >= 2})
    for name, sl in groups.items():
        claims.append(
            (
                f"{base}differences across layers ({name} layers){fast}",
                f"MAD ({name} layers)",
                lambda c, sl=sl: I.mad(c, sl),
            )
        )
    if relative_mad:
        claims.append((f"{base}differences across layers relative to their level{fast}",
                       "MAD ÷ level", I.relative_mad))  # fmt: skip
    detail = f"{metric}, {'correct' if correct else 'all'} responses, modules {sides.modules}"
    tail = _tail(norm)
    pair = (a, b) == ("none", "detailed") and column == "cot"
    out = []
    for claim, st, fn in claims:
        f = measured(claim, f"{st} ratio {b}/{a}{tail}", sides, _log_ratio(fn),
                     direction="less", n_boot=n_boot, seed=seed, detail=detail)  # fmt: skip
        why = secondary_reason(norm, pair=pair, headline=st in ("mean-curve level", "MAD (all layers)"),
                               what="layer breakdown" if "layers)" in st and "(all" not in st
                               else f"{column}={a} vs {b}" if not pair else st)  # fmt: skip
        out.append(exploratory(f, why) if why else f)
    return out


def claim_correct_vs_irrelevant(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    slow: str = "detailed",
    *,
    column: str = "cot",
    fast: str = "none",
    modules: Sequence[str] | None = ATTN_MODULES,
    alike_margin: float = 0.1,
    where: Mapping[str, Any] | None = None,
    alike: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    norm: str = "mean",
) -> list[Finding]:
    """Only slow thinking's gradients distinguish correct from irrelevant responses.

    Paper: "the gradients of slow thinking can distinguish correct and irrelevant
    reasoning paths"; "without CoT, the gradient patterns of the two types of
    responses are similar". Statistic: the authors' RD ``mean_l |c_l - i_l| / |c_l|``
    between the mean curves of correct and irrelevant responses, module-averaged.
    Findings: for every other level ``o`` of ``column``, the ratio RD[slow]/RD[o]
    (expected > 1, paired over questions); and the no-difference claim at ``fast``,
    decided by equivalence tests (TOST) on the irrelevant/correct ratios of the
    mean-curve level and MAD with the relative margin ``alike_margin`` (ratio within
    ``[1/(1+m), 1+m]``). RD itself is not used for equivalence: as a distance it is
    biased upward by noise. Each row shows the RD noise floor (the within-question
    swap null, :func:`floor_note`) and the RD at ``fast``. ``alike=False`` leaves out the
    no-difference findings.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> fs = claim_correct_vs_irrelevant(synthetic_stats(n_samples=8, n_layers=6), n_boot=200)
        >>> [f.verdict for f in fs][:2]
        ['supported', 'supported']
    """
    if "correct" not in df.columns or column not in df.columns:
        return [invalid("correct vs irrelevant", "RD", f"table lacks 'correct' or {column!r}")]
    levels = [v for v in value_order(filter_table(df, where)[column].dropna().unique(), column)]
    out = []
    for o in [v for v in levels if v != slow]:
        sides = I.side_arrays(
            df,
            metric,
            [_cell(df, where, **{column: o}, correct=c) for c in (True, False)],
            [_cell(df, where, **{column: slow}, correct=c) for c in (True, False)],
            modules=modules,
            norm=norm,
        )
        names = (f"{column}={o}", f"{column}={slow}")
        sides, dropped = drop_identical(sides, "cells", names)
        out.append(
            measured(
                f"Correct and irrelevant responses differ more with slow thinking ({column}={slow}) "
                f"than with {column}={o}",
                f"RD(correct, irrelevant) ratio {slow}/{o}{_tail(norm)}",
                sides, _rd_log_ratio, direction="greater", n_boot=n_boot, seed=seed,
                detail=f"authors' RD of mean {metric} curves, module-averaged", note=dropped,
                caveats=[c for c in (floor_note(sides, seed, names=names),) if c],
            )
        )  # fmt: skip
        why = secondary_reason(norm, pair=o == fast and slow == "detailed", headline=True,
                               what=f"{column}={slow} vs {o}")  # fmt: skip
        if why:
            out[-1] = exploratory(out[-1], why)
    if alike and fast in levels:
        kw = {"n_boot": n_boot, "seed": seed, "norm": norm, "modules": modules}
        alike_rows = _alike_rows(df, metric, column, fast, where, alike_margin, **kw)
        why = secondary_reason(norm, pair=True, headline=True, what="")
        out += [exploratory(f, why) if why else f for f in alike_rows]
    return out or [
        invalid("correct vs irrelevant", "RD", f"need {column}={slow!r} and another level")
    ]


def _alike_rows(
    df: pd.DataFrame,
    metric: str,
    column: str,
    fast: str,
    where: Mapping[str, Any] | None,
    m: float,
    *,
    modules: Sequence[str] | None,
    n_boot: int,
    seed: int,
    norm: str,
) -> list[Finding]:
    """The no-difference rows of :func:`claim_correct_vs_irrelevant` at ``fast`` (level, MAD)."""
    sides = I.side_arrays(
        df,
        metric,
        [_cell(df, where, **{column: fast}, correct=True)],
        [_cell(df, where, **{column: fast}, correct=False)],
        modules=modules,
        norm=norm,
    )
    sides, dropped = drop_identical(sides, "sides", (f"{column}={fast}",))
    floor = floor_note(sides, seed, "sides", (f"{column}={fast}",))
    out = []
    for name, word, fn in (
        ("mean-curve level", "level", I.level),
        ("MAD (all layers)", "MAD", I.mad),
    ):
        note = alike_margin_note(m, sides, _log_ratio(fn), word, seed)
        out.append(measured(
            f"Without CoT ({column}={fast}) the gradients of correct and irrelevant responses look alike ({name})",
            f"{name} ratio irrelevant/correct at {column}={fast}{_tail(norm)}",
            sides, _log_ratio(fn), kind="equivalence", margin=(1 / (1 + m), 1 + m),
            n_boot=n_boot, seed=seed, note=dropped,
            detail=f"{metric}; equivalence margin: ratio within [1/{1 + m:g}, {1 + m:g}]",
            margin_note=note, caveats=[note] + ([floor] if floor else []),
        ))  # fmt: skip
    return out


def alike_margin_note(m: float, sides: I.Sides, stat: I.Stat, word: str, seed: int = 0) -> str:
    """The relative margin ``m`` of an "alike" row (ratio irrelevant/correct within
    ``[1/(1+m), 1+m]``) against the data's own null variation: the ratio that swapping
    correct and irrelevant within random subsets of questions gives
    (:func:`~lgkit.analysis.inference.swap_quantile`, 95% of swaps), as 04/05 tie their
    margins to the RD swap-null floor. ``word`` names the statistic ("level", "MAD").

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.lognormal(0, 0.3, size=(12, 1, 1, 4))
        >>> s = I.Sides(a, a * rng.lognormal(0, 0.05, size=a.shape), True, list("abcdefghijkl"),
        ...             list("abcdefghijkl"), ["q"], [0, 1, 2, 3])
        >>> alike_margin_note(0.1, s, _log_ratio(I.level), "level").split("; ")[0]
        "margin ±10%: the irrelevant responses' level within a factor 1.1 of the correct ones' counts as alike"
    """
    text = (
        f"margin ±{100 * m:g}%: the irrelevant responses' {word} within a factor {1 + m:g} of "
        "the correct ones' counts as alike"
    )
    q = I.swap_quantile(sides, stat, seed=seed)
    if not (q > 0 and math.isfinite(q)):
        return text
    k = math.log(1 + m) / q
    times = f"{k:.2g}" if k < 10 else f"{k:.0f}"
    tail = "" if k >= 1 else ": the margin is narrower than the noise at this size"
    return (
        f"{text}; against the data's own null variation: correct and irrelevant swapped "
        f"within random subsets of the {len(sides.a)} questions give a {word} ratio within a "
        f"factor {math.exp(q):.3g} in 95% of swaps, so the margin is {times}x that noise (in "
        f"logs){tail}"
    )


def length_levels(d: pd.DataFrame, by: str) -> list[Any]:
    """Values of ``by`` ordered by the median response length of the correct responses."""
    ex = d[d["correct"] == True].drop_duplicates(example_key_columns(d) + [by])  # noqa: E712
    return list(ex.groupby(by)["n_response_tokens"].median().sort_values(kind="stable").index)


def irrelevant_length_note(d: pd.DataFrame, by: str, levels: Sequence[Any]) -> str:
    """Where irrelevant responses are shorter than the correct ones (median tokens), say so.

    Example:
        >>> d = pd.DataFrame({"sample_id": list("abcd"), "g": ["x"] * 4, "correct": [True, True, False, False],
        ...                   "n_response_tokens": [100, 120, 80, 90]})
        >>> irrelevant_length_note(d, "g", ["x"])
        'irrelevant texts shorter than the correct ones (median tokens): x 85 vs 110'
    """
    if "n_response_tokens" not in d.columns or "correct" not in d.columns:
        return ""
    ex = d.drop_duplicates(example_key_columns(d) + [by])
    med = ex.groupby([by, "correct"])["n_response_tokens"].median()
    parts = []
    for lv in levels:
        c, i = med.get((lv, True)), med.get((lv, False))
        if c is not None and i is not None and i < c:
            parts.append(f"{lv} {i:.0f} vs {c:.0f}")
    return (
        "irrelevant texts shorter than the correct ones (median tokens): " + ", ".join(parts)
        if parts
        else ""
    )


def claim_length_not_enough(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    *,
    by: str = "dataset",
    levels: Sequence[Any] | None = None,
    modules: Sequence[str] | None = ATTN_MODULES,
    margin: float = 1.5,
    reference_rd: float | None = None,
    reference: pd.DataFrame | None = None,
    where: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    norm: str = "mean",
) -> list[Finding]:
    """On knowledge data (wiki), longer responses do not reproduce the slow-thinking pattern.

    Paper: on "non-reasoning knowledge learning tasks ... trivially increasing the
    response length does not lead to similar behaviors of slow thinking". The
    behaviour tested is the one that marks slow thinking on reasoning data: correct
    and irrelevant responses become distinguishable. A no-difference claim, decided
    by an equivalence (non-inferiority) test: the ratio RD[longest]/RD[shortest] of
    the ``by`` groups (ordered by ``levels`` or median response length) must lie
    below ``margin``. With ``reference`` (the statistics of reasoning data under
    detailed CoT) a two-sample row tests RD[longest] < RD[reference], both groups'
    uncertainty carried (cluster bootstrap, label permutation); with only a number
    ``reference_rd``, RD[longest] < ``reference_rd / margin``. A last row tests RD at
    the longest group against its within-question swap null (is it above noise?).

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> df = synthetic_stats(n_samples=8, n_layers=6, datasets=("wiki",), cots=("none",))
        >>> df["dataset"] = df["n_response_tokens"].map(lambda n: "long" if n > 8 else "short")
        >>> claim_length_not_enough(df, n_boot=200)[0].statistic
        'RD(correct, irrelevant) ratio long/short'
    """
    claim = (
        "Longer responses on knowledge data do not reproduce slow thinking: correct and "
        "irrelevant responses stay about as similar as with short responses"
    )
    d = filter_table(df, where)
    if "correct" not in d.columns or by not in d.columns:
        return [invalid(claim, "RD ratio", f"table lacks 'correct' or {by!r}")]
    levels = [lv for lv in (levels or length_levels(d, by)) if lv in set(d[by])]
    if len(levels) < 2:
        return [invalid(claim, "RD ratio", f"need ≥2 {by} levels, got {levels}")]
    short, long_ = levels[0], levels[-1]
    cells = {lv: [{by: lv, "correct": c} for c in (True, False)] for lv in (short, long_)}
    sides = I.side_arrays(d, metric, cells[short], cells[long_], modules=modules, norm=norm)
    sides, dropped = drop_identical(sides, "cells", (str(short), str(long_)))
    short_note = irrelevant_length_note(d, by, [short, long_])
    margin_note = rd_margin_note(margin, sides, (str(short), str(long_)), seed)
    kw: dict[str, Any] = {"n_boot": n_boot, "seed": seed}
    detail = f"authors' RD of mean {metric} curves; levels short→long {levels}"
    out = [
        measured(claim, f"RD(correct, irrelevant) ratio {long_}/{short}", sides, _rd_log_ratio,
                 kind="equivalence", margin=(0.0, margin), detail=detail, note=dropped,
                 margin_note=margin_note,
                 caveats=[c for c in (floor_note(sides, seed, names=(str(short), str(long_))),
                                      short_note) if c], **kw)
    ]  # fmt: skip
    rclaim = f"{claim}, and below the detailed-CoT reference"
    out += _reference_rows(d, metric, rclaim, cells[long_], str(long_), reference, reference_rd,
                           margin, short_note, detail, modules=modules, norm=norm, **kw)  # fmt: skip
    out.append(
        rd_above_noise(d, metric, cells[long_], str(long_), modules=modules, norm=norm, **kw)
    )
    return out


def _reference_rows(
    d: pd.DataFrame,
    metric: str,
    rclaim: str,
    cells_long: Sequence[Mapping[str, Any]],
    long_: str,
    reference: pd.DataFrame | None,
    reference_rd: float | None,
    margin: float,
    short_note: str,
    detail: str,
    *,
    modules: Sequence[str] | None,
    norm: str,
    n_boot: int,
    seed: int,
) -> list[Finding]:
    """04's "below the detailed-CoT reference" row: two-sample with the ``reference`` table,
    else against the number ``reference_rd`` (its uncertainty not carried)."""
    kw: dict[str, Any] = {"n_boot": n_boot, "seed": seed}
    out: list[Finding] = []
    if reference is not None and not reference.empty:
        ref = reference[reference["cot"] == "detailed"] if "cot" in reference.columns else reference
        rc = [{"correct": c} for c in (True, False)]
        s3 = I.side_arrays(ref, metric, rc, cells_long, modules=modules, df_b=d, norm=norm)
        s3, dropped3 = drop_identical(s3, "cells", ("reference", long_))
        names = (
            ", ".join(sorted(map(str, ref["dataset"].unique())))
            if "dataset" in ref.columns
            else "reference"
        )
        out.append(
            measured(rclaim, f"RD(correct, irrelevant) ratio {long_} / detailed CoT ({names})", s3,
                     _rd_log_ratio, direction="less", note=dropped3,
                     detail=f"two-sample: the wiki and reasoning questions differ (unpaired interval, label permutation); {detail}",
                     caveats=[c for c in (floor_note(s3, seed, names=(f"detailed CoT ({names})", long_)), short_note) if c],
                     **kw)
        )  # fmt: skip
    elif reference_rd is not None and reference_rd == reference_rd:
        s2 = I.side_arrays(d, metric, cells_long[:1], cells_long[1:], modules=modules, norm=norm)
        out.append(
            measured(rclaim, f"RD(correct, irrelevant) at {long_}", s2, _rd_between, kind="equivalence",
                     log=False, margin=(-math.inf, reference_rd / margin),
                     detail=f"reference RD {fmt_number(reference_rd)} / {margin} (a number: its own uncertainty not carried)",
                     **kw)
        )  # fmt: skip
    return out


def rd_above_noise(
    d: pd.DataFrame,
    metric: str,
    cells: Sequence[Mapping[str, Any]],
    label: str,
    *,
    modules: Sequence[str] | None = ATTN_MODULES,
    norm: str = "mean",
    n_boot: int = 1000,
    seed: int = 0,
) -> Finding:
    """Is RD(correct, irrelevant) of ``cells`` (correct, irrelevant) above noise? Tested
    against the within-question swap null (one-sided p); the null's mean is the floor
    the verdict compares the interval with."""
    claim = f"Correct and irrelevant responses are distinguishable at {label} (RD above the swap-null floor)"
    sides = I.side_arrays(d, metric, cells[:1], cells[1:], modules=modules, norm=norm)
    sides, dropped = drop_identical(sides, "sides", (label,))
    f = measured(claim, f"RD(correct, irrelevant) at {label}", sides, _rd_between, log=False,
                 direction="greater", n_boot=n_boot, seed=seed, note=dropped,
                 detail="interval: question bootstrap; p: within-question swap null (one-sided)")  # fmt: skip
    s = swap_null(sides.a[:, 0], sides.b[:, 0], seed) if f.verdict != "invalid" else None
    if s is None:
        return f
    floor = f"swap-null floor {fmt_number(s.null_mean)} (mean RD with correct and irrelevant swapped within questions)"
    caveats = "; ".join(c for c in (f.caveats, floor) if c)
    return replace(f, p=s.p, null=s.null_mean, verdict="", verdict_text="", caveats=caveats)


def claim_long_tail_larger(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    *,
    column: str = "popularity",
    popular: Any = "popular",
    long_tail: Any = "long_tail",
    length_column: str = "length",
    modules: Sequence[str] | None = ATTN_MODULES,
    correct: bool | None = True,
    n_boot: int = 1000,
    seed: int = 0,
    norm: str = "mean",
) -> list[Finding]:
    """Exploratory: long-tail (unpopular) knowledge gives larger gradients than popular.

    Mean-curve level ratio long-tail/popular (expected > 1) at every ``length_column``
    value both groups have, or else against the popular length whose median response
    length is closest to the long-tail one. Different texts: cluster bootstrap.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> d = synthetic_stats(n_samples=4, n_layers=4, datasets=["w"], cots=["none"])
        >>> d["popularity"] = np.where(d["sample_id"].str.endswith(("0", "2")), "popular", "long_tail")
        >>> claim_long_tail_larger(d, length_column="", n_boot=100)[0].verdict
        'invalid'
    """
    claim = "Exploratory: long-tail knowledge gives larger gradients than popular knowledge of similar length"
    d = filter_table(df, with_correct(df, None, correct))
    if column not in d.columns or not {popular, long_tail} <= set(d[column].dropna()):
        return [invalid(claim, "level ratio", f"need {column}={popular!r} and {long_tail!r} rows")]
    keys = example_key_columns(d)
    lt, pop = d[d[column] == long_tail], d[d[column] == popular]
    pairs: list[tuple[str, Any]] = []
    if length_column and length_column in d.columns:
        common = set(lt[length_column].dropna())
        pairs = [
            (f"{length_column}={v}", v)
            for v in value_order(pop[length_column].dropna().unique(), length_column)
            if v in common
        ]
    if not pairs:
        chosen = None
        if length_column and length_column in pop.columns and pop[length_column].nunique() > 1:
            lt_len = float(lt.drop_duplicates(keys)["n_response_tokens"].median())
            med = pop.drop_duplicates(keys).groupby(length_column)["n_response_tokens"].median()
            chosen = (med - lt_len).abs().idxmin()
        pairs = [(f"popular {length_column}={chosen}" if chosen is not None else "all", chosen)]
    out = []
    for label, v in pairs:
        a = pop if v is None else pop[pop[length_column] == v]
        b = lt if v is None or label.startswith("popular") else lt[lt[length_column] == v]
        sides = I.side_arrays(a, metric, [{}], [{}], modules=modules, df_b=b, norm=norm)
        out.append(
            exploratory(
                measured(f"{claim} ({label})", "mean-curve level ratio long-tail/popular", sides,
                         _log_ratio(I.level), direction="greater", n_boot=n_boot, seed=seed,
                         detail="not one of the paper's headline claims"),
                "long tail: not one of the paper's headline claims",
            )
        )  # fmt: skip
    return out


def rd_by(
    d: pd.DataFrame,
    metric: str,
    level_col: str,
    modules: Sequence[str] | None,
    norm: str = "mean",
) -> pd.Series:
    """Module-averaged authors' RD (correct=a, irrelevant=b) per value of ``level_col``."""
    t = relative_difference_table(
        d, metric, "correct", True, False, by=[level_col], modules=modules, norm=norm
    )
    if t.empty:
        return pd.Series(dtype=float)
    return t.groupby(level_col, sort=False)["rd_mean"].mean()
