"""What a notebook needs to be used in class: the run it reads, clean tracked files, the reader's
findings table (verdict first, shared rule and caveats once, a count line), the smallest
achievable p, a closing "What this shows" written from the findings, and a glossary.

* :func:`open_run`: a notebook opened after ``lgkit run`` takes that run's parameters, data
  and statistics cache (``run="latest"``: the newest finished run under ``outputs/``), so
  every statistic is read back from the cache instead of recomputed; parameters a caller
  passed (papermill's injected cell, :func:`injected_parameters`) are never replaced;
* :func:`filter_warning`: the notebook runs from a checkout without the nbstripout filter
  (its outputs would be committed);
* :func:`reader_findings`: findings records split into short rows, shared notes and rules;
* :func:`findings_html`: the reader's table that fits a screen (rows at most three lines, the
  rest in each row's ``<details>``; rules and shared notes once, as footnotes);
* :func:`min_p`: the smallest p-value a test on ``n`` questions can give;
* :func:`what_this_shows`, :data:`GLOSSARY`.

Example:
    >>> rows, shared, rules, counts = reader_findings([
    ...     {"claim": "a", "verdict": "supported", "verdict_text": "supported; synthetic", "n_questions": 12,
    ...      "estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6, "p_adj": 0.01, "rule": "R"},
    ...     {"claim": "b", "verdict": "inconclusive", "verdict_text": "inconclusive; synthetic", "n_questions": 12,
    ...      "rule": "R"}])
    >>> rows[0]["verdict"], shared, rules, counts_line(counts)
    ('supported', ['synthetic'], ['R'], '1 supported, 1 inconclusive, 0 contradicted, 0 invalid')
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

logger = logging.getLogger(__name__)

__all__ = [
    "GLOSSARY",
    "ParameterConflict",
    "closing",
    "coherence_reference",
    "counts_line",
    "drilldown_data",
    "filter_warning",
    "findings_html",
    "injected_parameters",
    "latest_run",
    "length_words",
    "min_p",
    "open_run",
    "reader_findings",
    "run_metrics",
    "small_n_warning",
    "start",
    "what_this_shows",
]

VERDICT_ORDER = ("supported", "inconclusive", "contradicted", "invalid")
ALPHA = 0.05
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


# --------------------------------------------------------------------------- findings for readers


def min_p(n: int, paired: bool = True) -> float:
    """The smallest p-value a permutation test on ``n`` questions can reach (before Holm).

    Uses :func:`lgkit.analysis.inference.min_p` when the statistics core provides it;
    otherwise the exact bound for antisymmetric statistics: paired (sign-flip) ``2 / 2**n``,
    unpaired ``2 / C(2n, n)``.

    Example:
        >>> min_p(4)
        0.125
    """
    try:
        from lgkit.analysis.inference import min_p as core_min_p  # type: ignore[attr-defined]
    except ImportError:
        core_min_p = None
    if core_min_p is not None:
        return float(core_min_p(n, paired))
    if n <= 0:
        return 1.0
    return float(2.0 ** (1 - n)) if paired else 2.0 / math.comb(2 * n, n)


def _num(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, (int, float)) and not isinstance(x, bool) and x == x else ""


def _level(r: Mapping[str, Any]) -> str:
    """The interval's level before it when it is not 95% (a primary claim's Bonferroni level).

    Example:
        >>> _level({"ci_level": 0.99}), _level({"ci_level": 0.95}), _level({})
        ('99%: ', '', '')
    """
    lvl = r.get("ci_level")
    ok = isinstance(lvl, int | float) and lvl == lvl and abs(float(lvl) - 0.95) > 1e-9
    return f"{100 * float(lvl):.3g}%: " if ok else ""


def reader_findings(
    records: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, str]], list[str], list[str], dict[str, int]]:
    """Findings records (``metrics.json``) as a reader's table.

    Returns ``(rows, shared, rules, counts)``: one row per finding with ``claim``,
    ``statistic``, ``verdict`` (the word), ``estimate``, ``95% CI``, ``p adj``, ``n`` (with the smallest
    achievable p) and ``notes`` (what is said of this row only: the invalid reason, the
    labels not shared by every row, the caveats and the twin control); ``shared``: the
    labels every row carries (said once under the table); ``rules``: the distinct verdict
    rules; ``counts``: findings per verdict.
    """
    recs = [dict(r) for r in records]
    said = [_said(r) for r in recs]
    common = set.intersection(*(set(x) for x in said)) if len(said) > 1 else set()
    shared = [x for x in (said[0] if said else []) if x in common]
    rows = []
    for r, own in zip(recs, said, strict=True):
        verdict = str(r.get("verdict") or "")
        n = r.get("n_questions") or 0
        first = str(r.get("verdict_text") or "").split("; ")[0]
        notes = [first.removeprefix("invalid: ")] if verdict == "invalid" else []
        notes += [x for x in own if x not in common]
        lo, hi = _num(r.get("ci_low")), _num(r.get("ci_high"))
        rows.append(
            {
                "claim": str(r.get("claim") or ""),
                "statistic": str(r.get("statistic") or ""),
                "verdict": verdict,
                "estimate": _num(r.get("estimate")),
                "95% CI": f"{_level(r)}[{lo}, {hi}]" if lo else "",
                "p adj": _num(r.get("p_adj")),
                "n": str(n) if n else "",
                "min p": f"{min_p(int(n)):.2g}" if n else "",
                "notes": "; ".join(notes),
            }
        )
    rules = list(dict.fromkeys(str(r.get("rule")) for r in recs if r.get("rule")))
    counts = {v: sum(r.get("verdict") == v for r in recs) for v in VERDICT_ORDER}
    return rows, shared, rules, counts


def counts_line(counts: Mapping[str, int]) -> str:
    """``"32 supported, 20 inconclusive, 6 contradicted"`` (invalid only when there are any, but
    always in a full count).

    Example:
        >>> counts_line({"supported": 2, "inconclusive": 1, "contradicted": 0, "invalid": 0})
        '2 supported, 1 inconclusive, 0 contradicted, 0 invalid'
    """
    return ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICT_ORDER)


def small_n_warning(records: Iterable[Mapping[str, Any]], alpha: float = ALPHA) -> str:
    """A warning when some comparison has too few questions for any verdict: its smallest
    achievable p is already ≥ ``alpha`` ("" otherwise).

    Example:
        >>> small_n_warning([{"n_questions": 4, "verdict": "inconclusive"}])[:30]
        'n = 4: the smallest p a permut'
    """
    ns = sorted({int(r.get("n_questions") or 0) for r in records if r.get("verdict") != "invalid"})
    low = [n for n in ns if n and min_p(n) >= alpha]
    if not low:
        return ""
    n = max(low)
    return (
        f"n = {n}: the smallest p a permutation test on {n} questions can give is "
        f"{min_p(n):.3g} ≥ {alpha}, so these rows cannot be supported or contradicted whatever "
        f"the data; raise n_per_variant (each question adds a factor 2 of resolution)."
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
    for v, head in (("supported", "Supported"), ("contradicted", "Contradicted")):
        picked = [r for r in rows if r["verdict"] == v]
        if picked:
            lines += ["", f"**{head}** (Holm-adjusted p < {ALPHA}, interval on the claimed side):"]
            lines += [
                f"- {r['claim']}: estimate {r['estimate']} {r['95% CI']}, p adj {r['p adj']}, n {r['n']} (min p {r['min p']})"
                for r in picked
            ]
    inc = [r for r in rows if r["verdict"] == "inconclusive"]
    if inc:
        lines += ["", f"**Inconclusive** ({len(inc)}): the data cannot tell at this sample size."]
    warn = small_n_warning(recs)
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


_VERDICT_STYLE = {
    "supported": "background:#e6f0ff",
    "contradicted": "background:#fff0e0",
    "inconclusive": "background:#f4f4f4",
    "invalid": "background:#eee;color:#666",
}

LINE_PX = 19
"""Line height (px, at the table's 14 px) of the reader's findings table: in px, a value
JupyterLab's sanitiser keeps; a claim shows at most :data:`CLAIM_LINES` of them."""
CLAIM_LINES = 3
"""Lines a claim takes in its row (the rest, and everything else said of the row, is one
click away in the row's ``<details>``)."""

# column widths (em of the table's 14 px): verdict, estimate, interval, p and n stay on one line
_COLUMNS = (
    ("nb", "3.6em"), ("claim", ""), ("verdict", "7.2em"), ("estimate", "5.8em"),
    ("95% CI", "10em"), ("p adj", "5.6em"), ("n", "3.2em"),
)  # fmt: skip
_CELL = "border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left"


def short_claim(claim: str, previous: str = "") -> str:
    """A claim in its table row: a claim that extends the row above (e.g. its learned-effect
    row, "<claim>: stronger after training than at random initialisation") shows only what it
    adds, after "↳ …", so what tells it apart is not clamped away (the row's details hold the
    whole claim).

    Example:
        >>> short_claim("A is smaller: stronger after training", "A is smaller")
        '↳ … stronger after training'
        >>> short_claim("B", "A")
        'B'
    """
    if previous and claim.startswith(previous) and len(claim) > len(previous):
        rest = claim[len(previous) :].lstrip(" :,;")
        if rest:
            return f"↳ … {rest}"
    return claim


def _notebook_short(name: str) -> str:
    """``06`` of ``06_length_controls`` (the full name is the link's title).

    Example:
        >>> _notebook_short("06_length_controls"), _notebook_short("x")
        ('06', 'x')
    """
    head = name.split("_", 1)[0]
    return head if head.isdigit() else name


def footnotes(
    records: Sequence[Mapping[str, Any]], shared: Iterable[str] = (), min_rows: int = 2
) -> tuple[list[str], list[str], list[list[str]]]:
    """What is said of the rows besides their numbers, each text once.

    Returns ``(rules, notes, own)``: the distinct verdict rules (footnotes R1, R2, …), the notes
    (caveats, labels, controls) said of at least ``min_rows`` rows but not of every row (footnotes
    1, 2, …: ``shared`` ones are said once for the whole table), and per row what is said of that
    row only.

    Example:
        >>> recs = [{"caveats": "a; b", "rule": "R"}, {"caveats": "a; c", "rule": "R"}]
        >>> footnotes(recs)
        (['R'], ['a'], [['b'], ['c']])
    """
    said = [_said(r) for r in records]
    skip = set(shared)
    count: dict[str, int] = {}
    for s in said:
        for x in dict.fromkeys(s):
            count[x] = count.get(x, 0) + 1
    notes = [
        x
        for x in dict.fromkeys(x for s in said for x in s)
        if count[x] >= min_rows and x not in skip
    ]
    own = [[x for x in s if x not in skip and x not in notes] for s in said]
    rules = list(dict.fromkeys(str(r.get("rule")) for r in records if r.get("rule")))
    return rules, notes, own


def _said(r: Mapping[str, Any]) -> list[str]:
    """What is said of a row besides its verdict: labels, caveats, the twin control."""
    lab = str(r.get("verdict_text") or "").split("; ")[1:]
    cav = [x for x in str(r.get("caveats") or "").split("; ") if x]
    return [*lab, *cav, *([str(r["control"])] if r.get("control") else [])]


def _row_details(
    rec: Mapping[str, Any],
    row: Mapping[str, str],
    own: Sequence[str],
    refs: Sequence[str],
    rule_ref: str,
) -> str:
    """The escaped body of a row's ``<details>``: everything said of the row but its numbers."""
    import html

    esc = html.escape
    items = [f"<b>Claim:</b> {esc(row['claim'])}"]
    if row["statistic"]:
        items.append(f"<b>Statistic:</b> {esc(row['statistic'])}")
    first = str(rec.get("verdict_text") or "").split("; ")[0]
    if first and first != row["verdict"]:
        items.append(f"<b>Verdict:</b> {esc(first)}")
    p = _num(rec.get("p"))
    if p or row["min p"]:
        items.append(
            f"<b>p</b> before Holm: {esc(p or '–')}; <b>min p</b> (the smallest its test can give"
            f" at n = {esc(row['n'] or '0')}): {esc(row['min p'] or '–')}"
        )
    if own:
        items.append("<b>Notes:</b> " + esc("; ".join(own)))
    if refs:
        items.append("<b>Notes</b> under the table: " + esc(", ".join(refs)))
    if rec.get("detail"):
        items.append(f"<b>How measured:</b> {esc(str(rec['detail']))}")
    if rule_ref:
        items.append(f"<b>Rule:</b> {esc(rule_ref)} (under the table)")
    return "".join(f"<div style='margin:2px 0'>{x}</div>" for x in items)


def findings_html(
    records: Iterable[Mapping[str, Any]], *, notebook_links: bool = False, caption: str = ""
) -> str:
    """The reader's findings table as HTML (every data text escaped) that fits a screen.

    The count line first; then one row per finding, at most :data:`CLAIM_LINES` lines high:
    the claim (clamped; click it for the row's ``<details>``: full claim, statistic, p before
    Holm and the smallest achievable p, its own caveats and control, how it was measured and a
    reference to its rule), the verdict word, estimate, interval, Holm-adjusted p and n. The
    table takes the output area's width (fixed layout: no sideways scroll). Under it, each
    text once: what applies to every row, the small-sample warning, the notes several rows
    share (numbered) and the verdict rules (R1, R2, …, collapsible). Inline styles only (what
    JupyterLab's sanitiser keeps). ``notebook_links``: a first column linking to
    ``#<notebook>`` (the run's index page).

    Example:
        >>> h = findings_html([{"claim": "<b>x</b>", "verdict": "supported", "verdict_text": "supported",
        ...                     "n_questions": 4, "rule": "R"}])
        >>> "&lt;b&gt;x&lt;/b&gt;" in h and "<details" in h and "1 supported" in h
        True
    """
    import html

    esc = html.escape
    recs = [dict(r) for r in records]
    rows, shared, _, counts = reader_findings(recs)
    rules, notes, own = footnotes(recs, shared)
    lh = f"line-height:{LINE_PX}px"
    out = [
        f"<div class='lgkit-findings' style='max-width:100%;font-size:14px;{lh}'>",
        f"<p class='counts' style='margin:.3em 0'><b>{esc(counts_line(counts))}</b>"
        " (the paper's claims Holm-adjusted within each notebook; breakdowns exploratory).</p>",
        "<table class='findings' style='border-collapse:collapse;font-size:14px;width:100%;"
        f"table-layout:fixed;{lh}'>",
    ]
    if caption:
        out.append(
            f"<caption style='text-align:left;font-weight:bold;caption-side:top'>{esc(caption)}</caption>"
        )
    cols = [c for c in _COLUMNS if notebook_links or c[0] != "nb"]
    out.append(
        "<colgroup>"
        + "".join(f"<col style='width:{w}'>" if w else "<col>" for _, w in cols)
        + "</colgroup>"
    )
    head = {
        "95% CI": "CI (95% unless marked)"
    }  # a primary claim's interval is at its family's level
    out.append(
        "<tr>"
        + "".join(f"<th style='{_CELL}'>{esc(head.get(h, h))}</th>" for h, _ in cols)
        + "</tr>"
    )
    one_line = ";white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
    clamp = f"display:block;max-height:{CLAIM_LINES * LINE_PX}px;overflow:hidden;overflow-wrap:break-word;{lh}"
    prev = ""
    for rec, row, mine in zip(recs, rows, own, strict=True):
        short, prev = short_claim(row["claim"], prev), row["claim"]
        tds = []
        if notebook_links:
            nb = str(rec.get("notebook", ""))
            st = str(rec.get("status", "ok") or "ok")  # a stale or failed result says so
            tag = f"<br><b class='no' style='font-size:11px'>{esc(st)}</b>" if st != "ok" else ""
            tds.append(
                f"<td style='{_CELL};overflow:hidden'><a href='#{esc(nb)}' title='{esc(nb)}'>"
                f"{esc(_notebook_short(nb))}</a>{tag}</td>"
            )
        refs = [f"[{notes.index(x) + 1}]" for x in _said(rec) if x in notes]
        rule = str(rec.get("rule") or "")
        rule_ref = f"R{rules.index(rule) + 1}" if rule in rules else ""
        body = _row_details(rec, row, mine, list(dict.fromkeys(refs)), rule_ref)
        tds.append(
            f"<td style='{_CELL}'><details style='margin:0'><summary style='display:block;cursor:pointer;"
            f"list-style:none'><span style='{clamp}'>▸ {esc(short)}</span></summary>"
            f"<div style='font-size:12px;color:#444;margin-top:3px'>{body}</div></details></td>"
        )
        v = row["verdict"]
        tds.append(
            f"<td class='v-{esc(v)}' style='{_CELL}{one_line};{_VERDICT_STYLE.get(v, '')}'>{esc(v)}</td>"
        )
        for k in ("estimate", "95% CI", "p adj", "n"):
            tds.append(f"<td style='{_CELL}{one_line}' title='{esc(row[k])}'>{esc(row[k])}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</table>")
    small = "font-size:12px;color:#444;margin:.3em 0"
    out.append(
        f"<p style='{small}'>▸ click a claim for its statistic, p before Holm, the smallest p its "
        "test can give (min p), its caveats, control and how it was measured. <b>n</b>: questions "
        "compared; <b>p adj</b>: Holm-adjusted over its notebook's primary claims (an exploratory "
        "row's own p).</p>"
    )
    if shared:
        out.append(f"<p class='shared' style='{small}'><b>Applies to every row:</b> "
                   + esc("; ".join(shared)) + "</p>")  # fmt: skip
    warn = small_n_warning(recs)
    if warn:
        out.append(f"<p class='warn' style='color:#a00'>⚠ {esc(warn)}</p>")
    if notes:
        out.append(
            f"<ol class='notes' style='{small};padding-left:2.2em'>"
            + "".join(f"<li>{esc(x)}</li>" for x in notes)
            + "</ol>"
        )
    out.append(
        "<details><summary>Verdict rules (R1"
        + (f"–R{len(rules)}" if len(rules) > 1 else "")
        + ")</summary>"
        + "".join(f"<p style='{small}'><b>R{k}:</b> {esc(r)}</p>" for k, r in enumerate(rules, 1))
        + "</details>"
        if rules
        else ""
    )
    out.append("</div>")
    return "\n".join(x for x in out if x)


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
