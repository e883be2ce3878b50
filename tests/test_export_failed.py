"""``lgkit export --include-failed``: a failed example is a line of the authors' format like
any other (same keys, NaN values, the reason beside), in its place in the file's order."""

from __future__ import annotations

import json
import math
import re

import pytest

from lgkit.cli import main
from lgkit.engine.config import GradConfig
from lgkit.engine.run import compute_stats
from lgkit.formats.authors import import_layer_gradient
from lgkit.formats.records import Example, write_examples
from lgkit.schema import AUTHOR_FILE_STATS

MAX_LENGTH = 40
LONG = "word " * 120  # a prompt far longer than MAX_LENGTH: the response is cut away


def _examples() -> list[Example]:
    return [
        Example("What is 1 plus 1?", "", "It is 2."),
        Example(LONG, "", "It is cut away."),
        Example("What is 2 plus 2?", "", "It is 4."),
        Example("What is 3 plus 3?", "", "It is 6."),
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("export_failed")
    data = write_examples(d / "data.jsonl", _examples())
    cfg = GradConfig(max_length=MAX_LENGTH, compat="layer_gradient", instruct=False)
    compute_stats("tiny-random-llama", data, d / "run", cfg, progress=False)
    return d


def _authors_reader(lines: list[str]) -> list[dict]:
    """What the authors' analysis code does with each line: the loss and, for every
    parameter, the statistics under their keys (a missing key raises KeyError)."""
    out = []
    for line in lines:
        rec = json.loads(line)
        params = [k for k, v in rec.items() if isinstance(v, dict)]
        out.append(
            {"loss": rec["loss"], **{p: [rec[p][k] for k in AUTHOR_FILE_STATS] for p in params}}
        )
    return out


def test_a_failed_example_has_every_key_in_its_place(run, capsys):
    out = run / "with_failed.jsonl"
    code = main(["export", "--run", str(run / "run"), "--out", str(out),
                 "--data", str(run / "data.jsonl"), "--include-failed"])  # fmt: skip
    assert code == 0
    lines = out.read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert len(recs) == 4
    assert [r.get("failed", False) for r in recs] == [False, True, False, False]
    ok, bad = recs[0], recs[1]
    assert set(bad) == set(ok) | {"failed", "reason", "kind"}
    assert bad["instruction"].startswith("word") and bad["kind"] == "data"
    assert math.isnan(bad["loss"])
    params = [k for k, v in ok.items() if isinstance(v, dict)]
    assert params and all(set(bad[p]) == set(AUTHOR_FILE_STATS) for p in params)
    assert all(math.isnan(v) for p in params for v in bad[p].values())
    read = _authors_reader(lines)  # no KeyError
    assert len(read) == 4 and math.isnan(read[1]["loss"]) and not math.isnan(read[2]["loss"])
    assert [r["instruction"] for r in recs] == [ex.prompt for ex in _examples()]


def test_the_reason_gives_the_prompt_length_before_truncation(run):
    out = run / "reason.jsonl"
    assert main(["export", str(run / "run"), str(out), "--include-failed"]) == 0
    bad = [json.loads(x) for x in out.read_text().splitlines() if '"failed": true' in x][0]
    m = re.search(r"prompt has (\d+) tokens", bad["reason"])
    assert m and int(m.group(1)) > MAX_LENGTH, bad["reason"]
    assert f"max_length={MAX_LENGTH}" in bad["reason"]


def test_lgkits_own_reader_leaves_failed_lines_out_and_says_so(run, caplog):
    out = run / "reimport.jsonl"
    assert main(["export", str(run / "run"), str(out), "--include-failed"]) == 0
    df = import_layer_gradient(out)
    assert df["sample_id"].nunique() == 3 and df["loss"].notna().all()
    assert len(df.attrs["failed"]) == 1 and "max_length" in df.attrs["failed"][0]["reason"]
    assert "1 failed example(s)" in caplog.text
