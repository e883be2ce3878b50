"""``lgkit run``: execute the notebook series with papermill and index the results.

For each selected notebook the runner reads ``params/<notebook>.<profile>.yaml``,
checks every key against the notebook's ``parameters`` cell
(:func:`papermill.inspect_notebook`; papermill itself only warns on unknown names),
injects the run's paths (``out_dir``, ``data_dir``, ``cache_dir``) and executes the
notebook with the ``python3`` kernel in the repository root. Per notebook it writes,
under ``<run>/<notebook>/``::

    <notebook>.ipynb     the executed notebook (saved atomically after every cell)
    <notebook>.failed.ipynb   the notebook of a failed or interrupted attempt
    <notebook>.html      the same, rendered (when nbconvert is installed)
    params.yaml          the resolved parameters (also params.json)
    run.json             git hash, profile, timings, status, the data's fingerprint
    figures/ tables/ metrics.json   written by the notebook itself

and finally ``<run>/run.json`` (this invocation's outcome per notebook, every
notebook's status: ok / failed / interrupted / not run / stale) and ``<run>/index.html``
linking everything, with the findings of every notebook in one table (rebuilt from all
notebook folders of the run, so runs of a subset with ``--only`` add to it). A rerun
never loses a good result, whatever ends it (:mod:`lgkit.series.attempts`).

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
from lgkit.fsio import atomic_write_json, atomic_write_text
from lgkit.provenance import git_hash, repo_root
from lgkit.series import attempts
from lgkit.series.attempts import read_json, stop_kernels
from lgkit.series.catalog import DATA_NOTEBOOK, NOTEBOOKS, PROFILES
from lgkit.series.execute import (
    SeriesInterrupted,
    acknowledge,
    atomic_saves,
    drop_pending_tasks,
    outcome,
    received,
    render_html,
    shielded,
    signals_interrupt,
)
from lgkit.series.guard import (
    check_out_dir,
    check_ranges,
    coerce_params,
    load_params_yaml,
    notebook_parameters,
    validate_params,
)
from lgkit.series.progress import ENV as PROGRESS_ENV
from lgkit.series.progress import Ticker, Watcher, status_printer
from lgkit.series.report import write_index
from lgkit.viz import BATCH_ENV

log = logging.getLogger(__name__)

KERNEL = "python3"
STATS_CACHE = "stats_cache"

#: Parameters the runner sets itself (when the notebook has them).
INJECTED: tuple[str, ...] = ("out_dir", "data_dir", "cache_dir")


class NotebookFailed(LgkitError):
    """A notebook raised or its kernel died; ``path`` is the partially executed copy.

    ``status`` is ``failed`` (the notebook raised) or ``interrupted`` (the kernel died
    or was interrupted).
    """

    def __init__(self, notebook: str, path: Path, reason: str, status: str = "failed") -> None:
        self.notebook = notebook
        self.path = path
        self.reason = reason
        self.status = status
        super().__init__(
            f"notebook {notebook} {status}: {reason}\n  partially executed notebook: {path}"
        )


# --------------------------------------------------------------------------- paths


def notebook_path(name: str, root: Path | None = None) -> Path:
    """``notebooks/<name>.ipynb`` of the project."""
    return (root or repo_root()) / "notebooks" / f"{name}.ipynb"


def params_path(name: str, profile: str, root: Path | None = None) -> Path:
    """``params/<name>.<profile>.yaml`` of the project."""
    return (root or repo_root()) / "params" / f"{name}.{profile}.yaml"


def project_path_of(path: str, root: Path) -> Path:
    """A notebook's path parameter as the kernel reads it: relative paths from the project root."""
    p = Path(path)
    return p if p.is_absolute() else root / p


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
    check_ranges(name, params, str(ypath))
    if overrides:
        validate_params(overrides, nb, f"--param {name}")
        extra = coerce_params(overrides, types, f"--param {name}")
        check_ranges(name, extra, f"--param {name}")
        params.update(extra)
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

    A good earlier result in that folder is put back if this attempt fails or is
    interrupted, and the attempt's notebook is kept beside it as ``<name>.failed.ipynb``
    (see :mod:`lgkit.series.attempts`). The record holds the fingerprint of the data the
    notebook read (``data_fingerprint``), so a later change of that data marks it stale.
    ``on_status(name, line)`` receives the notebook's progress lines while it runs.

    Raises:
        NotebookFailed: the notebook raised or its kernel died (``status`` says which).
        SeriesInterrupted, KeyboardInterrupt: the runner was interrupted (after the
            good result was put back).
        InputError: the disk is full (one line; the good result was put back).
    """
    import uuid

    root = root or repo_root()
    nb_dir = run_dir / name
    attempt = uuid.uuid4().hex[:12]
    backup: Path | None = None
    nb_out = nb_dir / f"{name}.ipynb"
    data = str(params["data_dir"]) if params.get("data_dir") else None
    data = attempts.relative_to_run(run_dir, project_path_of(data, root)) if data else None
    record: dict[str, Any] = {
        "notebook": name,
        "profile": profile,
        "git_hash": commit,
        "kernel": KERNEL,
        "cwd": str(root),
        "input": str(notebook_path(name, root)),
        "output": str(nb_out),
        "params": dict(params),
        "data_dir": data,
        "data_fingerprint": attempts.data_fingerprint(run_dir / data) if data else None,
        "attempt": attempt,
        "start_time": _now(),
        "status": "running",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    t0 = time.perf_counter()
    begun = False
    try:
        with shielded():  # a signal here lands after the good result is safely aside
            backup = attempts.begin(run_dir, name, attempt=attempt)
            begun = True
        _write_inputs(nb_dir, params, record)
        _execute(name, params, root, nb_out, log_output, on_status)
        record.update(status="ok", seconds=round(time.perf_counter() - t0, 2), end_time=_now())
        if name == DATA_NOTEBOOK:
            record["data_dir"] = attempts.relative_to_run(run_dir, data_dir_of(run_dir))
            record["data_fingerprint"] = attempts.data_fingerprint(data_dir_of(run_dir))
        with shielded():
            _finish_record(nb_out, record, html_report, quiet=False)
    except BaseException as caught:
        # failed, kernel died, Ctrl-C, SIGTERM: the good result goes back
        e: BaseException = caught
        sig = received()
        if sig is not None and not isinstance(e, KeyboardInterrupt):
            # the stop unwound the execution and its clean-up raised something else
            # (e.g. the kernel it shut down "died"): the attempt was interrupted
            e = SeriesInterrupted(sig)
        if isinstance(e, KeyboardInterrupt):
            acknowledge()  # caught: the signal need not be raised again
        if not begun:  # nothing was moved: the folder is as it was
            attempts.marker_path(run_dir, name).unlink(missing_ok=True)
            raise
        with shielded():
            status, reason, disk_full = outcome(e)
            stop_kernels(os.getpid())  # nothing may write into the folder while it is restored
            drop_pending_tasks()
            record.update(status=status, error=reason, seconds=round(time.perf_counter() - t0, 2))
            record["end_time"] = _now()
            _finish_record(nb_out, record, html_report)
            failure = {"status": status, "time": record["end_time"], "error": reason}
            kept = attempts.finish(run_dir, name, backup, failure)
        if backup is not None:
            log.warning("%s %s; its previous good result stays in %s", name, status, nb_dir)
        if disk_full:
            raise InputError(
                f"{name}: no space left on the device ({reason}); free some space and rerun",
                path=nb_dir,
            ) from None
        if not isinstance(e, Exception):
            raise e from (None if e is caught else caught)
        raise NotebookFailed(name, kept or nb_out, reason, status) from e
    with shielded():
        attempts.finish(run_dir, name, backup, None)
    return record


def _write_inputs(nb_dir: Path, params: Mapping[str, Any], record: dict[str, Any]) -> None:
    """The attempt's parameters (YAML and JSON) and its ``running`` record."""
    import yaml

    nb_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        nb_dir / "params.yaml", yaml.safe_dump(dict(params), sort_keys=False, allow_unicode=True)
    )
    _write_json(nb_dir / "params.json", dict(params))
    _write_json(nb_dir / "run.json", record)


def _execute(
    name: str, params: Mapping[str, Any], root: Path, nb_out: Path, log_output: bool, on_status: Any
) -> None:
    """papermill's execution of one notebook, with progress lines and atomic saves."""
    import papermill as pm

    progress_file = nb_out.parent / "progress.jsonl"
    os.environ[PROGRESS_ENV] = str(progress_file)  # the kernel inherits it
    os.environ[BATCH_ENV] = "1"  # widgets show their picture only (see lgkit.viz.widgets)
    try:
        with atomic_saves(nb_out.parent), Ticker(Watcher(progress_file), name, on_status):
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
    finally:
        os.environ.pop(PROGRESS_ENV, None)
        os.environ.pop(BATCH_ENV, None)
        progress_file.unlink(missing_ok=True)


def _finish_record(
    nb_out: Path, record: dict[str, Any], html_report: bool, *, quiet: bool = True
) -> None:
    """Render the executed notebook (when asked) and write the final ``run.json``.

    ``quiet``: an OSError (a full disk) is logged instead of raised (after a failure,
    the good result must still go back).
    """
    try:
        if html_report and nb_out.is_file():
            h = render_html(nb_out)
            record["html"] = str(h) if h else None
        _write_json(nb_out.parent / "run.json", record)
    except OSError as e:
        if not quiet:
            raise
        log.error("could not write the record of %s: %s", nb_out.parent.name, e.strerror or e)


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
    for name in attempts.recover(run_dir):  # attempts of a runner killed earlier
        log.warning("%s: the last attempt had been interrupted (runner killed); restored", name)
    outcomes: dict[str, str] = dict.fromkeys(names, "not run")
    stopped: BaseException | None = None
    failed: NotebookFailed | None = None
    tty = progress and sys.stderr.isatty()
    bar = tqdm(names, desc=f"lgkit run ({profile})", unit="nb", disable=not tty)
    on_status = status_printer(bar, tty) if progress else None
    # on a terminal, log lines print above the bar instead of breaking it
    redirect = logging_redirect_tqdm() if tty else contextlib.nullcontext()
    redirect.__enter__()
    try:
        with signals_interrupt():
            for name in bar:
                bar.set_postfix_str(name)
                log.info("executing %s", name)
                outcomes[name] = "interrupted"  # until it says otherwise
                try:
                    rec = run_notebook(name, resolved[name], run_dir, profile=profile, root=root,
                                       log_output=log_output, html_report=html_report,
                                       commit=commit, on_status=on_status)  # fmt: skip
                except NotebookFailed as e:
                    log.error("%s", e)
                    outcomes[name] = e.status
                    failed = e
                    break
                except InputError:
                    outcomes[name] = "failed"
                    raise
                outcomes[name] = "ok"
                log.info("%s done in %.1f s", name, rec["seconds"])
                if name == DATA_NOTEBOOK:
                    _warn_fallback(run_dir)
    except KeyboardInterrupt as e:
        acknowledge()
        stopped = e
        raise
    finally:
        redirect.__exit__(None, None, None)
        bar.close()
        with shielded():
            _write_series(run_dir, series, t0, outcomes, failed, stopped)
    if failed:
        raise failed
    log.info("series done in %.1f s; index: %s", series["seconds"], run_dir / "index.html")
    return run_dir


def _write_series(
    run_dir: Path,
    series: dict[str, Any],
    t0: float,
    outcomes: Mapping[str, str],
    failed: NotebookFailed | None,
    stopped: BaseException | None,
) -> None:
    """Write ``<run>/run.json`` (this invocation, every notebook's state) and the index.

    ``attempted``: what this invocation did to each selected notebook (ok, failed,
    interrupted, not run); ``results``: the state of every notebook's result on disk.
    On a full disk the failure is logged (the run's error says why).
    """
    bad = [v for v in outcomes.values() if v != "ok"]
    status = "interrupted" if stopped is not None else "failed" if failed or bad else "ok"
    if status != "ok" and failed and failed.status == "interrupted":
        status = "interrupted"
    series.update(end_time=_now(), seconds=round(time.perf_counter() - t0, 2), status=status,
                  attempted=dict(outcomes))  # fmt: skip
    if stopped is not None:
        series["stopped"] = str(stopped) or "interrupted (SIGINT)"
    if failed:
        series["failed"] = {"notebook": failed.notebook, "path": str(failed.path),
                            "reason": failed.reason, "status": failed.status}  # fmt: skip
    previous = read_json(run_dir / "run.json")
    if isinstance(previous, dict) and previous.get("start_time"):  # earlier invocations
        history = previous.pop("history", [])
        series["history"] = [*history, previous]
    series["results"] = attempts.notebook_states(run_dir)
    try:
        _write_json(run_dir / "run.json", series)
        write_index(run_dir)
    except OSError as e:
        log.error("could not write the run's record or index: %s", e.strerror or e)


# --------------------------------------------------------------------------- CLI


def _parse_set(values: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``--param 02_math:n_per_variant=4`` → ``{"02_math": {"n_per_variant": "4"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for v in values or []:
        target, sep, rest = v.partition(":")
        if not sep or "=" not in rest:
            raise InputError(f"expected NOTEBOOK:KEY=VALUE, got {v!r}", field="--param")
        key, _, raw = rest.partition("=")
        try:
            names = parse_only(target)
        except InputError as e:
            raise InputError(f"{v!r}: {e.message}", field="--param") from None
        for name in names:  # the text; typed against the notebook later
            out.setdefault(name, {})[key.strip()] = raw
    return out
