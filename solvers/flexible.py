"""Flexible Krylov methods: the preconditioner may change from one iteration to the next.

A nonlinear preconditioner — a neural network approximating ``A^-1 r``, an inner iterative solve,
a preconditioner that is rebuilt mid-solve — breaks the assumptions of CG and GMRES (a fixed linear
``M``). The flexible variants keep what they need of the preconditioned directions explicitly:

* :func:`flexible_cg` — truncated flexible CG (Notay, "Flexible conjugate gradients", SIAM J. Sci.
  Comput. 22, 2000), for symmetric positive definite ``A``: each new direction ``p = z - sum_k
  (z^T A p_k) / (p_k^T A p_k) p_k`` is A-orthogonalised against the last ``truncation`` directions
  (the deep conjugate direction method of Kaneda et al., ICML 2023, is this iteration with a
  network giving ``z``); one product with ``A`` per iteration.
* :func:`fgmres` — flexible GMRES(m) (Saad, "A flexible inner-outer preconditioned GMRES
  algorithm", SIAM J. Sci. Comput. 14, 1993), for any nonsingular ``A``: right preconditioning with
  the preconditioned vectors ``Z`` stored, ``x = x0 + Z y`` minimising the residual.

The preconditioner is any callable ``r -> z`` (or a ``LinearOperator``); the solvers know nothing
about what it is. Both stop on the recursively updated residual and then verify the true residual
``||b - A x|| / ||b||``: when rounding leaves it above the tolerance they restart from ``x`` (every
product counted), so a converged result always meets ``rtol`` on the true residual. A preconditioner
that returns non-finite values, or a direction of non-positive curvature in flexible CG, ends the
solve as not converged; the caller decides what to fall back on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from solvers.errors import ConfigError
from solvers.linear_system import Operator, as_matvec, check_system
from solvers.result import SolveResult

Preconditioner = Callable[[np.ndarray], np.ndarray]


def _preconditioner(M: Any) -> Preconditioner:
    if M is None:
        return lambda r: r.copy()
    if callable(M) and not hasattr(M, "matvec"):
        return M
    return as_matvec(M)


def _check_options(rtol: float, atol: float, maxiter: int, name: str, value: int, low: int) -> None:
    if not (rtol >= 0 and atol >= 0):
        raise ConfigError(f"rtol and atol must be >= 0 (got rtol={rtol!r}, atol={atol!r})")
    if not (isinstance(maxiter, (int, np.integer)) and maxiter >= 1):
        raise ConfigError(f"maxiter must be an integer >= 1 (got {maxiter!r})")
    if not (isinstance(value, (int, np.integer)) and value >= low):
        raise ConfigError(f"{name} must be an integer >= {low} (got {value!r})")


class CountedMatrix:
    """``A @ v`` with a count of the products."""

    def __init__(self, A: Operator) -> None:
        self._apply = as_matvec(A)
        self.calls = 0

    def __call__(self, v: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.asarray(self._apply(v), dtype=np.float64).reshape(-1)


def flexible_cg(A: Operator, b: np.ndarray, x0: np.ndarray | None = None, rtol: float = 1e-8, atol: float = 0.0,
                maxiter: int = 1000, M: Any = None, truncation: int = 20,
                callback: Callable[[np.ndarray], None] | None = None) -> SolveResult:
    """Truncated flexible conjugate gradients for symmetric positive definite ``A``.

    Parameters
    ----------
    A
        ``(n, n)`` symmetric positive definite sparse matrix, array or ``LinearOperator``.
    b
        Right-hand side ``(n,)``.
    x0
        Initial guess (default zero; costs one extra product when given).
    rtol, atol
        Stop when ``||b - A x|| <= max(rtol ||b||, atol)``.
    maxiter
        Iterations allowed (one product with ``A`` and one preconditioner call each).
    M
        Preconditioner ``r -> z ~ A^-1 r``: a callable (may be nonlinear or change between calls),
        a ``LinearOperator`` or None.
    truncation
        Previous directions each new one is A-orthogonalised against (``>= 1``).
    callback
        Called with the iterate after every iteration.

    Returns
    -------
    SolveResult
        ``method="fcg"``; ``residual`` is the true relative residual of ``x``.
    """
    _check_options(rtol, atol, maxiter, "truncation", truncation, 1)
    start = time.perf_counter()
    b, x, matvec, precondition, bnorm, target = _setup(A, b, x0, M, rtol, atol)
    iterations = applications = restarts = 0
    absolute = None
    while True:
        r = b - matvec(x) if (x0 is not None or restarts) else b.copy()
        absolute = float(np.linalg.norm(r))
        if not absolute > target or iterations >= maxiter:
            break
        restarts += 1
        directions: list[tuple[np.ndarray, np.ndarray, float]] = []
        while iterations < maxiter:
            z = np.asarray(precondition(r), dtype=np.float64).reshape(-1)
            applications += 1
            if not np.all(np.isfinite(z)):
                return _result(x, b, matvec, bnorm, target, iterations, applications, restarts, start, "fcg")
            p = z.copy()
            for p_k, q_k, curvature in directions:
                p -= (z @ q_k) / curvature * p_k
            q = matvec(p)
            curvature = float(p @ q)
            if not curvature > 0:  # not SPD, or a direction in the span of the previous ones
                return _result(x, b, matvec, bnorm, target, iterations, applications, restarts, start, "fcg")
            alpha = float(p @ r) / curvature
            x += alpha * p
            r -= alpha * q
            iterations += 1
            directions.append((p, q, curvature))
            if len(directions) > truncation:
                directions.pop(0)
            if callback is not None:
                callback(x)
            if not float(np.linalg.norm(r)) > target:
                break
        # the loop above ends on the updated residual; the true one, recomputed next pass, decides
        x0 = x
    return _result(x, b, matvec, bnorm, target, iterations, applications, restarts, start, "fcg", absolute)


def fgmres(A: Operator, b: np.ndarray, x0: np.ndarray | None = None, rtol: float = 1e-8, atol: float = 0.0,
           maxiter: int = 1000, M: Any = None, restart: int = 30,
           callback: Callable[[np.ndarray], None] | None = None) -> SolveResult:
    """Flexible GMRES(m) with right preconditioning, for any nonsingular ``A``.

    Parameters
    ----------
    A
        ``(n, n)`` sparse matrix, array or ``LinearOperator``.
    b
        Right-hand side ``(n,)``.
    x0
        Initial guess (default zero).
    rtol, atol
        Stop when ``||b - A x|| <= max(rtol ||b||, atol)``.
    maxiter
        Arnoldi iterations allowed over all cycles (one product with ``A`` and one preconditioner
        call each).
    M
        Preconditioner ``r -> z ~ A^-1 r``: a callable (may be nonlinear), a ``LinearOperator`` or None.
    restart
        Arnoldi steps per cycle (``m``); the cycle's ``m`` preconditioned vectors are stored.
    callback
        Called with the iterate at the end of every cycle.

    Returns
    -------
    SolveResult
        ``method="fgmres"``; ``residual`` is the true relative residual of ``x``.
    """
    _check_options(rtol, atol, maxiter, "restart", restart, 1)
    start = time.perf_counter()
    b, x, matvec, precondition, bnorm, target = _setup(A, b, x0, M, rtol, atol)
    n = b.shape[0]
    iterations = applications = cycles = 0
    while True:
        r = b.copy() if (cycles == 0 and x0 is None) else b - matvec(x)
        beta = float(np.linalg.norm(r))
        if not beta > target or iterations >= maxiter:
            break
        cycles += 1
        m = min(restart, maxiter - iterations)
        V = np.empty((m + 1, n))
        Z = np.empty((m, n))
        H = np.zeros((m + 1, m))
        cs, sn = np.zeros(m), np.zeros(m)
        g = np.zeros(m + 1)
        g[0] = beta
        V[0] = r / beta
        used = 0
        for j in range(m):
            z = np.asarray(precondition(V[j]), dtype=np.float64).reshape(-1)
            applications += 1
            if not np.all(np.isfinite(z)):
                x = _fgmres_update(x, Z, H, g, used)
                return _result(x, b, matvec, bnorm, target, iterations, applications, cycles, start, "fgmres")
            Z[j] = z
            w = matvec(z)
            iterations += 1
            _orthogonalise(V[: j + 1], w, H[: j + 2, j])
            h_next = H[j + 1, j]
            for i in range(j):  # apply the previous Givens rotations to the new column
                H[i, j], H[i + 1, j] = cs[i] * H[i, j] + sn[i] * H[i + 1, j], -sn[i] * H[i, j] + cs[i] * H[i + 1, j]
            denominator = float(np.hypot(H[j, j], H[j + 1, j]))
            cs[j], sn[j] = (1.0, 0.0) if denominator == 0 else (H[j, j] / denominator, H[j + 1, j] / denominator)
            H[j, j] = cs[j] * H[j, j] + sn[j] * H[j + 1, j]
            H[j + 1, j] = 0.0
            g[j + 1] = -sn[j] * g[j]
            g[j] = cs[j] * g[j]
            used = j + 1
            if h_next > 0 and j + 1 < m + 1:
                V[j + 1] = w / h_next
            if not abs(g[j + 1]) > target or h_next == 0:  # converged (estimate) or a lucky breakdown
                break
        x = _fgmres_update(x, Z, H, g, used)
        if callback is not None:
            callback(x)
    return _result(x, b, matvec, bnorm, target, iterations, applications, cycles, start, "fgmres", beta)


def _setup(A: Operator, b: np.ndarray, x0: np.ndarray | None, M: Any, rtol: float,
           atol: float) -> tuple[np.ndarray, np.ndarray, "CountedMatrix", Preconditioner, float, float]:
    """What both solvers start from: the checked ``b``, the first iterate, the counted operator and
    preconditioner, ``||b||`` and the residual norm to reach (``max(rtol ||b||, atol)``)."""
    b = check_system(A, b)
    x = np.zeros_like(b) if x0 is None else np.array(x0, dtype=np.float64).reshape(-1)
    bnorm = float(np.linalg.norm(b))
    return b, x, CountedMatrix(A), _preconditioner(M), bnorm, max(rtol * bnorm, atol)


def _orthogonalise(V: np.ndarray, w: np.ndarray, h: np.ndarray) -> None:
    """Classical Gram-Schmidt of ``w`` against the rows of ``V`` with one reorthogonalisation pass.

    Writes the coefficients into ``h[:-1]`` and ``||w||`` after the projection into ``h[-1]``.
    """
    coefficients = V @ w
    w -= coefficients @ V
    again = V @ w  # twice is enough (Giraud, Langou, Rozloznik 2005)
    w -= again @ V
    h[:-1] = coefficients + again
    h[-1] = float(np.linalg.norm(w))


def _fgmres_update(x: np.ndarray, Z: np.ndarray, H: np.ndarray, g: np.ndarray, used: int) -> np.ndarray:
    """``x + Z y`` with ``y`` solving the rotated (upper triangular) least-squares problem."""
    if used == 0:
        return x
    R = H[:used, :used]
    diagonal = np.abs(np.diag(R))
    keep = used
    while keep > 0 and not diagonal[keep - 1] > 0:  # a singular trailing block: drop it
        keep -= 1
    if keep == 0:
        return x
    from scipy.linalg import solve_triangular

    y = solve_triangular(R[:keep, :keep], g[:keep])
    return x + y @ Z[:keep]


def _result(x: np.ndarray, b: np.ndarray, matvec: CountedMatrix, bnorm: float, target: float, iterations: int,
            applications: int, cycles: int, start: float, method: str, absolute: float | None = None) -> SolveResult:
    """The SolveResult of ``x``; its true residual ``absolute`` is recomputed when not given."""
    if absolute is None:
        absolute = float(np.linalg.norm(b - matvec(x)))
    residual = absolute / bnorm if bnorm > 0 else absolute
    converged = bool(np.all(np.isfinite(x))) and absolute <= target
    return SolveResult(x=x, converged=converged, iterations=iterations, matvecs=matvec.calls,
                       precond_applications=applications, cycles=max(cycles, 1), residual=residual,
                       seconds=time.perf_counter() - start, method=method)
