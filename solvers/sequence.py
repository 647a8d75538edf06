"""Solving a sequence of related sparse systems: method choice, reuse, verification, retries.

A dataset family hands :class:`SequenceSolver` one system after another (in its sorted order). The
solver carries state across calls — the GCRO-DR recycled space, a reused preconditioner, a sparse
LU factorization while the matrix does not change — verifies every answer's true relative
residual, retries a miss with a stronger method (down to a sparse direct solve) and counts what
it did for the run summary.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from solvers.errors import ConfigError, SolverError
from solvers.gcrodr import GCRODR
from solvers.linear_system import as_matvec, check_system, fingerprint
from solvers.preconditioners import PRECONDITIONERS, PreconditionerReuse
from solvers.result import SolveResult

METHODS = ("auto", "skr", "gcrodr", "gmres", "cg", "amg", "direct")


@dataclasses.dataclass(frozen=True)
class ProblemTraits:
    """What the method choice needs to know about a family's systems.

    Attributes
    ----------
    dim
        Spatial dimension of the PDE (1, 2 or 3).
    n_unknowns
        Size of each system.
    symmetric
        Whether the matrices are symmetric.
    definite
        Whether they are definite (SPD when also symmetric).
    same_matrix
        Only the right-hand side changes along the sequence (heat steps, fixed-coefficient Poisson).
    """

    dim: int
    n_unknowns: int
    symmetric: bool
    definite: bool
    same_matrix: bool = False

    @property
    def spd(self) -> bool:
        """Symmetric positive definite."""
        return self.symmetric and self.definite


def choose_method(traits: ProblemTraits) -> str:
    """The ``auto`` rule: the method measured fastest for a family of this kind and size.

    Measured by ``benchmarks/skr.py`` (CPU time per system, rtol 1e-8, single-threaded BLAS; see
    ``benchmarks/results/skr.md``):

    * only the right-hand side changes -> ``"direct"``: one sparse LU per trajectory, then two
      triangular solves per step (heat at 99^2 unknowns: ~3 ms per step, 4x faster than the next
      method, CG with Jacobi);
    * 2D with up to 25 000 unknowns -> ``"direct"``: SuperLU's fill stays modest in 2D, and at
      ~10^4 unknowns it beat every iterative method on every 2D family (Darcy, Poisson, Helmholtz
      Dirichlet and impedance, convection-diffusion) by 2x to 15x;
    * larger 2D SPD -> ``"amg"``: at 199^2 unknowns smoothed-aggregation multigrid beat SuperLU and
      CG with Jacobi on Darcy;
    * larger 2D non-SPD -> ``"direct"``: the Krylov methods need a near-complete ILU on these
      families (indefinite Helmholtz stagnates otherwise), which costs as much as the LU;
    * 3D SPD -> ``"cg"`` with Jacobi: at 24^3 Darcy ~20 ms per system, 3x faster than multigrid
      and 40x faster than SuperLU, whose fill grows quickly in 3D;
    * 3D non-SPD -> ``"skr"``: no pdeop family is of this kind; LU fill and multigrid's failure on
      indefinite problems leave sorted recycling as the scalable choice (not measured).

    Parameters
    ----------
    traits
        The family's problem traits.

    Returns
    -------
    str
        One of :data:`METHODS` other than ``"auto"``.
    """
    if traits.same_matrix:
        return "direct"
    if traits.dim <= 2:
        if traits.n_unknowns <= 25_000 or not traits.spd:
            return "direct"
        return "amg"
    return "cg" if traits.spd else "skr"


def default_preconditioner(method: str, traits: ProblemTraits | None) -> str:
    """Preconditioner used when ``preconditioner="auto"``: multigrid for ``amg``, Jacobi for ``cg``
    (cheap and symmetric; measured faster than CG with multigrid on the 3D families), ILU for the
    GMRES family."""
    if method == "amg":
        return "amg"
    if method == "cg":
        return "jacobi"
    if method == "direct":
        return "none"
    return "ilu"


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
        One of :data:`METHODS`. ``"skr"`` and ``"gcrodr"`` are both GCRO-DR carrying its recycled
        space from one call to the next (the difference, sorted or generation order, is the
        caller's solve order); ``"gmres"`` is GCRO-DR with ``k = 0``; ``"amg"`` is a Krylov method
        (CG when SPD, GMRES otherwise) preconditioned by a multigrid V-cycle;
        ``"direct"`` is SuperLU, factoring once while the matrix does not change; ``"auto"`` is
        :func:`choose_method` of ``traits``.
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
        ``drop_tol``, ``fill_factor`` (ILU) or ``amg_kind`` (AMG); default
        :func:`default_preconditioner_options`.
    preconditioner_reuse
        Reuse the preconditioner across different matrices (default: ILU yes, Jacobi and
        multigrid no; see :class:`~solvers.preconditioners.PreconditionerReuse`).
    """

    def __init__(self, method: str = "auto", traits: ProblemTraits | None = None, rtol: float = 1e-8,
                 m: int = 40, k: int = 20, preconditioner: str = "auto", maxiter: int = 10_000,
                 rebuild_factor: float = 2.0, preconditioner_options: dict[str, Any] | None = None,
                 preconditioner_reuse: bool | None = None) -> None:
        if method not in METHODS:
            raise ConfigError(f"solver must be one of {', '.join(METHODS)} (got {method!r})")
        if preconditioner != "auto" and preconditioner not in PRECONDITIONERS:
            raise ConfigError(f"preconditioner must be auto or one of {', '.join(PRECONDITIONERS)} "
                              f"(got {preconditioner!r})")
        if not (isinstance(rtol, float | int) and 0 < rtol < 1):
            raise ConfigError(f"rtol must be a number in (0, 1) (got {rtol!r})")
        self.requested, self.traits, self.rtol = method, traits, float(rtol)
        self.m, self.k, self.maxiter, self.rebuild_factor = m, k, maxiter, rebuild_factor
        self.preconditioner_name = preconditioner
        self.preconditioner_options = preconditioner_options
        self.preconditioner_reuse = preconditioner_reuse
        GCRODR(m=m, k=k, rtol=rtol, maxiter=maxiter)  # validates m, k, maxiter now, not at the first solve
        self.method: str | None = None
        self.stats = SequenceStats()
        self._krylov: GCRODR | None = None
        self._precond: PreconditionerReuse | None = None
        self._lu: Any = None
        self._lu_key: tuple | None = None
        self._failure: str | None = None
        if traits is not None:
            self._configure(traits)

    # ------------------------------------------------------------------ set-up
    def _configure(self, traits: ProblemTraits) -> None:
        self.traits = traits
        method = choose_method(traits) if self.requested == "auto" else self.requested
        if method == "cg" and not traits.spd:
            raise ConfigError("solver cg needs a symmetric positive definite problem; "
                              "use skr, gmres, amg or direct for this family")
        self.method = method
        kind = self.preconditioner_name
        if kind == "auto":
            kind = default_preconditioner(method, traits)
        if method == "cg" and kind == "ilu":
            raise ConfigError("solver cg needs a symmetric preconditioner (none, jacobi or amg); got ilu")
        if method in ("skr", "gcrodr", "gmres", "cg", "amg"):
            options = self.preconditioner_options
            if options is None:
                options = default_preconditioner_options(kind, traits)
            self._precond = PreconditionerReuse(kind, self.rebuild_factor, symmetric=traits.symmetric,
                                                reuse=self.preconditioner_reuse, **options)
        if method in ("skr", "gcrodr", "gmres") or (method == "amg" and not traits.spd):
            k = 0 if method in ("gmres", "amg") else self.k
            self._krylov = GCRODR(m=self.m, k=k, rtol=self.rtol, maxiter=self.maxiter)

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
        bnorm = float(np.linalg.norm(b))
        self._failure = None
        totals = SolveResult(x=b, converged=False, iterations=0, matvecs=0, precond_applications=0,
                             cycles=0, residual=np.inf, seconds=0.0, method=self.method)
        result = None
        for retries, attempt in enumerate(self._attempts()):
            result = attempt(A, b, x0, bnorm)
            totals = _accumulate(totals, result)
            if result.converged and result.residual <= self.rtol:
                break
        else:
            reason = self._failure or (f"even a sparse direct solve leaves a relative residual "
                                       f"{result.residual:.3g} > rtol {self.rtol:.3g}: the matrix is singular or "
                                       "nearly so")
            raise SolverError(f"linear solve failed{where}: {reason} (for example a wavenumber at a resonance of "
                              "the domain, or a zero coefficient)")
        final = dataclasses.replace(result, iterations=totals.iterations, matvecs=totals.matvecs,
                                    precond_applications=totals.precond_applications, cycles=totals.cycles,
                                    seconds=time.perf_counter() - start, retries=retries)
        self._record(final)
        return final

    def _attempts(self) -> Iterator[Callable[..., SolveResult]]:
        """Yield the solve attempts in order of increasing strength: requested, fresh preconditioner, direct."""
        if self.method != "direct":
            yield self._iterative
            if self._precond is not None and self._precond.kind != "none" and not self._precond.fresh:
                yield lambda A, b, x0, bnorm: self._iterative(A, b, x0, bnorm, rebuild=True)
        yield self._direct

    def _iterative(self, A: sp.spmatrix, b: np.ndarray, x0: np.ndarray | None, bnorm: float,
                   rebuild: bool = False) -> SolveResult:
        try:
            M = self._precond.get(A, force_rebuild=rebuild) if self._precond is not None else None
        except SolverError:
            return _failed(b, self.method)
        if self._krylov is not None:
            result = self._krylov.solve(A, b, x0=x0, M=M)
            if not result.converged:
                self._krylov.reset()  # a failed cycle's harmonic Ritz vectors are not worth keeping
        else:
            result = _cg(A, b, x0, M, self.rtol, self.maxiter, bnorm)
        result = dataclasses.replace(result, method=self.method)
        if self._precond is not None and result.converged:
            self._precond.record(result.iterations)
        return result

    def _direct(self, A: sp.spmatrix, b: np.ndarray, x0: np.ndarray | None, bnorm: float) -> SolveResult:
        start = time.perf_counter()
        key = fingerprint(A)
        if self._lu is None or key != self._lu_key:
            try:
                self._lu = spla.splu(sp.csc_matrix(A))
            except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
                self._lu, self._lu_key = None, None
                self._failure = f"the sparse LU factorization failed ({exc}): the matrix is singular"
                return _failed(b, "direct")
            self._lu_key = key
            self.stats.factorizations += 1
        x = self._lu.solve(b)
        matvec = as_matvec(A)
        residual = _relative(b - matvec(x), bnorm)
        matvecs = 1
        for _ in range(2):  # iterative refinement with the same factors
            if not (np.isfinite(residual) and residual > self.rtol):
                break
            x = x + self._lu.solve(b - matvec(x))
            residual = _relative(b - matvec(x), bnorm)
            matvecs += 2
        converged = bool(np.isfinite(residual) and residual <= self.rtol)
        return SolveResult(x=x, converged=converged, iterations=0, matvecs=matvecs, precond_applications=0,
                           cycles=0, residual=residual, seconds=time.perf_counter() - start, method="direct")

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

    def summary(self) -> dict[str, Any]:
        """Totals for the run summary: method, preconditioner, solves, retries, matvecs, ..."""
        out: dict[str, Any] = {"method": self.method or self.requested, "preconditioner": self.preconditioner}
        out.update(dataclasses.asdict(self.stats))
        out["preconditioner_builds"] = self._precond.builds if self._precond is not None else 0
        return out


def infer_traits(A: sp.spmatrix, dim: int = 2) -> ProblemTraits:
    """Traits read off a matrix: symmetry exactly, definiteness by a positive diagonal and symmetry.

    Used only when a caller gives no traits; a positive diagonal does not prove definiteness, but
    a wrong guess only costs speed (CG's miss is retried with a direct solve).
    """
    A = sp.csr_matrix(A)
    diff = abs(A - A.T)
    symmetric = bool(diff.nnz == 0 or diff.max() <= 1e-12 * abs(A).max())
    definite = symmetric and bool(np.all(A.diagonal() > 0))
    return ProblemTraits(dim=dim, n_unknowns=A.shape[0], symmetric=symmetric, definite=definite)


def _cg(A: sp.spmatrix, b: np.ndarray, x0: np.ndarray | None, M: spla.LinearOperator | None, rtol: float,
        maxiter: int, bnorm: float) -> SolveResult:
    """SciPy's CG with counted products; one restart from its answer if rounding left it short."""
    start = time.perf_counter()
    counted_A = _Counted(A)
    counted_M = _Counted(M) if M is not None else None
    iterations = 0

    def count(_: np.ndarray) -> None:
        nonlocal iterations
        iterations += 1

    x = x0
    residual = np.inf
    for _ in range(2):
        x, _info = spla.cg(counted_A, b, x0=x, rtol=rtol, maxiter=maxiter, M=counted_M, callback=count)
        residual = _relative(b - A @ x, bnorm)
        counted_A.calls += 1
        if residual <= rtol:
            break
    return SolveResult(x=x, converged=bool(residual <= rtol), iterations=iterations, matvecs=counted_A.calls,
                       precond_applications=counted_M.calls if counted_M else 0, cycles=1, residual=residual,
                       seconds=time.perf_counter() - start, method="cg")


class _Counted(spla.LinearOperator):
    """Wraps an operator and counts its applications."""

    def __init__(self, op: Any) -> None:
        self._apply = as_matvec(op)
        self.calls = 0
        super().__init__(np.float64, op.shape)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self._apply(x.reshape(-1))


def _relative(r: np.ndarray, bnorm: float) -> float:
    value = float(np.linalg.norm(r))
    return value / bnorm if bnorm > 0 else value


def _failed(b: np.ndarray, method: str) -> SolveResult:
    return SolveResult(x=np.zeros_like(b), converged=False, iterations=0, matvecs=0, precond_applications=0,
                       cycles=0, residual=np.inf, seconds=0.0, method=method)


def _accumulate(total: SolveResult, part: SolveResult) -> SolveResult:
    return dataclasses.replace(total, iterations=total.iterations + part.iterations,
                               matvecs=total.matvecs + part.matvecs,
                               precond_applications=total.precond_applications + part.precond_applications,
                               cycles=total.cycles + part.cycles)
