"""The notebook series and its profiles: one place for their names.

Example:
    >>> NOTEBOOKS[0], PROFILES
    ('01_data_prep', ('smoke', 'default', 'full'))
"""

from __future__ import annotations

from lgkit.data.profile import PROFILES as _DATA_PROFILES

NOTEBOOKS: tuple[str, ...] = (
    "01_data_prep",
    "02_math",
    "03_commonsense",
    "04_wiki",
    "05_base_vs_instruct",
    "06_length_controls",
    "07_training_dynamics",
    "08_data_quality",
)
"""The notebook series, in execution order."""

PROFILES: tuple[str, ...] = tuple(_DATA_PROFILES)
"""Profiles with a params YAML per notebook: the names of :data:`lgkit.data.profile.PROFILES`."""

DATA_NOTEBOOK = "01_data_prep"
"""The notebook that writes the data files the others read."""
