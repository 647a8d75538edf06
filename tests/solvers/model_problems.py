"""Small sparse test matrices with known character, shared by the solver tests.

Independent of :mod:`pde_data` on purpose: the solver tests must not depend on the families.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def laplacian_2d(n: int) -> sp.csr_matrix:
    """5-point Dirichlet Laplacian on an ``n x n`` interior grid, h = 1/(n+1): SPD."""
    e = np.ones(n)
    T = sp.diags([-e[:-1], 2 * e, -e[:-1]], [-1, 0, 1])
    eye = sp.identity(n)
    return ((sp.kron(T, eye) + sp.kron(eye, T)) * (n + 1) ** 2).tocsr()


def convection_diffusion_2d(n: int, velocity: float) -> sp.csr_matrix:
    """``-Lap u + velocity * du/dx`` with central differences: non-symmetric."""
    e = np.ones(n)
    D = sp.diags([-e[:-1], e[:-1]], [-1, 1]) * ((n + 1) / 2)
    return (laplacian_2d(n) + velocity * sp.kron(D, sp.identity(n))).tocsr()


def helmholtz_2d(n: int, k2: float) -> sp.csr_matrix:
    """``-Lap u - k2 u``: symmetric indefinite once ``k2`` exceeds the smallest Laplacian eigenvalue."""
    return (laplacian_2d(n) - k2 * sp.identity(n * n)).tocsr()


def varying_coefficient_2d(n: int, a: np.ndarray) -> sp.csr_matrix:
    """``-div(a grad u)`` with face-averaged coefficient ``a`` on an ``n x n`` interior grid: SPD."""
    a = np.asarray(a, dtype=float).reshape(n, n)
    h2 = (n + 1) ** 2
    ax = np.pad(a, ((1, 1), (0, 0)), mode="edge")
    ay = np.pad(a, ((0, 0), (1, 1)), mode="edge")
    west = 0.5 * (ax[:-2] + ax[1:-1])
    east = 0.5 * (ax[2:] + ax[1:-1])
    south = 0.5 * (ay[:, :-2] + ay[:, 1:-1])
    north = 0.5 * (ay[:, 2:] + ay[:, 1:-1])
    idx = np.arange(n * n).reshape(n, n)
    rows, cols, vals = [idx.ravel()], [idx.ravel()], [(west + east + south + north).ravel() * h2]
    for coef, di, dj in ((west, -1, 0), (east, 1, 0), (south, 0, -1), (north, 0, 1)):
        i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        ok = (i + di >= 0) & (i + di < n) & (j + dj >= 0) & (j + dj < n)
        rows.append(idx[ok])
        cols.append(idx[i[ok] + di, j[ok] + dj])
        vals.append(-coef[ok] * h2)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n, n * n))


def rhs(n_unknowns: int, seed: int = 0) -> np.ndarray:
    """A reproducible random right-hand side."""
    return np.random.default_rng(seed).standard_normal(n_unknowns)


def damped_helmholtz_2d(n: int, k2: float, damping: np.ndarray | float) -> sp.csr_matrix:
    """``-Lap u - k2 (1 + i damping) u``: complex symmetric (not Hermitian), indefinite real part."""
    shift = k2 * (1.0 + 1j * np.broadcast_to(np.asarray(damping, dtype=float), (n * n,)))
    return (laplacian_2d(n).astype(np.complex128) - sp.diags(shift)).tocsr()


def complex_rhs(n_unknowns: int, seed: int = 0) -> np.ndarray:
    """A reproducible random complex right-hand side."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n_unknowns) + 1j * rng.standard_normal(n_unknowns)
