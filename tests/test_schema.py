"""One vocabulary: every package's names come from lgkit.schema."""

from __future__ import annotations

import torch.nn as nn

from lgkit import schema
from lgkit.analysis.tables import COT_ORDER, METRIC_ALIASES
from lgkit.data.items import FAMILIES
from lgkit.data.profile import PROFILES as DATA_PROFILES
from lgkit.data.synthetic import SYNTH_DATASETS
from lgkit.engine.arch import ARCH_TABLE
from lgkit.formats.records import COT_LEVELS
from lgkit.series.catalog import PROFILES as SERIES_PROFILES


def test_old_names_are_the_schema_objects():
    assert COT_LEVELS is schema.COT_LEVELS and COT_ORDER is schema.COT_LEVELS
    assert FAMILIES is schema.TASK_FAMILIES
    assert METRIC_ALIASES is schema.AUTHOR_METRIC_ALIASES
    assert set(SYNTH_DATASETS) == set(schema.TASK_FAMILIES)


def test_author_names_map_to_table_columns():
    columns = set(schema.STAT_COLUMNS)
    assert set(schema.AUTHOR_FILE_STATS.values()) <= columns
    assert set(schema.AUTHOR_METRIC_ALIASES.values()) <= columns
    assert schema.AUTHOR_METRIC_ALIASES["S_ratio"] == "sigma1_ratio"


class _Cfg:
    hidden_size = 64
    num_attention_heads = 4
    num_key_value_heads = 2
    head_dim = 16
    intermediate_size = 32


def test_engine_splits_every_schema_suffix_into_its_schema_names():
    assert set(ARCH_TABLE) == set(schema.PROJECTION_SUFFIXES) | set(schema.FUSED_SUFFIXES)
    expected = {k: (v,) for k, v in schema.PROJECTION_SUFFIXES.items()} | schema.FUSED_SUFFIXES
    for suffix, split in ARCH_TABLE.items():
        names = tuple(name for name, _ in split(nn.Linear(1, 1), _Cfg()))
        assert names == expected[suffix], suffix
        assert set(names) <= set(schema.ALL_MODULES)


def test_one_profile_table():
    assert SERIES_PROFILES == tuple(DATA_PROFILES)
    assert SERIES_PROFILES == ("smoke", "default", "full")
