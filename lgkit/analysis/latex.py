"""LaTeX export of result tables."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- LaTeX


def to_latex(
    df: pd.DataFrame,
    path: str | Path | None = None,
    *,
    caption: str | None = None,
    label: str | None = None,
    precision: int = 3,
    index: bool = False,
    na_rep: str = "--",
) -> str:
    """Render a table as a booktabs LaTeX ``table``/``tabular`` (and write it to ``path``).

    Cell values and column headers are LaTeX-escaped (``rd_mean`` → ``rd\\_mean``);
    the caption is written as given, so it may contain LaTeX. Uses pandas'
    ``Styler.to_latex`` (needs jinja2).

    Args:
        df: the table; MultiIndex columns (e.g. :func:`pivot_mad`) are supported.
        path: file to write (parents created); None to only return the string.
        caption: table caption.
        label: LaTeX label, e.g. ``"tab:mad"``.
        precision: decimals of floats.
        index: include the index (always included for MultiIndex columns tables made
            by :func:`pivot_mad`, whose index holds the row labels).
        na_rep: text of missing values.

    Returns:
        The LaTeX source.

    Example:
        >>> s = to_latex(pd.DataFrame({"cot": ["none"], "rd_mean": [0.12345]}), caption="RD")
        >>> "\\\\begin{tabular}" in s and "0.123" in s and "rd\\\\_mean" in s
        True
    """
    styler = df.style.format(precision=precision, escape="latex", na_rep=na_rep)
    styler = styler.format_index(escape="latex", axis=1)
    keep_index = index or isinstance(df.columns, pd.MultiIndex)
    if keep_index:
        styler = styler.format_index(escape="latex", axis=0)
    else:
        styler = styler.hide(axis="index")
    tex = styler.to_latex(
        caption=caption,
        label=label,
        hrules=True,
        position_float="centering",
        multicol_align="c",
        environment="table",
    )
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(tex, encoding="utf-8")
        logger.info("wrote %s", p)
    return tex
