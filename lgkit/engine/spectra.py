"""Exact singular values and statistics of per-sample gradients from their factors.

For a linear layer ``y = x Wᵀ`` the per-sample weight gradient is ``G = Dᵀ X`` with
``D`` (T×m) the gradients at the outputs and ``X`` (T×n) the inputs. lgkit never runs
a full SVD of G:

* rows ``t`` with ``D[t] = 0`` contribute nothing and are dropped first;
* *factor route* (T ≤ min(m, n)/2): with the thin QR ``Xᵀ = Q R`` (R is T×T),
  ``G = Dᵀ Rᵀ Qᵀ`` has the singular values of the T×m matrix ``M = R D``; they are the
  square roots of the eigenvalues of the T×T Gram ``M Mᵀ``; all in float64;
* *direct route* (otherwise): the eigenvalues of the float64 Gram of the materialised
  G on its small side.

On the CPU the Grams and eigen-solves of many gradients run through
:func:`solve_spectra`: NumPy's LAPACK (OpenBLAS in NumPy's wheels; its ``dsyevd`` runs
~1.6× faster than the MKL inside torch's CPU wheels on this kind of machine, and
``A @ A.T`` is a half-cost ``syrk``), each solve single-threaded, several side by side.

Eigenvalues of a float64 Gram are accurate to ~1e-16·σ_max², so each singular value is
accurate to ~1e-8·σ_max: well inside the 1e-4 relative contract against
``torch.linalg.svdvals`` of the materialised gradient.

Example:
    >>> import torch
    >>> D, X = torch.randn(5, 8), torch.randn(5, 6)
    >>> s = singular_values(D, X)
    >>> torch.allclose(s, torch.linalg.svdvals((D.T @ X).double()), rtol=1e-4, atol=1e-5)
    True
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch

from lgkit.schema import STAT_COLUMNS  # noqa: F401  (re-exported)


def nonzero_rows(A: torch.Tensor) -> torch.Tensor:
    """Which rows of A have a non-zero entry (NaN counts as non-zero).

    One pass of ``abs().amax``: ~15× faster than ``(A != 0).any(1)`` on the CPU.

    Example:
        >>> nonzero_rows(torch.tensor([[0.0, -1.0], [0.0, 0.0]])).tolist()
        [True, False]
    """
    return A.abs().amax(dim=1) != 0


def drop_zero_rows(
    D: torch.Tensor, X: torch.Tensor, keep: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the rows whose output gradient (or input) is exactly zero; G is unchanged.

    ``keep``: ``nonzero_rows(D) & nonzero_rows(X)``, if the caller already has it.

    Example:
        >>> D = torch.tensor([[1.0, 0.0], [0.0, 0.0]]); X = torch.ones(2, 3)
        >>> drop_zero_rows(D, X)[0].shape
        torch.Size([1, 2])
    """
    if keep is None:
        keep = nonzero_rows(D) & nonzero_rows(X)
    if bool(keep.all()):
        return D, X
    return D[keep], X[keep]


# The factor route is taken when T ≤ FACTOR_ROUTE_MAX · min(m, n): below it, it is the
# cheaper route; above it, the direct route costs the same or less.
FACTOR_ROUTE_MAX = 0.5


def use_factor_route(T: int, m: int, n: int) -> bool:
    """Whether :func:`spectral_gram` takes the factor route for T rows of an m×n gradient.

    Example:
        >>> use_factor_route(100, 576, 576), use_factor_route(400, 576, 576)
        (True, False)
    """
    return 0 < T <= FACTOR_ROUTE_MAX * min(m, n)


def input_r_factor(X: torch.Tensor) -> torch.Tensor:
    """R of the thin QR of Xᵀ in float64 (T×T when T ≤ n): ``X Xᵀ = Rᵀ R``.

    Float64, because G = DᵀX can be much smaller than ‖D‖‖X‖ (short responses):
    float32 factors would lose the relative accuracy the materialised G keeps.
    Shared by every projection reading the same input (q, k, v of one layer).
    """
    return torch.linalg.qr(X.T.double(), mode="r").R


def spectral_gram(
    D: torch.Tensor,
    X: torch.Tensor,
    *,
    G: torch.Tensor | None = None,
    r_x: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, int]:
    """A float64 Gram matrix whose eigenvalues are the squared singular values of DᵀX.

    Returns ``(K, s)`` with ``s = min(m, n)``: K is T×T (factor route, T < s) or s×s
    (direct route); None when there are no rows. Split from the eigen-solve so that many
    small solves can run in parallel (:func:`singular_values_from_gram`).
    """
    T, m = D.shape
    n = X.shape[1]
    s = min(m, n)
    if T == 0:
        return None, s
    if not use_factor_route(T, m, n):
        return _small_side_gram((D.T @ X if G is None else G).double()), s
    R = r_x if r_x is not None else input_r_factor(X)
    M = R @ D.double()  # T×m, same singular values as G
    return M @ M.T, s


def _small_side_gram(a: Any) -> Any:
    """``a aᵀ`` (m ≤ n) or ``aᵀ a`` of a torch or NumPy matrix (or torch batch …×m×n).

    NumPy runs both as a half-cost ``syrk``.
    """
    at = a.swapaxes(-1, -2)
    return a @ at if a.shape[-2] <= a.shape[-1] else at @ a


SpectralJob = tuple["torch.Tensor | None", int, "int | None", bool]
"""``(matrix, s, rank, is_gram)``: the arguments of :func:`singular_values_from_gram`."""


def spectral_job(
    D: torch.Tensor,
    X: torch.Tensor,
    *,
    G: torch.Tensor | None = None,
    r_x: torch.Tensor | None = None,
) -> SpectralJob:
    """What :func:`solve_spectra` needs for the singular values of ``G = DᵀX``.

    The factor route's T×T Gram (formed here), or G itself on the direct route (its Gram
    is formed by the solver, off the caller's path); ``(None, …)`` when there are no rows.

    Example:
        >>> D, X = torch.randn(40, 8), torch.randn(40, 6)
        >>> K, s, rank, is_gram = spectral_job(D, X)
        >>> (tuple(K.shape), s, rank, is_gram)
        ((8, 6), 6, 40, False)
    """
    T, m = D.shape
    s = min(m, X.shape[1])
    if T == 0:
        return None, s, 0, False
    if use_factor_route(T, m, X.shape[1]):
        return spectral_gram(D, X, r_x=r_x)[0], s, T, True
    return (D.T @ X if G is None else G), s, T, False


def _uses_numpy(A: torch.Tensor, backend: str | None) -> bool:
    if backend not in (None, "numpy", "torch"):
        raise ValueError(f"backend must be 'numpy', 'torch' or None, not {backend!r}")
    return A.device.type == "cpu" and backend != "torch"


def _squared_singular_values(
    A: torch.Tensor, is_gram: bool, backend: str | None = None
) -> torch.Tensor:
    """Ascending eigenvalues of A (a Gram) or of A's Gram on its small side (float64).

    NumPy's LAPACK on the CPU (``backend=None``), else torch's; with torch, A may be a
    batch (…×m×n).
    """
    if not _uses_numpy(A, backend):
        A = A.double()
        return torch.linalg.eigvalsh(A if is_gram else _small_side_gram(A))
    return torch.from_numpy(_numpy_eigvalsh(A.detach().double().numpy(), is_gram))


def _numpy_eigvalsh(a: np.ndarray, is_gram: bool) -> np.ndarray:
    # NumPy only: run in worker threads, where a torch kernel would start another OpenMP
    # team per thread (measured: MKL's SVD then ran 3× slower for the rest of the process)
    return np.linalg.eigvalsh(a if is_gram else _small_side_gram(a))


def singular_values_from_gram(
    K: torch.Tensor | None,
    s: int,
    device: torch.device | str = "cpu",
    rank: int | None = None,
    *,
    is_gram: bool = True,
    backend: str | None = None,
) -> torch.Tensor:
    """The s singular values (descending, float64) from :func:`spectral_gram`'s matrix.

    ``rank``: an upper bound on the rank (the number of rows T); values beyond it are
    exactly 0 (the eigen-solve would give rounding noise there). ``is_gram=False``: K is
    the gradient itself, whose float64 Gram on the small side is formed here.
    ``backend``: ``"numpy"`` or ``"torch"`` LAPACK (None: NumPy's on the CPU, else torch).

    Example:
        >>> G = torch.randn(3, 4)
        >>> sv = singular_values_from_gram(G, 3, is_gram=False)
        >>> torch.allclose(sv, torch.linalg.svdvals(G.double()))
        True
    """
    if K is None:
        return torch.zeros(s, dtype=torch.float64, device=device)
    ev = _squared_singular_values(K, is_gram, backend)
    return _singular_values_from_eigenvalues(ev, s, rank)


def _singular_values_from_eigenvalues(ev: torch.Tensor, s: int, rank: int | None) -> torch.Tensor:
    out = torch.zeros(s, dtype=torch.float64, device=ev.device)
    sv = ev.clamp_min(0).sqrt().flip(0)
    k = min(s, sv.numel(), rank if rank is not None else s)
    out[:k] = sv[:k]
    return out


@functools.cache
def _blas_controller() -> Any:  # a threadpoolctl.ThreadpoolController, or None
    try:
        from threadpoolctl import ThreadpoolController

        ctl = ThreadpoolController()
    except Exception:  # pragma: no cover - threadpoolctl is a dependency
        return None
    return ctl if ctl.select(user_api="blas").lib_controllers else None


def single_threaded_blas() -> AbstractContextManager[object]:
    """A context in which NumPy's BLAS/LAPACK runs each call on one thread.

    Torch's own BLAS is not touched. Without threadpoolctl or a BLAS it can control,
    a no-op.
    """
    ctl = _blas_controller()
    return ctl.limit(limits=1, user_api="blas") if ctl is not None else nullcontext()


def default_stats_threads() -> int:
    """Eigen-solves run side by side: one per core torch uses, at most 8.

    Example:
        >>> default_stats_threads() >= 1
        True
    """
    return max(1, min(8, torch.get_num_threads(), os.cpu_count() or 1))


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
POOL_MIN_SIZE = 128
"""Solves of matrices smaller than this run in the calling thread."""


def solve_spectra(
    jobs: Sequence[SpectralJob], workers: int | None = None, backend: str | None = None
) -> list[torch.Tensor]:
    """Singular values of many gradients at once (see :func:`singular_values_from_gram`).

    CPU jobs run ``workers`` side by side (None: :func:`default_stats_threads`), largest
    first, each on a single-threaded LAPACK call: on 2 cores the ~500×500 solves of q
    and o finish in ~0.4× the time of one after the other on two threads. Jobs on a GPU
    (or all, with ``backend="torch"``) are batched: one eigen-solve call per shape.

    Args:
        jobs: ``(matrix, s, rank, is_gram)`` per gradient.
        workers: CPU solves side by side.
        backend: ``"numpy"`` or ``"torch"`` LAPACK (None: NumPy's on the CPU, else torch).

    Example:
        >>> G = torch.randn(6, 5)
        >>> [sv] = solve_spectra([(G, 5, None, False)], workers=2)
        >>> torch.allclose(sv, torch.linalg.svdvals(G.double()))
        True
    """
    workers = default_stats_threads() if workers is None else max(1, workers)

    def one(job: SpectralJob) -> torch.Tensor:
        K, s, rank, is_gram = job
        return singular_values_from_gram(K, s, rank=rank, is_gram=is_gram, backend=backend)

    cpu = [i for i, (K, *_) in enumerate(jobs) if K is not None and _uses_numpy(K, backend)]
    out: list[torch.Tensor | None] = [None] * len(jobs)
    if cpu:
        cpu.sort(key=lambda i: -min(jobs[i][0].shape))  # type: ignore[union-attr]
        arrays = [jobs[i][0].detach().double().numpy() for i in cpu]  # type: ignore[union-attr]
        flags = [jobs[i][3] for i in cpu]
        # single-threaded calls even one at a time: OpenBLAS's threads measured slower
        # here (and they spin after each call, stealing cores from torch's next kernels)
        with single_threaded_blas():
            # small solves (< POOL_MIN_SIZE) cost less than handing them to a thread
            big = sum(min(a.shape) >= POOL_MIN_SIZE for a in arrays)  # sorted: big first
            if workers > 1 and big > 1:
                key = (os.getpid(), workers)  # a forked child gets pools of its own
                pool = _POOLS.get(key)
                if pool is None:
                    pool = _POOLS[key] = ThreadPoolExecutor(workers, thread_name_prefix="lgkit-eig")
                evs = list(pool.map(_numpy_eigvalsh, arrays[:big], flags[:big]))
            else:
                big, evs = 0, []
            evs += [_numpy_eigvalsh(a, f) for a, f in zip(arrays[big:], flags[big:], strict=True)]
        for i, ev in zip(cpu, evs, strict=True):
            out[i] = _singular_values_from_eigenvalues(torch.from_numpy(ev), jobs[i][1], jobs[i][2])
    # torch jobs (GPU): one batched Gram product and eigen-solve per shape
    groups: dict[tuple, list[int]] = {}
    for i, (K, _, _, is_gram) in enumerate(jobs):
        if K is not None and not _uses_numpy(K, backend):
            groups.setdefault((K.device, K.dtype, tuple(K.shape), is_gram), []).append(i)
    for (*_, is_gram), idx in groups.items():
        if len(idx) < 2:
            continue
        ev = _squared_singular_values(torch.stack([jobs[i][0] for i in idx]), is_gram, "torch")
        for i, e in zip(idx, ev.unbind(0), strict=True):
            out[i] = _singular_values_from_eigenvalues(e, jobs[i][1], jobs[i][2])
    return [sv if sv is not None else one(job) for sv, job in zip(out, jobs, strict=True)]


def singular_values(
    D: torch.Tensor,
    X: torch.Tensor,
    *,
    G: torch.Tensor | None = None,
    r_x: torch.Tensor | None = None,
) -> torch.Tensor:
    """All min(m, n) singular values of ``G = Dᵀ X`` in descending order (float64).

    Values beyond the rank bound T are exactly 0.

    Args:
        D: output gradients, T×m (rows with D = 0 already dropped or not).
        X: inputs, T×n.
        G: ``Dᵀ X`` if already materialised (used by the direct route).
        r_x: ``input_r_factor(X)`` if already computed for this X (factor route).
    """
    K, s, rank, is_gram = spectral_job(D, X, G=G, r_x=r_x)
    return singular_values_from_gram(K, s, D.device, rank=rank, is_gram=is_gram)


def stats_from_singular_values(sv: torch.Tensor) -> dict[str, float]:
    """Spectral statistics from the full list of min(m, n) singular values.

    * ``nuclear_norm`` = Σσ; ``sigma_max`` = σ₁; ``sigma1_ratio`` = σ₁/Σσ (0 for a zero
      gradient, as in the authors' code);
    * ``sigma_min`` = the smallest of the min(m, n) singular values: exactly 0 whenever
      the gradient's rank is below min(m, n) (always so when the example has fewer
      contributing tokens than min(m, n));
    * ``frobenius_norm`` = sqrt(Σσ²);
    * ``effective_rank`` = exp(H(p)), p = σ/Σσ (Roy & Vetterli; arXiv 2504.10766).

    Example:
        >>> stats_from_singular_values(torch.tensor([2.0, 2.0, 0.0]))["effective_rank"]
        2.0
    """
    sv = sv.double()
    total = float(sv.sum())
    smax = float(sv.max()) if sv.numel() else 0.0
    if total > 0:
        p = sv[sv > 0] / total
        erank = math.exp(float(-(p * p.log()).sum()))
        ratio = smax / total
    else:
        erank, ratio = 0.0, 0.0
    return {
        "nuclear_norm": total,
        "sigma_max": smax,
        "sigma_min": float(sv.min()) if sv.numel() else 0.0,
        "sigma1_ratio": ratio,
        "frobenius_norm": float(sv.pow(2).sum().sqrt()),
        "effective_rank": erank,
    }


def entry_stats(G: torch.Tensor) -> dict[str, float]:
    """Mean, max and min of the entries of the gradient matrix.

    Example:
        >>> entry_stats(torch.tensor([[1.0, -3.0]]))
        {'entry_mean': -1.0, 'entry_max': 1.0, 'entry_min': -3.0}
    """
    lo, hi = torch.aminmax(G)
    return {"entry_mean": float(G.mean()), "entry_max": float(hi), "entry_min": float(lo)}


def gradient_stats(
    D: torch.Tensor,
    X: torch.Tensor,
    *,
    r_x: torch.Tensor | None = None,
    return_spectrum: bool = False,
) -> tuple[dict[str, float], torch.Tensor | None]:
    """All statistics of ``G = Dᵀ X`` without a full SVD.

    Args:
        D: output gradients, T×m.
        X: inputs, T×n (rows aligned with D).
        r_x: a precomputed :func:`input_r_factor` of X (only valid if X was not
            filtered differently).
        return_spectrum: also return the singular values.

    Returns:
        (statistics dict with the keys of ``STAT_COLUMNS``, singular values or None)

    Example:
        >>> D, X = torch.randn(4, 6), torch.randn(4, 5)
        >>> st, _ = gradient_stats(D, X)
        >>> abs(st["nuclear_norm"] - float(torch.linalg.svdvals(D.T @ X).sum())) < 1e-3
        True
    """
    G = D.T @ X
    st = entry_stats(G)
    Dk, Xk = drop_zero_rows(D, X)
    if Dk.shape[0] != D.shape[0]:
        r_x = None
    sv = singular_values(Dk, Xk, G=G, r_x=r_x)
    st.update(stats_from_singular_values(sv))
    return st, (sv if return_spectrum else None)


def gradient_inner(D1: torch.Tensor, X1: torch.Tensor, D2: torch.Tensor, X2: torch.Tensor) -> float:
    """Frobenius inner product ⟨D1ᵀX1, D2ᵀX2⟩ from the factors (same tokens, T×T Grams).

    Example:
        >>> D, X = torch.randn(3, 4), torch.randn(3, 5)
        >>> abs(gradient_inner(D, X, D, X) - float((D.T @ X).pow(2).sum())) < 1e-3
        True
    """
    return float(((D1.double() @ D2.double().T) * (X1.double() @ X2.double().T)).sum())


def gradient_cosine(
    D1: torch.Tensor, X1: torch.Tensor, D2: torch.Tensor, X2: torch.Tensor
) -> float:
    """Cosine similarity of two per-sample gradients from their factors (NaN if one is 0)."""
    a = gradient_inner(D1, X1, D2, X2)
    n1 = gradient_inner(D1, X1, D1, X1)
    n2 = gradient_inner(D2, X2, D2, X2)
    if n1 <= 0 or n2 <= 0:
        return float("nan")
    return a / math.sqrt(n1 * n2)
