"""SSOR preconditioner: the textbook operator, symmetric for symmetric A, and it pays in GMRES."""

from __future__ import annotations

import numpy as np
import pytest

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
