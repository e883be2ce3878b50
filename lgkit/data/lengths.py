"""Token lengths, summaries and collision tables per dataset x variant.

Detailed CoT responses are several times longer than simplified ones (5-20x in the
authors' files), so notebooks need the lengths to control for them: :func:`length_table`
gives one row per example, :func:`summary` the statistics per (dataset, cot, correct).

Example:
    >>> from lgkit.formats.records import Example
    >>> class WordTok:  # any callable returning input_ids works; HF tokenizers too
    ...     def __call__(self, text, add_special_tokens=False):
    ...         return {"input_ids": text.split()}
    >>> exs = [Example("q", "", "a b c", dataset="d", cot="none", correct=True)]
    >>> summary(exs, WordTok())[["dataset", "n", "tokens_mean"]].to_dict("records")
    [{'dataset': 'd', 'n': 1, 'tokens_mean': 3.0}]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lgkit.data.index import DataFile
from lgkit.data.irrelevant import IrrelevanceReport, check_irrelevant
from lgkit.data.items import family_of, group_key
from lgkit.errors import InputError
from lgkit.formats.records import Example
from lgkit.schema import COT_LEVELS

logger = logging.getLogger(__name__)

__all__ = [
    "check_data_files",
    "collision_table",
    "get_tokenizer",
    "length_ratios",
    "length_table",
    "prep_metrics",
    "plot_length_distributions",
    "summary",
    "token_lengths",
]


SUMMARY_STATS: tuple[str, ...] = (
    "n",
    "tokens_mean",
    "tokens_std",
    "tokens_min",
    "tokens_p10",
    "tokens_median",
    "tokens_p90",
    "tokens_max",
    "words_mean",
    "prompt_tokens_mean",
)
"""The per-group length statistics of :func:`length_summary`, in column order."""


def get_tokenizer(name: str = "tiny") -> Any:
    """A tokenizer by name: ``tiny`` (or a tiny test model name) gives lgkit's byte-level
    test tokenizer without building a model; anything else ``load_model(name).tokenizer``.

    Example:
        >>> len(get_tokenizer("tiny")("abc", add_special_tokens=False)["input_ids"])
        3
    """
    from lgkit import models

    key = name.strip().lower()
    if key in ("tiny", "tiny-byte") or key in getattr(models, "TINY", {}):
        return models.tiny_tokenizer()
    return models.load_model(name, device="cpu").tokenizer


def token_lengths(texts: Sequence[str], tokenizer: Any) -> list[int]:
    """Number of tokens of each text (no special tokens), batched for HF tokenizers.

    Example:
        >>> token_lengths(["ab", "abcd"], get_tokenizer("tiny"))
        [2, 4]
    """
    texts = list(texts)
    if not texts:
        return []
    try:
        from transformers import PreTrainedTokenizerBase

        if isinstance(tokenizer, PreTrainedTokenizerBase):
            enc = tokenizer(texts, add_special_tokens=False, verbose=False)
            return [len(ids) for ids in enc["input_ids"]]
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    return [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def _flatten(data: Any) -> list[Example]:
    if isinstance(data, Mapping):
        out: list[Example] = []
        for v in data.values():
            out.extend(_flatten(v))
        return out
    if isinstance(data, DataFile):
        return data.read()
    if isinstance(data, Example):
        return [data]
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        out = []
        for x in data:
            out.extend(_flatten(x))
        return out
    raise InputError(f"expected examples, groups or data files, got {type(data).__name__}")


def length_table(examples_or_groups: Any, tokenizer: Any):
    """One row per example: dataset, family, cot, correct, id, response/prompt tokens and words.

    Wiki rows also carry ``popularity`` and ``length`` (None elsewhere).

    Args:
        examples_or_groups: examples, :data:`~lgkit.data.items.Groups`, a mapping of
            lists, or :class:`~lgkit.data.index.DataFile` objects (read here).
        tokenizer: any HF tokenizer (or a callable returning ``input_ids``).

    Returns:
        A pandas DataFrame.

    Example:
        >>> from lgkit.formats.records import Example
        >>> t = length_table([Example("q", "", "abc", dataset="gsm8k", cot="none", correct=True)], get_tokenizer("tiny"))
        >>> t[["family", "response_tokens", "response_words"]].to_dict("records")
        [{'family': 'math', 'response_tokens': 3, 'response_words': 1}]
    """
    import pandas as pd

    exs = _flatten(examples_or_groups)
    resp = token_lengths([e.output for e in exs], tokenizer)
    prompt = token_lengths([e.prompt for e in exs], tokenizer)
    rows = []
    for e, r, p in zip(exs, resp, prompt, strict=True):
        ds, cot, corr = group_key(e)
        fam = e.meta.get("family")
        if fam is None:
            try:
                fam = family_of(ds)
            except InputError:
                fam = "?"
        rows.append(
            {
                "dataset": ds,
                "family": fam,
                "cot": cot,
                "correct": corr,
                "id": e.sample_id,
                "popularity": e.meta.get("popularity"),
                "length": e.meta.get("length"),
                "response_tokens": r,
                "prompt_tokens": p,
                "response_words": len(e.output.split()),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "family",
            "cot",
            "correct",
            "id",
            "popularity",
            "length",
            "response_tokens",
            "prompt_tokens",
            "response_words",
        ],
    )


def summary(examples_or_groups: Any, tokenizer: Any = None):
    """Counts and response token-length statistics per (dataset, cot, correct).

    Columns: ``dataset family cot correct n tokens_mean tokens_std tokens_min tokens_p10
    tokens_median tokens_p90 tokens_max words_mean prompt_tokens_mean``.

    Args:
        examples_or_groups: see :func:`length_table`; or a :func:`length_table` DataFrame
            (then ``tokenizer`` is not needed).
        tokenizer: any HF tokenizer (or a callable returning ``input_ids``).

    Example:
        >>> from lgkit.data.synthetic import synthetic_groups
        >>> s = summary(synthetic_groups(3, families=("math",)), get_tokenizer("tiny"))
        >>> list(s["cot"][:3]), int(s["n"].sum())
        (['none', 'simplified', 'detailed'], 18)
    """
    import pandas as pd

    if isinstance(examples_or_groups, pd.DataFrame) and "response_tokens" in examples_or_groups:
        t = examples_or_groups
    else:
        t = length_table(examples_or_groups, tokenizer)
    cols = ["dataset", "family", "cot", "correct", *SUMMARY_STATS]
    if t.empty:
        return pd.DataFrame(columns=cols)
    g = t.groupby(["dataset", "family", "cot", "correct"], sort=False)
    r = g["response_tokens"]
    out = pd.DataFrame(
        {
            "n": g.size(),
            "tokens_mean": r.mean(),
            "tokens_std": r.std(ddof=0),
            "tokens_min": r.min(),
            "tokens_p10": r.quantile(0.1),
            "tokens_median": r.median(),
            "tokens_p90": r.quantile(0.9),
            "tokens_max": r.max(),
            "words_mean": g["response_words"].mean(),
            "prompt_tokens_mean": g["prompt_tokens"].mean(),
        }
    ).reset_index()
    order = {"none": 0, "simplified": 1, "detailed": 2}
    out["_o"] = out["cot"].map(order).fillna(3)
    out = out.sort_values(
        ["family", "dataset", "correct", "_o"], ascending=[True, True, False, True], kind="stable"
    )
    return out.drop(columns="_o").reset_index(drop=True)[cols]


def length_ratios(summary_df: Any) -> dict[str, dict[str, float]]:
    """Mean response length of each CoT level relative to ``simplified``, per dataset (correct only).

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"dataset": ["d", "d"], "cot": ["simplified", "detailed"], "correct": [True, True],
        ...                    "tokens_mean": [10.0, 80.0]})
        >>> length_ratios(df)
        {'d': {'detailed_over_simplified': 8.0}}
    """
    out: dict[str, dict[str, float]] = {}
    df = summary_df[summary_df["correct"]]
    for ds, sub in df.groupby("dataset", sort=True):
        means = dict(zip(sub["cot"], sub["tokens_mean"], strict=True))
        if "simplified" in means and means["simplified"]:
            r = {
                f"{c}_over_simplified": float(means[c] / means["simplified"])
                for c in ("none", "detailed")
                if c in means
            }
            if r:
                out[str(ds)] = r
    return out


def check_data_files(files: Sequence[DataFile]) -> dict[str, IrrelevanceReport]:
    """Collision reports of every irrelevant file against its correct file (same dataset and cot).

    Keys are the irrelevant files' names (``<dataset>__<cot>__irrelevant``).

    Example:
        >>> check_data_files([])
        {}
    """
    by_key = {(f.dataset, f.cot, f.correct): f for f in files}
    out = {}
    for (ds, cot, corr), f in by_key.items():
        if corr or (ds, cot, True) not in by_key:
            continue
        out[f.name] = check_irrelevant(by_key[(ds, cot, True)].read(), f.read())
    return out


def collision_table(reports: Mapping[str, IrrelevanceReport]):
    """A DataFrame of collision reports, one row per file.

    Example:
        >>> collision_table({"x": IrrelevanceReport(4, 1, 2, 4, 0, 0.5)})[["file", "rate"]].to_dict("records")
        [{'file': 'x', 'rate': 0.5}]
    """
    import pandas as pd

    rows = [{"file": k, **v.to_dict()} for k, v in reports.items()]
    return pd.DataFrame(
        rows,
        columns=[
            "file",
            "n",
            "same_response",
            "same_final_answer",
            "answered",
            "own_sentence",
            "rate",
        ],
    )


def plot_length_distributions(
    lengths: Any, path: str | Path | None = None, *, correct_only: bool = True
):
    """Histograms (log x) of response token lengths by CoT level, one panel per family.

    The wiki panel (no CoT levels) shows one histogram per dataset (length variant).

    Args:
        lengths: a :func:`length_table` DataFrame.
        path: save the figure here (PNG) when given.
        correct_only: plot only correct responses.

    Returns:
        The matplotlib figure.

    Example:
        >>> fig = plot_length_distributions(length_table([], get_tokenizer("tiny")))
        >>> type(fig).__name__
        'Figure'
    """
    import matplotlib.pyplot as plt
    import numpy as np

    df = lengths[lengths["correct"]] if correct_only and len(lengths) else lengths
    fams = sorted(df["family"].unique()) if len(df) else ["(none)"]
    fig, axes = plt.subplots(1, len(fams), figsize=(4.5 * len(fams), 3.4), squeeze=False)
    colors = {"none": "tab:blue", "simplified": "tab:orange", "detailed": "tab:green"}
    for ax, fam in zip(axes[0], fams, strict=True):
        sub = df[df["family"] == fam] if len(df) else df
        if len(sub):
            hi = max(2, int(sub["response_tokens"].max()))
            bins = np.logspace(0, np.log10(hi + 1), 30)
            if set(sub["cot"]) == {"none"} and sub["dataset"].nunique() > 1:
                # knowledge texts have no CoT levels: one histogram per length variant
                groups = [
                    (str(d), sub[sub["dataset"] == d]) for d in sorted(sub["dataset"].unique())
                ]
                cmap = plt.get_cmap("tab10")
                styles = {name: cmap(k % 10) for k, (name, _) in enumerate(groups)}
            else:
                groups = [(c, sub[sub["cot"] == c]) for c in COT_LEVELS]
                styles = colors
            for name, part in groups:
                v = part["response_tokens"]
                if len(v):
                    ax.hist(
                        v.clip(lower=1),
                        bins=bins,
                        histtype="step",  # outlines: overlapping groups stay readable
                        linewidth=1.6,
                        label=f"{name} (n={len(v)})",
                        color=styles[name],
                    )
            ax.set_xscale("log")
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        ax.set_title(fam)
        ax.set_xlabel("response tokens")
    axes[0][0].set_ylabel("examples")
    if len(df):
        names = sorted(map(str, df["dataset"].unique())) if "dataset" in df else []
        more = f" (+{len(names) - 6})" if len(names) > 6 else ""
        fig.suptitle(f"Response length (tokens) · data: {', '.join(names[:6])}{more}")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        title = fig.get_suptitle() or "Response length (tokens)"
        fig.savefig(path, dpi=110, metadata={"Title": title})  # the index page's caption
    return fig


def _stats_key(row: Any) -> str:
    return f"{row.dataset}__{row.cot}__{'correct' if row.correct else 'irrelevant'}"


def prep_metrics(
    files: Sequence[DataFile],
    summary_df: Any,
    *,
    released: Mapping[str, IrrelevanceReport] | None,
    written: Mapping[str, IrrelevanceReport],
    **info: Any,
) -> dict[str, Any]:
    """The JSON-ready metrics of notebook 01 (counts, token lengths, collision tables).

    Args:
        files: the written data files.
        summary_df: :func:`summary` of the written files.
        released: collision reports of the released files (None: not available).
        written: collision reports of the written files (:func:`check_data_files`).
        **info: run information (profile, seed, tokenizer, ...), stored as given.

    Example:
        >>> m = prep_metrics([], summary([], None), released=None, written={}, profile="smoke")
        >>> m["released_available"], m["n_files"]
        (False, 0)
    """

    def clean(v: Any) -> Any:
        f = float(v)
        return None if f != f else (int(f) if f.is_integer() else round(f, 4))

    stats = {}
    for row in summary_df.itertuples(index=False):
        stats[_stats_key(row)] = {k: clean(getattr(row, k)) for k in SUMMARY_STATS}
    written_d = {k: v.to_dict() for k, v in written.items()}
    return {
        **info,
        "n_files": len(files),
        "n_records": int(sum(f.n for f in files)),
        "families": sorted({f.family for f in files}),
        "datasets": sorted({f.dataset for f in files}),
        "synthetic": bool(files) and all(f.synthetic for f in files),
        "counts": {f.name: f.n for f in files},
        "token_lengths": stats,
        "length_ratios": length_ratios(summary_df) if len(summary_df) else {},
        "released_available": released is not None,
        "collisions_released": {k: v.to_dict() for k, v in released.items()}
        if released is not None
        else None,
        "collisions_written": written_d,
        "written_collision_free": all(
            v["same_response"] == 0 and v["same_final_answer"] == 0 and v["own_sentence"] == 0
            for v in written_d.values()
        ),
    }
