"""Base vs instruct: the paper's claims on a pair of models, never cut to the shallower one.

Two models may differ in depth (05's default pair: Gemma 3 270M, 18 layers, and
SmolLM2-135M, 30): every pair statistic is computed on each model's own curves, put on
relative depth (:func:`lgkit.analysis.learned.depth_sides`), and the row says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lgkit.analysis import inference as I
from lgkit.analysis.claims import _cell, _rd_log_ratio, floor_note, rd_margin_note
from lgkit.analysis.findings import Finding, invalid
from lgkit.analysis.learned import depth_sides, drop_identical, measured
from lgkit.errors import InputError
from lgkit.schema import ATTN_MODULES


def pick_pair(models: list[Any], base: Any, instruct: Any) -> tuple[Any, Any]:
    """The (base, instruct) pair: given, or guessed from "instruct"/"-it"/"chat" in a name."""
    if instruct is None:
        g = [m for m in models if any(t in str(m).lower() for t in ("instruct", "-it", "chat"))]
        instruct = g[0] if len(g) == 1 else None
    if base is None and instruct is not None:
        rest = [m for m in models if m != instruct]
        base = rest[0] if len(rest) == 1 else None
    return base, instruct


def _ratio_of_ratios(f: Any) -> I.Stat:
    """``log(f(b_fast)/f(b_slow)) - log(f(a_fast)/f(a_slow))``."""

    def stat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        rb = np.log(f(b[..., 0, :, :]) / f(b[..., 1, :, :]))
        return rb - np.log(f(a[..., 0, :, :]) / f(a[..., 1, :, :]))

    return stat


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
    n_boot: int = 1000,
    seed: int = 0,
    norm: str = "mean",
) -> list[Finding]:
    """Pre-trained (base) LLMs are less affected by the instability of fast thinking.

    Paper (abstract): "pre-trained LLMs are less affected by the instability of fast
    thinking than instruction-tuned LLMs". Statistic: the ratio of the two models'
    fast/slow ratios, ``(x[fast]/x[slow])_instruct / (x[fast]/x[slow])_base`` for the
    mean-curve level and the MAD (``criterion``: both, level or mad); expected > 1,
    paired over questions.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> df = pd.concat([synthetic_stats(n_samples=6, n_layers=6, model="m-base"),
        ...                 synthetic_stats(n_samples=6, n_layers=6, model="m-instruct",
        ...                                 fast_instability=2.0, scale=0.8)])
        >>> [f.verdict for f in claim_base_vs_instruct(df, base="m-base", instruct="m-instruct", n_boot=200)]
        ['supported', 'supported']
    """
    if criterion not in ("both", "mad", "level"):
        raise InputError(f"criterion must be both/mad/level, got {criterion!r}", field="criterion")
    claim = (
        "Pre-trained (base) LLMs are less affected by the instability of fast thinking "
        "than instruction-tuned LLMs"
    )
    if model_col not in df.columns:
        return [invalid(claim, "ratio of ratios", f"table lacks {model_col!r}")]
    base, instruct = pick_pair(list(dict.fromkeys(df[model_col].dropna())), base, instruct)
    if base is None or instruct is None:
        return [invalid(claim, "ratio of ratios", "cannot tell base from instruct")]
    sides, depth = depth_sides(
        df,
        metric,
        [_cell(df, where, **{model_col: base, column: c}, correct=correct) for c in (fast, slow)],
        [
            _cell(df, where, **{model_col: instruct, column: c}, correct=correct)
            for c in (fast, slow)
        ],
        modules=modules,
        norm=norm,
        names=(str(base), str(instruct)),
    )
    stats = {"level": ("mean-curve level", I.level), "mad": ("MAD (all layers)", I.mad)}
    keys = ["level", "mad"] if criterion == "both" else [criterion]
    return [
        measured(f"{claim} ({stats[k][0]})", f"{stats[k][0]} {fast}/{slow} ratio, {instruct} over {base}",
                 sides, _ratio_of_ratios(stats[k][1]), direction="greater", n_boot=n_boot, seed=seed,
                 detail=f"{metric}, correct responses", caveats=[depth] if depth else [])
        for k in keys
    ]  # fmt: skip


def claim_learned_base_vs_instruct(
    df: pd.DataFrame,
    metric: str,
    base: str,
    instruct: str,
    base_twin: str,
    instruct_twin: str,
    *,
    model_col: str = "model",
    fast: str = "none",
    slow: str = "detailed",
    column: str = "cot",
    modules: Sequence[str] | None = ATTN_MODULES,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Finding]:
    """:func:`claim_base_vs_instruct` on each model's learned contrast: every model's
    fast/slow ratio divided by its own random twin's (rows ``base_twin`` and
    ``instruct_twin`` of ``model_col`` in ``df``), instruct over base; expected > 1,
    paired over questions (the test swaps the two models within a question).

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> kw = dict(n_samples=6, n_layers=6)
        >>> df = pd.concat([synthetic_stats(model="b", **kw), synthetic_stats(model="b@r", seed=1, **kw),
        ...                 synthetic_stats(model="i", fast_instability=2.0, **kw),
        ...                 synthetic_stats(model="i@r", seed=2, **kw)])
        >>> fs = claim_learned_base_vs_instruct(df, "nuclear_norm", "b", "i", "b@r", "i@r", n_boot=200)
        >>> [f.statistic.split(" ratio")[0] for f in fs], bool(fs[0].estimate > 1)
        (['mean-curve level none/detailed', 'MAD (all layers) none/detailed'], True)
    """
    claim = (
        "Pre-trained (base) LLMs are less affected by the instability of fast thinking "
        "than instruction-tuned LLMs, beyond what each model's random twin shows"
    )
    models = set(df[model_col]) if model_col in df.columns else set()
    missing = [m for m in (base, instruct, base_twin, instruct_twin) if m not in models]
    if missing:
        return [invalid(claim, "learned ratio of ratios", f"no rows of {missing}")]

    def cells(m: str, twin: str) -> list[dict[str, Any]]:
        return [{model_col: x, column: c, "correct": True} for x in (m, twin) for c in (fast, slow)]

    sides, depth = depth_sides(df, metric, cells(base, base_twin), cells(instruct, instruct_twin),
                               modules=modules, names=(str(base), str(instruct)))  # fmt: skip

    def learned(f: Any) -> I.Stat:
        def g(z: np.ndarray) -> np.ndarray:
            trained = np.log(f(z[..., 0, :, :]) / f(z[..., 1, :, :]))
            return trained - np.log(f(z[..., 2, :, :]) / f(z[..., 3, :, :]))

        return lambda a, b: g(b) - g(a)

    stats = (("mean-curve level", I.level), ("MAD (all layers)", I.mad))
    return [
        measured(f"{claim} ({name})",
                 f"{name} {fast}/{slow} ratio ÷ its random twin's, {instruct} over {base}",
                 sides, learned(fn), direction="greater", n_boot=n_boot, seed=seed,
                 detail=(f"{metric}, correct responses; each model's ratio over its own twin's "
                         f"({base_twin}, {instruct_twin}): one twin seed and one checkpoint each, "
                         "seed-to-seed variance not in the interval"),
                 caveats=[depth] if depth else [])
        for name, fn in stats
    ]  # fmt: skip


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
    margin: float = 1.25,
    where: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    norm: str = "mean",
) -> list[Finding]:
    """Instruction-tuned LLMs are not better than base LLMs at telling irrelevant responses.

    Paper (repository highlights): "The instruction-finetuned LLMs do not show
    superior capability over pre-trained base LLMs in identifying incorrect reasoning
    paths". A no-difference claim: RD(correct, irrelevant) at ``slow``, ratio
    instruct/base, must lie below ``margin`` (non-inferiority; the row's caveats give the
    margin as an RD gain in units of base's swap-null floor). Default 1.25 (the 80–125%
    equivalence convention): instruct may be up to 25% better and count as "not better"
    (1.5, the former default, allowed 50%). Pairs whose two responses are identical are
    dropped; models of different depth are compared on relative depth.

    Example:
        >>> from lgkit.analysis.fixtures import synthetic_stats
        >>> df = pd.concat([synthetic_stats(n_samples=6, n_layers=6, model="m"),
        ...                 synthetic_stats(n_samples=6, n_layers=6, model="m-instruct", seed=1)])
        >>> claim_instruct_not_better_at_correctness(df, n_boot=200)[0].kind
        'equivalence'
    """
    claim = (
        "Instruction-tuned LLMs do not separate correct from irrelevant responses better "
        "than pre-trained (base) LLMs"
    )
    if model_col not in df.columns or "correct" not in df.columns:
        return [invalid(claim, "RD ratio", f"table lacks {model_col!r} or 'correct'")]
    base, instruct = pick_pair(list(dict.fromkeys(df[model_col].dropna())), base, instruct)
    if base is None or instruct is None:
        return [invalid(claim, "RD ratio", "cannot tell base from instruct")]
    sides, depth = depth_sides(
        df,
        metric,
        [_cell(df, where, **{model_col: base, column: slow}, correct=c) for c in (True, False)],
        [_cell(df, where, **{model_col: instruct, column: slow}, correct=c) for c in (True, False)],
        modules=modules,
        norm=norm,
        names=(str(base), str(instruct)),
    )
    names = (str(base), str(instruct))
    sides, dropped = drop_identical(sides, "cells", names)
    margin_note = rd_margin_note(margin, sides, names, seed)
    notes = [margin_note, depth, floor_note(sides, seed, names=names)]
    return [
        measured(claim, f"RD(correct, irrelevant) ratio {instruct}/{base} at {column}={slow}", sides,
                 _rd_log_ratio, kind="equivalence", margin=(0.0, margin), n_boot=n_boot, seed=seed,
                 detail=f"authors' RD of mean {metric} curves", note=dropped, caveats=[c for c in notes if c],
                 margin_note=margin_note)
    ]  # fmt: skip
