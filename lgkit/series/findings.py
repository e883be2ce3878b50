"""A notebook's findings: tags, per-group and per-pair claims, the random twin, labels.

Every notebook ends with :func:`finalize`: Holm within the notebook, the verdicts,
the random-initialisation control and the honest labels (synthetic data, quantised
weights, confounded pairs) written into each verdict.

Example:
    >>> from lgkit.analysis import synthetic_stats
    >>> df = synthetic_stats(n_samples=6, n_layers=4)
    >>> df["synthetic"] = True
    >>> fs = finalize(A.claim_flatter_with_cot(df, n_boot=100, segments=False), df, ["tiny-random-llama"])
    >>> fs[0].verdict_text
    'supported; synthetic data: illustrative only, not evidence about the paper'
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from lgkit import analysis as A
from lgkit.series.steps import family_stats, model_family
from lgkit.series.summaries import safe_name

logger = logging.getLogger(__name__)

__all__ = [
    "data_kind",
    "finalize",
    "pair_findings",
    "pair_label",
    "per_group",
    "reasoning_claims",
    "wiki_findings",
    "run_labels",
    "tag",
    "twin_findings",
    "twin_stats",
    "weights_labels",
]

RELEASED_NOTE = "the authors' released examples"


def data_kind(df: pd.DataFrame) -> str:
    """``"synthetic"`` when any row comes from the synthetic set, else ``"released"``.

    Example:
        >>> data_kind(pd.DataFrame({"synthetic": [False, True]}))
        'synthetic'
    """
    if "synthetic" in df.columns and df["synthetic"].astype(bool).any():
        return "synthetic"
    if "synthetic" in df.columns:
        return "released"
    ids = df["sample_id"].astype(str) if "sample_id" in df.columns else pd.Series(dtype=str)
    return "synthetic" if ids.str.startswith("synth").any() else "released"


def weights_labels(models: Sequence[str]) -> list[str]:
    """One label per distinct quantisation of ``models`` (empty for plain weights).

    Example:
        >>> weights_labels(["smollm2-135m-instruct", "tiny-random-llama"])
        ['weights: Q4_1 GGUF dequantised to float32 (not the original checkpoint)']
        >>> len(weights_labels(["smollm2-135m-instruct", "gemma3-270m"]))
        2
    """
    from lgkit.models.weights import weights_label

    quantised = [(m, lab) for m in dict.fromkeys(models) if (lab := weights_label(m))]
    if len(quantised) == 1:
        return [quantised[0][1]]
    return [f"{lab} [{m}]" for m, lab in quantised]


def run_labels(df: pd.DataFrame, models: Sequence[str]) -> list[str]:
    """The labels every verdict of a notebook carries (data kind, weights)."""
    labels = [A.SYNTHETIC_LABEL] if data_kind(df) == "synthetic" else []
    return labels + weights_labels(models)


def finalize(
    findings: Sequence[A.Finding],
    df: pd.DataFrame,
    models: Sequence[str],
    twin: Sequence[A.Finding | None] | None = None,
) -> list[A.Finding]:
    """Holm, verdicts, twin control, learned-effect rows and labels (see module).

    ``twin``: the same claims on the random-initialisation twin (:func:`twin_findings`),
    matched by key (tagged claim + statistic), several seeds pooled; every difference
    claim with a twin gets its learned-effect row (:func:`lgkit.analysis.decide`)."""
    return A.decide(findings, controls=twin, labels=run_labels(df, models), learned=bool(twin))


def tag(finding: A.Finding, label: str, note: str = "", labels: Sequence[str] = ()) -> A.Finding:
    """A copy of ``finding`` with ``[label]`` before the claim, ``note`` in the caveats
    and ``labels`` added to its own verdict labels.

    Example:
        >>> tag(A.Finding("c", "s"), "gsm8k").claim
        '[gsm8k] c'
    """
    claim = f"[{label}] {finding.claim}" if label else finding.claim
    caveats = "; ".join(c for c in (finding.caveats, note) if c)
    return replace(finding, claim=claim, caveats=caveats, labels=[*finding.labels, *labels])


def per_group(df: pd.DataFrame, column: str, fn: Callable[[pd.DataFrame], list]) -> list[A.Finding]:
    """``fn(sub_table)`` for every value of ``column``, each finding tagged with the value.

    Example:
        >>> fs = per_group(A.synthetic_stats(n_samples=4, n_layers=4), "dataset",
        ...                lambda d: A.claim_flatter_with_cot(d, n_boot=50, segments=False)[:1])
        >>> [f.claim.split("]")[0] for f in fs]
        ['[aqua', '[ecqa', '[gsm8k']
    """
    out: list[A.Finding] = []
    for value in A.value_order(df[column].dropna().unique(), column):
        out += [tag(f, str(value)) for f in fn(df[df[column] == value])]
    return out


def reasoning_claims(
    df: pd.DataFrame,
    metric: str = "nuclear_norm",
    *,
    alike_margin: float = 0.1,
    n_boot: int = 1000,
    seed: int = 0,
    norm: str = "mean",
) -> list[A.Finding]:
    """The reasoning claims of 02/03: none vs detailed (level, MAD all/early/middle/late),
    simplified vs detailed (level, MAD), correct vs irrelevant (RD ratios, and the
    no-difference claim without CoT), then level/MAD and RD per dataset when several.

    Example:
        >>> fs = reasoning_claims(A.synthetic_stats(n_samples=6, n_layers=4, datasets=("gsm8k",)), n_boot=50)
        >>> len(fs), fs[0].statistic
        (9, 'mean-curve level ratio detailed/none')
    """
    kw: dict[str, Any] = {"n_boot": n_boot, "seed": seed, "norm": norm}

    def core(d: pd.DataFrame, segments: bool) -> list[A.Finding]:
        fs = A.claim_flatter_with_cot(d, metric, "none", "detailed", segments=segments, **kw)
        if "simplified" in set(d["cot"]) and segments:
            fs += A.claim_flatter_with_cot(
                d, metric, "simplified", "detailed", segments=False, **kw
            )
        return fs + A.claim_correct_vs_irrelevant(
            d, metric, "detailed", alike_margin=alike_margin, **kw
        )

    out = core(df, True)
    if "dataset" in df.columns and df["dataset"].nunique() > 1:
        out += per_group(df, "dataset", lambda d: core(d, False))
    return out


def wiki_findings(
    df: pd.DataFrame,
    metric: str,
    groups: Sequence[Any],
    *,
    margin: float = 1.5,
    reference_rd: float | None = None,
    reference: pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[A.Finding]:
    """04's claims: the length trend (equivalence, on the popular groups ordered by
    ``groups``), below the detailed-CoT reference (two-sample with the ``reference``
    table; a plain number ``reference_rd`` otherwise), RD at the longest group against
    its swap null, and the exploratory long-tail claim."""
    popular = df[df["popularity"] == "popular"] if "popularity" in df.columns else df
    levels = [g for g in groups if g in set(popular["group"])]
    kw = {"n_boot": n_boot, "seed": seed}
    fs = A.claim_length_not_enough(
        popular,
        metric,
        by="group",
        levels=levels,
        margin=margin,
        reference_rd=reference_rd,
        reference=reference,
        **kw,
    )
    return [tag(f, "length trend") for f in fs] + A.claim_long_tail_larger(df, metric, **kw)


def pair_label(*names: str) -> str:
    """A file-name-safe label of one or more model names.

    Example:
        >>> pair_label("google/gemma-2-2b", "google/gemma-2-2b-it")
        'gemma-2-2b_vs_gemma-2-2b-it'
    """
    return "_vs_".join(safe_name(str(n).rstrip("/").rsplit("/", 1)[-1]) for n in names)


def pair_findings(
    df: pd.DataFrame,
    base: str,
    instruct: str,
    metric: str = "nuclear_norm",
    *,
    margin: float = 1.25,
    tagged: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[A.Finding]:
    """The base-vs-instruct findings of one pair (05).

    When the two models are of different families the pair claims carry
    :data:`lgkit.analysis.CONFOUNDED_LABEL` in their verdict: the difference mixes
    family, size, depth, tokenizer, quantisation and prompt format, not tuning alone.

    Returns:
        [base less affected by fast thinking (level, MAD), instruct not better at
        correctness, flatter-with-CoT (level, MAD) for the base and the instruct model].
    """
    fb, fi = model_family(base), model_family(instruct)
    confounded = fb != fi
    note = (
        f"different families ({fb} vs {fi}): family, size, depth, tokenizer, quantisation and "
        "prompt format differ, not tuning alone"
        if confounded
        else ""
    )
    labels = [A.CONFOUNDED_LABEL] if confounded else []
    label = pair_label(base, instruct) if tagged else ""
    kw = {"n_boot": n_boot, "seed": seed}
    pair = A.claim_base_vs_instruct(df, metric, base, instruct, **kw)
    pair += A.claim_instruct_not_better_at_correctness(
        df, metric, base, instruct, margin=margin, **kw
    )
    out = [tag(f, label, note, labels) for f in pair]
    for name in (base, instruct):
        fs = A.claim_flatter_with_cot(df, metric, where={"model": name}, segments=False, **kw)
        out += [tag(f, name) for f in fs]
    return out


def twin_stats(
    data_dir: str | Path,
    family: str | Sequence[str] | None,
    model: str,
    config: Any,
    cache_dir: str | Path,
    *,
    seed: int = 0,
    n_seeds: int = 1,
    datasets: str | Sequence[str] | None = None,
    cots: str | Sequence[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`family_stats` of ``model``'s random-initialisation twins (same data, same cache):
    seeds ``seed`` … ``seed + n_seeds - 1``, concatenated (the ``model`` column,
    ``<model>@random-init-<seed>``, tells them apart).

    Each twin (:class:`lgkit.models.twin.LazyTwin`) has its own cache key and is only
    built when something is not cached.
    """
    from dataclasses import replace as dc_replace

    from lgkit.models.load import EMBEDDED, TINY
    from lgkit.models.twin import LazyTwin

    key = str(model).strip().lower()
    instruct = config.instruct
    if instruct is None:
        instruct = EMBEDDED[key].instruct if key in EMBEDDED else (True if key in TINY else None)
    cfg = dc_replace(config, instruct=instruct)
    parts = [
        family_stats(
            data_dir, family, LazyTwin(model, seed=s, instruct=instruct), cfg, cache_dir,
            datasets=datasets, cots=cots, progress=progress,
        )
        for s in range(int(seed), int(seed) + max(int(n_seeds), 1))
    ]  # fmt: skip
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def twin_findings(
    twin_df: pd.DataFrame | None, fn: Callable[[pd.DataFrame], list[A.Finding]]
) -> list[A.Finding] | None:
    """The same claims on the twin's table, once per seed (``model`` value), each finding's
    recipe labelled with its twin (None when there is no twin table)."""
    if twin_df is None or twin_df.empty:
        return None
    names = list(dict.fromkeys(twin_df["model"])) if "model" in twin_df.columns else [None]
    out: list[A.Finding] = []
    for name in names:
        d = twin_df if name is None else twin_df[twin_df["model"] == name]
        for f in fn(d):
            if f.recipe is not None and name is not None:
                f.recipe.label = str(name)
            out.append(f)
    return out
