"""Sparse LU (SuperLU), factored once while the matrix stays the same, with iterative refinement."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from solvers.linear_system import as_matvec, fingerprint, relative_residual
from solvers.registry import LinearMethod, register_method
from solvers.result import SolveResult


@register_method("direct", code=5)
class Direct(LinearMethod):
    """SuperLU; the factors are kept while the matrix repeats (heat steps: two triangular solves per step).

    Its answers depend only on the system, never on the solve order, and it is every other
    method's last retry.
    """

    preconditioned = False
    order_matters = False

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._lu: Any = None
        self._key: tuple | None = None

    def solve(self, A: Any, b: np.ndarray, x0: np.ndarray | None, M: Any) -> SolveResult:
        """Factor (if the matrix changed), solve, and refine up to twice with the same factors."""
        start = time.perf_counter()
        key = fingerprint(A)
        if self._lu is None or key != self._key:
            try:
                self._lu = spla.splu(sp.csc_matrix(A))
            except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
                self._lu, self._key = None, None
                self.failure = f"the sparse LU factorization failed ({exc}): the matrix is singular"
                return SolveResult(x=np.zeros_like(b), converged=False, iterations=0, matvecs=0,
                                   precond_applications=0, cycles=0, residual=np.inf, seconds=0.0, method=self.name)
            self._key = key
            self.factorizations += 1
        rtol = self.settings.rtol
        bnorm = float(np.linalg.norm(b))
        x = self._lu.solve(b)
        residual = relative_residual(A, x, b, bnorm)
        matvecs = 1
        for _ in range(2):  # iterative refinement with the same factors
            if not (np.isfinite(residual) and residual > rtol):
                break
            x = x + self._lu.solve(b - as_matvec(A)(x))
            residual = relative_residual(A, x, b, bnorm)
            matvecs += 2
        converged = bool(np.isfinite(residual) and residual <= rtol)
        return SolveResult(x=x, converged=converged, iterations=0, matvecs=matvecs, precond_applications=0,
                           cycles=0, residual=residual, seconds=time.perf_counter() - start, method=self.name)
