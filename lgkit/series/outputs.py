"""Notebook outputs: figures, tables, metrics.json, in one folder per notebook."""

from __future__ import annotations

import html
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lgkit import analysis as A
from lgkit.analysis.findings import COLUMNS as FINDING_COLUMNS
from lgkit.fsio import atomic_write_json
from lgkit.models.weights import quantisation
from lgkit.series.findings import RELEASED_NOTE, data_kind
from lgkit.series.steps import project_path
from lgkit.series.summaries import n_examples, safe_name
from lgkit.series.verdicts import findings_html

logger = logging.getLogger(__name__)

__all__ = [
    "Outputs",
    "data_banner",
    "findings_records",
    "findings_view",
    "jsonable",
    "write_metrics",
]


# --------------------------------------------------------------------------- outputs


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays, Paths, dataclasses and DataFrames made JSON-ready;
    NaN and infinities become None.

    Example:
        >>> jsonable({"a": np.float64("nan"), "b": np.int64(3), "c": (Path("x"), True)})
        {'a': None, 'b': 3, 'c': ['x', True]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, pd.Series):
        return jsonable(obj.to_dict())
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj))
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


def findings_records(findings: Iterable[A.Finding]) -> list[dict[str, Any]]:
    """Findings as JSON-ready dicts with the keys of :data:`lgkit.analysis.findings.COLUMNS`."""
    out = []
    for f in findings:
        d = asdict(f) if is_dataclass(f) else dict(f)
        out.append(jsonable({k: d.get(k) for k in FINDING_COLUMNS}))
    return out


def data_banner(kind: str) -> str:
    """The line every page of a run on ``kind`` data shows (empty for released data).

    Example:
        >>> data_banner("synthetic")
        'SYNTHETIC DATA (not the released examples): synthetic data: illustrative only, not evidence about the paper'
    """
    if kind != "synthetic":
        return ""
    return f"SYNTHETIC DATA (not the released examples): {A.SYNTHETIC_LABEL}"


def findings_view(findings: Sequence[A.Finding]) -> pd.DataFrame:
    """The reader-facing findings table: claim, statistic, estimate, 95% CI, p adj, n,
    verdict (with its labels), caveats, control, rule.

    Example:
        >>> findings_view([A.Finding("c", "s", 0.5, 0.4, 0.6, 0.01)]).columns.tolist()[:5]
        ['claim', 'statistic', 'estimate', '95% CI', 'p adj']
    """

    def g(x: Any) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"

    t = A.findings_table(findings)
    return pd.DataFrame(
        {
            "claim": t["claim"],
            "statistic": t["statistic"],
            "estimate": t["estimate"].map(g),
            "95% CI": [  # a primary claim's Bonferroni level is written before its bounds
                (f"{100 * lv:.3g}%: " if abs(lv - 0.95) > 1e-9 else "") + f"[{g(a)}, {g(b)}]"
                if g(a)
                else ""
                for a, b, lv in zip(t["ci_low"], t["ci_high"], t["ci_level"], strict=True)
            ],
            "p adj": t["p_adj"].map(g),
            "n": t["n_questions"],
            "verdict": t["verdict_text"],
            "caveats": t["caveats"],
            "control": t["control"],
            "rule": t["rule"],
        }
    )


def write_metrics(
    out_dir: str | Path, findings: Iterable[A.Finding], extra: Mapping[str, Any] | None = None
) -> Path:
    """Write ``<out_dir>/metrics.json`` with ``findings`` and ``extra`` keys.

    Example:
        >>> import json, tempfile
        >>> p = write_metrics(tempfile.mkdtemp(), [A.Finding("c", "s", 1.0)], {"n_examples": 3})
        >>> json.loads(p.read_text())["n_examples"]
        3
    """
    out = project_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"findings": findings_records(findings), **jsonable(dict(extra or {}))}
    path = out / "metrics.json"
    atomic_write_json(path, doc, indent=2, ensure_ascii=False, newline=True)
    logger.info("wrote %s", path)
    return path


def _display(obj: Any, raw: bool = False) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover
        return
    if get_ipython() is not None:
        display(obj, raw=raw)


MISSING = "–"
"""What a reader's table shows for a missing value (never ``nan``)."""
MISSING_NOTE = (
    "– : no value: the statistic is not defined for this cell (no examples in this group, or "
    "too few to compute it, e.g. a correlation of constant values)"
)
"""The word on why, under a table with missing values (a table's ``attrs["missing"]`` says more)."""


def _captioned(df: pd.DataFrame, caption: str | None, *, index: bool = False) -> Any:
    """``df`` styled for the notebook: its caption above, no 0..n index column (kept when
    ``index`` or when it carries labels), numbers to 4 significant digits, and a missing value
    shown as :data:`MISSING` with a word on why in the caption (``df.attrs["missing"]`` when
    the table says, else :data:`MISSING_NOTE`).

    Example:
        >>> "caption" in _captioned(pd.DataFrame({"a": [1.5]}), "Cap").to_html()
        True
        >>> h = _captioned(pd.DataFrame({"a": [1.5, float("nan")]}), "Cap").to_html()
        >>> "nan" in h, "no value" in h
        (False, True)
    """
    plain = isinstance(df.index, pd.RangeIndex)
    st = df.style.format(precision=4, thousands="", na_rep=MISSING)
    if bool(df.isna().to_numpy().any()):
        why = str(df.attrs.get("missing") or MISSING_NOTE)
        why = why if why.startswith(MISSING) else f"{MISSING} : {why}"
        caption = f"{caption} ({why})" if caption else why
    if caption:
        st = st.set_caption(caption).set_table_styles(
            [{"selector": "caption", "props": "caption-side:top;text-align:left;font-weight:bold"}]
        )
    if plain and not index:
        st = st.hide(axis="index")
    return st


class Outputs:
    """Where a notebook's figures, tables and ``metrics.json`` go, and what was written.

    Args:
        out_dir: the notebook's output folder (relative: from the project root).
        notebook: the notebook's name (written into ``metrics.json``).
        show: also display figures/tables in the notebook.

    Example:
        >>> import tempfile
        >>> out = Outputs(tempfile.mkdtemp(), notebook="x", show=False)
        >>> out.table(pd.DataFrame({"a": [1.5]}), "t")
        >>> out.tables
        ['tables/t.csv', 'tables/t.tex']
    """

    def __init__(self, out_dir: str | Path, notebook: str = "", show: bool = True) -> None:
        self.dir = project_path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.notebook = notebook
        self.show = show
        self.figures: list[str] = []
        self.tables: list[str] = []
        self.t0 = time.perf_counter()

    def _rel(self, p: Path) -> str:
        try:
            return p.relative_to(self.dir).as_posix()
        except ValueError:
            return str(p)

    def figure(
        self,
        fig: Any,
        name: str,
        formats: Sequence[str] = ("png", "pdf"),
        *,
        look_for: str = "",
    ) -> None:
        """Save ``fig`` as ``figures/<name>.png`` and ``.pdf`` and show the PNG.

        ``look_for``: what the reader should look for; it leads the caption stored in the
        files (the run's index shows it under the figure), the picture's alt text and the
        line shown under it. The PNG is shown at :data:`lgkit.viz.style.DISPLAY_DPI` pixels
        per inch, so its 12 pt text is ≥ 16 px. The paths are recorded in :attr:`figures`.
        """
        from lgkit.viz.plots import figure_caption, save_figure
        from lgkit.viz.style import DISPLAY_DPI

        shows = figure_caption(fig)
        caption = f"{look_for} ({shows})" if look_for else shows
        paths = save_figure(
            fig, self.dir / "figures" / safe_name(name), formats=formats, caption=caption
        )
        self.figures.extend(self._rel(p) for p in paths if p.suffix == ".png")
        png = [p for p in paths if p.suffix == ".png"]
        if self.show and png:
            # an object-oriented Figure has no rich repr unless pyplot set up the inline
            # backend: show the saved PNG itself, with its alt text and caption
            from lgkit.viz.style import png_bundle

            width = int(fig.get_figwidth() * DISPLAY_DPI)
            _display(png_bundle(png[0].read_bytes(), caption or name, width, look_for), raw=True)

    def table(
        self,
        df: pd.DataFrame,
        name: str,
        caption: str | None = None,
        *,
        index: bool = False,
        latex: bool = True,
        show: bool | None = None,
    ) -> None:
        """Save ``df`` as ``tables/<name>.csv`` and ``.tex`` (booktabs) and show it.

        The paths are recorded in :attr:`tables` (and in ``metrics.json``).
        """
        d = self.dir / "tables"
        d.mkdir(parents=True, exist_ok=True)
        csv = d / f"{safe_name(name)}.csv"
        df.to_csv(csv, index=index or isinstance(df.columns, pd.MultiIndex))
        paths = [csv]
        if latex:
            tex = d / f"{safe_name(name)}.tex"
            try:
                A.to_latex(df, tex, caption=caption, label=f"tab:{safe_name(name)}", index=index)
                paths.append(tex)
            except Exception as e:  # LaTeX is a convenience (needs jinja2)
                logger.warning("no LaTeX for %s: %s", name, e)
        self.tables.extend(self._rel(p) for p in paths)
        if self.show if show is None else show:
            _display(_captioned(df, caption, index=index))

    def findings(
        self, findings: Sequence[A.Finding], name: str = "findings", *, data: str = ""
    ) -> None:
        """Save the findings table (:func:`findings_view`, every column) and show the reader's
        table (:func:`lgkit.series.verdicts.findings_html`): verdict word, estimate, CI, p, n on
        one row, then the count line and the rule and shared caveats once, collapsible.

        ``data="synthetic"`` puts the synthetic-data banner above the table (and into
        its caption).
        """
        view = findings_view(findings)
        banner = data_banner(data)
        caption = "Claims of the paper tested on this model and data" + (
            f" ({banner})" if banner else ""
        )
        self.table(view, name, caption=caption, show=False)
        if self.show:
            from IPython.display import HTML

            if banner:
                _display(HTML(f"<p style='color:#a00;font-weight:bold'>{html.escape(banner)}</p>"))
            _display(
                HTML(
                    findings_html(
                        findings_records(findings), caption=caption, notebook=self.notebook
                    )
                )
            )

    def write_metrics(
        self, findings: Sequence[A.Finding], df: pd.DataFrame | None = None, **extra: Any
    ) -> Path:
        """Write ``metrics.json``: findings, counts of ``df``, figures, tables and ``extra``."""
        doc: dict[str, Any] = {"notebook": self.notebook}
        if df is not None:
            doc.update(n_rows=len(df), n_examples=n_examples(df))
            if "data_file" in df.columns:
                doc["n_files"] = int(df["data_file"].nunique())
            for col, key in (("model", "models"), ("dataset", "datasets")):
                if col in df.columns:
                    doc[key] = sorted(str(x) for x in df[col].dropna().unique())
            if "layer" in df.columns:
                doc["n_layers"] = int(df["layer"].nunique())
            kind = data_kind(df)
            doc["data"] = kind
            doc["data_note"] = A.SYNTHETIC_LABEL if kind == "synthetic" else RELEASED_NOTE
            if "model" in df.columns:
                doc["weights"] = {
                    str(m): quantisation(str(m)) or "as loaded"
                    for m in df["model"].dropna().unique()
                }
        doc.update(extra)
        doc.update(
            figures=self.figures,
            tables=self.tables,
            seconds=round(time.perf_counter() - self.t0, 2),
        )
        return write_metrics(self.dir, findings, doc)
