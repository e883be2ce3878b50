"""What a notebook needs to be used in class: the run it reads, clean tracked files, a closing
"What this shows" written from the findings, a glossary, and the drill-down data.

* :func:`open_run`: a notebook opened after ``lgkit run`` takes that run's parameters, data
  and statistics cache (``run="latest"``: the newest finished run under ``outputs/``), so
  every statistic is read back from the cache instead of recomputed; parameters a caller
  passed (papermill's injected cell, :func:`injected_parameters`) are never replaced;
* :func:`filter_warning`: the notebook runs from a checkout without the nbstripout filter
  (its outputs would be committed);
* :func:`what_this_shows`, :func:`closing`, :data:`GLOSSARY`.

The reader's findings table itself (verdict first, shared rule and caveats once, a count
line, the smallest achievable p) is :mod:`lgkit.series.verdicts`.

Example:
    >>> print(what_this_shows([]))
    ### What this shows
    <BLANKLINE>
    No findings were computed.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lgkit.errors import InputError
from lgkit.series.verdicts import (
    ALPHA,
    adjustment_of,
    counts_line,
    reader_findings,
    small_n_warning,
)

logger = logging.getLogger(__name__)

__all__ = [
    "GLOSSARY",
    "ParameterConflict",
    "closing",
    "coherence_reference",
    "drilldown_data",
    "filter_warning",
    "injected_parameters",
    "latest_run",
    "length_words",
    "open_run",
    "run_metrics",
    "start",
    "what_this_shows",
]

KEEP_LOCAL = ("out_dir", "progress", "run")
"""Parameters a notebook keeps when it opens a run (it writes to its own ``out_dir``)."""


# --------------------------------------------------------------------------- the run to read


def _root() -> Path:
    from lgkit.series.steps import project_root

    return project_root()


def _finished(run_dir: Path, notebook: str) -> bool:
    """Did ``notebook`` end well in ``run_dir`` (status ok, no attempt under way or cut short)?"""
    from lgkit.series.attempts import marker_path, read_json

    rec = read_json(run_dir / notebook / "run.json")
    return (
        isinstance(rec, dict)
        and rec.get("status") == "ok"
        and not marker_path(run_dir, notebook).exists()
    )


def latest_run(notebook: str, root: str | Path | None = None) -> Path | None:
    """The newest run folder under ``<root>/outputs`` in which ``notebook`` finished (its
    ``params.yaml`` and status ok: a run still under way, failed or cut short is passed over).

    Example:
        >>> import tempfile
        >>> latest_run("02_math", tempfile.mkdtemp()) is None
        True
    """
    base = Path(root or _root()) / "outputs"
    if not base.is_dir():
        return None
    runs = [
        p
        for p in base.iterdir()
        if (p / notebook / "params.yaml").is_file() and _finished(p, notebook)
    ]
    return max(runs, key=lambda p: (p / notebook / "params.yaml").stat().st_mtime, default=None)


def _assigned(source: str) -> tuple[list[str], bool] | None:
    """The names a cell of plain assignments sets, and whether any is annotated (None: the
    cell does something else)."""
    import ast

    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    names: list[str] = []
    annotated = False
    for st in body:
        if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
            names.append(st.target.id)
            annotated = True
        elif isinstance(st, ast.Assign) and all(isinstance(t, ast.Name) for t in st.targets):
            names += [t.id for t in st.targets if isinstance(t, ast.Name)]
        else:
            return None
    return names, annotated


def _is_injected(source: str, annotated: bool) -> bool:
    """A cell papermill injected: its comment (``# Parameters``) first, then ``name = value``
    lines (never annotated, unlike the notebooks' own parameters cells)."""
    first = source.lstrip().split("\n", 1)[0].strip()
    return not annotated and first.startswith("#") and "parameters" in first.lower()


def injected_parameters(namespace: Mapping[str, Any]) -> set[str] | None:
    """The parameters a caller passed to this notebook, or None when nothing was passed.

    papermill (``papermill nb.ipynb out.ipynb -p model X``, its Python API, ``lgkit run``,
    a notebook prepared by papermill and then run in Jupyter) adds a cell (tagged
    ``injected-parameters``) after the ``parameters`` cell: ``# Parameters`` then one
    ``name = value`` line per parameter. The kernel's input history (``In``) holds every
    cell run, so the names come from the newest such cell run after the notebook's own
    parameters cell (the cell of assignments that sets ``run``). A notebook opened by hand
    has no such cell: None. Names papermill adds on its own (``PAPERMILL_*``) do not count.

    Example:
        >>> own = 'run: str = "latest"\\nmodel: str = "m"'
        >>> injected_parameters({"In": ["", own, '# Parameters\\nmodel = "X"\\n', "S.start()"]})
        {'model'}
        >>> injected_parameters({"In": ["", own, "S.start()"]}) is None
        True
    """
    history = namespace.get("In", namespace.get("_ih"))
    if not isinstance(history, list):
        return None
    for source in reversed(history):
        cell = _assigned(source) if isinstance(source, str) else None
        if cell is None:
            continue
        names, annotated = cell
        if _is_injected(source, annotated):
            return {n for n in names if not n.startswith("PAPERMILL_")}
        if "run" in names:  # the notebook's own parameters cell: nothing injected after it
            return None
    return None


class ParameterConflict(InputError):
    """``run`` was passed with settings that differ from that run's (shown as one line in a
    notebook: IPython prints what :meth:`_render_traceback_` returns instead of a traceback)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


PATH_PARAMETERS = ("data_dir", "cache_dir", "train_dir", "release_dir", "out_dir")
"""Parameters that name folders: compared as resolved paths (relative: from the project root)."""


def _same(key: str, a: Any, b: Any) -> bool:
    if key in PATH_PARAMETERS and isinstance(a, str) and isinstance(b, str) and a and b:
        from lgkit.series.steps import project_path

        return project_path(a).resolve() == project_path(b).resolve()
    return bool(a == b)


def _run_folder(run: str, notebook: str) -> Path:
    folder = Path(run) if Path(run).is_absolute() else _root() / run
    if not (folder / notebook).is_dir() and (_root() / "outputs" / run / notebook).is_dir():
        folder = _root() / "outputs" / run
    return folder


def open_run(
    run: str,
    notebook: str,
    namespace: Mapping[str, Any],
    injected: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The parameters of ``notebook`` in an earlier ``lgkit run``, to update the notebook's own.

    ``run``: ``""`` (compute with the notebook's own parameters), ``"latest"`` (the newest
    run under ``outputs/`` in which this notebook finished) or a run folder (``outputs/default``
    or a name under ``outputs/``). The run's model, data folder, cache and settings replace the
    notebook's (all but ``out_dir``, ``progress`` and ``run``: the notebook still writes to
    its own ``out_dir``), so its statistics are read from the run's cache, not recomputed.
    A notebook that trains (a ``train_dir`` parameter: 07, 08) reads the run's finished
    training runs from the run's folder (same settings: nothing is trained again).

    Parameters a caller passed (``injected``; default: :func:`injected_parameters` of
    ``namespace``, i.e. papermill's injected cell) are never replaced: without ``run`` among
    them no run is read (the notebook computes with what it was given); with ``run`` among
    them, a passed setting that differs from the run's stops the notebook with one line
    naming it (:class:`ParameterConflict`). Under ``lgkit run`` itself (and when no run is
    found) nothing changes. Prints what it did.

    Example:
        >>> open_run("", "02_math", {"model": "m"})
        {}
        >>> open_run("latest", "02_math", {"model": "X"}, injected={"model"})
        Parameters passed to this notebook (model): computing with them, not reading an earlier run (pass run as well to read one).
        {}
    """
    from lgkit.series.runner import load_params_yaml
    from lgkit.viz import BATCH_ENV

    if os.environ.get(BATCH_ENV):
        return {}
    passed = injected_parameters(namespace) if injected is None else set(injected)
    if passed is not None and "run" not in passed:
        if run and passed:
            print(
                f"Parameters passed to this notebook ({', '.join(sorted(passed))}): computing with"
                " them, not reading an earlier run (pass run as well to read one)."
            )
        return {}
    if not run:
        return {}
    if run == "latest":
        folder = latest_run(notebook)
        if folder is None:
            print(
                f"No finished `lgkit run` of {notebook} under outputs/: computing with this notebook's parameters."
            )
            return {}
    else:
        folder = _run_folder(run, notebook)
    params_file = folder / notebook / "params.yaml"
    if not params_file.is_file():
        raise InputError(f"no {notebook} in run {run!r} (looked for {params_file})", field="run")
    params = load_params_yaml(params_file)
    taken = {k: v for k, v in params.items() if k in namespace and k not in KEEP_LOCAL}
    if "train_dir" in namespace:  # 07/08: the run's finished training runs are read, not redone
        taken["train_dir"] = str(folder / notebook)
    differ = sorted(
        k for k in (passed or ()) if k in taken and not _same(k, namespace.get(k), taken[k])
    )
    if differ:
        raise ParameterConflict(
            f"run {folder.name} ({folder}) computed {notebook} with "
            + ", ".join(f"{k}={taken[k]!r}" for k in differ)
            + "; passed here: "
            + ", ".join(f"{k}={namespace.get(k)!r}" for k in differ)
            + ". Pass run='' to compute with the passed settings, or leave them out to read the run",
            field="run",
        )
    changed = sorted(k for k, v in taken.items() if namespace.get(k) != v)
    print(
        f"Reading the statistics of run {folder.name} ({folder}): its data, cache and settings"
        + (f" (changed here: {', '.join(changed)})" if changed else "")
        + ". Set run = '' to compute with this notebook's own parameters."
    )
    return taken


def run_metrics(folder: str | Path) -> dict[str, Any]:
    """The ``metrics.json`` of a notebook's folder in an earlier run ({} for ``""`` or none).

    Example:
        >>> run_metrics("")
        {}
    """
    from lgkit.series.attempts import read_json

    if not folder:
        return {}
    return read_json(Path(folder) / "metrics.json") or {}


# --------------------------------------------------------------------------- clean notebooks


def filter_warning(root: str | Path | None = None) -> str:
    """A warning when this checkout lacks the nbstripout git filter that keeps outputs out of
    the tracked notebooks ("" when it is set up, outside a git checkout, or under ``lgkit run``).

    Example:
        >>> import tempfile
        >>> filter_warning(tempfile.mkdtemp())
        ''
    """
    from lgkit.viz import BATCH_ENV

    root = Path(root or _root())
    if os.environ.get(BATCH_ENV) or not (root / ".git").exists():
        return ""
    attrs = root / ".gitattributes"
    if not attrs.is_file() or "nbstripout" not in attrs.read_text(encoding="utf-8"):
        return ""
    try:
        got = subprocess.run(
            ["git", "-C", str(root), "config", "--get", "filter.nbstripout.clean"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        got = ""
    if got:
        return ""
    return (
        "This checkout has no nbstripout git filter (bash scripts/setup.sh installs it): "
        "outputs and edited parameters saved here would go into the tracked notebook. "
        "Save a copy under notebooks/local/ (ignored by git: File > Save Notebook As…) and work there."
    )


def what_this_shows(records: Iterable[Mapping[str, Any]], notebook: str = "") -> str:
    """The closing cell's text (Markdown), written from this run's findings.

    Example:
        >>> print(what_this_shows([{"claim": "a", "verdict": "supported", "estimate": 0.5,
        ...     "ci_low": 0.4, "ci_high": 0.6, "p_adj": 0.01, "n_questions": 12}]))  # doctest: +ELLIPSIS
        ### What this shows
        ...
    """
    import html

    recs = [dict(r) for r in records]
    rows, shared, _, counts = reader_findings(recs)
    rows = [{k: html.escape(v) for k, v in r.items()} for r in rows]  # Markdown renders HTML
    shared = [html.escape(x) for x in shared]
    lines = ["### What this shows", ""]
    if not recs:
        return "\n".join(lines + ["No findings were computed."])
    lines.append(
        f"{len(recs)} findings{' of ' + notebook if notebook else ''}: {counts_line(counts)}."
    )
    adj = [adjustment_of(r) for r in recs]
    for v, head, side in (
        ("supported", "Supported", "claimed"),
        ("contradicted", "Contradicted", "other"),
    ):
        for primary in (True, False):
            idx = [
                i for i, r in enumerate(rows) if r["verdict"] == v and (adj[i] != "none") == primary
            ]
            if not idx:
                continue
            if primary:
                how = " and ".join(sorted({adj[i] for i in idx}))
                what = (
                    f"the paper's claims ({how}-adjusted p < {ALPHA}, interval at the "
                    f"family's level on the {side} side)"
                )
            else:
                what = (
                    f"exploratory rows (unadjusted p < {ALPHA}, own 95% interval on the {side} "
                    "side; not corrected for the number of rows)"
                )
            p_name = "p adj" if primary else "p"
            lines += ["", f"**{head}**, {what}:"]
            lines += [
                f"- {r['claim']}: estimate {r['estimate']} {r['95% CI']}, {p_name} {r['p adj']}, n {r['n']} (min p {r['min p']})"
                for r in (rows[i] for i in idx)
            ]
    inc = [r for r in recs if r.get("verdict") == "inconclusive"]
    if inc:
        lines += ["", f"**Inconclusive** ({len(inc)}): " + _inconclusive_reasons(inc)]
    warn = small_n_warning(recs, notebook=notebook)
    if warn:
        lines += ["", f"⚠ {warn}"]
    inv = [r for r in rows if r["verdict"] == "invalid"]
    if inv:
        lines += [
            "",
            f"**Invalid** ({len(inv)}): " + "; ".join(f"{r['claim']}: {r['notes']}" for r in inv),
        ]
    if shared:
        lines += ["", "Applies to every row: " + "; ".join(shared) + "."]
    return "\n".join(lines)


def _inconclusive_reasons(recs: Sequence[Mapping[str, Any]]) -> str:
    """The inconclusive rows by why (from each row's verdict text): confounded, no verdict
    possible at this size, interval and test disagreeing, or no effect shown at a size
    that could have shown one.

    Example:
        >>> _inconclusive_reasons([{"verdict_text": "inconclusive: no verdict possible at this size: x"},
        ...                        {"verdict_text": "inconclusive"}])
        '1 cannot decide at this sample size (no verdict possible whatever the data; the row gives the smallest effect or margin it could detect); 1 could have decided at this size but the data do not show the claim (the interval includes the null, or the no-difference margin is not reached)'
    """
    kinds = {"confounded": 0, "size": 0, "disagree": 0, "other": 0}
    for r in recs:
        head = str(r.get("verdict_text") or "").split("; ")[0]
        t = str(r.get("verdict_text") or "")
        if "confounded" in head:
            kinds["confounded"] += 1
        elif "no verdict possible at this size" in t:
            kinds["size"] += 1
        elif head.startswith("inconclusive: "):
            kinds["disagree"] += 1
        else:
            kinds["other"] += 1
    words = {
        "confounded": "confounded, never decided (the row names the confound)",
        "size": "cannot decide at this sample size (no verdict possible whatever the data; the "
        "row gives the smallest effect or margin it could detect)",
        "disagree": "could decide at this size, but interval and test disagree (the row says why)",
        "other": "could have decided at this size but the data do not show the claim (the "
        "interval includes the null, or the no-difference margin is not reached)",
    }
    return "; ".join(f"{k} {words[w]}" for w, k in kinds.items() if k)


GLOSSARY = """\
**Glossary**

- **RD** (relative difference, the authors'): mean over layers of |c − i| / |c|, where c and i
  are the mean curves of correct and irrelevant responses; the figures plot the signed
  (i − c) / |c| per layer, so a curve below 0 means irrelevant responses have smaller gradients.
- **MAD** (mean absolute difference): mean over adjacent layers of |v(l+1) − v(l)| of the mean
  curve: how much the curve jumps from layer to layer (0 = flat).
- **Holm**: the step-down correction of the p-values of a notebook's primary claims (the
  paper's claims), so the chance of any false "supported" among them stays below 5 %; their
  interval is shown at the matching Bonferroni level (e.g. 99 % for 5 claims). Exploratory rows
  (breakdowns, controls, twin, learned) keep their own 95 % interval and unadjusted p.
- **TOST** (two one-sided tests): the equivalence test of a "no difference" claim: supported
  only when the ratio is shown to lie inside its margin (e.g. [1/1.1, 1.1]).
- **twin**: the same architecture and tokenizer with random weights; an effect the twin shows too
  comes from text length or shape, not from anything the model learned.
- **d_t, x_t**: at response token t, d_t is the gradient of the loss with respect to a
  projection's output and x_t its input; the weight gradient is Σ_t d_t x_tᵀ (T tokens).
- **T**: the number of tokens carrying the loss (the response, or the final answer only).
"""
"""The notebooks' closing glossary (Markdown)."""


def start(run: str, notebook: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """A notebook's first step: warn (first output) when the checkout lacks the nbstripout
    filter, then :func:`open_run`. Returns the parameters to take from the run.

    Example:
        >>> start("", "02_math", {})
        {}
    """
    warn = filter_warning()
    if warn:
        import warnings

        warnings.warn(warn, UserWarning, stacklevel=2)
    return open_run(run, notebook, namespace)


def closing(
    findings: Iterable[Any], notebook: str = "", extra: Iterable[str] = (), show: bool = True
) -> str | None:
    """Show the closing "What this shows" (from the findings, :func:`what_this_shows`), any
    ``extra`` sentences and the :data:`GLOSSARY`, once: with ``show`` it is displayed and
    ``None`` returned (a notebook's last line would otherwise echo the Markdown as a raw
    string); with ``show=False`` the Markdown is returned.

    Example:
        >>> closing([], show=False).splitlines()[0]
        '### What this shows'
    """
    from lgkit.series.outputs import findings_records

    text = what_this_shows(findings_records(findings), notebook)
    lines = [text, *[f"\n{x}" for x in extra], "", GLOSSARY]
    md = "\n".join(lines)
    if not show:
        return md
    from IPython.display import Markdown

    from lgkit.series.outputs import _display

    _display(Markdown(md))
    return None


def length_words(stats: Mapping[str, Any], metric: str = "nuclear_norm") -> list[str]:
    """06's result in words, per family: the mean-curve level per CoT level under the paper's
    mean loss and scaled by √T, and what the detailed/none ratio under √T says.

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> length_words({"math": synthetic_stats(n_samples=4, n_layers=4)})[0][:22]
        '**math**: under the pa'
    """
    from lgkit.series.controls import norm_summary

    out = []
    for fam, df in stats.items():
        if df is None or len(df) == 0:
            continue
        s = norm_summary(df, metric)
        mean, sqrt = s.get("mean", {}), s.get("sqrt", {})
        if "none" not in mean or "detailed" not in mean:
            continue
        r_mean = mean["detailed"]["level"] / mean["none"]["level"]
        r_sqrt = sqrt["detailed"]["level"] / sqrt["none"]["level"]
        levels = " / ".join(f"{c} {v['level']:.3g}" for c, v in sqrt.items())
        if 0.8 <= r_sqrt <= 1.25:
            says = (
                "about equal: the smaller gradients of slow thinking are what averaging more "
                "uncorrelated tokens (1/√T) predicts, not evidence of anything else"
            )
        elif r_sqrt < 0.8:
            says = "still smaller for detailed CoT: more than length dilution alone"
        else:
            says = "larger for detailed CoT: the mean loss's dilution more than explains the effect"
        out.append(
            f"**{fam}**: under the paper's mean loss the level of detailed CoT is {r_mean:.2f}× "
            f"that of none CoT; scaled by √T the levels are {levels} (detailed/none "
            f"{r_sqrt:.2f}×): {says}. (Point estimates; the findings table tests them.)"
        )
    return out


def coherence_reference(df: Any, column: str = "cot") -> dict[Any, float]:
    """1/√T per ``column`` value at the median loss tokens T of the correct responses: the
    coherence of uncorrelated per-token gradients (06's reference line).

    Example:
        >>> from lgkit.analysis import synthetic_stats
        >>> ref = coherence_reference(synthetic_stats(n_samples=3, n_layers=2))
        >>> sorted(ref) == ["detailed", "none", "simplified"] and all(0 < v <= 1 for v in ref.values())
        True
    """
    from lgkit import analysis as A

    d = A.filter_table(df, A.with_correct(df, None, True))
    ex = d.drop_duplicates(A.example_key_columns(d)).assign(T=A.loss_tokens)
    med = ex.groupby(column)["T"].median()
    return {k: 1.0 / math.sqrt(float(t)) for k, t in med.items() if t and t > 0}


def drilldown_data(
    data_dir: str | Path,
    family: str,
    model: Any,
    config: Any,
    cache_dir: str | Path,
    *,
    n_examples: int = 3,
    cot: str = "detailed",
    dataset: str | None = None,
    progress: bool = False,
) -> tuple[Any, dict[str, Any], Any]:
    """Per-token statistics of the first ``n_examples`` correct ``cot`` responses of ``family``
    (one data file), for :class:`lgkit.viz.widgets.ExampleDrilldown` and
    :func:`lgkit.viz.plots.token_share_figure`.

    Runs the engine with ``token_stats`` on (its own cache key, under
    ``<cache_dir>/drilldown``: read back on a second call). Returns ``(stats, examples,
    token_stats)``: the statistics rows, ``{sample_id: Example}`` and the per-token table
    (‖d_t‖‖x_t‖ per response token, layer and module).
    """
    from dataclasses import replace

    from lgkit.engine.run import _slug, stats_for
    from lgkit.formats.store import load_token_stats
    from lgkit.series.steps import _loader, data_files, project_path

    files = data_files(data_dir, family, datasets=dataset, cots=cot, correct=True)
    f = files[0]
    cfg = replace(config, token_stats=True, limit=n_examples)
    cache = project_path(cache_dir) / "drilldown"
    df = stats_for(
        model, f.path, cfg, cache_dir=cache, progress=progress, loader=_loader(model, cfg)
    )
    name = str(getattr(model, "name", model))
    runs = sorted(
        (
            p
            for p in cache.glob(f"{_slug(name)}__{_slug(Path(f.path).stem)}__*")
            if (p / "manifest.json").is_file()
        ),
        key=lambda p: (p / "manifest.json").stat().st_mtime,
    )
    tokens = load_token_stats(runs[-1])
    examples = {e.sample_id: e for e in f.read()[:n_examples]}
    return df, examples, tokens
