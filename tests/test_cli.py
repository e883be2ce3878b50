"""Bad input: one clear message naming file, record and field; exit code 2; nothing written is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lgkit
from lgkit.cli import main
from lgkit.formats.records import Example, write_examples

pytestmark = pytest.mark.integration


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err


@pytest.fixture
def good_run(tmp_path):
    data = write_examples(
        tmp_path / "good.jsonl", [Example("q1", "", "a1"), Example("q2", "", "a2")]
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "grads",
                "--model",
                "tiny-random-llama",
                "--data",
                str(data),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    return out, len(lgkit.load_stats(out))


def _bad(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


CASES = {
    "malformed_jsonl": (
        "bad.jsonl",
        '{"instruction": "q", "output": "a"}\n{"instruction": "q2", "output": \n',
        ["bad.jsonl", "line 2", "malformed JSON"],
    ),
    "missing_instruction": (
        "bad.jsonl",
        '{"instruction": "q", "output": "a"}\n{"output": "a"}\n',
        ["bad.jsonl", "record 2", "field instruction", "missing"],
    ),
    "non_string_output": (
        "bad.json",
        json.dumps([{"instruction": "q", "input": "", "output": 5}]),
        ["bad.json", "record 0", "field output", "must be a string"],
    ),
    "empty_response": (
        "bad.json",
        json.dumps([{"instruction": "q", "output": "a"}, {"instruction": "q", "output": "  "}]),
        ["bad.json", "record 1", "field output", "empty response"],
    ),
    "not_a_list": (
        "bad.json",
        json.dumps({"instruction": "q"}),
        ["bad.json", "expected a JSON list"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_file(tmp_path, capsys, good_run, case):
    out, n_rows = good_run
    name, text, needles = CASES[case]
    bad = _bad(tmp_path, name, text)
    code, err = _run(
        capsys,
        "grads",
        "--model",
        "tiny-random-llama",
        "--data",
        str(bad),
        "--out",
        str(out),
        "--no-progress",
    )
    assert code == 2
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert len(lgkit.load_stats(out)) == n_rows  # nothing already written is lost


def test_missing_data_file(tmp_path, capsys, good_run):
    out, n_rows = good_run
    code, err = _run(
        capsys,
        "grads",
        "--model",
        "tiny-random-llama",
        "--data",
        str(tmp_path / "nope.json"),
        "--out",
        str(out),
    )
    assert code == 2 and "nope.json" in err and "does not exist" in err
    assert len(lgkit.load_stats(out)) == n_rows


def test_unknown_module(tmp_path, capsys, good_run):
    out, n_rows = good_run
    data = write_examples(tmp_path / "d.jsonl", [Example("q", "", "a")])
    code, err = _run(
        capsys,
        "grads",
        "--model",
        "tiny-random-llama",
        "--data",
        str(data),
        "--out",
        str(out),
        "--modules",
        "q,attn_q",
    )
    assert code == 2 and "field modules" in err and "'attn_q'" in err
    assert len(lgkit.load_stats(out)) == n_rows


def test_instruct_without_chat_template(tmp_path, capsys):
    lm = lgkit.load_model("tiny-random-llama")
    folder = tmp_path / "no_template"
    lm.tokenizer.chat_template = None
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    data = write_examples(tmp_path / "d.jsonl", [Example("q", "", "a")])
    code, err = _run(
        capsys,
        "grads",
        "--model",
        str(folder),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "o"),
        "--instruct",
    )
    assert code == 2 and "chat template" in err and "Traceback" not in err


def test_unknown_model(tmp_path, capsys):
    data = write_examples(tmp_path / "d.jsonl", [Example("q", "", "a")])
    code, err = _run(
        capsys,
        "grads",
        "--model",
        str(tmp_path / "no_such_model"),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "no_such_model" in err


def test_help_and_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "lgkit", "grads", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--model",
        "--data",
        "--out",
        "--modules",
        "--max-length",
        "--batch-size",
        "--limit",
        "--compat",
        "--spectrum",
    ):
        assert flag in out


def test_limit_and_export(tmp_path, capsys):
    data = write_examples(tmp_path / "d.jsonl", [Example(f"q{i}", "", f"a{i}") for i in range(5)])
    out = tmp_path / "run"
    assert (
        main(
            [
                "grads",
                "--model",
                "tiny-random-qwen2",
                "--data",
                str(data),
                "--out",
                str(out),
                "--limit",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    assert lgkit.load_stats(out)["sample_id"].nunique() == 3
    assert main(["export", str(out), str(tmp_path / "a.jsonl"), "--data", str(data)]) == 0
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 3
