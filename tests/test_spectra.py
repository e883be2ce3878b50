"""Exactness of the factor/direct routes against full SVDs of materialised gradients."""

import math

import pytest
import torch

from lgkit.engine.spectra import (
    default_stats_threads,
    drop_zero_rows,
    entry_stats,
    gradient_cosine,
    gradient_inner,
    gradient_stats,
    input_r_factor,
    nonzero_rows,
    single_threaded_blas,
    singular_values,
    solve_spectra,
    spectral_gram,
    spectral_job,
    stats_from_singular_values,
    use_factor_route,
)


def _ref(D, X):
    return torch.linalg.svdvals(D.double().T @ X.double())


@pytest.mark.parametrize(
    ("T", "m", "n"),
    [(3, 16, 12), (12, 16, 12), (40, 16, 12), (7, 8, 32), (50, 8, 32), (1, 5, 5), (16, 16, 16)],
)
def test_singular_values_match_svd(T, m, n):
    g = torch.Generator().manual_seed(T * 100 + m + n)
    D, X = torch.randn(T, m, generator=g), torch.randn(T, n, generator=g)
    sv = singular_values(D, X)
    ref = _ref(D, X)
    assert sv.shape == (min(m, n),)
    assert torch.all(sv[:-1] >= sv[1:])
    assert torch.allclose(sv, ref, rtol=1e-4, atol=1e-5 * float(ref[0]))
    if T < min(m, n):
        assert torch.all(sv[T:] == 0)  # exact zeros beyond the rank bound


def test_rank_deficient_inputs_repeated_tokens():
    # repeated rows of X (the same token twice in layer 0) make the Gram singular
    g = torch.Generator().manual_seed(1)
    X = torch.randn(10, 24, generator=g)
    X[5:] = X[:5]
    D = torch.randn(10, 20, generator=g)
    st, sv = gradient_stats(D, X, return_spectrum=True)
    ref = _ref(D, X)
    assert math.isclose(st["nuclear_norm"], float(ref.sum()), rel_tol=1e-4)
    assert math.isclose(st["sigma_max"], float(ref[0]), rel_tol=1e-4)
    assert st["sigma_min"] == 0.0


def test_zero_rows_dropped_and_shared_r():
    g = torch.Generator().manual_seed(2)
    D, X = torch.randn(6, 10, generator=g), torch.randn(6, 9, generator=g)
    D[2] = 0
    Dk, Xk = drop_zero_rows(D, X)
    assert Dk.shape == (5, 10) and Xk.shape == (5, 9)
    r = input_r_factor(Xk)
    assert torch.allclose(singular_values(Dk, Xk, r_x=r), _ref(D, X), rtol=1e-4, atol=1e-6)


def test_zero_gradient():
    st, _ = gradient_stats(torch.zeros(4, 6), torch.randn(4, 5))
    assert st["nuclear_norm"] == 0 and st["sigma1_ratio"] == 0 and st["effective_rank"] == 0


def test_stats_hand_values():
    st = stats_from_singular_values(torch.tensor([3.0, 1.0, 0.0]))
    assert st["nuclear_norm"] == 4.0 and st["sigma_max"] == 3.0 and st["sigma_min"] == 0.0
    assert st["sigma1_ratio"] == 0.75
    assert math.isclose(st["frobenius_norm"], math.sqrt(10))
    p = [0.75, 0.25]
    assert math.isclose(st["effective_rank"], math.exp(-sum(x * math.log(x) for x in p)))
    assert math.isclose(stats_from_singular_values(torch.ones(5))["effective_rank"], 5.0)


def test_entry_stats_and_full_stats_match_materialised():
    g = torch.Generator().manual_seed(3)
    D, X = torch.randn(5, 7, generator=g), torch.randn(5, 4, generator=g)
    G = D.T @ X
    assert entry_stats(G) == {
        "entry_mean": float(G.mean()),
        "entry_max": float(G.max()),
        "entry_min": float(G.min()),
    }
    st, _ = gradient_stats(D, X)
    assert math.isclose(st["frobenius_norm"], float(torch.linalg.norm(G)), rel_tol=1e-5)
    assert math.isclose(st["entry_max"], float(G.max()), rel_tol=1e-6)


def test_cosine_from_factors():
    g = torch.Generator().manual_seed(4)
    D1, X1, D2, X2 = (torch.randn(6, k, generator=g) for k in (8, 5, 8, 5))
    G1, G2 = (D1.T @ X1).double(), (D2.T @ X2).double()
    assert math.isclose(gradient_inner(D1, X1, D2, X2), float((G1 * G2).sum()), rel_tol=1e-6)
    assert math.isclose(
        gradient_cosine(D1, X1, D2, X2),
        float((G1 * G2).sum() / (G1.norm() * G2.norm())),
        rel_tol=1e-6,
    )
    assert math.isclose(gradient_cosine(D1, X1, D1, X1), 1.0, rel_tol=1e-9)
    assert math.isnan(gradient_cosine(torch.zeros(6, 8), X1, D2, X2))


def test_factor_route_keeps_relative_accuracy_under_cancellation():
    """G much smaller than ‖D‖‖X‖ (a short response): the float64 factor route keeps
    float64-level relative accuracy (float32 factors lost ~1e-4 here)."""
    g = torch.Generator().manual_seed(5)
    for T in (3, 6, 12):
        m = n = 64
        assert use_factor_route(T, m, n)
        c = torch.randn(n, generator=g) * 100
        X = c + 1e-3 * torch.randn(T, n, generator=g)  # nearly identical rows
        D = torch.randn(T, m, generator=g)
        D -= D.mean(0)  # Σ_t d_t = 0: the common part of X cancels in DᵀX
        ref = _ref(D, X)
        st, _ = gradient_stats(D, X)
        assert math.isclose(st["nuclear_norm"], float(ref.sum()), rel_tol=1e-6)
        assert math.isclose(st["sigma_max"], float(ref[0]), rel_tol=1e-6)


def test_nonzero_rows_and_precomputed_mask():
    D = torch.tensor([[0.0, 0.0], [1.0, 0.0], [float("nan"), 0.0], [0.0, -2.0]])
    X = torch.tensor([[1.0], [0.0], [1.0], [3.0]])
    assert nonzero_rows(D).tolist() == [False, True, True, True]
    Dk, Xk = drop_zero_rows(D, X, nonzero_rows(D) & nonzero_rows(X))
    assert Dk.shape[0] == 2 and torch.equal(Xk, torch.tensor([[1.0], [3.0]]))


@pytest.mark.parametrize(
    ("workers", "backend"), [(1, None), (2, None), (3, None), (2, "torch"), (1, "numpy")]
)
def test_solve_spectra_matches_svd(workers, backend):
    torch.manual_seed(0)
    jobs, want = [], []
    shapes = [(40, 24, 32), (40, 32, 24), (5, 24, 32), (0, 8, 8), (30, 12, 12), (40, 24, 32)]
    shapes += [(150, 130, 140), (160, 140, 130)]  # ≥ POOL_MIN_SIZE: solved on the pool
    for T, m, n in shapes + [(4, 24, 32)]:  # same shapes twice: batched with torch
        D, X = torch.randn(T, m), torch.randn(T, n)
        G = D.T @ X
        want.append(torch.linalg.svdvals(G.double()) if T else torch.zeros(min(m, n)))
        if T == 0:
            jobs.append((None, min(m, n), 0, False))
        elif T <= min(m, n) // 2:
            K, s = spectral_gram(D, X)
            jobs.append((K, s, T, True))
        else:
            jobs.append((G, min(m, n), T, False))
    got = solve_spectra(jobs, workers=workers, backend=backend)
    for g, w, job in zip(got, want, jobs, strict=True):
        assert g.dtype == torch.float64 and g.shape == w.shape
        assert torch.allclose(g, w.double(), rtol=1e-6, atol=1e-6 * float(w.max() or 1))
        if job[2] is not None and job[2] < g.numel():
            assert torch.all(g[job[2] :] == 0)  # beyond the rank: exact zeros


def test_single_threaded_blas_restores_thread_count():
    from threadpoolctl import threadpool_info

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with single_threaded_blas():
        inside = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    assert after == before
    assert all(n == 1 for n in inside)
    assert 1 <= default_stats_threads() <= 8


def test_solve_spectra_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        solve_spectra([(torch.ones(2, 2), 2, None, False)], backend="scipy")


def test_solve_spectra_after_fork():
    import multiprocessing as mp

    G = torch.randn(140, 130)
    solve_spectra([(G, 130, None, False), (G.T.contiguous(), 130, None, False)], workers=2)
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:  # the child must not wait on the parent's worker threads
        got = pool.apply_async(_solve_two, (G,)).get(timeout=60)
    assert torch.allclose(got, torch.linalg.svdvals(G.double()), rtol=1e-6)


def _solve_two(G):
    return solve_spectra([(G, 130, None, False), (G.T.contiguous(), 130, None, False)], workers=2)[
        0
    ]


def test_spectral_job_routes():
    torch.manual_seed(1)
    D, X = torch.randn(4, 24), torch.randn(4, 32)  # T ≤ min(m, n)/2: factor route
    K, s, rank, is_gram = spectral_job(D, X)
    assert (tuple(K.shape), s, rank, is_gram) == ((4, 4), 24, 4, True)
    G = torch.randn(24, 32)
    assert spectral_job(torch.randn(30, 24), X[:0].new_zeros(30, 32), G=G)[0] is G  # direct
    assert spectral_job(D[:0], X[:0]) == (None, 24, 0, False)
    [sv] = solve_spectra([spectral_job(D, X)])
    assert torch.allclose(sv, _ref(D, X), rtol=1e-6, atol=1e-9)
