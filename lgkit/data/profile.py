"""Data profiles: the one call notebook 01 makes to write the data notebooks 02-05 read.

Profiles:

* ``smoke``: the synthetic set only, 8 examples per variant (CI-sized), all families;
* ``default``: the authors' released examples (``LGKIT_DATA_DIR``, the local cache or a
  download) of GSM8K, StrategyQA and wiki (popular 100 / 500 words, long-tail):
  ``n_per_variant`` questions sampled once with ``seed``, the same questions in every
  variant (none/simplified/detailed x correct/irrelevant), so comparisons are paired.
  Where the release cannot be found it falls back, loudly, to the synthetic set
  (at least 50 generated per variant) and records ``fallback`` in ``index.json``;
* ``full``: the authors' released files (``LGKIT_DATA_DIR``, a ``data_dir`` or a
  network), every dataset and variant, 500 each (454 long-tail wiki), with the released
  irrelevant files (``irrelevant="released"``) or lgkit's collision-free rebuild of them
  (``irrelevant="rebuilt"``).

Example:
    >>> import tempfile
    >>> from lgkit.data import select
    >>> files = build_profile("smoke", tempfile.mkdtemp(), n_per_variant=3, seed=0)
    >>> len(select(files, family="math")), files[0].n
    (6, 3)
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lgkit.data.index import DataFile, write_data_file, write_data_index
from lgkit.data.items import FAMILIES, Groups, make_variants
from lgkit.data.release import (
    ReleaseUnavailableError,
    load_release,
    release_catalog,
    release_items,
)
from lgkit.data.synthetic import (
    N_POPULAR_SUBJECTS,
    SYNTH_DATASETS,
    synth_arith_items,
    synth_commonsense_items,
    synth_wiki_items,
)
from lgkit.errors import InputError
from lgkit.formats.records import read_examples
from lgkit.schema import COT_LEVELS

logger = logging.getLogger(__name__)

__all__ = ["PROFILES", "ProfileSpec", "build_profile", "profile_groups"]


@dataclass(frozen=True)
class ProfileSpec:
    """What a profile writes.

    Attributes:
        name: profile name (recorded in the index).
        source: ``synthetic`` or ``released``.
        families: task families to include.
        datasets: restrict to these dataset names (None: all of the families).
        n_per_variant: default number of examples written per variant (<= 0: all).
        min_generated: synthetic: generate at least this many per variant.
        irrelevant: released: ``released`` (the authors' files), ``repaired`` (the authors'
            files with every irrelevant response that is the correct one replaced:
            :func:`lgkit.data.irrelevant.repair_collisions`) or ``rebuilt`` (lgkit's builder).
        sample: released: draw ``n_per_variant`` questions at random (seeded, the same
            questions in every variant of a dataset) instead of the first ones.
        fallback: released: ``"synthetic"`` builds the synthetic set (with a warning and
            a ``fallback`` note in the index) when the release cannot be found.
    """

    name: str
    source: str = "synthetic"
    families: tuple[str, ...] = FAMILIES
    datasets: tuple[str, ...] | None = None
    n_per_variant: int = 8
    min_generated: int = 0
    irrelevant: str = "released"
    sample: bool = False
    fallback: str = ""


DEFAULT_DATASETS: tuple[str, ...] = (
    "gsm8k",
    "strategyqa",
    "wiki_popular_100",
    "wiki_popular_500",
    "wiki_long_tail",
)
"""The default profile's released datasets (one math, one commonsense, the wiki groups
that fit the default max length of 1024 tokens: the 1000-word texts would be cut)."""

PROFILES: dict[str, ProfileSpec] = {
    "smoke": ProfileSpec("smoke", "synthetic", n_per_variant=8),
    "default": ProfileSpec(
        "default",
        "released",
        datasets=DEFAULT_DATASETS,
        n_per_variant=12,
        min_generated=50,
        sample=True,
        fallback="synthetic",
        irrelevant="repaired",
    ),
    "full": ProfileSpec("full", "released", n_per_variant=0, irrelevant="released"),
}


def _spec(profile_or_spec: str | ProfileSpec | Mapping[str, Any]) -> ProfileSpec:
    if isinstance(profile_or_spec, ProfileSpec):
        spec = profile_or_spec
    elif isinstance(profile_or_spec, str):
        if profile_or_spec not in PROFILES:
            raise InputError(f"unknown profile {profile_or_spec!r}; known: {sorted(PROFILES)}")
        spec = PROFILES[profile_or_spec]
    elif isinstance(profile_or_spec, Mapping):
        d = dict(profile_or_spec)
        base = PROFILES.get(str(d.get("name", "")), ProfileSpec(str(d.get("name", "custom"))))
        for k in ("families", "datasets"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        try:
            spec = replace(base, **d)
        except TypeError as e:
            raise InputError(f"bad profile spec: {e}") from None
    else:
        raise InputError(
            f"profile must be a name, a ProfileSpec or a dict, got {type(profile_or_spec).__name__}"
        )
    if spec.source not in ("synthetic", "released"):
        raise InputError(f"profile source must be 'synthetic' or 'released', got {spec.source!r}")
    bad = [f for f in spec.families if f not in FAMILIES]
    if bad:
        raise InputError(f"unknown families {bad}; expected {FAMILIES}")
    if spec.irrelevant not in ("released", "repaired", "rebuilt"):
        raise InputError(
            f"irrelevant must be 'released', 'repaired' or 'rebuilt', got {spec.irrelevant!r}"
        )
    return spec


def _synthetic_groups(spec: ProfileSpec, n: int, seed: int) -> Groups:
    n_gen = max(n, spec.min_generated, 2) if n > 0 else max(spec.min_generated, 50)
    n_write = n if n > 0 else n_gen
    wanted = set(spec.datasets) if spec.datasets else None
    groups: Groups = {}

    def want(ds: str) -> bool:
        return wanted is None or ds in wanted

    def add(items: list, dataset: str, family: str) -> None:
        groups.update(
            make_variants(
                items[:n_write],
                dataset,
                seed=seed,
                family=family,
                synthetic=True,
                source="synthetic",
            )
        )

    if "math" in spec.families and want("synth_arith"):
        add(synth_arith_items(n_gen, seed), "synth_arith", "math")
    if "commonsense" in spec.families and want("synth_commonsense"):
        add(synth_commonsense_items(n_gen, seed), "synth_commonsense", "commonsense")
    if "wiki" in spec.families:
        wiki = [d for d in SYNTH_DATASETS["wiki"] if want(d)]
        if wiki:
            n_wiki = min(n_gen, N_POPULAR_SUBJECTS)
            if n_wiki < n_write:
                logger.warning(
                    "synthetic wiki has %d popular subjects; writing %d per variant", n_wiki, n_wiki
                )
            for pop in ("popular", "long_tail"):
                for ln, items in synth_wiki_items(n_wiki, seed, popularity=pop).items():
                    ds = f"synth_wiki_{pop}_{ln}"
                    if ds in wiki:
                        add(items, ds, "wiki")
    if not groups:
        raise InputError(f"profile {spec.name!r} selects no synthetic dataset")
    return groups


def _released_groups(
    spec: ProfileSpec, n: int, seed: int, data_dir: Any, download: bool | None
) -> Groups:
    wanted = set(spec.datasets) if spec.datasets else None
    datasets = []
    for f in release_catalog(correct=True):
        if (
            f.family in spec.families
            and (wanted is None or f.dataset in wanted)
            and f.dataset not in datasets
        ):
            datasets.append(f.dataset)
    if not datasets:
        raise InputError(f"profile {spec.name!r} selects no released dataset")
    limit = n if n > 0 and not spec.sample else None
    groups: Groups = {}
    for ds in tqdm(datasets, desc="released datasets"):
        if spec.irrelevant in ("released", "repaired"):
            loaded = {
                (f.dataset, f.cot, f.correct): load_release(
                    f.dataset, f.cot, f.correct, data_dir=data_dir, download=download, limit=limit
                )
                for f in release_catalog(dataset=ds)
            }
            if spec.irrelevant == "repaired":
                _repair(loaded, seed)
            for k, exs in loaded.items():
                groups[k] = sample_questions(exs, n, seed, ds) if spec.sample and n > 0 else exs
        else:
            items = release_items(ds, data_dir=data_dir, download=download)
            items = items[:limit] if limit else items
            groups.update(
                make_variants(items, ds, seed=seed, source="layer_gradient", strict=False)
            )
    return groups


def _repair(loaded: Groups, seed: int) -> None:
    """Replace, in place, every released irrelevant response that is the correct one
    (before sampling: the donors come from the whole file)."""
    from lgkit.data.irrelevant import repair_collisions

    for (ds, cot, correct), exs in list(loaded.items()):
        if correct or (ds, cot, True) not in loaded:
            continue
        fixed, n = repair_collisions(loaded[(ds, cot, True)], exs, seed=seed)
        if n:
            logger.info(
                "%s %s: %d of %d irrelevant responses were the correct one: replaced",
                ds,
                cot,
                n,
                len(exs),
            )
        loaded[(ds, cot, False)] = fixed


def sample_questions(examples: list, n: int, seed: int, dataset: str) -> list:
    """``n`` examples drawn at random with a seed of (``seed``, ``dataset``), in file order.

    Every variant file of a released dataset lists the same questions in the same order,
    so the same draw picks the same questions in every variant (paired comparisons).

    Example:
        >>> [x for x in sample_questions(list(range(10)), 3, 0, "d")] == sample_questions(list(range(10)), 3, 0, "d")
        True
    """
    if n <= 0 or n >= len(examples):
        return list(examples)
    rng = np.random.default_rng([int(seed), zlib.crc32(dataset.encode())])
    idx = sorted(rng.choice(len(examples), size=n, replace=False).tolist())
    return [examples[i] for i in idx]


def _with_fallback(
    spec: ProfileSpec, n: int, seed: int, data_dir: Any, download: bool | None
) -> tuple[Groups, ProfileSpec, str]:
    """The profile's groups; a released profile with ``fallback`` falls back loudly."""
    if spec.source == "synthetic" or not spec.fallback:
        return (
            profile_groups(spec, n_per_variant=n, seed=seed, data_dir=data_dir, download=download),
            spec,
            "",
        )
    try:
        return _released_groups(spec, n, seed, data_dir, download), spec, ""
    except ReleaseUnavailableError as e:
        reason = f"released examples not found ({e}); synthetic data: illustrative only, not evidence about the paper"
        logger.warning("profile %s: %s", spec.name, reason)
        syn = replace(spec, source="synthetic", datasets=None, sample=False)
        return _synthetic_groups(syn, n, seed), syn, reason


def profile_groups(
    profile_or_spec: str | ProfileSpec | Mapping[str, Any],
    *,
    n_per_variant: int,
    seed: int,
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
) -> Groups:
    """The examples of a profile, in memory (what :func:`build_profile` writes).

    Example:
        >>> g = profile_groups("smoke", n_per_variant=2, seed=0)
        >>> len(g), sorted({len(v) for v in g.values()})
        (24, [2])
    """
    spec = _spec(profile_or_spec)
    if spec.source == "synthetic":
        return _synthetic_groups(spec, int(n_per_variant), int(seed))
    return _released_groups(spec, int(n_per_variant), int(seed), data_dir, download)


def build_profile(
    profile_or_spec: str | ProfileSpec | Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    n_per_variant: int,
    seed: int,
    data_dir: str | os.PathLike | None = None,
    irrelevant: str | None = None,
    download: bool | None = None,
) -> list[DataFile]:
    """Build every dataset of a profile and write ``<out_dir>/data/`` with its ``index.json``.

    Each variant goes to ``<out_dir>/data/<dataset>__<cot>__<correct|irrelevant>.jsonl``;
    every record has ``id``, ``dataset``, ``cot``, ``correct`` and ``meta`` (``qid``,
    ``family``, ``synthetic``, ``source``; MATH ``subject``; wiki ``popularity``,
    ``length``, ``words``, ``variant``). Files are read back and validated after
    writing; stale variant files of an earlier run in the folder are removed.

    Args:
        profile_or_spec: ``smoke``, ``default``, ``full``, a :class:`ProfileSpec` or a dict
            of its fields.
        out_dir: the run's output folder (the data goes to its ``data/`` subfolder).
        n_per_variant: examples written per variant (<= 0: all available).
        seed: seed of generation, sampling and irrelevant construction.
        data_dir: where the released files are (``full``); default ``LGKIT_DATA_DIR``.
        irrelevant: override the profile's ``released``/``rebuilt`` choice (``full``).
        download: allow downloading released files (default: unless offline is set).

    Returns:
        The written :class:`~lgkit.data.index.DataFile` list (also in ``index.json``).

    Raises:
        InputError: bad profile or parameters; a record that fails validation.
        ReleaseUnavailableError: ``full`` without the released files and no network.

    Example:
        >>> import tempfile
        >>> files = build_profile("smoke", tempfile.mkdtemp(), n_per_variant=2, seed=1)
        >>> sorted({f.family for f in files})
        ['commonsense', 'math', 'wiki']
    """
    spec = _spec(profile_or_spec)
    if irrelevant is not None:
        spec = _spec(replace(spec, irrelevant=irrelevant))
    groups, spec, fallback = _with_fallback(spec, int(n_per_variant), int(seed), data_dir, download)
    ddir = Path(out_dir) / "data"
    ddir.mkdir(parents=True, exist_ok=True)
    for old in ddir.glob("*__*__*.jsonl"):
        old.unlink()
    files = []
    for key in tqdm(
        sorted(groups, key=lambda k: (k[0], not k[2], COT_LEVELS.index(k[1]))),
        desc="writing variants",
    ):
        f = write_data_file(ddir, groups[key])
        read_examples(f.path)  # validate what was written
        files.append(f)
    write_data_index(
        ddir,
        files,
        profile=spec.name,
        source=spec.source,
        seed=int(seed),
        n_per_variant=int(n_per_variant),
        irrelevant=spec.irrelevant if spec.source == "released" else "rebuilt",
        sampling="seeded random questions, the same in every variant" if spec.sample else "first n",
        fallback=fallback,
    )
    logger.info("wrote %d variant files to %s", len(files), ddir)
    return files
