"""Reading the original datasets: ``datasets.load_dataset`` from the Hub or a local file.

:data:`HUB_SOURCES` gives each source's default Hub arguments (needs a network);
:func:`load_source` reads a local JSON/JSONL/CSV/Parquet file in the source's schema
offline. The builders in :mod:`lgkit.data.builders` turn the records into items.

Example:
    >>> sorted(HUB_SOURCES)[:3]
    ['aqua', 'creak', 'ecqa']
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lgkit.errors import InputError

__all__ = ["HUB_SOURCES", "load_source"]

#: Default ``datasets.load_dataset`` arguments per source (needs a network).
HUB_SOURCES: dict[str, dict[str, Any]] = {
    "gsm8k": {"path": "openai/gsm8k", "name": "main"},
    "aqua": {"path": "deepmind/aqua_rat", "name": "raw"},
    "strategyqa": {"path": "ChilleD/StrategyQA"},
    "ecqa": {"path": "tasksource/ecqa"},
    "creak": {
        "path": "json",
        "data_files": "https://raw.githubusercontent.com/yasumasaonoe/creak/main/data/creak/train.json",
    },
    "sensemaking": {
        "path": "csv",
        "data_files": "https://raw.githubusercontent.com/wangcunxiang/SemEval2020-Task4-Commonsense-Validation-and-Explanation/master/ALL%20data/train.csv",
    },
    "math": {"path": "EleutherAI/hendrycks_math", "name": "algebra"},
    "wiki": {"path": "wikimedia/wikipedia", "name": "20231101.en", "streaming": True},
}

_LOCAL_FORMATS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".arrow": "arrow",
}


def load_source(
    name: str,
    source: str | os.PathLike | Mapping[str, Any] | None = None,
    *,
    split: str = "train",
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    **load_kwargs: Any,
) -> list[dict[str, Any]]:
    """Read an original dataset through ``datasets.load_dataset``.

    Args:
        name: a key of :data:`HUB_SOURCES` (the same names as ``builders.BUILDERS``).
        source: a local file in the source's schema (``.json``/``.jsonl``/``.csv``/
            ``.parquet``), a hub id, or a dict of ``load_dataset`` arguments; default
            :data:`HUB_SOURCES` ``[name]`` (needs a network).
        split: the split to read.
        cache_dir: ``datasets`` cache folder.
        limit: read at most this many records (useful with streaming sources).
        **load_kwargs: more ``load_dataset`` arguments (e.g. ``name="geometry"``).

    Returns:
        The records as plain dicts.

    Raises:
        InputError: unknown name, or the source cannot be read (with the reason).

    Example:
        >>> import json, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "g.jsonl")
        >>> _ = open(p, "w").write(json.dumps({"question": "q", "answer": "x #### 1"}) + "\\n")
        >>> load_source("gsm8k", p, cache_dir=tempfile.mkdtemp())[0]["answer"]
        'x #### 1'
    """
    import datasets

    if name not in HUB_SOURCES:
        raise InputError(f"unknown source {name!r}; known: {sorted(HUB_SOURCES)}")
    if source is None:
        kwargs: dict[str, Any] = dict(HUB_SOURCES[name])
    elif isinstance(source, Mapping):
        kwargs = dict(source)
    else:
        p = Path(source).expanduser()
        if p.exists():
            fmt = _LOCAL_FORMATS.get(p.suffix.lower())
            if fmt is None:
                raise InputError(
                    f"unsupported file type {p.suffix!r}; use {sorted(_LOCAL_FORMATS)}", path=p
                )
            kwargs = {"path": fmt, "data_files": str(p)}
        else:
            kwargs = {"path": str(source)}
    kwargs.update(load_kwargs)
    kwargs.setdefault("split", split)
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    try:
        ds = datasets.load_dataset(**kwargs)
    except Exception as exc:  # datasets raises many types (network, schema, missing file)
        raise InputError(
            f"cannot load {name} from {kwargs.get('data_files') or kwargs.get('path')}: {exc}"
        ) from exc
    out = []
    for r in ds:
        out.append(dict(r))
        if limit is not None and len(out) >= limit:
            break
    return out
