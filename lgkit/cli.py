"""The ``lgkit`` command line: ``lgkit grads``, ``lgkit run``, ``lgkit score``, and format conversion.

Bad input (a missing file, a malformed record, an unknown module, ...) prints one line
naming file, record and field and exits with code 2, without a traceback. A ``grads`` run
that finished with examples failed at run time (out of memory, an error) exits with code 3
(:data:`EXIT_PARTIAL`): the table is partial, and rerunning the same command retries them.

Every subcommand spells and means its shared options the same way
(:mod:`lgkit.engine.options`: ``--data``, ``--out``, ``--model``, ``--max-length``,
``--modules``, ``--layers``, ``--instruct/--base``, ``--dtype``, ``--device``,
``--no-progress``).

Example:
    $ lgkit grads --model smollm2-135m-instruct --data ex.json --out outputs/g --limit 10
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from lgkit.engine import options as O
from lgkit.errors import InputError

log = logging.getLogger("lgkit")

EXIT_PARTIAL = 3  # a finished run whose table lacks examples that failed at run time


def _add_config_options(p: argparse.ArgumentParser) -> None:
    """One option per :class:`lgkit.engine.GradConfig` field, its default and help taken from there."""
    from lgkit.engine.config import cli_options

    for name, default, meta in cli_options():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true", help=meta["help"])
            continue
        shown = ",".join(default) if isinstance(default, tuple) else default
        kw = {
            "default": shown,
            "help": meta["help"] + ("" if shown is None else f" (default {shown})"),
        }
        if "choices" in meta:
            kw["choices"] = list(meta["choices"])
        elif meta["annotation"].startswith("int"):
            kw["type"] = int
        p.add_argument(flag, **kw)


def _add_grads(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grads",
        help="per-example gradient statistics of every projection (resumable)",
        description="Compute the statistics table of a data file under a model. Rerun the same "
        "command to resume after an interruption. Under torchrun, examples are sharded across ranks. "
        "Exit codes: 0 complete, 2 bad input, 3 partial (examples failed at run time; rerun to "
        "retry them), 130 interrupted.",
    )
    O.add_model(p)
    O.add_data(p)
    O.add_out(p, "output directory (Parquet parts + manifest)")
    _add_config_options(p)
    O.add_model_options(p)
    p.add_argument(
        "--device-map", default=None, help="e.g. auto, to spread a large model over GPUs"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace a run with other settings in --out"
    )
    p.add_argument(
        "--wait-lock",
        action="store_true",
        help="when another lgkit process writes --out, wait for it instead of exiting",
    )
    p.set_defaults(func=_cmd_grads)


def _cmd_grads(a: argparse.Namespace) -> int:
    import torch

    from lgkit.engine.config import GradConfig, cli_options
    from lgkit.engine.run import compute_stats
    from lgkit.models.load import load_model

    values = {name: getattr(a, name) for name, _, _ in cli_options()}
    values["system_prompt"] = values["system_prompt"] or None  # '' for none
    cfg = GradConfig(**values, instruct=a.instruct)
    from lgkit.formats.records import read_examples
    from lgkit.series.guard import check_out_dir

    examples = read_examples(a.data)  # validate the data before loading a model
    O.check_device(a.device)  # before anything is written
    check_out_dir(a.out)
    _refuse_if_busy(a.out, a.wait_lock)
    dist = _maybe_init_distributed()
    kw = {"dtype": a.dtype, "instruct": a.instruct}
    if dist and a.device is None and torch.cuda.is_available():
        kw["device"] = f"cuda:{dist[0] % torch.cuda.device_count()}"
    elif a.device:
        kw["device"] = a.device
    if a.device_map:
        kw["device_map"] = a.device_map
    bundle = load_model(a.model, **kw)
    try:
        res = compute_stats(
            bundle,
            examples if a.data is None else a.data,
            a.out,
            cfg,
            progress=not a.no_progress,
            overwrite=a.overwrite,
            wait_lock=a.wait_lock,
        )
    finally:
        if dist:
            torch.distributed.destroy_process_group()
    log.info(
        "wrote %s: %d done, %d failed, %d already there",
        a.out,
        res.n_done,
        res.n_failed,
        res.n_skipped,
    )
    for f in res.failures:
        log.warning(
            "failed (%s): example %s (%s): %s",
            f["kind"],
            f["example_index"],
            f["sample_id"],
            f["reason"],
        )
    from lgkit.formats.parts import load_manifest

    man = load_manifest(a.out)
    if man.get("n_failed_runtime"):
        log.error(
            "run is partial: %d example(s) failed at run time; rerun the same command to retry them",
            man["n_failed_runtime"],
        )
        return EXIT_PARTIAL
    return 0


def _refuse_if_busy(out: str, wait: bool) -> None:
    """Refuse before loading a model when another process writes ``out`` (unsharded runs:
    a rank of a sharded run may see its own rank 0 holding the lock)."""
    import os

    from lgkit.locks import FolderBusy, lock_holder

    if wait or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return
    pid = lock_holder(out)
    if pid is not None:
        raise FolderBusy(out, pid if pid > 0 else None)


def _maybe_init_distributed() -> tuple[int, int] | None:
    import os

    import torch

    ws = int(os.environ.get("WORLD_SIZE", "1"))
    if ws <= 1:
        return None
    rank = int(os.environ.get("RANK", "0"))
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return rank, ws


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a run's statistics in the authors' per-sample JSONL format"
    )
    p.add_argument("run_positional", nargs="?", metavar="RUN", help="the same as --run")
    p.add_argument("--run", default=None, help="run directory (an lgkit grads --out)")
    O.add_out(p, "the .jsonl file to write", positional=True)
    O.add_data(p, "the run's data file, to include instruction/output texts", required=False)
    p.add_argument(
        "--include-failed",
        action="store_true",
        help="also write the failed examples, in their place, with the keys of every other "
        'line (NaN values) and "failed": true, "reason", "kind"',
    )
    p.set_defaults(func=_cmd_export)


def _cmd_export(a: argparse.Namespace) -> int:
    from lgkit.formats.authors import export_layer_gradient
    from lgkit.formats.records import read_examples
    from lgkit.formats.store import load_failures

    O.take_positional(a, "run")
    O.take_positional(a, "out")
    examples = read_examples(a.data) if a.data else None
    try:
        export_layer_gradient(a.run, a.out, examples, include_failed=a.include_failed)
        n_failed = len(load_failures(a.run))
    except OSError as e:  # e.g. a folder that cannot be written
        raise InputError(f"cannot write ({e.strerror or e})", path=a.out) from None
    log.info("wrote %s", a.out)
    if n_failed:  # said on stderr whatever the logging setup: the file is not the whole run
        what = (
            'written with "failed": true'
            if a.include_failed
            else f"not in {a.out} (--include-failed writes them, flagged; "
            f"lgkit.load_failures({str(a.run)!r}) lists them)"
        )
        print(f"lgkit: warning: {n_failed} example(s) failed: {what}", file=sys.stderr)
    return 0


def _os_error_line(e: OSError) -> str:
    """``file: what went wrong`` for an :class:`OSError` (the file when it names one).

    Example:
        >>> import errno
        >>> _os_error_line(OSError(errno.ENOSPC, "No space left on device", "/o/manifest.json"))
        '/o/manifest.json: No space left on device'
    """
    what = e.strerror or str(e) or type(e).__name__
    return f"{e.filename}: {what}" if e.filename else what


def _version() -> str:
    from lgkit import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lgkit`` command."""
    p = argparse.ArgumentParser(
        prog="lgkit",
        description="Layer-wise gradient spectra of LLM fine-tuning (arXiv 2410.23743), exact and fast.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_grads(sub)
    _add_convert(sub)
    from lgkit.score.command import add_score_parser

    add_score_parser(sub)
    from lgkit.train.cli import add_train_parser

    add_train_parser(sub)
    try:
        from lgkit.series.runcli import add_run_parser
    except ImportError:  # runner not installed in this build
        pass
    else:
        add_run_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lgkit`` console script; returns the exit code."""
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(a.func(a) or 0)
    except InputError as e:
        print(f"lgkit: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a folder that cannot be written: one line naming the file
        print(f"lgkit: error: {_os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lgkit: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
