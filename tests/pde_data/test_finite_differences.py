"""Manufactured-solution checks of the finite-difference operators in pde_data.finite_differences."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import sympy

from pde_data import finite_differences as fd

X = sympy.symbols("x0:3", real=True)


def _grid(resolution: int, dim: int) -> list[np.ndarray]:
    line = np.linspace(0.0, 1.0, resolution)
    return np.meshgrid(*([line] * dim), indexing="ij")


def _field(expr: sympy.Expr, resolution: int, dim: int) -> np.ndarray:
    values = sympy.lambdify(X[:dim], expr, "numpy")(*_grid(resolution, dim))
    return np.broadcast_to(np.asarray(values, dtype=np.result_type(values, np.float64)), (resolution,) * dim)


def _order(errors: list[float], resolutions: list[int]) -> float:
    """Observed order between the two finest grids, after checking that every refinement helped."""
    assert all(fine < coarse for coarse, fine in zip(errors, errors[1:])), errors
    h = [fd.grid_spacing(k) for k in resolutions[-2:]]
    return float(np.log(errors[-2] / errors[-1]) / np.log(h[0] / h[1]))


def _bubble(dim: int) -> sympy.Expr:
    """A smooth, non-separable function that vanishes on the boundary of the unit square/cube."""
    u = sympy.exp(X[0] - X[1] / 2)
    for j in range(dim):
        u *= sympy.sin(sympy.pi * X[j])
    return u


def _diffusion_error(resolution: int, dim: int) -> float:
    a = 1 + X[0] ** 2 + sympy.sin(2 * sympy.pi * X[1]) / 2 + (X[2] / 3 if dim == 3 else 0)
    u = _bubble(dim)
    f = -sum(sympy.diff(a * sympy.diff(u, X[j]), X[j]) for j in range(dim))
    h = fd.grid_spacing(resolution)
    matrix = fd.diffusion_matrix(_field(a, resolution, dim), h)
    numeric = spla.spsolve(matrix.tocsc(), fd.interior(_field(f, resolution, dim)).ravel())
    return float(np.abs(numeric - fd.interior(_field(u, resolution, dim)).ravel()).max())


@pytest.mark.parametrize("dim, resolutions", [(2, [17, 33, 65]), (3, [9, 17, 25])])
def test_variable_diffusion_is_second_order(dim: int, resolutions: list[int]) -> None:
    """-div(a grad u) with face-averaged a converges at order 2 (max-norm) in 2D and 3D.

    The observed slope of a smooth problem lies within 0.15 of the design order once h <= 1/16.
    """
    errors = [_diffusion_error(k, dim) for k in resolutions]
    assert abs(_order(errors, resolutions) - 2.0) < 0.15, errors


def _convection_error(resolution: int, dim: int, scheme: str) -> float:
    eps = sympy.Rational(1, 2)
    velocity = [sympy.cos(sympy.pi * X[1]) + 1, -sympy.sin(2 * sympy.pi * X[0]), X[0] - X[1]][:dim]
    u = _bubble(dim)
    f = sum(-eps * sympy.diff(u, X[j], 2) + velocity[j] * sympy.diff(u, X[j]) for j in range(dim))
    h = fd.grid_spacing(resolution)
    v = np.stack([_field(c, resolution, dim) for c in velocity])
    matrix = float(eps) * fd.diffusion_matrix(np.ones((resolution,) * dim), h) + fd.convection_matrix(v, h, scheme)
    numeric = spla.spsolve(matrix.tocsc(), fd.interior(_field(f, resolution, dim)).ravel())
    return float(np.abs(numeric - fd.interior(_field(u, resolution, dim)).ravel()).max())


@pytest.mark.parametrize(
    "dim, scheme, order, resolutions",
    [(2, "central", 2.0, [17, 33, 65]), (2, "upwind", 1.0, [17, 33, 65]), (3, "central", 2.0, [9, 17, 25]),
     (3, "upwind", 1.0, [9, 17, 25])],
)
def test_convection_diffusion_orders(dim: int, scheme: str, order: float, resolutions: list[int]) -> None:
    """-eps Laplace u + v.grad u: central differences converge at order 2, upwind at order 1.

    Tolerance 0.15: first-order upwinding has an O(h^2) part that still lowers the 3D slope to about
    0.88 between h = 1/16 and 1/24.
    """
    errors = [_convection_error(k, dim, scheme) for k in resolutions]
    assert abs(_order(errors, resolutions) - order) < 0.15, errors


def _helmholtz_error(resolution: int, dim: int, boundary: str) -> float:
    k = 6 + 2 * X[0] * X[1]  # k^2 from 36 to 64: above the first Dirichlet eigenvalue, so indefinite
    h = fd.grid_spacing(resolution)
    if boundary == "dirichlet":
        u = _bubble(dim)
    else:  # a plane wave times a smooth envelope, not satisfying the boundary condition by itself
        u = sympy.exp(sympy.I * (5 * X[0] + 3 * X[1])) * (1 + X[0] * X[dim - 1] / 2)
    f = -sum(sympy.diff(u, X[j], 2) for j in range(dim)) - k**2 * u
    matrix = fd.helmholtz_matrix(_field(k**2, resolution, dim), h, boundary)
    exact = _field(u, resolution, dim)
    if boundary == "dirichlet":
        numeric = spla.spsolve(matrix.tocsc(), fd.interior(_field(f, resolution, dim)).ravel())
        return float(np.abs(numeric - fd.interior(exact).ravel()).max())
    g = np.zeros((resolution,) * dim, dtype=np.complex128)
    for j in range(dim):  # du/dn - i k u on the faces x_j = 0 (n = -e_j) and x_j = 1 (n = +e_j)
        for side, sign in ((0, -1), (-1, 1)):
            data = _field(sign * sympy.diff(u, X[j]) - sympy.I * k * u, resolution, dim)
            face = tuple(side if ax == j else slice(None) for ax in range(dim))
            g[face] += data[face]
    numeric = spla.spsolve(matrix.tocsc(), fd.impedance_rhs(_field(f, resolution, dim), g, h))
    return float(np.abs(numeric - exact.ravel()).max())


@pytest.mark.parametrize(
    "dim, boundary, resolutions",
    [(2, "dirichlet", [17, 33, 65]), (2, "impedance", [17, 33, 65]), (3, "dirichlet", [9, 17, 25]),
     (3, "impedance", [9, 13, 17])],
)
def test_helmholtz_is_second_order(dim: int, boundary: str, resolutions: list[int]) -> None:
    """Indefinite -Laplace u - k(x)^2 u converges at order 2 with Dirichlet and impedance boundaries.

    The impedance case checks the ghost-point elimination, the weighting and the boundary data;
    tolerance 0.15 as for diffusion (observed slopes lie within 0.07 of 2).
    """
    errors = [_helmholtz_error(k, dim, boundary) for k in resolutions]
    assert abs(_order(errors, resolutions) - 2.0) < 0.15, errors


def test_impedance_matrix_is_complex_symmetric() -> None:
    """The trapezoidal row weights make the impedance Helmholtz matrix equal to its transpose (exactly)."""
    rng = np.random.default_rng(0)
    for dim, resolution in ((2, 7), (3, 5)):
        matrix = fd.helmholtz_matrix(30 + rng.random((resolution,) * dim), 0.1, "impedance")
        assert abs(matrix - matrix.T).max() == 0.0


def test_diffusion_matrix_is_symmetric_positive_definite() -> None:
    """Face averaging gives a symmetric matrix; with a > 0 its smallest eigenvalue is positive."""
    rng = np.random.default_rng(1)
    a = 0.1 + rng.random((8, 8))
    matrix = fd.diffusion_matrix(a, 1 / 7).toarray()
    assert np.array_equal(matrix, matrix.T)
    assert np.linalg.eigvalsh(matrix).min() > 0


def test_realify_solves_the_same_system() -> None:
    """The real 2n form of a complex system has the complex solution, interleaved (to rounding)."""
    rng = np.random.default_rng(2)
    resolution = 9
    h = fd.grid_spacing(resolution)
    matrix = fd.helmholtz_matrix(40 + 10 * rng.random((resolution, resolution)), h, "impedance")
    rhs = rng.standard_normal(resolution**2) + 1j * rng.standard_normal(resolution**2)
    complex_solution = spla.spsolve(matrix.tocsc(), rhs)
    real_solution = spla.spsolve(fd.realify(matrix).tocsc(), fd.realify_vector(rhs))
    np.testing.assert_allclose(fd.complexify_vector(real_solution), complex_solution, rtol=0, atol=1e-12 *
                               np.abs(complex_solution).max())


@pytest.mark.parametrize("dim, resolution", [(2, 7), (3, 5)])
def test_dirichlet_eigenvalues_match_the_matrix(dim: int, resolution: int) -> None:
    """The closed-form eigenvalues equal those of the assembled Dirichlet Laplacian (to 1e-10 relative)."""
    h = fd.grid_spacing(resolution)
    dense = fd.diffusion_matrix(np.ones((resolution,) * dim), h).toarray()
    np.testing.assert_allclose(fd.dirichlet_laplacian_eigenvalues(resolution, dim), np.linalg.eigvalsh(dense),
                               rtol=1e-10)


def test_embed_interior_roundtrip() -> None:
    """embed_interior puts interior values back in place with an exactly zero boundary."""
    values = np.arange(2 * 27, dtype=float).reshape(2, 27)
    full = fd.embed_interior(values, 5, 3)
    assert full.shape == (2, 5, 5, 5)
    np.testing.assert_array_equal(fd.interior(full[0]).ravel(), values[0])
    full[:, 1:-1, 1:-1, 1:-1] = 0
    assert not full.any()
