"""Formats: training records, prompt conventions, and the authors' per-sample JSONL.

May import: lgkit.errors, lgkit.schema, lgkit.fsio (authors.py reads tables through
lgkit.engine.store, lazily). tests/test_boundaries.py checks.

Example:
    >>> from lgkit.formats import Example
    >>> "detailed" in COT_LEVELS
    True
"""

from lgkit.formats.records import COT_LEVELS, Example, read_examples, write_examples

__all__ = ["COT_LEVELS", "Example", "read_examples", "write_examples"]
