"""SpectraCallback on TRL's SFTTrainer: measured steps, tables, and weights untouched."""

from __future__ import annotations

import pytest
import torch

from lgkit.models import load_model
from lgkit.train import SpectraCallback, load_trajectory, load_updates

pytest.importorskip("trl")


def _sft(tmp_path, name: str, callback: bool) -> tuple[dict, SpectraCallback | None]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    lm = load_model("tiny-random-llama")
    rows = [{"prompt": f"What is {i} plus {i}?", "completion": f"{i} plus {i} is {2 * i}."}
            for i in range(8)]  # fmt: skip
    args = SFTConfig(output_dir=str(tmp_path / name), max_steps=3, per_device_train_batch_size=2,
                     learning_rate=1e-3, report_to="none", use_cpu=True, save_strategy="no",
                     logging_steps=1, disable_tqdm=True, seed=0)  # fmt: skip
    cb = None
    if callback:
        probe = [
            {"instruction": r["prompt"], "input": "", "output": r["completion"]} for r in rows[:3]
        ]
        from lgkit.formats.records import example_from_dict

        cb = SpectraCallback([example_from_dict(p) for p in probe], tmp_path / "spectra", every=2)
    trainer = SFTTrainer(model=lm.model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=lm.tokenizer, callbacks=[cb] if cb else [])  # fmt: skip
    trainer.train()
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}, cb


@pytest.mark.slow
def test_sft_trainer_with_callback(tmp_path):
    a, cb = _sft(tmp_path, "with", True)
    b, _ = _sft(tmp_path, "without", False)
    assert cb is not None and cb.measured == [0, 2, 3], cb.measured
    for k in a:
        assert torch.equal(a[k], b[k]), k
    traj = load_trajectory(tmp_path / "spectra")
    assert sorted(traj["step"].unique()) == [0, 2, 3]
    up = load_updates(tmp_path / "spectra")
    assert (up[up["step"] == 3]["nuclear_norm"] > 0).all()
