"""Tests of lgkit.analysis against hand-computed values and constructed tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lgkit import analysis as A
from lgkit.errors import InputError

MODULES = ("q", "k", "v", "o")


def realistic_table(**kw: Any) -> pd.DataFrame:
    """3 datasets × 3 cot levels × correct/irrelevant × 20 samples × 8 layers × 4 modules."""
    kw.setdefault("n_samples", 20)
    kw.setdefault("n_layers", 8)
    return A.synthetic_stats(**kw)


def curves_table(
    spec: dict[tuple, Sequence[float]],
    keys: Sequence[str] = ("cot", "correct"),
    *,
    n: int = 4,
    modules: Sequence[str] = MODULES,
    length: dict[tuple, Sequence[int]] | None = None,
) -> pd.DataFrame:
    """Table whose mean curve per key is exactly ``spec[key]`` for every module.

    Example i of a group is the curve times ``1 + 0.1 * (i - (n - 1) / 2)`` (mean
    factor exactly 1), so means are known by hand while examples differ.
    """
    rows = []
    for key, curve in spec.items():
        kd = dict(zip(keys, key, strict=True))
        kd.setdefault("dataset", "d")
        kd.setdefault("cot", "none")
        kd.setdefault("correct", True)
        for i in range(n):
            f = 1 + 0.1 * (i - (n - 1) / 2)
            n_resp = length[key][i] if length else 10 * (i + 1)
            for m in modules:
                for layer, v in enumerate(curve):
                    rows.append(
                        {
                            "sample_id": f"{'-'.join(map(str, key))}-{i}",
                            "qid": f"q{i}",  # question i in every group: paired comparisons
                            **kd,
                            "layer": layer,
                            "module": m,
                            "shape": "4 x 4",
                            "loss": 2.0,
                            "n_prompt_tokens": 5,
                            "n_response_tokens": n_resp,
                            "truncated": False,
                            "nuclear_norm": float(v) * f,
                            "sigma_max": 0.3 * float(v) * f,
                            "sigma1_ratio": 0.3,
                        }
                    )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- metrics


def test_metric_values_aliases_and_regularized():
    t = pd.DataFrame(
        {"nuclear_norm": [2.0, 3.0, 5.0], "loss": [0.5, 0.0, 2.0], "sigma1_ratio": [0.1, 0.2, 0.3]}
    )
    assert A.metric_values(t, "S_sum").tolist() == [2.0, 3.0, 5.0]
    assert A.metric_values(t, "S_ratio").tolist() == [0.1, 0.2, 0.3]
    assert A.metric_values(t, "S_sum_regularized").tolist() == [4.0, 0.0, 2.5]
    with pytest.raises(InputError, match="unknown metric"):
        A.metric_values(t, "nope")


def test_available_metrics_and_filter():
    df = realistic_table(n_samples=2, n_layers=3)
    ms = A.available_metrics(df)
    assert "nuclear_norm" in ms and "S_sum_regularized" in ms and "effective_rank" in ms
    f = A.filter_table(df, {"cot": ["none", "detailed"], "correct": True, "dataset": None})
    assert set(f["cot"]) == {"none", "detailed"} and f["correct"].all()


# --------------------------------------------------------------------------- MAD


def squares(n: int) -> np.ndarray:
    """i**2: adjacent differences 2i+1, so the MAD of [a:b) is exactly a + b - 1."""
    return np.arange(n, dtype=float) ** 2


@pytest.mark.parametrize(
    "n, spans, mads",
    [
        (18, [(0, 6), (6, 12), (12, 18)], [5, 17, 29, 17]),
        (26, [(0, 7), (7, 20), (20, 26)], [6, 26, 45, 25]),
        (28, [(0, 7), (7, 21), (21, 28)], [6, 27, 48, 27]),
        (32, [(0, 10), (10, 20), (20, 32)], [9, 29, 51, 31]),
        (42, [(0, 12), (12, 30), (30, 42)], [11, 41, 71, 41]),
    ],
)
def test_layer_groups_presets_and_mad_values(n, spans, mads):
    g = A.layer_groups(n)
    assert [(s.start, s.stop) for s in g.values()] == spans
    assert list(g) == ["early", "middle", "late"]
    got = A.mad_by_group(squares(n))
    assert [got["early"], got["middle"], got["late"], got["all"]] == pytest.approx(mads)


@pytest.mark.parametrize(
    "n, sizes",
    [
        (18, (6, 6, 6)),
        (19, (6, 7, 6)),
        (20, (7, 6, 7)),
        (21, (7, 7, 7)),
        (12, (4, 4, 4)),
        (16, (5, 6, 5)),
        (5, (2, 1, 2)),
        (4, (1, 2, 1)),
        (3, (1, 1, 1)),
        (2, (1, 0, 1)),
    ],
)
def test_layer_groups_even_split_remainders(n, sizes):
    g = A.layer_groups(n)
    assert tuple(s.stop - s.start for s in g.values()) == sizes
    assert g["early"].start == 0 and g["late"].stop == n
    assert g["early"].stop == g["middle"].start and g["middle"].stop == g["late"].start


def test_mad_single_layer_group_is_nan():
    assert math.isnan(A.mean_absolute_difference([3.0]))
    assert math.isnan(A.mean_absolute_difference([]))
    got = A.mad_by_group([0.0, 5.0, 7.0, 1.0, 2.0])  # 5 layers -> [0:2] [2:3] [3:5]
    assert got["early"] == 5.0 and math.isnan(got["middle"]) and got["late"] == 1.0
    assert got["all"] == pytest.approx((5 + 2 + 6 + 1) / 4)


def test_mad_alternating_and_custom_splits():
    v = [0, 1] * 5
    assert A.mean_absolute_difference(v) == 1.0
    got = A.mad_by_group(squares(6), splits={"a": slice(0, 3), "b": slice(3, 6)})
    assert got == {"a": 2.0, "b": 8.0, "all": 5.0}


def test_mad_table_from_stats_and_from_curves():
    t = curves_table({("none", True): squares(18), ("detailed", True): np.full(18, 2.0)})
    mad = A.mad_table(t, "nuclear_norm", by="cot")
    assert list(mad.columns) == ["cot", "module", "early", "middle", "late", "all", "n_layers"]
    none_q = mad[(mad.cot == "none") & (mad.module == "q")].iloc[0]
    assert [none_q.early, none_q.middle, none_q.late, none_q["all"]] == pytest.approx(
        [5, 17, 29, 17]
    )
    assert (mad[mad.cot == "detailed"][["early", "middle", "late", "all"]] == 0).all().all()
    assert mad.cot.tolist()[:4] == ["none"] * 4  # natural order, none first
    curves = A.layer_curves(t, "nuclear_norm", by="cot", n_boot=0)
    pd.testing.assert_frame_equal(A.mad_table(curves, by="cot"), mad)
    wide = A.pivot_mad(mad, index="cot")
    assert wide.loc["none", ("q", "middle")] == pytest.approx(17)
    assert list(wide.index) == ["none", "detailed"]


def test_mad_table_layer_range():
    t = curves_table({("none", True): squares(10)})
    mad = A.mad_table(t, by="cot", layers=(2, 7), modules=["q"])
    # sub-curve layers 2..7 (6 values) -> groups [0:2] [2:4] [4:6] of it = layers 2-3, 4-5, 6-7
    row = mad.iloc[0]
    assert row.n_layers == 6
    assert [row.early, row.middle, row.late] == pytest.approx([5, 9, 13])


# --------------------------------------------------------------------------- curves & bootstrap


def test_layer_curves_means_and_band_contains_mean():
    df = realistic_table()
    c = A.layer_curves(df, "nuclear_norm", by=["dataset", "cot", "correct"], n_boot=200, seed=1)
    assert list(c.columns) == [
        "dataset",
        "cot",
        "correct",
        "module",
        "layer",
        "metric",
        "mean",
        "lo",
        "hi",
        "n",
        "std",
    ]
    assert (c["n"] == 20).all()
    assert ((c["lo"] <= c["mean"] + 1e-12) & (c["mean"] <= c["hi"] + 1e-12)).all()
    assert (c["hi"] > c["lo"]).all()
    # the mean is the plain mean over examples
    g = df[
        (df.dataset == "gsm8k")
        & (df.cot == "none")
        & df.correct
        & (df.module == "v")
        & (df.layer == 3)
    ]
    row = c[
        (c.dataset == "gsm8k") & (c.cot == "none") & c.correct & (c.module == "v") & (c.layer == 3)
    ]
    assert row["mean"].item() == pytest.approx(g["nuclear_norm"].mean())
    # seeded: same seed same bands, other seed other bands
    c2 = A.layer_curves(df, "nuclear_norm", by=["dataset", "cot", "correct"], n_boot=200, seed=1)
    pd.testing.assert_frame_equal(c, c2)
    c3 = A.layer_curves(df, "nuclear_norm", by=["dataset", "cot", "correct"], n_boot=200, seed=2)
    assert not np.allclose(c["lo"], c3["lo"])


def test_bootstrap_resamples_examples_not_rows():
    # 5 examples, each constant over 10 layers: a resample of *examples* gives a curve
    # that is constant over layers; resampling rows would not.
    rows = [
        {
            "sample_id": f"s{i}",
            "cot": "none",
            "layer": layer,
            "module": "q",
            "nuclear_norm": float(10 * i),
        }
        for i in range(5)
        for layer in range(10)
    ]
    t = pd.DataFrame(rows)
    for seed in range(5):
        c = A.layer_curves(t, by="cot", n_boot=1, seed=seed)
        assert c["lo"].nunique() == 1 and c["hi"].nunique() == 1
    c = A.layer_curves(t, by="cot", n_boot=500)
    assert (c["mean"] == 20.0).all() and (c["lo"] < 20).all() and (c["hi"] > 20).all()


def test_bootstrap_mean_band_function_and_no_boot():
    m = np.array([[1.0, np.nan], [3.0, 4.0], [5.0, 6.0]])
    mean, lo, hi, n = A.bootstrap_mean_band(m, n_boot=300, rng=np.random.default_rng(0))
    assert mean.tolist() == [3.0, 5.0] and n.tolist() == [3, 2]
    assert (lo <= mean).all() and (mean <= hi).all()
    mean, lo, hi, n = A.bootstrap_mean_band(m, n_boot=0)
    assert np.isnan(lo).all() and np.isnan(hi).all()


def test_layer_curves_drop_incomplete_and_keys():
    t = curves_table({("none", True): [1.0, 2.0, 3.0]}, n=2)
    t = t[~((t.sample_id == "none-True-0") & (t.layer == 1))]  # example 0 misses layer 1
    c = A.layer_curves(t, by="cot", n_boot=0, modules=["q"])
    assert c["n"].tolist() == [1, 1, 1]
    c2 = A.layer_curves(t, by="cot", n_boot=0, modules=["q"], drop_incomplete=False)
    assert c2["n"].tolist() == [2, 1, 2]
    # the same sample_id in two cot levels is two examples when pooled
    t2 = pd.concat(
        [curves_table({("none", True): [1.0]}, n=2), curves_table({("detailed", True): [3.0]}, n=2)]
    )
    t2["sample_id"] = t2["sample_id"].str.replace("none-", "").str.replace("detailed-", "")
    c3 = A.layer_curves(t2, by=None, n_boot=0, modules=["q"])
    assert c3["n"].item() == 4 and c3["mean"].item() == pytest.approx(2.0)


def test_layer_curves_group_by_model_and_regularized_metric():
    df = pd.concat(
        [
            realistic_table(n_samples=3, n_layers=4, model="base"),
            realistic_table(n_samples=3, n_layers=4, model="instruct"),
        ]
    )
    c = A.layer_curves(df, "S_sum_regularized", by="model", n_boot=0)
    assert set(c["model"]) == {"base", "instruct"} and (c["n"] == 3 * 3 * 3 * 2).all()
    sub = df[(df.model == "base") & (df.module == "q") & (df.layer == 0)]
    exp = (sub.nuclear_norm / sub.loss).mean()
    assert c[(c.model == "base") & (c.module == "q") & (c.layer == 0)][
        "mean"
    ].item() == pytest.approx(exp)


def test_empty_selection_returns_empty_frame():
    df = realistic_table(n_samples=2, n_layers=3)
    assert A.layer_curves(df, by="cot", where={"cot": "nope"}).empty
    assert A.mad_table(df, by="cot", where={"cot": "nope"}).empty


# --------------------------------------------------------------------------- relative difference


def test_relative_difference_hand_computed():
    a = [1.0, 2.0, 4.0, 8.0, 10.0, 5.0]
    b = [1.5, 2.0, 2.0, 8.0, 11.0, 5.0]
    r = A.relative_difference(a, b)
    assert r.per_layer.tolist() == pytest.approx([0.5, 0.0, 0.5, 0.0, 0.1, 0.0])
    assert r.mean == pytest.approx(1.1 / 6)
    assert r.top5_layers == [2, 0, 4, 5, 3]
    assert r.top5_mean == pytest.approx(0.22)
    assert A.signed_relative_difference(a, b).tolist() == pytest.approx([0.5, 0, -0.5, 0, 0.1, 0])
    r2 = A.relative_difference(a, b, layers=range(10, 16))
    assert r2.top5_layers == [12, 10, 14, 15, 13]


def test_relative_difference_zero_guard():
    r = A.relative_difference([0.0, 1.0], [1.0, 1.0])
    assert r.per_layer[0] == pytest.approx(1e10)
    assert A.signed_relative_difference([0.0], [-2.0])[0] == pytest.approx(-2e10)
    with pytest.raises(InputError):
        A.relative_difference([1.0], [1.0, 2.0])


def test_relative_difference_table_and_curves():
    base = [2.0, 4.0, 5.0, 10.0]
    t = curves_table(
        {
            ("none", True): base,
            ("none", False): [v * 1.05 for v in base],
            ("detailed", True): base,
            ("detailed", False): [v * 0.6 for v in base],
        }
    )
    rd = A.relative_difference_table(t, by="cot")
    assert rd.cot.tolist() == ["none"] * 4 + ["detailed"] * 4
    assert rd[rd.cot == "none"]["rd_mean"].tolist() == pytest.approx([0.05] * 4)
    assert rd[rd.cot == "detailed"]["rd_mean"].tolist() == pytest.approx([0.4] * 4)
    assert rd["mean_a"].iloc[0] == pytest.approx(np.mean(base))
    curves = A.relative_difference_curves(t, by="cot", modules=["q"])
    assert curves[curves.cot == "detailed"]["rd_signed"].tolist() == pytest.approx([-0.4] * 4)
    assert curves[curves.cot == "none"]["rd_abs"].tolist() == pytest.approx([0.05] * 4)


# --------------------------------------------------------------------------- length control


def length_table(slope: float = 2.0) -> pd.DataFrame:
    """Metric = slope * length + 1, whatever the cot level; lengths overlap."""
    rows = []
    lengths = {"none": [5, 10, 20, 40, 80, 100], "detailed": [11, 21, 39, 82, 300, 500]}
    for cot, ls in lengths.items():
        for i, n in enumerate(ls):
            for layer in range(3):
                for m in ("q", "k"):
                    rows.append(
                        {
                            "sample_id": f"{cot}{i}",
                            "dataset": "d",
                            "cot": cot,
                            "correct": True,
                            "layer": layer,
                            "module": m,
                            "loss": 1.0,
                            "n_response_tokens": n,
                            "nuclear_norm": slope * n + 1.0 + 0.1 * layer,
                        }
                    )
    return pd.DataFrame(rows)


def test_length_association_exact_slope():
    a = A.length_association(length_table(), by="cot")
    assert a["slope"].tolist() == pytest.approx([2.0] * 4)
    assert a["spearman_rho"].tolist() == pytest.approx([1.0] * 4)
    assert a["pearson_r"].tolist() == pytest.approx([1.0] * 4)
    assert (a["n"] == 6).all() and a["length_max"].tolist() == [100, 100, 500, 500]
    rho, p = A.spearman([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [2, 1, 4, 3, 6, 5, 8, 7, 10, 9])
    assert rho == pytest.approx(1 - 6 * 10 / (10 * 99)) and 0 < p < 0.01


def test_match_by_length_nearest_within_tolerance_without_replacement():
    t = length_table()
    pairs = A.match_by_length(t, "cot", "none", "detailed", tol=0.1)
    assert list(pairs.columns[:3]) == ["dataset", "correct", "sample_id_a"]
    assert (pairs["abs_diff"] <= 0.1 * np.maximum(pairs.length_a, pairs.length_b) + 1e-9).all()
    assert pairs.sample_id_a.is_unique and pairs.sample_id_b.is_unique
    got = sorted(zip(pairs.length_a, pairs.length_b, strict=True))
    assert got == [(10, 11), (20, 21), (40, 39), (80, 82)]
    # absolute tolerance only
    p2 = A.match_by_length(t, tol=None, abs_tol=1)
    assert sorted(zip(p2.length_a, p2.length_b, strict=True)) == [(10, 11), (20, 21), (40, 39)]
    # impossible tolerance -> empty, with the columns
    p3 = A.match_by_length(t, tol=0.0)
    assert p3.empty and "sample_id_b" in p3.columns


def test_match_by_length_strata_and_bins():
    t = pd.concat([length_table().assign(dataset="x"), length_table().assign(dataset="y")])
    pairs = A.match_by_length(t, tol=0.1)
    assert sorted(pairs.dataset.value_counts().tolist()) == [4, 4]
    b = A.match_by_length(length_table(), method="bins", n_bins=3, seed=0)
    assert len(b) > 0 and (b["bin"] >= 0).all()
    assert b.sample_id_a.is_unique and b.sample_id_b.is_unique
    b2 = A.match_by_length(length_table(), method="bins", n_bins=3, seed=0)
    pd.testing.assert_frame_equal(b, b2)
    with pytest.raises(InputError):
        A.match_by_length(t, method="magic")


def test_length_matched_comparison_removes_length_effect():
    t = length_table()
    c = A.length_matched_comparison(t, "nuclear_norm", tol=0.1)
    assert c.module.tolist() == ["q", "k"]
    assert (c.n_pairs == 4).all()
    # unmatched: detailed much larger (it is longer); matched: nearly equal
    assert (c.mean_b_all > 2 * c.mean_a_all).all()
    assert (c.rel_diff.abs() < 0.05).all()
    assert c.length_a.iloc[0] == pytest.approx(np.median([10, 20, 40, 80]))
    # MAD of matched curves: layer step 0.1 for both
    assert c.mad_a.tolist() == pytest.approx([0.1, 0.1]) and c.mad_b.tolist() == pytest.approx(
        [0.1, 0.1]
    )
    empty = A.length_matched_comparison(t, tol=0.0)
    assert (empty.n_pairs == 0).all() and empty.mean_a.isna().all()


# --------------------------------------------------------------------------- LaTeX


def test_to_latex_tabular_written(tmp_path):
    df = realistic_table(n_samples=3, n_layers=6)
    mad = A.mad_table(df, by="cot", where={"correct": True})
    path = tmp_path / "tables" / "mad.tex"
    tex = A.to_latex(mad, path, caption="MAD of nuclear norm", label="tab:mad")
    assert path.read_text() == tex
    assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex and "\\toprule" in tex
    assert "\\caption{MAD of nuclear norm}" in tex and "\\label{tab:mad}" in tex
    assert "n\\_layers" in tex  # escaped header
    wide = A.to_latex(A.pivot_mad(mad))
    assert "\\multicolumn" in wide and "detailed" in wide
    rd = A.to_latex(A.relative_difference_table(df, by="cot"))
    assert "rd\\_mean" in rd and "[" in rd


# --------------------------------------------------------------------------- findings


def test_findings_table():
    # was: columns claim/measured/supported/detail and supported True/None (old semantics);
    # now the reader-facing columns and a three-valued verdict (+ invalid)
    t = A.findings_table([A.Finding("c1", "s", 0.5, 0.4, 0.6, 0.01), A.invalid("c2", "s", "why")])
    assert t.columns.tolist()[:9] == [
        "claim", "statistic", "estimate", "ci_low", "ci_high", "p", "p_adj", "n_questions", "verdict",
    ]  # fmt: skip
    assert t.verdict.tolist() == ["supported", "invalid"]


def by_stat(fs: list, prefix: str):
    hits = [f for f in fs if f.statistic.startswith(prefix)]
    assert len(hits) == 1, [f.statistic for f in fs]
    return hits[0]


def test_claim_flatter_with_cot_verdicts():
    steep = [20.0, 10.0, 12.0, 6.0, 8.0, 4.0]
    flat = [2.0, 2.1, 2.0, 2.1, 2.0, 2.1]
    spec = {("none", True): steep, ("detailed", True): flat}
    spec.update({("none", False): flat, ("detailed", False): steep})
    t = curves_table(spec, n=10)
    fs = A.claim_flatter_with_cot(t, n_boot=300)
    level, mad = by_stat(fs, "mean-curve level"), by_stat(fs, "MAD (all")
    # level none = 60/6 = 10, detailed 12.3/6 = 2.05; MAD none = 24/5 = 4.8, detailed 0.1
    assert level.estimate == pytest.approx(2.05 / 10) and mad.estimate == pytest.approx(0.1 / 4.8)
    assert level.ci_low <= level.estimate <= level.ci_high
    assert level.verdict == mad.verdict == "supported" and level.n_questions == 10
    # was `supported is False` for the irrelevant responses' opposite pattern: now contradicted
    opposite = A.claim_flatter_with_cot(t, correct=False, n_boot=300)
    assert by_stat(opposite, "mean-curve level").verdict == "contradicted"
    # smaller but not flatter: was one False; now the level is supported, the MAD contradicted
    t2 = curves_table(
        {("none", True): [10.0, 10.5, 10.0], ("detailed", True): [1.0, 3.0, 1.0]}, n=10
    )
    f2 = A.claim_flatter_with_cot(t2, n_boot=300)
    assert by_stat(f2, "mean-curve level").verdict == "supported"
    assert by_stat(f2, "MAD (all").verdict == "contradicted"
    # was `supported is None` (nothing to compare): now invalid
    assert all(f.verdict == "invalid" for f in A.claim_flatter_with_cot(t2, b="simplified"))
    assert by_stat(A.claim_flatter_with_cot(realistic_table()), "mean-curve level").supported


def test_claim_flatter_statistics_by_hand():
    t = curves_table({("none", True): [20.0, 10.0, 12.0], ("detailed", True): [2.0, 3.0, 2.0]}, n=8)
    fs = A.claim_flatter_with_cot(t, n_boot=100)
    # level none = 14, detailed 7/3; MAD none = (10 + 2) / 2 = 6, detailed 1
    assert by_stat(fs, "mean-curve level").estimate == pytest.approx((7 / 3) / 14)
    assert by_stat(fs, "MAD (all").estimate == pytest.approx(1 / 6)


def test_claim_correct_vs_irrelevant_verdicts():
    base = [2.0, 4.0, 5.0, 10.0]

    def table(gap_none: float, gap_det: float) -> pd.DataFrame:
        return curves_table(
            {
                ("none", True): base,
                ("none", False): [v * (1 + gap_none) for v in base],
                ("simplified", True): base,
                ("simplified", False): [v * 1.02 for v in base],
                ("detailed", True): base,
                ("detailed", False): [v * (1 + gap_det) for v in base],
            },
            n=10,
        )

    fs = A.claim_correct_vs_irrelevant(table(0.02, 0.4), n_boot=300)
    vs_none = by_stat(fs, "RD(correct, irrelevant) ratio detailed/none")
    assert vs_none.estimate == pytest.approx(0.4 / 0.02) and vs_none.verdict == "supported"
    alike = by_stat(fs, "mean-curve level ratio irrelevant/correct at cot=none")
    assert alike.estimate == pytest.approx(1.02) and alike.kind == "equivalence"
    assert alike.verdict == "supported"  # CI inside [1/1.1, 1.1]
    # was False (same RD at none and detailed): now "no clear difference" is not supported and
    # the no-difference claim at none is contradicted (level ratio 1.4 outside [1/1.1, 1.1])
    same = A.claim_correct_vs_irrelevant(table(0.4, 0.4), n_boot=300)
    assert by_stat(same, "RD(correct, irrelevant) ratio detailed/none").verdict != "supported"
    assert by_stat(same, "mean-curve level ratio irrelevant/correct").verdict == "contradicted"
    only_correct = curves_table({("none", True): base, ("detailed", True): base})
    assert all(f.verdict == "invalid" for f in A.claim_correct_vs_irrelevant(only_correct))
    real = A.claim_correct_vs_irrelevant(realistic_table())
    assert by_stat(real, "RD(correct, irrelevant) ratio detailed/none").supported


def wiki_table(gaps: dict[str, float]) -> pd.DataFrame:
    base = [5.0, 3.0, 4.0, 3.5]
    spec, length = {}, {}
    for k, (variant, gap) in enumerate(gaps.items()):
        spec[(variant, True)] = base
        spec[(variant, False)] = [v * (1 + gap) for v in base]
        length[(variant, True)] = length[(variant, False)] = [100 * (k + 1)] * 10
    return curves_table(spec, keys=("dataset", "correct"), length=length, n=10)


def test_claim_length_not_enough_verdicts():
    t = wiki_table({"wiki_len100": 0.05, "wiki_len500": 0.05, "wiki_len1000": 0.06})
    f = A.claim_length_not_enough(t, n_boot=300)[0]
    assert f.statistic == "RD(correct, irrelevant) ratio wiki_len1000/wiki_len100"
    assert f.estimate == pytest.approx(0.06 / 0.05) and f.verdict == "supported"  # < 1.5
    grows = wiki_table({"wiki_len100": 0.05, "wiki_len500": 0.2, "wiki_len1000": 0.4})
    assert A.claim_length_not_enough(grows, n_boot=300)[0].verdict == "contradicted"
    # with a reference RD from detailed CoT on reasoning data: RD[long] < reference / 1.5
    assert A.claim_length_not_enough(t, reference_rd=0.4, n_boot=300)[1].verdict == "supported"
    assert A.claim_length_not_enough(t, reference_rd=0.05, n_boot=300)[1].verdict == "contradicted"
    # explicit level order reversed -> the "long" one is now wiki_len100
    rev = A.claim_length_not_enough(grows, levels=["wiki_len1000", "wiki_len100"], n_boot=300)
    assert rev[0].verdict == "supported"
    assert A.claim_length_not_enough(t, levels=["wiki_len100"])[0].verdict == "invalid"


def two_model_table(
    instr_fast: Sequence[float],
    base_fast: Sequence[float],
    instr_gap: float = 0.4,
    base_gap: float = 0.4,
) -> pd.DataFrame:
    slow = [2.0, 2.2, 2.0, 2.2]
    spec = {
        ("Qwen2-1.5B", "none", True): base_fast,
        ("Qwen2-1.5B", "detailed", True): slow,
        ("Qwen2-1.5B", "detailed", False): [v * (1 + base_gap) for v in slow],
        ("Qwen2-1.5B-Instruct", "none", True): instr_fast,
        ("Qwen2-1.5B-Instruct", "detailed", True): slow,
        ("Qwen2-1.5B-Instruct", "detailed", False): [v * (1 + instr_gap) for v in slow],
    }
    return curves_table(spec, keys=("model", "cot", "correct"), n=10)


def test_claim_base_vs_instruct_verdicts():
    mild = [8.0, 6.0, 7.0, 6.0]
    wild = [30.0, 10.0, 20.0, 8.0]
    fs = A.claim_base_vs_instruct(two_model_table(instr_fast=wild, base_fast=mild), n_boot=300)
    assert [f.verdict for f in fs] == ["supported", "supported"]  # level and MAD
    rev = A.claim_base_vs_instruct(two_model_table(instr_fast=mild, base_fast=wild), n_boot=300)
    assert [f.verdict for f in rev] == ["contradicted", "contradicted"]
    # larger level but flatter: the level row supported, the MAD row contradicted
    flat_big = [40.0, 39.5, 40.0, 39.5]  # zig-zag in step with `mild`: MAD 0.5 vs 1.33
    t3 = two_model_table(instr_fast=flat_big, base_fast=mild)
    assert [f.verdict for f in A.claim_base_vs_instruct(t3, n_boot=300)] == [
        "supported",
        "contradicted",
    ]
    assert len(A.claim_base_vs_instruct(t3, criterion="level")) == 1
    assert A.claim_base_vs_instruct(realistic_table())[0].verdict == "invalid"  # no model column


def test_claim_instruct_not_better_at_correctness():
    mild = [8.0, 6.0, 7.0, 6.0]
    t = two_model_table(mild, mild, instr_gap=0.42, base_gap=0.4)
    f = A.claim_instruct_not_better_at_correctness(t, n_boot=300)[0]
    assert (
        f.estimate == pytest.approx(0.42 / 0.4) and f.verdict == "supported"
    )  # equivalence, < 1.5
    # identical statistics for both models: a vacuous comparison
    same = A.claim_instruct_not_better_at_correctness(two_model_table(mild, mild), n_boot=300)[0]
    assert same.verdict == "invalid" and "identical" in same.verdict_text
    t2 = two_model_table(mild, mild, instr_gap=0.8, base_gap=0.2)
    assert A.claim_instruct_not_better_at_correctness(t2, n_boot=300)[0].verdict == "contradicted"


def test_claims_feed_findings_table():
    df = realistic_table()
    fs = A.decide(
        A.claim_flatter_with_cot(df, segments=False)
        + A.claim_correct_vs_irrelevant(df)
        + A.claim_base_vs_instruct(df)
    )
    t = A.findings_table(fs)
    assert t.verdict.tolist()[:2] == ["supported", "supported"]
    # RD at none is near zero per question: its Bonferroni interval is wide, and the row says
    # why it is not decided although the permutation test rejects (issue 27 rule 4)
    rd = fs[2]
    assert rd.verdict == "supported" or "CI includes 1" in rd.verdict_text
    assert t.verdict.tolist()[-1] == "invalid"
    assert A.to_latex(t[["claim", "estimate", "verdict"]]).count("\\\\") >= 4


def test_layer_all_nan_in_group_is_dropped_not_the_examples():
    # e.g. cos_next_layer is NaN at the last layer for every example
    t = curves_table({("none", True): [1.0, 2.0, 3.0]}, n=3)
    t["cos_next_layer"] = np.where(t["layer"] == 2, np.nan, 0.5)
    assert "cos_next_layer" in A.available_metrics(t)
    c = A.layer_curves(t, "cos_next_layer", by="cot", modules=["q"], n_boot=10)
    assert c["layer"].tolist() == [0, 1] and c["n"].tolist() == [3, 3]
    assert c["mean"].tolist() == pytest.approx([0.5, 0.5])
