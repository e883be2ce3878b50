"""``lgkit run``'s command line: options, help texts derived from the catalog, exit codes.

Exit codes: 0 done, 1 a notebook failed or its kernel died, 2 bad input (one line),
130 / 143 / 129 interrupted by SIGINT / SIGTERM / SIGHUP (the last good results kept).

Example:
    >>> "02_math" in _series_text()
    True
"""

from __future__ import annotations

import argparse
import sys

from lgkit.engine.options import add_no_progress, add_out
from lgkit.series import attempts
from lgkit.series.catalog import NOTEBOOKS, PROFILES
from lgkit.series.execute import SeriesInterrupted
from lgkit.series.runner import NotebookFailed, _parse_set, run_series


def _series_text() -> str:
    """``01_data_prep, 02_math, …`` from the catalog (for the help texts)."""
    return ", ".join(NOTEBOOKS)


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lgkit run`` on the CLI's subparsers."""
    p = sub.add_parser(
        "run",
        help=f"execute the notebook series {NOTEBOOKS[0][:2]}-{NOTEBOOKS[-1][:2]} with papermill",
        description=f"Execute the notebooks {_series_text()} with papermill (kernel python3, working "
        "directory = the project root) using params/<notebook>.<profile>.yaml, and write per notebook "
        "the executed notebook, figures, tables, metrics.json, the resolved parameters and the git "
        "hash, plus <out>/index.html and <out>/run.json (each notebook's status: "
        f"{' / '.join(attempts.STATUSES)}).",
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="default",
        help="parameter profile (default: default)",
    )
    p.add_argument(
        "--only",
        default=None,
        help=f"comma list of notebooks, by number or name (default: all of {_series_text()}); "
        "without 01, --out must be a run whose 01 has been executed",
    )
    add_out(p, "run directory (default outputs/<profile>-<timestamp>)", required=False)
    p.add_argument(
        "--param",
        action="append",
        metavar="NB:KEY=VALUE",
        help="override a parameter, e.g. 02:n_per_variant=4 (repeatable; validated like the YAML)",
    )
    p.add_argument("--log-output", action="store_true", help="stream notebook output into the log")
    p.add_argument(
        "--no-html", action="store_true", help="do not render executed notebooks to HTML"
    )
    add_no_progress(p)
    p.set_defaults(func=_cmd_run)


def _cmd_run(a: argparse.Namespace) -> int:
    try:
        run_dir = run_series(
            a.profile,
            a.only,
            a.out,
            progress=not a.no_progress,
            log_output=a.log_output,
            html_report=not a.no_html,
            overrides=_parse_set(a.param),
        )
    except NotebookFailed as e:
        print(f"lgkit: error: {e}", file=sys.stderr)
        return 1
    except SeriesInterrupted as e:
        print(f"lgkit: {e}; the last good results are kept; rerun to resume", file=sys.stderr)
        return 128 + e.signum
    print(run_dir / "index.html")
    return 0
