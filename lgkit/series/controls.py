"""Notebook 06's length controls: answer-only statistics, the claims under each normalisation.

Slow thinking or just more tokens? The paper's loss is the mean over T response tokens,
so a long response's gradient is an average of many per-token terms. 06 reads the
paper's claims under each loss normalisation (``mean``, ``sum``, ``sqrt``:
:data:`lgkit.analysis.NORMS`), with the scale-free coherence and MAD ÷ level, and with
the loss on the final-answer tokens only (:func:`answer_stats`).

Example:
    >>> fs = length_claims(A.synthetic_stats(n_samples=6, n_layers=4, datasets=("gsm8k",)), n_boot=50)
    >>> [f.claim.split("]")[0] for f in fs][:2]
    ['[mean', '[mean']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from lgkit import analysis as A
from lgkit.schema import ATTN_MODULES
from lgkit.series.findings import tag
from lgkit.series.steps import data_files, family_stats, project_path

logger = logging.getLogger(__name__)

__all__ = [
    "answer_claims",
    "answer_data",
    "answer_stats",
    "headline_length_controls",
    "length_findings",
    "length_claims",
    "missing_answer_spans",
    "loss_on_table",
    "norm_summary",
    "norm_table",
    "rd_norm_table",
]


def answer_data(
    data_dir: str | Path,
    family: str,
    target: str | Path,
    *,
    datasets: str | Sequence[str] | None = None,
) -> Path:
    """A data folder at ``target`` with the correct-response files of ``family``, each record
    given ``meta["answer"]`` from its dataset's no-CoT file
    (:func:`lgkit.data.answers.attach_answers`; the released CoT files mostly lack a
    final-answer marker). Irrelevant responses are left out: their answer is another
    question's. Identical files give identical bytes, so the statistics cache is reused.
    """
    from lgkit.data.answers import attach_answers
    from lgkit.data.index import write_data_index
    from lgkit.formats.records import write_examples

    files = data_files(data_dir, family, datasets=datasets, correct=True)
    refs = {f.dataset: f.read() for f in files if f.cot == "none"}
    out = project_path(target)
    written = []
    for f in files:
        exs = f.read()
        n = attach_answers(exs, refs.get(f.dataset, []))
        logger.info("%s: attached %d of %d answers", f.name, n, len(exs))
        path = write_examples(out / f"{f.name}.jsonl", exs)
        written.append(replace(f, path=path, n=len(exs)))
    write_data_index(out, written, note="answers attached from the no-CoT files")
    return out


def answer_stats(
    data_dir: str | Path,
    family: str,
    model: Any,
    config: Any,
    cache_dir: str | Path,
    target: str | Path,
    *,
    datasets: str | Sequence[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`family_stats` with the loss on the final-answer tokens only (``loss_on="answer"``),
    on the correct responses with answers attached (:func:`answer_data` under ``target``).

    ``loss_on`` is one of the engine's numeric settings, so these statistics have their
    own cache key; the response-loss statistics of 02/03 are not touched.

    A file where no record has a findable answer span is left out, not fatal: its reason
    (:func:`answer_span_reason`) is in ``attrs["failed_files"]`` and :func:`answer_claims`
    turns it into an invalid row. A file where only some records have one keeps those;
    how many lack one and why (:func:`missing_answer_spans`) is in
    ``attrs["partial_files"]``, which :func:`answer_claims` puts in every row's caveats.
    """
    folder = answer_data(data_dir, family, target, datasets=datasets)
    cfg = replace(config, loss_on="answer")
    df = family_stats(folder, family, model, cfg, cache_dir, progress=progress, keep_going=True)
    failed = dict(df.attrs.get("failed_files") or {})
    for f in data_files(folder, family):
        if f.name in failed:
            failed[f.name] = answer_span_reason(f.read()) or failed[f.name]
    df.attrs["failed_files"] = failed
    partial = {}
    for f in data_files(folder, family):
        note = "" if f.name in failed else missing_answer_spans(f.read())
        if note:
            partial[f.name] = note
    df.attrs["partial_files"] = partial
    return df


def missing_answer_spans(examples: Sequence[Any]) -> str:
    """How many records of a file have no findable final-answer span, and why ("" when all
    have one): those examples get no answer-only statistics.

    Example:
        >>> from lgkit.formats.records import Example
        >>> missing_answer_spans([Example("q?", "", "So the answer is yes.", meta={"answer": "yes"}),
        ...                       Example("q?", "", "It could indeed be eaten.", meta={"answer": "yes"})])
        "1 of 2 records without a final-answer span (the answer ('yes') is not in the response text)"
    """
    from lgkit.engine.spans import answer_text_span

    missing = [e for e in examples if answer_text_span(e.output, e.meta.get("answer")) is None]
    if not missing:
        return ""
    with_answer = [e for e in missing if e.meta.get("answer")]
    shown = ", ".join(dict.fromkeys(repr(str(e.meta["answer"])) for e in with_answer[:3]))
    why = (
        f"the answer ({shown}) is not in the response text"
        if with_answer
        else "no answer field and no final-answer marker in the response"
    )
    return f"{len(missing)} of {len(examples)} records without a final-answer span ({why})"


def answer_span_reason(examples: Sequence[Any]) -> str:
    """Why no record of a file has a findable final-answer span ("" when some have one).

    Example:
        >>> from lgkit.formats.records import Example
        >>> answer_span_reason([Example("q?", "", "It rains a lot there.", meta={"answer": "yes"})])
        "no final-answer span: in 1 of 1 records the answer ('yes') is not in the response text"
    """
    from lgkit.engine.spans import answer_text_span

    missing = [e for e in examples if answer_text_span(e.output, e.meta.get("answer")) is None]
    if not examples or len(missing) < len(examples):
        return ""
    with_answer = [e for e in missing if e.meta.get("answer")]
    shown = ", ".join(repr(str(e.meta["answer"])) for e in with_answer[:3])
    if with_answer:
        return (
            f"no final-answer span: in {len(with_answer)} of {len(examples)} records the "
            f"answer ({shown}) is not in the response text"
        )
    return (
        f"no final-answer span: {len(missing)} records have no answer field and no "
        "final-answer marker in the response"
    )


def length_claims(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    *,
    norms: Sequence[str] = A.NORMS,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[A.Finding]:
    """The paper's claims 1 (slow thinking smaller and flatter: level, MAD; MAD ÷ level under
    ``mean``) and 3 (correct and irrelevant differ more with detailed CoT than without: RD
    ratio detailed/none) under each normalisation, each finding tagged ``[<norm>]``; then
    the scale-free coherence level (tagged ``[coherence]``). The no-difference claim without
    CoT is left to 02/03 (correct and irrelevant bare answers have about the same T).
    """
    kw: dict[str, Any] = {"n_boot": n_boot, "seed": seed}
    out: list[A.Finding] = []
    for norm in norms:
        fs = A.claim_flatter_with_cot(
            df, metric, segments=False, relative_mad=norm == "mean", norm=norm, **kw
        )
        fs += A.claim_correct_vs_irrelevant(
            df, metric, where={"cot": ["none", "detailed"]}, alike=False, norm=norm, **kw
        )
        out += [_control(tag(f, norm), f"length control: loss {norm}") for f in fs]
    if "coherence" in df.columns and df["coherence"].notna().any():
        fs = A.claim_flatter_with_cot(df, "coherence", segments=False, **kw)[:1]
        out += [_control(tag(f, "coherence", "scale-free; not a claim of the paper"),
                         "coherence: not a claim of the paper") for f in fs]  # fmt: skip
    return out


def headline_length_controls(
    findings: Sequence[A.Finding],
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[A.Finding]:
    """02/03's findings with, in each headline row's control (the pooled rows of
    :data:`lgkit.series.findings.HEADLINE_STATISTICS`), the same claim's verdict under loss
    ÷ √T and summed loss: :func:`length_claims` on the notebook's own table ``df``, decided
    as 06 decides them (exploratory: own 95% CI, unadjusted p), and a pointer to 06 for the
    answer-only loss (its own statistics, not computed here).

    Example:
        >>> df = A.synthetic_stats(n_samples=6, n_layers=6, datasets=("gsm8k",))
        >>> fs = headline_length_controls(A.decide(A.claim_flatter_with_cot(df, n_boot=50)), df, n_boot=50)
        >>> fs[0].control.split(": ")[0], fs[2].control
        ("same claim under 06's length controls (this notebook's statistics rescaled, own 95% CI)", '')
    """
    from lgkit.series.findings import CONTROL_NAMES, HEADLINE_STATISTICS

    norms = ("sqrt", "sum")
    by: dict[tuple[str, str], A.Finding] = {}
    for g in A.decide(length_claims(df, metric, norms=norms, n_boot=n_boot, seed=seed)):
        norm = g.claim[1:].split("]", 1)[0]
        by[(g.statistic.removesuffix(f", {norm}-normalised"), norm)] = g
    out = []
    for f in findings:
        if f.statistic in HEADLINE_STATISTICS and not f.claim.startswith("["):
            parts = []
            for norm in norms:
                g = by.get((f.statistic, norm))
                said = (
                    f"{g.verdict} ({A.fmt_number(g.estimate)} [{A.fmt_number(g.ci_low)}, "
                    f"{A.fmt_number(g.ci_high)}])"
                    if g is not None and g.verdict != "invalid"
                    else (g.verdict_text.split("; ")[0] if g is not None else "not computed")
                )
                parts.append(f"{CONTROL_NAMES[norm]}: {said}")
            parts.append("answer-only loss: notebook 06")
            line = (
                "same claim under 06's length controls (this notebook's statistics rescaled, own "
                "95% CI): " + ", ".join(parts)
            )
            f = replace(f, control="; ".join(x for x in (f.control, line) if x))
        out.append(f)
    return out


def _control(f: A.Finding, why: str) -> A.Finding:
    """``f`` as an exploratory control row (06 holds controls, not the paper's claims)."""
    return A.exploratory(f, why)


def answer_claims(
    df: pd.DataFrame, metric: str = "nuclear_norm", *, n_boot: int = 1000, seed: int = 0
) -> list[A.Finding]:
    """Claim 1 (level, MAD) with the loss on the final-answer tokens only, tagged
    ``[answer-only loss]``: about as many loss tokens at every CoT level, the reasoning
    in context. Each data file :func:`answer_stats` left out gives an invalid row with its
    reason; with no file left the claims themselves are invalid for that reason."""
    failed = dict(df.attrs.get("failed_files") or {})
    partial = dict(df.attrs.get("partial_files") or {})
    claim = "Slow thinking gives smaller gradients with the loss on the answer only"
    fs = (
        A.claim_flatter_with_cot(df, metric, segments=False, n_boot=n_boot, seed=seed)
        if len(df)
        else [A.invalid(claim, "level ratio", "; ".join(sorted(set(failed.values()))) or "no data")]
    )
    fs += [
        A.invalid(f"{claim} ({name})", "level ratio", why)
        for name, why in failed.items()
        if len(df)
    ]
    note = "the CoT stays in context; loss on the answer tokens"
    if partial:
        note += (
            "; fewer questions than the files hold: "
            + "; ".join(f"{name}: {why}" for name, why in partial.items())
            + "; those examples have no answer-only statistics, so their questions are left out "
            "of the paired comparison"
        )
    return [
        _control(tag(f, "answer-only loss", note), "length control: answer-only loss") for f in fs
    ]


def norm_summary(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    *,
    norms: Sequence[str] = A.NORMS,
    modules: Sequence[str] | None = ATTN_MODULES,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{norm: {cot: {"level", "mad", "mad_rel"}}}`` of the correct responses' mean curves
    (module-averaged; ``mad_rel`` = MAD ÷ level per module, averaged).

    Example:
        >>> s = norm_summary(A.synthetic_stats(n_samples=4, n_layers=6))
        >>> sorted(s), sorted(s["sum"]["none"])
        (['mean', 'sqrt', 'sum'], ['level', 'mad', 'mad_rel'])
    """
    d = A.filter_table(df, A.with_correct(df, None, True))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for norm in norms:
        s = A.curve_summary(d, metric, ["cot"], modules, norm=norm)
        s["mad_rel"] = s["mad"] / s["level"]
        agg = s.groupby("cot", sort=False)[["level", "mad", "mad_rel"]].mean()
        out[norm] = {
            str(k): {c: float(agg.loc[k, c]) for c in agg.columns}
            for k in A.value_order(agg.index, "cot")
        }
    return out


def loss_on_table(
    df: pd.DataFrame,
    answer_df: pd.DataFrame | None,
    metric: str = "nuclear_norm",
    *,
    modules: Sequence[str] | None = ATTN_MODULES,
) -> pd.DataFrame:
    """Level, MAD and median loss tokens per (loss on, cot) of the correct responses:
    the full response (the paper) against the final-answer tokens only.

    Example:
        >>> t = loss_on_table(A.synthetic_stats(n_samples=3, n_layers=4), None)
        >>> t["loss_on"].unique().tolist(), t["cot"].tolist()[:1]
        (['response'], ['none'])
    """
    rows = []
    for loss_on, d in (("response", df), ("answer", answer_df)):
        if d is None or d.empty:
            continue
        d = A.filter_table(d, A.with_correct(d, None, True))
        s = A.curve_summary(d, metric, ["cot"], modules).groupby("cot", sort=False)
        tokens = d.drop_duplicates(A.example_key_columns(d)).assign(T=A.loss_tokens)
        med = tokens.groupby("cot")["T"].median()
        for cot, g in s:
            rows.append({"loss_on": loss_on, "cot": cot, "level": float(g["level"].mean()),
                         "mad": float(g["mad"].mean()), "median_loss_tokens": float(med.get(cot))})  # fmt: skip
    cols = ["loss_on", "cot", "level", "mad", "median_loss_tokens"]
    t = pd.DataFrame(rows, columns=cols)
    return A.sort_groups(t, ["loss_on", "cot"]) if len(t) else t


def norm_table(df: pd.DataFrame, metric: str = "nuclear_norm") -> pd.DataFrame:
    """:func:`norm_summary` as a table: one row per (norm, cot).

    Example:
        >>> norm_table(A.synthetic_stats(n_samples=3, n_layers=4)).columns.tolist()
        ['norm', 'cot', 'level', 'mad', 'mad_rel']
    """
    rows = [
        {"norm": n, "cot": c, **v}
        for n, per in norm_summary(df, metric).items()
        for c, v in per.items()
    ]
    return pd.DataFrame(rows, columns=["norm", "cot", "level", "mad", "mad_rel"])


def rd_norm_table(
    df: pd.DataFrame, metric: str = "nuclear_norm", modules: Sequence[str] | None = ATTN_MODULES
) -> pd.DataFrame:
    """Module-averaged RD(correct, irrelevant) per cot (rows) and normalisation (columns).

    Example:
        >>> t = rd_norm_table(A.synthetic_stats(n_samples=3, n_layers=4))
        >>> t.columns.tolist(), t.index.tolist()
        (['mean', 'sum', 'sqrt'], ['none', 'simplified', 'detailed'])
    """
    if df.empty or "correct" not in df.columns:
        return pd.DataFrame(columns=list(A.NORMS))
    return pd.DataFrame({n: A.rd_by(df, metric, "cot", modules, norm=n) for n in A.NORMS})


def length_findings(
    stats: dict[str, pd.DataFrame],
    answers: dict[str, pd.DataFrame | None],
    twins: dict[str, pd.DataFrame | None],
    metric: str = "nuclear_norm",
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[list[A.Finding], list[A.Finding]]:
    """06's findings per family (tagged ``[<family>]``): :func:`length_claims` on the
    response-loss table, :func:`answer_claims` on the answer-only one; and the random-twin
    findings (every seed of the twin table, tagged the same way) for
    :func:`lgkit.series.findings.finalize`, which matches them by key (the answer-only
    rows have no twin)."""
    from lgkit.series.findings import twin_findings

    findings: list[A.Finding] = []
    twin: list[A.Finding] = []
    for fam, df in stats.items():
        fs = length_claims(df, metric, n_boot=n_boot, seed=seed)
        tw = twin_findings(
            twins.get(fam), lambda d: length_claims(d, metric, n_boot=n_boot, seed=seed)
        )
        ans_df = answers.get(fam)
        ans = [] if ans_df is None else answer_claims(ans_df, metric, n_boot=n_boot, seed=seed)
        findings += [tag(f, fam) for f in fs + ans]
        twin += [tag(f, fam) for f in tw or []]
    return findings, twin
