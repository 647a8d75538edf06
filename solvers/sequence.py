"""Solving a sequence of related sparse systems: method choice, reuse, verification, retries.

A dataset family hands :class:`SequenceSolver` one system after another (in its sorted order). The
solver carries state across calls — the GCRO-DR recycled space, a reused preconditioner, a sparse
LU factorization while the matrix does not change — verifies every answer's true relative
residual, retries a miss with a stronger method (down to a sparse direct solve) and counts what
it did for the run summary. The methods themselves are registered in :mod:`solvers.registry`
(one file each in ``solvers/methods/``); this module knows none of them by name except
``direct``, every method's last retry.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from solvers.errors import ConfigError, SolverError
from solvers.gcrodr import GCRODR
from solvers.linear_system import check_system
from solvers.preconditioners import PRECONDITIONERS, PreconditionerReuse
from solvers.registry import LinearMethod, MethodSettings, method_class, solver_choices
from solvers.result import SolveResult
from solvers.traits import ProblemTraits, choose_method, infer_traits

__all__ = ["METHODS", "ProblemTraits", "SequenceSolver", "SequenceStats", "choose_method",
           "default_preconditioner_options", "infer_traits"]

#: values of a ``solver`` setting: ``auto`` and the registered methods in code order
METHODS = solver_choices()

#: the method every other one falls back to
FALLBACK = "direct"


def default_preconditioner_options(kind: str, traits: ProblemTraits | None) -> dict[str, Any]:
    """Options used when the caller gives none: an ILU close to a full LU for indefinite problems.

    With SciPy's default-like ``drop_tol=1e-4, fill_factor=10`` the incomplete factors of the
    indefinite Helmholtz systems (Dirichlet or impedance, realified) leave GMRES and GCRO-DR
    stagnating; ``drop_tol=1e-5, fill_factor=20`` converges in tens of iterations
    (``benchmarks/skr.py``).
    """
    if kind == "ilu" and traits is not None and not traits.definite:
        return {"drop_tol": 1e-5, "fill_factor": 20.0}
    return {}


@dataclasses.dataclass
class SequenceStats:
    """Running totals of a :class:`SequenceSolver` (for the run summary)."""

    solves: int = 0
    retries: int = 0
    iterations: int = 0
    matvecs: int = 0
    precond_applications: int = 0
    factorizations: int = 0
    seconds: float = 0.0
    worst_residual: float = 0.0
    methods: dict[str, int] = dataclasses.field(default_factory=dict)


class SequenceSolver:
    """Solve a sequence of related systems ``A_i x_i = b_i`` with one chosen method.

    Parameters
    ----------
    method
        ``"auto"`` (:func:`~solvers.traits.choose_method` of ``traits``) or a registered method
        (:func:`~solvers.registry.method_names`): ``"skr"`` and ``"gcrodr"`` are both GCRO-DR
        carrying its recycled space from one call to the next (the difference, sorted or
        generation order, is the caller's solve order); ``"gmres"`` is GCRO-DR with ``k = 0``;
        ``"cg"`` conjugate gradients; ``"amg"`` is a Krylov method (CG when SPD, GMRES otherwise)
        preconditioned by a multigrid V-cycle; ``"direct"`` is SuperLU, factoring once while the
        matrix does not change.
    traits
        The problem's traits; required for ``"auto"`` unless they can be inferred from the first
        matrix (then ``dim`` is taken as 2).
    rtol
        Every stored answer satisfies ``||b - A x|| <= rtol ||b||``.
    m, k
        GCRO-DR restart length and recycle dimension.
    preconditioner
        One of ``"auto"`` or :data:`~solvers.preconditioners.PRECONDITIONERS`.
    maxiter
        Inner iterations allowed to one iterative attempt.
    rebuild_factor
        Rebuild the reused preconditioner when iterations exceed this factor times the count
        after its last build.
    preconditioner_options
        ``drop_tol``, ``fill_factor`` (ILU), ``omega`` (SOR) or ``amg_kind`` (AMG); default
        :func:`default_preconditioner_options`.
    preconditioner_reuse
        Reuse the preconditioner across different matrices (default: ILU yes, the others no; see
        :class:`~solvers.preconditioners.PreconditionerReuse`).
    """

    def __init__(self, method: str = "auto", traits: ProblemTraits | None = None, rtol: float = 1e-8,
                 m: int = 40, k: int = 20, preconditioner: str = "auto", maxiter: int = 10_000,
                 rebuild_factor: float = 2.0, preconditioner_options: dict[str, Any] | None = None,
                 preconditioner_reuse: bool | None = None) -> None:
        if method != "auto":
            method_class(method)  # ConfigError naming the choices for an unknown method
        if preconditioner != "auto" and preconditioner not in PRECONDITIONERS:
            raise ConfigError(f"preconditioner must be auto or one of {', '.join(PRECONDITIONERS)} "
                              f"(got {preconditioner!r})")
        if not (isinstance(rtol, float | int) and 0 < rtol < 1):
            raise ConfigError(f"rtol must be a number in (0, 1) (got {rtol!r})")
        GCRODR(m=m, k=k, rtol=rtol, maxiter=maxiter)  # validates m, k, maxiter now, not at the first solve
        self.requested, self.traits, self.rtol = method, traits, float(rtol)
        self.settings = MethodSettings(rtol=float(rtol), m=m, k=k, maxiter=maxiter)
        self.rebuild_factor = rebuild_factor
        self.preconditioner_name = preconditioner
        self.preconditioner_options = preconditioner_options
        self.preconditioner_reuse = preconditioner_reuse
        self.method: str | None = None
        self.stats = SequenceStats()
        self._method: LinearMethod | None = None
        self._fallback: LinearMethod | None = None
        self._precond: PreconditionerReuse | None = None
        if traits is not None:
            self._configure(traits)

    # ------------------------------------------------------------------ set-up
    def _configure(self, traits: ProblemTraits) -> None:
        self.traits = traits
        name = choose_method(traits) if self.requested == "auto" else self.requested
        cls = method_class(name)
        cls.check(traits, self.preconditioner_name)
        self.method = name
        self._method = cls(traits, self.settings)
        if cls.preconditioned:
            kind = self.preconditioner_name
            if kind == "auto":
                kind = cls.default_preconditioner(traits)
            options = self.preconditioner_options
            if options is None:
                options = default_preconditioner_options(kind, traits)
            self._precond = PreconditionerReuse(kind, self.rebuild_factor, symmetric=traits.symmetric,
                                                reuse=self.preconditioner_reuse, **options)

    @property
    def preconditioner(self) -> str:
        """Name of the preconditioner in use (``"none"`` for a direct solve)."""
        return self._precond.kind if self._precond is not None else "none"

    # ------------------------------------------------------------------ solve
    def solve(self, A: sp.spmatrix, b: np.ndarray, x0: np.ndarray | None = None, label: str | None = None) -> SolveResult:
        """Solve ``A x = b`` and verify the answer.

        Parameters
        ----------
        A
            ``(n, n)`` sparse matrix.
        b
            Right-hand side ``(n,)``.
        x0
            Initial guess for the iterative methods (e.g. the previous time step).
        label
            Names the system in error messages (e.g. ``"sample 17"``).

        Returns
        -------
        SolveResult
            The verified solution; ``retries`` counts the stronger methods that were needed and
            ``method`` names the one that produced ``x``.

        Raises
        ------
        SolverError
            If the matrix or right-hand side is not finite, or even a direct solve cannot meet
            the tolerance (a singular or nearly singular matrix).
        """
        start = time.perf_counter()
        where = f" ({label})" if label else ""
        try:
            b = check_system(A, b)
        except SolverError as exc:
            raise SolverError(f"{exc}{where}") from None
        if self.method is None:
            self._configure(infer_traits(A))
        totals = SolveResult(x=b, converged=False, iterations=0, matvecs=0, precond_applications=0,
                             cycles=0, residual=np.inf, seconds=0.0, method=self.method)
        result, failure = None, None
        for retries, (method, attempt) in enumerate(self._attempts()):
            method.failure = None
            result = attempt(A, b, x0)
            failure = method.failure  # the last attempt's reason is the one reported
            totals = _accumulate(totals, result)
            if result.converged and result.residual <= self.rtol:
                break
        else:
            reason = failure or (f"even a sparse direct solve leaves a relative residual "
                                 f"{result.residual:.3g} > rtol {self.rtol:.3g}: the matrix is singular or nearly so")
            raise SolverError(f"linear solve failed{where}: {reason} (for example a wavenumber at a resonance of "
                              "the domain, or a zero coefficient)")
        final = dataclasses.replace(result, iterations=totals.iterations, matvecs=totals.matvecs,
                                    precond_applications=totals.precond_applications, cycles=totals.cycles,
                                    seconds=time.perf_counter() - start, retries=retries)
        self._record(final)
        return final

    def _attempts(self) -> Iterator[tuple[LinearMethod, Callable[..., SolveResult]]]:
        """Yield the solve attempts in order of increasing strength: requested, fresh preconditioner, direct."""
        method = self._method
        if method.name == FALLBACK:
            yield method, lambda A, b, x0: method.solve(A, b, x0, None)
            return
        yield method, self._preconditioned
        if self._precond is not None and self._precond.kind != "none" and not self._precond.fresh:
            yield method, lambda A, b, x0: self._preconditioned(A, b, x0, rebuild=True)
        if self._fallback is None:
            self._fallback = method_class(FALLBACK)(self.traits, self.settings)
        fallback = self._fallback
        yield fallback, lambda A, b, x0: fallback.solve(A, b, x0, None)

    def _preconditioned(self, A: sp.spmatrix, b: np.ndarray, x0: np.ndarray | None,
                        rebuild: bool = False) -> SolveResult:
        """One attempt of the requested method with the (reused or rebuilt) preconditioner."""
        method = self._method
        try:
            M = self._precond.get(A, force_rebuild=rebuild) if self._precond is not None else None
        except SolverError as exc:
            method.failure = str(exc)
            return SolveResult(x=np.zeros_like(b), converged=False, iterations=0, matvecs=0, precond_applications=0,
                               cycles=0, residual=np.inf, seconds=0.0, method=method.name)
        result = method.solve(A, b, x0, M)
        if not result.converged:
            method.forget()
        result = dataclasses.replace(result, method=method.name)
        if self._precond is not None and result.converged:
            self._precond.record(result.iterations)
        return result

    def _record(self, result: SolveResult) -> None:
        s = self.stats
        s.solves += 1
        s.retries += result.retries
        s.iterations += result.iterations
        s.matvecs += result.matvecs
        s.precond_applications += result.precond_applications
        s.seconds += result.seconds
        s.worst_residual = max(s.worst_residual, result.residual)
        s.methods[result.method] = s.methods.get(result.method, 0) + 1
        s.factorizations = sum(m.factorizations for m in (self._method, self._fallback) if m is not None)

    def summary(self) -> dict[str, Any]:
        """Totals for the run summary: method, preconditioner, solves, retries, matvecs, ..."""
        out: dict[str, Any] = {"method": self.method or self.requested, "preconditioner": self.preconditioner}
        out.update(dataclasses.asdict(self.stats))
        out["preconditioner_builds"] = self._precond.builds if self._precond is not None else 0
        return out


def _accumulate(total: SolveResult, part: SolveResult) -> SolveResult:
    return dataclasses.replace(total, iterations=total.iterations + part.iterations,
                               matvecs=total.matvecs + part.matvecs,
                               precond_applications=total.precond_applications + part.precond_applications,
                               cycles=total.cycles + part.cycles)
