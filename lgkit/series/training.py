"""Notebook 07 (training dynamics): arms, runs, their tables and findings.

Arms, trained on the same math questions for the same number of optimizer steps:

* ``fast``: the bare answers (none-CoT responses): fast thinking;
* ``slow``: the detailed-CoT responses: slow thinking;
* ``slow_answer`` (control): the detailed-CoT responses with the loss on the final-answer
  tokens only, so it has the fast arm's loss tokens (the answer) and differs from it only
  by the reasoning in context.

Each (arm, optimizer, seed) is one :func:`lgkit.train.train` run in
``<out_dir>/runs/<arm>__<optim>__s<seed>`` (a finished run is skipped, so a rerun
continues). The arms read the same questions in the same order (one data order per seed),
so with in-step statistics (``instep_every``) every training question is a paired unit:
the fast arm's per-example gradient against the slow arm's at the same step. The probe
mode (a fixed probe set measured by an extra pass, ``n_probe`` > 0) stays available; its
findings resample probe questions, the update findings seeds.

Example:
    >>> run_name("fast", "adamw", 1)
    'fast__adamw__s1'
    >>> parse_run_name("slow_answer__sgd__s0")
    {'arm': 'slow_answer', 'optim': 'sgd', 'seed': 0}
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lgkit import analysis as A
from lgkit.analysis import inference as I
from lgkit.errors import InputError
from lgkit.formats.records import Example, write_examples
from lgkit.series.progress import Reporter

logger = logging.getLogger(__name__)

__all__ = [
    "ARMS",
    "MIN_SEEDS",
    "ONE_RUN_NOTE",
    "callback_seconds",
    "collect_training",
    "cost_table",
    "instep_consistency",
    "instep_findings",
    "min_seeds",
    "parse_run_name",
    "run_arms",
    "run_name",
    "training_data",
    "training_files",
    "training_findings",
]

ARMS: dict[str, tuple[str, str]] = {
    "fast": ("none", "response"),
    "slow": ("detailed", "response"),
    "slow_answer": ("detailed", "answer"),
}
"""Arm -> (the responses it is trained on, the tokens carrying the loss)."""


def min_seeds(alpha: float = I.ALPHA) -> int:
    """The fewest seeds per arm with which the update rows' test (the exact sign-flip test
    over seeds, :func:`lgkit.analysis.inference.min_p`: smallest two-sided p ``2 / 2^k``)
    can give ``p < alpha``.

    Example:
        >>> min_seeds(), min_seeds(0.01)
        (6, 8)
    """
    k = 1
    while I.min_p(k, True) >= alpha:
        k += 1
    return k


MIN_SEEDS = min_seeds()
"""Update findings resample seeds: with fewer, they are inconclusive (and say so)."""
ONE_RUN_NOTE = (
    "interval: question-to-question variance only (one training run per arm: seed-to-seed "
    "variance not included)"
)
"""What a row computed from one training run per arm says of its interval."""


def run_name(arm: str, optim: str, seed: int) -> str:
    """The folder name of one run."""
    return f"{arm}__{optim}__s{seed}"


def parse_run_name(name: str) -> dict[str, Any]:
    """``arm``, ``optim`` and ``seed`` of a run folder name."""
    arm, optim, seed = name.split("__")
    return {"arm": arm, "optim": optim, "seed": int(seed.removeprefix("s"))}


def _fits(it: Any, max_chars: int) -> bool:
    """Short enough (``max_chars`` 0: any length) and the gold answer is in the detailed response.

    The answer-only arm puts its loss on the answer's tokens in the detailed response.
    """
    from lgkit.engine.spans import answer_text_span

    detailed = it.responses["detailed"]
    if max_chars and len(it.instruction) + len(detailed) > max_chars:
        return False
    return answer_text_span(detailed, it.answer) is not None


def _items(source: str, n: int, seed: int, data_dir: str, max_chars: int = 0) -> list[Any]:
    if source == "synthetic":
        from lgkit.data.synthetic import synth_arith_items

        items = [it for it in synth_arith_items(4 * n, seed=seed) if _fits(it, max_chars)][:n]
        for k, it in enumerate(items):
            it.meta.setdefault("qid", f"synth-arith-{k:04d}")
            it.meta["dataset"] = "synth_arith"
        if len(items) < n:
            raise InputError(f"only {len(items)} synthetic questions within max_chars={max_chars}",
                             field="max_chars")  # fmt: skip
        return items
    if source != "released":
        raise InputError(
            f"unknown data source {source!r}; choose released or synthetic", field="source"
        )
    from lgkit.data.release import ReleaseUnavailableError, release_items

    try:
        released = release_items("gsm8k", data_dir=data_dir or None)
    except ReleaseUnavailableError as e:
        logger.warning("released GSM8K not found (%s): using the synthetic set instead", e)
        return _items("synthetic", n, seed, data_dir, max_chars)
    items = [it for it in released if _fits(it, max_chars)]
    logger.info("GSM8K: %d of %d released questions usable (answer in the detailed response%s)",
                len(items), len(released), f", at most {max_chars} characters" if max_chars else "")  # fmt: skip
    if len(items) < n:
        raise InputError(f"GSM8K has {len(items)} released questions, {n} asked", field="n_train")
    random.Random(seed).shuffle(items)
    return items[:n]


def _example(it: Any, cot: str) -> Example:
    qid = str(it.meta["qid"])
    return Example(it.instruction, it.input, it.responses[cot], id=f"{qid}-{cot}",
                   dataset=str(it.meta.get("dataset", "gsm8k")), cot=cot, correct=True,
                   meta={"qid": qid, "answer": it.answer,
                         "synthetic": bool(it.meta.get("synthetic", False))})  # fmt: skip


TRAINING_FILES = {"fast": "train_fast.jsonl", "slow": "train_slow.jsonl",
                  "probe": "probe.jsonl", "heldout": "heldout.jsonl"}  # fmt: skip
"""The files :func:`training_data` writes under ``<out_dir>/data``."""


def training_data(
    out_dir: str | Path,
    *,
    source: str = "released",
    n_train: int = 64,
    n_probe: int = 8,
    n_heldout: int = 16,
    seed: int = 0,
    data_dir: str = "",
    max_chars: int = 0,
) -> dict[str, Path]:
    """Write the arms' training files, the probe and the held-out questions (disjoint).

    Returns ``{"fast", "slow", "probe", "heldout"}`` -> file. ``slow_answer`` trains on
    the ``slow`` file. The probe holds each probe question twice (none-CoT and
    detailed-CoT response); the held-out questions carry their gold answer.
    Only questions whose detailed response states the gold answer are used, and with
    ``max_chars`` (0: no limit) only those whose question + detailed response is at most
    that long (so ``max_length`` cuts nothing).

    Example:
        >>> import tempfile
        >>> f = training_data(tempfile.mkdtemp(), source="synthetic", n_train=4, n_probe=2, n_heldout=2)
        >>> sorted(f), len(open(f["probe"]).read().splitlines())
        (['fast', 'heldout', 'probe', 'slow'], 4)
    """
    items = _items(source, n_train + n_probe + n_heldout, seed, data_dir, max_chars)
    if source == "synthetic":
        for it in items:
            it.meta["synthetic"] = True
    train, probe, held = (items[:n_train], items[n_train : n_train + n_probe],
                          items[n_train + n_probe :])  # fmt: skip
    d = Path(out_dir) / "data"
    return {
        "fast": write_examples(d / TRAINING_FILES["fast"], [_example(it, "none") for it in train]),
        "slow": write_examples(d / TRAINING_FILES["slow"], [_example(it, "detailed") for it in train]),
        "probe": write_examples(d / TRAINING_FILES["probe"],
                                [_example(it, c) for it in probe for c in ("none", "detailed")]),
        "heldout": write_examples(d / TRAINING_FILES["heldout"], [_example(it, "detailed") for it in held]),
    }  # fmt: skip


def training_files(folder: str | Path) -> dict[str, Path]:
    """The training files an earlier run wrote under ``<folder>/data``, read as they are
    (a notebook that opens a run never rebuilds them: the run's data stay the run's).

    Raises:
        InputError: a file is missing.
    """
    d = Path(folder) / "data"
    files = {k: d / name for k, name in TRAINING_FILES.items()}
    for p in files.values():
        if not p.is_file():
            raise InputError("no training data of the run here (was 07 run into it?)", path=p)
    return files


def run_arms(
    model: str,
    files: dict[str, Path],
    out_dir: str | Path,
    *,
    arms: Sequence[str] = ("fast", "slow", "slow_answer"),
    optims: Sequence[str] = ("adamw",),
    sgd_arms: Sequence[str] = ("fast", "slow"),
    seeds: Sequence[int] = (0,),
    steps: int = 10,
    probe_every: int = 5,
    batch_size: int = 2,
    lr_adamw: float | None = None,
    lr_sgd: float | None = None,
    max_length: int = 512,
    lora: bool = False,
    max_grad_norm: float = 0.0,
    progress: bool = False,
    instep_every: int = 0,
    probe: bool = True,
) -> Path:
    """Train every (arm, optimizer, seed) not yet finished; returns the runs folder.

    SGD runs only ``sgd_arms``. Each run loads ``model`` afresh; the step-0 probe table
    (the same weights in every run) is computed once and copied. No gradient clipping by
    default (``max_grad_norm=0``): clipping would equalise the arms' step sizes.
    ``instep_every``: in-step statistics of the training examples at step 1 and every K-th;
    ``probe`` False: no probe set (update spectra and held-out loss only).
    """
    from lgkit.models.load import load_model
    from lgkit.train import TrainConfig, finished, train

    runs = Path(out_dir) / "runs"
    plan = [(a, o, s) for o in optims for a in (arms if o == "adamw" else sgd_arms) for s in seeds]
    for arm in {a for a, _, _ in plan}:
        if arm not in ARMS:
            raise InputError(f"unknown arm {arm!r}; choose {', '.join(ARMS)}", field="arms")
    report = Reporter(str(model), len(plan), unit="runs")  # lgkit run's status line
    for k, (arm, optim, seed) in enumerate(plan):
        out = runs / run_name(arm, optim, seed)
        report.file(out.name)
        cot, loss_on = ARMS[arm]
        cfg = TrainConfig(steps=steps, probe_every=probe_every, batch_size=batch_size, seed=seed,
                          optim=optim, lr=lr_adamw if optim == "adamw" else lr_sgd,
                          max_length=max_length, lora=lora, loss_on=loss_on, checkpoints=False,
                          max_grad_norm=max_grad_norm, instep_every=instep_every, probe=probe,
                          progress=progress)  # fmt: skip
        data = files["fast" if cot == "none" else "slow"]
        if finished(model, data, out, cfg):  # read, not trained again (other settings: InputError)
            report.skip(1)
            continue
        t0 = time.perf_counter()
        if probe:
            _share_step0(runs, out)
        logger.info("run %d/%d: %s", k + 1, len(plan), out.name)
        train(load_model(model), data, out, cfg, probe=files["probe"] if probe else None,
              heldout=files["heldout"])  # fmt: skip
        report.step(1, time.perf_counter() - t0)
    return runs


def _share_step0(runs: Path, out: Path) -> None:
    """Every run starts from the same weights: reuse a finished run's step-0 probe table.

    The engine finds it complete (same model, probe and settings) and skips it.
    """
    import shutil

    dest = out / "probe" / "step-000000"
    if dest.exists():
        return
    for done in sorted(runs.glob("*/done.json")):
        src = done.parent / "probe" / "step-000000"
        if (src / "manifest.json").is_file():
            shutil.copytree(src, dest)
            return


def _tagged(frames: list[tuple[dict[str, Any], pd.DataFrame]]) -> pd.DataFrame:
    parts = [df.assign(**tags) for tags, df in frames if len(df)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def collect_training(runs: str | Path) -> dict[str, pd.DataFrame]:
    """Every finished run's tables, tagged with ``arm``, ``optim``, ``seed``.

    Returns ``probe`` (statistics with ``step`` and ``qid``; empty without a probe),
    ``instep`` (the training examples' in-step statistics with ``step``, ``micro_step`` and
    ``qid``; empty without), ``updates``, ``heldout`` (mean per step) and ``loss``
    (training loss per step).
    """
    from lgkit.train import (
        heldout_summary,
        load_instep,
        load_train_loss,
        load_trajectory,
        load_updates,
    )

    done = sorted(p.parent for p in Path(runs).glob("*/done.json"))
    if not done:
        raise InputError("holds no finished training runs", path=runs)
    probe, instep, upd, held, loss = [], [], [], [], []
    for d in done:
        tags = parse_run_name(d.name)
        if (d / "probe").is_dir():
            probe.append((tags, load_trajectory(d)))
        if (d / "instep").is_dir():
            instep.append((tags, load_instep(d).drop(columns=["seed"], errors="ignore")))
        upd.append((tags, load_updates(d)))
        held.append((tags, heldout_summary(d)))
        loss.append((tags, load_train_loss(d)))
    out = {"probe": _tagged(probe), "instep": _tagged(instep), "updates": _tagged(upd),
           "heldout": _tagged(held), "loss": _tagged(loss)}  # fmt: skip
    for k, name in (("probe", "probe.jsonl"), ("instep", "train_*.jsonl")):
        if len(out[k]):
            out[k]["qid"] = out[k]["sample_id"].str.rsplit("-", n=1).str[0]
            out[k]["data_file"] = name
    return out


# ----------------------------------------------------------------------- findings


def _curves(df: pd.DataFrame, unit: str, metric: str, units: list[Any]) -> np.ndarray:
    """``[unit, cell=1, module, layer]`` mean curves of ``metric``."""
    mods, layers = sorted(df["module"].unique()), sorted(df["layer"].unique())
    g = df.groupby([unit, "module", "layer"])[metric].mean()
    idx = pd.MultiIndex.from_product([units, mods, layers])
    arr = g.reindex(idx).to_numpy().reshape(len(units), 1, len(mods), len(layers))
    return arr


def _sides(a: pd.DataFrame, b: pd.DataFrame, unit: str, metric: str) -> I.Sides:
    units = sorted(set(a[unit]) & set(b[unit]))
    mods, layers = sorted(a["module"].unique()), sorted(a["layer"].unique())
    return I.Sides(_curves(a, unit, metric, units), _curves(b, unit, metric, units), True,
                   [str(u) for u in units], [str(u) for u in units], mods, layers)  # fmt: skip


def _level_ratio(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.log(I.level(y[..., 0, :, :]) / I.level(x[..., 0, :, :]))


def _mad_ratio(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.log(I.mad(y[..., 0, :, :]) / I.mad(x[..., 0, :, :]))


def _final(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["step"] == df["step"].max()]


def _compare(
    claim: str, statistic: str, a: pd.DataFrame, b: pd.DataFrame, unit: str, metric: str,
    mad: bool, n_boot: int, seed: int, detail: str,
) -> A.Finding:  # fmt: skip
    if a.empty or b.empty:
        return A.invalid(claim, statistic, "an arm was not run")
    sides = _sides(a, b, unit, metric)
    n = sides.n_questions
    if unit == "seed" and n < MIN_SEEDS:
        why = seeds_note(n)
        return A.Finding(claim, statistic, n_questions=n, verdict="inconclusive", detail=detail,
                         verdict_text=f"inconclusive: {why}",
                         caveats="; ".join(x for x in (why, _full_profile_note()) if x))  # fmt: skip
    stat = _mad_ratio if mad else _level_ratio
    f = A.evaluate(claim, statistic, sides, stat, n_boot=n_boot, seed=seed, detail=detail)
    return _one_run(f, a, b) if unit == "qid" else f


def seeds_note(n: int, alpha: float = I.ALPHA) -> str:
    """Why update rows with ``n`` seeds per arm cannot decide: the seeds needed and the
    smallest p ``n`` seeds can give.

    Example:
        >>> seeds_note(3)
        '3 seed(s) per arm: no verdict possible at this size: the exact sign-flip test over seeds needs at least 6 seeds per arm to reach p < 0.05 (the smallest p attainable with 3 seeds is 0.25)'
    """
    return (
        f"{n} seed(s) per arm: no verdict possible at this size: the exact sign-flip test over "
        f"seeds needs at least {min_seeds(alpha)} seeds per arm to reach p < {alpha:g} (the "
        f"smallest p attainable with {n} seed{'s' if n != 1 else ''} is "
        f"{I.min_p(max(n, 1), True):.3g})"
    )


def _full_profile_note(alpha: float = I.ALPHA) -> str:
    """What the full profile runs (its ``seeds``, read from ``params/``) and whether that
    decides the update rows ("" when the profile file is not found)."""
    try:
        from lgkit.series.guard import load_params_yaml
        from lgkit.series.runner import params_path

        seeds = str(load_params_yaml(params_path("07_training_dynamics", "full"))["seeds"])
    except Exception:  # an installed package without params/: nothing to say
        return ""
    k = len([x for x in seeds.split(",") if x.strip()])
    if k >= min_seeds(alpha):
        return f"the full profile runs {k} seeds per arm, enough to decide"
    return (
        f"the full profile runs {k} seeds per arm: still too few to decide (smallest p "
        f"{I.min_p(k, True):.3g}; {min_seeds(alpha)} needed)"
    )


def _one_run(f: A.Finding, a: pd.DataFrame, b: pd.DataFrame) -> A.Finding:
    """``f`` with :data:`ONE_RUN_NOTE` in its verdict (a label) when either arm holds a single
    training run (one seed): the questions are resampled, the training run is not."""
    if "seed" not in a.columns or max(a["seed"].nunique(), b["seed"].nunique()) > 1:
        return f
    return replace(f, labels=[*f.labels, ONE_RUN_NOTE])


def training_findings(
    tables: dict[str, pd.DataFrame], metric: str = "nuclear_norm", n_boot: int = 1000,
    seed: int = 0,
) -> list[A.Finding]:  # fmt: skip
    """The claims of notebook 07 (before Holm): probe rows by question, update rows by seed.

    Each compares two arms at the last step (ratio slow/fast, null 1, claimed < 1):
    the probe's per-example statistic after training (questions resampled, averaged
    over seeds) and each projection's accumulated update ΔW (seeds resampled).
    """
    probe, upd = tables["probe"], tables["updates"]
    upd = upd[upd["kind"] == "update"] if len(upd) else upd
    probe_rows, update_rows = [], []
    for optim in sorted(set(upd["optim"]) if len(upd) else ()):
        u = _final(upd[upd["optim"] == optim])
        p = _final(probe[probe["optim"] == optim]) if len(probe) else probe
        for other, label in (("slow", "slow"), ("slow_answer", "slow, answer-only loss")):
            if not {"fast", other} <= set(u["arm"]):
                continue  # an arm not run with this optimizer: no claim
            ua, ub = u[u["arm"] == "fast"], u[u["arm"] == other]
            pa, pb = (p, p) if p.empty else (p[p["arm"] == "fast"], p[p["arm"] == other])
            det = f"{optim}, last step; arms fast vs {label}"
            probe_rows += [] if p.empty else [
                _compare(f"[{optim}] After fast-arm training the probe gradients are larger than after the {label} arm's",
                         f"probe {metric} level ratio {other}/fast", pa, pb, "qid", metric, False,
                         n_boot, seed, det + "; unit: probe question (mean over seeds)"),
                _compare(f"[{optim}] After fast-arm training the probe gradients are less even across layers than after the {label} arm's",
                         f"probe {metric} MAD ratio {other}/fast", pa, pb, "qid", metric, True,
                         n_boot, seed, det + "; unit: probe question (mean over seeds)"),
            ]  # fmt: skip
            update_rows += [
                _compare(f"[{optim}] Fast-arm updates are larger than the {label} arm's",
                         f"ΔW {metric} level ratio {other}/fast", ua, ub, "seed", metric, False,
                         n_boot, seed, det + "; unit: seed"),
                _compare(f"[{optim}] Fast-arm updates are less even across layers than the {label} arm's",
                         f"ΔW {metric} MAD ratio {other}/fast", ua, ub, "seed", metric, True,
                         n_boot, seed, det + "; unit: seed"),
            ]  # fmt: skip
    # the paper's claim is on training gradients (the in-step rows): probe and update rows
    # are breakdowns, with their own 95% intervals, outside the Holm family
    return [A.exploratory(f, "probe set after training") for f in probe_rows] + [
        A.exploratory(f, "spectra of the update ΔW (seeds as units)") for f in update_rows
    ]


def _ratio_curves(
    a: pd.DataFrame, b: pd.DataFrame, metric: str
) -> tuple[np.ndarray, list[str], list[str], list[int]]:
    """Per question the curve ``b/a`` of ``metric`` (``[question, 1, module, layer]``, seeds averaged)."""
    units = sorted(set(a["qid"]) & set(b["qid"]))
    mods, layers = sorted(a["module"].unique()), sorted(a["layer"].unique())
    ca, cb = _curves(a, "qid", metric, units), _curves(b, "qid", metric, units)
    return cb / ca, [str(u) for u in units], mods, layers


def _change(
    claim: str, statistic: str, a: pd.DataFrame, b: pd.DataFrame, split: int, metric: str,
    n_boot: int, seed: int, detail: str,
) -> A.Finding:  # fmt: skip
    """Early (steps ≤ ``split``) against late questions: the change of the other/fast level ratio
    (unpaired: each question is trained once per epoch, so early and late are other questions)."""
    early = _ratio_curves(a[a["step"] <= split], b[b["step"] <= split], metric)
    late = _ratio_curves(a[a["step"] > split], b[b["step"] > split], metric)
    if not len(early[1]) or not len(late[1]):
        return A.invalid(claim, statistic, "no questions early or late in training")
    sides = I.Sides(early[0], late[0], False, early[1], late[1], early[2], early[3])
    f = A.evaluate(claim, statistic, sides, _level_ratio, n_boot=n_boot, seed=seed, detail=detail)
    return _one_run(f, a, b)


def instep_findings(
    tables: dict[str, pd.DataFrame], metric: str = "nuclear_norm", n_boot: int = 1000,
    seed: int = 0,
) -> list[A.Finding]:  # fmt: skip
    """Notebook 07's in-step claims (before Holm): training questions as paired units.

    Every arm reads the same questions in the same order (per seed), so each training
    question has the fast arm's per-example gradient and the other arm's at the same step
    (the statistic of the example the trainer just used, equal to ``lgkit grads`` on that
    step's weights). Rows per optimizer and other arm (ratio other/fast, claimed < 1): over
    all measured steps (level and MAD), in the first and in the second half of the
    measured steps, and the change of the level ratio from the first half to the second
    (unpaired: other questions).

    Example:
        >>> instep_findings({"instep": pd.DataFrame()})
        []
    """
    ins = tables.get("instep", pd.DataFrame())
    if ins is None or ins.empty:
        return []
    rows = []
    for optim in sorted(ins["optim"].unique()):
        d = ins[ins["optim"] == optim]
        steps = sorted(d["step"].unique())
        split = int(steps[(len(steps) - 1) // 2])
        for other, label in (("slow", "slow"), ("slow_answer", "slow, answer-only loss")):
            a, b = d[d["arm"] == "fast"], d[d["arm"] == other]
            if a.empty or b.empty:
                continue
            det = (f"{optim}, in-step: each training question's own gradient at the step it was "
                   f"trained (steps {steps[0]}–{steps[-1]}), fast vs {label}; unit: training "
                   "question (paired: same question, step and seed; seeds averaged)")  # fmt: skip
            rows += [
                _compare(f"[{optim}] [in-step] Fast-arm training gradients are larger than the {label} arm's",
                         f"in-step {metric} level ratio {other}/fast", a, b, "qid", metric, False,
                         n_boot, seed, det),
                _compare(f"[{optim}] [in-step] Fast-arm training gradients are less even across layers than the {label} arm's",
                         f"in-step {metric} MAD ratio {other}/fast", a, b, "qid", metric, True,
                         n_boot, seed, det),
            ]  # fmt: skip
            if other != "slow":  # the answer-only arm is a control of the slow arm
                rows[-2:] = [A.exploratory(f, "control arm: answer-only loss") for f in rows[-2:]]
            rows += [A.exploratory(f, "breakdown: halves of training") for f in [
                _compare(f"[{optim}] [in-step, early] Fast-arm training gradients are larger than the {label} arm's in the first half of training",
                         f"in-step {metric} level ratio {other}/fast, steps ≤ {split}", a[a["step"] <= split],
                         b[b["step"] <= split], "qid", metric, False, n_boot, seed, det),
                _compare(f"[{optim}] [in-step, late] Fast-arm training gradients are larger than the {label} arm's in the second half of training",
                         f"in-step {metric} level ratio {other}/fast, steps > {split}", a[a["step"] > split],
                         b[b["step"] > split], "qid", metric, False, n_boot, seed, det),
                _change(f"[{optim}] [in-step, change] The {label}/fast gradient ratio falls from the first half of training to the second",
                        f"change of the in-step {metric} level ratio {other}/fast (late/early)", a, b,
                        split, metric, n_boot, seed,
                        det.replace("paired: same question, step and seed", "unpaired: early and late questions differ")),
            ]]  # fmt: skip
    return rows


def instep_consistency(
    model: str, files: dict[str, Path], instep: pd.DataFrame, out_dir: str | Path,
    max_length: int, metric: str = "nuclear_norm",
) -> pd.DataFrame:  # fmt: skip
    """The first step's in-step rows against ``lgkit grads`` (:func:`lgkit.compute_stats`) on
    the pretrained model for the same examples: per arm the largest and median relative
    difference of ``metric`` (the first step's weights are the pretrained ones).

    The engine's table of those examples is written under ``<out_dir>/consistency/<arm>``
    (resumed, so a rerun reads it).
    """
    from lgkit.engine.config import GradConfig
    from lgkit.engine.run import compute_stats
    from lgkit.formats.records import read_examples
    from lgkit.formats.store import load_stats
    from lgkit.models.load import load_model

    if instep.empty:
        return pd.DataFrame()
    rows, bundle = [], None
    first = instep[
        (instep["step"] == instep["step"].min()) & (instep["seed"] == instep["seed"].min())
    ]
    for arm in sorted(first["arm"].unique()):
        got = first[(first["arm"] == arm) & (first["optim"] == first["optim"].iloc[0])]
        cot, loss_on = ARMS[arm]
        ids = set(got["sample_id"])
        exs = [
            e
            for e in read_examples(files["fast" if cot == "none" else "slow"])
            if e.sample_id in ids
        ]
        bundle = bundle or load_model(model)
        cfg = GradConfig(modules=tuple(sorted(got["module"].unique())), max_length=max_length,
                         loss_on=loss_on)  # fmt: skip
        out = Path(out_dir) / "consistency" / arm
        compute_stats(bundle, exs, out, cfg, progress=False)
        m = got.merge(load_stats(out), on=["sample_id", "layer", "module"], suffixes=("", "_grads"))
        rel = (m[metric] - m[f"{metric}_grads"]).abs() / m[f"{metric}_grads"].abs()
        rows.append({"arm": arm, "step": int(got["step"].iloc[0]), "examples": len(ids),
                     "rows": len(m), f"max_rel_diff_{metric}": float(rel.max()),
                     f"median_rel_diff_{metric}": float(rel.median())})  # fmt: skip
    return pd.DataFrame(rows)


def training_summary(tables: dict[str, pd.DataFrame], metric: str = "nuclear_norm") -> pd.DataFrame:
    """Per arm and optimizer at the last step: ΔW level and MAD, probe level, losses, seeds.

    Example:
        >>> training_summary({"updates": pd.DataFrame(), "probe": pd.DataFrame(),
        ...                   "heldout": pd.DataFrame(), "loss": pd.DataFrame()}).empty
        True
    """
    upd = tables["updates"]
    if upd.empty:
        return pd.DataFrame()
    rows = []
    for (arm, optim), u in upd[upd["kind"] == "update"].groupby(["arm", "optim"]):
        u = _final(u)
        curve = u.groupby(["module", "layer"])[metric].mean().unstack("layer").to_numpy()
        p = tables["probe"]
        p = (
            _final(p[(p["arm"] == arm) & (p["optim"] == optim)])
            if len(p)
            else pd.DataFrame({metric: []})
        )
        h = tables["heldout"]
        h = h[(h["arm"] == arm) & (h["optim"] == optim)]
        lo = tables["loss"]
        lo = lo[(lo["arm"] == arm) & (lo["optim"] == optim)]
        rows.append({
            "arm": arm, "optim": optim, "seeds": int(u["seed"].nunique()),
            "step": int(u["step"].max()), f"update_{metric}": float(I.level(curve)),
            f"update_{metric}_mad": float(I.mad(curve)), f"probe_{metric}": float(p[metric].mean()),
            "heldout_loss_start": float(h[h["step"] == h["step"].min()]["heldout_loss"].mean()),
            "heldout_loss_end": float(h[h["step"] == h["step"].max()]["heldout_loss"].mean()),
            "train_loss_end": float(lo[lo["step"] == lo["step"].max()]["loss"].mean()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def cost_table(runs: str | Path) -> pd.DataFrame:
    """Per finished run: seconds of the whole run, of which in the callback, and the share.

    Example:
        >>> import tempfile
        >>> cost_table(tempfile.mkdtemp()).columns.tolist()
        ['run', 'seconds_train', 'seconds_callback', 'callback_share']
    """
    rows = [{"run": k, **v} for k, v in callback_seconds(runs).items()]
    df = pd.DataFrame(rows, columns=["run", "seconds_train", "seconds_callback"])
    df["callback_share"] = df["seconds_callback"] / df["seconds_train"]
    return df


def callback_seconds(runs: str | Path) -> dict[str, dict[str, float]]:
    """Seconds each finished run spent in training and in the callback (from ``done.json``)."""
    out = {}
    for p in sorted(Path(runs).glob("*/done.json")):
        doc = json.loads(p.read_text(encoding="utf-8"))
        out[p.parent.name] = {k: doc.get(k) for k in ("seconds_train", "seconds_callback")}
    return out
