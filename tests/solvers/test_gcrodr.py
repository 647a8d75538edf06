"""GCRO-DR: accuracy on SPD / non-symmetric / indefinite systems, k = 0 is GMRES(m), recycling pays."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from solvers import GCRODR, ConfigError, gmres, harmonic_ritz_vectors
from solvers.preconditioners import ILU
from tests.solvers.model_problems import (convection_diffusion_2d, helmholtz_2d, laplacian_2d, rhs,
                                          varying_coefficient_2d)

N = 20  # 400 unknowns: every solve below takes milliseconds

SYSTEMS = {
    "spd": lambda: laplacian_2d(N),
    "nonsymmetric": lambda: convection_diffusion_2d(N, 40.0),
    # k2 = 100 lies between Laplacian eigenvalues (2 pi^2 ~ 19.7, 5 pi^2 ~ 49, 8 pi^2 ~ 79, 10 pi^2 ~ 99,
    # 13 pi^2 ~ 128): several negative eigenvalues, none near zero
    "indefinite": lambda: helmholtz_2d(N, 110.0),
}


@pytest.mark.parametrize("kind", sorted(SYSTEMS))
def test_solves_to_tolerance_and_agrees_with_splu(kind: str) -> None:
    """GCRO-DR(30, 10) meets rtol = 1e-10 in the true residual and matches SuperLU.

    The error bound 1e-6 is cond(A) * rtol with cond(A) < 1e4 for these 400-unknown systems.
    """
    A = SYSTEMS[kind]()
    b = rhs(A.shape[0])
    result = GCRODR(m=30, k=10, rtol=1e-10, maxiter=5000).solve(A, b)
    exact = spla.splu(A.tocsc()).solve(b)
    true_residual = np.linalg.norm(b - A @ result.x) / np.linalg.norm(b)
    assert result.converged
    assert true_residual <= 1e-10
    assert result.residual == pytest.approx(true_residual, rel=1e-12)
    assert np.linalg.norm(result.x - exact) / np.linalg.norm(exact) < 1e-6


def test_k0_reproduces_scipy_gmres() -> None:
    """With k = 0 and no preconditioner our cycles are GMRES(m): SciPy's iteration count, residual
    history and solution.

    Both minimise the same residual over the same Krylov spaces; only rounding differs (CGS with
    reorthogonalisation vs. MGS), hence 1e-6 on the residual estimates and 1e-9 on x.
    """
    A = convection_diffusion_2d(N, 20.0)
    b = rhs(A.shape[0], seed=1)
    scipy_history: list[float] = []
    x_scipy, info = spla.gmres(A, b, rtol=1e-8, restart=25, maxiter=1000, callback=scipy_history.append,
                               callback_type="pr_norm")
    ours: list[float] = []
    result = GCRODR(m=25, k=0, rtol=1e-8).solve(A, b, callback=ours.append)
    assert info == 0 and result.converged
    assert result.iterations == len(scipy_history) > 25  # several restarts happened
    np.testing.assert_allclose(ours, scipy_history, rtol=1e-6)
    assert np.linalg.norm(result.x - x_scipy) / np.linalg.norm(x_scipy) < 1e-9
    assert result.method == "gmres"


def test_gmres_function_is_gcrodr_with_k0() -> None:
    """`gmres` is a thin wrapper: identical iterates and counters to GCRODR(k=0), preconditioned."""
    A = convection_diffusion_2d(N, 20.0)
    b = rhs(A.shape[0], seed=2)
    M = ILU(A, drop_tol=1e-2, fill_factor=2)
    a = gmres(A, b, rtol=1e-9, restart=15, M=M)
    c = GCRODR(m=15, k=0, rtol=1e-9).solve(A, b, M=M)
    assert np.array_equal(a.x, c.x)
    assert (a.iterations, a.matvecs, a.precond_applications) == (c.iterations, c.matvecs, c.precond_applications)


def _darcy_like_sequence(count: int) -> list:
    x = np.linspace(0.0, 1.0, N)
    X, Y = np.meshgrid(x, x, indexing="ij")
    base = np.sin(2 * np.pi * X) * np.cos(np.pi * Y)
    return [varying_coefficient_2d(N, np.exp(base * (1.0 + 0.05 * i))) for i in range(count)]


def test_recycling_reduces_matvecs_on_slowly_varying_sequence() -> None:
    """On six slowly varying variable-coefficient systems, GCRO-DR(30, 10) needs well under the
    products of GMRES(30) for systems 2-6, with the k products per new matrix counted.

    Measured ratio is about 0.45; 0.65 leaves room for rounding-level differences in cycle counts.
    """
    matrices = _darcy_like_sequence(6)
    recycling, plain = GCRODR(m=30, k=10, rtol=1e-8), GCRODR(m=30, k=0, rtol=1e-8)
    cost = {"recycling": [], "plain": []}
    for i, A in enumerate(matrices):
        b = rhs(A.shape[0], seed=10 + i)
        for name, solver in (("recycling", recycling), ("plain", plain)):
            result = solver.solve(A, b)
            assert result.converged and result.residual <= 1e-8
            cost[name].append(result.matvecs)
    assert sum(cost["recycling"][1:]) < 0.65 * sum(cost["plain"][1:])


def test_recycled_space_satisfies_its_invariants_after_a_matrix_change() -> None:
    """After solves with changing matrices, A U = C and C^T C = I hold to rounding (1e-10 relative),
    with and without a right preconditioner (U is then M^-1 applied to the preconditioned basis),
    and the cached C^T U equals the explicit product."""
    matrices = _darcy_like_sequence(3)
    for M in (None, ILU(matrices[0], drop_tol=1e-2, fill_factor=2)):
        solver = GCRODR(m=20, k=6, rtol=1e-9)
        for i, A in enumerate(matrices):
            solver.solve(A, rhs(A.shape[0], seed=i), M=M)
        A = matrices[-1]
        U, C = solver.U, solver.C
        assert solver.recycle_dim == 6
        scale = np.abs(A @ U.T).max()
        assert np.abs(A @ U.T - C.T).max() <= 1e-10 * scale
        assert np.abs(C @ C.T - np.eye(6)).max() <= 1e-12
        # the cached C^T U (preconditioned-space U) used by the next cycle equals the explicit product;
        # it is formed through R^-1 of the recycle update, so rounding is amplified (measured ~1e-10)
        if solver._CtU is not None:
            explicit = C @ solver._U.T
            assert np.linalg.norm(solver._CtU - explicit) <= 1e-9 * np.linalg.norm(explicit)


def test_same_matrix_detected_and_new_matrix_costs_k_products() -> None:
    """A repeated matrix is recognised (no extra products); a changed one costs exactly k more."""
    A0, A1 = _darcy_like_sequence(2)
    b = rhs(A0.shape[0], seed=3)
    solver = GCRODR(m=20, k=8, rtol=1e-8)
    solver.solve(A0, b)
    same = solver.solve(A0.copy(), rhs(A0.shape[0], seed=4))
    assert same.matvecs == same.iterations + 1  # Arnoldi steps + final true-residual check
    changed = solver.solve(A1, rhs(A0.shape[0], seed=5))
    assert changed.matvecs == changed.iterations + 1 + 8


def test_right_preconditioning_stops_on_the_true_residual() -> None:
    """With ILU on the right the reported residual is the recomputed ||b - A x|| / ||b|| and meets rtol."""
    A = convection_diffusion_2d(N, 60.0)
    b = rhs(A.shape[0], seed=6)
    result = GCRODR(m=20, k=5, rtol=1e-9).solve(A, b, M=ILU(A, drop_tol=1e-2, fill_factor=2))
    true_residual = np.linalg.norm(b - A @ result.x) / np.linalg.norm(b)
    assert result.converged and true_residual <= 1e-9
    assert result.precond_applications == result.iterations


def test_linear_operator_gives_the_same_iterates_as_the_matrix() -> None:
    """A LinearOperator wrapper of A produces the same iterations and the same x (to 1e-12)."""
    A = convection_diffusion_2d(N, 30.0)
    b = rhs(A.shape[0], seed=7)
    direct = GCRODR(m=20, k=5, rtol=1e-9).solve(A, b)
    wrapped = GCRODR(m=20, k=5, rtol=1e-9).solve(spla.aslinearoperator(A), b)
    assert direct.iterations == wrapped.iterations
    assert np.linalg.norm(direct.x - wrapped.x) <= 1e-12 * np.linalg.norm(direct.x)


def test_callback_sees_every_iteration_and_ends_below_tolerance() -> None:
    """The callback runs once per inner iteration; its last estimate meets rtol."""
    A = laplacian_2d(N)
    seen: list[float] = []
    result = GCRODR(m=20, k=5, rtol=1e-8).solve(A, rhs(A.shape[0]), callback=seen.append)
    assert len(seen) == result.iterations
    assert seen[-1] <= 1e-8


def test_harmonic_ritz_keeps_complex_pairs_together() -> None:
    """For a Hessenberg matrix with h_{m+1,m} = 0 the harmonic Ritz values are its eigenvalues.

    Eigenvalues 0.1, 0.2 +- 0.1i, 5, 6: asking for k = 2 must not split the pair, so only the real
    one (coordinate e_0) is returned; k = 3 returns exactly span{e_0, e_1, e_2}.
    """
    H = np.zeros((6, 5))
    H[0, 0] = 0.1
    H[1:3, 1:3] = [[0.2, 0.1], [-0.1, 0.2]]
    H[3, 3], H[4, 4] = 5.0, 6.0
    WtV = np.vstack([np.eye(5), np.zeros((1, 5))])
    two = harmonic_ritz_vectors(H, WtV, 2)
    assert two.shape == (5, 1)
    assert abs(abs(two[0, 0]) - 1.0) < 1e-12
    three = harmonic_ritz_vectors(H, WtV, 3)
    assert three.shape == (5, 3)
    projector = three @ three.T
    np.testing.assert_allclose(projector, np.diag([1, 1, 1, 0, 0]), atol=1e-12)


def test_stagnation_on_singular_matrix_is_reported_not_hidden() -> None:
    """On a singular, inconsistent system the solver returns converged=False with the true residual."""
    A = laplacian_2d(N).tolil()
    A[5, :] = 0.0
    A = A.tocsr()
    b = rhs(A.shape[0])
    result = GCRODR(m=20, k=5, rtol=1e-8, maxiter=400).solve(A, b)
    assert not result.converged
    assert result.residual == pytest.approx(np.linalg.norm(b - A @ result.x) / np.linalg.norm(b), rel=1e-12)
    assert result.residual > 1e-3  # the component b[5] cannot be matched


@pytest.mark.parametrize("kwargs", [{"m": 0}, {"m": 10, "k": 10}, {"k": -1}, {"rtol": -1.0}, {"maxiter": 0}])
def test_invalid_settings_raise_config_error(kwargs: dict) -> None:
    """Bad restart/recycle/tolerance settings are user mistakes: ConfigError naming the field."""
    with pytest.raises(ConfigError):
        GCRODR(**kwargs)


def test_hopeless_solve_stops_early_instead_of_burning_maxiter() -> None:
    """Unpreconditioned GMRES(5) on an indefinite Helmholtz matrix needs ~44 000 iterations for
    rtol = 1e-10 (measured); with maxiter = 2000 the solver extrapolates its rate once a tenth of
    the budget is spent, stops there and reports the true residual, unconverged."""
    A = helmholtz_2d(N, 110.0)
    b = rhs(A.shape[0])
    result = GCRODR(m=5, k=0, rtol=1e-10, maxiter=2000).solve(A, b)
    assert not result.converged
    assert result.iterations <= 250  # a tenth of the budget, plus the cycles of one rate window
    assert result.residual == pytest.approx(np.linalg.norm(b - A @ result.x) / np.linalg.norm(b), rel=1e-12)


def test_same_matrix_sequence_keeps_the_recycled_basis_orthonormal() -> None:
    """Implicit-Euler heat steps (one matrix, the previous solution as right-hand side): without a
    new matrix no QR re-orthonormalises C, so it stays orthonormal only if every Arnoldi vector,
    and the residual projected onto the recycled space, is orthogonalised well enough.

    Bound: C = Q^T W with W = [C; V] from classical Gram-Schmidt with DGKS reorthogonalisation,
    whose loss of orthogonality is at most about (m vectors) x (n-term inner products) x eps =
    30 * 576 * 2.2e-16 = 3.8e-12 (worst case; rounding usually gives far less), times a margin of
    10: 3.8e-11, independent of the BLAS's summation order. It must hold after every one of 24
    solves: before the projection r -= C C^T r was repeated on cancellation, C^T C - I grew about
    tenfold per solve (1e-12 -> 5e-2 by the 20th) and the solver then stalled; a single classical
    Gram-Schmidt pass in Arnoldi let C drift to 3e-2 and the iteration counts grow tenfold.
    """
    import scipy.sparse as sp

    from solvers import build_preconditioner

    n, m = 24, 30
    A = (sp.identity(n * n) + 0.01 * laplacian_2d(n)).tocsr()
    M = build_preconditioner("jacobi", A)
    solver = GCRODR(m=m, k=10, rtol=1e-10)
    bound = 10 * m * n * n * np.finfo(np.float64).eps
    x = rhs(n * n)
    iterations, drift = [], []
    for _ in range(24):
        result = solver.solve(A, x, M=M)
        assert result.converged
        x = result.x
        iterations.append(result.iterations)
        C = solver.C
        drift.append(np.abs(C @ C.T - np.eye(C.shape[0])).max())
    assert max(drift) < bound, drift
    assert max(iterations[2:]) < iterations[0] and iterations[-1] < iterations[2]
