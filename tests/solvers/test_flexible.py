"""Flexible CG and flexible GMRES (solvers.flexible): true residuals, exact-preconditioner iteration counts,
a preconditioner that changes from call to call, and failures reported instead of returned as garbage."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from solvers.errors import ConfigError
from solvers.flexible import fgmres, flexible_cg


def _poisson(n: int = 120) -> sp.csr_matrix:
    return sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n), format="csr")


def _convection_diffusion(n: int = 120) -> sp.csr_matrix:
    return sp.diags([-1.3, 2.0, -0.7], [-1, 0, 1], shape=(n, n), format="csr")  # non-symmetric, diagonally dominant


def _rhs(n: int = 120) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(n)


@pytest.mark.parametrize("solve, matrix", [(flexible_cg, _poisson), (fgmres, _convection_diffusion)])
def test_converged_result_meets_the_true_residual(solve, matrix):
    A, b = matrix(), _rhs()
    result = solve(A, b, rtol=1e-10, maxiter=2000)
    assert result.converged
    true = np.linalg.norm(b - A @ result.x) / np.linalg.norm(b)
    assert true <= 1e-10 and abs(true - result.residual) <= 1e-14
    # the condition number of these matrices is < 1e4: the error is below cond * rtol (margin 10)
    assert np.linalg.norm(result.x - spsolve(A.tocsc(), b)) <= 1e-5 * np.linalg.norm(result.x)


@pytest.mark.parametrize("solve, matrix", [(flexible_cg, _poisson), (fgmres, _convection_diffusion)])
def test_exact_preconditioner_converges_in_one_iteration(solve, matrix):
    A, b = matrix(), _rhs()
    lu = sp.linalg.splu(A.tocsc())
    result = solve(A, b, rtol=1e-10, M=lu.solve)
    assert result.converged and result.iterations == 1


def test_preconditioner_that_changes_between_calls():
    """Jacobi sweeps, a different number each call: nonlinear in the sense of Krylov theory. FGMRES keeps the
    preconditioned vectors and converges in fewer iterations than unpreconditioned GMRES(30)."""
    A, b = _convection_diffusion(), _rhs()
    diagonal = A.diagonal()
    calls = [0]

    def sweeps(r: np.ndarray) -> np.ndarray:
        calls[0] += 1
        z = np.zeros_like(r)
        for _ in range(1 + calls[0] % 4):
            z = z + (r - A @ z) / diagonal
        return z

    plain = fgmres(A, b, rtol=1e-10, maxiter=3000)
    flexible = fgmres(A, b, rtol=1e-10, maxiter=3000, M=sweeps)
    assert flexible.converged and flexible.residual <= 1e-10
    assert flexible.iterations < plain.iterations
    fcg = flexible_cg(_poisson(), b, rtol=1e-10, maxiter=3000, M=sweeps)
    assert fcg.converged and fcg.residual <= 1e-10


@pytest.mark.parametrize("solve", [flexible_cg, fgmres])
def test_non_finite_preconditioner_ends_unconverged(solve):
    A, b = _poisson(), _rhs()
    result = solve(A, b, M=lambda r: np.full_like(r, np.nan))
    assert not result.converged and np.all(np.isfinite(result.x))


@pytest.mark.parametrize("kwargs, message", [(dict(rtol=-1.0), "rtol and atol"), (dict(maxiter=0), "maxiter"),
                                             (dict(restart=0), "restart")])
def test_bad_options_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        fgmres(_poisson(), _rhs(), **kwargs)
