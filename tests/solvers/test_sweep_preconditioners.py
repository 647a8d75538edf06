"""SSOR and ILU(0) preconditioners: the textbook operators, symmetric where they should be, and they pay in GMRES."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from solvers import ConfigError, GCRODR, build_preconditioner
from tests.solvers.model_problems import convection_diffusion_2d, laplacian_2d, rhs


@pytest.mark.parametrize("omega", [1.0, 1.5])
def test_ssor_applies_the_textbook_inverse(omega: float) -> None:
    """M^-1 x = omega (2 - omega) (D + omega U)^-1 D (D + omega L)^-1 x, checked against dense solves.

    Both sides are two triangular solves of a 100-unknown system with condition < 1e3: agreement
    to 1e-12 relative leaves a wide margin over rounding."""
    A = convection_diffusion_2d(10, 30.0)
    dense = A.toarray()
    D = np.diag(np.diag(dense))
    L, U = np.tril(dense, -1), np.triu(dense, 1)
    x = rhs(100)
    expected = omega * (2 - omega) * np.linalg.solve(D + omega * U, D @ np.linalg.solve(D + omega * L, x))
    got = build_preconditioner("sor", A, omega=omega) @ x
    assert np.linalg.norm(got - expected) <= 1e-12 * np.linalg.norm(expected)


def test_ssor_is_symmetric_for_a_symmetric_matrix_and_cuts_gmres_iterations() -> None:
    """For the SPD Laplacian M^-1 is symmetric (to rounding) and GMRES(20) needs fewer than half the
    unpreconditioned iterations."""
    A = laplacian_2d(16)
    M = build_preconditioner("sor", A)
    E = np.column_stack([M @ e for e in np.eye(A.shape[0])])
    assert np.abs(E - E.T).max() <= 1e-12 * np.abs(E).max()
    b = rhs(A.shape[0])
    plain = GCRODR(m=20, k=0, rtol=1e-8).solve(A, b)
    ssor = GCRODR(m=20, k=0, rtol=1e-8).solve(A, b, M=M)
    assert ssor.converged and ssor.iterations < 0.5 * plain.iterations


def test_bad_relaxation_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="omega"):
        build_preconditioner("sor", laplacian_2d(4), omega=2.0)


def _reference_ilu0(A) -> tuple[np.ndarray, np.ndarray]:
    """Textbook IKJ ILU(0) on a dense copy, restricted to A's pattern: unit-lower L and upper U."""
    F = A.toarray()
    pattern = F != 0
    n = F.shape[0]
    for i in range(1, n):
        for k in range(i):
            if pattern[i, k]:
                F[i, k] /= F[k, k]
                for j in range(k + 1, n):
                    if pattern[i, j]:
                        F[i, j] -= F[i, k] * F[k, j]
    return np.tril(F, -1) + np.eye(n), np.triu(F)


def test_diagonal_ilu_is_ilu0_on_a_five_point_matrix() -> None:
    """On the 5-point convection-diffusion matrix (non-symmetric) the diagonal ILU applies exactly
    (LU)^-1 of the textbook ILU(0); dense triangular solves on 64 unknowns agree to 1e-12."""
    A = convection_diffusion_2d(8, 25.0)
    L, U = _reference_ilu0(A)
    x = rhs(A.shape[0], seed=3)
    expected = np.linalg.solve(U, np.linalg.solve(L, x))
    got = build_preconditioner("ilu0", A) @ x
    assert np.linalg.norm(got - expected) <= 1e-12 * np.linalg.norm(expected)


def test_blocked_ssor_is_the_ssor_of_the_block_diagonal_part() -> None:
    """With blocks = 3 on 100 rows (PETSc's split: 34, 33, 33) the sweep equals the plain SSOR of
    A with every coupling between the row blocks removed (same triangular solves: 1e-14)."""
    A = convection_diffusion_2d(10, 30.0)
    owner = np.repeat([0, 1, 2], [34, 33, 33])
    local = A.toarray() * (owner[:, None] == owner[None, :])
    x = rhs(100, seed=5)
    expected = build_preconditioner("sor", sp.csr_matrix(local)) @ x
    got = build_preconditioner("sor", A, blocks=3) @ x
    assert np.linalg.norm(got - expected) <= 1e-14 * np.linalg.norm(expected)
