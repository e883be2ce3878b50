"""A notebook's findings: tags, per-group and per-pair claims, the random twin, labels.

Every notebook ends with :func:`finalize`: Holm over the notebook's primary claims, the verdicts,
the random-initialisation control and the honest labels (synthetic data, quantised
weights, confounded pairs) written into each verdict.

Example:
    >>> from lgkit.analysis import synthetic_stats
    >>> df = synthetic_stats(n_samples=6, n_layers=4)
    >>> df["synthetic"] = True
    >>> fs = finalize(A.claim_flatter_with_cot(df, n_boot=100, segments=False), df, ["tiny-random-llama"])
    >>> fs[0].verdict_text.split("; ")
    ['supported', 'primary claim: 97.5% CI (Bonferroni over the 2 primary claims) and Holm-adjusted p', 'synthetic data: illustrative only, not evidence about the paper']
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
    "HEADLINE_KEY",
    "control_verdicts",
    "data_kind",
    "headline_entries",
    "headline_line",
    "finalize",
    "pair_findings",
    "NO_PAIR_TWIN",
    "pair_label",
    "pair_twin_findings",
    "pair_twins",
    "per_dataset",
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
    claim with a twin gets its learned-effect row (:func:`lgkit.analysis.decision.decide`)."""
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


def per_dataset(df: pd.DataFrame, fn: Callable[[pd.DataFrame], list]) -> list[A.Finding]:
    """:func:`per_group` over ``dataset``, every row exploratory (a per-dataset breakdown
    of the pooled claims, outside the notebook's Holm family)."""
    return [_breakdown(f, "per-dataset breakdown") for f in per_group(df, "dataset", fn)]


def _breakdown(f: A.Finding, why: str) -> A.Finding:
    return f if f.family == A.EXPLORATORY else A.exploratory(f, why)


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
        out += per_dataset(df, lambda d: core(d, False))
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
    no_twin: str = "",
    twins: dict[str, pd.DataFrame] | None = None,
) -> list[A.Finding]:
    """The base-vs-instruct findings of one pair (05); ``no_twin`` (e.g.
    :data:`NO_PAIR_TWIN`) says in the per-model rows why they have no learned contrast.
    ``twins`` (:func:`pair_twins`): each model's own twin; then the pair claim is also
    compared on the per-model learned contrasts (each model's ratio over its twin's,
    :func:`lgkit.analysis.pairs.claim_learned_base_vs_instruct`, first twin seed).

    When the two models are of different families the pair claims are never decided:
    "inconclusive: confounded (...)" (``Finding.confounded``), the difference mixes
    family, size, depth, tokenizer, quantisation and prompt format, not tuning alone.
    The per-model claims (flatter with CoT) are exploratory; with each model's own
    random twin (:func:`finalize` ``twin``) each gets its learned contrast.

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
    label = pair_label(base, instruct) if tagged else ""
    kw = {"n_boot": n_boot, "seed": seed}
    pair = A.claim_base_vs_instruct(df, metric, base, instruct, **kw)
    pair += A.claim_instruct_not_better_at_correctness(
        df, metric, base, instruct, margin=margin, **kw
    )
    if twins and base in twins and instruct in twins:
        from lgkit.analysis.pairs import claim_learned_base_vs_instruct

        tb, ti = (
            twins[m][twins[m]["model"] == twins[m]["model"].iloc[0]] for m in (base, instruct)
        )
        both = pd.concat([df, tb, ti], ignore_index=True)
        pair += claim_learned_base_vs_instruct(
            both, metric, base, instruct, str(tb["model"].iloc[0]), str(ti["model"].iloc[0]), **kw
        )
    single = "one checkpoint of each model: training-run (seed) variance not in the interval"
    out = [
        replace(tag(f, label, "; ".join(x for x in (note, single) if x)),
                confounded=f"{fb} vs {fi}: {note.split(': ', 1)[-1]}" if confounded else "")
        for f in pair
    ]  # fmt: skip
    for name in (base, instruct):
        fs = A.claim_flatter_with_cot(df, metric, where={"model": name}, segments=False, **kw)
        out += [_breakdown(tag(f, name, labels=[no_twin] if no_twin else []), "per-model claim")
                for f in fs]  # fmt: skip
    return out


NO_PAIR_TWIN = (
    "no random twin in this run (control = False: a twin of each model costs about as much "
    "as the model's own statistics, beyond the default profile's time budget): learned vs "
    "init not measured"
)


def pair_twins(
    data_dir: str | Path,
    family: str | Sequence[str] | None,
    pairs: Sequence[tuple[str, str]],
    config: Any,
    cache_dir: str | Path,
    *,
    seed: int = 0,
    n_seeds: int = 1,
    datasets: str | Sequence[str] | None = None,
    cots: str | Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, pd.DataFrame]:
    """Each model of 05's pairs gets its own random-initialisation twin (:func:`twin_stats`
    on the same data), the base model's without chat template as in
    :func:`lgkit.series.steps.pair_stats`: ``{model: twin table}``."""
    from dataclasses import replace as dc_replace

    out: dict[str, pd.DataFrame] = {}
    for base, inst in pairs:
        for name, cfg in ((base, dc_replace(config, instruct=False)), (inst, config)):
            if name not in out:
                out[name] = twin_stats(data_dir, family, name, cfg, cache_dir, seed=seed,
                                       n_seeds=n_seeds, datasets=datasets, cots=cots,
                                       progress=progress)  # fmt: skip
    return out


def pair_twin_findings(
    twins: dict[str, pd.DataFrame] | None,
    metric: str = "nuclear_norm",
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[A.Finding] | None:
    """The per-model claims of :func:`pair_findings` (flatter with CoT) on each model's own
    twin, tagged with the trained model's name so that :func:`finalize` matches them."""
    if not twins:
        return None
    out: list[A.Finding] = []
    for name, tdf in twins.items():

        def fn(d: pd.DataFrame, name: str = name) -> list[A.Finding]:
            fs = A.claim_flatter_with_cot(d, metric, segments=False, n_boot=n_boot, seed=seed)
            return [tag(f, name) for f in fs]

        out += twin_findings(tdf, fn) or []
    return out or None


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


# --------------------------------------------------------------------------- headline controls

HEADLINE_KEY = "headline_controls"
"""06's ``metrics.json`` key: ``{family: {headline statistic: {control: verdict}}}``
(:func:`control_verdicts`); :func:`headline_entries` joins it with 02/03's rows."""
HEADLINE_STATISTICS = (
    "mean-curve level ratio detailed/none",
    "MAD (all layers) ratio detailed/none",
    "RD(correct, irrelevant) ratio detailed/none",
)
CONTROL_NAMES = {"sqrt": "loss ÷ √T", "sum": "summed loss", "answer-only loss": "answer-only loss"}
LEARNED = "learned vs init"


def _get(r: Any, k: str) -> Any:
    return r.get(k) if isinstance(r, dict) else getattr(r, k, None)


def _tags(claim: str) -> tuple[list[str], str]:
    """The ``[tag]`` prefixes of a claim and the bare claim.

    Example:
        >>> _tags("[math] [sqrt] Slow thinking")
        (['math', 'sqrt'], 'Slow thinking')
    """
    tags = []
    while claim.startswith("[") and "] " in claim:
        t, claim = claim[1:].split("] ", 1)
        tags.append(t)
    return tags, claim


def _brief(r: Any) -> dict[str, Any]:
    keys = ("verdict", "verdict_text", "estimate", "ci_low", "ci_high", "ci_level", "p_adj")
    return {k: _get(r, k) for k in keys}


def _learned_of(rows: Sequence[Any], i: int) -> dict[str, Any]:
    """The learned-vs-init contrast of row ``i`` (the learned row right after it, or why
    there is none)."""
    r = rows[i]
    nxt = rows[i + 1] if i + 1 < len(rows) else None
    if nxt is not None and "trained ÷ random twin" in str(_get(nxt, "statistic")):
        return _brief(nxt)
    text = str(_get(r, "verdict_text") or "")
    if A.NO_TRAINED_EFFECT in text:
        return {"verdict": "not applicable", "verdict_text": "not applicable: no trained effect"}
    return {"verdict": "not run", "verdict_text": "no random twin in this run"}


def control_verdicts(findings: Sequence[Any], family: str) -> dict[str, dict[str, Any]]:
    """06's verdicts of each headline claim (:data:`HEADLINE_STATISTICS`) of ``family``
    under each control: ``{statistic: {"sqrt"|"sum"|"answer-only loss"|"mean"|
    "learned vs init": {verdict, verdict_text, estimate, ci_low, ci_high, ...}}}``
    (``findings``: 06's findings or their metrics records).

    Example:
        >>> rows = [{"claim": "[math] [sqrt] c", "statistic": "mean-curve level ratio "
        ...          "detailed/none, sqrt-normalised", "verdict": "contradicted"}]
        >>> control_verdicts(rows, "math")["mean-curve level ratio detailed/none"]["sqrt"]["verdict"]
        'contradicted'
    """
    rows = list(findings)
    out: dict[str, dict[str, Any]] = {st: {} for st in HEADLINE_STATISTICS}
    for i, r in enumerate(rows):
        tags, _ = _tags(str(_get(r, "claim") or ""))
        st = str(_get(r, "statistic") or "")
        if len(tags) < 2 or tags[0] != family or "trained ÷ random twin" in st:
            continue
        ctl = tags[1]
        tail = f", {ctl}-normalised"
        if ctl in ("sqrt", "sum"):
            if not st.endswith(tail):
                continue
            st = st[: -len(tail)]
        base = st
        if base not in out:
            continue
        if ctl in CONTROL_NAMES or ctl == "mean":
            out[base][ctl] = _brief(r)
        if ctl == "mean":
            out[base].setdefault(LEARNED, _learned_of(rows, i))
    return out


def headline_entries(
    headline: Sequence[Any], controls: dict[str, dict[str, Any]] | None, family: str
) -> list[dict[str, Any]]:
    """One entry per headline claim of 02/03 (``headline``: that notebook's findings or
    records, the untagged rows) with its controls (``controls``: 06's
    :data:`HEADLINE_KEY` entry of ``family``, :func:`control_verdicts`) and its own
    learned-vs-init contrast; ``line`` is the one line a reader sees.

    Example:
        >>> head = [{"claim": "Slow thinking gives smaller gradients", "statistic":
        ...          "mean-curve level ratio detailed/none", "verdict": "supported",
        ...          "estimate": 0.6, "ci_low": 0.5, "ci_high": 0.7, "ci_level": 0.99,
        ...          "verdict_text": "supported; learned vs init: not applicable (no trained effect)"}]
        >>> ctl = {"mean-curve level ratio detailed/none": {"sqrt": {"verdict": "contradicted"}}}
        >>> headline_entries(head, ctl, "math")[0]["line"]
        'math: Slow thinking gives smaller gradients (mean-curve level ratio detailed/none 0.6, 99% CI [0.5, 0.7]): supported | loss ÷ √T: contradicted | summed loss: not run | answer-only loss: not run | learned vs init: not applicable'
    """
    rows = list(headline)
    out = []
    for st in HEADLINE_STATISTICS:
        hits = [i for i, r in enumerate(rows)
                if _get(r, "statistic") == st and not str(_get(r, "claim")).startswith("[")]  # fmt: skip
        if not hits:
            continue
        i = hits[0]
        ctl = dict((controls or {}).get(st) or {})
        entry = {"family": family, "claim": _get(rows[i], "claim"), "statistic": st,
                 **_brief(rows[i]), "controls": {}}  # fmt: skip
        for k in CONTROL_NAMES:
            entry["controls"][k] = ctl.get(k) or {"verdict": "not run", "verdict_text": "not run"}
        own = _learned_of(rows, i)
        entry["controls"][LEARNED] = own if own["verdict"] != "not run" else ctl.get(LEARNED, own)
        entry["line"] = headline_line(entry)
        out.append(entry)
    return out


def headline_line(entry: dict[str, Any]) -> str:
    """The headline claim's verdict and its controls' verdicts on one line (see
    :func:`headline_entries`)."""

    def num(x: Any) -> str:
        return A.fmt_number(float(x)) if isinstance(x, int | float) else "nan"

    lvl = entry.get("ci_level") or 0.95
    head = (
        f"{entry['family']}: {entry['claim']} ({entry['statistic']} {num(entry.get('estimate'))}, "
        f"{100 * float(lvl):.3g}% CI [{num(entry.get('ci_low'))}, {num(entry.get('ci_high'))}]): "
        f"{entry.get('verdict')}"
    )
    names = {**CONTROL_NAMES, LEARNED: LEARNED}
    parts = [f"{names[k]}: {v.get('verdict')}" for k, v in entry["controls"].items()]
    return " | ".join([head, *parts])
