"""transformers' ``from_pretrained`` as lgkit loads every folder and Hub id: quietly when local.

Below :mod:`lgkit.models.load` (which resolves a name to a folder, a file or a Hub id) and
:mod:`lgkit.models.embedded` (which converts GGUF packages and reloads the result here to
check it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


def from_pretrained(
    path_or_id: str, tdt: torch.dtype, *, plain_tok: bool = False, **kwargs: Any
) -> tuple[Any, Any]:
    """Model and tokenizer of a folder or Hub id through transformers' ``from_pretrained``
    (``kwargs`` go to the model; the tokenizer takes the Hub ones), quietly for local files.

    ``plain_tok``: the generic tokenizer backend instead of the model-specific class (a
    converted embedded model: the same ``tokenizer.json``, read natively).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    with quiet_local_load(Path(path_or_id).exists()):
        model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=tdt, **kwargs)
    return model, tok


@contextmanager
def quiet_local_load(local: bool = True) -> Iterator[None]:
    """No transformers progress bar while a model loads from local files (seconds: the
    "Loading weights 0/272" bar would stay frozen in a saved notebook); a download from the
    Hub (``local=False``) keeps its bars. The setting is restored afterwards.

    Example:
        >>> from transformers.utils import logging as hf_logging
        >>> before = hf_logging.is_progress_bar_enabled()
        >>> with quiet_local_load():
        ...     hf_logging.is_progress_bar_enabled()
        False
        >>> hf_logging.is_progress_bar_enabled() == before
        True
    """
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if local and was:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if local and was:
            hf_logging.enable_progress_bar()
