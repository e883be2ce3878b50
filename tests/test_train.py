"""lgkit.train: training untouched by the callback, exact probe and update spectra, the CLI."""

from __future__ import annotations

import pytest
import torch

from lgkit.cli import main
from lgkit.engine.arch import find_targets
from lgkit.engine.reference import naive_stats_encoded
from lgkit.formats.prompts import encode_example
from lgkit.formats.records import Example, write_examples
from lgkit.models import load_model
from lgkit.train import (
    TrainConfig,
    heldout_summary,
    load_train_loss,
    load_trajectory,
    load_updates,
    train,
)
from lgkit.train.updates import effective_weight, snapshot, update_rows

ARCHS = ["tiny-random-llama", "tiny-random-qwen2", "tiny-random-gemma2", "tiny-random-llama-gqa"]
STATS = ["nuclear_norm", "sigma_max", "sigma1_ratio", "frobenius_norm", "effective_rank"]


def _examples(n: int, start: int = 0) -> list[Example]:
    return [
        Example(
            f"What is {i} plus {2 * i}?",
            "",
            f"{i} plus {2 * i} is {3 * i}. " * (1 + i % 3) + f"The final answer is {3 * i}",
            id=f"q{i}",
            dataset="toy",
            cot="detailed",
            correct=True,
        )  # fmt: skip
        for i in range(start, start + n)
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_data")
    return (
        write_examples(d / "train.jsonl", _examples(12)),
        write_examples(d / "held.jsonl", _examples(4, start=50)),
    )


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.parametrize("arch", ARCHS)
def test_update_spectra_equal_full_svd(arch):
    lm = load_model(arch)
    targets = find_targets(lm.model, ("q", "k", "v", "o"))
    w0 = snapshot(lm.model, targets)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in lm.model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 1e-3)
    rows = update_rows(lm.model, targets, w0, step=1)
    assert len(rows) == len(targets)
    for t, row in zip(targets, rows, strict=True):
        dw = effective_weight(lm.model, t).double() - w0[t.param_name].double()
        sv = torch.linalg.svd(dw)[1]  # the full SVD, U and V included
        ref = {"nuclear_norm": float(sv.sum()), "sigma_max": float(sv[0]),
               "sigma1_ratio": float(sv[0] / sv.sum()), "frobenius_norm": float(dw.norm())}  # fmt: skip
        p = sv / sv.sum()
        ref["effective_rank"] = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
        for k, v in ref.items():
            assert _rel(row[k], v) <= 1e-4, (arch, t.param_name, k, row[k], v)


def test_dropout_setting_reaches_the_attention():
    from lgkit.train.run import _set_dropout

    lm = load_model("tiny-random-llama")
    _set_dropout(lm.model, 0.5)
    lm.model.train()
    ids = torch.tensor([[1, 5, 7, 9, 11]])
    with torch.no_grad():
        assert not torch.equal(lm.model(ids).logits, lm.model(ids).logits)


def _weights_after(files, callback: bool, tmp_path, dropout: float = 0.1) -> dict:
    lm = load_model("tiny-random-llama")
    cfg = TrainConfig(steps=4, batch_size=2, probe_every=2 if callback else 0, save_every=0,
                      dropout=dropout, progress=False, grad_spectra=callback, lr=1e-3)  # fmt: skip
    data, held = files
    if callback:
        train(lm, data, tmp_path / "with", cfg, heldout=held)
    else:  # the same Trainer without the callback
        from lgkit.train import run as R

        orig = R.SpectraCallback

        class Off(orig):  # type: ignore[misc,valid-type]
            def measure(self, model, step):
                self.measured.append(step)

            def on_train_begin(self, args, state, control, **kw):
                return None

            def on_log(self, args, state, control, **kw):
                return None

        R.SpectraCallback = Off
        try:
            train(lm, data, tmp_path / "without", cfg)
        finally:
            R.SpectraCallback = orig
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


@pytest.mark.slow
def test_training_is_bit_identical_with_and_without_callback(files, tmp_path):
    a = _weights_after(files, True, tmp_path)
    b = _weights_after(files, False, tmp_path)
    assert a.keys() == b.keys()
    changed = [
        k for k in a if not torch.equal(a[k], load_model("tiny-random-llama").model.state_dict()[k])
    ]
    assert changed, "training changed no weight"
    for k in a:
        assert torch.equal(a[k], b[k]), k
    updates = load_updates(tmp_path / "with")
    assert sorted(updates["step"].unique()) == [0, 2, 4]
    assert set(updates["kind"]) == {"update", "grad"}


@pytest.mark.slow
def test_train_writes_every_table(files, tmp_path):
    data, held = files
    res = train("tiny-random-qwen2", data, tmp_path / "ft",
                TrainConfig(steps=3, batch_size=2, probe_every=2, progress=False), heldout=held)  # fmt: skip
    assert res.steps == 3 and res.probe_steps == [0, 2, 3]
    traj = load_trajectory(res.out_dir)
    assert sorted(traj["step"].unique()) == [0, 2, 3]
    assert traj.groupby("step")["sample_id"].nunique().tolist() == [12, 12, 12]
    hs = heldout_summary(res.out_dir)
    assert hs["step"].tolist() == [0, 2, 3] and (hs["n"] == 4).all()
    assert (res.out_dir / "heldout_loss.csv").is_file()
    assert load_train_loss(res.out_dir)["step"].tolist() == [1, 2, 3]
    up = load_updates(res.out_dir)
    assert (up.loc[up["step"] == 0, "nuclear_norm"] == 0).all()
    assert (up.loc[up["step"] == 3, "nuclear_norm"] > 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_probe_statistics_equal_naive_after_training(arch, files, tmp_path):
    data, _ = files
    lm = load_model(arch)
    res = train(lm, data, tmp_path / arch, TrainConfig(steps=2, batch_size=2, probe_every=0,
                probe_limit=3, lr=1e-3, progress=False, save_every=0))  # fmt: skip
    traj = load_trajectory(res.out_dir)
    last = traj[traj["step"] == 2]
    lm.model.eval()
    targets = find_targets(lm.model, ("q", "k", "v", "o"))
    for ex in _examples(3):
        enc = encode_example(lm.tokenizer, ex, instruct=lm.instruct, max_length=1024)
        rows, _ = naive_stats_encoded(lm.model, enc, targets)
        got = last[last["sample_id"] == ex.sample_id].set_index(["layer", "module"])
        for r in rows:
            for k in STATS:
                assert _rel(got.loc[(r["layer"], r["module"]), k], r[k]) <= 1e-4, (arch, k)
    first = traj[traj["step"] == 0].set_index(["sample_id", "layer", "module"])["nuclear_norm"]
    assert not first.equals(last.set_index(["sample_id", "layer", "module"])["nuclear_norm"])


def test_cli_bad_input_is_one_line_exit_2(files, tmp_path, capsys):
    data, _ = files
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "q", "output": 3}\n')
    cases = [
        (["--data", str(tmp_path / "missing.jsonl")], "missing.jsonl"),
        (["--data", str(bad)], "record 1: field output"),
        (["--data", str(data), "--heldout", str(bad)], "bad.jsonl"),
        (["--data", str(data), "--steps", "0"], "field steps"),
        (["--data", str(data), "--modules", "qq"], "field modules"),
    ]
    for args, needle in cases:
        rc = main(["train", "--model", "tiny-random-llama", "--out", str(tmp_path / "o"), *args])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and needle in err and len(err.splitlines()) == 1, (args, err)


@pytest.mark.slow
def test_lora_probe_and_updates_are_of_the_effective_weight(files, tmp_path):
    data, _ = files
    lm = load_model("tiny-random-qwen2")
    res = train(lm, data, tmp_path / "lora", TrainConfig(steps=2, batch_size=2, probe_every=0,
                lora=True, lr=1e-2, probe_limit=2, progress=False, checkpoints=False))  # fmt: skip
    up = load_updates(res.out_dir)
    last = up[up["step"] == 2]
    assert (last["nuclear_norm"] > 0).all() and (last["effective_rank"] <= 8 + 1e-6).all()
    traj = load_trajectory(res.out_dir)
    lm.model.eval()
    targets = find_targets(lm.model, ("q", "k", "v", "o"))
    assert hasattr(lm.model.get_submodule(targets[0].module_name), "lora_A")  # a LoRA wrapper
    ex = _examples(1)[0]
    enc = encode_example(lm.tokenizer, ex, instruct=lm.instruct, max_length=1024)
    rows, _ = naive_stats_encoded(lm.model, enc, targets)
    got = traj[(traj["step"] == 2) & (traj["sample_id"] == ex.sample_id)].set_index(
        ["layer", "module"]
    )
    for r in rows:
        for k in STATS:
            assert _rel(got.loc[(r["layer"], r["module"]), k], r[k]) <= 1e-4, k
