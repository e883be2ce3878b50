"""The authors' released example files (arXiv 2410.23743, github MingLiiii/Layer_Gradient, ``data/``).

Files are found, per file, in this order:

1. the explicit ``data_dir`` argument (the ``data/`` folder, or a clone of the repository);
2. ``$LGKIT_DATA_DIR``;
3. the local cache ``$LGKIT_CACHE/data/layer_gradient`` (default ``~/.cache/lgkit/...``);
4. a download of the raw file from the public repository into that cache (for users
   with a network), unless downloads are disabled (``download=False`` or
   ``LGKIT_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``): then a clear offline error.

File names map to lgkit's vocabulary: ``*_no_cot`` -> ``none``, ``*_with_cot`` ->
``simplified``, ``*_with_cot_gpt4o`` -> ``detailed``, ``*_wrong_answer_shuffle`` folders
-> irrelevant (``correct=False``). Dataset names: ``gsm8k aqua strategyqa ecqa creak
sensemaking``, ``math_algebra math_counting_probability math_geometry``,
``wiki_popular_100 wiki_popular_500 wiki_popular_1000 wiki_long_tail``.

Example:
    >>> [f.relpath for f in release_catalog(dataset="gsm8k", cot="none")]
    ['cot_500/gsm8k_train_no_cot.json', 'cot_500_wrong_answer_shuffle/gsm8k_train_no_cot.json']
"""

from __future__ import annotations

import functools
import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lgkit.data.answers import final_answer
from lgkit.data.irrelevant import IrrelevanceReport, check_irrelevant
from lgkit.data.items import Groups, Item, family_of
from lgkit.errors import InputError, LgkitError
from lgkit.formats.records import COT_LEVELS, Example, read_examples
from lgkit.fsio import atomic_write_bytes

logger = logging.getLogger(__name__)

__all__ = [
    "RELEASE_COMMIT",
    "RELEASE_URL",
    "ReleaseFile",
    "ReleaseUnavailableError",
    "find_release_dir",
    "load_release",
    "release_available",
    "release_cache_dir",
    "release_catalog",
    "release_collisions",
    "release_groups",
    "release_items",
    "release_path",
]

#: The commit of MingLiiii/Layer_Gradient whose ``data/`` folder lgkit downloads.
RELEASE_COMMIT = "0fb19e1e4710570353b8dbdd3fbd8a39bfc71039"
#: Raw-file base URL (``{commit}`` is filled in); override with ``$LGKIT_RELEASE_URL``.
RELEASE_URL = "https://raw.githubusercontent.com/MingLiiii/Layer_Gradient/{commit}/data"

COT_DATASETS = ("gsm8k", "aqua", "strategyqa", "ecqa", "creak", "sensemaking")
MATH_SUBJECTS = ("algebra", "counting_probability", "geometry")
WIKI_FILES = {
    "wiki_popular_100": ("popular_wikipedia_100.json", "popular", 100, 500),
    "wiki_popular_500": ("popular_wikipedia_500.json", "popular", 500, 500),
    "wiki_popular_1000": ("popular_wikipedia_1000.json", "popular", 1000, 500),
    "wiki_long_tail": ("long_tail_wikipedia.json", "long_tail", None, 454),
}
_SUFFIX = {"none": "no_cot", "simplified": "with_cot", "detailed": "with_cot_gpt4o"}
_COT_ALIASES = {
    "no_cot": "none",
    "with_cot": "simplified",
    "with_cot_gpt4o": "detailed",
    "fast": "none",
}


class ReleaseUnavailableError(LgkitError, FileNotFoundError):
    """A released file is neither local nor downloadable (offline, or downloads disabled)."""


@dataclass(frozen=True)
class ReleaseFile:
    """One released file.

    Attributes:
        dataset: lgkit dataset name.
        cot: ``none``, ``simplified`` or ``detailed``.
        correct: False for the ``*_wrong_answer_shuffle`` files.
        relpath: path below the release's ``data/`` folder.
        family: ``math``, ``commonsense`` or ``wiki``.
        n_expected: number of records (500; 454 for long-tail wiki).
        meta: metadata for every record (MATH subject; wiki popularity and length).
    """

    dataset: str
    cot: str
    correct: bool
    relpath: str
    family: str
    n_expected: int
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        """``<dataset>__<cot>__<correct|irrelevant>``."""
        return f"{self.dataset}__{self.cot}__{'correct' if self.correct else 'irrelevant'}"


def _build_catalog() -> list[ReleaseFile]:
    files = []
    for correct in (True, False):
        shuffle = "" if correct else "_wrong_answer_shuffle"
        for ds in COT_DATASETS:
            for cot in COT_LEVELS:
                files.append(
                    ReleaseFile(
                        ds,
                        cot,
                        correct,
                        f"cot_500{shuffle}/{ds}_train_{_SUFFIX[cot]}.json",
                        family_of(ds),
                        500,
                    )
                )
        for subj in MATH_SUBJECTS:
            for cot in ("simplified", "detailed"):
                files.append(
                    ReleaseFile(
                        f"math_{subj}",
                        cot,
                        correct,
                        f"lighteval_math{shuffle}/{subj}_{_SUFFIX[cot]}.json",
                        "math",
                        500,
                        {"subject": subj},
                    )
                )
        for ds, (fname, pop, words, n) in WIKI_FILES.items():
            length = words if words is not None else "full"
            files.append(
                ReleaseFile(
                    ds,
                    "none",
                    correct,
                    f"wiki_popularity{shuffle}/{fname}",
                    "wiki",
                    n,
                    {
                        "popularity": pop,
                        "length": length,
                        "words": words,
                        "variant": fname[: -len(".json")],
                    },
                )
            )
    return files


_CATALOG = _build_catalog()


def _norm_dataset(name: str) -> str:
    key = name.strip().lower().replace("-", "_").replace("/", "_").replace(" ", "_")
    key = key.removesuffix(".json")
    for suf in ("_train",):
        key = key.removesuffix(suf)
    aliases = {
        "popular_wikipedia_100": "wiki_popular_100",
        "popular_wikipedia_500": "wiki_popular_500",
        "popular_wikipedia_1000": "wiki_popular_1000",
        "long_tail_wikipedia": "wiki_long_tail",
        "wiki_longtail": "wiki_long_tail",
        "long_tail": "wiki_long_tail",
        "comve": "sensemaking",
        "aqua_rat": "aqua",
        "math_counting_and_probability": "math_counting_probability",
        "counting_and_probability": "math_counting_probability",
    }
    key = aliases.get(key, key)
    if key in MATH_SUBJECTS:
        key = f"math_{key}"
    if key.startswith(("lighteval_math_", "hendrycks_math_")):
        key = "math_" + key.split("math_", 1)[1]
    return key


def _norm_cot(cot: str | None) -> str | None:
    if cot is None:
        return None
    c = cot.strip().lower()
    return _COT_ALIASES.get(c, c)


def release_catalog(
    dataset: str | None = None,
    cot: str | None = None,
    correct: bool | None = None,
    family: str | None = None,
) -> list[ReleaseFile]:
    """The released files, optionally filtered.

    Args:
        dataset: lgkit dataset name (aliases such as ``popular_wikipedia_100`` work).
        cot: ``none|simplified|detailed`` (or ``no_cot|with_cot|with_cot_gpt4o``).
        correct: True for correct files, False for the irrelevant ones.
        family: ``math``, ``commonsense`` or ``wiki``.

    Example:
        >>> len(release_catalog()), len(release_catalog(family="wiki", correct=True))
        (56, 4)
    """
    ds = _norm_dataset(dataset) if dataset is not None else None
    c = _norm_cot(cot)
    return [
        f
        for f in _CATALOG
        if (ds is None or f.dataset == ds)
        and (c is None or f.cot == c)
        and (correct is None or f.correct == correct)
        and (family is None or f.family == family)
    ]


def release_cache_dir() -> Path:
    """Where downloaded release files are cached: ``$LGKIT_CACHE/data/layer_gradient``.

    Default root ``~/.cache/lgkit`` (same root as :func:`lgkit.models.model_cache_dir`).

    Example:
        >>> release_cache_dir().name
        'layer_gradient'
    """
    root = os.environ.get("LGKIT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "lgkit"
    return base / "data" / "layer_gradient"


def _candidates(root: str | os.PathLike | None) -> list[Path]:
    if not root:
        return []
    p = Path(root).expanduser()
    return [p, p / "data"]


def _search_roots(data_dir: str | os.PathLike | None) -> list[Path]:
    roots = (
        _candidates(data_dir)
        + _candidates(os.environ.get("LGKIT_DATA_DIR"))
        + [release_cache_dir()]
    )
    return roots


def _downloads_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    for var in ("LGKIT_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    return True


def _download(relpath: str, dest: Path, timeout: float = 60.0) -> None:
    base = os.environ.get("LGKIT_RELEASE_URL") or RELEASE_URL
    url = base.format(commit=RELEASE_COMMIT).rstrip("/") + "/" + relpath
    logger.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data = resp.read()
    json.loads(data)  # refuse to cache an HTML error page or a truncated file
    atomic_write_bytes(dest, data)


def release_path(
    relpath: str, *, data_dir: str | os.PathLike | None = None, download: bool | None = None
) -> Path:
    """Local path of a released file, downloading it into the cache when needed.

    Args:
        relpath: path below the release's ``data/`` folder (see :class:`ReleaseFile`).
        data_dir: explicit folder (the ``data/`` folder or a repository clone).
        download: allow downloading (default: yes unless ``LGKIT_OFFLINE``/``HF_HUB_OFFLINE``).

    Raises:
        ReleaseUnavailableError: not found locally and not downloadable.

    Example:
        >>> release_path("cot_500/gsm8k_train_no_cot.json").name  # doctest: +SKIP
        'gsm8k_train_no_cot.json'
    """
    roots = _search_roots(data_dir)
    for root in roots:
        p = root / relpath
        if p.is_file():
            return p
    looked = ", ".join(str(r) for r in roots)
    if not _downloads_allowed(download):
        raise ReleaseUnavailableError(
            f"released file {relpath} not found (looked in: {looked}) and downloads are disabled; "
            "pass data_dir=... or set LGKIT_DATA_DIR to the release's data/ folder"
        )
    dest = release_cache_dir() / relpath
    try:
        _download(relpath, dest)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        raise ReleaseUnavailableError(
            f"released file {relpath} not found (looked in: {looked}) and the download from "
            f"github.com/MingLiiii/Layer_Gradient failed ({exc}); offline? pass data_dir=... or "
            "set LGKIT_DATA_DIR to a copy of the release's data/ folder"
        ) from exc
    return dest


def find_release_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first local folder holding the whole release (every catalog file), or None.

    Example:
        >>> d = find_release_dir()  # None when the files are not all local
        >>> d is None or (d / "cot_500").is_dir()
        True
    """
    for root in _search_roots(data_dir):
        if all((root / f.relpath).is_file() for f in _CATALOG):
            return root
    return None


def release_available(data_dir: str | os.PathLike | None = None) -> bool:
    """Whether every released file is available locally (no download attempted).

    Example:
        >>> isinstance(release_available(), bool)
        True
    """
    return find_release_dir(data_dir) is not None


def _one(dataset: str, cot: str | None, correct: bool) -> ReleaseFile:
    ds = _norm_dataset(dataset)
    files = release_catalog(dataset=ds, correct=correct)
    if not files:
        known = sorted({f.dataset for f in _CATALOG})
        raise InputError(f"unknown released dataset {dataset!r}; known: {known}")
    c = _norm_cot(cot)
    if c is None:
        if len({f.cot for f in files}) == 1:
            return files[0]
        raise InputError(f"dataset {ds!r}: give cot= one of {sorted({f.cot for f in files})}")
    hit = [f for f in files if f.cot == c]
    if not hit:
        raise InputError(
            f"dataset {ds!r} has no released {c!r} files; available: {sorted({f.cot for f in files})}"
        )
    return hit[0]


@functools.lru_cache(maxsize=64)
def _gold_cached(path: str, mtime: float, kind: str) -> tuple[str | None, ...]:
    exs = read_examples(path)
    if kind == "no_cot":
        return tuple(e.output.strip() for e in exs)
    return tuple(final_answer(e.output) for e in exs)


def _gold_answers(rf: ReleaseFile, data_dir: Any, download: bool | None) -> list[str | None] | None:
    """Gold answers of a dataset's questions: the no-CoT file (cot_500) or MATH's boxed answer."""
    if rf.family == "wiki":
        return None
    src = release_catalog(
        dataset=rf.dataset, cot="none" if rf.dataset in COT_DATASETS else "simplified", correct=True
    )[0]
    try:
        p = release_path(src.relpath, data_dir=data_dir, download=download)
    except ReleaseUnavailableError:
        return None
    return list(_gold_cached(str(p), p.stat().st_mtime, "no_cot" if src.cot == "none" else "boxed"))


def load_release(
    dataset: str,
    cot: str | None = None,
    correct: bool = True,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    limit: int | None = None,
    check_count: bool = True,
) -> list[Example]:
    """Load one released file as validated :class:`~lgkit.formats.records.Example` records.

    Every record is validated (a bad record raises :class:`~lgkit.errors.InputError`
    naming the file, the record index and the field) and gets metadata: ``id``
    ``<dataset>-<index:04d>-<cot>-<correct|irrelevant>``, ``dataset``, ``cot``,
    ``correct`` and ``meta`` (``qid``, ``index``, ``family``, ``source``, ``file``,
    ``synthetic: false``, the gold ``answer`` when known — from the no-CoT file for the
    CoT datasets, from ``\\boxed{}`` for MATH — plus MATH ``subject`` or wiki
    ``popularity``/``length``/``words``). Texts are kept exactly as released (including
    the literal ``\\n`` escapes of some instructions).

    Args:
        dataset: e.g. ``gsm8k``, ``math_algebra``, ``wiki_popular_500``, ``wiki_long_tail``.
        cot: ``none``, ``simplified`` or ``detailed`` (may be omitted for wiki).
        correct: False loads the ``*_wrong_answer_shuffle`` (irrelevant) file.
        data_dir: explicit release folder (first in the resolution order).
        download: allow downloading (default: unless ``LGKIT_OFFLINE``/``HF_HUB_OFFLINE``).
        limit: keep the first ``limit`` records (all are validated).
        check_count: fail when the file does not hold the expected number of records.

    Raises:
        InputError: unknown dataset/cot, a bad record, or an unexpected record count.
        ReleaseUnavailableError: the file is not available (offline).

    Example:
        >>> exs = load_release("gsm8k", cot="simplified", limit=2)  # doctest: +SKIP
        >>> exs[0].id, exs[0].meta["answer"]  # doctest: +SKIP
        ('gsm8k-0000-simplified-correct', '20')
    """
    rf = _one(dataset, cot, correct)
    path = release_path(rf.relpath, data_dir=data_dir, download=download)
    exs = read_examples(path)
    if check_count and len(exs) != rf.n_expected:
        raise InputError(f"expected {rf.n_expected} records, found {len(exs)}", path=path)
    gold = _gold_answers(rf, data_dir, download)
    if gold is not None and len(gold) != len(exs):
        gold = None
    tag = "correct" if correct else "irrelevant"
    out = []
    for k, ex in enumerate(exs):
        qid = f"{rf.dataset}-{k:04d}"
        meta = {
            "qid": qid,
            "index": k,
            "family": rf.family,
            "source": "layer_gradient",
            "file": rf.relpath,
            "synthetic": False,
            **rf.meta,
        }
        if gold is not None and gold[k] is not None:
            meta["answer"] = gold[k]
            if correct:
                meta["response_answer"] = gold[k]
        ex.id, ex.dataset, ex.cot, ex.correct, ex.meta = (
            f"{qid}-{rf.cot}-{tag}",
            rf.dataset,
            rf.cot,
            correct,
            meta,
        )
        out.append(ex)
    return out[:limit] if limit is not None else out


def release_items(
    dataset: str, *, data_dir: str | os.PathLike | None = None, download: bool | None = None
) -> list[Item]:
    """The released questions of a dataset as :class:`~lgkit.data.items.Item` objects.

    Each item carries every released correct CoT level and the gold answer, so that
    :func:`~lgkit.data.items.make_variants` can rebuild the irrelevant variants with
    lgkit's collision-free builder.

    Example:
        >>> items = release_items("strategyqa")  # doctest: +SKIP
        >>> sorted(items[0].responses)  # doctest: +SKIP
        ['detailed', 'none', 'simplified']
    """
    files = release_catalog(dataset=dataset, correct=True)
    if not files:
        raise InputError(f"unknown released dataset {dataset!r}")
    per_cot = {
        f.cot: load_release(f.dataset, f.cot, True, data_dir=data_dir, download=download)
        for f in files
    }
    first = next(iter(per_cot.values()))
    items = []
    for k, ex in enumerate(first):
        responses = {}
        for c, exs in per_cot.items():
            if exs[k].instruction != ex.instruction:
                raise InputError(
                    f"{files[0].dataset}: released files are not aligned at record {k}"
                )
            responses[c] = exs[k].output
        meta = {
            key: v
            for key, v in ex.meta.items()
            if key not in ("answer", "response_answer", "file", "index")
        }
        items.append(
            Item(ex.instruction, ex.meta.get("answer"), responses, input=ex.input, meta=meta)
        )
    return items


def release_groups(
    datasets: list[str] | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    correct: bool | None = None,
) -> Groups:
    """Load several released files as :data:`~lgkit.data.items.Groups`.

    Example:
        >>> g = release_groups(["gsm8k"], correct=True)  # doctest: +SKIP
        >>> sorted(k[1] for k in g)  # doctest: +SKIP
        ['detailed', 'none', 'simplified']
    """
    wanted = {_norm_dataset(d) for d in datasets} if datasets else None
    groups: Groups = {}
    for f in _CATALOG:
        if (wanted is None or f.dataset in wanted) and (correct is None or f.correct == correct):
            groups[(f.dataset, f.cot, f.correct)] = load_release(
                f.dataset, f.cot, f.correct, data_dir=data_dir, download=download
            )
    return groups


def release_collisions(
    *, data_dir: str | os.PathLike | None = None, download: bool | None = False
) -> dict[str, IrrelevanceReport]:
    """Collision counts of every released irrelevant file against its correct file.

    Keys are the irrelevant files' relative paths. Gold answers are the no-CoT answers
    (CoT datasets) or the ``\\boxed{}`` answers (MATH); the irrelevant responses'
    answers are extracted from their text (long detailed texts often have none:
    see ``answered``). Wiki files have no answers; their ``own_sentence`` counts shuffled
    texts that kept a sentence of their own article.

    Raises:
        ReleaseUnavailableError: a file is missing and cannot be downloaded.

    Example:
        >>> table = release_collisions()  # doctest: +SKIP
        >>> table["cot_500_wrong_answer_shuffle/strategyqa_train_no_cot.json"].same_final_answer  # doctest: +SKIP
        250
    """
    out = {}
    for f in release_catalog(correct=False):
        corr = load_release(f.dataset, f.cot, True, data_dir=data_dir, download=download)
        irr = load_release(f.dataset, f.cot, False, data_dir=data_dir, download=download)
        out[f.relpath] = check_irrelevant(corr, irr)
    return out
