"""Loss normalisation in the analysis (issue 12, item 3) and 06's helpers, with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lgkit import analysis as A
from lgkit import series as S
from lgkit.analysis import inference as I
from lgkit.errors import InputError


def _table() -> pd.DataFrame:
    """Two examples (T = 4 and 9), one module, two layers; values 1,3 and 2,2."""
    return pd.DataFrame(
        {
            "sample_id": ["a", "a", "b", "b"],
            "cot": "none",
            "correct": True,
            "module": "q",
            "layer": [0, 1, 0, 1],
            "nuclear_norm": [1.0, 3.0, 2.0, 2.0],
            "sigma1_ratio": [0.5, 0.5, 0.25, 0.25],
            "n_response_tokens": [4, 4, 9, 9],
        }
    )


def test_metric_values_norms_by_hand():
    t = _table()
    assert A.metric_values(t, "nuclear_norm").tolist() == [1.0, 3.0, 2.0, 2.0]
    assert A.metric_values(t, "nuclear_norm", "sum").tolist() == [4.0, 12.0, 18.0, 18.0]
    assert A.metric_values(t, "S_sum", "sqrt").tolist() == [2.0, 6.0, 6.0, 6.0]
    # scale-free metrics read the same under every normalisation
    assert A.metric_values(t, "sigma1_ratio", "sum").tolist() == [0.5, 0.5, 0.25, 0.25]
    with pytest.raises(InputError, match="unknown norm"):
        A.metric_values(t, "nuclear_norm", "median")


def test_loss_tokens_prefer_n_loss_tokens():
    t = _table().assign(n_loss_tokens=[1.0, 1.0, np.nan, np.nan])
    assert A.loss_tokens(t).tolist() == [1.0, 1.0, 9.0, 9.0]
    assert A.metric_values(t, "nuclear_norm", "sum").tolist() == [1.0, 3.0, 18.0, 18.0]


def test_curves_mad_rd_per_example_under_norms():
    t = _table()
    c = A.layer_curves(t, by="cot", n_boot=0, norm="sum")
    assert c["mean"].tolist() == [11.0, 15.0]  # (4 + 18) / 2, (12 + 18) / 2
    c = A.layer_curves(t, by="cot", n_boot=0, norm="sqrt")
    assert c["mean"].tolist() == [4.0, 6.0]
    assert A.mad_table(t, by="cot", norm="sum")["all"].tolist() == [4.0]
    # MAD / level: 4 / 13 under sum; 1 / 2 under mean (curve 1.5, 2.5)
    assert A.mad_table(t, by="cot", norm="sum", relative=True)["all"].iloc[0] == pytest.approx(
        4 / 13
    )
    assert A.mad_table(t, by="cot", relative=True)["all"].iloc[0] == pytest.approx(0.5)
    e = A.per_example(t, norm="sqrt").set_index("sample_id")["value"]
    assert e.to_dict() == {"a": 4.0, "b": 6.0}
    two = pd.concat([t, t.assign(correct=False, nuclear_norm=t["nuclear_norm"] * 2)])
    rd_mean = A.relative_difference_table(two, by="cot")["rd_mean"].iloc[0]
    rd_sum = A.relative_difference_table(two, by="cot", norm="sum")["rd_mean"].iloc[0]
    assert rd_mean == pytest.approx(1.0) and rd_sum == pytest.approx(1.0)


def test_side_arrays_norm_and_relative_mad():
    t = _table()
    s = I.side_arrays(t, "nuclear_norm", [{"cot": "none"}], [{"cot": "none"}], norm="sum")
    assert s.a[:, 0, 0, :].tolist() == [[4.0, 12.0], [18.0, 18.0]]
    assert float(I.relative_mad(np.array([[2.0, 4.0, 6.0]]))) == pytest.approx(0.5)


def _dilution_table(n_q: int = 12, seed: int = 0) -> pd.DataFrame:
    """Detailed = none / sqrt(T ratio) per question (T 1 vs 100), with question noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_q):
        base = rng.uniform(5, 15)
        for cot, t, scale in (("none", 1, 1.0), ("detailed", 100, 0.1)):
            for layer, w in enumerate((3.0, 2.0, 1.5, 1.0)):
                for m in ("q", "k"):
                    rows.append(dict(sample_id=f"ds-{q:03d}-{cot}", dataset="ds", cot=cot,
                                     correct=True, module=m, layer=layer, n_response_tokens=t,
                                     nuclear_norm=base * w * scale))  # fmt: skip
    return pd.DataFrame(rows)


def test_claim_one_under_each_norm():
    """Pure dilution: smaller under the mean loss, equal under sqrt, larger under sum."""
    df = _dilution_table()
    kw = {"modules": ["q", "k"], "segments": False, "n_boot": 200}
    mean = A.claim_flatter_with_cot(df, relative_mad=True, **kw)
    sqrt = A.claim_flatter_with_cot(df, norm="sqrt", **kw)
    total = A.claim_flatter_with_cot(df, norm="sum", **kw)
    assert mean[0].estimate == pytest.approx(0.1) and mean[0].verdict == "supported"
    assert mean[2].statistic == "MAD ÷ level ratio detailed/none"
    assert mean[2].estimate == pytest.approx(1.0)  # same shape: flatter is only smaller
    assert sqrt[0].estimate == pytest.approx(1.0)
    assert sqrt[0].statistic.endswith("sqrt-normalised")
    assert total[0].estimate == pytest.approx(10.0) and total[0].verdict == "contradicted"


def test_norm_summary_and_tables_by_hand():
    df = _dilution_table(n_q=3)
    s = S.norm_summary(df, modules=["q", "k"])
    lev_none = s["mean"]["none"]["level"]
    assert s["mean"]["detailed"]["level"] == pytest.approx(0.1 * lev_none)
    assert s["sqrt"]["detailed"]["level"] == pytest.approx(lev_none)
    assert s["sum"]["detailed"]["level"] == pytest.approx(10 * lev_none)
    assert s["sum"]["detailed"]["mad_rel"] == pytest.approx(s["mean"]["none"]["mad_rel"])
    ans = df.assign(n_loss_tokens=2)
    t = S.loss_on_table(df, ans, modules=["q", "k"])
    assert t[["loss_on", "cot"]].values.tolist() == [
        ["answer", "none"], ["answer", "detailed"], ["response", "none"], ["response", "detailed"],
    ]  # fmt: skip
    assert t["median_loss_tokens"].tolist() == [2.0, 2.0, 1.0, 100.0]


def test_length_claims_tags_and_twin_alignment():
    df = A.synthetic_stats(n_samples=6, n_layers=4, datasets=("gsm8k",))
    fs = S.length_claims(df, n_boot=50)
    tags = [f.claim.split("]")[0].lstrip("[") for f in fs]
    assert tags == ["mean"] * 4 + ["sum"] * 3 + ["sqrt"] * 3  # no coherence column here
    fs = S.length_claims(df.assign(coherence=df["sigma1_ratio"] / 2), n_boot=50)
    assert fs[-1].claim.startswith("[coherence]") and len(fs) == 11
    assert all(not math.isnan(f.estimate) for f in fs)
    out = S.finalize(fs, df, ["tiny-random-llama"], twin=[None] * len(fs))
    assert [f.control for f in out] == [""] * len(fs)


def test_answer_data_attaches_no_cot_answers(tmp_path):
    from lgkit.data.index import write_data_file, write_data_index
    from lgkit.formats.records import Example, read_examples

    def ex(cot, correct, out):
        return Example("What is 2+5?", "", out, id=f"t-0-{cot}", dataset="toy", cot=cot,
                       correct=correct, meta={"family": "math"})  # fmt: skip

    src = tmp_path / "data"
    files = [
        write_data_file(src, [ex("none", True, "7")]),
        write_data_file(src, [ex("detailed", True, "2 plus 5 makes 7 apples.")]),
        write_data_file(src, [ex("detailed", False, "It is 3.")]),
    ]
    for f in files:
        f.family = "math"
    write_data_index(src, files)
    folder = S.answer_data(src, "math", tmp_path / "ans")
    got = {p.stem: read_examples(p)[0].meta.get("answer") for p in folder.glob("*.jsonl")}
    assert got == {"toy__none__correct": "7", "toy__detailed__correct": "7"}
