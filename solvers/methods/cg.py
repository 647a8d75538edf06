"""Conjugate gradients (SciPy) for symmetric positive definite systems, with a symmetric preconditioner."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla

from solvers.errors import ConfigError
from solvers.linear_system import CountedOperator, relative_residual
from solvers.registry import LinearMethod, register_method
from solvers.result import SolveResult
from solvers.traits import ProblemTraits

#: preconditioners that keep CG's operator symmetric
SYMMETRIC_PRECONDITIONERS = ("none", "jacobi", "amg")


@register_method("cg", code=3)
class CG(LinearMethod):
    """SciPy's CG with counted products; one restart from its answer if rounding left it short."""


    @classmethod
    def check(cls, traits: ProblemTraits, preconditioner: str) -> None:
        """CG needs an SPD problem and a symmetric preconditioner."""
        if not traits.spd:
            raise ConfigError("solver cg needs a symmetric positive definite problem; "
                              "use skr, gmres, amg or direct for this family")
        if preconditioner not in ("auto", *SYMMETRIC_PRECONDITIONERS):
            raise ConfigError(f"solver cg needs a symmetric preconditioner ({', '.join(SYMMETRIC_PRECONDITIONERS)}); "
                              f"got {preconditioner}")

    @classmethod
    def default_preconditioner(cls, traits: ProblemTraits) -> str:
        """Jacobi: cheap and symmetric; measured faster than CG with multigrid on the 3D families."""
        return "jacobi"

    def solve(self, A: Any, b: np.ndarray, x0: np.ndarray | None, M: Any) -> SolveResult:
        return conjugate_gradients(A, b, x0, M, self.settings.rtol, self.settings.maxiter, self.name)


def conjugate_gradients(A: Any, b: np.ndarray, x0: np.ndarray | None, M: Any, rtol: float, maxiter: int,
                        method: str) -> SolveResult:
    """SciPy's CG to ``rtol`` in the true residual, counting products and iterations."""
    start = time.perf_counter()
    counted_A = CountedOperator(A)
    counted_M = CountedOperator(M) if M is not None else None
    iterations = 0

    def count(_: np.ndarray) -> None:
        nonlocal iterations
        iterations += 1

    bnorm = float(np.linalg.norm(b))
    x, residual = x0, np.inf
    for _ in range(2):
        x, _info = spla.cg(counted_A, b, x0=x, rtol=rtol, maxiter=maxiter, M=counted_M, callback=count)
        residual = relative_residual(A, x, b, bnorm)
        counted_A.calls += 1
        if residual <= rtol:
            break
    return SolveResult(x=x, converged=bool(residual <= rtol), iterations=iterations, matvecs=counted_A.calls,
                       precond_applications=counted_M.calls if counted_M else 0, cycles=1, residual=residual,
                       seconds=time.perf_counter() - start, method=method)
