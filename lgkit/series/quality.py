"""Notebook 08 (data quality): do gradient-spectrum scores measure quality or length?

* :func:`example_scores`: one row per example of a family statistics table (02/03's
  cached statistics, so 08 computes nothing new for them), the scores of
  :mod:`lgkit.score` with the example's dataset, CoT level, correctness and question.
* :func:`auroc_findings`: does a score separate better from worse responses (correct
  from irrelevant, detailed from none CoT)? AUROC = P(score of the better > score of the
  worse), question-level bootstrap CI, within-question label-swap permutation p; and
  the same on length-matched pairs (greedy nearest lengths within 10%; the pair is the
  resampling unit). The follow-up paper's claim (arXiv 2504.10766: better data, higher
  effective rank and lower nuclear norm) is the direction of each finding.
* :func:`selection_experiment`: fine-tune (``lgkit.train``) on the top, bottom and a
  random subset chosen by a score (equal size; length-matched selection, so equal loss
  tokens up to the strata's rounding), several seeds, held-out answer loss per question;
  :func:`selection_findings` compares them with intervals.

Example:
    >>> round(auroc(np.array([3.0, 2.0]), np.array([1.0, 2.0])), 3)
    0.875
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lgkit import analysis as A
from lgkit.analysis import inference as I
from lgkit.score.aggregate import aggregate
from lgkit.series.progress import Reporter

log = logging.getLogger(__name__)

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

META = ("dataset", "cot", "correct", "model")


def example_scores(df: pd.DataFrame, layers: str = "all", modules: Sequence[str] | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per example: :data:`lgkit.score.SCORES` plus dataset, cot, correct, qid."""
    scores = aggregate(df, layers=layers, modules=modules)
    cols = [c for c in (*META, "n_prompt_tokens") if c in df]
    meta = df.groupby("sample_id", sort=False)[cols].first()
    out = scores.merge(meta.reset_index(), on="sample_id")
    out["qid"] = A.question_ids(out).to_numpy()
    return out


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + P(tie)/2 (the Mann–Whitney AUROC)."""
    return float(_cmp(pos, neg).mean()) if len(pos) and len(neg) else float("nan")


def _cmp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])


def _side(ex: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    mask = np.ones(len(ex), bool)
    for k, v in where.items():
        mask &= (ex[k] == v).to_numpy()
    return ex[mask]


def _units(pos: pd.DataFrame, neg: pd.DataFrame, matched: bool, tol: float) -> tuple:
    """(scores-of-pos index, neg index, unit of each pos row, unit of each neg row)."""
    if not matched:
        both = sorted(set(pos.qid) & set(neg.qid))
        pos, neg = pos[pos.qid.isin(both)], neg[neg.qid.isin(both)]
        return pos, neg, pos.qid.to_numpy(), neg.qid.to_numpy()
    lp, ln = pos.n_response_tokens.to_numpy(float), neg.n_response_tokens.to_numpy(float)
    gap = np.abs(lp[:, None] - ln[None, :])
    ok = gap <= tol * np.maximum(lp[:, None], ln[None, :])
    used_p, used_n, pairs = set(), set(), []
    order = np.unravel_index(np.argsort(gap, axis=None, kind="stable"), gap.shape)
    for i, j in zip(*order, strict=True):
        if ok[i, j] and i not in used_p and j not in used_n:
            used_p.add(i)
            used_n.add(j)
            pairs.append((i, j))
    ip = [i for i, _ in pairs]
    jn = [j for _, j in pairs]
    units = np.array([f"pair{k}" for k in range(len(pairs))])
    return pos.iloc[ip], neg.iloc[jn], units, units


def _auroc_stats(sp: np.ndarray, sn: np.ndarray, up: np.ndarray, un: np.ndarray,
                 n_boot: int, seed: int) -> tuple[float, float, float, float]:  # fmt: skip
    """AUROC, its unit-bootstrap CI, and the within-unit label-swap permutation p."""
    est = auroc(sp, sn)
    units = np.unique(np.concatenate([up, un]))
    ku, kn = np.searchsorted(units, up), np.searchsorted(units, un)
    rng = np.random.default_rng(seed)
    c = _cmp(sp, sn)
    counts = np.stack([np.bincount(rng.integers(0, len(units), len(units)), minlength=len(units))
                       for _ in range(n_boot)])  # fmt: skip
    wp, wn = counts[:, ku].astype(float), counts[:, kn].astype(float)
    with np.errstate(invalid="ignore"):
        boot = np.einsum("bi,ij,bj->b", wp, c, wn) / (wp.sum(1) * wn.sum(1))
    lo, hi = I.ci(boot[np.isfinite(boot)])
    values = np.concatenate([sp, sn])
    m = _cmp(values, values)
    unit_of = np.concatenate([ku, kn])
    is_pos = np.concatenate([np.ones(len(sp)), np.zeros(len(sn))])
    flips = rng.integers(0, 2, size=(n_boot, len(units)))[:, unit_of]
    z = np.abs(is_pos[None, :] - flips)  # a flipped unit swaps its labels
    with np.errstate(invalid="ignore"):
        null = np.einsum("bi,ij,bj->b", z, m, 1 - z) / (z.sum(1) * (1 - z).sum(1))
    dev = abs(est - 0.5)
    p = (1 + np.sum(np.abs(null[np.isfinite(null)] - 0.5) >= dev - 1e-12)) / (1 + n_boot)
    return est, lo, hi, float(p)


def auroc_table(ex: pd.DataFrame, scores: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
                tol: float = 0.1) -> pd.DataFrame:  # fmt: skip
    """AUROC of each score for each contrast of :data:`CONTRASTS`, raw and length-matched."""
    rows = []
    for key, (label, better, worse) in CONTRASTS.items():
        for matched in (False, True):
            pos, neg, up, un = _units(_side(ex, better), _side(ex, worse), matched, tol)
            for s in scores:
                if len(pos) < 2 or len(neg) < 2:
                    est = lo = hi = p = float("nan")
                else:
                    est, lo, hi, p = _auroc_stats(pos[s].to_numpy(float), neg[s].to_numpy(float),
                                                  up, un, n_boot, seed)  # fmt: skip
                rows.append({"contrast": key, "label": label, "length_matched": matched,
                             "score": s, "auroc": est, "ci_low": lo, "ci_high": hi, "p": p,
                             "n_units": len(np.unique(np.concatenate([up, un]))),
                             "n_better": len(pos), "n_worse": len(neg)})  # fmt: skip
    return pd.DataFrame(rows)


def auroc_findings(table: pd.DataFrame) -> list[A.Finding]:
    """The follow-up paper's claim per contrast, score (:data:`CLAIMED`) and matching."""
    out = []
    for r in table[table.score.isin(list(CLAIMED))].itertuples():
        word = "higher" if CLAIMED[r.score] == "greater" else "lower"
        claim = (f"Better data has {word} {r.score.replace('_', ' ')}: {r.label}"
                 + (", length-matched" if r.length_matched else ""))  # fmt: skip
        stat = "AUROC (better > worse)"
        if r.n_units < I.MIN_QUESTIONS or not np.isfinite(r.auroc):
            out.append(A.invalid(claim, stat, f"{r.n_units} units (< {I.MIN_QUESTIONS})",
                                 n_questions=int(r.n_units)))  # fmt: skip
            continue
        unit = "length-matched pairs" if r.length_matched else "questions"
        out.append(A.Finding(claim, stat, float(r.auroc), float(r.ci_low), float(r.ci_high),
                             float(r.p), n_questions=int(r.n_units), null=0.5,
                             direction=CLAIMED[r.score],
                             detail=f"{r.n_better} vs {r.n_worse} examples; bootstrap and "
                                    f"label-swap permutation over {unit}"))  # fmt: skip
    return out


# --------------------------------------------------------------------------- selection


def _pool(files: Sequence[Any], limit: int | None) -> dict[str, Any]:
    """sample_id -> Example of every record of ``files`` (the first ``limit`` of each)."""
    from lgkit.engine.run import _unique_ids
    from lgkit.formats.records import read_examples

    out = {}
    for f in files:
        exs = read_examples(f.path)[: limit or None]
        out.update(zip(_unique_ids(exs, str(f.path)), exs, strict=True))
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
    questions' examples by ``by`` (equal size, length-matched), once per seed; measure the
    held-out answer loss per question. A run already finished in ``out_dir`` with the same
    model, subset and settings is read, not trained again (other settings: InputError).

    Returns ``(losses, subsets)``: one row per kind × seed × held-out question (the last
    step's answer loss), and one row per kind × seed (size, loss tokens, mean score).
    """
    from lgkit.score.select import Rule, choose
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
    losses, subsets = [], []
    report = Reporter(str(model), 3 * len(seeds), unit="runs")  # lgkit run's status line
    for seed in seeds:
        for kind in ("top", "bottom", "random"):
            report.file(f"{kind}-seed{seed}")
            t0 = time.perf_counter()
            chosen = choose(cand, Rule(kind, fraction=fraction), by, match_length=True, seed=seed)
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
                            "loss_tokens": int(sub.n_response_tokens.sum()),
                            f"mean_{by}": float(sub[by].mean()),
                            "share_correct": float(sub.correct.mean()),
                            "share_detailed": float((sub.cot == "detailed").mean())})  # fmt: skip
    out = pd.concat(losses, ignore_index=True)
    out["qid"] = A.question_ids(out).to_numpy()
    return out, pd.DataFrame(subsets)


def selection_findings(losses: pd.DataFrame, by: str, *, n_boot: int = 1000, seed: int = 0) -> list[A.Finding]:  # fmt: skip
    """Held-out answer loss of the top (and bottom) subset minus the random one, paired
    by held-out question (mean over seeds), question bootstrap CI and sign-flip p."""
    wide = losses.groupby(["sample_id", "kind"])["loss"].mean().unstack("kind")
    out = []
    for kind, direction, word in (("top", "less", "lower"), ("bottom", "greater", "higher")):
        claim = (
            f"Training on the {kind} by {by} gives {word} held-out answer loss than a random subset"
        )
        stat = f"held-out answer loss, {kind} − random"
        if kind not in wide or "random" not in wide or len(wide) < I.MIN_QUESTIONS:
            out.append(A.invalid(claim, stat, f"{len(wide)} held-out questions (< {I.MIN_QUESTIONS})",
                                 n_questions=len(wide)))  # fmt: skip
            continue
        d = (wide[kind] - wide["random"]).dropna().to_numpy()
        rng = np.random.default_rng(seed)
        boot = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(1)
        lo, hi = I.ci(boot)
        flips = rng.choice([-1.0, 1.0], size=(n_boot, len(d)))
        p = (1 + np.sum(np.abs((flips * d).mean(1)) >= abs(d.mean()) - 1e-15)) / (1 + n_boot)
        out.append(A.Finding(claim, stat, float(d.mean()), float(lo), float(hi), float(p),
                             n_questions=len(d), null=0.0, direction=direction,
                             detail=f"{losses.seed.nunique()} seed(s); sign-flip test over held-out questions"))  # fmt: skip
    return out


# --------------------------------------------------------------------------- figure, speed


def auroc_figure(table: pd.DataFrame, twin: pd.DataFrame | None = None, title: str = "") -> Any:
    """AUROC with its 95% interval per score: one panel per contrast, raw (filled) and
    length-matched (open) markers, the random twin in gray; sized for a room."""
    from matplotlib.figure import Figure

    from lgkit.viz.style import OKABE_ITO, readable

    keys = list(dict.fromkeys(table.contrast))
    scores = list(dict.fromkeys(table.score))
    fig = Figure(figsize=(4.2 * len(keys) + 1.6, 1.6 + 0.5 * len(scores)), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False, sharey=True)
    sets = [(table, OKABE_ITO["blue"], 0.0)] + ([(twin, "0.55", 0.18)] if twin is not None else [])
    for ax, key in zip(axes[0], keys, strict=True):
        for tbl, color, shift in sets:
            for matched, off, face in ((False, -0.09, color), (True, 0.09, "none")):
                t = tbl[(tbl.contrast == key) & (tbl.length_matched == matched)]
                y = np.array([scores.index(s) for s in t.score]) + off + shift
                ax.errorbar(t.auroc, y, xerr=[t.auroc - t.ci_low, t.ci_high - t.auroc], fmt="o",
                            color=color, mfc=face, ms=6, lw=1.2, capsize=2)  # fmt: skip
        ax.axvline(0.5, color="k", lw=0.8, ls=":")
        ax.set_xlim(0, 1)
        ax.set_title(table[table.contrast == key].label.iloc[0])
        ax.set_xlabel("AUROC (better > worse)")
    axes[0][0].set_yticks(range(len(scores)), [s.replace("_", " ") for s in scores])
    axes[0][0].invert_yaxis()
    fig.suptitle(title or "AUROC per score")
    return readable(fig)


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
