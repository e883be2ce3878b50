"""The command-line vocabulary every ``lgkit`` subcommand shares: one spelling, one meaning.

``lgkit grads``, ``lgkit score``, ``lgkit train``, ``lgkit export`` and ``lgkit run`` add
the options below through these functions wherever they have the concept, so a user who
learned one command is understood by the next (``tests/test_cli.py`` walks every
subcommand's parser and checks them). A data file or folder that a subcommand once took
as a positional argument still may (an alias of the option; :func:`take_positional`).

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(prog="x")
    >>> add_data(p, positional=True); add_device(p)
    >>> a = p.parse_args(["d.jsonl"]); take_positional(a, "data"); a.data
    'd.jsonl'
"""

from __future__ import annotations

import argparse
from typing import Any

from lgkit.errors import InputError

SHARED_HELP: dict[str, str] = {
    "--data": "records: a JSON list or JSONL file",
    "--out": "output",
    "--model": "embedded name (smollm2-135m-instruct, gemma3-270m, tiny-random-*), "
    "Hugging Face id, local folder or .gguf",
    "--max-length": "max tokens per example; the end of the response is cut",
    "--modules": "projections: comma list of q,k,v,o,gate,up,down or attn/mlp/all",
    "--layers": "only these layers: all (default), last, a:b (half-open) or one index",
    "--instruct": "use the chat template",
    "--base": "no chat template (base model)",
    "--dtype": "float32 (default), bfloat16 or float16",
    "--device": "cpu, cuda, cuda:1 ... (default: cuda when available)",
    "--no-progress": "no progress bar",
}
"""Each shared option's help text (a subcommand may add what it specifically means)."""

SHARED: tuple[str, ...] = tuple(SHARED_HELP)
"""The shared options, in the order ``--help`` lists them."""

DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")


def _help(flag: str, extra: str = "") -> str:
    sep = ": " if flag == "--out" else "; "
    return SHARED_HELP[flag] + (f"{sep}{extra}" if extra else "")


def add_data(
    p: argparse.ArgumentParser, extra: str = "", *, required: bool = True, positional: bool = False
) -> None:
    """``--data FILE`` (with ``positional``: also ``DATA`` as the first argument, its alias)."""
    if positional:
        p.add_argument("data_positional", nargs="?", metavar="DATA", help="the same as --data")
        required = False  # one of the two; take_positional checks
    p.add_argument("--data", required=required, default=None, help=_help("--data", extra))


def add_out(
    p: argparse.ArgumentParser,
    extra: str,
    *,
    required: bool = True,
    positional: bool = False,
    default: Any = None,
) -> None:
    """``--out PATH`` (with ``positional``: also ``OUT`` as an argument, its alias)."""
    if positional:
        p.add_argument("out_positional", nargs="?", metavar="OUT", help="the same as --out")
        required = False
    p.add_argument("--out", required=required, default=default, help=_help("--out", extra))


def take_positional(a: argparse.Namespace, dest: str, *, required: bool = True) -> None:
    """Merge the positional alias of ``--<dest>`` into ``a.<dest>``.

    Raises:
        InputError: both forms given with different values, or neither when ``required``.

    Example:
        >>> a = argparse.Namespace(data="a", data_positional="b")
        >>> take_positional(a, "data")
        Traceback (most recent call last):
        lgkit.errors.InputError: field --data: given twice ('b' and 'a'); give it once
    """
    pos, val = getattr(a, f"{dest}_positional", None), getattr(a, dest, None)
    if pos is not None and val is not None and pos != val:
        raise InputError(f"given twice ({pos!r} and {val!r}); give it once", field=f"--{dest}")
    setattr(a, dest, val if val is not None else pos)
    if required and getattr(a, dest) is None:
        raise InputError("is required", field=f"--{dest}")


def add_model(p: argparse.ArgumentParser) -> None:
    """``--model NAME`` (required)."""
    p.add_argument("--model", required=True, help=_help("--model"))


def add_max_length(p: argparse.ArgumentParser, default: int | None, extra: str = "") -> None:
    """``--max-length N`` (tokens per example)."""
    shown = extra or f"default {default}"
    p.add_argument("--max-length", type=int, default=default, help=_help("--max-length", shown))


def add_modules(p: argparse.ArgumentParser, default: str = "q,k,v,o", extra: str = "") -> None:
    """``--modules LIST`` (the projections)."""
    shown = f"default {default}" + (f"; {extra}" if extra else "")
    p.add_argument("--modules", default=default, help=_help("--modules", shown))


def add_layers(p: argparse.ArgumentParser, extra: str = "") -> None:
    """``--layers SPEC`` (None: all)."""
    p.add_argument("--layers", default=None, help=_help("--layers", extra))


def add_instruct(p: argparse.ArgumentParser) -> None:
    """``--instruct`` / ``--base``: a tri-state ``instruct`` (None: as the model was loaded)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--instruct", dest="instruct", action="store_true", default=None,
                   help=_help("--instruct"))  # fmt: skip
    g.add_argument("--base", dest="instruct", action="store_false", help=_help("--base"))


def add_dtype(p: argparse.ArgumentParser) -> None:
    """``--dtype`` of the weights."""
    p.add_argument("--dtype", default="float32", choices=DTYPES, help=_help("--dtype"))


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device`` (checked by :func:`check_device` before a model loads)."""
    p.add_argument("--device", default=None, help=_help("--device"))


def add_no_progress(p: argparse.ArgumentParser) -> None:
    """``--no-progress``."""
    p.add_argument("--no-progress", action="store_true", help=_help("--no-progress"))


def add_model_options(p: argparse.ArgumentParser) -> None:
    """``--instruct/--base``, ``--dtype``, ``--device``, ``--no-progress``, in that order."""
    add_instruct(p)
    add_dtype(p)
    add_device(p)
    add_no_progress(p)


def check_device(device: str | None) -> None:
    """A CUDA device on a machine without one (or without that index) is bad input, not a
    traceback.

    Raises:
        InputError: naming ``--device``.
    """
    if not device or not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(
            f"CUDA is not available on this machine (torch {torch.__version__}); "
            "use --device cpu or leave --device out",
            field="--device",
        )
    idx = device.partition(":")[2]
    if idx.isdigit() and int(idx) >= torch.cuda.device_count():
        raise InputError(
            f"no {device}: this machine has {torch.cuda.device_count()} CUDA device(s)",
            field="--device",
        )
