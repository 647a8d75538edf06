"""The two-level neural cycle in flexible CG / FGMRES (solvers.neural_krylov), with stand-in corrections.

A "correction" here is any residual-to-error map: the exact inverse, the inverse of a nearby matrix
(what a trained network approximates), or one returning NaN. Every converged answer is checked on
the true residual ``||b - A x|| / ||b||`` against rtol 1e-8.
"""

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from solvers import ConfigError
from solvers.neural_krylov import NeuralKrylovSettings, additive_cycle, neural_solve, two_level_cycle
from solvers.preconditioners import build_preconditioner
from tests.solvers.model_problems import convection_diffusion_2d, laplacian_2d, rhs, varying_coefficient_2d

RTOL = 1e-8
N = 24


def _true_residual(A, b, x):
    return np.linalg.norm(b - A @ x) / np.linalg.norm(b)


def _coefficient(seed):
    rng = np.random.default_rng(seed)
    return np.exp(0.5 * rng.standard_normal((N, N)))


def test_exact_correction_converges_in_one_iteration_and_counts_the_cycle():
    """With N = A^-1 the cycle returns the exact error: one FCG iteration; products = x0-free start
    (none) + 1 (FCG) + 2 (cycle) + 1 (final true residual check) at most."""
    A = varying_coefficient_2d(N, _coefficient(0))
    b = rhs(A.shape[0])
    lu = spla.splu(A.tocsc())
    result = neural_solve(A, b, build_preconditioner("sor", A), lu.solve)
    assert result.converged and _true_residual(A, b, result.x) <= RTOL
    assert result.iterations == 1
    assert result.matvecs <= 4


def test_approximate_correction_cuts_products_against_the_smoother_alone():
    """The inverse of a matrix with a 20%-perturbed coefficient as N: fewer products (cycle's included)
    than the same FCG with symmetric Gauss-Seidel alone, from zero; both meet rtol."""
    a = _coefficient(1)
    A = varying_coefficient_2d(N, a)
    nearby = spla.splu(varying_coefficient_2d(N, a * (1 + 0.2 * np.cos(np.arange(a.size)).reshape(a.shape))).tocsc())
    b = rhs(A.shape[0], 1)
    smoother = build_preconditioner("sor", A)
    cold = neural_solve(A, b, smoother, None)
    warm = neural_solve(A, b, smoother, nearby.solve)
    for result in (cold, warm):
        assert result.converged and _true_residual(A, b, result.x) <= RTOL
    assert warm.matvecs * 1.5 <= cold.matvecs  # measured 16 vs 34; integer counts, margin for rounding


def test_fgmres_path_for_a_nonsymmetric_matrix():
    """Non-SPD systems run flexible GMRES; an exact correction converges in one Arnoldi step."""
    A = convection_diffusion_2d(N, 40.0)
    b = rhs(A.shape[0], 2)
    lu = spla.splu(A.tocsc())
    result = neural_solve(A, b, build_preconditioner("ilu0", A), lu.solve, spd=False)
    assert result.method == "fgmres"
    assert result.converged and _true_residual(A, b, result.x) <= RTOL
    assert result.iterations == 1


def test_guess_is_used_as_the_first_iterate():
    """Starting from the exact solution needs no iteration (only the residual check)."""
    A = laplacian_2d(N)
    b = rhs(A.shape[0], 3)
    x = spla.spsolve(A.tocsc(), b)
    result = neural_solve(A, b, build_preconditioner("sor", A), None, guess=x)
    assert result.converged and result.iterations == 0


def test_nonfinite_correction_ends_unconverged():
    """A network returning NaN stops the solve as not converged (the caller falls back)."""
    A = laplacian_2d(N)
    b = rhs(A.shape[0], 4)
    result = neural_solve(A, b, build_preconditioner("sor", A), lambda r: np.full_like(r, np.nan))
    assert not result.converged


def test_cycle_is_the_two_grid_formula():
    """z = S r; z += N(r - A z); z += S(r - A z), checked against the formula written out."""
    A = laplacian_2d(6)
    S = build_preconditioner("jacobi", A)
    r = rhs(A.shape[0], 5)
    correction = lambda v: 0.5 * v  # noqa: E731  (any map will do)
    z = S @ r
    z = z + correction(r - A @ z)
    z = z + S @ (r - A @ z)
    np.testing.assert_allclose(two_level_cycle(A, S, correction)(r), z, rtol=1e-14, atol=0)


ADDITIVE = NeuralKrylovSettings(rtol=RTOL, cycle="additive")


@pytest.mark.parametrize("spd", [True, False])
def test_additive_cycle_with_exact_remainder_converges_in_one_iteration(spd):
    """N = A^-1 - S (what the smoother misses) makes S r + N(r) = A^-1 r: one iteration, and the
    additive cycle adds no product: 1 (method) + 1 (final true residual check) at most."""
    A = varying_coefficient_2d(N, _coefficient(6)) if spd else convection_diffusion_2d(N, 40.0)
    b = rhs(A.shape[0], 6)
    smoother = build_preconditioner("sor" if spd else "ilu0", A)
    lu = spla.splu(A.tocsc())
    result = neural_solve(A, b, smoother, lambda r: lu.solve(r) - smoother @ r, spd=spd, settings=ADDITIVE)
    assert result.converged and _true_residual(A, b, result.x) <= RTOL
    assert result.iterations == 1
    assert result.matvecs <= 2


@pytest.mark.parametrize("spd", [True, False])
def test_additive_cycle_with_zero_network_is_the_cold_method(spd):
    """N = 0 leaves z = S r: the same iterates, iterations and products as the smoother alone."""
    A = varying_coefficient_2d(N, _coefficient(7)) if spd else convection_diffusion_2d(N, 40.0)
    b = rhs(A.shape[0], 7)
    smoother = build_preconditioner("sor" if spd else "ilu0", A)
    cold = neural_solve(A, b, smoother, None, spd=spd, settings=ADDITIVE)
    zero = neural_solve(A, b, smoother, np.zeros_like, spd=spd, settings=ADDITIVE)
    assert cold.converged and _true_residual(A, b, cold.x) <= RTOL
    assert (zero.iterations, zero.matvecs) == (cold.iterations, cold.matvecs)
    # adding the exact zero vector changes no floating-point operation
    np.testing.assert_array_equal(zero.x, cold.x)


def test_additive_cycle_is_the_formula():
    A = laplacian_2d(6)
    S = build_preconditioner("jacobi", A)
    r = rhs(A.shape[0], 8)
    correction = lambda v: 0.5 * v  # noqa: E731  (any map will do)
    np.testing.assert_allclose(additive_cycle(S, correction)(r), S @ r + 0.5 * r, rtol=1e-14, atol=0)


@pytest.mark.parametrize("field, value", [("rtol", 0.0), ("maxiter", 0), ("restart", 1.5), ("cycle", "both")])
def test_bad_settings_raise_config_error(field, value):
    with pytest.raises(ConfigError, match=field):
        NeuralKrylovSettings(**{field: value})


SMOOTHED = NeuralKrylovSettings(rtol=RTOL, cycle="additive-smoothed")


@pytest.mark.parametrize("spd", [True, False])
def test_smoothed_cycle_with_exact_remainder_converges_in_one_iteration(spd):
    """The smoothed cycle hands N the smoothed residual y = S r. With Jacobi, S^-1 y = D y, so the
    exact remainder as a function of y is N(y) = A^-1 D y - y, and S r + N(S r) = A^-1 r: one
    iteration and no product added by the cycle (at most 2: the method's and the final check)."""
    A = varying_coefficient_2d(N, _coefficient(9)) if spd else convection_diffusion_2d(N, 40.0)
    b = rhs(A.shape[0], 9)
    smoother = build_preconditioner("jacobi", A)
    diagonal = A.diagonal()
    lu = spla.splu(A.tocsc())
    result = neural_solve(A, b, smoother, lambda y: lu.solve(diagonal * y) - y, spd=spd, settings=SMOOTHED)
    assert result.converged and _true_residual(A, b, result.x) <= RTOL
    assert result.iterations == 1
    assert result.matvecs <= 2
    # the same map given the raw residual (the plain additive cycle) is not the remainder: more iterations
    plain = neural_solve(A, b, smoother, lambda y: lu.solve(diagonal * y) - y, spd=spd, settings=ADDITIVE)
    assert plain.iterations > 1


def test_smoothed_additive_cycle_is_the_formula():
    A = laplacian_2d(6)
    S = build_preconditioner("jacobi", A)
    r = rhs(A.shape[0], 10)
    correction = lambda v: v**2  # noqa: E731  (a nonlinear map tells its argument apart)
    np.testing.assert_allclose(additive_cycle(S, correction, smoothed=True)(r), S @ r + (S @ r) ** 2,
                               rtol=1e-14, atol=0)
