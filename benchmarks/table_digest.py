"""Statistics tables on fixed tiny models: print a digest of each (bit-identity check across refactors)."""

import hashlib
import sys
import tempfile

import lgkit
from lgkit.formats.records import Example, write_examples

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
    df = lgkit.load_stats(out).drop(
        columns=[c for c in ["spectrum"] if c in lgkit.load_stats(out).columns]
    )
    h = hashlib.sha256(df.to_csv(index=False, float_format="%.17g").encode()).hexdigest()
    print(name, len(df), h)
