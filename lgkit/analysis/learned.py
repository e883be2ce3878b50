"""What training adds: the random twin pooled over seeds, the learned-effect row, vacuous pairs.

A claim's finding carries a :class:`Recipe` (its per-question sides, statistic and test
settings). The same claim on the random-initialisation twin is matched to it by
:func:`key` (claim + statistic, the claim carrying its group tag), never by position.

* :func:`pooled_twin`: the twin's finding, its seeds' curves averaged per question (each
  seed's curves scaled by its own mean first: every statistic here is a ratio, so the
  scaling changes no estimate, only lets seeds and models be averaged and swapped).
* :func:`learned_row`: the paired (by question) ratio of the trained model's statistic
  over the twin's, e.g. (detailed/none)_trained ÷ (detailed/none)_twin, with its interval
  and a sign-flip test that swaps trained and twin within a question.
* :func:`share_text`: how much of the log-effect is present at random initialisation.
* :func:`drop_identical`: correct-vs-irrelevant pairs whose two responses have identical
  statistics (the same text) are dropped and counted.
* :func:`depth_sides`: two models of different depth on relative depth, no layer cut.

Example:
    >>> share_text(0.07, 0.228, 0.307)
    '56% of the log-effect at random init (log twin ratio ÷ log trained ratio); training adds a 3.3x stronger effect'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis import inference as I
from lgkit.analysis.findings import Finding, evaluate, invalid

LEARNED_TAG = "learned"


class Recipe:
    """How a finding was measured: its sides, statistic and :func:`evaluate` keywords.

    Shared, never copied (``copy.deepcopy`` and ``dataclasses.asdict`` keep it as is), so
    findings tables stay cheap. ``label``: whose table it was (e.g. the twin
    ``<model>@random-init-<seed>``).
    """

    __slots__ = ("sides", "stat", "kw", "label")

    def __init__(
        self, sides: I.Sides, stat: I.Stat, kw: dict[str, Any] | None = None, label: str = ""
    ) -> None:
        self.sides, self.stat, self.kw, self.label = sides, stat, dict(kw or {}), label

    def __deepcopy__(self, memo: dict) -> Recipe:
        return self

    def __repr__(self) -> str:
        return f"Recipe({self.label or 'sides'}: {self.sides.n_questions} questions)"


def key(f: Finding) -> tuple[str, str]:
    """The matching key of a finding: its (tagged) claim and statistic.

    Example:
        >>> key(Finding("[gsm8k] c", "s"))
        ('[gsm8k] c', 's')
    """
    return (f.claim, f.statistic)


def measured(
    claim: str, statistic: str, sides: I.Sides, stat: I.Stat, *, note: str = "", **kw: Any
) -> Finding:
    """:func:`evaluate` with its :class:`Recipe` attached; ``note`` (e.g. dropped pairs) goes
    into the caveats and into the reason of an invalid row."""
    caveats = [*kw.pop("caveats", []), *([note] if note else [])]
    f = evaluate(claim, statistic, sides, stat, caveats=caveats, **kw)
    short = f.kind == "equivalence" and sides.n_questions < I.MIN_EQUIVALENCE_QUESTIONS
    if note and short and f.verdict != "invalid":
        left = (
            f"{sides.n_questions} left (< {I.MIN_EQUIVALENCE_QUESTIONS} for a no-difference claim)"
        )
        f = invalid(claim, statistic, f"{note}; {left}", **_keep(f))
    if f.verdict == "invalid" and note and note not in f.verdict_text:
        f = replace(f, verdict_text=f"{f.verdict_text} ({note})")
    return replace(f, recipe=Recipe(sides, stat, dict(kw)))


def _keep(f: Finding) -> dict[str, Any]:
    """The definition fields of ``f`` (for an invalid copy)."""
    names = (
        "detail",
        "kind",
        "direction",
        "margin",
        "rule",
        "caveats",
        "n_questions",
        "margin_note",
    )
    return {k: getattr(f, k) for k in names}


# --------------------------------------------------------------------------- vacuous pairs


def _same(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per question: every (module, layer) value equal (relative 1e-9)."""
    if x.size == 0:
        return np.zeros(len(x), dtype=bool)
    return np.asarray(np.isclose(x, y, rtol=1e-9, atol=0.0).reshape(len(x), -1).all(axis=1))


def _take(sides: I.Sides, keep_a: np.ndarray, keep_b: np.ndarray) -> I.Sides:
    qa = [q for q, k in zip(sides.qids_a, keep_a, strict=True) if k]
    qb = [q for q, k in zip(sides.qids_b, keep_b, strict=True) if k]
    return replace(sides, a=sides.a[keep_a], b=sides.b[keep_b], qids_a=qa, qids_b=qb)


def drop_identical(
    sides: I.Sides, within: str = "cells", names: Sequence[str] = ()
) -> tuple[I.Sides, str]:
    """Drop correct-vs-irrelevant pairs whose two responses have identical statistics.

    ``within="cells"``: each side holds (correct, irrelevant) as cells 0 and 1;
    ``within="sides"``: side ``a`` is correct, side ``b`` irrelevant (paired). Identical
    statistics mean the same response text (the gradient of the same prompt and
    response): the pair says nothing about telling them apart. A paired comparison
    drops the question from both sides. ``names``: the sides' labels for the note.
    Returns the sides and a note ("" when nothing was dropped).

    Example:
        >>> a = np.ones((4, 2, 1, 3)); a[:2, 1] = 2.0
        >>> s = I.Sides(a, a.copy() * 3, True, list("abcd"), list("abcd"), ["q"], [0, 1, 2])
        >>> s2, note = drop_identical(s, names=("cot=none", "cot=detailed"))
        >>> s2.n_questions, note
        (2, '2 of 4 pairs identical at cot=none, 2 at cot=detailed (same statistics: the same response): dropped')
    """
    if within == "sides":
        if not sides.paired or sides.a.shape != sides.b.shape:
            return sides, ""
        same_a = same_b = _same(sides.a[:, 0], sides.b[:, 0])
        counts = [int(same_a.sum())]
    else:
        if sides.a.ndim < 4 or sides.a.shape[1] < 2 or sides.b.shape[1] < 2:
            return sides, ""
        same_a, same_b = _same(sides.a[:, 0], sides.a[:, 1]), _same(sides.b[:, 0], sides.b[:, 1])
        counts = [int(same_a.sum()), int(same_b.sum())]
    if not any(counts):
        return sides, ""
    if sides.paired:
        same_a = same_b = same_a | same_b
    labels = list(names) + ["a", "b"][len(names) :]
    where = [f"{k} at {labels[j]}" if labels[j] else str(k) for j, k in enumerate(counts)]
    n = len(sides.a) if sides.paired else f"{len(sides.a)}/{len(sides.b)}"
    note = f"{where[0].split(' ')[0]} of {n} pairs identical"
    rest = where[0].split(" ", 1)[1:] + where[1:]
    note += (
        " " + ", ".join(rest) if rest else ""
    ) + " (same statistics: the same response): dropped"
    return _take(sides, ~same_a, ~same_b), note


# --------------------------------------------------------------------------- depth


def _on_grid(x: np.ndarray, n: int) -> np.ndarray:
    """Curves ``[..., layer]`` linearly interpolated onto ``n`` points of relative depth."""
    src = np.linspace(0.0, 1.0, x.shape[-1])
    dst = np.linspace(0.0, 1.0, n)
    flat = x.reshape(-1, x.shape[-1])
    out = np.stack([np.interp(dst, src, row) for row in flat]) if len(flat) else flat
    return out.reshape(*x.shape[:-1], n)


def depth_sides(
    df: pd.DataFrame,
    metric: str,
    cells_a: Sequence[Mapping[str, Any]],
    cells_b: Sequence[Mapping[str, Any]],
    *,
    modules: Sequence[str] | None = None,
    norm: str = "mean",
    names: tuple[str, str] = ("a", "b"),
) -> tuple[I.Sides, str]:
    """Sides of two models that may differ in depth, never cut to the shallower one.

    Each side is stacked over its own (module, layer) columns. Same layers: the usual
    :func:`~lgkit.analysis.inference.side_arrays`. Different depths: each model's curve
    is put on relative depth (layer ÷ (depth − 1)) and the shallower one interpolated
    onto the deeper one's points; the note says so. Modules only one model has are
    dropped and counted in the note.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> df = pd.concat([synthetic_stats(n_samples=4, n_layers=4, model="m1"),
        ...                 synthetic_stats(n_samples=4, n_layers=7, model="m2")])
        >>> s, note = depth_sides(df, "nuclear_norm", [{"model": "m1", "cot": "none"}],
        ...                       [{"model": "m2", "cot": "none"}], names=("m1", "m2"))
        >>> s.a.shape[-1], s.b.shape[-1], note.split(":")[0]
        (7, 7, 'depths differ (m1 4 layers, m2 7 layers)')
    """
    sa = I.side_arrays(df, metric, cells_a, cells_a, modules=modules, norm=norm)
    sb = I.side_arrays(df, metric, cells_b, cells_b, modules=modules, norm=norm)
    if sa.layers == sb.layers and sa.modules == sb.modules:
        return I.side_arrays(df, metric, cells_a, cells_b, modules=modules, norm=norm), ""
    if not sa.qids_a or not sb.qids_a:
        return I.side_arrays(df, metric, cells_a, cells_b, modules=modules, norm=norm), ""
    mods = [m for m in sa.modules if m in sb.modules]
    notes = []
    lost = sorted(set(sa.modules) ^ set(sb.modules))
    if lost:
        notes.append(f"modules {lost} only in one model: dropped")
    xa = sa.a[:, :, [sa.modules.index(m) for m in mods]]
    xb = sb.a[:, :, [sb.modules.index(m) for m in mods]]
    la, lb = len(sa.layers), len(sb.layers)
    n = max(la, lb)
    if la != lb:
        notes.insert(
            0,
            f"depths differ ({names[0]} {la} layers, {names[1]} {lb} layers): each model's "
            f"curves on relative depth, the shallower interpolated onto {n} points; no layer dropped",
        )
        xa, xb = _on_grid(xa, n), _on_grid(xb, n)
    common = sorted(set(sa.qids_a) & set(sb.qids_a))
    paired = len(cells_a) == len(cells_b) and len(common) >= 0.8 * min(
        len(sa.qids_a), len(sb.qids_a)
    )
    qa, qb = (common, common) if paired else (sa.qids_a, sb.qids_a)
    ia = [sa.qids_a.index(q) for q in qa]
    ib = [sb.qids_a.index(q) for q in qb]
    sides = I.Sides(
        xa[ia], xb[ib], paired, list(qa), list(qb), mods, list(range(n)),
        (sa.truncated[0], sb.truncated[0]),
    )  # fmt: skip
    return sides, "; ".join(notes)


# --------------------------------------------------------------------------- twin and learned


def _scaled(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays of one model divided by their common mean (ratios unchanged)."""
    c = float(np.nanmean(np.concatenate([x.ravel(), y.ravel()]))) if x.size + y.size else 1.0
    c = c if c and math.isfinite(c) else 1.0
    return x / c, y / c


def _aligned(sides: I.Sides, qids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ia = [sides.qids_a.index(q) for q in qids]
    ib = [sides.qids_b.index(q) for q in qids]
    return _scaled(sides.a[ia], sides.b[ib])


def _compatible(sides: Sequence[I.Sides]) -> str:
    """Why these sides cannot be combined question by question ("" if they can)."""
    if any(not s.paired for s in sides):
        return "the comparison is unpaired (different questions on its two sides)"
    s0 = sides[0]
    for s in sides[1:]:
        if s.a.shape[1:] != s0.a.shape[1:] or s.b.shape[1:] != s0.b.shape[1:]:
            return "the trained and twin curves differ in cells, modules or layers"
    return ""


def pooled_twin(twins: Sequence[Finding]) -> Finding:
    """The twin's finding over all its seeds (one seed: itself).

    Seeds' curves are scaled by their own mean and averaged per question (the questions
    all seeds have); the claim is evaluated again on the pooled curves, and the
    per-seed estimates go into the detail.
    """
    if len(twins) == 1 or any(t.recipe is None for t in twins):
        return twins[0]
    recs = [t.recipe for t in twins]
    why = _compatible([r.sides for r in recs])
    if why:
        return invalid(twins[0].claim, twins[0].statistic, f"twin seeds not pooled: {why}")
    qids = sorted(set.intersection(*(set(r.sides.qids_a) for r in recs)))
    arrs = [_aligned(r.sides, qids) for r in recs]
    s0 = recs[0].sides
    pooled = replace(
        s0,
        a=np.mean([x for x, _ in arrs], axis=0),
        b=np.mean([y for _, y in arrs], axis=0),
        qids_a=qids,
        qids_b=qids,
    )
    kw = dict(recs[0].kw)
    kw.pop("caveats", None)
    seeds = ", ".join(
        f"{r.label or k}: {_g(t.estimate)}"
        for k, (r, t) in enumerate(zip(recs, twins, strict=True))
    )
    f = evaluate(twins[0].claim, twins[0].statistic, pooled, recs[0].stat, **kw)
    detail = f"random twin pooled over {len(twins)} seeds (per seed {seeds})"
    return replace(f, detail=detail, recipe=Recipe(pooled, recs[0].stat, kw, "pooled twin"))


def _g(x: float) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.3g}"


def learned_row(trained: Finding, twin: Finding) -> Finding | None:
    """The learned-effect row of a difference claim: trained ratio ÷ twin ratio.

    Paired by question: the trained model's and the twin's (cells of side a, cells of
    side b) are stacked as the two sides of one comparison, each model's curves scaled
    by its own mean; the statistic is ``stat(trained) − stat(twin)`` on the log scale,
    so the estimate is the ratio of the two ratios. Expected on the claim's side of 1
    (e.g. < 1 for "detailed/none < 1": smaller after training than at init). None for
    no-difference claims and non-ratio statistics.
    """
    if trained.kind != "difference" or trained.recipe is None or twin.recipe is None:
        return None
    if not trained.recipe.kw.get("log", True):
        return None
    claim = f"{trained.claim}: stronger after training than at random initialisation"
    stat_name = f"{trained.statistic}, trained ÷ random twin"
    why = _compatible([trained.recipe.sides, twin.recipe.sides])
    if why:
        return invalid(claim, stat_name, why, kind="difference", direction=trained.direction)
    st, sw = trained.recipe.sides, twin.recipe.sides
    pooled = twin.detail.startswith("random twin pooled")
    src = twin.detail.split(" (per seed")[0] if pooled else (twin.recipe.label or "one seed")
    qids = sorted(set(st.qids_a) & set(sw.qids_a))
    ta, tb = _aligned(st, qids)
    wa, wb = _aligned(sw, qids)
    k = ta.shape[1]
    stat = trained.recipe.stat

    def learned(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return stat(y[..., :k, :, :], y[..., k:, :, :]) - stat(x[..., :k, :, :], x[..., k:, :, :])

    both = I.Sides(
        np.concatenate([wa, wb], axis=1),
        np.concatenate([ta, tb], axis=1),
        True,
        qids,
        qids,
        st.modules,
        st.layers,
        (st.truncated[0] or st.truncated[1], sw.truncated[0] or sw.truncated[1]),
    )
    kw = {k_: v for k_, v in trained.recipe.kw.items() if k_ in ("n_boot", "seed")}
    f = evaluate(
        claim, stat_name, both, learned, direction=trained.direction,
        detail=(f"paired by question: ratio of the trained model's {trained.statistic} over the "
                f"random twin's ({src}); each model's curves scaled by its "
                "own mean (the ratio is unchanged) so the sign-flip test can swap trained and "
                "twin within a question"),
        **kw,
    )  # fmt: skip
    return replace(f, recipe=Recipe(both, learned, kw, LEARNED_TAG))


def share_text(trained: float, twin: float, learned: float | None = None) -> str:
    """How much of the trained model's log-effect the twin already shows, and what
    training adds (``learned`` = trained ÷ twin, e.g. 0.31 → a 3.3x stronger effect).
    A share is only printed between 0% and 100%.

    Example:
        >>> share_text(2.0, 0.5)
        'the effect points the other way at random init'
        >>> share_text(1.1, 1.5)
        'the random twin shows a stronger effect than the trained model'
    """
    ok = all(x is not None and x > 0 and math.isfinite(x) for x in (trained, twin))
    if not ok or trained == 1.0:
        return ""
    share = math.log(twin) / math.log(trained)
    if share < 0:
        return "the effect points the other way at random init"
    if share > 1:  # a share of more than the whole effect means nothing: none printed
        return "the random twin shows a stronger effect than the trained model"
    parts = [
        f"{100 * share:.0f}% of the log-effect at random init (log twin ratio ÷ log trained ratio)"
    ]
    if learned is not None and learned > 0 and math.isfinite(learned):
        x = learned if trained > 1 else 1 / learned
        if x > 1:
            parts.append(f"training adds a {x:.2g}x stronger effect")
        else:
            parts.append(f"training weakens the effect {1 / x:.2g}x")
    return "; ".join(parts)
