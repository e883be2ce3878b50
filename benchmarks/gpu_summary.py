"""The summary of benchmarks/gpu_check.sh: steps, measured runs, targets, projected grid time.

Reads the step table the script wrote (``steps.tsv``), the test report (``tests.xml``)
and each throughput JSON under ``runs/`` and training JSON under ``train/``; prints one table
and writes ``summary.json`` beside them. The projection of the paper's full grid (five base/instruct pairs, ~28,000
examples each) scales lgkit's measured seconds per example of the nearest measured shape
by parameter count (forward + backward cost grows about linearly with it) and averages
the detailed- and none-CoT data sets (the grid's three CoT variants lie between them).

Usage: python benchmarks/gpu_summary.py OUT_DIR SIZE
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# the paper's grid: (base, instruct) pairs with their parameter counts (billions, public)
GRID = {
    "Qwen2-1.5B": 1.54, "gemma-2-2b": 2.61, "Llama-3.1-8B": 8.03, "gemma-2-9b": 9.24, "Llama-2-7b": 6.74,
}  # fmt: skip
GRID_EXAMPLES = 28_000
MEASURED_SHAPES = {"config:qwen2-1.5b": 1.54, "config:llama-3.1-8b": 8.03}
# the rehearsal's CPU stand-ins for the two shapes (same families, tiny sizes)
STAND_INS = {
    "tiny-random-qwen2": "config:qwen2-1.5b",
    "tiny-random-llama-gqa": "config:llama-3.1-8b",
}


def read_steps(out: Path) -> list[dict]:
    steps = []
    for line in (out / "steps.tsv").read_text().splitlines():
        name, status, rc, seconds, note = (line.split("\t") + [""] * 5)[:5]
        steps.append(
            {"name": name, "status": status, "rc": int(rc), "seconds": int(seconds), "note": note}
        )
    return steps


def read_tests(out: Path) -> dict | None:
    path = out / "tests.xml"
    if not path.is_file():
        return None
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    n["passed"] = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    return n


def read_runs(out: Path) -> list[dict]:
    runs = []
    for f in sorted((out / "runs").glob("*.json")):
        r = json.loads(f.read_text())
        runs.append({"file": f.name, **r})
    return runs


# in-step spectra's share of training (issue #28's goals on the CPU, kept for a GPU)
TRAIN_GOALS = {"every 10th step": 0.03, "every step": 0.25}


def read_train(out: Path) -> list[dict]:
    """The in-step training runs: the share of training with its goal (met or not)."""
    rows = []
    for f in sorted((out / "train").glob("*.json")):
        r = json.loads(f.read_text())
        when = "every step" if r.get("instep_every") == 1 else "every 10th step"
        share = r.get("overhead_share_median")
        goal = TRAIN_GOALS[when]
        rows.append({"file": f.name, "model": r.get("model"), "device": r.get("device"),
                     "when": when, "every": r.get("every"), "instep_every": r.get("instep_every"),
                     "step_seconds": r.get("step_seconds_median"), "share": share, "goal": goal,
                     "met": None if share is None else share <= goal})  # fmt: skip
    return rows


def project(runs: list[dict], dtype: str) -> dict | None:
    """Hours for the grid on one GPU and on 8 (torchrun: ranks share nothing but the data)."""
    per_shape: dict[str, list[float]] = {}
    for r in runs:
        shape = STAND_INS.get(r["model"], r["model"])
        lg = r.get("methods", {}).get("lgkit")
        if shape in MEASURED_SHAPES and r.get("dtype") == dtype and lg:
            per_shape.setdefault(shape, []).append(lg["s_per_example"])
    if not per_shape:
        return None
    s_shape = {k: sum(v) / len(v) for k, v in per_shape.items()}
    models = {}
    for name, params in GRID.items():
        near = min(s_shape, key=lambda k: abs(MEASURED_SHAPES[k] - params))
        s = s_shape[near] * params / MEASURED_SHAPES[near]
        models[name] = {
            "s_per_example": s,
            "from": near,
            "hours_pair": 2 * GRID_EXAMPLES * s / 3600,
        }
    hours = sum(m["hours_pair"] for m in models.values())
    return {"dtype": dtype, "measured_s_per_example": s_shape, "models": models,
            "hours_1_gpu": hours, "hours_8_gpus": hours / 8, "under_a_day_on_1_gpu": hours < 24}  # fmt: skip


def _cell(t: dict | None, fmt: str) -> str:
    if not t or t.get("value") is None:
        return "–"
    mark = "met" if t["met"] else "MISSED"
    return f"{fmt.format(t['value'])} ({t['op']}{t['target']:g} {mark})"


def print_table(summary: dict) -> None:
    rehearsal = summary["rehearsal"]
    print()
    print(f"== GPU check, size {summary['size']}"
          + (" — REHEARSAL on the CPU with tiny models: no result" if rehearsal else ""))  # fmt: skip
    print(f"{'step':14s} {'status':9s} {'s':>5s}  note")
    for s in summary["steps"]:
        print(f"{s['name']:14s} {s['status']:9s} {s['seconds']:5d}  {s['note']}")
    t = summary["tests"]
    if t:
        print(
            f"tests: {t['passed']} passed, {t['failures'] + t['errors']} failed, {t['skipped']} skipped"
        )
    print()
    print(f"{'model':24s} {'dtype':9s} {'data':28s} {'lgkit ex/s':>10s} {'fb s/ex':>8s} "
          f"{'stats s/ex':>10s} {'x naive':>20s} {'overhead':>22s} {'memory':>20s}")  # fmt: skip
    for r in summary["runs"]:
        tg = r.get("targets", {})
        lg = r.get("methods", {}).get("lgkit", {})
        print(f"{r['model']:24s} {r.get('dtype', ''):9s} {Path(r['data']).stem[:28]:28s} "
              f"{lg.get('examples_per_s', float('nan')):10.3f} {lg.get('fb_s_per_example', float('nan')):8.3f} "
              f"{lg.get('stats_s_per_example', float('nan')):10.3f} {_cell(tg.get('speedup_vs_naive'), '{:.1f}x'):>20s} "
              f"{_cell(tg.get('overhead_vs_bare'), '{:+.0%}'):>22s} {_cell(tg.get('memory_ratio_vs_bare'), '{:.2f}x'):>20s}"
              + ("" if r.get("complete", True) else "  (partial)"))  # fmt: skip
    for t in summary["train"]:
        share = "–" if t["share"] is None else f"{t['share']:+.1%}"
        mark = "" if t["met"] is None else (" met" if t["met"] else " MISSED")
        print(("REHEARSAL, NOT a result: " if rehearsal else "")
              + f"in-step spectra {t['when']:15s} {t['model']} on {t['device']}: {share} of training "
              f"(step {t['step_seconds']:.3f} s; goal <= {t['goal']:.0%}{mark})")  # fmt: skip
    for p in summary["projection"]:
        label = (
            "rehearsal projection (tiny CPU models, NOT a result)" if rehearsal else "projection"
        )
        print(f"{label}, {p['dtype']}: full grid (5 pairs x {GRID_EXAMPLES} examples x 2) "
              f"{p['hours_1_gpu']:.1f} h on 1 GPU, {p['hours_8_gpus']:.1f} h on 8 "
              f"(under a day on one: {'yes' if p['under_a_day_on_1_gpu'] else 'no'})")  # fmt: skip
    print(f"all steps ok: {summary['all_steps_ok']}; targets met: {summary['targets_met']} of "
          f"{summary['targets_total']} measured")  # fmt: skip


def main(argv: list[str]) -> int:
    out, size = Path(argv[0]), argv[1]
    runs = read_runs(out)
    steps = read_steps(out)
    flags = [t["met"] for r in runs for t in r.get("targets", {}).values() if t["met"] is not None]
    summary = {
        "size": size,
        "rehearsal": size == "tiny",
        "steps": steps,
        "all_steps_ok": all(s["status"] == "ok" for s in steps),
        "tests": read_tests(out),
        "runs": runs,
        "train": read_train(out),
        "targets_met": sum(flags),
        "targets_total": len(flags),
        "projection": [p for d in ("bfloat16", "float32") if (p := project(runs, d))],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_table(summary)
    print(f"wrote {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
