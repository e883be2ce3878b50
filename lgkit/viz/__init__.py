"""Figures and interactive widgets drawn from statistics tables.

May import: lgkit.analysis, lgkit.errors, lgkit.schema, lgkit.formats.records (for Example). Never torch.
"""

BATCH_ENV = "LGKIT_BATCH"
"""Set by ``lgkit run`` for its kernels: widget panels then display a static PNG, not widgets."""
