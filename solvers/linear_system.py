"""Small facts about a linear system ``A x = b`` shared by every solver in this package.

How to multiply by ``A`` (sparse matrix, dense array or ``LinearOperator``), how to recognise that a
sequence hands us the same matrix again (a cheap checksum, so recycled spaces and factorizations
are reused only when that is valid), and the true relative residual used to verify every answer.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from solvers.errors import ConfigError, SolverError

Operator = Any  # scipy sparse matrix/array, dense ndarray or LinearOperator


def as_matvec(A: Operator) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``v -> A @ v`` for a sparse matrix, a dense array or a ``LinearOperator``."""
    if sp.issparse(A) or isinstance(A, np.ndarray):
        return A.__matmul__
    if isinstance(A, LinearOperator) or hasattr(A, "matvec"):
        return A.matvec
    raise ConfigError(f"A must be a sparse matrix, a dense array or a LinearOperator (got {type(A).__name__})")


def as_matmat(A: Operator) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``X -> A @ X`` for an ``(n, p)`` block of vectors (one BLAS/sparse call when possible)."""
    if sp.issparse(A) or isinstance(A, np.ndarray):
        return A.__matmul__
    if isinstance(A, LinearOperator):
        return A.matmat
    matvec = as_matvec(A)
    return lambda X: np.column_stack([matvec(X[:, i]) for i in range(X.shape[1])])


def fingerprint(A: Operator) -> tuple:
    """Cheap identity of a matrix's contents, to detect that a sequence reuses the same matrix.

    Sparse and dense matrices are identified by shape and CRC-32 checksums of their arrays (about
    the cost of two or three matrix-vector products); a ``LinearOperator`` only by object identity.
    Two different matrices collide with probability ~2**-32; a collision costs speed, not
    correctness, because every answer's true residual is checked.
    """
    if sp.issparse(A):
        A = A if A.format == "csr" else A.tocsr()
        arrays = (A.data, A.indices, A.indptr)
    elif isinstance(A, np.ndarray):
        arrays = (A,)
    else:
        return ("object", id(A))
    sums = tuple(zlib.crc32(np.ascontiguousarray(a)) for a in arrays)
    return ("array", A.shape, sums)


def relative_residual(A: Operator, x: np.ndarray, b: np.ndarray, bnorm: float | None = None) -> float:
    """True relative residual ``||b - A x|| / ||b||`` (the absolute residual when ``b = 0``)."""
    bnorm = float(np.linalg.norm(b)) if bnorm is None else bnorm
    r = float(np.linalg.norm(b - as_matvec(A)(x)))
    return r / bnorm if bnorm > 0 else r


def check_system(A: Operator, b: np.ndarray) -> np.ndarray:
    """Return ``b`` as a float64 (complex128 if complex) vector after checking shapes and finiteness.

    Raises
    ------
    ConfigError
        If ``A`` is not square or ``b`` does not match it.
    SolverError
        If ``A`` or ``b`` holds NaN or infinity (a solve could only produce garbage).
    """
    shape = getattr(A, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != shape[1]:
        raise ConfigError(f"A must be a square matrix (got shape {shape})")
    b = np.asarray(b)
    b = b.astype(np.complex128 if np.iscomplexobj(b) else np.float64, copy=False).reshape(-1)
    if b.shape[0] != shape[0]:
        raise ConfigError(f"b must have {shape[0]} entries to match A (got {b.shape[0]})")
    if not np.all(np.isfinite(b)):
        raise SolverError("the right-hand side holds non-finite values")
    data = A.data if sp.issparse(A) else A if isinstance(A, np.ndarray) else None
    if data is not None and not np.all(np.isfinite(data)):
        raise SolverError("the matrix holds non-finite coefficients")
    return b


class CountedOperator(LinearOperator):
    """Wraps an operator (matrix, ``LinearOperator``, preconditioner) and counts its applications.

    For SciPy's solvers, which report no product counts themselves.
    """

    def __init__(self, op: Operator) -> None:
        self._apply = as_matvec(op)
        self.calls = 0
        super().__init__(np.result_type(getattr(op, "dtype", np.float64), np.float64), op.shape)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self._apply(x.reshape(-1))
