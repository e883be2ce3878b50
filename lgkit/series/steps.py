"""Notebook-level orchestration: data selection, cached statistics, outputs, metrics.

Notebooks 02–05 are thin: a ``parameters`` cell, then calls into this module,
:mod:`lgkit.analysis` and :mod:`lgkit.viz.plots`. This module holds what every notebook
needs around those:

* paths: :func:`project_path` resolves relative paths against the project root, so
  a notebook writes to the same place under ``lgkit run`` (working directory = the
  project root) and opened by hand in JupyterLab (working directory = ``notebooks/``);
* data: :func:`ensure_data` (the data folder of notebook 01, or the synthetic set
  built on the spot), :func:`data_files`;
* statistics: :func:`family_stats` runs :func:`lgkit.engine.stats_for` on every
  selected data file with one shared cache, so a (model, data file, settings)
  is computed once and reused by later notebooks (05 reuses what 02–04 computed);
* outputs: :class:`Outputs` saves figures (PNG + PDF), tables (CSV + LaTeX) and
  writes ``metrics.json`` (the findings, counts, models and key numbers);
* findings: :mod:`lgkit.series.findings` (tags, pairs, the random twin, labels).

Example:
    >>> from lgkit.analysis import synthetic_stats, claim_flatter_with_cot
    >>> from lgkit.series import Outputs
    >>> import json, tempfile
    >>> out = Outputs(tempfile.mkdtemp(), notebook="demo", show=False)
    >>> df = synthetic_stats(n_samples=4, n_layers=6)
    >>> path = out.write_metrics(claim_flatter_with_cot(df, n_boot=100), df=df)
    >>> json.loads(path.read_text())["findings"][0]["verdict"]
    'supported'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lgkit.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "data_files",
    "ensure_data",
    "family_stats",
    "grad_config",
    "model_family",
    "model_pairs",
    "pair_stats",
    "parse_instruct",
    "parse_list",
    "project_path",
    "project_root",
]

META_COLUMNS: tuple[str, ...] = ("popularity", "length", "words", "subject", "variant")


META_COLUMNS: tuple[str, ...] = ("popularity", "length", "words", "subject", "variant")
"""Data-file metadata copied into the statistics table as columns (when present)."""


# --------------------------------------------------------------------------- small parsers


def parse_list(value: str | Sequence[str] | None) -> list[str]:
    """A comma-separated parameter as a list (empty string: empty list).

    Example:
        >>> parse_list(" gsm8k, aqua ,")
        ['gsm8k', 'aqua']
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [str(s).strip() for s in value if str(s).strip()]


def parse_instruct(value: str | bool | None) -> bool | None:
    """``"auto"``/None → None (the model decides), ``"true"``/``"false"`` → bool.

    Example:
        >>> parse_instruct("auto"), parse_instruct("false"), parse_instruct(True)
        (None, False, True)
    """
    if value is None or isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("", "auto", "none"):
        return None
    if v in ("true", "yes", "1", "instruct"):
        return True
    if v in ("false", "no", "0", "base"):
        return False
    raise InputError(f"expected auto, true or false, got {value!r}", field="instruct")


# --------------------------------------------------------------------------- paths


def project_root(start: str | Path | None = None) -> Path:
    """The project root: the nearest folder at or above ``start`` (default cwd) with
    ``pyproject.toml`` and ``notebooks/``; the working directory if there is none.

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp(); os.makedirs(os.path.join(d, "notebooks", "sub"))
        >>> open(os.path.join(d, "pyproject.toml"), "w").close()
        >>> project_root(os.path.join(d, "notebooks", "sub")) == Path(d).resolve()
        True
    """
    here = Path(start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").is_file() and (p / "notebooks").is_dir():
            return p
    return here


def project_path(path: str | Path) -> Path:
    """``path`` made absolute: relative paths are taken from :func:`project_root`.

    Example:
        >>> project_path("/tmp/x")
        PosixPath('/tmp/x')
    """
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


# --------------------------------------------------------------------------- data


def ensure_data(
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    n_per_variant: int = 0,
    seed: int = 0,
) -> Path:
    """The data folder to use: ``data_dir`` if given, else one built for this notebook.

    With an empty ``data_dir``, a sibling run's ``01_data_prep/data`` is used when it
    exists (``<out_dir>/../01_data_prep/data``); otherwise the ``default`` profile's data
    is built into ``<out_dir>/data`` with :mod:`lgkit.data`, as notebook 01 builds it:
    the authors' released examples when ``LGKIT_DATA_DIR`` or the local cache has them,
    else the offline synthetic set (which every page then labels), so a notebook also
    runs standalone.

    Raises:
        InputError: ``data_dir`` has no ``index.json``.
    """
    if data_dir:
        d = project_path(data_dir)
        from lgkit.data.index import read_data_index

        read_data_index(d)  # validate early, with a clear message
        return d
    if out_dir is None:
        raise InputError(
            "no data_dir given and no out_dir to build the synthetic data in", field="data_dir"
        )
    out = project_path(out_dir)
    sibling = out.parent / "01_data_prep" / "data"
    if (sibling / "index.json").is_file():
        logger.info("data_dir not set: using %s", sibling)
        return sibling
    target = out / "data"
    if (target / "index.json").is_file():
        return target
    logger.info("data_dir not set: building the default profile's data set into %s", target)
    _build_default(target, n_per_variant=n_per_variant, seed=seed)
    return target


def _build_default(target: Path, *, n_per_variant: int, seed: int) -> None:
    from lgkit.data.profile import build_profile

    # 12 questions per dataset, as params/01_data_prep.default.yaml: the class default equals the profile's
    build_profile("default", target.parent, n_per_variant=n_per_variant or 12, seed=seed)


def data_files(
    data_dir: str | Path,
    family: str | Sequence[str] | None = None,
    *,
    datasets: str | Sequence[str] | None = None,
    cots: str | Sequence[str] | None = None,
    correct: bool | None = None,
) -> list[Any]:
    """The data files of a data folder for a task family (``math``, ``commonsense``, ``wiki``).

    ``datasets``/``cots`` filter further (comma-separated strings or lists; empty = all).

    Raises:
        InputError: nothing matches.
    """
    from lgkit.data.index import read_data_index, select

    files = read_data_index(project_path(data_dir))
    fams = parse_list(family) if family else None
    ds = parse_list(datasets) or None
    cs = parse_list(cots) or None
    chosen = select(files, family=fams, dataset=ds, cot=cs, correct=correct)
    if not chosen:
        have = sorted({(f.family, f.dataset) for f in files})
        raise InputError(
            f"no data files for family={family!r} datasets={datasets!r} cots={cots!r}; "
            f"the folder has {have}",
            path=data_dir,
        )
    return chosen


# --------------------------------------------------------------------------- statistics


def grad_config(
    max_length: int | None = None,
    modules: str = "q,k,v,o",
    *,
    n_per_variant: int = 0,
    instruct: str | bool | None = "auto",
    batch_size: int = 1,
    compat: str = "",
) -> Any:
    """A :class:`lgkit.engine.GradConfig` from flat notebook parameters.

    ``n_per_variant`` = 0 keeps all examples of a file (else the first N; the
    correct and irrelevant files list the same questions in the same order).
    ``max_length`` None (or 0) takes :class:`lgkit.engine.GradConfig`'s default.

    Example:
        >>> c = grad_config(256, "q,o", n_per_variant=8)
        >>> c.max_length, c.modules, c.limit
        (256, ('q', 'o'), 8)
    """
    from lgkit.engine.config import GradConfig

    return GradConfig(
        modules=modules,
        max_length=int(max_length) if max_length else GradConfig.max_length,
        batch_size=int(batch_size),
        limit=int(n_per_variant) or None,
        compat=compat or None,
        instruct=parse_instruct(instruct),
    )


def model_label(model: Any) -> str:
    """A model's name for progress lines: its ``name`` (loaded models, random twins) or itself.

    Example:
        >>> from lgkit.models.twin import LazyTwin
        >>> model_label("tiny-random-llama"), model_label(LazyTwin("tiny-random-llama"))
        ('tiny-random-llama', 'tiny-random-llama@random-init-0')
    """
    return str(getattr(model, "name", model))


def family_stats(
    data_dir: str | Path,
    family: str | Sequence[str] | None,
    model: Any,
    config: Any,
    cache_dir: str | Path,
    *,
    datasets: str | Sequence[str] | None = None,
    cots: str | Sequence[str] | None = None,
    progress: bool = True,
    keep_going: bool = False,
) -> pd.DataFrame:
    """Statistics of every selected data file under ``model``, concatenated.

    Each file goes through :func:`lgkit.engine.stats_for` with ``cache_dir``: a file
    already computed with the same model and settings (by this or an earlier
    notebook) is read back without loading the model. Columns ``family``,
    ``data_file`` and the file's metadata (``popularity``, ``length``, ...) are added.

    Args:
        data_dir: data folder (with ``index.json``).
        family: task family or families (``math``, ``commonsense``, ``wiki``).
        model: a model name (loaded lazily, only if something is not cached).
        config: a :class:`lgkit.engine.GradConfig` (see :func:`grad_config`).
        cache_dir: the shared statistics cache of the run.
        datasets, cots: optional filters (see :func:`data_files`).
        progress: tqdm progress bars.
        keep_going: a file the engine refuses (:class:`lgkit.errors.InputError`, e.g. no
            record with a findable answer) is left out with a warning and its reason kept in
            ``attrs["failed_files"]`` (``{file name: reason}``); the result may then be empty.

    Returns:
        The statistics table with a ``model`` column.
    """
    from tqdm.auto import tqdm

    from lgkit.engine.run import stats_for
    from lgkit.formats.records import read_examples
    from lgkit.series.progress import Reporter

    files = data_files(data_dir, family, datasets=datasets, cots=cots)
    cache = project_path(cache_dir)
    sizes = [len(read_examples(f.path)) for f in files]
    if config.limit:
        sizes = [min(n, config.limit) for n in sizes]
    label = model_label(model)
    bar = tqdm(
        total=sum(sizes), desc=f"{label}: {family or 'all'}", unit="ex", disable=not progress,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} examples{postfix}",
    )  # fmt: skip
    # one line per stage: the files' own bars stay off, and so does the model-loading bar
    report = Reporter(label, sum(sizes), bar=None if bar.disable else bar)
    parts = []
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    with bar:  # models load quietly (models.pretrained.quiet_local_load)
        for f, n_file in zip(files, sizes, strict=True):
            report.file(f.name)
            before = report.done
            try:
                df = stats_for(
                    model,
                    f.path,
                    config,
                    cache_dir=cache,
                    progress=False,
                    loader=_loader(model, config),
                    on_progress=report.step,
                )
            except InputError as e:
                if not keep_going:
                    raise
                logger.warning("%s: left out: %s", f.name, e)
                failed[f.name] = str(e)
                continue
            report.skip(max(n_file - (report.done - before), 0))  # cached or failed examples
            if df.empty:
                logger.warning("%s: no statistics (all examples failed?)", f.path)
                continue
            df["family"] = f.family
            df["data_file"] = f.name
            df["synthetic"] = bool(f.synthetic)
            for k in META_COLUMNS:
                if k in f.meta:
                    df[k] = f.meta[k]
            parts.append(df)
    if not parts and keep_going:
        empty = pd.DataFrame()
        empty.attrs["failed_files"] = failed
        return empty
    if not parts:
        raise InputError(
            f"no statistics computed for family {family!r} under {model!r}", path=data_dir
        )
    out = pd.concat(parts, ignore_index=True)
    out.attrs["failed_files"] = failed
    logger.info(
        "%s: %d files, %d examples, %d rows in %.1f s",
        model,
        len(parts),
        out.groupby(["data_file", "sample_id"]).ngroups,
        len(out),
        time.perf_counter() - t0,
    )
    return out


def _loader(model: Any, config: Any) -> Any:
    """A function loading ``model`` once (None when it is loaded already).

    Shared by every file of every :func:`family_stats` call in this process, so a
    notebook loads each model at most once (and not at all when all is cached).
    """
    if not isinstance(model, (str, Path)):
        return None
    key = (str(model), config.instruct)

    def load() -> Any:
        if key not in _LOADED:
            from lgkit.models.load import load_model

            _LOADED.clear()  # one model in memory at a time
            _LOADED[key] = load_model(str(model), instruct=config.instruct)
        return _LOADED[key]

    return load


_LOADED: dict[tuple[str, Any], Any] = {}


def model_pairs(
    base_models: str | Sequence[str], instruct_models: str | Sequence[str]
) -> list[tuple[str, str]]:
    """Zip comma-separated base and instruct model lists into pairs.

    Raises:
        InputError: the lists differ in length or are empty.

    Example:
        >>> model_pairs("a,b", "a-it, b-it")
        [('a', 'a-it'), ('b', 'b-it')]
    """
    b, i = parse_list(base_models), parse_list(instruct_models)
    if not b or len(b) != len(i):
        raise InputError(
            f"need as many base as instruct models, got {len(b)} and {len(i)}", field="base_models"
        )
    return list(zip(b, i, strict=True))


def model_family(name: str) -> str:
    """The architecture family of a model name, without loading it (best effort).

    Example:
        >>> model_family("smollm2-135m-instruct"), model_family("google/gemma-2-2b-it"), model_family("tiny-random-qwen2")
        ('llama', 'gemma2', 'qwen2')
    """
    from lgkit.models.load import EMBEDDED, TINY

    key = str(name).strip().lower()
    if key in EMBEDDED:
        return EMBEDDED[key].family or key
    if key in TINY:
        return key.removeprefix("tiny-random-").split("-")[0]
    base = key.rsplit("/", 1)[-1]
    for fam, pats in (
        ("gemma3", ("gemma-3", "gemma3")),
        ("gemma2", ("gemma-2", "gemma2")),
        ("gemma", ("gemma",)),
        ("qwen2", ("qwen2",)),
        ("qwen", ("qwen",)),
        ("llama", ("llama", "smollm")),
        ("mistral", ("mistral",)),
        ("phi", ("phi",)),
        ("gpt2", ("gpt2",)),
    ):
        if any(p in base for p in pats):
            return fam
    return base


def pair_stats(
    data_dir: str | Path,
    family: str | Sequence[str] | None,
    base: str,
    instruct: str,
    config: Any,
    cache_dir: str | Path,
    *,
    datasets: str | Sequence[str] | None = None,
    cots: str | Sequence[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Statistics of the same data under a base and an instruct model, concatenated.

    The base model runs without chat template (``instruct=False``); the instruct
    model with the setting of ``config`` (``"auto"`` by default, the same as in
    notebooks 02–04, so their cached statistics are reused). Adds ``role``
    (``base``/``instruct``) and ``model_family`` columns.
    """
    from dataclasses import replace

    parts = []
    for role, name, cfg in (
        ("base", base, replace(config, instruct=False)),
        ("instruct", instruct, config),
    ):
        d = family_stats(
            data_dir, family, name, cfg, cache_dir, datasets=datasets, cots=cots, progress=progress
        )
        d["role"] = role
        d["model_family"] = model_family(name)
        parts.append(d)
    return pd.concat(parts, ignore_index=True)
