"""Notebook 08 (data quality): do gradient-spectrum scores measure quality or length?

* :func:`example_scores`: one row per example of a family statistics table (02/03's
  cached statistics, so 08 computes nothing new for them), the scores of
  :mod:`lgkit.score` with the example's dataset, CoT level, correctness and question.
* :func:`auroc_table`: does a score put the better response (correct over irrelevant,
  detailed over none CoT) above the worse one? Per unit (a question; or a matched pair of
  responses, each question in at most one pair) the better-vs-worse AUROC; the statistic is
  the **within-question AUROC** (share of untied units where the better scores higher), with
  the exact Clopper–Pearson interval and the exact sign test (:mod:`lgkit.analysis.auroc`;
  complete separation gives ``[0.025^(1/n), 1]``, never ``[1, 1]``). Each score three ways:
  as it is, on **length-matched** pairs and on **loss-matched** pairs (lengths / losses
  within ``tol``), so a reader sees whether it adds anything beyond length and loss, which
  are baseline rows of their own. The pooled AUROC (all better × worse pairs) is shown
  beside it, undecided.
* :func:`auroc_findings` + :func:`decide`: the follow-up paper's claim (arXiv 2504.10766:
  better data, higher effective rank and lower nuclear norm) and the baselines as
  findings. A contrast that response length separates perfectly is "invalid: confounded by
  length" except on length-matched pairs. The primary family (:data:`PRIMARY`, declared:
  the claim on correct vs irrelevant as it is, and the two selection rows) is decided at
  Bonferroni level; every other row is exploratory and decided on its own 95% interval.
* :func:`selection_experiment`: fine-tune (``lgkit.train``) on the top, bottom and a
  random subset chosen by a score, balanced (:func:`lgkit.score.select.choose_balanced`:
  the same share of correct responses and CoT levels, loss tokens within 2%), held-out
  answer loss per question; :func:`selection_findings` compares them with the exact
  sign-flip test and its inverted interval.

Example:
    >>> round(auroc(np.array([3.0, 2.0]), np.array([1.0, 2.0])), 3)
    0.875
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lgkit import analysis as A
from lgkit.analysis import auroc as R
from lgkit.analysis import inference as I
from lgkit.score.aggregate import aggregate
from lgkit.series.progress import Reporter

log = logging.getLogger(__name__)

auroc = R.auroc

CONTRASTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "correct_vs_irrelevant": ("correct vs irrelevant (detailed CoT)",
                              {"correct": True, "cot": "detailed"},
                              {"correct": False, "cot": "detailed"}),
    "detailed_vs_none": ("detailed vs none CoT (correct)",
                         {"correct": True, "cot": "detailed"}, {"correct": True, "cot": "none"}),
}  # fmt: skip
"""contrast -> (label, the better side's filter, the worse side's filter)."""

CLAIMED = {"effective_rank": "greater", "nuclear_norm": "less"}
"""The follow-up paper's direction per score: better data, higher effective rank, lower nuclear norm."""

BASELINES = {"loss": ("less", "has lower loss"), "n_response_tokens": ("greater", "is longer")}
"""Baseline scores (direction, words): what a gradient score must beat."""

ADJUST = {"none": ("", "questions"), "length": ("n_response_tokens", "length-matched pairs"),
          "loss": ("loss", "loss-matched pairs")}  # fmt: skip
"""adjustment -> (covariate matched on, unit)."""

PRIMARY = ("correct_vs_irrelevant", "none")
"""The primary family: the paper's claim on (contrast, adjustment), plus the selection rows."""

META = ("dataset", "cot", "correct", "model")


def example_scores(df: pd.DataFrame, layers: str = "all", modules: Sequence[str] | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per example: :data:`lgkit.score.SCORES` plus dataset, cot, correct, qid."""
    scores = aggregate(df, layers=layers, modules=modules)
    cols = [c for c in (*META, "n_prompt_tokens") if c in df]
    meta = df.groupby("sample_id", sort=False)[cols].first()
    out = scores.merge(meta.reset_index(), on="sample_id")
    out["qid"] = A.question_ids(out).to_numpy()
    return out


def _side(ex: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    mask = np.ones(len(ex), bool)
    for k, v in where.items():
        mask &= (ex[k] == v).to_numpy()
    return ex[mask]


def _units(pos: pd.DataFrame, neg: pd.DataFrame, adjust: str, tol: float) -> tuple:
    """(better rows, worse rows, unit of each better row, unit of each worse row)."""
    cov = ADJUST[adjust][0]
    if not cov:
        both = sorted(set(pos.qid) & set(neg.qid))
        pos, neg = pos[pos.qid.isin(both)], neg[neg.qid.isin(both)]
        return pos, neg, pos.qid.to_numpy(), neg.qid.to_numpy()
    pairs = R.match_pairs(pos[cov].to_numpy(float), neg[cov].to_numpy(float),
                          pos.qid.to_numpy(), neg.qid.to_numpy(), tol)  # fmt: skip
    units = np.array([f"pair{k}" for k in range(len(pairs))])
    return pos.iloc[[i for i, _ in pairs]], neg.iloc[[j for _, j in pairs]], units, units


def auroc_table(ex: pd.DataFrame, scores: Sequence[str], *, tol: float = 0.1) -> pd.DataFrame:
    """Per contrast (:data:`CONTRASTS`), adjustment (:data:`ADJUST`) and score: the
    within-question AUROC with its exact 95% interval and sign-test p, the pooled AUROC,
    the units, and whether response length alone separates the contrast perfectly."""
    rows = []
    for key, (label, better, worse) in CONTRASTS.items():
        bp, bn = _side(ex, better), _side(ex, worse)
        for adjust, (_, unit) in ADJUST.items():
            pos, neg, up, un = _units(bp, bn, adjust, tol)
            names = list(dict.fromkeys(up))
            for s in scores:
                sp, sn = pos[s].to_numpy(float), neg[s].to_numpy(float)
                r = R.concordance(R.unit_auroc(sp, sn, up, un, names)) if names else None
                rows.append({"contrast": key, "label": label, "adjust": adjust,
                             "length_matched": adjust == "length", "unit": unit, "score": s,
                             "auroc": r["estimate"] if r else math.nan,
                             "ci_low": r["ci_low"] if r else math.nan,
                             "ci_high": r["ci_high"] if r else math.nan,
                             "p": r["p"] if r else math.nan, "k": r["k"] if r else 0,
                             "n_units": r["n"] if r else 0, "ties": r["ties"] if r else 0,
                             "auroc_pooled": auroc(sp, sn), "n_better": len(pos),
                             "n_worse": len(neg)})  # fmt: skip
        raw = (bp.n_response_tokens.to_numpy(float), bn.n_response_tokens.to_numpy(float))
        pooled = auroc(*raw)
        for r in rows:
            if r["contrast"] == key:
                r["length_separates"] = bool(pooled in (0.0, 1.0))
                r["length_auroc_pooled"] = pooled
    return pd.DataFrame(rows)


def _claim(score: str, label: str, adjust: str) -> tuple[str, str]:
    """(claim, direction) of a score's row."""
    tail = {"none": "", "length": ", length-matched", "loss": ", loss-matched"}[adjust]
    if score in CLAIMED:
        word = "higher" if CLAIMED[score] == "greater" else "lower"
        return f"Better data has {word} {score.replace('_', ' ')}: {label}{tail}", CLAIMED[score]
    direction, words = BASELINES[score]
    return f"[baseline] The better response {words}: {label}{tail}", direction


def _row_scores(adjust: str) -> list[str]:
    """Scores with a findings row under ``adjust`` (never a baseline matched on itself)."""
    out = list(CLAIMED)
    for b in BASELINES:
        if ADJUST[adjust][0] != b:
            out.append(b)
    return out


def auroc_findings(table: pd.DataFrame) -> list[A.Finding]:
    """The follow-up paper's claim (:data:`CLAIMED`) and the baselines (:data:`BASELINES`)
    per contrast and adjustment, undecided by family (see :func:`decide`); the primary
    rows first. Each finding's ``recipe`` is ``(k, n)`` for its interval at other levels."""
    out = []
    stat = "within-question AUROC (better > worse)"
    lm = table[table.adjust == "length"]
    matched = lm.groupby("contrast")["n_better"].max().to_dict()
    raw = table[(table.adjust == "none") & (table.score == "loss")]
    loss_raw = {r.contrast: r for r in raw.itertuples()}
    for r in table.itertuples():
        if r.score not in _row_scores(r.adjust):
            continue
        claim, direction = _claim(r.score, r.label, r.adjust)
        detail = (f"{r.k} of {r.n_units} {r.unit} with the better response higher"
                  f"{f' ({r.ties} tied, left out)' if r.ties else ''}; {r.n_better} vs "
                  f"{r.n_worse} examples; pooled AUROC {r.auroc_pooled:.3g} (all better × worse "
                  "pairs, not decided); 95% CI: Clopper–Pearson (exact); p: exact sign test")  # fmt: skip
        kw = {"n_questions": int(r.n_units), "detail": detail}
        if r.length_separates and r.adjust != "length" and r.score != "n_response_tokens":
            n_len = matched.get(r.contrast, 0)
            why = (f"confounded by length: the response length alone separates better from "
                   f"worse (pooled AUROC {r.length_auroc_pooled:.3g}); "
                   + (f"see the length-matched row ({n_len} pairs)" if n_len >= I.MIN_QUESTIONS
                      else f"{n_len} length-matched pairs, too few to adjust"))  # fmt: skip
            if r.adjust != "none":  # the row's own matching and its count first
                few = f" (< {I.MIN_QUESTIONS})" if r.n_units < I.MIN_QUESTIONS else ""
                why = f"{r.n_units} {r.unit}{few}; {why}"
            out.append(A.invalid(claim, stat, why, **kw))
            continue
        if r.n_units < I.MIN_QUESTIONS:
            what = r.unit if r.adjust != "none" else "questions with both responses"
            why = f"{r.n_units} {what} (< {I.MIN_QUESTIONS})"
            base = loss_raw.get(r.contrast)
            if r.adjust == "loss" and base is not None and base.n_units:
                why += (f"; the loss alone gives a within-question AUROC of {base.auroc:.2f} "
                        f"({base.k} of {base.n_units} questions) here, so what a score adds "
                        "beyond the loss cannot be measured at this size")  # fmt: skip
            out.append(A.invalid(claim, stat, why, **kw))
            continue
        out.append(A.Finding(claim, stat, float(r.auroc), float(r.ci_low), float(r.ci_high),
                             float(r.p), null=0.5, direction=direction,
                             recipe=(int(r.k), int(r.n_units)), **kw))  # fmt: skip
    primary = [f for f in out if _is_primary(f)]
    return primary + [f for f in out if not _is_primary(f)]


LENGTH_CLAIM = f"[baseline] The better response {BASELINES['n_response_tokens'][1]}"
"""The start of the length baseline's claims: response length does not depend on the weights,
so these rows have no random-twin control (it would give the same AUROC: a vacuous comparison)."""
NO_TWIN_LENGTH = "no random twin: response length does not depend on the weights"


def _is_primary(f: A.Finding) -> bool:
    key, adjust = PRIMARY
    label = CONTRASTS[key][0]
    return f.claim.startswith("Better data") and f.claim.endswith(f": {label}") and adjust == "none"


def _interval(f: A.Finding, level: float) -> tuple[float, float]:
    """``f``'s interval at ``level``: exact for an AUROC row (``recipe = (k, n)``), the
    inverted sign-flip test for a selection row (``recipe`` = the differences)."""
    if isinstance(f.recipe, tuple):
        return R.clopper_pearson(*f.recipe, level)
    return R.signflip_interval(np.asarray(f.recipe), level)


def decide(
    findings: Sequence[A.Finding],
    twin: Sequence[A.Finding] | None = None,
    labels: Sequence[str] = (),
    alpha: float = I.ALPHA,
) -> list[A.Finding]:
    """Verdicts of 08's rows: the primary family (the paper's claim on correct vs
    irrelevant and the selection rows; ``p_adj`` = Bonferroni) and the exploratory rest
    (``p_adj = p``, own 95% interval). A verdict needs ``p_adj < alpha`` and the 95% CI on
    one side of the null (equivalent to the family-level interval excluding it); an
    inconclusive row says why: no verdict possible at this size, or the 95% CI excludes the
    null but the family-level interval (given) does not. ``twin``: the same rows on the
    random-initialisation twin, matched by claim, shown as a control with its own 95%
    interval (no learned contrast is computed here, and none is claimed)."""
    fs = list(findings)
    prim = {id(f) for f in fs if _is_primary(f) or f.statistic.startswith("held-out answer loss")}
    m = sum(1 for f in fs if id(f) in prim and f.verdict != "invalid")
    by_claim = {t.claim: t for t in twin or []}
    rule = (f"primary family ({m} rows: the follow-up paper's claim on correct vs irrelevant "
            f"and the selection rows): Bonferroni, p_adj = {m} p; supported iff p_adj < "
            f"{alpha} and the 95% CI lies on the claimed side of the null (then the "
            f"{1 - alpha / max(m, 1):.2%} interval excludes it too); contradicted likewise on "
            "the other side; else inconclusive")  # fmt: skip
    rule_x = (f"exploratory row (not in the primary family, no adjustment): supported iff its "
              f"exact p < {alpha} and its 95% CI lies on the claimed side of the null; "
              "contradicted likewise on the other side; else inconclusive")  # fmt: skip
    out = []
    for f in fs:
        primary = id(f) in prim
        k = max(m, 1) if primary else 1
        level = 1 - alpha / k
        p_adj = min(1.0, k * f.p) if f.verdict != "invalid" else math.nan
        v = f.verdict if f.verdict == "invalid" else A.verdict_of(f, p_adj, alpha)
        parts = [f.verdict_text if v == "invalid" else v]
        if v == "inconclusive":
            n = f.n_questions
            if R.min_p(n) * k >= alpha:
                parts = [f"inconclusive: no verdict possible at this size (n={n}: the "
                         f"smallest p is {R.min_p(n):.3g}{f', times {k}' if k > 1 else ''})"]  # fmt: skip
            elif f.ci_low > f.null or f.ci_high < f.null:
                lo, hi = _interval(f, level)
                parts = [f"inconclusive: the 95% CI excludes {f.null:g} but the {level:.2%} "
                         f"interval of the primary family (Bonferroni, {k} rows) "
                         f"[{lo:.3g}, {hi:.3g}] does not"]  # fmt: skip
            elif isinstance(f.recipe, tuple):
                d = R.smallest_detectable(n, alpha / k)
                parts.append(f"at n={n} only a within-question AUROC of {d:.2f} or more (or "
                             f"{1 - d:.2f} or less) can be decided")  # fmt: skip
            else:
                lo, hi = f.ci_low, f.ci_high
                parts.append(f"this n detects a difference of about {(hi - lo) / 2:.3g} or more")
        if not primary and v != "invalid":
            parts.append("exploratory")
        if "compares single training runs" in f.caveats:
            parts.append("compares single training runs (seed-to-seed variance not included)")
        weight_free = f.claim.startswith(LENGTH_CLAIM)
        tw = None if weight_free else by_claim.get(f.claim)
        control = NO_TWIN_LENGTH if weight_free and twin else ""
        if tw is not None:
            tv = tw.verdict
            control = (f"random twin: {tw.verdict_text}" if tv == "invalid" else
                       f"random twin: {tw.estimate:.3g} [{tw.ci_low:.3g}, {tw.ci_high:.3g}], "
                       f"p={tw.p:.3g} -> {tv} (own 95% interval)")  # fmt: skip
            if v == "supported" and tv == "supported":
                parts.append("also at random initialisation (twin supported): the separation "
                             "needs no training")  # fmt: skip
        out.append(replace(f, p_adj=p_adj, verdict=v, control=control,
                           rule=rule if primary else rule_x,
                           family=A.PRIMARY if primary else A.EXPLORATORY,
                           adjust="" if v == "invalid" else "Bonferroni" if primary else "none",
                           verdict_text="; ".join([*parts, *f.labels, *labels])))  # fmt: skip
    return out


def notebook_findings(table: pd.DataFrame, selection: Sequence[A.Finding],
                      twin_table: pd.DataFrame | None, df: pd.DataFrame, model: str) -> list[A.Finding]:  # fmt: skip
    """08's findings, decided (:func:`decide`): the primary rows (the paper's claim on
    correct vs irrelevant, then the selection rows), then the exploratory ones, each with
    the random twin's row as its control and the run's labels (synthetic data, weights)."""
    from lgkit.series.findings import run_labels

    fs = auroc_findings(table)
    n = sum(1 for f in fs if _is_primary(f))
    twin = auroc_findings(twin_table) if twin_table is not None else None
    return decide(fs[:n] + list(selection) + fs[n:], twin, run_labels(df, [model]))


# --------------------------------------------------------------------------- selection


def _pool(files: Sequence[Any], limit: int | None) -> dict[str, Any]:
    """sample_id -> Example of every record of ``files`` (the first ``limit`` of each)."""
    from lgkit.engine.plan import unique_ids
    from lgkit.formats.records import read_examples

    out = {}
    for f in files:
        exs = read_examples(f.path)[: limit or None]
        out.update(zip(unique_ids(exs, str(f.path)), exs, strict=True))
    return out


def _split(ex: pd.DataFrame, share: float, seed: int) -> tuple[set[str], set[str]]:
    qids = np.array(sorted(set(ex.qid)))
    rng = np.random.default_rng(seed)
    held = set(rng.choice(qids, size=max(1, int(round(share * len(qids)))), replace=False))
    return set(qids) - held, held


def _heldout_examples(ex: pd.DataFrame, pool: dict[str, Any], held: set[str]) -> list[Any]:
    """Correct detailed-CoT records of held-out questions whose final answer can be found."""
    from lgkit.engine.spans import answer_text_span

    rows = ex[ex.qid.isin(held) & (ex.correct == True) & (ex.cot == "detailed")]  # noqa: E712
    out = []
    for sid in rows.sample_id:
        e = pool.get(sid)
        if e is not None and answer_text_span(e.output, e.meta.get("answer")) is not None:
            out.append(e)
    return out


def selection_experiment(
    ex: pd.DataFrame,
    files: Sequence[Any],
    model: str,
    out_dir: str | Path,
    *,
    by: str = "effective_rank",
    fraction: float = 0.5,
    seeds: Sequence[int] = (0, 1, 2),
    train_config: Any = None,
    limit: int | None = None,
    heldout_share: float = 0.5,
    split_seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fine-tune ``model`` afresh on the top, bottom and a random subset of the training
    questions' examples by ``by``, once per seed; measure the held-out answer loss per
    question. The subsets are balanced (:func:`lgkit.score.select.choose_balanced`): equal
    size, the same number of correct/irrelevant responses per CoT level, and loss tokens
    (the response tokens that fit ``max_length`` after the prompt) within 2% of each other. A run already finished in ``out_dir`` with the same
    model, subset and settings is read, not trained again (other settings: InputError).

    Returns ``(losses, subsets)``: one row per kind × seed × held-out question (the last
    step's answer loss), and one row per kind × seed (size, loss tokens, mean score).
    """
    from lgkit.score.select import Rule, choose_balanced
    from lgkit.train import TrainConfig, finished, load_heldout, train

    pool = _pool(files, limit)
    ex = ex[ex.sample_id.isin(list(pool))]
    train_q, held_q = _split(ex, heldout_share, split_seed)
    heldout = _heldout_examples(ex, pool, held_q)
    cand = ex[ex.qid.isin(train_q)]
    room = int((train_config or {}).get("max_length", 1024)) - 8
    if "n_prompt_tokens" in cand:  # a prompt longer than the training max_length cannot train
        cand = cand[cand.n_prompt_tokens < room]
    cand = cand.reset_index(drop=True).assign(index=lambda d: d.index)
    resp = cand.n_response_tokens.to_numpy(float)
    fits = room + 8 - cand.n_prompt_tokens.to_numpy(float) if "n_prompt_tokens" in cand else resp
    cand["loss_tokens"] = np.minimum(resp, fits)
    losses, subsets = [], []
    report = Reporter(str(model), 3 * len(seeds), unit="runs")  # lgkit run's status line
    for seed in seeds:
        for kind in ("top", "bottom", "random"):
            report.file(f"{kind}-seed{seed}")
            t0 = time.perf_counter()
            chosen = choose_balanced(cand, Rule(kind, fraction=fraction), by, tokens="loss_tokens",
                                     seed=seed)  # fmt: skip
            sub = cand.iloc[chosen]
            cfg = TrainConfig(**{**(train_config or {}), "seed": seed})
            run = Path(out_dir) / f"{kind}-seed{seed}"
            records = [pool[s] for s in sub.sample_id]
            if not finished(model, records, run, cfg):  # a finished run of these settings is read
                train(model, records, run, cfg, heldout=heldout, probe=records[:1])
            report.step(1, time.perf_counter() - t0)
            h = load_heldout(run)
            last = h[h.step == h.step.max()]
            losses.append(last.assign(kind=kind, seed=seed))
            subsets.append({"kind": kind, "seed": seed, "n": len(sub),
                            "loss_tokens": int(sub.loss_tokens.sum()),
                            "response_tokens": int(sub.n_response_tokens.sum()),
                            f"mean_{by}": float(sub[by].mean()),
                            "share_correct": float(sub.correct.mean()),
                            "share_detailed": float((sub.cot == "detailed").mean())})  # fmt: skip
    out = pd.concat(losses, ignore_index=True)
    out["qid"] = A.question_ids(out).to_numpy()
    return out, pd.DataFrame(subsets)


def selection_findings(losses: pd.DataFrame, by: str, subsets: pd.DataFrame | None = None,
                       *, seed: int = 0) -> list[A.Finding]:  # fmt: skip
    """Held-out answer loss of the top (and bottom) subset minus the random one, paired
    by held-out question (mean over seeds): the exact sign-flip test and its inverted 95%
    interval (:func:`lgkit.analysis.auroc.signflip_interval`). The rows say that they
    compare single training runs (one per subset and seed: seed-to-seed variance of
    training is not in the interval) and give the subsets' balance (``subsets``) as
    covariates."""
    wide = losses.groupby(["sample_id", "kind"])["loss"].mean().unstack("kind")
    n_seeds = int(losses.seed.nunique())
    runs = (f"compares single training runs ({n_seeds} seed(s) per subset): the interval covers "
            "the held-out questions' variance only, not seed-to-seed variance of training")  # fmt: skip
    covs = ""
    if subsets is not None and len(subsets):
        g = subsets.groupby("kind")[["share_correct", "loss_tokens"]].mean()
        covs = "subsets: " + ", ".join(f"{k} {g.loc[k, 'share_correct']:.0%} correct, "
                                       f"{g.loc[k, 'loss_tokens']:.0f} loss tokens"
                                       for k in ("top", "bottom", "random") if k in g.index)  # fmt: skip
    out = []
    for kind, direction, word in (("top", "less", "lower"), ("bottom", "greater", "higher")):
        claim = (
            f"Training on the {kind} by {by} gives {word} held-out answer loss than a random subset"
        )
        stat = f"held-out answer loss, {kind} − random"
        d = (
            (wide[kind] - wide["random"]).dropna().to_numpy()
            if kind in wide and "random" in wide
            else np.zeros(0)
        )
        if len(d) < I.MIN_QUESTIONS:
            out.append(A.invalid(claim, stat, f"{len(d)} held-out questions (< {I.MIN_QUESTIONS})",
                                 n_questions=len(d), caveats=runs))  # fmt: skip
            continue
        lo, hi = R.signflip_interval(d, seed=seed)
        p = R.signflip_p(d, seed=seed)
        how = (
            "exact over all 2^n flips"
            if 2 ** len(d) <= R.EXACT_FLIPS
            else f"{R.MC_FLIPS} random flips"
        )
        out.append(A.Finding(claim, stat, float(d.mean()), float(lo), float(hi), float(p),
                             n_questions=len(d), null=0.0, direction=direction,
                             caveats="; ".join(x for x in (runs, covs) if x), recipe=d,
                             detail=f"{n_seeds} seed(s); sign-flip permutation test over held-out "
                                    f"questions ({how}); 95% CI: the shifts that test does not "
                                    "reject (inverted test)"))  # fmt: skip
    return out


# --------------------------------------------------------------------------- figure, speed


#: What :func:`auroc_figure`'s colours and marker fills mean, as its legend says.
LEGEND: dict[str, str] = {
    "none": "trained model, as it is (blue, filled)",
    "length": "length-matched pairs (open circle)",
    "loss": "loss-matched pairs (open square)",
    "twin": "random-initialisation twin (gray)",
}


def auroc_figure(table: pd.DataFrame, twin: pd.DataFrame | None = None, title: str = "") -> Any:
    """Within-question AUROC with its exact 95% interval per score: one panel per contrast;
    as it is (filled circle), length-matched (open circle), loss-matched (square); the
    random twin in gray; sized for a room. Rows without units are left out."""
    from matplotlib.figure import Figure

    from lgkit.viz.style import OKABE_ITO, readable

    def norm(t: pd.DataFrame) -> pd.DataFrame:  # tables with only length_matched and no units
        if "adjust" not in t:
            t = t.assign(adjust=np.where(t.length_matched, "length", "none"))
        return t if "n_units" in t else t.assign(n_units=1)

    table = norm(table)
    twin = None if twin is None else norm(twin)
    keys = list(dict.fromkeys(table.contrast))
    scores = list(dict.fromkeys(table.score))
    fig = Figure(figsize=(4.2 * len(keys) + 1.6, 1.6 + 0.6 * len(scores)), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False, sharey=True)
    sets = [(table, OKABE_ITO["blue"], 0.0)] + ([(twin, "0.55", 0.1)] if twin is not None else [])
    marks = {"none": (-0.2, "o", True), "length": (0.0, "o", False), "loss": (0.2, "s", False)}
    for ax, key in zip(axes[0], keys, strict=True):
        for tbl, color, shift in sets:
            for adjust, (off, marker, filled) in marks.items():
                t = tbl[(tbl.contrast == key) & (tbl.adjust == adjust) & (tbl.n_units > 0)]
                if not len(t):
                    continue
                y = np.array([scores.index(s) for s in t.score]) + off + shift
                ax.errorbar(t.auroc, y, xerr=[t.auroc - t.ci_low, t.ci_high - t.auroc],
                            fmt=marker, color=color, mfc=color if filled else "none", ms=6, lw=1.2,
                            capsize=2, label=LEGEND[adjust] if shift == 0 else
                            (LEGEND["twin"] if adjust == "none" else None))  # fmt: skip
        ax.axvline(0.5, color="k", lw=0.8, ls=":")
        ax.set_xlim(-0.05, 1.05)  # a margin: markers at AUROC 0 and 1 are not clipped
        sub = table[table.contrast == key]
        confounded = "length_separates" in sub and bool(sub.length_separates.any())
        ax.set_title(sub.label.iloc[0] + ("\n(confounded by length)" if confounded else ""))
        ax.set_xlabel("AUROC (better > worse)")
    axes[0][0].set_yticks(range(len(scores)), [s.replace("_", " ") for s in scores])
    axes[0][0].invert_yaxis()
    legend: dict[str, Any] = {}  # every panel's entries, once: a panel may lack loss-matched rows
    for ax in axes[0]:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(name, handle)
    order = list(LEGEND.values())
    legend = dict(sorted(legend.items(), key=lambda kv: order.index(kv[0])))
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="outside lower center",
                   ncol=min(len(legend), 2), frameon=False)  # fmt: skip
    fig.suptitle(title or "Within-question AUROC per score")
    return readable(fig)


def oda_speed_line(speed: dict[str, Any]) -> str:
    """The line 08 prints for :func:`oda_speed`'s result, computed now or read from a run's
    ``metrics.json``.

    Example:
        >>> oda_speed_line({"n_examples": 4, "examples_per_s": {"oda": 1.0, "lgkit": 3.0},
        ...                 "ratio_lgkit_over_oda": 3.0})
        'examples/s: ODA method 1.00, lgkit 3.00 (ratio 3.00x, 4 examples)'
    """
    eps = speed["examples_per_s"]
    n = speed.get("n_examples")
    return (f"examples/s: ODA method {eps['oda']:.2f}, lgkit {eps['lgkit']:.2f} "
            f"(ratio {speed['ratio_lgkit_over_oda']:.2f}x"
            + (f", {n} examples)" if n is not None else ")"))  # fmt: skip


def oda_speed(model: str, records: Sequence[dict[str, Any]], *, rounds: int = 2,
              max_length: int = 512) -> dict[str, Any]:  # fmt: skip
    """examples/s of OpenDataArena's method (naive: both scorers, last layer) and of
    ``lgkit.score(compat="oda")`` on ``records``, alternating rounds, medians.

    Timings on a shared machine are indicative; ``benchmarks/oda_compare.py`` is the
    benchmark.
    """
    import json
    import shutil
    import tempfile
    import time

    from lgkit.models.load import load_model
    from lgkit.score.api import score
    from lgkit.score.oda import naive_oda_scores

    lm = load_model(model, instruct=False)
    tmp = Path(tempfile.mkdtemp(prefix="lgkit_oda_"))
    src = tmp / "d.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    t: dict[str, list[float]] = {"oda": [], "lgkit": []}
    try:
        for r in range(rounds):
            t0 = time.perf_counter()
            for sc in ("nuclear", "rank"):
                naive_oda_scores(lm.model, lm.tokenizer, records, sc, max_length=max_length)
            t["oda"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            score(src, lm, tmp / f"s{r}", compat="oda", max_length=max_length, progress=False)
            t["lgkit"].append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    eps = {k: len(records) / float(np.median(v)) for k, v in t.items()}
    return {"n_examples": len(records), "rounds": rounds, "examples_per_s": eps,
            "ratio_lgkit_over_oda": eps["lgkit"] / eps["oda"], "seconds": t}  # fmt: skip
