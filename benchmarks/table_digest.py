"""Digest of the statistics tables of four tiny models: the bit-identity check across refactors.

Run it at two commits (``PYTHONPATH=<checkout>``) and compare the printed lines. It hashes the
contract columns every lgkit version has (``sample_id`` ... ``entry_min``), so columns added
later (per-token columns, cosines) do not change the digest.

    cd /tmp && PYTHONPATH=/path/to/checkout python /path/to/benchmarks/table_digest.py
"""

import hashlib
import sys
import tempfile

import lgkit

try:  # the layout since the subpackages
    from lgkit.formats.records import Example, write_examples
except ImportError:  # earlier flat layout
    from lgkit.records import Example, write_examples  # type: ignore[no-redef]

COLUMNS = [
    "sample_id", "dataset", "cot", "correct", "layer", "module", "shape", "loss",
    "n_prompt_tokens", "n_response_tokens", "truncated", "nuclear_norm", "sigma_max",
    "sigma_min", "sigma1_ratio", "frobenius_norm", "effective_rank", "entry_mean",
    "entry_max", "entry_min",
]  # fmt: skip

print("lgkit from", lgkit.__file__, file=sys.stderr)
ex = [
    Example(
        instruction=f"What is {i}+{i}?",
        output=f"Let me think. {i}+{i} is {2 * i}. The answer is {2 * i}.",
        cot="detailed",
        dataset="toy",
    )
    for i in range(6)
]
d = tempfile.mkdtemp()
write_examples(f"{d}/ex.jsonl", ex)
for name in [
    "tiny-random-llama",
    "tiny-random-qwen2",
    "tiny-random-gemma2",
    "tiny-random-llama-gqa",
]:
    lm = lgkit.load_model(name, device="cpu")
    out = f"{d}/{name}"
    lgkit.compute_stats(lm, f"{d}/ex.jsonl", out, lgkit.GradConfig(batch_size=2, max_length=256))
    df = lgkit.load_stats(out)[COLUMNS]
    h = hashlib.sha256(df.to_csv(index=False, float_format="%.17g").encode()).hexdigest()
    print(name, len(df), h)
