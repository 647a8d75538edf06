"""Preconditioners for the Krylov solvers, and the policy that reuses one across a sequence.

Every preconditioner is a :class:`scipy.sparse.linalg.LinearOperator` approximating ``A^-1``, so
it can be handed to :class:`~solvers.gcrodr.GCRODR` and to SciPy's solvers alike. Building one
(an incomplete LU, a multigrid hierarchy) can cost more than a solve, so :class:`PreconditionerReuse`
builds it on one system, reuses it for the following (sorted, hence similar) systems, and
rebuilds it when the iteration count grows past ``rebuild_factor`` times the count right after
the last build.
"""

from __future__ import annotations

import cmath
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from solvers.errors import ConfigError, SolverError
from solvers.linear_system import fingerprint

PRECONDITIONERS = ("none", "jacobi", "sor", "ilu0", "ilu", "amg")


class Jacobi(spla.LinearOperator):
    """Diagonal scaling ``x -> x / diag(A)``."""

    def __init__(self, A: sp.spmatrix) -> None:
        diag = _diagonal(A, "Jacobi")
        self.inv_diag = 1.0 / diag
        super().__init__(diag.dtype, A.shape)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self.inv_diag * x.reshape(-1)


class _TriangularSweeps(spla.LinearOperator):
    """``x -> (T_U)^-1 (s * (T_L)^-1 x)`` for a lower triangle ``T_L``, a scaling ``s`` and an upper triangle ``T_U``.

    The common form of SSOR and diagonal ILU. The triangles are factored by SuperLU in their
    natural order without pivoting, which creates no fill, so each solve is one compiled sweep.
    """

    def __init__(self, lower: sp.spmatrix, scale: np.ndarray, upper: sp.spmatrix) -> None:
        self._forward, self._scale, self._backward = _triangle(lower), scale, _triangle(upper)
        super().__init__(np.result_type(lower.dtype, np.float64), lower.shape)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        y = self._forward.solve(np.ascontiguousarray(x, dtype=self.dtype).reshape(-1))
        return self._backward.solve(self._scale * y)


def _triangle(T: sp.spmatrix) -> Any:
    """SuperLU factors of a triangular matrix in its own order: the factors are the triangle itself."""
    return spla.splu(sp.csc_matrix(T), permc_spec="NATURAL", diag_pivot_thresh=0.0,
                     options={"SymmetricMode": True})


def _diagonal(A: sp.spmatrix, name: str) -> np.ndarray:
    diag = np.asarray(A.diagonal())
    diag = diag.astype(np.result_type(diag.dtype, np.float64), copy=False)
    if np.any(diag == 0) or not np.all(np.isfinite(diag)):
        raise SolverError(f"{name} preconditioner: the matrix has zero or non-finite diagonal entries")
    return diag


class SSOR(_TriangularSweeps):
    """One symmetric SOR sweep from a zero guess (PETSc's default ``PCSOR``; Gauss-Seidel both ways at ``omega = 1``).

    ``M = (D + omega L) D^-1 (D + omega U) / (omega (2 - omega))`` for the splitting ``A = L + D + U``:
    applying ``M^-1`` is a forward solve with ``D + omega L``, a scaling by ``omega (2 - omega) D``
    and a backward solve with ``D + omega U``.

    Parameters
    ----------
    A
        Sparse matrix with a non-zero diagonal.
    omega
        Relaxation factor in ``(0, 2)``.
    blocks
        Sweep within ``blocks`` contiguous row blocks only, ignoring the couplings between them:
        what PETSc's ``PCSOR`` does on that many MPI ranks (block Jacobi between the ranks, rows
        split as ``PetscSplitOwnership`` splits them). ``1``: the sequential sweep.
    """

    def __init__(self, A: sp.spmatrix, omega: float = 1.0, blocks: int = 1) -> None:
        if not 0.0 < omega < 2.0:
            raise ConfigError(f"SOR relaxation omega must lie in (0, 2) (got {omega!r})")
        if not (isinstance(blocks, (int, np.integer)) and blocks >= 1):
            raise ConfigError(f"SOR blocks must be an integer >= 1 (got {blocks!r})")
        A = sp.csr_matrix(A)
        if blocks > 1:
            n = A.shape[0]
            sizes = np.full(blocks, n // blocks) + (np.arange(blocks) < n % blocks)
            owner = np.repeat(np.arange(blocks), sizes)
            coo = A.tocoo()
            local = owner[coo.row] == owner[coo.col]
            A = sp.csr_matrix((coo.data[local], (coo.row[local], coo.col[local])), shape=A.shape)
        diag = _diagonal(A, "SOR")
        D = sp.diags(diag)
        super().__init__(D + omega * sp.tril(A, k=-1), omega * (2.0 - omega) * diag, D + omega * sp.triu(A, k=1))


class DiagonalILU(_TriangularSweeps):
    """Diagonal incomplete LU: ``A ~ (E + L) E^-1 (E + U)`` with ``e_i = a_ii - sum_{k<i} a_ik a_ki / e_k``.

    Only the diagonal is modified, so the factors keep ``A``'s own triangles. For a star stencil
    (5-point in 2D, 7-point in 3D) in natural order this *is* ILU(0) — its elimination never
    updates an off-diagonal entry inside the pattern (checked against a reference ILU(0) in the
    tests) — and it is what PETSc's ``-pc_type ilu`` (zero fill levels) computes on such matrices;
    for other patterns it is the weaker D-ILU. The recurrence runs once over the rows in Python
    (~1 us per stored lower entry).

    Raises
    ------
    SolverError
        When a pivot ``e_i`` vanishes or is not finite.
    """

    def __init__(self, A: sp.spmatrix) -> None:
        A = sp.csr_matrix(A)
        diag = _diagonal(A, "ILU(0)")
        lower, upper = sp.tril(A, k=-1).tocsr(), sp.triu(A, k=1).tocsr()
        products = lower.multiply(upper.T).tocsr()  # a_ik a_ki at (i, k), k < i
        products.sort_indices()
        indptr, indices, values = products.indptr.tolist(), products.indices.tolist(), products.data.tolist()
        pivots = diag.tolist()
        for i in range(len(pivots)):
            for q in range(indptr[i], indptr[i + 1]):
                pivots[i] -= values[q] / pivots[indices[q]]
            if not (pivots[i] != 0.0 and cmath.isfinite(pivots[i])):
                raise SolverError(f"ILU(0) preconditioner: pivot {i} is {pivots[i]}; use ilu (threshold) or jacobi")
        E = np.asarray(pivots)
        super().__init__(sp.diags(E) + lower, E, sp.diags(E) + upper)


class ILU(spla.LinearOperator):
    """Incomplete LU factorization (SuperLU's ``spilu``), applied as ``x -> U^-1 L^-1 x``.

    Parameters
    ----------
    A
        Sparse matrix.
    drop_tol, fill_factor
        Passed to :func:`scipy.sparse.linalg.spilu`.
    """

    def __init__(self, A: sp.spmatrix, drop_tol: float = 1e-4, fill_factor: float = 10.0) -> None:
        try:
            self.factor = spla.spilu(sp.csc_matrix(A), drop_tol=drop_tol, fill_factor=fill_factor)
        except RuntimeError as exc:  # SuperLU reports a singular factor this way
            raise SolverError(f"ILU preconditioner failed: {exc}") from None
        super().__init__(np.result_type(A.dtype, np.float64), A.shape)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self.factor.solve(np.ascontiguousarray(x, dtype=self.dtype).reshape(-1))


class AMG(spla.LinearOperator):
    """One algebraic-multigrid V-cycle of a :mod:`pyamg` hierarchy.

    Parameters
    ----------
    A
        Sparse matrix (converted to CSR).
    kind
        ``"sa"`` smoothed aggregation (symmetric problems) or ``"rs"`` classical Ruge-Stuben.
    symmetric
        Tells smoothed aggregation whether ``A`` is symmetric.
    """

    def __init__(self, A: sp.spmatrix, kind: str = "sa", symmetric: bool = True) -> None:
        import pyamg  # heavy import, only when multigrid is asked for

        A = sp.csr_matrix(A)
        if kind == "sa":
            self.hierarchy = pyamg.smoothed_aggregation_solver(
                A, symmetry="symmetric" if symmetric else "nonsymmetric", max_coarse=500)
        elif kind == "rs":
            self.hierarchy = pyamg.ruge_stuben_solver(A, max_coarse=500)
        else:
            raise ConfigError(f"amg kind must be 'sa' or 'rs' (got {kind!r})")
        self._cycle = self.hierarchy.aspreconditioner(cycle="V")
        super().__init__(np.result_type(A.dtype, np.float64), A.shape)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self._cycle.matvec(np.asarray(x, dtype=self.dtype).reshape(-1))


def build_preconditioner(kind: str, A: sp.spmatrix, *, symmetric: bool = True, **options: Any) -> spla.LinearOperator | None:
    """Build the preconditioner ``kind`` for ``A`` (``None`` for ``"none"``).

    Parameters
    ----------
    kind
        One of :data:`PRECONDITIONERS`.
    A
        Sparse matrix.
    symmetric
        Whether ``A`` is symmetric (chooses the multigrid flavour).
    **options
        ``drop_tol``, ``fill_factor`` for ILU; ``omega``, ``blocks`` for SOR; ``amg_kind`` (``"sa"``/``"rs"``) for AMG.

    Raises
    ------
    ConfigError
        For an unknown ``kind``.
    SolverError
        When the factorization breaks down (zero pivot, zero diagonal).
    """
    if kind == "none":
        return None
    if kind == "jacobi":
        return Jacobi(A)
    if kind == "sor":
        return SSOR(A, omega=options.get("omega", 1.0), blocks=options.get("blocks", 1))
    if kind == "ilu0":
        return DiagonalILU(A)
    if kind == "ilu":
        return ILU(A, drop_tol=options.get("drop_tol", 1e-4), fill_factor=options.get("fill_factor", 10.0))
    if kind == "amg":
        return AMG(A, kind=options.get("amg_kind", "sa"), symmetric=symmetric)
    raise ConfigError(f"preconditioner must be one of {', '.join(PRECONDITIONERS)} (got {kind!r})")


#: kinds reused across different matrices by default; the others are rebuilt for each new matrix
REUSED_BY_DEFAULT = ("ilu",)


class PreconditionerReuse:
    """Build a preconditioner once and reuse it along a sequence until iterations grow.

    Whether reuse across *different* matrices pays depends on the build cost. An incomplete LU
    costs as much as many iterations, so it is reused for the sorted neighbours and rebuilt when a
    solve needs more than ``rebuild_factor`` times the iterations of the first solve after the
    build. Jacobi costs nothing to build, and smoothed-aggregation multigrid only a few V-cycles:
    ``benchmarks/skr.py`` measured a per-matrix rebuild faster than reuse on four of five families
    (high-contrast Darcy 2D/3D, Poisson 3D), so by default they are rebuilt whenever the matrix
    changes. Any kind is kept while the matrix stays the same (heat steps).

    Parameters
    ----------
    kind
        One of :data:`PRECONDITIONERS`.
    rebuild_factor
        For reused kinds: rebuild when a solve needs more than this factor times the iterations
        of the first solve after the last build.
    reuse
        Reuse across different matrices; default: only for the kinds in :data:`REUSED_BY_DEFAULT`.
    symmetric, **options
        Passed to :func:`build_preconditioner`.

    Attributes
    ----------
    builds
        How many times a preconditioner was built.
    fresh
        True while the current preconditioner was built for the matrix it is applied to.
    """

    def __init__(self, kind: str, rebuild_factor: float = 2.0, symmetric: bool = True, reuse: bool | None = None,
                 **options: Any) -> None:
        if kind not in PRECONDITIONERS:
            raise ConfigError(f"preconditioner must be one of {', '.join(PRECONDITIONERS)} (got {kind!r})")
        if not rebuild_factor >= 1.0:
            raise ConfigError(f"rebuild_factor must be >= 1 (got {rebuild_factor!r})")
        self.kind, self.rebuild_factor, self.symmetric, self.options = kind, float(rebuild_factor), symmetric, options
        self.reuse = kind in REUSED_BY_DEFAULT if reuse is None else bool(reuse)
        self.builds = 0
        self.fresh = False
        self._M: spla.LinearOperator | None = None
        self._key: tuple | None = None  # fingerprint of the matrix the preconditioner was built for
        self._shape: tuple[int, int] | None = None
        self._baseline: int | None = None
        self._stale = True

    def get(self, A: sp.spmatrix, force_rebuild: bool = False) -> spla.LinearOperator | None:
        """Return the preconditioner to use for ``A``, building it if needed or asked."""
        if self.kind == "none":
            return None
        key = fingerprint(A)
        same = key == self._key
        if force_rebuild and same:
            force_rebuild = False  # rebuilding for the very same matrix would give the same operator
        if force_rebuild or self._shape != A.shape or (not same and (self._stale or not self.reuse)):
            self._M = build_preconditioner(self.kind, A, symmetric=self.symmetric, **self.options)
            self._key, self._shape = key, A.shape
            self.builds += 1
            self._baseline = None
            self._stale = False
        self.fresh = key == self._key
        return self._M

    def record(self, iterations: int) -> None:
        """Tell the policy how many iterations the last solve with the current preconditioner took."""
        if self._baseline is None:
            self._baseline = max(int(iterations), 1)
        elif iterations > self.rebuild_factor * self._baseline:
            self._stale = True
