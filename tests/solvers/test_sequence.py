"""SequenceSolver: every method meets the tolerance, misses are retried and counted, failures are clear."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from solvers import ConfigError, ProblemTraits, SequenceSolver, SolverError, choose_method
from tests.solvers.model_problems import convection_diffusion_2d, helmholtz_2d, laplacian_2d, rhs, varying_coefficient_2d

N = 16
SPD = ProblemTraits(dim=2, n_unknowns=N * N, symmetric=True, definite=True)
NONSYM = ProblemTraits(dim=2, n_unknowns=N * N, symmetric=False, definite=False)


def _spd_sequence(count: int) -> list:
    x = np.linspace(0.0, 1.0, N)
    X, Y = np.meshgrid(x, x, indexing="ij")
    return [varying_coefficient_2d(N, np.exp(np.sin(2 * np.pi * X) * np.cos(np.pi * Y) * (1 + 0.1 * i)))
            for i in range(count)]


@pytest.mark.parametrize("method", ["direct", "cg", "gmres", "gcrodr", "skr", "amg"])
def test_every_method_meets_tolerance_and_agrees_with_splu(method: str) -> None:
    """Each method solves a 4-system SPD sequence with true relative residual <= 1e-9 and matches
    SuperLU to cond(A) * rtol (cond < 1e3 here, so 1e-6), without retries."""
    solver = SequenceSolver(method, SPD, rtol=1e-9, m=20, k=5)
    for i, A in enumerate(_spd_sequence(4)):
        b = rhs(A.shape[0], seed=i)
        result = solver.solve(A, b)
        exact = spla.splu(A.tocsc()).solve(b)
        assert result.converged and result.retries == 0
        assert np.linalg.norm(b - A @ result.x) / np.linalg.norm(b) <= 1e-9
        assert np.linalg.norm(result.x - exact) / np.linalg.norm(exact) < 1e-6
    summary = solver.summary()
    assert summary["solves"] == 4 and summary["retries"] == 0 and summary["worst_residual"] <= 1e-9


@pytest.mark.parametrize("method", ["skr", "gmres", "amg"])
def test_nonsymmetric_and_indefinite_sequences(method: str) -> None:
    """Non-symmetric (convection) and indefinite (Helmholtz) systems, interleaved so that the reused
    preconditioner is often stale, are solved to rtol = 1e-8 by the requested method itself."""
    solver = SequenceSolver(method, NONSYM, rtol=1e-8, m=30, k=10, preconditioner="ilu" if method != "amg" else "auto")
    for i in range(3):
        for A in (convection_diffusion_2d(N, 30.0 + 2 * i), helmholtz_2d(N, 110.0 + i)):
            b = rhs(A.shape[0], seed=i)
            result = solver.solve(A, b)
            assert result.retries == 0 and result.method == method
            assert np.linalg.norm(b - A @ result.x) / np.linalg.norm(b) <= 1e-8


def test_miss_is_retried_with_a_stronger_method_and_counted() -> None:
    """With maxiter = 3 GMRES cannot converge; the stored answer comes from the direct solve, meets
    the tolerance, and the retry is counted per solve and in the summary."""
    solver = SequenceSolver("gmres", SPD, rtol=1e-10, maxiter=3, preconditioner="jacobi")
    A, b = laplacian_2d(N), rhs(N * N)
    result = solver.solve(A, b)
    assert result.method == "direct" and result.retries >= 1
    assert np.linalg.norm(b - A @ result.x) / np.linalg.norm(b) <= 1e-10
    assert result.iterations >= 3  # the failed attempt's work is counted too
    assert solver.summary()["retries"] == result.retries


def test_stale_preconditioner_gets_one_fresh_try_before_direct() -> None:
    """A preconditioner built for one matrix and reused for a very different one may fail with a
    small maxiter; the solver first rebuilds it (one retry) and only then falls back to LU."""
    solver = SequenceSolver("gmres", SPD, rtol=1e-8, maxiter=12, preconditioner="ilu",
                            preconditioner_options={"drop_tol": 1e-3})
    first = solver.solve(laplacian_2d(N), rhs(N * N))
    assert first.retries == 0
    other = _spd_sequence(4)[-1]  # strongly varying coefficient: the Laplacian's ILU is stale
    result = solver.solve(other, rhs(N * N, seed=1))
    assert result.method == "gmres" and result.retries == 1
    assert solver.summary()["preconditioner_builds"] == 2


def test_singular_matrix_raises_solver_error_naming_the_sample() -> None:
    """An exactly singular matrix (a zero row) cannot be solved by anything: SolverError with the label."""
    A = laplacian_2d(N).tolil()
    A[7, :] = 0.0
    solver = SequenceSolver("skr", SPD, rtol=1e-8, maxiter=200)
    with pytest.raises(SolverError, match=r"sample 42.*singular"):
        solver.solve(A.tocsr(), rhs(N * N), label="sample 42")


def test_resonant_helmholtz_is_reported_as_singular() -> None:
    """k^2 equal to a Dirichlet eigenvalue (here the smallest discrete one, exactly) makes the
    Helmholtz matrix singular: the direct solve cannot reach the tolerance and SolverError says so."""
    h = 1.0 / (N + 1)
    lam = 2 * (2 - 2 * np.cos(np.pi * h)) / h**2  # smallest eigenvalue of the discrete Laplacian
    A = helmholtz_2d(N, lam)
    solver = SequenceSolver("direct", NONSYM, rtol=1e-8)
    with pytest.raises(SolverError, match="singular"):
        solver.solve(A, rhs(N * N), label="sample 3")


def test_non_finite_input_is_solver_error() -> None:
    """NaN coefficients or right-hand sides are refused before any solve, naming the sample."""
    A = laplacian_2d(N)
    b = rhs(N * N)
    b[3] = np.nan
    with pytest.raises(SolverError, match=r"non-finite.*sample 9"):
        SequenceSolver("direct", SPD).solve(A, b, label="sample 9")


def test_direct_factors_once_while_the_matrix_repeats() -> None:
    """Same matrix, new right-hand sides (heat steps): one LU for all; a new matrix triggers one more."""
    solver = SequenceSolver("direct", ProblemTraits(2, N * N, True, True, same_matrix=True))
    A = laplacian_2d(N)
    for i in range(4):
        solver.solve(A.copy(), rhs(N * N, seed=i))
    assert solver.stats.factorizations == 1
    solver.solve(2.0 * A, rhs(N * N))
    assert solver.stats.factorizations == 2


def test_auto_follows_the_documented_rule() -> None:
    """`auto` resolves through choose_method, whose documented decisions (from the benchmark) hold:
    repeated matrix or small 2D -> direct, large 2D SPD -> amg, 3D SPD -> cg, 3D non-SPD -> skr."""
    traits = ProblemTraits(dim=3, n_unknowns=30_000, symmetric=False, definite=False)
    assert SequenceSolver("auto", traits).method == choose_method(traits) == "skr"
    assert SequenceSolver("auto", traits).preconditioner == "ilu"
    assert choose_method(ProblemTraits(2, 10**6, True, True, same_matrix=True)) == "direct"
    assert choose_method(SPD) == choose_method(NONSYM) == "direct"
    assert choose_method(ProblemTraits(2, 40_000, True, True)) == "amg"
    assert choose_method(ProblemTraits(2, 40_000, False, False)) == "direct"
    cg = SequenceSolver("auto", ProblemTraits(3, 13_824, True, True))
    assert cg.method == "cg" and cg.preconditioner == "jacobi"


def test_auto_infers_traits_from_the_first_matrix() -> None:
    """Without traits, `auto` inspects the first matrix (symmetry exactly) and still verifies answers."""
    solver = SequenceSolver("auto", rtol=1e-9)
    A = convection_diffusion_2d(N, 10.0)
    b = rhs(N * N)
    solver.solve(A, b)
    assert solver.traits.symmetric is False and solver.traits.n_unknowns == N * N


def test_user_mistakes_are_config_errors() -> None:
    """Unknown methods/preconditioners, CG on a non-SPD family or with ILU: ConfigError naming the field."""
    with pytest.raises(ConfigError, match="solver must be one of"):
        SequenceSolver("bicgstab", SPD)
    with pytest.raises(ConfigError, match="preconditioner must be"):
        SequenceSolver("gmres", SPD, preconditioner="ssor")
    with pytest.raises(ConfigError, match="symmetric positive definite"):
        SequenceSolver("cg", NONSYM)
    with pytest.raises(ConfigError, match="symmetric preconditioner"):
        SequenceSolver("cg", SPD, preconditioner="ilu")
    with pytest.raises(ConfigError, match="rtol"):
        SequenceSolver("direct", SPD, rtol=0.0)
