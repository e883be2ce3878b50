"""Example data for lgkit: the authors' released files, builders, irrelevant variants, synthetic set.

Turns sources into the record files (lgkit.formats.records) the engine reads, plus their index.
May import: lgkit.errors, lgkit.schema, lgkit.fsio, lgkit.formats, lgkit.models (the teacher,
lazily). Never lgkit.analysis, lgkit.viz or lgkit.series (tests/test_boundaries.py checks).

Entry points:

* :func:`load_release` — the released example files of arXiv 2410.23743 by name
  (explicit path, ``LGKIT_DATA_DIR``, local cache, or download);
* :func:`build_dataset` — builders from the original datasets (GSM8K, AQuA-RAT,
  StrategyQA, ECQA, CREAK, ComVE, MATH, Wikipedia) through ``datasets``;
* :func:`make_irrelevant`, :func:`shuffle_sentences`, :func:`check_irrelevant`, :func:`repair_collisions` —
  irrelevant responses that are really irrelevant, and collision counts;
* :func:`synthetic_groups` — the offline synthetic set (``synth_*``);
* :func:`summary` — counts and token-length statistics per dataset x variant;
* :func:`build_profile`, :func:`read_data_index`, :func:`select` — what notebook 01
  writes and notebooks 02-05 read.

Example:
    >>> import tempfile
    >>> import lgkit.data as data
    >>> files = data.build_profile("smoke", tempfile.mkdtemp(), n_per_variant=2, seed=0)
    >>> [f.name for f in data.select(files, dataset="synth_arith", correct=False)]
    ['synth_arith__none__irrelevant', 'synth_arith__simplified__irrelevant', 'synth_arith__detailed__irrelevant']
"""

from __future__ import annotations

from lgkit.data.answers import final_answer, normalize_answer, same_answer
from lgkit.data.builders import BUILDERS, HUB_SOURCES, build_dataset, load_source
from lgkit.data.index import DataFile, read_data_index, select, write_data_file, write_data_index
from lgkit.data.irrelevant import (
    IrrelevanceReport,
    assign_donors,
    check_irrelevant,
    make_irrelevant,
    repair_collisions,
    shuffle_sentences,
)
from lgkit.data.items import FAMILIES, Groups, Item, family_of, make_variants, variant_name
from lgkit.data.lengths import (
    check_data_files,
    collision_table,
    get_tokenizer,
    length_ratios,
    length_table,
    plot_length_distributions,
    prep_metrics,
    summary,
    token_lengths,
)
from lgkit.data.profile import PROFILES, ProfileSpec, build_profile, profile_groups
from lgkit.data.release import (
    RELEASE_COMMIT,
    ReleaseFile,
    ReleaseUnavailableError,
    find_release_dir,
    load_release,
    release_available,
    release_catalog,
    release_collisions,
    release_groups,
    release_items,
)
from lgkit.data.synthetic import SYNTH_DATASETS, WIKI_LENGTHS, synthetic_groups
from lgkit.data.teacher import attach_detailed, generate_detailed, load_teacher_responses
from lgkit.data.text import cut_words, split_sentences

__all__ = [
    "BUILDERS",
    "FAMILIES",
    "HUB_SOURCES",
    "PROFILES",
    "RELEASE_COMMIT",
    "SYNTH_DATASETS",
    "WIKI_LENGTHS",
    "DataFile",
    "Groups",
    "IrrelevanceReport",
    "Item",
    "ProfileSpec",
    "ReleaseFile",
    "ReleaseUnavailableError",
    "assign_donors",
    "attach_detailed",
    "build_dataset",
    "build_profile",
    "check_data_files",
    "check_irrelevant",
    "collision_table",
    "cut_words",
    "family_of",
    "final_answer",
    "find_release_dir",
    "generate_detailed",
    "get_tokenizer",
    "length_ratios",
    "length_table",
    "load_release",
    "load_source",
    "load_teacher_responses",
    "make_irrelevant",
    "repair_collisions",
    "make_variants",
    "normalize_answer",
    "plot_length_distributions",
    "prep_metrics",
    "profile_groups",
    "read_data_index",
    "release_available",
    "release_catalog",
    "release_collisions",
    "release_groups",
    "release_items",
    "same_answer",
    "select",
    "shuffle_sentences",
    "split_sentences",
    "summary",
    "synthetic_groups",
    "token_lengths",
    "variant_name",
    "write_data_file",
    "write_data_index",
]
