"""The paper's claims as findings computed from a statistics table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis.compare import relative_difference_table
from lgkit.analysis.curves import curve_dict, layer_curves, mean_absolute_difference
from lgkit.analysis.tables import example_key_columns, filter_table, metric_label, value_order
from lgkit.errors import InputError
from lgkit.schema import ATTN_MODULES

# --------------------------------------------------------------------------- findings


@dataclass
class Finding:
    """One claim of the paper tested on a table.

    Example:
        >>> Finding("Detailed CoT is flatter", "MAD 3.1 vs 0.2", True).supported
        True

    Attributes:
        claim: the claim, phrased as in the paper.
        measured: the key numbers measured (a short string or one float).
        supported: True/False from the numbers; None when it could not be measured.
        detail: how it was measured and the per-module numbers.
    """

    claim: str
    measured: str | float
    supported: bool | None
    detail: str = ""


def findings_table(findings: Iterable[Finding]) -> pd.DataFrame:
    """Findings as a DataFrame with columns claim, measured, supported, detail.

    Example:
        >>> findings_table([Finding("x", 1.0, True, "d")]).columns.tolist()
        ['claim', 'measured', 'supported', 'detail']
    """
    rows = [asdict(f) for f in findings]
    t = pd.DataFrame(rows, columns=["claim", "measured", "supported", "detail"])
    t["supported"] = t["supported"].astype(object)
    t["measured"] = t["measured"].astype(object)
    return t


def fmt_number(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def curve_summary(
    df: pd.DataFrame, metric: str, by: list[str], modules: Sequence[str] | None
) -> pd.DataFrame:
    """Per (by, module): mean over layers of the mean curve and its MAD (all layers)."""
    curves = layer_curves(df, metric, by, modules=modules, n_boot=0)
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
) -> Finding:
    """Slow thinking (``b``) gives smaller and flatter layer curves than fast thinking (``a``).

    Paper: "fast thinking without CoT leads to larger gradients and larger differences
    of gradients across layers than slow thinking (Detailed CoT)". Measured on the
    mean curves (over examples) per module: *level* = mean over layers, *MAD* = mean
    absolute difference of adjacent layers. Supported iff the module-averaged level
    and the module-averaged MAD of ``b`` are both below those of ``a``; the detail
    reports how many modules agree individually.

    Args:
        df: statistics table.
        metric: see :func:`metric_values`.
        a: fast-thinking value of ``column`` (default ``"none"``).
        b: slow-thinking value (default ``"detailed"``).
        column: the column holding the response type.
        modules: modules to use (default Q, K, V, O; None = all present).
        correct: keep only rows with this ``correct`` value (None: no filter); the
            paper's main comparison uses correct responses.
        where: extra row filter (e.g. ``{"dataset": "gsm8k"}``).

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> f = claim_flatter_with_cot(synthetic_stats(n_samples=8, n_layers=6))
        >>> f.supported
        True
    """
    claim = (
        f"Slow thinking ({column}={b}) gives smaller gradients ({metric_label(metric)}) and "
        f"smaller differences across layers (MAD) than fast thinking ({column}={a})"
    )
    d = filter_table(df, with_correct(df, where, correct))
    d = d[d[column].isin([a, b])] if column in d.columns else d.iloc[0:0]
    if d.empty or d[column].nunique() < 2:
        return Finding(claim, "n/a", None, f"no rows for both {column}={a!r} and {column}={b!r}")
    s = curve_summary(d, metric, [column], modules)
    pa = s[s[column] == a].set_index("module")
    pb = s[s[column] == b].set_index("module")
    mods = [m for m in pa.index if m in pb.index]
    if not mods:
        return Finding(claim, "n/a", None, f"no module with both {column}={a!r} and {b!r}")
    la, lb = pa.loc[mods, "level"].mean(), pb.loc[mods, "level"].mean()
    ma, mb = pa.loc[mods, "mad"].mean(), pb.loc[mods, "mad"].mean()
    smaller = bool(lb < la)
    flatter = bool(mb < ma)
    agree = sum(
        bool(pb.loc[m, "level"] < pa.loc[m, "level"] and pb.loc[m, "mad"] < pa.loc[m, "mad"])
        for m in mods
    )
    per = "; ".join(
        f"{m}: level {fmt_number(pa.loc[m, 'level'])}→{fmt_number(pb.loc[m, 'level'])}, "
        f"MAD {fmt_number(pa.loc[m, 'mad'])}→{fmt_number(pb.loc[m, 'mad'])}"
        for m in mods
    )
    measured = f"level {a}={fmt_number(la)} vs {b}={fmt_number(lb)}; MAD {a}={fmt_number(ma)} vs {b}={fmt_number(mb)}"
    detail = (
        f"module-averaged mean-curve level and MAD (all layers); smaller={smaller}, "
        f"flatter={flatter}; {agree}/{len(mods)} modules both smaller and flatter. {per}"
    )
    return Finding(claim, measured, smaller and flatter, detail)


def rd_by(d: pd.DataFrame, metric: str, level_col: str, modules: Sequence[str] | None) -> pd.Series:
    """Module-averaged authors' RD (correct=a, irrelevant=b) per value of ``level_col``."""
    t = relative_difference_table(
        d, metric, "correct", True, False, by=[level_col], modules=modules
    )
    if t.empty:
        return pd.Series(dtype=float)
    return t.groupby(level_col, sort=False)["rd_mean"].mean()


def claim_correct_vs_irrelevant(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    slow: str = "detailed",
    *,
    column: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
    margin: float = 1.5,
    where: Mapping[str, Any] | None = None,
) -> Finding:
    """Only slow thinking's gradients distinguish correct from irrelevant responses.

    Paper: "the gradients of slow thinking can distinguish correct and irrelevant
    reasoning paths"; "without CoT, the gradient patterns of the two types of
    responses are similar". For every value of ``column`` the authors' relative
    difference ``mean_l |c_l - i_l| / |c_l|`` between the mean curves of correct
    (``c``) and irrelevant (``i``) responses is averaged over modules. Supported iff
    the RD of ``slow`` is at least ``margin`` times the RD of every other level.

    Args:
        df: statistics table with a boolean ``correct`` column.
        metric: see :func:`metric_values`.
        slow: the slow-thinking value of ``column``.
        column: column of the response type.
        modules: modules to use (None = all present).
        margin: required factor between the slow RD and each faster RD.
        where: extra row filter.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> f = claim_correct_vs_irrelevant(synthetic_stats(n_samples=8, n_layers=6))
        >>> f.supported
        True
    """
    claim = (
        f"Only with slow thinking ({column}={slow}) do the gradients of correct and irrelevant "
        f"responses differ clearly (relative difference ≥ {margin}× every other {column})"
    )
    d = filter_table(df, where)
    if "correct" not in d.columns or column not in d.columns:
        return Finding(claim, "n/a", None, f"table lacks 'correct' or {column!r}")
    rd = rd_by(d, metric, column, modules)
    if slow not in rd.index or len(rd) < 2:
        return Finding(
            claim,
            "n/a",
            None,
            f"need correct and irrelevant rows for {column}={slow!r} and another level; RD={rd.to_dict()}",
        )
    others = rd.drop(index=slow)
    ok = bool((rd[slow] >= margin * others).all())
    order = value_order(rd.index, column)
    measured = "; ".join(f"RD[{k}]={fmt_number(rd[k])}" for k in order)
    detail = (
        f"authors' averaged relative difference |correct-irrelevant|/|correct| of the mean "
        f"curves ({metric}), averaged over modules; slow/other ratios: "
        + ", ".join(
            f"{k}: {fmt_number(rd[slow] / others[k]) if others[k] else 'inf'}" for k in others.index
        )
    )
    return Finding(claim, measured, ok, detail)


def claim_length_not_enough(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    *,
    by: str = "dataset",
    levels: Sequence[Any] | None = None,
    modules: Sequence[str] | None = ATTN_MODULES,
    margin: float = 1.5,
    reference_rd: float | None = None,
    where: Mapping[str, Any] | None = None,
) -> Finding:
    """On knowledge data (wiki), longer responses do not reproduce the slow-thinking pattern.

    Paper: on "non-reasoning knowledge learning tasks ... trivially increasing the
    response length does not lead to similar behaviors of slow thinking". The
    slow-thinking behaviour tested is the one that distinguishes it on reasoning
    data: correct and irrelevant responses become distinguishable. The ``by`` groups
    (e.g. wiki length variants) are ordered by ``levels`` or, by default, by their
    median response length; the authors' relative difference (RD) between correct
    and irrelevant mean curves, averaged over modules, is measured per group.
    Supported iff RD of the longest group is *below* ``margin`` × RD of the shortest
    (length does not open the gap), and, when ``reference_rd`` (e.g. RD of detailed
    CoT on reasoning data) is given, also below ``reference_rd / margin``. Mean level
    and MAD per group are reported in the detail for context.

    Args:
        df: statistics table of the knowledge task (with ``correct``).
        metric: see :func:`metric_values`.
        by: column of the length variants.
        levels: those values from short to long (default: by median length of the
            correct responses). For lgkit's wiki data pass the popular sets, e.g.
            ``["wiki_popular_100", "wiki_popular_500", "wiki_popular_1000"]``: the
            long-tail set differs in popularity, not only in length.
        modules: modules to use.
        margin: factor that would count as "the gap opened".
        reference_rd: optional RD of slow thinking on reasoning data.
        where: extra row filter.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> df = synthetic_stats(n_samples=8, n_layers=6, datasets=("wiki",), cots=("none",))
        >>> df["dataset"] = df["n_response_tokens"].map(lambda n: "long" if n > 8 else "short")
        >>> claim_length_not_enough(df).supported
        True
    """
    claim = (
        "Longer responses on knowledge data do not reproduce slow thinking: correct and "
        "irrelevant responses stay about as similar as with short responses"
    )
    d = filter_table(df, where)
    if "correct" not in d.columns or by not in d.columns:
        return Finding(claim, "n/a", None, f"table lacks 'correct' or {by!r}")
    if levels is None:
        if "n_response_tokens" not in d.columns:
            return Finding(claim, "n/a", None, "no levels given and no n_response_tokens column")
        ex = d[d["correct"] == True].drop_duplicates(example_key_columns(d) + [by])  # noqa: E712
        levels = list(ex.groupby(by)["n_response_tokens"].median().sort_values(kind="stable").index)
    levels = [lv for lv in levels if lv in set(d[by])]
    if len(levels) < 2:
        return Finding(claim, "n/a", None, f"need ≥2 {by} levels, got {levels}")
    rd = rd_by(d[d[by].isin(levels)], metric, by, modules)
    short, long_ = levels[0], levels[-1]
    if short not in rd.index or long_ not in rd.index:
        return Finding(
            claim, "n/a", None, f"need correct and irrelevant rows at {short!r} and {long_!r}"
        )
    ok = bool(rd[long_] < margin * rd[short])
    if reference_rd is not None:
        ok = ok and bool(rd[long_] < reference_rd / margin)
    s = curve_summary(filter_table(d, {"correct": True}), metric, [by], modules)
    summ = s.groupby(by)[["level", "mad"]].mean()
    measured = "; ".join(f"RD[{lv}]={fmt_number(rd.get(lv, np.nan))}" for lv in levels)
    if reference_rd is not None:
        measured += f"; reference RD={fmt_number(reference_rd)}"
    detail = (
        f"RD = authors' |correct-irrelevant|/|correct| of mean {metric} curves, module-averaged; "
        f"levels short→long {levels}; criterion RD[long] < {margin}×RD[short]"
        + (f" and < reference/{margin}" if reference_rd is not None else "")
        + ". Correct-response level/MAD: "
        + ", ".join(
            f"{lv}: {fmt_number(summ.loc[lv, 'level'])}/{fmt_number(summ.loc[lv, 'mad'])}"
            for lv in levels
            if lv in summ.index
        )
    )
    return Finding(claim, measured, ok, detail)


def claim_base_vs_instruct(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    base: str | None = None,
    instruct: str | None = None,
    *,
    model_col: str = "model",
    fast: str = "none",
    slow: str = "detailed",
    column: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
    correct: bool | None = True,
    criterion: str = "both",
    where: Mapping[str, Any] | None = None,
) -> Finding:
    """Pre-trained (base) LLMs are less affected by the instability of fast thinking.

    Paper (abstract): "pre-trained LLMs are less affected by the instability of fast
    thinking than instruction-tuned LLMs". For each model the fast/slow ratios of
    the module-averaged mean-curve level and MAD are computed
    (``level[fast] / level[slow]``, ``MAD[fast] / MAD[slow]``). Supported iff the
    instruct model's ratio exceeds the base model's for the MAD, the level, or both
    (``criterion`` = ``"mad"``, ``"level"``, ``"both"``).

    Args:
        df: statistics table with a ``model_col`` column (two models).
        metric: see :func:`metric_values`.
        base, instruct: the two values of ``model_col`` (default: the two present,
            the one whose name contains "instruct"/"-it"/"chat" is the instruct one).
        model_col: the model column.
        fast, slow: values of ``column`` for fast and slow thinking.
        column: column of the response type.
        modules: modules to use.
        correct: ``correct`` filter (None: none).
        criterion: ``"both"``, ``"mad"`` or ``"level"``.
        where: extra row filter.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> df = pd.concat([synthetic_stats(n_samples=6, n_layers=6, model="m-base"),
        ...                 synthetic_stats(n_samples=6, n_layers=6, model="m-instruct",
        ...                                 fast_instability=2.0, scale=0.8)])
        >>> claim_base_vs_instruct(df, base="m-base", instruct="m-instruct").supported
        True
    """
    if criterion not in ("both", "mad", "level"):
        raise InputError(f"criterion must be both/mad/level, got {criterion!r}", field="criterion")
    claim = (
        "Pre-trained (base) LLMs are less affected by the instability of fast thinking "
        "than instruction-tuned LLMs"
    )
    if model_col not in df.columns:
        return Finding(claim, "n/a", None, f"table lacks {model_col!r}")
    models = list(dict.fromkeys(df[model_col].dropna()))
    if base is None or instruct is None:
        guess_i = [
            m for m in models if any(t in str(m).lower() for t in ("instruct", "-it", "chat"))
        ]
        if instruct is None and len(guess_i) == 1:
            instruct = guess_i[0]
        if base is None and instruct is not None:
            rest = [m for m in models if m != instruct]
            base = rest[0] if len(rest) == 1 else None
    if base is None or instruct is None:
        return Finding(claim, "n/a", None, f"cannot tell base from instruct among {models}")
    w = with_correct(df, where, correct)
    w[model_col] = [base, instruct]
    w[column] = [fast, slow]
    d = filter_table(df, w)
    s = curve_summary(d, metric, [model_col, column], modules)
    agg = s.groupby([model_col, column])[["level", "mad"]].mean()
    try:
        r = {
            m: (
                agg.loc[(m, fast), "level"] / agg.loc[(m, slow), "level"],
                agg.loc[(m, fast), "mad"] / agg.loc[(m, slow), "mad"],
            )
            for m in (base, instruct)
        }
    except KeyError:
        return Finding(
            claim, "n/a", None, f"need {fast} and {slow} rows for both {base} and {instruct}"
        )
    level_ok = bool(r[instruct][0] > r[base][0])
    mad_ok = bool(r[instruct][1] > r[base][1])
    ok = {"both": level_ok and mad_ok, "mad": mad_ok, "level": level_ok}[criterion]
    measured = (
        f"{fast}/{slow} level ratio base={fmt_number(r[base][0])}, instruct={fmt_number(r[instruct][0])}; "
        f"MAD ratio base={fmt_number(r[base][1])}, instruct={fmt_number(r[instruct][1])}"
    )
    detail = (
        f"module-averaged mean-curve level and MAD of {metric}; criterion={criterion}; "
        f"levels: "
        + ", ".join(
            f"{m}/{c}={fmt_number(agg.loc[(m, c), 'level'])}"
            for m in (base, instruct)
            for c in (fast, slow)
        )
        + "; MADs: "
        + ", ".join(
            f"{m}/{c}={fmt_number(agg.loc[(m, c), 'mad'])}"
            for m in (base, instruct)
            for c in (fast, slow)
        )
    )
    return Finding(claim, measured, ok, detail)


def claim_instruct_not_better_at_correctness(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    base: str | None = None,
    instruct: str | None = None,
    *,
    model_col: str = "model",
    slow: str = "detailed",
    column: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
    margin: float = 1.5,
    where: Mapping[str, Any] | None = None,
) -> Finding:
    """Instruction-tuned LLMs are not better than base LLMs at telling irrelevant responses.

    Paper (repository highlights): "The instruction-finetuned LLMs do not show
    superior capability over pre-trained base LLMs in identifying incorrect reasoning
    paths". Measured as the module-averaged authors' RD between correct and
    irrelevant mean curves under slow thinking, per model. Supported iff
    ``RD[instruct] < margin × RD[base]`` (the instruct model's separation is not
    clearly larger).

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> df = pd.concat([synthetic_stats(n_samples=6, n_layers=6, model="m"),
        ...                 synthetic_stats(n_samples=6, n_layers=6, model="m-instruct", seed=1)])
        >>> claim_instruct_not_better_at_correctness(df).supported
        True
    """
    claim = (
        "Instruction-tuned LLMs do not separate correct from irrelevant responses better "
        "than pre-trained (base) LLMs"
    )
    if model_col not in df.columns or "correct" not in df.columns:
        return Finding(claim, "n/a", None, f"table lacks {model_col!r} or 'correct'")
    models = list(dict.fromkeys(df[model_col].dropna()))
    if instruct is None:
        g = [m for m in models if any(t in str(m).lower() for t in ("instruct", "-it", "chat"))]
        instruct = g[0] if len(g) == 1 else None
    if base is None and instruct is not None:
        rest = [m for m in models if m != instruct]
        base = rest[0] if len(rest) == 1 else None
    if base is None or instruct is None:
        return Finding(claim, "n/a", None, f"cannot tell base from instruct among {models}")
    w = dict(where or {})
    w[column] = slow
    w[model_col] = [base, instruct]
    rd = rd_by(filter_table(df, w), metric, model_col, modules)
    if base not in rd.index or instruct not in rd.index:
        return Finding(
            claim, "n/a", None, f"need correct and irrelevant {slow} rows for both models"
        )
    ok = bool(rd[instruct] < margin * rd[base])
    measured = f"RD base={fmt_number(rd[base])}, instruct={fmt_number(rd[instruct])}"
    detail = (
        f"authors' RD |correct-irrelevant|/|correct| of mean {metric} curves at {column}={slow}, "
        f"module-averaged; criterion RD[instruct] < {margin}×RD[base]"
    )
    return Finding(claim, measured, ok, detail)


# --------------------------------------------------------------------------- extra claims


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
) -> Finding:
    """Exploratory: long-tail (unpopular) knowledge gives larger gradients than popular.

    Compares module-averaged mean-curve levels of ``metric`` (correct responses) of
    long-tail and popular texts of the same nominal length: at every ``length_column``
    value both groups have (the synthetic set), or else (the released files, whose
    long-tail texts have no length variants) against the popular length whose median
    response length is closest to the long-tail one. Supported iff long-tail is larger
    at every compared length. MADs are reported too.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> d = synthetic_stats(n_samples=4, n_layers=4, datasets=["w"], cots=["none"])
        >>> d["popularity"] = np.where(d["sample_id"].str.endswith(("0", "2")), "popular", "long_tail")
        >>> claim_long_tail_larger(d, length_column="").supported in (True, False)
        True
    """
    claim = "Exploratory: long-tail knowledge gives larger gradients than popular knowledge of similar length"
    d = filter_table(df, with_correct(df, None, correct))
    if column not in d.columns or not {popular, long_tail} <= set(d[column].dropna()):
        return Finding(claim, "n/a", None, f"need {column}={popular!r} and {long_tail!r} rows")
    keys = example_key_columns(d)
    lt, pop = d[d[column] == long_tail], d[d[column] == popular]
    comparisons: list[tuple[str, pd.DataFrame, pd.DataFrame]] = []
    if length_column and length_column in d.columns:
        common = [
            v
            for v in value_order(pop[length_column].dropna().unique(), length_column)
            if v in set(lt[length_column].dropna())
        ]
        comparisons = [
            (str(v), lt[lt[length_column] == v], pop[pop[length_column] == v]) for v in common
        ]
    if not comparisons:
        lt_len = float(lt.drop_duplicates(keys)["n_response_tokens"].median())
        if length_column and length_column in pop.columns and pop[length_column].nunique() > 1:
            med = pop.drop_duplicates(keys).groupby(length_column)["n_response_tokens"].median()
            chosen = (med - lt_len).abs().idxmin()
            pop = pop[pop[length_column] == chosen]
            label = f"long-tail vs popular {length_column}={chosen}"
        else:
            label = "long-tail vs popular"
        comparisons = [(label, lt, pop)]
    parts, oks = [], []
    for label, a, b in comparisons:
        sa = curve_summary(a, metric, [], modules)[["level", "mad"]].mean()
        sb = curve_summary(b, metric, [], modules)[["level", "mad"]].mean()
        oks.append(bool(sa["level"] > sb["level"]))
        la = float(a.drop_duplicates(keys)["n_response_tokens"].median())
        lb = float(b.drop_duplicates(keys)["n_response_tokens"].median())
        parts.append((label, sa, sb, la, lb))
    measured = "; ".join(
        f"{lab}: level {fmt_number(sa['level'])} vs {fmt_number(sb['level'])}"
        for lab, sa, sb, _, _ in parts
    )
    detail = (
        "long-tail vs popular, module-averaged mean-curve level and MAD of "
        + metric
        + " over correct "
        "responses; "
        + "; ".join(
            f"{lab}: MAD {fmt_number(sa['mad'])} vs {fmt_number(sb['mad'])}, median response "
            f"tokens {la:.0f} vs {lb:.0f}"
            for lab, sa, sb, la, lb in parts
        )
        + f"; supported iff larger at every compared length ({sum(oks)}/{len(oks)}); not one of the "
        "paper's headline claims"
    )
    return Finding(claim, measured, all(oks), detail)
