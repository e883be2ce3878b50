"""The notebook series and its profiles: one place for their names.

Example:
    >>> NOTEBOOKS[0], PROFILES
    ('01_data_prep', ('smoke', 'default', 'full'))
"""

from __future__ import annotations

NOTEBOOKS: tuple[str, ...] = (
    "01_data_prep",
    "02_math",
    "03_commonsense",
    "04_wiki",
    "05_base_vs_instruct",
)
"""The notebook series, in execution order."""

PROFILES: tuple[str, ...] = ("smoke", "default", "full")
"""Profiles with a params YAML per notebook."""

DATA_NOTEBOOK = "01_data_prep"
"""The notebook that writes the data files the others read."""
