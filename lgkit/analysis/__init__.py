"""Analysis of statistics tables: curves, MAD, relative differences, inference and the paper's claims.

Everything takes the statistics table (docs/ARCHITECTURE.md, "The statistics table") as a pandas
DataFrame and returns DataFrames or small dataclasses. May import: lgkit.errors, lgkit.schema.
Never torch, the engine, viz or series (tests/test_boundaries.py checks).

Conventions used throughout:

* An **example** is one row of the source data seen by one model: it is identified by
  ``sample_id`` together with whichever of ``model``, ``dataset``, ``cot`` and
  ``correct`` are columns of the table (the same ``sample_id`` in two variants or two
  models is two examples). Bootstrap resampling and length matching work on
  examples, never on rows.
* A **curve** is the mean of a metric over examples, per layer, for one group and one
  module. As in the authors' code, an example whose curve has a missing (NaN) layer is
  left out of that curve (``drop_incomplete=True``).
* Metric names are the table's columns, the authors' names as aliases
  (``S_sum`` = ``nuclear_norm``, ``S_max`` = ``sigma_max``, ``S_min`` = ``sigma_min``,
  ``S_ratio`` = ``sigma1_ratio``) and the derived ``S_sum_regularized`` =
  ``nuclear_norm / loss`` (0 where the loss is 0, like the authors' zero guard).
* ``norm`` (``mean``, the paper's mean token loss as stored; ``sum``, × T; ``sqrt``,
  × √T; T = ``n_loss_tokens`` else ``n_response_tokens``) reads every gradient-scale
  metric under another loss normalisation, in every function from ``metric_values`` up
  to the claims; ``coherence`` and ``mad_table(relative=True)`` are scale-free.
* ``where`` filters rows before anything else: ``{"dataset": "gsm8k",
  "correct": True}``; a list/tuple/set value means "any of".

Example:
    >>> df = synthetic_stats(n_samples=5, n_layers=6, seed=0)
    >>> curves = layer_curves(df, "nuclear_norm", by=["cot"], n_boot=50)
    >>> sorted(curves.columns)[:4]
    ['cot', 'hi', 'layer', 'lo']
    >>> mad = mad_table(df, "nuclear_norm", by=["cot"], where={"correct": True})
    >>> list(mad.columns)
    ['cot', 'module', 'early', 'middle', 'late', 'all', 'n_layers']
"""

from lgkit.analysis.claims import (  # noqa: F401
    claim_correct_vs_irrelevant,
    claim_flatter_with_cot,
    claim_length_not_enough,
    claim_long_tail_larger,
    curve_summary,
    floor_note,
    fmt_number,
    irrelevant_length_note,
    length_levels,
    rd_above_noise,
    rd_by,
    rd_margin_note,
    with_correct,
)
from lgkit.analysis.compare import (  # noqa: F401
    RelativeDifference,
    relative_difference,
    relative_difference_curves,
    relative_difference_table,
    signed_relative_difference,
)
from lgkit.analysis.curves import (  # noqa: F401
    bootstrap_mean_band,
    curve_dict,
    layer_curves,
    layer_groups,
    mad_by_group,
    mad_table,
    mean_absolute_difference,
    pivot_mad,
    sort_groups,
)
from lgkit.analysis.decision import (  # noqa: F401
    decide,
)
from lgkit.analysis.findings import (  # noqa: F401
    CONFOUNDED_LABEL,
    EXPLORATORY,
    NO_TRAINED_EFFECT,
    PRIMARY,
    SYNTHETIC_LABEL,
    TWIN_LABEL,
    Finding,
    cannot_decide,
    control_text,
    evaluate,
    exploratory,
    findings_table,
    interval_at,
    invalid,
    rule_text,
    verdict_of,
)
from lgkit.analysis.fixtures import (  # noqa: F401
    synthetic_stats,
)
from lgkit.analysis.inference import (  # noqa: F401
    holm,
    interval,
    min_p,
    permutation,
    question_ids,
    rd_swap_null,
    side_arrays,
)
from lgkit.analysis.latex import (  # noqa: F401
    to_latex,
)
from lgkit.analysis.learned import (  # noqa: F401
    Recipe,
    depth_sides,
    drop_identical,
    key,
    learned_row,
    pooled_twin,
    share_text,
)
from lgkit.analysis.length import (  # noqa: F401
    length_association,
    length_matched_comparison,
    match_by_length,
    per_example,
    spearman,
)
from lgkit.analysis.pairs import (  # noqa: F401
    claim_base_vs_instruct,
    claim_instruct_not_better_at_correctness,
    claim_learned_base_vs_instruct,
    pick_pair,
)
from lgkit.analysis.tables import (  # noqa: F401
    COT_ORDER,
    DERIVED_METRICS,
    EXAMPLE_COLUMNS,
    KEY_COLUMNS,
    LAYER_GROUP_PRESETS,
    LAYER_GROUPS,
    METRIC_ALIASES,
    METRIC_LABELS,
    MODULE_ORDER,
    NORMS,
    OPTIONAL_METRIC_COLUMNS,
    REQUIRED_COLUMNS,
    SCALED_METRICS,
    as_list,
    available_metrics,
    check_columns,
    example_key_columns,
    filter_table,
    loss_tokens,
    metric_label,
    metric_values,
    norm_factor,
    prepare_table,
    value_order,
)
