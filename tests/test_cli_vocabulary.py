"""One command-line vocabulary: every subcommand spells and means its shared options alike."""

from __future__ import annotations

import argparse

import pytest

from lgkit.cli import build_parser, main
from lgkit.engine.options import SHARED, SHARED_HELP

#: the shared options each subcommand has (the concepts it has)
EXPECTED = {
    "grads": set(SHARED),
    "score": set(SHARED),
    "train": set(SHARED) - {"--layers"},  # training probes every layer
    "export": {"--data", "--out"},
    "run": {"--out", "--no-progress"},
}
#: what each shared option is: (dest, argparse action class, type)
KIND = {
    "--data": ("data", argparse._StoreAction, None),
    "--out": ("out", argparse._StoreAction, None),
    "--model": ("model", argparse._StoreAction, None),
    "--max-length": ("max_length", argparse._StoreAction, int),
    "--modules": ("modules", argparse._StoreAction, None),
    "--layers": ("layers", argparse._StoreAction, None),
    "--instruct": ("instruct", argparse._StoreTrueAction, None),
    "--base": ("instruct", argparse._StoreFalseAction, None),
    "--dtype": ("dtype", argparse._StoreAction, None),
    "--device": ("device", argparse._StoreAction, None),
    "--no-progress": ("no_progress", argparse._StoreTrueAction, None),
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in p._actions for s in a.option_strings}


def test_every_subcommand_is_checked():
    assert set(_subparsers()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_options_have_one_spelling_and_meaning(name):
    opts = _options(_subparsers()[name])
    assert {f for f in SHARED if f in opts} == EXPECTED[name]
    for flag in EXPECTED[name]:
        act = opts[flag]
        dest, cls, typ = KIND[flag]
        assert (act.dest, type(act), act.type) == (dest, cls, typ), (name, flag)
        assert act.help.startswith(SHARED_HELP[flag]), (name, flag, act.help)
    if "--dtype" in opts:
        assert opts["--dtype"].default == "float32"
    if "--instruct" in opts:
        assert opts["--instruct"].default is None  # tri-state: as the model was loaded


def test_data_by_option_or_positional_alias():
    sub = _subparsers()
    a = sub["score"].parse_args(["--data", "d.jsonl", "--model", "m", "--out", "o"])
    b = sub["score"].parse_args(["d.jsonl", "--model", "m", "--out", "o"])
    from lgkit.engine.options import take_positional

    for x in (a, b):
        take_positional(x, "data")
    assert a.data == b.data == "d.jsonl"
    for args in (["--data", "d.jsonl", "--out", "o"], ["--out", "o", "--data", "d.jsonl"]):
        assert sub["grads"].parse_args(["--model", "m", *args]).data == "d.jsonl"
        assert sub["train"].parse_args(["--model", "m", *args]).data == "d.jsonl"


@pytest.mark.parametrize(
    "args, field",
    [
        (["score", "a.jsonl", "--data", "b.jsonl", "--model", "m", "--out", "o"], "--data"),
        (["score", "--model", "m", "--out", "o"], "--data"),
        (["export", "--out", "x.jsonl"], "--run"),
        (["export", "r", "y.jsonl", "--out", "x.jsonl"], "--out"),
    ],
)
def test_missing_or_doubled_data_is_one_line_exit_2(args, field, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"field {field}" in err[0], err


def test_a_missing_cuda_device_is_refused_alike(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine")
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "q", "output": "a"}\n')
    lines = []
    for cmd in ("grads", "score", "train"):
        args = [cmd, "--data", str(data), "--model", "tiny-random-llama",
                "--out", str(tmp_path / cmd), "--device", "cuda"]  # fmt: skip
        assert main(args) == 2
        lines.append(capsys.readouterr().err.strip())
    assert all("field --device: CUDA is not available" in x for x in lines), lines
    assert not any((tmp_path / c).exists() for c in ("grads", "score", "train"))
