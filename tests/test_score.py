"""lgkit.score: exactness against the naive method, selection in each input format, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lgkit
from lgkit.cli import main
from lgkit.engine.arch import find_targets
from lgkit.engine.reference import naive_stats, naive_token_stats
from lgkit.errors import InputError
from lgkit.formats.prompts import encode_example
from lgkit.formats.records import example_from_dict
from lgkit.models.load import load_model
from lgkit.score import choose, parse_layers, parse_rule, read_data, with_scores

ARCHS = [
    "tiny-random-llama",
    *(
        pytest.param(n, marks=pytest.mark.slow)
        for n in ("tiny-random-llama-gqa", "tiny-random-qwen2", "tiny-random-gemma2")
    ),
]


def records(n: int = 6) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "instruction": f" What is {i} + {i}? ",
            "input": "show work" if i % 2 else "",
            "output": f" The answer is {2 * i}." + " Because" * (i % 4),
            "extra": {"k": i},
            "cot": "none",
        }
        for i in range(n)
    ]


def write(path: Path, recs: list[dict], kind: str) -> Path:
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    elif kind == "json":
        path.write_text(json.dumps(recs, indent=1))
    else:
        import datasets

        datasets.Dataset.from_list(recs).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def llama():
    return load_model("tiny-random-llama")


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.parametrize("name", ARCHS)
def test_scores_equal_naive_per_example_statistics(tmp_path, name):
    lm = load_model(name)
    recs = records(2)
    src = write(tmp_path / "d.jsonl", recs, "jsonl")
    df = lgkit.score(src, lm, tmp_path / "out", layers="0:2", progress=False)
    targets = find_targets(lm.model, ("q", "k", "v", "o"))
    for i, rec in enumerate(recs):
        ex = example_from_dict(rec)
        rows, loss = naive_stats(lm.model, lm.tokenizer, ex, instruct=lm.instruct)
        enc = encode_example(lm.tokenizer, ex, instruct=lm.instruct)
        trows, _ = naive_token_stats(lm.model, enc, targets)
        got = df.iloc[i]
        for stat in ("nuclear_norm", "effective_rank", "sigma1_ratio"):
            assert _rel(got[stat], float(np.mean([r[stat] for r in rows]))) <= 1e-4, stat
        assert _rel(got["coherence"], float(np.mean([r["coherence"] for r in trows]))) <= 1e-4
        assert _rel(got["loss"], loss) <= 1e-4
        assert got["n_response_tokens"] == enc.n_response_tokens


def test_layer_and_module_choice_is_a_mean_over_the_chosen_cells(tmp_path, llama):
    src = write(tmp_path / "d.jsonl", records(2), "jsonl")
    df = lgkit.score(src, llama, tmp_path / "o", layers="last", modules="q,o", progress=False)
    table = lgkit.load_stats(tmp_path / "o" / "stats")
    cells = table[(table.layer == 1) & table.module.isin(["q", "o"])]
    want = cells.groupby("sample_id", sort=False)["nuclear_norm"].mean()
    assert np.allclose(df.set_index("sample_id").loc[want.index, "nuclear_norm"], want)
    assert json.loads((tmp_path / "o" / "score.json").read_text())["layer_indices"] == [1]


def test_parse_layers_and_rules():
    assert parse_layers("-1:", 3) == [2]
    for bad in ("5", "2:1", "x"):
        with pytest.raises(InputError):
            parse_layers(bad, 3)
    for bad in ("top:0", "top:0%", "top:101%", "middle:3", "top:1.5", "top"):
        with pytest.raises(InputError):
            parse_rule(bad)


def test_choose_top_bottom_random_and_length_matched():
    n = 40
    lengths = np.repeat([10, 20, 30, 40], 10)
    s = pd.DataFrame({"index": range(n), "n_response_tokens": lengths,
                      "effective_rank": lengths + np.arange(n) % 10 / 100})  # fmt: skip
    top = choose(s, parse_rule("top:10"), "effective_rank")
    assert top == list(range(30, 40))  # the longest, as the score follows length
    matched = choose(s, parse_rule("top:25%"), "effective_rank", match_length=True)
    # four length strata of 10; 10 picks split 3, 3, 2, 2 (largest remainders, in order)
    assert sorted(lengths[matched]) == [10] * 3 + [20] * 3 + [30] * 2 + [40] * 2
    assert all(s.effective_rank[i] >= s.effective_rank[lengths == lengths[i]].median()
               for i in matched)  # fmt: skip
    bottom = choose(s, parse_rule("bottom:2"), "effective_rank")
    assert bottom == [0, 1]
    r1 = choose(s, parse_rule("random:5"), "effective_rank", seed=1)
    assert r1 == choose(s, parse_rule("random:5"), "effective_rank", seed=1) and len(r1) == 5
    with pytest.raises(InputError):
        choose(s, parse_rule("top:41"), "effective_rank")
    with pytest.raises(InputError):
        choose(s, parse_rule("top:1%"), "effective_rank")


@pytest.mark.parametrize("kind", ["jsonl", "json", "dataset"])
def test_cli_selection_in_each_format(tmp_path, kind):
    recs = records(6)
    name = {"jsonl": "d.jsonl", "json": "d.json", "dataset": "d_ds"}[kind]
    src = write(tmp_path / name, recs, kind)
    out = tmp_path / ("sel" + ("" if kind == "dataset" else Path(name).suffix))
    rc = main(["score", str(src), "--model", "tiny-random-llama", "--out", str(tmp_path / "s"),
               "--no-progress", "--select", "bottom:50%", "--by", "loss",
               "--select-out", str(out)])  # fmt: skip
    assert rc == 0
    sel = json.loads(Path(str(out) + ".selection.json").read_text())
    scores = pd.read_parquet(tmp_path / "s" / "scores.parquet")
    want = scores.nsmallest(3, "loss")["index"].sort_values().tolist()
    assert sel["chosen_indices"] == want and sel["rule"] == "bottom:50%"
    got = read_data(out)
    assert got.kind == kind
    assert got.records == [recs[i] for i in want]  # every field and id preserved
    if kind == "jsonl":
        lines = src.read_text().splitlines()
        assert out.read_text() == "".join(lines[i] + "\n" for i in want)


def test_cli_bad_input_exits_2_and_overwrites_nothing(tmp_path, capsys):
    src = write(tmp_path / "d.jsonl", records(4), "jsonl")
    existing = tmp_path / "sel.jsonl"
    existing.write_text("keep me\n")
    base = ["score", str(src), "--model", "tiny-random-llama", "--out", str(tmp_path / "s"),
            "--no-progress"]  # fmt: skip
    cases = [
        ["--select", "top:2", "--by", "nope", "--select-out", str(tmp_path / "a.jsonl")],
        ["--select", "top:0", "--select-out", str(tmp_path / "a.jsonl")],
        ["--select", "top:150%", "--select-out", str(tmp_path / "a.jsonl")],
        ["--select", "top:10%", "--select-out", str(tmp_path / "a.jsonl")],  # empty
        ["--select", "top:9", "--select-out", str(tmp_path / "a.jsonl")],  # more than there are
        ["--select", "top:2", "--select-out", str(existing)],
        ["--select", "top:2"],
    ]
    for extra in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("lgkit: error:"), err
    assert existing.read_text() == "keep me\n"
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "s").exists()


def test_resume_and_with_scores(tmp_path, llama):
    import datasets

    recs = records(3)
    src = write(tmp_path / "d.jsonl", recs, "jsonl")
    a = lgkit.score(src, llama, tmp_path / "o", progress=False)
    b = lgkit.score(src, llama, tmp_path / "o", progress=False)  # resumed: nothing recomputed
    pd.testing.assert_frame_equal(a, b)
    ds = with_scores(datasets.Dataset.from_list(recs), a)
    assert ds[1]["effective_rank"] == pytest.approx(a.effective_rank[1])
    assert ds[0]["id"] == "r0" and "n_response_tokens" in ds.column_names
    with pytest.raises(InputError):
        with_scores(ds, a)  # the columns exist already


def test_failed_examples_are_kept_with_their_reason(tmp_path, llama):
    recs = records(2)
    recs[1]["instruction"] = "word " * 40
    src = write(tmp_path / "d.jsonl", recs, "jsonl")
    df = lgkit.score(src, llama, tmp_path / "o", max_length=120, progress=False)
    assert df.failure.isna().tolist() == [True, False]
    assert "max_length=120" in df.failure.iloc[1]
    assert np.isnan(df.effective_rank.iloc[1])


def test_engine_layers_option_computes_only_those_layers(tmp_path, llama):
    from lgkit.engine.config import GradConfig
    from lgkit.engine.run import compute_stats

    src = write(tmp_path / "d.jsonl", records(2), "jsonl")
    compute_stats(llama, src, tmp_path / "all", GradConfig(), progress=False)
    compute_stats(llama, src, tmp_path / "last", GradConfig(layers="last"), progress=False)
    full, last = lgkit.load_stats(tmp_path / "all"), lgkit.load_stats(tmp_path / "last")
    assert set(last.layer) == {1}
    want = full[full.layer == 1].reset_index(drop=True)
    assert np.allclose(last.nuclear_norm, want.nuclear_norm, rtol=1e-6)
    with pytest.raises(InputError):
        GradConfig(layers="x:y")


@pytest.mark.slow
def test_score_sharded_under_torchrun_equals_one_process(tmp_path):
    import os
    import subprocess
    import sys

    src = write(tmp_path / "d.jsonl", records(6), "jsonl")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["OMP_NUM_THREADS"] = "1"
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    args = [str(src), "--model", "tiny-random-qwen2", "--no-progress", "--select", "top:2",
            "--by", "effective_rank"]  # fmt: skip
    subprocess.run([sys.executable, "-m", "lgkit", "score", *args, "--out", str(tmp_path / "one"),
                    "--select-out", str(tmp_path / "one.jsonl")], check=True, env=env,
                   capture_output=True)  # fmt: skip
    subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "lgkit", "score",
                    *args, "--out", str(tmp_path / "two"), "--select-out",
                    str(tmp_path / "two.jsonl")], check=True, env=env, capture_output=True)  # fmt: skip
    one = pd.read_parquet(tmp_path / "one" / "scores.parquet")
    two = pd.read_parquet(tmp_path / "two" / "scores.parquet")
    pd.testing.assert_frame_equal(one, two, rtol=1e-5)
    assert (tmp_path / "one.jsonl").read_text() == (tmp_path / "two.jsonl").read_text()
