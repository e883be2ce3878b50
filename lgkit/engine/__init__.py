"""The engine: exact per-example gradient spectra of every projection, written to a resumable table.

Data flow: config (GradConfig, the settings that change the numbers) -> arch (find projections)
-> capture (hooks hand over X and D) -> spectra (statistics from the factors) -> batch (losses,
one padded batch; spans: which tokens carry the loss) -> run (compute_stats: plan -> loop ->
writer, under folder's lock) -> the statistics table on disk (lgkit.formats.parts, .ledger,
.store: Parquet parts, manifest, verified reads; re-exported here: load_stats and the rest).
May import: lgkit.errors, lgkit.schema, lgkit.provenance, lgkit.formats, lgkit.models (lazily).
Never imports lgkit.analysis, lgkit.viz or lgkit.series (tests/test_boundaries.py checks).

Example:
    >>> from lgkit.engine import GradConfig
    >>> GradConfig().max_length
    1024
"""

from lgkit.engine.batch import run_batch
from lgkit.engine.config import GradConfig
from lgkit.engine.plan import RunResult
from lgkit.engine.run import compute_stats, stats_for
from lgkit.formats.parts import load_manifest
from lgkit.formats.store import load_failures, load_stats, load_token_stats, stats_dataset

__all__ = [
    "GradConfig",
    "RunResult",
    "compute_stats",
    "load_failures",
    "load_manifest",
    "load_stats",
    "load_token_stats",
    "run_batch",
    "stats_dataset",
    "stats_for",
]
