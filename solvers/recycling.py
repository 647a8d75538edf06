"""Dense algebra of Krylov subspace recycling, shared by the GCRO-DR cycle.

* :func:`harmonic_ritz_vectors` picks the recycled directions of a cycle (the ``k`` harmonic Ritz
  vectors with the smallest ``|theta|``, complex pairs kept together, as a real basis);
* :func:`tall_qr` carries the recycled space to a new matrix (``A_new U = Q R``);
* :func:`inverse_transpose` turns ``U R^-1`` on row-stored vectors into one matrix product.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la


def harmonic_ritz_vectors(G: np.ndarray, WtV: np.ndarray, k: int) -> np.ndarray:
    """Real orthonormal basis of the ``k`` harmonic Ritz vectors with the smallest ``|theta|``.

    Solves the generalized eigenproblem ``G^H G z = theta G^H (W^H V) z`` of a GCRO-DR cycle
    (for the first cycle ``G = Hbar_m`` and ``W^H V = [I; 0]``, the GMRES-DR harmonic Ritz problem).
    For real data a complex pair contributes the real and imaginary parts of one vector, and pairs
    are never split: if only one slot is left for a pair, the basis stops at ``k - 1`` columns.
    For complex data the eigenvectors themselves form the basis.

    Parameters
    ----------
    G, WtV
        ``(d + 1, d)`` matrices of the cycle.
    k
        Number of vectors wanted.

    Returns
    -------
    ndarray
        ``(d, k')`` with orthonormal columns, ``k' <= min(k, d)``.
    """
    d = G.shape[1]
    if k <= 0 or d == 0:
        return np.zeros((d, 0), G.dtype)
    gram, cross = G.conj().T @ G, G.conj().T @ WtV
    try:
        # G has full column rank, so G^T G is SPD and the problem is the standard one
        # (G^T G)^-1 G^T W^T V z = (1 / theta) z: half the cost of the QZ algorithm
        mu, vecs = np.linalg.eig(la.cho_solve(la.cho_factor(gram, check_finite=False), cross, check_finite=False))
        with np.errstate(divide="ignore", invalid="ignore"):
            theta = 1.0 / mu
    except la.LinAlgError:
        theta, vecs = la.eig(gram, cross)
    size = np.abs(theta)
    size[~np.isfinite(size)] = np.inf
    cols: list[np.ndarray] = []
    used = np.zeros(d, dtype=bool)
    complex_data = np.iscomplexobj(G) or np.iscomplexobj(WtV)
    for i in np.argsort(size, kind="stable").tolist():
        if len(cols) >= k or not np.isfinite(size[i]):
            break
        if used[i]:
            continue
        used[i] = True
        if complex_data:  # a complex basis takes the eigenvector itself
            cols.append(vecs[:, i])
            continue
        if abs(theta[i].imag) <= 1e-12 * max(size[i], 1e-300):
            cols.append(vecs[:, i].real)
            continue
        used[_conjugate_partner(theta, i, used)] = True
        if len(cols) + 2 > k:
            break
        cols += [vecs[:, i].real, vecs[:, i].imag]
    if not cols:
        return np.zeros((d, 0), G.dtype)
    Q, R = np.linalg.qr(np.column_stack(cols))
    rank = int(np.sum(np.abs(np.diag(R)) > 1e-12 * np.abs(R[0, 0])))
    return Q[:, :rank]


def _conjugate_partner(theta: np.ndarray, i: int, used: np.ndarray) -> int:
    """Index of the conjugate of the complex ``theta[i]`` among the unused eigenvalues.

    LAPACK's real eigensolvers return a conjugate pair consecutively, so the two neighbours are
    tried first; the nearest unused value is the fallback.
    """
    target = np.conj(theta[i])
    for guess in (i + 1, i - 1):
        if 0 <= guess < theta.size and not used[guess] and abs(theta[guess] - target) <= 1e-8 * abs(target):
            return guess
    return int(np.where(~used, np.abs(theta - target), np.inf).argmin())


def tall_qr(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin QR of a tall ``(n, p)`` block, ``Y[:, keep] = Q R``, dropping dependent columns.

    CholeskyQR2 (two Gram-matrix passes, BLAS-3 only) when ``Y`` is well conditioned, which is the
    usual case of ``A_new U`` with ``A_old U`` orthonormal; pivoted Householder QR otherwise.
    """
    try:
        R1 = la.cholesky(Y.conj().T @ Y)
        Q = Y @ inverse_transpose(R1).T
        R2 = la.cholesky(Q.conj().T @ Q)
        Q = Q @ inverse_transpose(R2).T
        R = R2 @ R1
        diag = np.abs(np.diag(R))
        if diag.min() > 1e-6 * diag.max():
            return Q, R, np.arange(Y.shape[1])
    except la.LinAlgError:
        pass
    Q, R, piv = la.qr(Y, mode="economic", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > 1e-12 * diag[0])) if diag.size and diag[0] > 0 else 0
    return Q[:, :rank], R[:rank, :rank], piv[:rank]


def inverse_transpose(R: np.ndarray) -> np.ndarray:
    """``R^-T`` of a small upper-triangular ``R``, so that ``U R^-1`` on row-stored ``U`` is one GEMM."""
    return la.solve_triangular(R, np.eye(R.shape[0]), trans="T")
