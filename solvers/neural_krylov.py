"""Krylov solves accelerated by a learned model: an initial guess and a two-level nonlinear preconditioner.

A trained operator helps a Krylov solve in two places, and this module knows neither model nor
framework — only two callables a caller (``operators.krylov``) binds to one system:

* ``guess`` — the operator's prediction of the solution, used as ``x0``. At rtol 1e-8 a guess 10%
  off removes about one of the eight digits, so on its own it saves little.
* ``correction`` — a network mapping the residual ``r`` of the system to an approximation of the
  error ``A^-1 r``. It is accurate on the smooth part of the error and poor on the oscillatory
  part, the opposite of a relaxation sweep; the two are combined as in a two-grid cycle, with the
  network in the place of the coarse-grid solve (the hybrid iterative numerical transferable
  solver, HINTS, of Zhang et al., "Blending neural operators and relaxation methods in PDE
  numerical solvers", 2022)::

      z = S r;  z += N(r - A z);  z += S (r - A z)          (multiplicative, two products)
      z = S r + N(r)                                        (additive, no product)
      y = S r;  z = y + N(y)                                (additive-smoothed, no product)

  The additive cycles need a network trained for them: on the part of ``A^-1`` the smoother misses,
  ``N(r) ~ A^-1 r - S r`` (:mod:`operators.krylov.correction`, ``cycle: additive``). The smoothed
  variant hands the network the smoothed residual ``y = S r`` instead of ``r`` and asks for
  ``A^-1 r - S r`` from it: ``S`` is an approximate inverse, so ``y`` is already close to the error
  and what is left is a smooth, near-linear function of it — an easier map to learn than one from
  the rough ``r`` (on the indefinite Helmholtz systems with a shifted-Laplacian ``S`` it is the
  only cycle of the three that beats the smoother alone by 2×; ``benchmarks/neural_krylov.py``).

  The result is a nonlinear preconditioner, so it drives flexible CG (symmetric positive definite
  ``A``) or flexible GMRES (anything else) from :mod:`solvers.flexible`.

Every product with ``A`` — the Krylov method's and the cycle's — is counted in ``matvecs``, and a
converged result meets ``rtol`` on the true residual (the flexible solvers verify it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from solvers.errors import ConfigError
from solvers.flexible import CountedMatrix, fgmres, flexible_cg
from solvers.result import SolveResult

Vector = np.ndarray


class Correction(Protocol):
    """A learned approximation of ``A^-1`` for one system: residual ``(n,)`` in, error ``(n,)`` out."""

    def __call__(self, residual: Vector) -> Vector: ...


def two_level_cycle(A: Any, smoother: Any, correction: Correction,
                    counter: CountedMatrix | None = None) -> Callable[[Vector], Vector]:
    """The multiplicative cycle ``z = S r; z += N(r - A z); z += S (r - A z)`` as a callable ``r -> z``.

    Parameters
    ----------
    A
        ``(n, n)`` matrix or ``LinearOperator``.
    smoother
        ``S``: a preconditioner with ``@`` (Jacobi, SOR, ILU from :mod:`solvers.preconditioners`).
    correction
        ``N``: the learned error model of this system.
    counter
        Counts the cycle's products with ``A`` (two per call); made from ``A`` when not given.

    Returns
    -------
    callable
        The nonlinear preconditioner (not symmetric, not linear: use a flexible Krylov method).
    """
    matvec = counter if counter is not None else CountedMatrix(A)

    def cycle(r: Vector) -> Vector:
        z = np.asarray(smoother @ r, dtype=np.float64)
        z = z + np.asarray(correction(r - matvec(z)), dtype=np.float64).reshape(-1)
        return z + np.asarray(smoother @ (r - matvec(z)), dtype=np.float64)

    return cycle


def additive_cycle(smoother: Any, correction: Correction, smoothed: bool = False) -> Callable[[Vector], Vector]:
    """The additive cycle ``z = S r + N(r)`` — or, ``smoothed``, ``z = S r + N(S r)`` — as a callable
    ``r -> z`` (no product with ``A``).

    ``N`` must approximate ``A^-1 - S`` (what the smoother misses), as a function of ``r`` or, smoothed,
    of ``y = S r``; not ``A^-1``.
    """

    def cycle(r: Vector) -> Vector:
        z = np.asarray(smoother @ r, dtype=np.float64)
        return z + np.asarray(correction(z if smoothed else r), dtype=np.float64).reshape(-1)

    return cycle


#: the two-level cycles :func:`neural_solve` can run (see the module docstring)
CYCLES = ("multiplicative", "additive", "additive-smoothed")


@dataclasses.dataclass(frozen=True)
class NeuralKrylovSettings:
    """How :func:`neural_solve` runs.

    Attributes
    ----------
    rtol
        Required true relative residual.
    maxiter
        Krylov iterations allowed (each costs three products with ``A`` with the multiplicative cycle:
        the method's and the cycle's two; one with the additive cycles).
    restart
        FGMRES cycle length (the preconditioned vectors are stored).
    truncation
        Flexible CG: directions each new one is A-orthogonalised against.
    cycle
        One of :data:`CYCLES` (see the module docstring).
    """

    rtol: float = 1e-8
    maxiter: int = 500
    restart: int = 30
    truncation: int = 20
    cycle: str = "multiplicative"

    def __post_init__(self) -> None:
        if self.cycle not in CYCLES:
            raise ConfigError(f"cycle must be one of {', '.join(CYCLES)} (got {self.cycle!r})")
        if not 0 < self.rtol < 1:
            raise ConfigError(f"rtol must be a number in (0, 1) (got {self.rtol!r})")
        for name in ("maxiter", "restart", "truncation"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name} must be an integer >= 1 (got {value!r})")


def neural_solve(A: sp.spmatrix, b: Vector, smoother: Any, correction: Correction | None,
                 guess: Vector | None = None, spd: bool = True,
                 settings: NeuralKrylovSettings = NeuralKrylovSettings()) -> SolveResult:
    """Solve ``A x = b`` by flexible CG / FGMRES preconditioned with the two-level neural cycle
    (``settings.cycle``).

    Parameters
    ----------
    A
        ``(n, n)`` sparse matrix (float64).
    b
        Right-hand side ``(n,)``.
    smoother
        Relaxation ``S`` of the cycle (any object with ``@``), e.g. ``build_preconditioner("sor", A)``.
    correction
        The learned error model bound to this system; None runs the same method with ``S`` alone
        (the cold baseline: one product per iteration).
    guess
        Initial guess ``x0`` (e.g. the operator's prediction), or None for zero.
    spd
        ``A`` is symmetric positive definite: flexible CG; otherwise flexible GMRES.
    settings
        Tolerance and iteration limits.

    Returns
    -------
    SolveResult
        ``method`` is ``"fcg"`` or ``"fgmres"``; ``matvecs`` counts every product with ``A``
        (the cycle's included); ``residual`` is the true relative residual of ``x``.
    """
    start = time.perf_counter()
    counter = CountedMatrix(A)
    if correction is None:
        M = smoother
    elif settings.cycle.startswith("additive"):
        M = additive_cycle(smoother, correction, smoothed=settings.cycle == "additive-smoothed")
    else:
        M = two_level_cycle(A, smoother, correction, counter)
    if spd:
        result = flexible_cg(A, b, x0=guess, rtol=settings.rtol, maxiter=settings.maxiter, M=M,
                             truncation=settings.truncation)
    else:
        result = fgmres(A, b, x0=guess, rtol=settings.rtol, maxiter=settings.maxiter, M=M,
                        restart=settings.restart)
    return dataclasses.replace(result, matvecs=result.matvecs + counter.calls,
                               seconds=time.perf_counter() - start)
