"""The engine: exact per-example gradient spectra of every projection, written to a resumable table.

Data flow: arch (find projections) -> capture (hooks hand over X and D) -> spectra (statistics
from the factors) -> run (batches, losses, compute_stats) -> store (Parquet parts, manifest).
May import: lgkit.errors, lgkit.schema, lgkit.provenance, lgkit.formats, lgkit.models (lazily).
Never imports lgkit.analysis, lgkit.viz or lgkit.series (tests/test_boundaries.py checks).

Example:
    >>> from lgkit.engine import GradConfig
    >>> GradConfig().max_length
    1024
"""

from lgkit.engine.run import GradConfig, RunResult, compute_stats, run_batch, stats_for
from lgkit.engine.store import load_failures, load_manifest, load_stats, stats_dataset

__all__ = [
    "GradConfig",
    "RunResult",
    "compute_stats",
    "load_failures",
    "load_manifest",
    "load_stats",
    "run_batch",
    "stats_dataset",
    "stats_for",
]
