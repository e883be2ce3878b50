"""Formats: training records, prompt conventions, the statistics table on disk, the authors' JSONL.

The statistics table: a run folder's layout and Parquet parts (``parts``), their
verification and repair (``ledger``), the verified readers (``store``: ``load_stats`` and the
rest), written by the engine and read by everyone after it. May import: lgkit.errors,
lgkit.schema, lgkit.fsio, lgkit.locks. Nothing else of lgkit (tests/test_boundaries.py checks).

Example:
    >>> from lgkit.formats import Example
    >>> "detailed" in COT_LEVELS
    True
"""

from lgkit.formats.records import COT_LEVELS, Example, read_examples, write_examples

__all__ = ["COT_LEVELS", "Example", "read_examples", "write_examples"]
