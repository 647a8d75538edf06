"""Preconditioners approximate A^-1 as claimed, and the reuse policy rebuilds only when iterations grow."""

from __future__ import annotations

import numpy as np
import pytest

from solvers import ConfigError, PreconditionerReuse, SolverError, build_preconditioner
from tests.solvers.model_problems import convection_diffusion_2d, laplacian_2d, rhs

N = 16


def test_jacobi_divides_by_the_diagonal() -> None:
    """Jacobi is x / diag(A): multiplying by the stored reciprocal costs at most two roundings (4e-16)."""
    A = convection_diffusion_2d(N, 10.0)
    x = rhs(A.shape[0])
    np.testing.assert_allclose(build_preconditioner("jacobi", A) @ x, x / A.diagonal(), rtol=4.5e-16, atol=0)


def test_ilu_without_dropping_is_an_exact_inverse() -> None:
    """ILU with drop_tol = 0 and ample fill is the full LU: M A x = x to rounding (1e-10)."""
    A = convection_diffusion_2d(N, 10.0)
    M = build_preconditioner("ilu", A, drop_tol=0.0, fill_factor=50)
    x = rhs(A.shape[0], seed=1)
    assert np.linalg.norm(M @ (A @ x) - x) <= 1e-10 * np.linalg.norm(x)


def test_ilu_with_dropping_is_a_good_but_inexact_inverse() -> None:
    """A drop tolerance of 1e-2 gives ||I - M A|| well below 1 on a random vector, but not zero."""
    A = convection_diffusion_2d(N, 10.0)
    M = build_preconditioner("ilu", A, drop_tol=1e-2, fill_factor=2)
    x = rhs(A.shape[0], seed=2)
    ratio = np.linalg.norm(x - M @ (A @ x)) / np.linalg.norm(x)
    assert 1e-8 < ratio < 0.5


@pytest.mark.parametrize("amg_kind", ["sa", "rs"])
def test_amg_v_cycle_contracts_the_error(amg_kind: str) -> None:
    """As a stationary iteration e <- (I - M A) e, a multigrid V-cycle on the Poisson matrix shrinks
    the error by a factor < 0.3 per cycle (grid-independent multigrid rates are ~0.1)."""
    A = laplacian_2d(24)
    M = build_preconditioner("amg", A, amg_kind=amg_kind)
    e = rhs(A.shape[0], seed=3)
    norms = [np.linalg.norm(e)]
    for _ in range(5):
        e = e - M @ (A @ e)
        norms.append(np.linalg.norm(e))
    assert norms[-1] < 0.3 ** 5 * norms[0]


def test_ilu_is_reused_across_matrices_until_iterations_grow() -> None:
    """An ILU is reused for new matrices while iterations stay within the factor of the count after
    the build, and rebuilt at the next request once they exceed it."""
    matrices = [convection_diffusion_2d(N, 10.0 + i) for i in range(4)]
    policy = PreconditionerReuse("ilu", rebuild_factor=2.0)
    first = policy.get(matrices[0])
    assert policy.builds == 1 and policy.fresh
    policy.record(10)  # baseline
    assert policy.get(matrices[1]) is first and not policy.fresh
    policy.record(20)  # exactly the factor: still fine
    assert policy.get(matrices[2]) is first and policy.builds == 1
    policy.record(21)  # past the factor
    rebuilt = policy.get(matrices[3])
    assert rebuilt is not first and policy.builds == 2 and policy.fresh


@pytest.mark.parametrize("kind", ["jacobi", "amg"])
def test_cheap_kinds_are_rebuilt_per_matrix_and_kept_for_the_same_one(kind: str) -> None:
    """Jacobi and multigrid are rebuilt whenever the matrix changes (cheaper than a stale one, as
    measured), kept while it repeats; a forced rebuild for the very same matrix is skipped."""
    A0, A1 = laplacian_2d(24), 2.0 * laplacian_2d(24)
    policy = PreconditionerReuse(kind)
    M0 = policy.get(A0)
    policy.record(10)
    assert policy.get(A0.copy()) is M0 and policy.fresh and policy.builds == 1
    assert policy.get(A0, force_rebuild=True) is M0 and policy.builds == 1
    M1 = policy.get(A1)
    assert M1 is not M0 and policy.builds == 2 and policy.fresh
    if kind == "jacobi":  # built for A1 = 2 A0: exactly half of M0
        x = rhs(A1.shape[0], seed=5)
        assert np.linalg.norm(M1 @ x - 0.5 * (M0 @ x)) <= 1e-15 * np.linalg.norm(M0 @ x)
    else:  # the new hierarchy's finest level is A1 itself
        assert abs(M1.hierarchy.levels[0].A - A1).max() == 0.0


def test_reuse_rebuilds_for_a_different_size() -> None:
    """A system of another size never gets a stale preconditioner of the wrong shape."""
    policy = PreconditionerReuse("ilu")
    policy.get(laplacian_2d(N))
    policy.record(5)
    M = policy.get(laplacian_2d(N + 1))
    assert M.shape == ((N + 1) ** 2, (N + 1) ** 2) and policy.builds == 2


def test_errors_are_clear() -> None:
    """Unknown kinds are ConfigError; a zero diagonal makes Jacobi impossible (SolverError)."""
    A = laplacian_2d(N).tolil()
    with pytest.raises(ConfigError, match="preconditioner must be one of"):
        build_preconditioner("ssor", A.tocsr())
    A[0, 0] = 0.0
    with pytest.raises(SolverError, match="zero or non-finite diagonal"):
        build_preconditioner("jacobi", A.tocsr())
