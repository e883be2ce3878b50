"""The random-initialisation twin: same config and tokenizer, seeded random weights."""

from __future__ import annotations

import torch

from lgkit.models import load_model
from lgkit.models.twin import LazyTwin, random_twin, twin_name


def test_random_twin_same_shapes_new_weights_seeded():
    lm = load_model("tiny-random-llama", device="cpu")
    a, b, c = random_twin(lm, 0), random_twin(lm, 0), random_twin(lm, 1)
    assert a.name == twin_name("tiny-random-llama", 0) and a.source == "random-init"
    assert a.tokenizer is lm.tokenizer and a.instruct == lm.instruct
    assert (
        a.model.config.to_dict()
        == lm.model.config.to_dict() | {"_name_or_path": a.model.config._name_or_path}
        or a.model.config.num_hidden_layers == lm.model.config.num_hidden_layers
    )
    pa, pb, pc, pl = (dict(m.model.named_parameters()) for m in (a, b, c, lm))
    assert pa.keys() == pl.keys()
    assert all(pa[k].shape == pl[k].shape for k in pa)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)  # same seed, same weights
    q = next(k for k in pa if "q_proj" in k)
    assert not torch.equal(pa[q], pc[q]) and not torch.equal(pa[q], pl[q])


def test_lazy_twin_has_its_own_cache_key_and_loads_only_when_needed(tmp_path):
    from lgkit.engine.config import GradConfig
    from lgkit.engine.run import stats_for
    from lgkit.formats.records import Example, write_examples

    data = tmp_path / "d.jsonl"
    write_examples(
        data,
        [Example("What is 2+3?", "", "5", dataset="toy", cot="none", correct=True)] * 2,
    )
    cfg = GradConfig(modules="q,o", max_length=256, instruct=True)
    real = stats_for("tiny-random-llama", data, cfg, cache_dir=tmp_path / "c", progress=False)
    twin = LazyTwin("tiny-random-llama", seed=0, instruct=True)
    t = stats_for(twin, data, cfg, cache_dir=tmp_path / "c", progress=False)
    assert twin.loaded and set(t["model"]) == {"tiny-random-llama@random-init-0"}
    assert len({p.name for p in (tmp_path / "c").iterdir()}) == 2  # its own cache entry
    assert not (t["nuclear_norm"].to_numpy() == real["nuclear_norm"].to_numpy()).all()
    again = LazyTwin("tiny-random-llama", seed=0, instruct=True)
    t2 = stats_for(again, data, cfg, cache_dir=tmp_path / "c", progress=False)
    assert not again.loaded  # read back from the cache without building the twin
    assert (t2["nuclear_norm"].to_numpy() == t["nuclear_norm"].to_numpy()).all()
