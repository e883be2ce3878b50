"""``lgkit run``: execute the notebook series 01–05 with papermill and index the results.

For each selected notebook the runner reads ``params/<notebook>.<profile>.yaml``,
checks every key against the notebook's ``parameters`` cell
(:func:`papermill.inspect_notebook`; papermill itself only warns on unknown names),
injects the run's paths (``out_dir``, ``data_dir``, ``cache_dir``) and executes the
notebook with the ``python3`` kernel in the repository root. Per notebook it writes,
under ``<run>/<notebook>/``::

    <notebook>.ipynb     the executed notebook (partially executed if it failed)
    <notebook>.html      the same, rendered (when nbconvert is installed)
    params.yaml          the resolved parameters (also params.json)
    run.json             git hash, profile, timings, status
    figures/ tables/ metrics.json   written by the notebook itself

and finally ``<run>/index.html`` linking everything, with the findings of every
notebook in one table (rebuilt from all notebook folders of the run, so runs of a
subset with ``--only`` add to it).

Statistics are computed once per (model, data file, settings) in ``<run>/stats_cache``
and reused by later notebooks (see :func:`lgkit.engine.stats_for`). Kernels run with
``OMP_WAIT_POLICY=PASSIVE`` unless it is set: busy-waiting OpenMP threads made torch
about ten times slower on a 2-core CPU shared with other processes.

Example:
    >>> from lgkit.series.runner import parse_only
    >>> parse_only("02,4")
    ['02_math', '04_wiki']
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lgkit.errors import InputError, LgkitError
from lgkit.fsio import atomic_write_json
from lgkit.provenance import git_hash, repo_root
from lgkit.series.catalog import DATA_NOTEBOOK, NOTEBOOKS, PROFILES
from lgkit.series.guard import check_out_dir, coerce_params, settle, stash_good
from lgkit.series.progress import ENV as PROGRESS_ENV
from lgkit.series.progress import Ticker, Watcher, status_printer
from lgkit.series.report import read_json, write_index
from lgkit.viz import BATCH_ENV

log = logging.getLogger(__name__)

KERNEL = "python3"
STATS_CACHE = "stats_cache"

#: Parameters the runner sets itself (when the notebook has them).
INJECTED: tuple[str, ...] = ("out_dir", "data_dir", "cache_dir")


class NotebookFailed(LgkitError):
    """A notebook raised during execution; ``path`` is the partially executed copy."""

    def __init__(self, notebook: str, path: Path, reason: str) -> None:
        self.notebook = notebook
        self.path = path
        self.reason = reason
        super().__init__(
            f"notebook {notebook} failed: {reason}\n  partially executed notebook: {path}"
        )


# --------------------------------------------------------------------------- paths


def notebook_path(name: str, root: Path | None = None) -> Path:
    """``notebooks/<name>.ipynb`` of the project."""
    return (root or repo_root()) / "notebooks" / f"{name}.ipynb"


def params_path(name: str, profile: str, root: Path | None = None) -> Path:
    """``params/<name>.<profile>.yaml`` of the project."""
    return (root or repo_root()) / "params" / f"{name}.{profile}.yaml"


def data_dir_of(run_dir: str | Path) -> Path:
    """Where notebook 01 of a run writes its data folder: ``<run>/01_data_prep/data``."""
    return Path(run_dir) / DATA_NOTEBOOK / "data"


def parse_only(only: str | Sequence[str] | None) -> list[str]:
    """Notebook names selected by ``--only`` (``"02,04"``, ``"2,4"``, ``"02_math"``...).

    Returns the names in series order; None/empty selects all.

    Raises:
        InputError: a selector that matches no notebook.

    Example:
        >>> parse_only(["05_base_vs_instruct", "1"])
        ['01_data_prep', '05_base_vs_instruct']
    """
    if not only:
        return list(NOTEBOOKS)
    items = (
        only.split(",") if isinstance(only, str) else [x for s in only for x in str(s).split(",")]
    )
    chosen: set[str] = set()
    for raw in items:
        s = raw.strip()
        if not s:
            continue
        s_key = s.removesuffix(".ipynb")
        match = [
            n
            for n in NOTEBOOKS
            if n == s_key or n.split("_", 1)[0] == s_key.zfill(2) or n.split("_", 1)[1] == s_key
        ]
        if not match:
            raise InputError(
                f"unknown notebook {s!r}; choose from {', '.join(NOTEBOOKS)} (or their numbers)",
                field="--only",
            )
        chosen.update(match)
    if not chosen:
        return list(NOTEBOOKS)
    return [n for n in NOTEBOOKS if n in chosen]


# --------------------------------------------------------------------------- parameters


def load_params_yaml(path: str | Path) -> dict[str, Any]:
    """Read a params YAML: a mapping of parameter names to values (empty file: ``{}``).

    Raises:
        InputError: missing file, bad YAML or not a mapping.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError("params file not found", path=p)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise InputError(f"malformed YAML ({e})", path=p) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError(
            f"expected a mapping of parameter names to values, got {type(doc).__name__}", path=p
        )
    for k in doc:
        if not isinstance(k, str):
            raise InputError(f"parameter names must be strings, got {k!r}", path=p)
    return doc


def notebook_parameters(nb_path: str | Path) -> dict[str, dict[str, Any]]:
    """The parameters of a notebook's ``parameters`` cell (``papermill.inspect_notebook``).

    Raises:
        InputError: no such notebook, or it has no parameters cell.
    """
    import papermill as pm

    p = Path(nb_path)
    if not p.is_file():
        raise InputError("notebook not found", path=p)
    params = pm.inspect_notebook(str(p))
    if not params:
        raise InputError("notebook has no cell tagged 'parameters'", path=p)
    return dict(params)


def validate_params(
    params: Mapping[str, Any], nb_path: str | Path, yaml_path: str | Path | None = None
) -> None:
    """Raise unless every key of ``params`` is a parameter of the notebook.

    Raises:
        InputError: naming the YAML file and the first unknown key.

    Example:
        >>> validate_params({"seed": 0}, notebook_path("02_math"))  # returns None: all known
    """
    known = notebook_parameters(nb_path)
    for key in params:
        if key not in known:
            raise InputError(
                f"unknown parameter {key!r}: {Path(nb_path).name} has parameters {', '.join(sorted(known))}",
                path=yaml_path or nb_path,
                field=key,
            )


def resolve_params(
    name: str,
    profile: str,
    run_dir: Path,
    root: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters for one notebook: the profile's YAML, validated, plus run paths.

    ``out_dir`` is ``<run>/<name>``, ``cache_dir`` is ``<run>/stats_cache`` and
    ``data_dir`` (02–05) is ``<run>/01_data_prep/data``; each is only set when the
    notebook has that parameter and the YAML does not give a non-empty value for
    ``data_dir`` (a fixed data folder for a profile).
    """
    root = root or repo_root()
    nb = notebook_path(name, root)
    ypath = params_path(name, profile, root)
    params = load_params_yaml(ypath)
    validate_params(params, nb, ypath)
    known = notebook_parameters(nb)
    types = {k: str(v.get("inferred_type_name") or "") for k, v in known.items()}
    params = coerce_params(params, types, str(ypath))
    if overrides:
        validate_params(overrides, nb, f"--param {name}")
        params.update(coerce_params(overrides, types, f"--param {name}"))
    paths = {
        "out_dir": str(run_dir / name),
        "cache_dir": str(run_dir / STATS_CACHE),
    }
    if name != DATA_NOTEBOOK and not params.get("data_dir"):
        paths["data_dir"] = str(data_dir_of(run_dir))
    for k, v in paths.items():
        if k in known:
            params[k] = v
    return params


# --------------------------------------------------------------------------- execution


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, indent=2, ensure_ascii=False, default=str, newline=True)


def _render_html(nb_out: Path) -> Path | None:
    """Render an executed notebook to HTML next to it (None without nbconvert)."""
    try:
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    try:
        # nbconvert warns per notebook about images without alt text (pyplot figures
        # shown by the inline backend have none; lgkit's own figures carry a caption)
        quiet = logging.getLogger("lgkit.series.nbconvert")
        quiet.setLevel(logging.ERROR)
        exporter = HTMLExporter(log=quiet)
        body, _ = exporter.from_notebook_node(nbformat.read(str(nb_out), as_version=4))
    except Exception as e:  # rendering is a convenience: never fail the run on it
        log.warning("could not render %s to HTML: %s", nb_out, e)
        return None
    out = nb_out.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def run_notebook(
    name: str,
    params: Mapping[str, Any],
    run_dir: Path,
    *,
    profile: str,
    root: Path | None = None,
    log_output: bool = False,
    html_report: bool = True,
    commit: str | None = None,
    on_status: Any = None,
) -> dict[str, Any]:
    """Execute one notebook into ``<run>/<name>/`` with papermill; returns its run record.

    A good earlier result in that folder is restored if this run fails, and the failed
    notebook is kept beside it as ``<name>.failed.ipynb`` (see :mod:`lgkit.series.guard`).
    ``on_status(name, line)`` receives the notebook's progress lines
    (:mod:`lgkit.series.progress`) while it runs.

    Raises:
        NotebookFailed: the notebook raised (the partially executed copy is kept).
    """
    import papermill as pm
    import yaml

    root = root or repo_root()
    nb_dir = run_dir / name
    backup = stash_good(nb_dir)  # a good earlier result waits aside until this one succeeds
    nb_dir.mkdir(parents=True, exist_ok=True)
    (nb_dir / "params.yaml").write_text(
        yaml.safe_dump(dict(params), sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    _write_json(nb_dir / "params.json", dict(params))
    nb_out = nb_dir / f"{name}.ipynb"
    record: dict[str, Any] = {
        "notebook": name,
        "profile": profile,
        "git_hash": commit,
        "kernel": KERNEL,
        "cwd": str(root),
        "input": str(notebook_path(name, root)),
        "output": str(nb_out),
        "params": dict(params),
        "start_time": _now(),
        "status": "running",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    _write_json(nb_dir / "run.json", record)
    t0 = time.perf_counter()
    error: BaseException | None = None
    progress_file = nb_dir / "progress.jsonl"
    os.environ[PROGRESS_ENV] = str(progress_file)  # the kernel inherits it
    os.environ[BATCH_ENV] = "1"  # widgets show their picture only (see lgkit.viz.widgets)
    try:
        with Ticker(Watcher(progress_file), name, on_status):
            pm.execute_notebook(
                str(notebook_path(name, root)),
                str(nb_out),
                parameters=dict(params),
                kernel_name=KERNEL,
                cwd=str(root),
                progress_bar=False,
                log_output=log_output,
                request_save_on_cell_execute=True,
                # the kernel's own warnings (TCP without encryption...) are not the user's
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
    except pm.PapermillExecutionError as e:
        error = e
        reason = f"{e.ename}: {e.evalue} (cell {e.exec_count})"
    except BaseException as e:  # kernel died, timeout, Ctrl-C: the good result goes back
        error = e
        reason = f"{type(e).__name__}: {e}"
    finally:
        os.environ.pop(PROGRESS_ENV, None)
        os.environ.pop(BATCH_ENV, None)
        progress_file.unlink(missing_ok=True)
    record["seconds"] = round(time.perf_counter() - t0, 2)
    record["end_time"] = _now()
    if html_report and nb_out.is_file():
        h = _render_html(nb_out)
        record["html"] = str(h) if h else None
    if error is not None:
        record.update(status="failed", error=reason)
        _write_json(nb_dir / "run.json", record)
        failure = {"time": record["end_time"], "error": reason}
        kept = settle(nb_dir, backup, failure)
        if backup is not None:
            log.warning("%s failed; its previous good result stays in %s", name, nb_dir)
        if not isinstance(error, Exception):
            raise error
        raise NotebookFailed(name, kept or nb_out, reason) from error
    record["status"] = "ok"
    _write_json(nb_dir / "run.json", record)
    settle(nb_dir, backup, None)
    return record


def _check_inputs(
    names: list[str],
    profile: str,
    run_dir: Path,
    root: Path,
    overrides: Mapping[str, Mapping[str, Any]],
    explicit: bool,
) -> dict[str, dict[str, Any]]:
    """Every notebook's parameters, typed and validated, and 01's data when 01 is skipped."""
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError("--out is a file, not a directory; give a directory", path=run_dir)
    resolved = {n: resolve_params(n, profile, run_dir, root, overrides.get(n)) for n in names}
    if DATA_NOTEBOOK in names:
        return resolved
    needs = [n for n in names if "data_dir" in notebook_parameters(notebook_path(n, root))]
    from_run = [n for n in needs if resolved[n].get("data_dir") == str(data_dir_of(run_dir))]
    if from_run and not (data_dir_of(run_dir) / "index.json").is_file():
        if not explicit:
            raise InputError(
                f"--only {','.join(names)} skips {DATA_NOTEBOOK}: give --out an existing run whose "
                f"{DATA_NOTEBOOK} has been executed (or include 01)",
                field="--only",
            )
        raise InputError(
            f"no data of notebook {DATA_NOTEBOOK} in this run (expected {data_dir_of(run_dir)}/index.json); "
            "run it first (include 01 in --only) or point --out at a run that has it",
            path=run_dir,
        )
    return resolved


def _default_out(profile: str, root: Path) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / "outputs" / f"{profile}-{stamp}"


def _warn_fallback(run_dir: Path) -> None:
    """Say on the console, not only on the pages, when the data fell back to the synthetic set."""
    index = read_json(data_dir_of(run_dir) / "index.json")
    reason = index.get("fallback") if isinstance(index, dict) else None
    if reason:
        log.warning("DATA FALLBACK: %s", reason)


def run_series(
    profile: str = "default",
    only: str | Sequence[str] | None = None,
    out: str | Path | None = None,
    *,
    root: str | Path | None = None,
    progress: bool = True,
    log_output: bool = False,
    html_report: bool = True,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Execute the notebook series with papermill; returns the run directory.

    Args:
        profile: ``smoke``, ``default`` or ``full`` (selects ``params/<nb>.<profile>.yaml``).
        only: notebooks to run (see :func:`parse_only`); default all.
        out: run directory (default ``outputs/<profile>-<timestamp>`` in the project).
            Rerunning into an existing run reuses its statistics cache and data.
        root: project root (default :func:`repo_root`); also the kernels' working directory.
        progress: show a tqdm bar over notebooks.
        log_output: stream the notebooks' output into the log.
        html_report: also render each executed notebook to HTML.
        overrides: ``{notebook: {param: value}}`` applied on top of the YAML (validated).

    Raises:
        InputError: unknown profile/notebook, an unknown YAML key, or notebooks 02–05
            selected without 01 and no data in ``out``.
        NotebookFailed: a notebook failed (the index is still written).

    Example:
        >>> run_series("smoke", out="outputs/smoke")  # doctest: +SKIP
        PosixPath('outputs/smoke')
    """
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    if profile not in PROFILES:
        raise InputError(
            f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}", field="--profile"
        )
    root = Path(root).resolve() if root else repo_root()
    names = parse_only(only)
    run_dir = Path(out).resolve() if out else _default_out(profile, root)
    if not log_output:  # papermill's INFO lines (per inspection, per cell) say nothing new
        logging.getLogger("papermill").setLevel(logging.WARNING)
    # check everything before running anything
    resolved = _check_inputs(
        names, profile, run_dir, root, overrides or {}, explicit=out is not None
    )
    check_out_dir(run_dir)
    # Kernels inherit this: with OpenMP's default busy-waiting, torch's threads slow down
    # ~10x when other processes share the cores (measured on a 2-core CPU); passive
    # waiting costs nothing measurable on an idle machine. A value set by the user wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    commit = git_hash(root)
    log.info("run %s: profile %s, notebooks %s, git %s", run_dir, profile, ", ".join(names), commit)
    series = {
        "profile": profile,
        "notebooks": names,
        "git_hash": commit,
        "start_time": _now(),
        "run_dir": str(run_dir),
    }
    t0 = time.perf_counter()
    failed: NotebookFailed | None = None
    tty = progress and sys.stderr.isatty()
    bar = tqdm(names, desc=f"lgkit run ({profile})", unit="nb", disable=not tty)
    on_status = status_printer(bar, tty) if progress else None
    # on a terminal, log lines print above the bar instead of breaking it
    redirect = logging_redirect_tqdm() if tty else contextlib.nullcontext()
    redirect.__enter__()
    try:
        for name in bar:
            bar.set_postfix_str(name)
            log.info("executing %s", name)
            try:
                rec = run_notebook(
                    name,
                    resolved[name],
                    run_dir,
                    profile=profile,
                    root=root,
                    log_output=log_output,
                    html_report=html_report,
                    commit=commit,
                    on_status=on_status,
                )
            except NotebookFailed as e:
                log.error("%s", e)
                failed = e
                break
            log.info("%s done in %.1f s", name, rec["seconds"])
            if name == DATA_NOTEBOOK:
                _warn_fallback(run_dir)
    finally:
        redirect.__exit__(None, None, None)
        bar.close()
        series.update(
            end_time=_now(),
            seconds=round(time.perf_counter() - t0, 2),
            status="failed" if failed else "ok",
        )
        if failed:
            series["failed"] = {
                "notebook": failed.notebook,
                "path": str(failed.path),
                "reason": failed.reason,
            }
        previous = read_json(run_dir / "run.json")
        if isinstance(previous, dict) and previous.get(
            "start_time"
        ):  # earlier invocations into this run
            history = previous.pop("history", [])
            series["history"] = [*history, previous]
        _write_json(run_dir / "run.json", series)
        write_index(run_dir)
    if failed:
        raise failed
    log.info("series done in %.1f s; index: %s", series["seconds"], run_dir / "index.html")
    return run_dir


# --------------------------------------------------------------------------- CLI


def _parse_set(values: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``--param 02_math:n_per_variant=4`` → ``{"02_math": {"n_per_variant": "4"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for v in values or []:
        target, sep, rest = v.partition(":")
        if not sep or "=" not in rest:
            raise InputError(f"expected NOTEBOOK:KEY=VALUE, got {v!r}", field="--param")
        key, _, raw = rest.partition("=")
        for name in parse_only(target):  # the text; typed against the notebook later
            out.setdefault(name, {})[key.strip()] = raw
    return out


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lgkit run`` on the CLI's subparsers."""
    p = sub.add_parser(
        "run",
        help="execute the notebook series 01-05 with papermill",
        description="Execute notebooks 01-05 with papermill (kernel python3, working directory = the project "
        "root) using params/<notebook>.<profile>.yaml, and write per notebook the executed notebook, figures, "
        "tables, metrics.json, the resolved parameters and the git hash, plus <out>/index.html.",
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
        help="comma list of notebooks, e.g. 02,04 (default: all); without 01, "
        "--out must be a run whose 01 has been executed",
    )
    p.add_argument(
        "--out", default=None, help="run directory (default outputs/<profile>-<timestamp>)"
    )
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
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
        import sys

        print(f"lgkit: error: {e}", file=sys.stderr)
        return 1
    print(run_dir / "index.html")
    return 0
