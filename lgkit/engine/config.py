"""Settings of a statistics run: one :class:`GradConfig` and the list of those that change the numbers.

:data:`NUMERIC_SETTINGS` is the single list both the resume fingerprint
(:func:`lgkit.engine.plan.run_fingerprint`) and the statistics cache
(:func:`lgkit.engine.run.stats_for`) are built from; the ``lgkit grads`` options are
built from the fields' metadata (:func:`cli_options`), so defaults cannot disagree.

Example:
    >>> c = GradConfig(modules="q,o", loss_on="answer")
    >>> numeric_settings(c)["loss_on"], "batch_size" in numeric_settings(c)
    ('answer', False)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from lgkit.engine.arch import parse_layers, parse_modules
from lgkit.engine.options import SHARED_HELP
from lgkit.errors import InputError
from lgkit.formats.prompts import COMPAT_MODES, DEFAULT_SYSTEM_PROMPT

LOSS_ON: tuple[str, ...] = ("response", "answer")
"""Where the loss goes: every response token (the paper) or the final-answer tokens only."""


def _opt(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field carrying its ``lgkit grads`` option (``help`` empty: no option)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class GradConfig:
    """Settings of a statistics run.

    Attributes:
        modules: abstract projections (q, k, v, o; gate, up, down), or a string
            like ``"q,k,v,o"``/``"attn"``/``"mlp"``/``"all"``.
        max_length: maximum tokens per example; the end of the response is cut.
        batch_size: examples per padded batch (results are per example either way).
        limit: process only the first ``limit`` examples of the data (None or 0: all,
            like ``n_per_variant: 0`` in the notebooks).
        compat: None (lgkit convention) or ``"layer_gradient"`` (the authors').
        spectrum: also store the full singular spectrum of each gradient.
        similarities: also store gradient cosines (``cos_next_layer``: with the same
            projection of the next layer; ``cos_pair``: q×o and k×v in a layer).
        instruct: run with the chat template; None: as the model was loaded/detected.
        system_prompt: system message for instruct models.
        flush_every: examples per Parquet part (what a kill can cost at most).
        stats_threads: eigen-solves run side by side on this many threads, each a
            single-threaded LAPACK call (None: one per torch thread, at most 8).
        loss_chunk: LM-head positions per checkpointed chunk (None: automatic for
            long examples of large-vocabulary models; 0: never).
        loss_on: ``"response"`` (mean cross-entropy over every response token, the
            paper) or ``"answer"`` (over the final-answer tokens only; the whole
            response stays in context).
        token_stats: also write the per-token table (‖d_t‖‖x_t‖ of every response
            token, layer and module; :func:`lgkit.load_token_stats`).
        layers: statistics of these layers only (``all``/None, ``last``, ``a:b``, one
            index; :func:`lgkit.engine.arch.parse_layers`): less work when only some
            layers are wanted (``lgkit score --layers last``).

    Example:
        >>> GradConfig(modules="q,o").modules
        ('q', 'o')
    """

    modules: tuple[str, ...] | str = _opt(("q", "k", "v", "o"), SHARED_HELP["--modules"])
    max_length: int = _opt(1024, SHARED_HELP["--max-length"])
    batch_size: int = _opt(1, "examples per padded batch")
    limit: int | None = _opt(None, "only the first N examples (0: all, as by default)")
    compat: str | None = _opt(
        None,
        "reproduce a published tokenisation: the authors' (layer_gradient) or OpenDataArena's "
        "scorers (oda_nuclear, oda_rank)",
        choices=COMPAT_MODES[1:],
    )
    spectrum: bool = _opt(False, "also store each gradient's full singular spectrum")
    similarities: bool = _opt(False, "also store gradient cosines between layers and q×o, k×v")
    instruct: bool | None = _opt(None, "")  # --instruct/--base, a tri-state built by the CLI
    system_prompt: str | None = _opt(
        DEFAULT_SYSTEM_PROMPT, "system message for instruct models ('' for none)"
    )
    flush_every: int = _opt(8, "examples per Parquet part")
    stats_threads: int | None = _opt(
        None,
        "eigen-solves side by side, each on one thread (default: one per torch thread, at most 8)",
    )
    loss_chunk: int | None = _opt(
        None, "LM-head positions per checkpointed chunk (default: automatic; 0: never)"
    )
    loss_on: str = _opt(
        "response",
        "tokens carrying the loss: the whole response (the paper) or the final answer only",
        choices=LOSS_ON,
    )
    token_stats: bool = _opt(
        False, "also write the per-token table (||d_t|| ||x_t|| per token, layer, module)"
    )
    layers: str | None = _opt(None, SHARED_HELP["--layers"])

    def __post_init__(self) -> None:
        self.modules = parse_modules(self.modules)
        if self.compat in ("", "none", "None"):
            self.compat = None
        if self.compat not in COMPAT_MODES:
            raise InputError(
                f"unknown compat mode {self.compat!r}; choose one of {', '.join(COMPAT_MODES[1:])}",
                field="compat",
            )
        if self.max_length < 2:
            raise InputError("must be at least 2", field="max_length")
        if self.batch_size < 1:
            raise InputError("must be at least 1", field="batch_size")
        if self.limit is not None and self.limit < 0:
            raise InputError("must be >= 0", field="limit")
        if self.flush_every < 1:
            raise InputError("must be at least 1", field="flush_every")
        if self.stats_threads is not None and self.stats_threads < 1:
            raise InputError("must be at least 1 (or left out: automatic)", field="stats_threads")
        if self.loss_chunk is not None and self.loss_chunk < 0:
            raise InputError(
                "must be >= 0 (0: never chunk; left out: automatic)", field="loss_chunk"
            )
        if self.layers in ("", "all"):
            self.layers = None
        if self.layers is not None:
            parse_layers(self.layers, 1 << 16)  # the syntax now; the range once the model is known
        if self.loss_on not in LOSS_ON:
            raise InputError(
                f"unknown value {self.loss_on!r}; choose {' or '.join(LOSS_ON)}", field="loss_on"
            )


NUMERIC_SETTINGS: tuple[str, ...] = (
    "instruct",
    "compat",
    "max_length",
    "modules",
    "system_prompt",
    "spectrum",
    "similarities",
    "loss_on",
    "token_stats",
    "layers",
)
"""The :class:`GradConfig` fields that change the numbers (or the tables) of a run.

``limit`` is not among them: it selects the data, which the fingerprint covers through
the hash of the examples taken and the cache key through the file hash plus ``limit``.
"""

ADDED_LATER: dict[str, Any] = {"loss_on": "response", "token_stats": False, "layers": None}
"""Settings newer than the first runs: left out of keys at their default, so the
fingerprints and cache keys of earlier runs stay valid."""


def numeric_settings(config: GradConfig) -> dict[str, Any]:
    """The settings of :data:`NUMERIC_SETTINGS` as a JSON-ready dict (tuples as lists).

    Example:
        >>> numeric_settings(GradConfig())["modules"]
        ['q', 'k', 'v', 'o']
    """
    out = {}
    for k in NUMERIC_SETTINGS:
        v = getattr(config, k)
        if k in ADDED_LATER and v == ADDED_LATER[k]:
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def cli_options() -> list[tuple[str, Any, dict[str, Any]]]:
    """``(field name, default, metadata)`` of every field offered as an ``lgkit grads`` option.

    The metadata holds ``help``, optional ``choices`` and the field's ``annotation``.

    Example:
        >>> [n for n, _, _ in cli_options()][:2]
        ['modules', 'max_length']
    """
    return [
        (f.name, f.default, {**f.metadata, "annotation": str(f.type)})
        for f in fields(GradConfig)
        if f.metadata["help"]
    ]
