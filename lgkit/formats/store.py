"""The statistics table of a run, read verified: statistics, failures, per-token terms.

:func:`load_stats` reads every part through :func:`lgkit.formats.ledger.check_table` (a
damaged, foreign, duplicated, unlisted or missing part is refused in one line naming the
file); the folder's layout and the raw part readers and writers are
:mod:`lgkit.formats.parts`. ``lgkit.load_stats`` and ``lgkit.engine.load_stats`` are these.

Example:
    >>> import tempfile
    >>> from lgkit.formats.parts import write_part
    >>> d = tempfile.mkdtemp()
    >>> _ = write_part(d, [{"sample_id": "a", "example_index": 0, "layer": 0, "module": "q"}])
    >>> load_stats(d)["sample_id"].tolist()
    ['a']
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgkit.errors import InputError
from lgkit.formats.ledger import check_table
from lgkit.formats.parts import (
    MANIFEST,
    PARTS,
    TOKENS,
    failure_rows,
    read_folder,
    sort_table,
    stats_ids,
)
from lgkit.schema import ALL_MODULES, TABLE_COLUMNS


def load_stats(out_dir: str | Path, *, spectrum: bool = True) -> pd.DataFrame:
    """The statistics table of a run (all ranks), one row per example × layer × module.

    Columns (docs/ARCHITECTURE.md): ``sample_id, dataset, cot, correct, layer, module, shape, loss,
    n_prompt_tokens, n_response_tokens, truncated, nuclear_norm, sigma_max, sigma_min,
    sigma1_ratio, frobenius_norm, effective_rank, entry_mean, entry_max, entry_min``,
    plus ``example_index``, ``param`` and, when computed, ``spectrum``,
    ``cos_next_layer`` and ``cos_pair``. Sorted by example, layer and module.

    Raises:
        InputError: when ``out_dir`` holds no lgkit run.

    Example:
        >>> df = load_stats("outputs/run")  # doctest: +SKIP
        >>> df.groupby(["cot", "layer", "module"]).nuclear_norm.mean()  # doctest: +SKIP
    """
    d = Path(out_dir)
    if not (d / MANIFEST).exists() and not (d / PARTS).exists():
        raise InputError("no lgkit statistics here (no manifest.json or parts/)", path=d)
    df = check_table(d)
    if df.empty:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    if not spectrum:
        df = df.drop(columns=["spectrum"], errors="ignore")
    first = [c for c in TABLE_COLUMNS if c in df.columns]
    return sort_table(df[first + [c for c in df.columns if c not in first]])


def load_failures(out_dir: str | Path) -> pd.DataFrame:
    """The outstanding failures of a run: ``sample_id, example_index, reason, kind`` (+ metadata).

    One row per example that has no statistics (a runtime failure a rerun then got
    through is gone); ``kind`` is ``data`` or ``runtime`` (module docstring).
    """
    df = failure_rows(out_dir, stats_ids(out_dir))
    if df.empty:
        return pd.DataFrame(columns=["sample_id", "example_index", "reason", "kind"])
    return sort_table(df.reset_index(drop=True))


def load_token_stats(out_dir: str | Path) -> pd.DataFrame:
    """The per-token table of a run written with ``token_stats``.

    Columns: ``sample_id, example_index, position, token, in_loss, layer, module,
    token_norm`` (= ‖d_t‖‖x_t‖; summed over positions it gives the statistics table's
    ``token_norm_sum``). Rows of examples a resumed run redid appear once; rows of
    examples without a statistics row are left out.

    Example:
        >>> load_token_stats("outputs/run").head()  # doctest: +SKIP
    """
    cols = ["sample_id", "example_index", "position", "token", "in_loss", "layer", "module"]
    df = read_folder(Path(out_dir) / TOKENS)
    if df.empty:
        return pd.DataFrame(columns=[*cols, "token_norm"])
    done = read_folder(Path(out_dir) / PARTS, columns=["sample_id"])
    df = df[df["sample_id"].isin(set(done["sample_id"]) if len(done) else set())]
    df = df.drop_duplicates(["sample_id", "layer", "module", "position"], keep="last")
    return _sort_tokens(df)


def _sort_tokens(df: pd.DataFrame) -> pd.DataFrame:
    order = {m: i for i, m in enumerate(ALL_MODULES)}
    df = df.assign(_m=df["module"].map(order))
    df = df.sort_values(["example_index", "sample_id", "layer", "_m", "position"], kind="stable")
    return df.drop(columns=["_m"]).reset_index(drop=True)


def stats_dataset(out_dir: str | Path):  # -> datasets.Dataset
    """The statistics table as a Hugging Face ``datasets.Dataset``.

    Example:
        >>> ds = stats_dataset("outputs/run")  # doctest: +SKIP
    """
    import datasets

    return datasets.Dataset.from_pandas(load_stats(out_dir), preserve_index=False)
