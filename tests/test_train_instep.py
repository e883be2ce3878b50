"""In-step statistics (``SpectraCallback(instep_every=K)``): each training example's rows from
the trainer's own backward equal ``compute_stats`` on the pre-step weights; training untouched."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from test_train import _examples as train_examples
from transformers import TrainerCallback

from lgkit.engine.config import GradConfig
from lgkit.engine.run import compute_stats
from lgkit.errors import InputError
from lgkit.formats.store import load_stats
from lgkit.models import load_model
from lgkit.train import SpectraCallback, load_instep
from lgkit.train.data import Collator, ListDataset, encode_records

ARCHS = ["tiny-random-llama", "tiny-random-qwen2", "tiny-random-gemma2", "tiny-random-llama-gqa"]
STATS = ["nuclear_norm", "sigma_max", "frobenius_norm", "effective_rank",
         "entry_max", "token_norm_sum", "coherence", "loss"]  # fmt: skip
TOL = 1e-4


# lengths differ (1-3 repeats): a batch of 4 is padded
_examples = train_examples


class Snapshots(TrainerCallback):
    """A callback keeping the weights at the start of chosen optimizer steps (the reference)."""

    def __init__(self, steps: set[int]) -> None:
        self.steps = steps
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step + 1 in self.steps:
            m = copy.deepcopy(kw["model"])
            if hasattr(m, "merge_and_unload"):  # peft: the effective weights W + BA
                m = m.merge_and_unload()
            self.weights[state.global_step + 1] = m.state_dict()


def _trainer(arch, tmp_path, *, steps=2, batch=4, accum=1, every=1, instep=True, snap=(),
             n=8, lr=1e-3, bf16=False, seed=0, lora=False):  # fmt: skip
    from transformers import Trainer, TrainingArguments

    lm = load_model(arch)
    exs = _examples(n)
    rows = encode_records(lm.tokenizer, exs, instruct=False, max_length=128)
    args = TrainingArguments(output_dir=str(tmp_path / "ckpt"), max_steps=steps,
                             per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
                             learning_rate=lr, report_to="none", use_cpu=True, save_strategy="no",
                             logging_steps=1, disable_tqdm=True, seed=seed, data_seed=seed,
                             remove_unused_columns=False, bf16=bf16)  # fmt: skip
    cbs = []
    cb = None
    if instep:
        cb = SpectraCallback(None, tmp_path / "spectra", every=0, tokenizer=lm.tokenizer,
                             instep_every=every, updates=False, instruct=False)  # fmt: skip
        cbs.append(cb)
    shots = Snapshots(set(snap))
    cbs.append(shots)
    net = lm.model
    if lora:
        from peft import LoraConfig, get_peft_model

        net = get_peft_model(net, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))  # fmt: skip
    net.train()
    tr = Trainer(model=net, args=args, train_dataset=ListDataset(rows),
                 data_collator=Collator(lm.tokenizer.pad_token_id or 0), callbacks=cbs)  # fmt: skip
    tr.train()
    return lm, exs, cb, shots


def _reference(arch, weights, exs, tmp_path, name) -> pd.DataFrame:
    lm = load_model(arch)
    lm.model.load_state_dict(weights)
    cfg = GradConfig(modules=("q", "k", "v", "o"), max_length=128, instruct=False)
    compute_stats(lm, exs, tmp_path / name, cfg, progress=False)
    return load_stats(tmp_path / name)


def _compare(got: pd.DataFrame, ref: pd.DataFrame, tol: float = TOL) -> int:
    key = ["sample_id", "layer", "module"]
    m = got.merge(ref, on=key, suffixes=("", "_ref"))
    assert len(m) == len(got), (len(m), len(got))
    for c in STATS:
        rel = ((m[c] - m[f"{c}_ref"]).abs() / m[f"{c}_ref"].abs().clip(lower=1e-12)).max()
        assert rel <= tol, (c, rel)
    # sigma_min of these rank-deficient gradients is rounding noise: relative to sigma_max
    smin = ((m["sigma_min"] - m["sigma_min_ref"]).abs() / m["sigma_max_ref"]).max()
    assert smin <= tol, ("sigma_min", smin)
    for c in ("n_prompt_tokens", "n_response_tokens", "n_loss_tokens"):
        if c in got and got[c].notna().all():
            assert (m[c] == m[f"{c}_ref"]).all(), c
    return len(m)


def _ids(lm, exs) -> dict[str, str]:
    from lgkit.train.instep import token_key

    rows = encode_records(lm.tokenizer, exs, instruct=False, max_length=128)
    return {token_key(r["input_ids"]): e.sample_id for r, e in zip(rows, exs, strict=True)}


def _named(df: pd.DataFrame, lm, exs) -> pd.DataFrame:
    """User-Trainer rows name examples by their dataset index: map to the records' ids."""
    return df.assign(sample_id=[exs[int(s)].sample_id for s in df["sample_id"]])


@pytest.mark.parametrize("arch", ARCHS)
def test_instep_rows_equal_compute_stats_on_pre_step_weights(arch, tmp_path):
    """Batch 4, mixed lengths (padding), Trainer's num_items_in_batch normalisation; steps 1 and 2."""
    lm, exs, cb, shots = _trainer(arch, tmp_path, steps=2, batch=4, every=1, snap={1, 2})
    df = load_instep(tmp_path / "spectra")
    assert sorted(df["step"].unique()) == [1, 2]
    n_targets = len(cb.targets)
    for step in (1, 2):
        got = _named(df[df["step"] == step], lm, exs)
        assert got["sample_id"].nunique() == 4 and len(got) == 4 * n_targets
        used = [e for e in exs if e.sample_id in set(got["sample_id"])]
        ref = _reference(arch, shots.weights[step], used, tmp_path, f"ref{step}")
        assert _compare(got, ref) == 4 * n_targets


def test_instep_with_gradient_accumulation(tmp_path):
    """Accumulation 2 of batch 2: the rows still equal each example's own gradient."""
    lm, exs, cb, shots = _trainer("tiny-random-llama", tmp_path, steps=2, batch=2, accum=2,
                                  every=2, snap={1, 2})  # fmt: skip
    df = load_instep(tmp_path / "spectra")
    assert sorted(df["step"].unique()) == [1, 2]
    assert sorted(df["micro_step"].unique()) == [0, 1]
    for step in (1, 2):
        got = _named(df[df["step"] == step], lm, exs)
        used = [e for e in exs if e.sample_id in set(got["sample_id"])]
        assert len(used) == 4
        _compare(
            got, _reference("tiny-random-llama", shots.weights[step], used, tmp_path, f"r{step}")
        )


def test_weights_bit_identical_with_and_without_instep(tmp_path):
    a, *_ = _trainer("tiny-random-llama", tmp_path / "a", steps=3, batch=4, every=1)
    b, *_ = _trainer("tiny-random-llama", tmp_path / "b", steps=3, batch=4, instep=False)
    init = load_model("tiny-random-llama").model.state_dict()
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert any(not torch.equal(sa[k], init[k]) for k in sa), "training changed no weight"
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    from lgkit.engine.capture import has_hooks

    assert not has_hooks(a.model)


def test_bf16_autocast_within_stated_tolerance(tmp_path):
    """bf16 autocast: activations and gradients are rounded to 8 bits; the rows agree with
    the float32 reference within 5% (the stated tolerance) on step 1."""
    lm, exs, _, shots = _trainer("tiny-random-llama", tmp_path, steps=1, batch=4, every=1,
                                 snap={1}, bf16=True)  # fmt: skip
    got = _named(load_instep(tmp_path / "spectra"), lm, exs)
    used = [e for e in exs if e.sample_id in set(got["sample_id"])]
    _compare(got, _reference("tiny-random-llama", shots.weights[1], used, tmp_path, "r"), tol=5e-2)


def test_gradient_checkpointing_is_refused_in_one_line(tmp_path):
    from transformers import Trainer, TrainingArguments

    lm = load_model("tiny-random-llama")
    rows = encode_records(lm.tokenizer, _examples(4), instruct=False, max_length=128)
    args = TrainingArguments(output_dir=str(tmp_path / "c"), max_steps=1, report_to="none",
                             use_cpu=True, save_strategy="no", gradient_checkpointing=True,
                             remove_unused_columns=False, disable_tqdm=True)  # fmt: skip
    cb = SpectraCallback(None, tmp_path / "s", tokenizer=lm.tokenizer, instep_every=1)
    tr = Trainer(model=lm.model, args=args, train_dataset=ListDataset(rows),
                 data_collator=Collator(0), callbacks=[cb])  # fmt: skip
    with pytest.raises(InputError, match="gradient checkpointing"):
        tr.train()


def test_probe_or_instep_is_required():
    with pytest.raises(InputError, match="probe"):
        SpectraCallback(None, "x")


def test_lora_rows_are_of_the_effective_weight(tmp_path):
    """LoRA through peft: the base projection's X and D, the gradient of W + BA (step 2: B ≠ 0)."""
    pytest.importorskip("peft")
    lm, exs, cb, shots = _trainer("tiny-random-llama", tmp_path, steps=2, batch=4, every=1,
                                  snap={1, 2}, lora=True, lr=1e-2)  # fmt: skip
    df = load_instep(tmp_path / "spectra")
    assert len(cb.targets) == 8 and sorted(df["step"].unique()) == [1, 2]
    for step in (1, 2):
        got = _named(df[df["step"] == step], lm, exs)
        used = [e for e in exs if e.sample_id in set(got["sample_id"])]
        _compare(
            got, _reference("tiny-random-llama", shots.weights[step], used, tmp_path, f"r{step}")
        )


def test_sft_trainer_completion_only_loss(tmp_path):
    """TRL's SFTTrainer, prompt/completion data (loss on the completion only), batch 4 padded:
    the rows equal the engine's gradients of each example's own completion loss."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from lgkit.engine.arch import find_targets
    from lgkit.engine.batch import run_batch
    from lgkit.formats.prompts import Encoded

    lm = load_model("tiny-random-llama")
    rows = [{"prompt": f"What is {i} plus {i}?", "completion": f" {i} plus {i} is {2 * i}." * (1 + i % 3)}
            for i in range(8)]  # fmt: skip
    args = SFTConfig(output_dir=str(tmp_path / "o"), max_steps=1, per_device_train_batch_size=4,
                     learning_rate=1e-3, report_to="none", use_cpu=True, save_strategy="no",
                     logging_steps=1, disable_tqdm=True, seed=0, completion_only_loss=True,
                     gradient_checkpointing=False, bf16=False)  # fmt: skip
    cb = SpectraCallback(None, tmp_path / "s", every=0, instep_every=1, updates=False)
    tr = SFTTrainer(model=lm.model, args=args, train_dataset=Dataset.from_list(rows),
                    processing_class=lm.tokenizer, callbacks=[cb])  # fmt: skip
    init = load_model("tiny-random-llama").model
    tr.train()
    df = load_instep(tmp_path / "s")
    assert df["sample_id"].nunique() == 4
    targets = find_targets(init, ("q", "k", "v", "o"))
    for sid, got in df.groupby("sample_id"):
        rec = tr.train_dataset[int(sid)]
        ids = list(rec["input_ids"])
        if "labels" in rec:
            n_prompt = next(i for i, t in enumerate(rec["labels"]) if t != -100)
        else:
            n_prompt = list(rec["completion_mask"]).index(1)
        assert n_prompt > 3, "the prompt carries no loss"
        assert int(got["n_prompt_tokens"].iloc[0]) == n_prompt
        ref, losses, _ = run_batch(
            init, targets, [Encoded(ids, n_prompt, len(ids) - n_prompt, False)]
        )
        got = got.sort_values(["layer", "module"]).reset_index(drop=True)
        ref_df = pd.DataFrame(ref[0]).sort_values(["layer", "module"]).reset_index(drop=True)
        for c in ("nuclear_norm", "sigma_max", "frobenius_norm", "effective_rank"):
            rel = ((got[c] - ref_df[c]).abs() / ref_df[c].abs()).max()
            assert rel <= TOL, (sid, c, rel)
        assert abs(got["loss"].iloc[0] - losses[0]) <= TOL * losses[0]


def test_instep_table_replaces_a_step_measured_again(tmp_path):
    """A step measured again (after a resume) replaces that rank's part: nothing doubled."""
    from lgkit.train.tables import write_instep

    row = {"step": 3, "micro_step": 0, "batch_index": 0, "sample_id": "a", "layer": 0,
           "module": "q", "nuclear_norm": 1.0}  # fmt: skip
    write_instep(tmp_path, 3, 0, [row])
    write_instep(tmp_path, 3, 1, [{**row, "sample_id": "b"}])
    write_instep(tmp_path, 3, 0, [{**row, "nuclear_norm": 2.0}])
    df = load_instep(tmp_path)
    assert sorted(df["sample_id"]) == ["a", "b"]
    assert df.set_index("sample_id").loc["a", "nuclear_norm"] == 2.0
    with pytest.raises(InputError, match="no in-step statistics"):
        load_instep(tmp_path / "nothing")


@pytest.mark.parametrize("arch", ["tiny-random-gemma2", "tiny-random-llama-gqa"])
def test_scale_read_on_a_few_loss_tokens_is_exact(arch, tmp_path, monkeypatch):
    """The trainer's scale is read on FIT_TOKENS loss tokens per example: with 2 of them (fewer
    than every example has; Gemma-style soft-capped logits included) the rows still equal
    compute_stats on the pre-step weights."""
    from lgkit.train import instep

    monkeypatch.setattr(instep, "FIT_TOKENS", 2)
    lm, exs, cb, shots = _trainer(arch, tmp_path, steps=1, batch=4, every=1, snap={1})
    got = _named(load_instep(tmp_path / "spectra"), lm, exs)
    assert (got["n_loss_tokens"] > 2).all()  # the subset is a strict one for every example
    used = [e for e in exs if e.sample_id in set(got["sample_id"])]
    ref = _reference(arch, shots.weights[1], used, tmp_path, "ref")
    assert _compare(got, ref) == 4 * len(cb.targets)


def test_a_loss_that_is_not_cross_entropy_is_refused_on_the_fitted_tokens():
    """Label smoothing changes every token's gradient: the check on a few tokens sees it."""
    from lgkit.train.instep import _fit_scale, fit_positions

    torch.manual_seed(0)
    logits = torch.randn(40, 11, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 11, (40,))
    for smoothing, refused in ((0.0, False), (0.1, True)):
        loss = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)
        (g,) = torch.autograd.grad(loss, logits)
        fit = fit_positions(40, 4)
        r = torch.softmax(logits.detach()[fit], dim=-1)
        r[torch.arange(len(fit)), labels[fit]] -= 1.0
        if refused:
            with pytest.raises(InputError, match="not a token-weighted cross-entropy"):
                _fit_scale(g[fit], r, False, "logits")
        else:
            assert _fit_scale(g[fit], r, False, "logits") == pytest.approx(1 / 40, rel=1e-9)
