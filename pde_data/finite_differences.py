"""Sparse finite-difference operators on the unit square / cube, in 2D and 3D.

Every operator acts on a uniform vertex grid with ``K`` points per side, ``h = 1 / (K - 1)``, the first
array axis being ``x``. Fields are passed on the full grid (boundary included) as arrays of shape
``(K,) * d``; unknowns are numbered in C (row-major) order.

* Dirichlet problems (:func:`diffusion_matrix`, :func:`convection_matrix`, :func:`helmholtz_matrix`
  with ``boundary="dirichlet"``) have the ``(K - 2) ** d`` interior nodes as unknowns, with ``u = 0`` on
  the boundary.
* The impedance (first-order absorbing) Helmholtz problem (:func:`helmholtz_matrix` with
  ``boundary="impedance"``) has all ``K ** d`` nodes as unknowns; the boundary condition
  ``du/dn - i k u = g`` is imposed with ghost points and central differences (second order), and each
  row is scaled by its trapezoidal weight so that the matrix is complex symmetric.
  :func:`realify` turns the complex system into an equivalent real one of twice the size.

Design orders (checked by the tests on manufactured solutions): 2 for diffusion (face-averaged
coefficients), Helmholtz (both boundaries) and central convection; 1 for upwind convection.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from solvers.errors import ConfigError

Boundary = Literal["dirichlet", "impedance"]
Scheme = Literal["central", "upwind"]


def grid_spacing(resolution: int) -> float:
    """Mesh width ``h = 1 / (K - 1)`` of a vertex grid with ``K = resolution`` points per side."""
    return 1.0 / (int(resolution) - 1)


def interior(field: np.ndarray) -> np.ndarray:
    """The interior nodes of a full-grid field (every axis without its first and last point)."""
    return field[(slice(1, -1),) * field.ndim]


def embed_interior(values: np.ndarray, resolution: int, dim: int) -> np.ndarray:
    """Put interior unknowns (flat or shaped) back on the full grid with zeros on the boundary.

    Parameters
    ----------
    values
        ``(K - 2) ** d`` interior values, or a batch ``(..., (K - 2) ** d)``.
    resolution, dim
        ``K`` and ``d``.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., K, ..., K)`` with ``d`` grid axes.
    """
    n = resolution - 2
    values = np.asarray(values)
    batch = values.shape[:-1] if values.shape[-1] == n**dim else values.shape[:-dim]
    out = np.zeros(batch + (resolution,) * dim, dtype=values.dtype)
    out[(...,) + (slice(1, -1),) * dim] = values.reshape(batch + (n,) * dim)
    return out


def _axis_slice(ndim: int, axis: int, piece: slice) -> tuple[slice, ...]:
    index = [slice(None)] * ndim
    index[axis] = piece
    return tuple(index)


def _check_field(field: np.ndarray, name: str, min_points: int = 3) -> np.ndarray:
    field = np.asarray(field, dtype=np.float64)
    if field.ndim not in (2, 3) or len(set(field.shape)) != 1 or field.shape[0] < min_points:
        raise ConfigError(f"{name} must be a square 2D or cubic 3D grid with at least {min_points} points "
                          f"per side (got shape {field.shape})")
    return field


def _couple(rows: list, cols: list, vals: list, index: np.ndarray, axis: int, weight: np.ndarray) -> None:
    """Append the symmetric off-diagonal entries ``-weight`` between neighbours along ``axis``."""
    lo = index[_axis_slice(index.ndim, axis, slice(None, -1))].ravel()
    hi = index[_axis_slice(index.ndim, axis, slice(1, None))].ravel()
    w = np.asarray(weight).ravel()
    rows += [lo, hi]
    cols += [hi, lo]
    vals += [-w, -w]


def diffusion_matrix(a: np.ndarray, h: float) -> sp.csr_matrix:
    """Matrix of ``-div(a grad u)`` with ``u = 0`` on the boundary (5-point 2D / 7-point 3D).

    The coefficient on the face between two nodes is the arithmetic mean of the nodal values, as
    in the classic FNO Darcy generator.

    Parameters
    ----------
    a
        Coefficient on the full vertex grid, shape ``(K,) * d``, ``d`` in {2, 3}.
    h
        Mesh width.

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape ``(n, n)`` with ``n = (K - 2) ** d``; symmetric, positive definite when ``a > 0``.
    """
    a = _check_field(a, "coefficient")
    d, n = a.ndim, a.shape[0] - 2
    index = np.arange(n**d).reshape((n,) * d)
    diag = np.zeros((n,) * d)
    rows: list = []
    cols: list = []
    vals: list = []
    for axis in range(d):
        # faces along `axis` between full-grid nodes j and j + 1, restricted to interior rows elsewhere
        other = tuple(slice(1, -1) if ax != axis else slice(None) for ax in range(d))
        line = a[other]
        face = 0.5 * (line[_axis_slice(d, axis, slice(None, -1))] + line[_axis_slice(d, axis, slice(1, None))])
        diag += face[_axis_slice(d, axis, slice(None, -1))] + face[_axis_slice(d, axis, slice(1, None))]
        _couple(rows, cols, vals, index, axis, face[_axis_slice(d, axis, slice(1, -1))])
    rows.append(index.ravel())
    cols.append(index.ravel())
    vals.append(diag.ravel())
    matrix = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n**d,) * 2)
    return (matrix.tocsr() / h**2).tocsr()


def convection_matrix(velocity: np.ndarray, h: float, scheme: Scheme = "central") -> sp.csr_matrix:
    """Matrix of ``v . grad u`` at the interior nodes with ``u = 0`` on the boundary.

    Parameters
    ----------
    velocity
        Shape ``(d, K, ..., K)``: component ``velocity[j]`` along axis ``j`` at every vertex.
    h
        Mesh width.
    scheme
        ``"central"`` (second order, non-symmetric) or ``"upwind"`` (first order, one-sided
        difference against the flow; with diffusion gives an M-matrix for any cell Péclet number).

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape ``(n, n)``, ``n = (K - 2) ** d``.
    """
    velocity = np.asarray(velocity, dtype=np.float64)
    d = velocity.ndim - 1
    if velocity.shape[0] != d:
        raise ConfigError(f"velocity must have shape (d, K, ..., K) with d = {d} components "
                          f"(got shape {velocity.shape})")
    _check_field(velocity[0], "velocity")
    if scheme not in ("central", "upwind"):
        raise ConfigError(f"convection scheme must be 'central' or 'upwind' (got {scheme!r})")
    n = velocity.shape[1] - 2
    index = np.arange(n**d).reshape((n,) * d)
    rows: list = [index.ravel()]
    cols: list = [index.ravel()]
    diag = np.zeros((n,) * d)
    vals: list = []
    for axis in range(d):
        v = interior(velocity[axis])
        lo = index[_axis_slice(d, axis, slice(None, -1))]  # node p, neighbour p + e
        hi = index[_axis_slice(d, axis, slice(1, None))]  # node p + e, neighbour p
        v_lo = v[_axis_slice(d, axis, slice(None, -1))]
        v_hi = v[_axis_slice(d, axis, slice(1, None))]
        if scheme == "central":
            forward, backward = v_lo / (2 * h), -v_hi / (2 * h)
        else:
            forward = np.minimum(v_lo, 0.0) / h  # v < 0 looks downstream (to p + e)
            backward = -np.maximum(v_hi, 0.0) / h  # v > 0 looks upstream (to p - e)
            diag += np.abs(v) / h
        rows += [lo.ravel(), hi.ravel()]
        cols += [hi.ravel(), lo.ravel()]
        vals += [forward.ravel(), backward.ravel()]
    vals.insert(0, diag.ravel())
    matrix = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n**d,) * 2)
    return matrix.tocsr()


def boundary_weights(resolution: int, dim: int) -> np.ndarray:
    """Trapezoidal weights of the full vertex grid: 1/2 per boundary face a node lies on.

    Returns
    -------
    numpy.ndarray
        Shape ``(K,) * d``: 1 inside, 1/2 on faces, 1/4 on 2D corners / 3D edges, 1/8 on 3D corners.
    """
    line = np.ones(resolution)
    line[[0, -1]] = 0.5
    weights = line
    for _ in range(dim - 1):
        weights = np.multiply.outer(weights, line)
    return weights


def _boundary_count(resolution: int, dim: int) -> np.ndarray:
    """Number of boundary faces each vertex lies on (0 inside, up to ``d`` at corners)."""
    line = np.zeros(resolution)
    line[[0, -1]] = 1.0
    count = np.zeros((resolution,) * dim)
    for axis in range(dim):
        shape = [1] * dim
        shape[axis] = resolution
        count = count + line.reshape(shape)
    return count


def helmholtz_matrix(k2: np.ndarray, h: float, boundary: Boundary = "dirichlet") -> sp.csr_matrix:
    """Matrix of the Helmholtz operator ``-Laplace(u) - k(x)^2 u``.

    Parameters
    ----------
    k2
        Squared wavenumber on the full vertex grid, shape ``(K,) * d``. Must be positive for the
        impedance boundary (its square root is the boundary's wavenumber).
    h
        Mesh width.
    boundary
        ``"dirichlet"``: ``u = 0``, interior unknowns, real symmetric, indefinite once
        ``k^2`` exceeds the smallest Dirichlet eigenvalue (``d * pi^2``); singular at resonances.
        ``"impedance"``: ``du/dn - i k u = g`` on every face, all nodes unknown, complex symmetric
        (rows scaled by :func:`boundary_weights`), uniquely solvable for ``k > 0``.

    Returns
    -------
    scipy.sparse.csr_matrix
        Real ``(K - 2) ** d`` square for Dirichlet; complex ``K ** d`` square for impedance.
    """
    k2 = _check_field(k2, "squared wavenumber")
    d, resolution = k2.ndim, k2.shape[0]
    if boundary == "dirichlet":
        laplace = diffusion_matrix(np.ones_like(k2), h)
        return (laplace - sp.diags(interior(k2).ravel())).tocsr()
    if boundary != "impedance":
        raise ConfigError(f"Helmholtz boundary must be 'dirichlet' or 'impedance' (got {boundary!r})")
    if np.any(k2 <= 0):
        raise ConfigError("the impedance Helmholtz boundary needs a positive squared wavenumber everywhere")
    n = resolution
    index = np.arange(n**d).reshape((n,) * d)
    weights = boundary_weights(n, d)
    rows: list = []
    cols: list = []
    vals: list = []
    diag = np.full((n,) * d, 2.0 * d / h**2, dtype=np.complex128) - k2
    # ghost points: u_{-1} = u_1 + 2h (i k u_0 + g); eliminating them doubles the inward coupling
    # and adds -2ik/h per boundary face, so that after weighting the matrix is complex symmetric.
    diag = diag - 2j * np.sqrt(k2) / h * _boundary_count(n, d)
    for axis in range(d):
        lo_w = weights[_axis_slice(d, axis, slice(None, -1))]
        hi_w = weights[_axis_slice(d, axis, slice(1, None))]
        # the ghost doubles the inward coupling of a boundary node whose weight is half its
        # neighbour's, so the weighted coupling is symmetric: max(w_lo, w_hi) / h^2
        _couple(rows, cols, vals, index, axis, np.maximum(lo_w, hi_w) / h**2)
    rows.append(index.ravel())
    cols.append(index.ravel())
    vals.append((weights * diag).ravel())
    data = np.concatenate([np.asarray(v, dtype=np.complex128) for v in vals])
    return sp.coo_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(n**d,) * 2).tocsr()


def impedance_rhs(f: np.ndarray, g: np.ndarray | None, h: float) -> np.ndarray:
    """Right-hand side matching :func:`helmholtz_matrix` with ``boundary="impedance"``.

    Parameters
    ----------
    f
        Source on the full vertex grid, shape ``(K,) * d`` (real or complex).
    g
        Boundary data of ``du/dn - i k u = g`` on the full grid (only boundary values are used;
        at corners/edges ``g`` holds the sum over the faces meeting there), or ``None`` for 0.
    h
        Mesh width.

    Returns
    -------
    numpy.ndarray
        Complex vector of length ``K ** d``: ``w * (f + 2 g / h)`` with trapezoidal weights ``w``.
    """
    f = np.asarray(f, dtype=np.complex128)
    total = f if g is None else f + 2.0 / h * np.where(_boundary_count(f.shape[0], f.ndim) > 0, g, 0.0)
    return (boundary_weights(f.shape[0], f.ndim) * total).ravel()


def realify(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Real form of a complex matrix: unknown ``j`` becomes the pair ``(Re u_j, Im u_j)``.

    Entry ``a + ib`` becomes the 2x2 block ``[[a, -b], [b, a]]``; real and imaginary parts of each
    unknown stay adjacent, so the sparsity pattern (and fill of a direct solver) stays local.
    """
    matrix = sp.csr_matrix(matrix)
    rotate = sp.csr_matrix(np.array([[0.0, -1.0], [1.0, 0.0]]))
    return (sp.kron(matrix.real, sp.identity(2)) + sp.kron(matrix.imag, rotate)).tocsr()


def realify_vector(vector: np.ndarray) -> np.ndarray:
    """Interleave ``(Re v_j, Im v_j)`` to match :func:`realify`."""
    vector = np.asarray(vector, dtype=np.complex128)
    return np.stack([vector.real, vector.imag], axis=-1).reshape(vector.shape[:-1] + (-1,))


def complexify_vector(vector: np.ndarray) -> np.ndarray:
    """Inverse of :func:`realify_vector`."""
    pairs = np.asarray(vector, dtype=np.float64).reshape(vector.shape[:-1] + (-1, 2))
    return pairs[..., 0] + 1j * pairs[..., 1]


def first_dirichlet_eigenvalue(resolution: int, dim: int) -> float:
    """The smallest eigenvalue of the discrete Dirichlet Laplacian, ``dim (4 / h^2) sin^2(pi h / 2)``.

    Equals ``dirichlet_laplacian_eigenvalues(resolution, dim)[0]`` (the same sum of equal terms)
    without building the others.
    """
    h = grid_spacing(resolution)
    line = 4.0 / h**2 * np.sin(np.pi * h / 2) ** 2
    total = line
    for _ in range(dim - 1):
        total = total + line
    return float(total)


def dirichlet_laplacian_eigenvalues(resolution: int, dim: int) -> np.ndarray:
    """All eigenvalues of :func:`diffusion_matrix` with ``a = 1`` (the discrete Dirichlet Laplacian).

    ``lambda = (4 / h^2) * sum_j sin^2(p_j pi h / 2)`` for ``p_j = 1 .. K - 2``; sorted ascending.
    Used to detect resonant Dirichlet Helmholtz set-ups without factorising anything.
    """
    h = grid_spacing(resolution)
    p = np.arange(1, resolution - 1)
    line = 4.0 / h**2 * np.sin(p * np.pi * h / 2) ** 2
    total = line
    for _ in range(dim - 1):
        total = np.add.outer(total, line)
    return np.sort(total.ravel())
