"""OpenDataArena's gradient scorers vs ``lgkit score --compat oda``, side by side.

Both methods score the same records with the same model in one process, in alternating
rounds (ODA, lgkit, ODA, lgkit, ...), so machine noise hits both alike. ODA's method is
:func:`lgkit.score.oda.naive_oda_scores` (their procedure re-implemented: one example per
backward, the materialised weight gradient, a full SVD), run once per scorer as their
tool does (NuclearNormScorer and EffectiveRankScorer are separate passes); lgkit runs the
engine in compat mode (two passes too, since the two scorers join texts differently).
Reported: examples/s of each (median over rounds), their ratio, and the worst relative
difference of the scores.

Usage (quiet machine; tiny check: --model tiny-random-llama --n 4 --rounds 1):
    OMP_NUM_THREADS=<cores> .venv/bin/python benchmarks/oda_compare.py \\
        --model smollm2-135m-instruct --data <file.json> --n 32 --rounds 3 \\
        --layers last --out benchmarks/results/oda_compare.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _oda_round(lm, recs, layers, max_length) -> tuple[float, dict]:
    from lgkit.score.oda import naive_oda_scores

    t0 = time.perf_counter()
    out = {}
    for scorer in ("nuclear", "rank"):
        for i, row in enumerate(naive_oda_scores(lm.model, lm.tokenizer, recs, scorer,
                                                 layers=layers, max_length=max_length)):  # fmt: skip
            out.setdefault(i, {}).update(row)
    return time.perf_counter() - t0, out


def _lgkit_round(lm, data, spec, max_length) -> tuple[float, dict]:
    import lgkit

    tmp = Path(tempfile.mkdtemp(prefix="oda_cmp_"))
    try:
        t0 = time.perf_counter()
        df = lgkit.score(data, lm, tmp / "s", compat="oda", layers=spec,
                         max_length=max_length, progress=False)  # fmt: skip
        return time.perf_counter() - t0, df.to_dict("index")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-random-llama")
    ap.add_argument("--data", default=None, help="JSON/JSONL records (default: built-in examples)")
    ap.add_argument("--n", type=int, default=8, help="records scored per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--layers", default="last", help="last or a:b (ODA start_layer_index:+num_layers)"
    )
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    a = ap.parse_args(argv)

    import torch

    from lgkit.models.load import load_model
    from lgkit.score.aggregate import parse_layers
    from lgkit.score.datafile import read_data
    from lgkit.score.oda import oda_columns

    lm = load_model(a.model, **({"device": a.device} if a.device else {}))
    if a.data:
        recs = read_data(a.data).records[: a.n]
    else:
        recs = [{"id": str(i), "instruction": f"What is {i} times 7?", "input": "",
                 "output": f"{i} times 7 is {7 * i}. " * (1 + i % 5)} for i in range(a.n)]  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="oda_data_"))
    data = tmp / "d.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    n_layers = lm.model.config.get_text_config().num_hidden_layers
    layers = parse_layers(a.layers, n_layers)
    times: dict[str, list[float]] = {"oda": [], "lgkit": []}
    worst = 0.0
    for r in range(a.rounds):
        t_oda, ref = _oda_round(lm, recs, layers, a.max_length)
        t_lg, got = _lgkit_round(lm, data, a.layers, a.max_length)
        times["oda"].append(t_oda)
        times["lgkit"].append(t_lg)
        for i, row in ref.items():
            for c in oda_columns("nuclear") + oda_columns("rank"):
                worst = max(worst, abs(got[i][c] - row[c]) / max(abs(row[c]), 1e-12))
        print(f"round {r + 1}: oda {t_oda:.2f}s, lgkit {t_lg:.2f}s", file=sys.stderr)
    eps = {k: len(recs) / statistics.median(v) for k, v in times.items()}
    result = {
        "model": a.model, "n_examples": len(recs), "rounds": a.rounds, "layers": a.layers,
        "max_length": a.max_length, "device": str(next(lm.model.parameters()).device),
        "torch_threads": torch.get_num_threads(), "seconds": times,
        "examples_per_s": eps, "ratio_lgkit_over_oda": eps["lgkit"] / eps["oda"],
        "worst_rel_diff": worst,
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
