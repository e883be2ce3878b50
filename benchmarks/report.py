"""Render benchmarks/results/*.json (written by throughput.py) as a Markdown table.

Usage:
    .venv/bin/python benchmarks/report.py [results/*.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def row(r: dict) -> str:
    m = r["methods"]
    lg, bare = m["lgkit"], m["bare"]
    naive = m.get("naive")
    cells = [
        r["model"],
        Path(r["data"]).stem,
        f"{r['n_examples']} × {r['tokens_mean']:.0f}",
        r["device"],
        f"{bare['s_per_example']:.2f}",
        f"{lg['fb_s_per_example']:.2f} + {lg['stats_s_per_example']:.2f}",
        f"{naive['fb_s_per_example']:.2f} + {naive['stats_s_per_example']:.2f}" if naive else "–",
        f"{r['speedup_vs_naive']:.2f}×" if "speedup_vs_naive" in r else "–",
        f"{100 * r['overhead_vs_bare']:+.0f}%",
        f"{r['memory_ratio_vs_bare']:.2f}×" if r.get("memory_ratio_vs_bare") else "–",
        f"{r['exactness_worst_rel']:.1e}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted((HERE / "results").glob("*.json"))
    print(
        "| model | data | examples × mean tokens | device | bare s/ex | lgkit s/ex (fwd+bwd + stats) "
        "| naive s/ex (fwd+bwd + SVD) | lgkit/naive ex/s | lgkit overhead vs bare | peak mem vs bare | worst rel. diff |"
    )
    print("|" + "---|" * 11)
    for f in files:
        print(row(json.loads(f.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
