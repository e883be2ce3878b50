"""The run's index page: what was found first (shared caveats once, verdict counts, the headline
claims with their controls), then every notebook's status, findings and figures in one HTML file."""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lgkit.fsio import atomic_write_text
from lgkit.series.attempts import read_json

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- index


def collect_findings(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every notebook's findings of a run, in series order, with a ``notebook`` field.

    Example:
        >>> collect_findings("/nonexistent")
        []
    """
    run_dir = Path(run_dir)
    rows = []
    for nb_dir in _notebook_dirs(run_dir):
        m = read_json(nb_dir / "metrics.json") or {}
        for f in m.get("findings") or []:
            if isinstance(f, dict):
                rows.append({"notebook": nb_dir.name, **f})
    return rows


def _notebook_dirs(run_dir: Path) -> list[Path]:
    from lgkit.series.attempts import notebook_dirs

    return notebook_dirs(run_dir)


def png_title(path: Path) -> str | None:
    """The ``Title`` text chunk of a PNG (what :func:`lgkit.viz.plots.save_figure` writes).

    Example:
        >>> png_title(Path("/nonexistent.png")) is None
        True
    """
    import struct
    import zlib

    try:
        data = path.read_bytes()
    except OSError:
        return None
    pos = 8
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"tEXt" and body.startswith(b"Title\0"):
            return body[6:].decode("latin-1")
        if kind == b"zTXt" and body.startswith(b"Title\0"):
            return zlib.decompress(body[7:]).decode("latin-1")
        if kind == b"iTXt" and body.startswith(b"Title\0"):
            rest = body[6:]
            compressed, text = rest[0], rest[2:].split(b"\0", 2)[-1]
            return (zlib.decompress(text) if compressed else text).decode("utf-8")
        if kind == b"IDAT":
            break
        pos += 12 + n
    return None


def _rel(p: Path, base: Path) -> str:
    """A link from ``base`` to ``p``: relative, percent-encoded, starting with ``./``.

    File names are data too: ``./`` keeps a name like ``javascript:x`` a path, and the
    encoding keeps ``#``, ``?`` and quotes out of the URL's syntax.

    Example:
        >>> _rel(Path("/r/javascript:alert(1)/a b.html"), Path("/r"))
        './javascript%3Aalert%281%29/a%20b.html'
    """
    from urllib.parse import quote

    return "./" + quote(os.path.relpath(p, base).replace(os.sep, "/"), safe="/")


HEADLINE_NOTEBOOKS = ("02", "03")
"""Notebooks (number prefixes) whose pooled claims are the run's headline: slow vs fast thinking."""
HEADLINE_STATISTICS = (
    "mean-curve level ratio detailed/none",
    "MAD (all layers) ratio detailed/none",
    "RD(correct, irrelevant) ratio detailed/none",
)
"""The statistics of the headline claims, in the order shown (pooled over datasets)."""


def headline_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's headline claims: the pooled rows (no ``[dataset]`` tag) of 02 and 03 whose
    statistic is one of :data:`HEADLINE_STATISTICS` (the paper's primary claims: slow thinking
    gives smaller, flatter gradients and separates correct from irrelevant responses more),
    by notebook in that order; when none matches (other claim texts), each headline
    notebook's first three pooled rows.

    Example:
        >>> fs = [{"notebook": "02_math", "claim": "[gsm8k] a", "statistic": HEADLINE_STATISTICS[0]},
        ...       {"notebook": "02_math", "claim": "a", "statistic": HEADLINE_STATISTICS[0]},
        ...       {"notebook": "04_wiki", "claim": "b", "statistic": HEADLINE_STATISTICS[0]}]
        >>> [f["claim"] for f in headline_findings(fs)]
        ['a']
    """

    def pooled(nb: str) -> list[dict[str, Any]]:
        return [
            f
            for f in findings
            if str(f.get("notebook", "")).split("_")[0] == nb
            and not str(f.get("claim", "")).startswith("[")
        ]

    out = []
    for nb in HEADLINE_NOTEBOOKS:
        rows = pooled(nb)
        picked = [
            next((f for f in rows if f.get("statistic") == s), None) for s in HEADLINE_STATISTICS
        ]
        out += [f for f in picked if f is not None]  # the first row of each statistic
    if out:
        return out
    return [f for nb in HEADLINE_NOTEBOOKS for f in pooled(nb)[:3]]


def headline_controls(run_dir: Path) -> dict[tuple[str, str], list[str]]:
    """Per headline claim of 02/03, the verdicts of the same claim under 06's controls
    (loss ÷ √T, summed loss, answer-only loss) and its own learned-vs-init contrast, one
    short line each: 06's ``metrics.json`` key :data:`lgkit.series.findings.HEADLINE_KEY`
    joined with 02's and 03's findings by :func:`lgkit.series.findings.headline_entries`.
    Keys are ``(notebook, claim)``; a claim whose controls 06 did not compute (06 not run)
    says "not run".

    Example:
        >>> headline_controls(Path("/nonexistent"))
        {}
    """
    from lgkit.series.findings import CONTROL_NAMES, HEADLINE_KEY, LEARNED, headline_entries

    dirs = {d.name.split("_")[0]: d for d in _notebook_dirs(run_dir)}
    m06 = read_json(dirs["06"] / "metrics.json") if "06" in dirs else None
    ctl = (m06 or {}).get(HEADLINE_KEY) or {}
    names = {**CONTROL_NAMES, LEARNED: LEARNED}
    out: dict[tuple[str, str], list[str]] = {}
    for nb in HEADLINE_NOTEBOOKS:
        m = read_json(dirs[nb] / "metrics.json") if nb in dirs else None
        if not isinstance(m, dict) or not isinstance(m.get("findings"), list):
            continue
        fam = str(m.get("family") or "")
        for e in headline_entries(
            m["findings"], ctl.get(fam) if isinstance(ctl, dict) else None, fam
        ):
            out[(dirs[nb].name, str(e["claim"]))] = [
                f"{names.get(k, k)}: {v.get('verdict')}" for k, v in e["controls"].items()
            ]
    return out


def headline_html(
    findings: list[dict[str, Any]],
    controls: Mapping[tuple[str, str], Sequence[str]]
    | Callable[[dict[str, Any]], Sequence[str]]
    | None = None,
) -> list[str]:
    """HTML of the headline claims (:func:`headline_findings`): notebook, claim, verdict word,
    estimate with its 95% interval, Holm-adjusted p and n, one line each, and under a claim
    its controls line when ``controls`` has one (a mapping ``(notebook, claim) -> lines`` as
    :func:`headline_controls` gives, or a function of the finding returning the lines).
    Every text escaped.

    Example:
        >>> f = {"notebook": "02_math", "claim": "<a>", "verdict": "supported",
        ...      "statistic": HEADLINE_STATISTICS[0], "estimate": 0.8, "ci_low": 0.7, "ci_high": 0.9}
        >>> h = "".join(headline_html([f], lambda f: ["√T: <b>inconclusive</b>"]))
        >>> "&lt;a&gt;" in h and "controls: √T: &lt;b&gt;inconclusive&lt;/b&gt;" in h
        True
    """
    from lgkit.series.verdicts import VERDICT_STYLE, num_text

    esc = html.escape
    rows = headline_findings(findings)
    if not rows:
        return []
    out = [
        "<table class='headline' style='width:100%;table-layout:fixed'><colgroup><col style='width:3.6em'>"
        "<col><col style='width:7.2em'><col style='width:15em'><col style='width:4.8em'>"
        "<col style='width:3.2em'></colgroup>",
        "<tr><th title='notebook'>nb</th><th>headline claim</th><th>verdict</th><th>estimate [CI]</th>"
        "<th>p adj</th><th>n</th></tr>",
    ]
    for f in rows:
        nb, claim, v = (
            str(f.get("notebook", "")),
            str(f.get("claim", "")),
            str(f.get("verdict", "")),
        )
        lo, hi = num_text(f.get("ci_low")), num_text(f.get("ci_high"))
        lvl = f.get("ci_level")
        pct = f"{100 * float(lvl):.3g}% " if isinstance(lvl, int | float) and lvl == lvl else ""
        est = num_text(f.get("estimate")) + (f" {pct}[{lo}, {hi}]" if lo else "")
        st = str(f.get("status", "ok") or "ok")
        tag = f"<br><b class='no' style='font-size:11px'>{esc(st)}</b>" if st != "ok" else ""
        lines = controls(f) if callable(controls) else (controls or {}).get((nb, claim), [])
        ctl = (
            f"<div class='controls small' style='font-size:12px;color:#444'>controls: "
            f"{esc(' · '.join(str(x) for x in lines))}</div>"
            if lines
            else ""
        )
        out.append(
            f"<tr><td><a href='#{esc(nb)}' title='{esc(nb)}'>{esc(nb.split('_')[0])}</a>{tag}</td>"
            f"<td>{esc(claim)}{ctl}</td><td style='{VERDICT_STYLE.get(v, '')}'>{esc(v)}</td>"
            f"<td style='white-space:nowrap'>{esc(est)}</td><td>{esc(num_text(f.get('p_adj')))}</td>"
            f"<td>{esc(str(f.get('n_questions') or ''))}</td></tr>"
        )
    out.append("</table>")
    return out


def summary_section(run_dir: Path, findings: list[dict[str, Any]]) -> list[str]:
    """The top of the index: what was found, in one screen. The caveats every result shares
    (synthetic data, quantised weights) once, the verdict counts (all and per notebook) and the
    headline claims with their controls lines (:func:`headline_html`).

    Example:
        >>> summary_section(Path("/nonexistent"), [])
        ['<h2>What was found</h2>', '<p>No findings yet.</p>']
    """
    from lgkit.series.verdicts import VERDICT_ORDER, adjustment_text, counts_line

    esc = html.escape
    metrics = [read_json(d / "metrics.json") or {} for d in _notebook_dirs(run_dir)]
    parts = []
    if any(m.get("data") == "synthetic" for m in metrics):
        from lgkit.series.outputs import data_banner

        parts.append(f"<p class='banner'>{esc(data_banner('synthetic'))}</p>")
    weights = {
        k: v for m in metrics for k, v in (m.get("weights") or {}).items() if v != "as loaded"
    }
    if weights:
        w = ", ".join(f"{k}: {v} GGUF dequantised to float32" for k, v in weights.items())
        parts.append(
            f"<p class='small weights'>weights (every result of these models): {esc(w)}</p>"
        )
    parts.append("<h2>What was found</h2>")
    if not findings:
        return parts + ["<p>No findings yet.</p>"]
    counts = {v: sum(f.get("verdict") == v for f in findings) for v in VERDICT_ORDER}
    per_nb: dict[str, dict[str, int]] = {}
    for f in findings:
        c = per_nb.setdefault(str(f.get("notebook", "")), dict.fromkeys(VERDICT_ORDER, 0))
        if f.get("verdict") in c:
            c[str(f["verdict"])] += 1
    each = " · ".join(
        f"<a href='#{esc(nb)}'>{esc(nb.split('_')[0])}</a>: {esc(counts_line(c))}"
        for nb, c in per_nb.items()
    )
    parts.append(
        f"<p class='counts'><b>{len(findings)} findings: {esc(counts_line(counts))}</b>"
        f" ({esc(adjustment_text(findings))}; the full table is below).</p>"
        f"<p class='small'>{each}</p>"
    )
    parts += headline_html(findings, headline_controls(run_dir))
    return parts


def findings_section(run_dir: Path, findings: list[dict[str, Any]] | None = None) -> list[str]:
    """HTML of the run's full findings table: one short row per finding
    (:func:`lgkit.series.verdicts.findings_html`), the count line, and the rules and caveats
    once.

    Example:
        >>> findings_section(Path("/nonexistent"))
        ['<h2>Findings</h2>', '<p>No findings yet.</p>']
    """
    from lgkit.series.verdicts import findings_html

    findings = _findings_with_status(run_dir) if findings is None else findings
    parts = ["<h2>Findings</h2>"]
    if not findings:
        return parts + ["<p>No findings yet.</p>"]
    parts.append(findings_html(findings, notebook_links=True))
    return parts


def _findings_with_status(run_dir: Path) -> list[dict[str, Any]]:
    """:func:`collect_findings` with each notebook's status (a stale result says so in every row)."""
    from lgkit.series.attempts import notebook_states

    findings = collect_findings(run_dir)
    states = notebook_states(run_dir)
    for f in findings:
        f["status"] = states.get(f["notebook"], {}).get("status", "ok")
    return findings


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f3f3f3}.no{background:#fbe3e3}.sup{background:#eef4ff}.con{background:#fff0e0}
.inc{background:#f4f4f4}.inv{background:#eee;color:#777}.banner{background:#fde2e2;border:2px solid #c00;padding:.6em;font-weight:bold}
.thumbs img{max-width:100%;max-height:320px;border:1px solid #ddd}
figure{margin:1em 0}figcaption{font-size:.9em;color:#444;max-width:1100px}.small{color:#666;font-size:.9em}
details{margin:.3em 0}code{background:#f5f5f5;padding:0 3px}
"""


def _header(run_dir: Path, series: dict[str, Any]) -> list[str]:
    """The page head: run name, profile, git hash, times, status and the failed notebook."""
    esc = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>lgkit run {esc(run_dir.name)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>lgkit run <code>{esc(run_dir.name)}</code></h1>",
    ]
    meta = [
        f"profile: <b>{esc(str(series.get('profile', '?')))}</b>",
        f"git: <code>{esc(str(series.get('git_hash')))}</code>",
        f"started: {esc(str(series.get('start_time', '?')))}",
    ]
    if series.get("seconds") is not None:
        scope = ", ".join(series.get("notebooks") or [])
        meta.append(
            f"wall time: {float(series['seconds']):.0f} s" + (f" ({esc(scope)})" if scope else "")
        )
    if series.get("history"):
        meta.append(f"{len(series['history'])} earlier invocation(s) into this run (see run.json)")
    if series.get("status"):
        meta.append(f"status: <b>{esc(str(series['status']))}</b>")
    parts.append(f"<p class='small'>{' · '.join(meta)}</p>")
    if series.get("failed"):
        f = series["failed"]
        kept = (read_json(run_dir / str(f.get("notebook")) / "run.json") or {}).get(
            "status"
        ) == "ok"
        parts.append(
            f"<p class='no'>Notebook <b>{esc(str(f.get('notebook')))}</b> failed: {esc(str(f.get('reason')))}"
            f" — failed notebook: <code>{esc(str(f.get('path')))}</code>"
            + (" (its last good results are kept and shown below)" if kept else "")
            + "</p>"
        )
    return parts


_STATUS_CLASS = {"ok": "", "stale": "no", "failed": "no", "interrupted": "no", "running": ""}


def _status_line(rec: dict[str, Any], state: dict[str, Any] | None = None) -> str:
    """A notebook's status (:data:`lgkit.series.attempts.STATUSES`), time and why.

    Example:
        >>> _status_line({"status": "ok"}, {"status": "stale", "detail": "data <changed>"})
        "<p class='small'>status: <b class='no'>stale</b> · data &lt;changed&gt;</p>"
    """
    esc = html.escape
    state = state or {"status": rec.get("status", "not run"), "detail": rec.get("error") or ""}
    status = str(state.get("status"))
    cls = _STATUS_CLASS.get(status, "no")
    info = [
        f"status: <b class='{cls}'>{esc(status)}</b>" if cls else f"status: <b>{esc(status)}</b>"
    ]
    if rec.get("seconds") is not None and status != "not run":
        info.append(f"{float(rec['seconds']):.0f} s")
    if state.get("detail"):
        info.append(esc(str(state["detail"])))
    return f"<p class='small'>{' · '.join(info)}</p>"


def status_table(states: dict[str, dict[str, Any]]) -> list[str]:
    """HTML table of every notebook's status and why (escaped).

    Example:
        >>> status_table({"02_math": {"status": "stale", "detail": "x"}})[1]
        "<tr><td><a href='#02_math'>02_math</a></td><td class='no'>stale</td><td>x</td></tr>"
    """
    esc = html.escape
    rows = ["<table><tr><th>notebook</th><th>status</th><th>why</th></tr>"]
    for name, st in states.items():
        status = str(st.get("status"))
        rows.append(
            f"<tr><td><a href='#{esc(name)}'>{esc(name)}</a></td>"
            f"<td class='{_STATUS_CLASS.get(status, 'no') or 'ok'}'>{esc(status)}</td>"
            f"<td>{esc(str(st.get('detail') or ''))}</td></tr>"
        )
    rows.append("</table>")
    return rows


def _links(nb_dir: Path, run_dir: Path, m: dict[str, Any]) -> list[str]:
    """Links to the executed notebook, metrics, parameters and tables, and the key counts."""
    esc = html.escape
    name = nb_dir.name
    links = []
    for fn, label in (
        (f"{name}.html", "executed notebook (HTML)"),
        (f"{name}.ipynb", "executed notebook (.ipynb)"),
        (f"{name}.failed.ipynb", "failed notebook (.ipynb)"),
        ("metrics.json", "metrics.json"),
        ("params.yaml", "parameters"),
        ("run.json", "run.json"),
    ):
        if (nb_dir / fn).is_file():
            links.append(f"<a href='{esc(_rel(nb_dir / fn, run_dir))}'>{esc(label)}</a>")
    parts = ["<p>" + " · ".join(links) + "</p>"]
    keys = {
        k: m[k]
        for k in ("model", "models", "n_examples", "n_rows", "n_files", "datasets")
        if k in m
    }
    if keys:
        parts.append(
            "<p class='small'>"
            + " · ".join(f"{esc(k)}: {esc(json.dumps(v, default=str))}" for k, v in keys.items())
            + "</p>"
        )
    tables = sorted((nb_dir / "tables").glob("*")) if (nb_dir / "tables").is_dir() else []
    if tables:
        parts.append(
            "<p>tables: "
            + " · ".join(f"<a href='{esc(_rel(t, run_dir))}'>{esc(t.name)}</a>" for t in tables)
            + "</p>"
        )
    return parts


def _figures(nb_dir: Path, run_dir: Path) -> list[str]:
    """Each figure of a notebook with its caption (the PNG's Title) and PDF link."""
    esc = html.escape
    figs = sorted(nb_dir.glob("*.png")) + (
        sorted((nb_dir / "figures").glob("*.png")) if (nb_dir / "figures").is_dir() else []
    )
    if not figs:
        return []
    parts = ["<div class='thumbs'>"]
    for fpng in figs:
        pdf = fpng.with_suffix(".pdf")
        href = _rel(fpng, run_dir)
        pdf_link = f" (<a href='{esc(_rel(pdf, run_dir))}'>pdf</a>)" if pdf.is_file() else ""
        caption = png_title(fpng) or fpng.stem
        parts.append(
            f"<figure><a href='{esc(href)}'><img src='{esc(href)}' alt='{esc(caption)}'></a>"
            f"<figcaption><b>{esc(fpng.stem)}</b>{pdf_link}: {esc(caption)}</figcaption></figure>"
        )
    parts.append("</div>")
    return parts


def write_index(run_dir: str | Path) -> Path:
    """Write ``<run>/index.html``: every notebook's status, outputs and one findings table.

    Built from what is on disk (``run.json``, ``metrics.json``, ``figures/``,
    ``tables/`` of each notebook folder), so it can be rebuilt at any time; attempts
    left by a killed runner are finished first (:func:`lgkit.series.attempts.recover`).

    Example:
        >>> import tempfile
        >>> write_index(tempfile.mkdtemp()).name
        'index.html'
    """
    from lgkit.series.attempts import notebook_states, recover

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    recover(run_dir)
    states = notebook_states(run_dir)
    parts = _header(run_dir, read_json(run_dir / "run.json") or {})
    findings = _findings_with_status(run_dir)
    parts += summary_section(run_dir, findings)  # caveats once, counts, headline claims
    parts += ["<h2>Status</h2>", *status_table(states)]
    parts += findings_section(run_dir, findings)  # every finding, one short row each
    parts.append("<h2>Notebooks</h2>")
    for nb_dir in _notebook_dirs(run_dir):
        name = html.escape(nb_dir.name)
        rec = read_json(nb_dir / "run.json") or {}
        m = read_json(nb_dir / "metrics.json") or {}
        parts.append(f"<h3 id='{name}'>{name}</h3>")
        parts.append(_status_line(rec, states.get(nb_dir.name)))
        parts += _links(nb_dir, run_dir, m)
        if rec.get("status", "ok") == "ok":  # a good result's figures (perhaps stale)
            parts += _figures(nb_dir, run_dir)
    parts.append("</body></html>")
    return atomic_write_text(run_dir / "index.html", "\n".join(parts))
