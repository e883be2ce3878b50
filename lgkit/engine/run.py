"""The gradient-spectrum engine: per-example statistics of every projection, resumable.

For each example one forward and one backward pass run with the loss on the response
tokens only (mean token cross-entropy). No weight gradient is formed: parameters are
frozen and the backward runs to the input embeddings, while hooks hand each
projection's inputs X and output gradients D to :mod:`lgkit.engine.spectra` as soon as they
exist. Several examples may share one padded batch: the backward of the *sum* of the
per-example mean losses gives each example exactly its own gradients.

Example:
    >>> from lgkit.engine import GradConfig, compute_stats
    >>> res = compute_stats("tiny-random-llama", "data.jsonl", "outputs/run",
    ...                     GradConfig(modules=("q", "k", "v", "o")))  # doctest: +SKIP
    >>> lgkit.load_stats("outputs/run").head()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lgkit import __version__
from lgkit.engine.arch import ALL_MODULES, Target, find_targets, parse_modules
from lgkit.engine.capture import GradientCapture
from lgkit.engine.spectra import (
    SpectralJob,
    default_stats_threads,
    drop_zero_rows,
    entry_stats,
    gradient_cosine,
    input_r_factor,
    nonzero_rows,
    solve_spectra,
    spectral_job,
    stats_from_singular_values,
    use_factor_route,
)
from lgkit.engine.store import (
    MANIFEST,
    clean_temporaries,
    completed_ids,
    load_failures,
    load_manifest,
    load_stats,
    now_iso,
    write_failures,
    write_json_atomic,
    write_part,
)
from lgkit.errors import InputError
from lgkit.formats.prompts import (
    COMPAT_MODES,
    DEFAULT_SYSTEM_PROMPT,
    Encoded,
    encode_example,
    has_chat_template,
)
from lgkit.formats.records import Example, read_examples
from lgkit.provenance import git_hash as _git_hash

log = logging.getLogger(__name__)

# Above this many response-logit values (~256 MB in float32) the LM head runs in chunks.
LOGITS_CHUNK_ABOVE = 64 * 2**20

# Settings that change the numbers: a resumed run must have the same ones.
FINGERPRINT_KEYS = (
    "model",
    "revision",
    "dtype",
    "instruct",
    "compat",
    "max_length",
    "modules",
    "system_prompt",
    "data_sha256",
    "spectrum",
    "similarities",
)


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

    Example:
        >>> GradConfig(modules="q,o").modules
        ('q', 'o')
    """

    modules: tuple[str, ...] | str = ("q", "k", "v", "o")
    max_length: int = 1024
    batch_size: int = 1
    limit: int | None = None
    compat: str | None = None
    spectrum: bool = False
    similarities: bool = False
    instruct: bool | None = None
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    flush_every: int = 8
    stats_threads: int | None = None
    loss_chunk: int | None = None

    def __post_init__(self) -> None:
        self.modules = parse_modules(self.modules)
        if self.compat in ("", "none", "None"):
            self.compat = None
        if self.compat not in COMPAT_MODES:
            raise InputError(
                f"unknown compat mode {self.compat!r}; choose layer_gradient", field="compat"
            )
        if self.max_length < 2:
            raise InputError("must be at least 2", field="max_length")
        if self.batch_size < 1:
            raise InputError("must be at least 1", field="batch_size")
        if self.limit is not None and self.limit < 0:
            raise InputError("must be >= 0", field="limit")


@dataclass
class RunResult:
    """What a call of :func:`compute_stats` did.

    Attributes:
        out_dir: the run directory.
        n_done: examples processed in this call.
        n_failed: examples recorded as failures in this call.
        n_skipped: examples already done by an earlier call (resume).
        seconds_model: time in forward + backward (statistics excluded).
        seconds_stats: time computing statistics.
    """

    out_dir: Path
    n_done: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    seconds_model: float = 0.0
    seconds_stats: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)


def git_hash() -> str | None:
    """The git commit of the lgkit checkout (``+dirty`` with uncommitted changes), if any."""
    return _git_hash()


def _dist_info(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None:
        rank = int(os.environ.get("RANK", "0"))
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if not 0 <= rank < world_size:
        raise InputError(f"rank {rank} outside world size {world_size}", field="rank")
    return rank, world_size


def _unique_ids(examples: Sequence[Example], source: str) -> list[str]:
    """Sample ids, unique: an explicit id used twice is an error; equal texts get ~k."""
    seen: dict[str, int] = {}
    ids = []
    for i, ex in enumerate(examples):
        sid = ex.sample_id
        if sid in seen:
            if ex.id:
                raise InputError(
                    f"duplicate id {sid!r} (also record {seen[sid]})",
                    path=source,
                    record=i,
                    field="id",
                )
            k = 2
            while f"{sid}~{k}" in seen:
                k += 1
            sid = f"{sid}~{k}"
        seen[sid] = i
        ids.append(sid)
    return ids


def _data_fingerprint(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


class _BatchStats:
    """Collects the statistics of one padded batch as gradients arrive.

    When a projection's gradient arrives, the cheap parts run at once on every core (G,
    its entry statistics, dropping zero rows; the T×T Gram of the factor route). The
    direct route's Grams and all eigen-solves are queued and, once a layer's worth is
    pending, solved ``workers`` at a time by :func:`lgkit.engine.spectra.solve_spectra`, each a
    single-threaded LAPACK call: a 2-core CPU solves q and o (then k and v) side by side.
    """

    def __init__(
        self,
        lengths: list[int],
        spectrum: bool,
        similarities: bool,
        workers: int = 1,
        flush_at: int = 4,
    ) -> None:
        self.lengths = lengths
        self.spectrum = spectrum
        self.similarities = similarities
        self.results: dict[tuple[int, int, str], dict[str, Any]] = {}
        self.factors: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._rx: dict[tuple[int, int, bytes], torch.Tensor] = {}
        self._pending: list[tuple[tuple[int, int, str], SpectralJob]] = []
        self.workers = max(1, workers)
        self.flush_at = max(1, flush_at)
        self.seconds = 0.0

    def __call__(self, group: list[Target], X: torch.Tensor, D: torch.Tensor) -> None:
        t0 = time.perf_counter()
        for b, L in enumerate(self.lengths):
            Xb = X[b, :L]
            x_keep = nonzero_rows(Xb)
            Db_all = D[b, :L]
            for t in group:
                Db = Db_all if t.index is None else Db_all[:, t.index]
                G = Db.T @ Xb
                keep = nonzero_rows(Db) & x_keep
                Dk, Xk = drop_zero_rows(Db, Xb, keep)
                r_x = None
                if use_factor_route(Dk.shape[0], *t.shape):  # share R of X across q/k/v
                    key = (Xb.data_ptr(), b, keep.cpu().numpy().tobytes())
                    r_x = self._rx.get(key)
                    if r_x is None:
                        r_x = self._rx[key] = input_r_factor(Xk)
                job = spectral_job(Dk, Xk, G=G, r_x=r_x)
                row: dict[str, Any] = {
                    "layer": t.layer,
                    "module": t.module,
                    "param": t.param_name,
                    "shape": f"{t.shape[0]} x {t.shape[1]}",
                    **entry_stats(G),
                }
                self.results[(b, t.layer, t.module)] = row
                self._pending.append(((b, t.layer, t.module), job))
                if self.similarities:
                    self.factors[(b, t.layer, t.module)] = (Dk, Xk)
        if len(self._pending) >= self.flush_at * len(self.lengths):
            self._solve()
        self.seconds += time.perf_counter() - t0

    def _solve(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        svs = solve_spectra([job for _, job in pending], self.workers)
        for (key, _), sv in zip(pending, svs, strict=True):
            row = self.results[key]
            row.update(stats_from_singular_values(sv))
            if self.spectrum:
                row["spectrum"] = sv.cpu().tolist()

    def finish(self) -> None:
        """Solve what is still pending (call after the backward)."""
        t0 = time.perf_counter()
        self._solve()
        self.seconds += time.perf_counter() - t0

    def add_similarities(self) -> None:
        t0 = time.perf_counter()
        pairs = {"q": "o", "o": "q", "k": "v", "v": "k", "gate": "up", "up": "gate"}
        for (b, layer, mod), row in self.results.items():
            D1, X1 = self.factors[(b, layer, mod)]
            nxt = self.factors.get((b, layer + 1, mod))
            row["cos_next_layer"] = (
                gradient_cosine(D1, X1, *nxt)
                if nxt is not None
                and nxt[0].shape[1] == D1.shape[1]
                and nxt[1].shape[1] == X1.shape[1]
                else float("nan")
            )
            other = self.factors.get((b, layer, pairs.get(mod, "")))
            same = (
                other is not None
                and other[0].shape[1] == D1.shape[1]
                and other[1].shape[1] == X1.shape[1]
            )
            row["cos_pair"] = (
                _cos_aligned(D1, X1, *other) if same and other is not None else float("nan")
            )
        self.factors.clear()
        self.seconds += time.perf_counter() - t0


def _cos_aligned(D1: torch.Tensor, X1: torch.Tensor, D2: torch.Tensor, X2: torch.Tensor) -> float:
    # factors of different modules may have dropped different zero rows: the Gram
    # formula needs both on the same tokens, so fall back to materialising when not
    if D1.shape[0] == D2.shape[0]:
        return gradient_cosine(D1, X1, D2, X2)
    g1, g2 = (D1.T @ X1).double(), (D2.T @ X2).double()
    den = float(g1.norm() * g2.norm())
    return float((g1 * g2).sum()) / den if den > 0 else float("nan")


def per_example_losses(
    logits: torch.Tensor, input_ids: torch.Tensor, encs: Sequence[Encoded]
) -> torch.Tensor:
    """Mean token cross-entropy over each example's response tokens (B values).

    Args:
        logits: B×T×V logits.
        input_ids: B×T token ids.
        encs: the encoded examples (prompt/response split).

    Example:
        >>> logits = torch.zeros(1, 3, 5); ids = torch.tensor([[1, 2, 3]])
        >>> round(float(per_example_losses(logits, ids, [Encoded([1, 2, 3], 1, 2, False)])[0]), 4)
        1.6094
    """
    out = []
    for b, e in enumerate(encs):
        L = len(e.input_ids)
        p = e.n_prompt_tokens
        out.append(F.cross_entropy(logits[b, p - 1 : L - 1].float(), input_ids[b, p:L]))
    return torch.stack(out)


# logit post-processing lgkit reproduces outside the model; any other keeps the model's own forward
_UNSUPPORTED_LOGIT_SCALES = ("logit_scale", "logits_scaling", "output_multiplier_scale")


def chunked_response_losses(
    model: torch.nn.Module,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    ids: torch.Tensor,
    encs: Sequence[Encoded],
    chunk: int,
) -> torch.Tensor | None:
    """Per-example response losses with the LM head applied in checkpointed chunks.

    Only ``chunk`` positions' logits exist at a time (recomputed in the backward), so
    long examples of large-vocabulary models fit in memory. Returns None for models
    whose logits are post-processed in ways this does not reproduce (the caller then
    uses the model's own forward).
    """
    from torch.utils.checkpoint import checkpoint

    cfg = getattr(model.config, "text_config", None) or model.config
    if any(getattr(cfg, a, None) not in (None, 1, 1.0) for a in _UNSUPPORTED_LOGIT_SCALES):
        return None
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    head = model.get_output_embeddings()
    if base is None or head is None or base is model:
        return None
    softcap = getattr(cfg, "final_logit_softcapping", None)
    hidden = base(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state

    def piece(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = head(h)
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        return F.cross_entropy(logits.float(), y, reduction="sum")

    out = []
    for b, e in enumerate(encs):
        L, p = len(e.input_ids), e.n_prompt_tokens
        total = hidden.new_zeros((), dtype=torch.float32)
        n = L - p
        size = -(-n // -(-n // chunk))  # balanced chunks: none much smaller than the others
        for s0 in range(p - 1, L - 1, size):
            s1 = min(s0 + size, L - 1)
            total = total + checkpoint(
                piece, hidden[b, s0:s1], ids[b, s0 + 1 : s1 + 1], use_reentrant=False
            )
        out.append(total / (L - p))
    return torch.stack(out)


def run_batch(
    model: torch.nn.Module,
    targets: Sequence[Target],
    encs: Sequence[Encoded],
    *,
    pad_id: int = 0,
    spectrum: bool = False,
    similarities: bool = False,
    stats_threads: int | None = None,
    loss_chunk: int | None = None,
) -> tuple[list[list[dict[str, Any]]], list[float], float]:
    """One forward + backward over a padded batch; statistics rows per example.

    ``loss_chunk``: apply the LM head in checkpointed chunks of this many positions
    (None: 512 when the response logits would exceed ``LOGITS_CHUNK_ABOVE`` values;
    0: never), so long examples of large-vocabulary models fit in memory.

    ``stats_threads``: eigen-solves run side by side on this many threads (None: one per
    torch thread, at most 8).

    Returns:
        (rows per example, loss per example, seconds spent in statistics)
    """
    device = next(model.parameters()).device
    B = len(encs)
    lengths = [len(e.input_ids) for e in encs]
    T = max(lengths)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for b, e in enumerate(encs):
        ids[b, : lengths[b]] = torch.tensor(e.input_ids)
        mask[b, : lengths[b]] = 1
    ids, mask = ids.to(device), mask.to(device)
    if stats_threads is None:
        stats_threads = default_stats_threads()
    per_layer = len({t.module for t in targets})
    collector = _BatchStats(
        lengths, spectrum, similarities, workers=stats_threads, flush_at=per_layer
    )
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
    embeds.requires_grad_(True)
    with GradientCapture(model, targets, collector):
        losses = None
        vocab = (
            model.get_output_embeddings().weight.shape[0]
            if model.get_output_embeddings() is not None
            else 0
        )
        n_resp = sum(e.n_response_tokens for e in encs)
        if loss_chunk is None:
            loss_chunk = 512 if n_resp * vocab > LOGITS_CHUNK_ABOVE else 0
        if loss_chunk:
            losses = chunked_response_losses(model, embeds, mask, ids, encs, loss_chunk)
        if losses is None:
            # Full logits on purpose: applying the LM head to only the few response rows
            # (logits_to_keep) changed SmolLM2's gradients by 2e-4 relative on 2-token
            # answers (a different small-M GEMM path); all rows kept them within 6e-6.
            out = model(inputs_embeds=embeds, attention_mask=mask, use_cache=False)
            losses = per_example_losses(out.logits, ids, encs)
            del out
        torch.autograd.grad(losses.sum(), embeds)
    collector.finish()
    if similarities:
        collector.add_similarities()
    rows: list[list[dict[str, Any]]] = [[] for _ in range(B)]
    order = {m: k for k, m in enumerate(ALL_MODULES)}
    for (b, _, _), row in sorted(
        collector.results.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])
    ):
        rows[b].append(row)
    expected = len(targets)
    for b in range(B):
        if len(rows[b]) != expected:
            raise RuntimeError(
                f"captured {len(rows[b])} of {expected} projections (gradient did not reach some modules)"
            )
    return rows, [float(x) for x in losses.detach()], collector.seconds


def _resolve_model(model: Any, config: GradConfig, device: str | None, dtype: str | None) -> Any:
    if isinstance(model, (str, Path)):
        from lgkit.models.load import load_model

        kw: dict[str, Any] = {"instruct": config.instruct}
        if device:
            kw["device"] = device
        if dtype:
            kw["dtype"] = dtype
        return load_model(str(model), **kw)
    return model


def run_fingerprint(bundle: Any, config: GradConfig, data_sha: str) -> dict[str, Any]:
    """The settings that determine the numbers of a run (compared on resume)."""
    instruct = (
        config.instruct if config.instruct is not None else bool(getattr(bundle, "instruct", False))
    )
    return {
        "model": getattr(bundle, "name", None),
        "revision": getattr(bundle, "revision", None),
        "dtype": str(getattr(bundle, "dtype", None)),
        "instruct": instruct,
        "compat": config.compat,
        "max_length": config.max_length,
        "modules": list(config.modules),
        "system_prompt": config.system_prompt if instruct else None,
        "data_sha256": data_sha,
        "spectrum": config.spectrum,
        "similarities": config.similarities,
    }


def compute_stats(
    model: Any,
    data: str | Path | Sequence[Example],
    out_dir: str | Path,
    config: GradConfig | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    on_progress: Callable[[int, float], None] | None = None,
) -> RunResult:
    """Compute the statistics table of ``data`` under ``model`` into ``out_dir``.

    Rerunning into the same ``out_dir`` continues where a previous run stopped (killed
    at any moment included); examples already written or recorded as failures are
    skipped. Examples that cannot be processed (e.g. a response cut away entirely by
    ``max_length``) are recorded in the failures table with their reason.

    Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) each rank takes every
    ``world_size``-th example and writes its own parts; :func:`lgkit.load_stats` sees
    one table.

    Args:
        model: a :class:`lgkit.models.LoadedModel` or a name/path for
            :func:`lgkit.load_model`.
        data: a JSON/JSONL file of example records, or a list of :class:`Example`.
        out_dir: the run directory.
        config: settings (:class:`GradConfig`).
        device, dtype: passed to :func:`lgkit.load_model` when ``model`` is a name.
        rank, world_size: sharding (default: from the environment).
        progress: show a tqdm progress bar.
        overwrite: allow a directory holding a run with other settings to be replaced.
        on_progress: called after each batch with (examples finished, seconds it took).

    Raises:
        InputError: bad data, bad settings, or ``out_dir`` holding another run.

    Example:
        >>> compute_stats("tiny-random-llama", "ex.jsonl", "outputs/t")  # doctest: +SKIP
    """
    config = config or GradConfig()
    rank, world_size = _dist_info(rank, world_size)
    source = str(data) if isinstance(data, (str, Path)) else "<examples>"
    examples = read_examples(data) if isinstance(data, (str, Path)) else list(data)
    if config.limit:  # None or 0: all
        examples = examples[: config.limit]
    ids = _unique_ids(examples, source)
    data_sha = _data_fingerprint(examples)
    bundle = _resolve_model(model, config, device, dtype)
    mdl, tok = bundle.model, bundle.tokenizer
    instruct = config.instruct if config.instruct is not None else bool(bundle.instruct)
    if instruct and not has_chat_template(tok):
        raise InputError(
            f"model {bundle.name!r} has no chat template; run it as a base model (--base)",
            field="instruct",
        )
    targets = find_targets(mdl, config.modules)
    out = Path(out_dir)
    fp = run_fingerprint(bundle, config, data_sha)
    old = load_manifest(out)
    if old and old.get("fingerprint") != fp:
        if not overwrite:
            diff = sorted(k for k in fp if (old.get("fingerprint") or {}).get(k) != fp[k])
            raise InputError(
                f"holds statistics of a different run (differs in: {', '.join(diff)}); "
                "to start afresh, give another --out, delete this directory, or rerun with --overwrite",
                path=out,
            )
        if world_size > 1:
            raise InputError(
                "--overwrite cannot be used in a sharded run; remove the directory first", path=out
            )
        import shutil

        shutil.rmtree(out)
        old = {}
    out.mkdir(parents=True, exist_ok=True)
    clean_temporaries(out, rank)
    manifest = {
        **(old or {}),
        "fingerprint": fp,
        "lgkit_version": __version__,
        "git_hash": git_hash(),
        "model": bundle.name,
        "model_source": getattr(bundle, "source", None),
        "revision": getattr(bundle, "revision", None),
        "dtype": str(getattr(bundle, "dtype", None)),
        "device": str(next(mdl.parameters()).device),
        "instruct": instruct,
        "convention": config.compat or "lgkit",
        "max_length": config.max_length,
        "modules": list(config.modules),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "data": source,
        "data_sha256": data_sha,
        "n_examples": len(examples),
        "n_layers": len({t.layer for t in targets}),
        "world_size": world_size,
        "status": "running",
    }
    manifest.setdefault("start_time", now_iso())
    if rank == 0:
        write_json_atomic(out / MANIFEST, manifest)

    done = completed_ids(out)
    mine = [i for i in range(len(examples)) if i % world_size == rank]
    todo = [i for i in mine if ids[i] not in done]
    result = RunResult(out, n_skipped=len(mine) - len(todo))
    if result.n_skipped:
        log.info("resuming %s: %d examples already done", out, result.n_skipped)

    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    enc_kw = {
        "instruct": instruct,
        "max_length": config.max_length,
        "system_prompt": config.system_prompt,
        "compat": config.compat,
        "model_name": bundle.name,
    }

    def meta(i: int) -> dict[str, Any]:
        ex = examples[i]
        return {
            "sample_id": ids[i],
            "example_index": i,
            "dataset": ex.dataset,
            "cot": ex.cot,
            "correct": ex.correct,
        }

    rows_buf: list[dict[str, Any]] = []
    fail_buf: list[dict[str, Any]] = []
    n_buf = 0

    def flush() -> None:
        nonlocal rows_buf, fail_buf, n_buf
        write_part(out, rows_buf, rank=rank)
        write_failures(out, fail_buf, rank=rank)
        rows_buf, fail_buf, n_buf = [], [], 0

    def fail(i: int, reason: str, enc: Encoded | None = None) -> None:
        nonlocal n_buf
        rec = {
            **meta(i),
            "reason": reason,
            "n_prompt_tokens": enc.n_prompt_tokens if enc else None,
            "n_tokens": len(enc.input_ids) if enc else None,
        }
        fail_buf.append(rec)
        result.failures.append(rec)
        result.n_failed += 1
        n_buf += 1
        log.warning("example %d (%s) failed: %s", i, ids[i], reason)

    encoded: list[tuple[int, Encoded]] = []
    for i in todo:
        try:
            enc = encode_example(tok, examples[i], **enc_kw)
        except InputError:
            raise
        except Exception as e:  # a tokenizer error on this record
            fail(i, f"tokenisation failed: {type(e).__name__}: {e}")
            continue
        if enc.n_response_tokens == 0:
            fail(
                i,
                f"response cut away entirely by max_length={config.max_length} (prompt has {enc.n_prompt_tokens} tokens)",
                enc,
            )
            continue
        if enc.n_prompt_tokens == 0:
            fail(i, "empty prompt part: the first response token has no context", enc)
            continue
        encoded.append((i, enc))
    if config.batch_size > 1:  # similar lengths share a batch: less padding
        encoded.sort(key=lambda p: len(p[1].input_ids))
    batches = [
        encoded[k : k + config.batch_size] for k in range(0, len(encoded), config.batch_size)
    ]

    saved_flags = {n: p.requires_grad for n, p in mdl.named_parameters()}
    mdl.requires_grad_(False)
    bar = tqdm(
        total=len(todo),
        desc=f"grads {Path(source).name}",
        disable=not progress,
        initial=0,
        unit="ex",
    )
    bar.update(result.n_failed)
    try:
        for batch in batches:
            t0 = time.perf_counter()
            try:
                per_rows, losses, s_stats = run_batch(
                    mdl,
                    targets,
                    [e for _, e in batch],
                    pad_id=pad_id,
                    spectrum=config.spectrum,
                    similarities=config.similarities,
                    stats_threads=config.stats_threads,
                    loss_chunk=config.loss_chunk,
                )
                outcome = [(i, e, per_rows[k], losses[k], None) for k, (i, e) in enumerate(batch)]
            except (RuntimeError, ValueError, IndexError) as e:  # isolate the failing example(s)
                if _is_oom(e) and torch.cuda.is_available():
                    torch.cuda.empty_cache()
                outcome, s_stats = [], 0.0
                for i, enc in batch:
                    try:
                        r, lo, s = run_batch(
                            mdl,
                            targets,
                            [enc],
                            pad_id=pad_id,
                            spectrum=config.spectrum,
                            similarities=config.similarities,
                            stats_threads=config.stats_threads,
                            loss_chunk=config.loss_chunk,
                        )
                        outcome.append((i, enc, r[0], lo[0], None))
                        s_stats += s
                    except (RuntimeError, ValueError, IndexError) as e1:
                        outcome.append((i, enc, None, None, f"{type(e1).__name__}: {e1}"))
            result.seconds_stats += s_stats
            result.seconds_model += time.perf_counter() - t0 - s_stats
            for i, enc, rows, loss, err in outcome:
                if err is not None:
                    fail(i, err, enc)
                    continue
                if not torch.isfinite(torch.tensor(loss)):
                    fail(i, f"non-finite loss {loss}", enc)
                    continue
                base = {
                    **meta(i),
                    "loss": loss,
                    "n_prompt_tokens": enc.n_prompt_tokens,
                    "n_response_tokens": enc.n_response_tokens,
                    "truncated": enc.truncated,
                }
                rows_buf.extend({**base, **r} for r in rows)
                result.n_done += 1
                n_buf += 1
            bar.update(len(batch))
            if on_progress is not None:
                on_progress(len(batch), time.perf_counter() - t0)
            if n_buf >= config.flush_every:
                flush()
        flush()
    finally:
        bar.close()
        for n, p in mdl.named_parameters():
            p.requires_grad_(saved_flags.get(n, p.requires_grad))
    _finish(out, manifest, rank, world_size)
    if result.n_failed:
        log.warning("%d example(s) failed; see lgkit.load_failures(%r)", result.n_failed, str(out))
    log.info(
        "done: %d examples, %d failed, %d skipped (model %.1fs, statistics %.1fs)",
        result.n_done,
        result.n_failed,
        result.n_skipped,
        result.seconds_model,
        result.seconds_stats,
    )
    return result


def _is_oom(e: BaseException) -> bool:
    return "out of memory" in str(e).lower()


def _finish(out: Path, manifest: dict[str, Any], rank: int, world_size: int) -> None:
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    if rank != 0:
        return
    done = completed_ids(out)
    complete = len(done) >= manifest["n_examples"]
    manifest.update(
        end_time=now_iso(),
        status="complete" if complete else "partial",
        n_failures=len(load_failures(out)),
        n_done=len(done),
    )
    write_json_atomic(out / MANIFEST, manifest)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[-60:]


def stats_for(
    model: Any,
    data: str | Path,
    config: GradConfig | None = None,
    *,
    cache_dir: str | Path = "outputs/stats_cache",
    progress: bool = True,
    loader: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Statistics of ``data`` under ``model``: computed once, then reused.

    ``loader`` (optional) returns the loaded ``model`` when something must be computed,
    so a caller looping over files loads it once (the cache key still uses ``model``).

    The run directory is ``cache_dir/<model>__<data stem>__<hash of settings and
    data>``; a complete run there is read back without loading the model, a partial
    one is resumed. A ``model`` column is added (handy when combining models).

    Returns:
        pandas.DataFrame: the statistics table.

    Example:
        >>> df = stats_for("smollm2-135m-instruct", "data/gsm8k__detailed__correct.jsonl")  # doctest: +SKIP
    """
    config = config or GradConfig()
    name = model if isinstance(model, (str, Path)) else getattr(model, "name", "model")
    data_sha = hashlib.sha256(Path(data).read_bytes()).hexdigest()
    key = {
        "model": str(name),
        "instruct": config.instruct
        if config.instruct is not None
        else getattr(model, "instruct", None),
        "data": data_sha,
        **{
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(config).items()
            if k not in ("batch_size", "flush_every", "stats_threads", "loss_chunk")
        },
    }
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    out = Path(cache_dir) / f"{_slug(str(name))}__{_slug(Path(data).stem)}__{h}"
    man = load_manifest(out)
    if man.get("status") != "complete":
        target = loader() if loader is not None else model
        compute_stats(target, data, out, config, progress=progress, **kwargs)
    df = load_stats(out)
    df["model"] = str(name)
    return df
