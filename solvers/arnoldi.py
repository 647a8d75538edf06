"""One cycle of the (augmented) Arnoldi process with classical Gram-Schmidt and a lagged second pass.

GCRO-DR and GMRES spend most of an iteration orthogonalising the new vector ``q = A M^-1 z_j``
against the basis ``R = [C; w_1 ... w_j]`` (rows of a C-ordered buffer). Classical Gram-Schmidt
needs a second pass to be as accurate as Householder ("twice is enough"), which doubles the
memory traffic. Here the second pass of each vector is *lagged* by one iteration and fused with
the first pass of the next one (the DCGS2 idea of Swirydowicz et al. 2021 and Bielich et al.
2022), so that one iteration reads ``R`` twice in all — one two-column ``R^H [z_j, q]`` and one
two-column update — and every basis vector still gets two full passes:

* the once-orthogonalised, normalised candidate ``z_j`` is the *domain* vector of step ``j``
  (``q = A M^-1 z_j`` is exact for it);
* its second pass against ``R`` gives the orthonormal *range* vector ``w_j``, with
  ``z_j = R a_j + nu_j w_j`` recorded;
* ``A M^-1 Z_k = [C, W_{k+1}] [B; Hbar]`` then holds with ``W`` orthonormal, the flexible form of
  the Arnoldi relation (Saad's FGMRES, Carvalho et al.'s FGCRO-DR), and ``[C, W]^H Z_k`` is known
  from the recorded ``a_j, nu_j`` at no cost.

The Hessenberg column of step ``j`` is complete once ``w_{j+1}`` exists, i.e. one step later (or
after one extra pass when the cycle ends); the convergence test uses the provisional column,
which differs from the final one only at the level of the orthogonality defect.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import scipy.linalg as la

_EPS = np.finfo(np.float64).eps
#: BLAS "conjugate transpose" flag (a plain transpose for real data)
CONJ_TRANSPOSE = 2


def vector_norm(v: np.ndarray) -> float:
    """Euclidean norm of a real or complex vector."""
    return math.sqrt(np.vdot(v, v).real)


@dataclasses.dataclass
class ArnoldiCycle:
    """The Krylov decomposition of one cycle: ``A M^-1 Z_k = [C, W_{k+1}] [B; Hbar]``.

    Attributes
    ----------
    k
        Steps taken.
    Hbar, B
        ``(k + 1, k)`` coefficients on ``w_1 .. w_{k+1}`` and ``(p, k)`` on ``C``.
    ZW
        ``(p + k + 1, k)``: ``[C, W_{k+1}]^H Z_k``.
    y
        Least-squares solution ``argmin ||beta e_1 - Hbar y||``.
    residual
        ``||beta e_1 - Hbar y||``, the new residual norm.
    """

    k: int
    Hbar: np.ndarray
    B: np.ndarray
    ZW: np.ndarray
    y: np.ndarray
    residual: float


class _Rotations:
    """Givens rotations triangularising the Hessenberg columns as they are completed."""

    def __init__(self, s: int, beta: float, dtype: np.dtype) -> None:
        self.c: list[float] = []
        self.s: list[complex] = []
        self.g: list[complex] = [beta] + [0.0] * s
        self.R = np.zeros((s, s), dtype)

    def estimate(self, col: list) -> float:
        """Residual norm if ``col`` (a provisional column) were the next one."""
        col = self._rotate(list(col))
        _, sn, _ = givens(col[-2], col[-1])
        return abs(sn.conjugate() * self.g[len(self.c)])

    def add(self, col: list) -> float:
        """Triangularise the next column; returns the new residual norm."""
        j = len(self.c)
        col = self._rotate(list(col))
        c, sn, rho = givens(col[j], col[j + 1])
        self.c.append(c)
        self.s.append(sn)
        col[j] = rho
        self.R[: j + 1, j] = col[: j + 1]
        self.g[j], self.g[j + 1] = c * self.g[j], -sn.conjugate() * self.g[j]
        return abs(self.g[j + 1])

    def _rotate(self, col: list) -> list:
        for i, (c, sn) in enumerate(zip(self.c, self.s)):
            col[i], col[i + 1] = c * col[i] + sn * col[i + 1], -sn.conjugate() * col[i] + c * col[i + 1]
        return col


def arnoldi_cycle(apply: Callable[[np.ndarray], np.ndarray], W: np.ndarray, Z: np.ndarray, p: int, s: int,
                  beta: float, tol: float, blas: tuple[Callable, Callable], callback: Callable[[float], None] | None,
                  bnorm: float) -> ArnoldiCycle:
    """Up to ``s`` steps of Arnoldi on ``(I - C C^H) A M^-1`` from ``w_1 = W[p]`` (already set, unit norm).

    Parameters
    ----------
    apply
        ``z -> A M^-1 z`` (the caller counts the products).
    W
        ``(>= p + s + 2, n)`` rows ``[C; w_1; ...]``: ``C`` and ``w_1`` on entry, the range basis
        ``w_1 .. w_{k+1}`` on return (the row after it is scratch).
    Z
        ``(>= s, n)`` rows: the domain vectors ``z_1 .. z_k`` on return.
    p, s, beta, tol
        Recycle dimension, step limit, initial residual norm, and the residual norm that ends the cycle.
    blas
        ``(gemv, gemm)`` of the data type.
    callback, bnorm
        Called with the relative residual estimate after every step.
    """
    gemv, gemm = blas
    dtype = W.dtype
    H = np.zeros((s + 1, s), dtype)
    B = np.zeros((p, s), dtype)
    ZW = np.zeros((p + s + 1, s), dtype)
    rot = _Rotations(s, beta, dtype)
    Z[0] = W[p]
    ZW[p, 0] = 1.0  # z_1 = w_1
    eta, k, breakdown = 0.0, 0, False
    for j in range(1, s + 1):
        # rows p + j - 1 and p + j hold the candidate z_j (j > 1; its second pass is due) and q:
        # adjacent rows, so both are orthogonalised against R = [C; w_1 .. w_{j-1}] in one sweep
        pair = W[p + j - 1: p + j + 1]
        pair[1] = np.ravel(apply(Z[j - 1]))
        h0 = vector_norm(pair[1])
        if j == 1:
            R = W[: p + 1].T  # C and w_1, both final
            b = gemv(1.0, R, pair[1], trans=CONJ_TRANSPOSE)
            gemv(-1.0, R, b, beta=1.0, y=pair[1], overwrite_y=1)
            _set_column(B, H, 0, b, p)
        else:
            R = W[: p + j - 1].T
            ab = gemm(1.0, R, pair.T, trans_a=CONJ_TRANSPOSE)
            gemm(-1.0, R, ab, beta=1.0, c=pair.T, overwrite_c=1)
            nu = vector_norm(pair[0])
            pair[0] *= 1.0 / nu  # w_j
            _complete_column(B, H, ZW, j - 2, eta, ab[:, 0], nu, p)
            rot.add(H[:j, j - 2].tolist())
            c = np.vdot(pair[0], pair[1])
            pair[1] -= c * pair[0]
            _set_column(B, H, j - 1, np.append(ab[:, 1], c), p)
        eta = vector_norm(pair[1])
        breakdown = eta <= _EPS * h0
        H[j, j - 1] = eta
        k = j
        estimate = rot.estimate(H[: j + 1, j - 1].tolist())
        if callback is not None:
            callback(estimate / bnorm if bnorm > 0 else estimate)
        if breakdown or estimate <= tol or j == s:
            break
        pair[1] *= 1.0 / eta  # the candidate z_{j+1}, in w_{j+1}'s row until its second pass
        Z[j] = pair[1]
    # complete the last column: the second pass of the final candidate gives w_{k+1}
    last = W[p + k]
    if breakdown:
        H[k, k - 1] = 0.0
        last[:] = 0.0
    else:
        last *= 1.0 / eta
        R = W[: p + k].T
        a = gemv(1.0, R, last, trans=CONJ_TRANSPOSE)
        gemv(-1.0, R, a, beta=1.0, y=last, overwrite_y=1)
        nu = vector_norm(last)
        last *= 1.0 / nu
        _complete_column(B, H, None, k - 1, eta, a, nu, p)
    residual = rot.add(H[: k + 1, k - 1].tolist())
    y = _least_squares(rot.R[:k, :k], np.asarray(rot.g[:k], dtype), H[: k + 1, :k], beta)
    return ArnoldiCycle(k, H[: k + 1, :k], B[:, :k], ZW[: p + k + 1, :k], y, residual)


def _set_column(B: np.ndarray, H: np.ndarray, col: int, coef: np.ndarray, p: int) -> None:
    """Store a column's coefficients on ``C`` (first ``p``) and on ``w_1 ...`` (the rest)."""
    B[:, col] = coef[:p]
    H[: coef.size - p, col] = coef[p:]


def _complete_column(B: np.ndarray, H: np.ndarray, ZW: np.ndarray | None, col: int, eta: float, a: np.ndarray,
                     nu: float, p: int) -> None:
    """Column ``col`` had ``eta z_{col+2}``; with ``z_{col+2} = R a + nu w_{col+2}`` it is completed in ``[C; W]``."""
    B[:, col] += eta * a[:p]
    H[: a.size - p, col] += eta * a[p:]
    H[col + 1, col] = eta * nu
    if ZW is not None:  # the domain vector z_{col+2} in the range basis
        ZW[: a.size, col + 1] = a
        ZW[a.size, col + 1] = nu


def givens(a: complex, b: complex) -> tuple[float, complex, complex]:
    """Rotation ``[c s; -conj(s) c]`` (``c`` real) with ``[c s; -conj(s) c] @ [a, b] = [rho, 0]`` (as LAPACK's lartg)."""
    if b == 0:
        return 1.0, 0.0, a
    norm = math.hypot(abs(a), abs(b))
    phase = a / abs(a) if a != 0 else 1.0
    return abs(a) / norm, phase * b.conjugate() / norm, phase * norm


def _least_squares(Rt: np.ndarray, g: np.ndarray, Hbar: np.ndarray, beta: float) -> np.ndarray:
    """Solve the cycle's least-squares problem from its Givens-triangularised factor.

    Falls back to a dense least-squares solve when the triangle is singular (a singular ``A``).
    """
    diag = np.abs(np.diag(Rt))
    if diag.size and diag.min() > _EPS * diag.max():
        return la.solve_triangular(Rt, g, check_finite=False)
    rhs = np.zeros(Hbar.shape[0], Hbar.dtype)
    rhs[0] = beta
    return np.linalg.lstsq(Hbar, rhs, rcond=None)[0]
