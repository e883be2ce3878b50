"""``lgkit score`` on a real-world file: a record that cannot be scored gets a row with NaN
scores and its reason, the rest is scored; ``--strict`` refuses; malformed JSON stops."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

import lgkit
from lgkit.cli import main
from lgkit.errors import InputError
from lgkit.score.select import choose, parse_rule

MAX_LENGTH = 90
GOOD = [
    {"instruction": "What is 2 + 2?", "output": "It is 4, since 2 + 2 = 4."},
    {"instruction": "Name a color.", "output": "Blue is a color."},
    {"instruction": "What is 3 + 5?", "output": "Three plus five is 8."},
]
EMPTY = {"instruction": "Say hi.", "output": "  "}
LONG = {"instruction": "word " * 150, "output": "yes"}  # the response is cut away


def _write(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def _cli(capsys, *args: str) -> tuple[int, list[str]]:
    code = main(["score", *args, "--model", "tiny-random-llama", "--no-progress",
                 "--max-length", str(MAX_LENGTH)])  # fmt: skip
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    d = tmp_path_factory.mktemp("score_failures")
    src = _write(d / "mixed.jsonl", [GOOD[0], EMPTY, GOOD[1], LONG, GOOD[2]])
    df = lgkit.score(src, "tiny-random-llama", d / "out", max_length=MAX_LENGTH, progress=False)
    return d, src, df


def test_unscorable_records_are_rows_with_nan_and_their_reason(mixed, tmp_path):
    d, _, df = mixed
    assert df["index"].tolist() == [0, 1, 2, 3, 4]
    assert df["failure"].isna().tolist() == [True, False, True, False, True]
    assert df["failure"].iloc[1] == "empty response"
    assert f"max_length={MAX_LENGTH}" in df["failure"].iloc[3]
    bad = df.iloc[[1, 3]]
    assert bad[["nuclear_norm", "effective_rank", "loss", "n_response_tokens"]].isna().all().all()
    # the rest is scored exactly as without the bad records
    alone = lgkit.score(_write(tmp_path / "good.jsonl", GOOD), "tiny-random-llama",
                        tmp_path / "good", max_length=MAX_LENGTH, progress=False)  # fmt: skip
    ok = df[df["failure"].isna()].reset_index(drop=True)
    for col in ("sample_id", "nuclear_norm", "effective_rank", "loss"):
        assert ok[col].tolist() == alone[col].tolist(), col
    saved = pd.read_parquet(d / "out" / "scores.parquet")
    assert saved["failure"].notna().sum() == 2 and math.isnan(saved["loss"].iloc[1])


def test_the_summary_counts_them_and_select_never_picks_them(mixed, tmp_path, capsys):
    _, src, _ = mixed
    sel = tmp_path / "sel.jsonl"
    code, err = _cli(capsys, "--data", str(src), "--out", str(tmp_path / "s"),
                     "--select", "bottom:100%", "--by", "loss", "--select-out", str(sel))  # fmt: skip
    assert code == 0
    warn = [x for x in err if x.startswith("lgkit: warning:")]
    assert len(warn) == 1 and "2 of 5 record(s) not scored" in warn[0]
    assert "empty response: 1" in warn[0] and "max_length: 1" in warn[0]
    assert sel.read_text().splitlines() == [json.dumps(GOOD[i]) for i in range(3)]
    rec = json.loads(Path(str(sel) + ".selection.json").read_text())
    assert rec["n_scored"] == 3 and rec["n_failed"] == 2 and rec["chosen_indices"] == [0, 2, 4]


def test_choose_skips_failed_rows_even_with_a_value():
    s = pd.DataFrame({"index": [0, 1, 2], "n_response_tokens": [5.0, 9.0, 1.0],
                      "failure": [None, "x", None]})  # fmt: skip
    assert choose(s, parse_rule("top:2"), "n_response_tokens") == [0, 2]


def test_strict_refuses_an_empty_response_before_anything(tmp_path, capsys):
    src = _write(tmp_path / "d.jsonl", [GOOD[0], EMPTY])
    code, err = _cli(capsys, "--data", str(src), "--out", str(tmp_path / "s"), "--strict")
    assert code == 2 and len(err) == 1
    assert err[0] == f"lgkit: error: {src}: record 2: field output: empty response"
    assert not (tmp_path / "s").exists()


def test_strict_refuses_a_response_cut_away_and_writes_no_scores(tmp_path, capsys):
    src = _write(tmp_path / "d.jsonl", [GOOD[0], LONG])
    code, err = _cli(capsys, "--data", str(src), "--out", str(tmp_path / "s"), "--strict")
    assert code == 2 and len(err) == 1, err
    assert f"{src}: record 2: field output: cannot be scored" in err[0]
    assert "1 of 2 records" in err[0] and not (tmp_path / "s" / "scores.parquet").exists()
    with pytest.raises(InputError, match="record 2"):
        lgkit.score(src, "tiny-random-llama", tmp_path / "a", max_length=MAX_LENGTH,
                    progress=False, strict=True)  # fmt: skip


@pytest.mark.parametrize("strict", [False, True])
def test_malformed_json_still_stops_with_one_line(tmp_path, capsys, strict):
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps(GOOD[0]) + "\n" + '{"instruction": "q", "output": \n')
    code, err = _cli(capsys, "--data", str(src), "--out", str(tmp_path / "s"),
                     *(["--strict"] if strict else []))  # fmt: skip
    assert code == 2 and len(err) == 1 and f"{src}: line 2: malformed JSON" in err[0], err
    assert not (tmp_path / "s").exists()


def test_a_file_of_only_empty_responses_gives_rows_without_running_the_engine(tmp_path):
    src = _write(tmp_path / "d.jsonl", [EMPTY, EMPTY])
    df = lgkit.score(src, "tiny-random-llama", tmp_path / "s", progress=False)
    assert df["failure"].tolist() == ["empty response"] * 2
    assert df["effective_rank"].isna().all() and not (tmp_path / "s" / "stats").exists()
