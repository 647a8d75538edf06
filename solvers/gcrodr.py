"""GCRO-DR: restarted GMRES with deflated restarting and Krylov subspace recycling.

Parks, de Sturler, Mackey, Johnson and Maiti, "Recycling Krylov subspaces for sequences of linear
systems", SIAM J. Sci. Comput. 28 (2006). The solver object keeps ``U, C`` with ``A M^-1 U = C`` and
``C^T C = I`` between calls to :meth:`GCRODR.solve`, so a sequence of related systems reuses the
spectral information (approximate harmonic Ritz vectors of the smallest eigenvalues) of the
previous solves. With ``k = 0`` every cycle is a plain GMRES(m) cycle. Real systems are solved in
float64, complex ones (a complex ``A``, ``b`` or ``M``) in complex128 with the same algorithm.

Preconditioning is on the right, ``A M^-1 y = b, x = M^-1 y``, so the least-squares residual that
stops a cycle is the true residual ``b - A x`` (up to rounding, which the final check catches).
Everything is kept in the preconditioned space (``U``, the Arnoldi vectors); each cycle's
correction is mapped to the solution space by one application of ``M^-1``, as in right-
preconditioned GMRES, so nothing of length ``n`` is stored twice.

Cost per iteration is that of GMRES plus the ``k`` recycled directions in the orthogonalisation,
and nothing else: vectors are rows of C-ordered buffers allocated once; each step orthogonalises
against ``[C; W]`` by classical Gram-Schmidt with a lagged second pass, two two-column BLAS
products per step (:mod:`solvers.arnoldi`); the Hessenberg column is triangularised by Givens
rotations as it completes; the recycled space is updated once per cycle by a few small dense
LAPACK calls and three matrix-matrix products into preallocated buffers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import scipy.linalg as la
from scipy.linalg import blas

from solvers.errors import ConfigError
from solvers.arnoldi import CONJ_TRANSPOSE, ArnoldiCycle, arnoldi_cycle, vector_norm
from solvers.linear_system import Operator, as_matmat, as_matvec, check_system, fingerprint
from solvers.recycling import harmonic_ritz_vectors, inverse_transpose, tall_qr
from solvers.result import SolveResult



@dataclasses.dataclass
class _Counts:
    iterations: int = 0
    matvecs: int = 0
    precond: int = 0
    cycles: int = 0


class GCRODR:
    """Restarted GMRES with deflated restarting and subspace recycling (Parks et al. 2006).

    Keeps ``U, C`` with ``A @ M^-1 @ U = C`` and ``C^H C = I`` between calls to :meth:`solve`
    (``k`` vectors of length ``n`` each; ``U`` in the preconditioned space).

    Parameters
    ----------
    m
        Restart length: each cycle builds a search space of dimension ``m`` (``k`` recycled
        directions plus ``m - k`` Arnoldi vectors).
    k
        Recycle dimension; ``0`` gives GMRES(m) exactly.
    rtol, atol
        Stop when ``||b - A x|| <= max(rtol * ||b||, atol)``.
    maxiter
        Maximum number of inner (Arnoldi) iterations per solve, over all cycles. A solve whose
        measured convergence rate over the last 10 cycles (judged after a tenth of the budget)
        could not reach the tolerance within ten times the remaining budget stops early
        (reported as not converged).
    """

    def __init__(self, m: int = 40, k: int = 20, rtol: float = 1e-8, atol: float = 0.0,
                 maxiter: int = 10_000) -> None:
        if not (isinstance(m, (int, np.integer)) and m >= 1):
            raise ConfigError(f"restart length m must be an integer >= 1 (got {m!r})")
        if not (isinstance(k, (int, np.integer)) and 0 <= k < m):
            raise ConfigError(f"recycle dimension k must be an integer with 0 <= k < m = {m} (got {k!r})")
        if not rtol >= 0 or not atol >= 0:
            raise ConfigError(f"rtol and atol must be >= 0 (got rtol={rtol!r}, atol={atol!r})")
        if not (isinstance(maxiter, (int, np.integer)) and maxiter >= 1):
            raise ConfigError(f"maxiter must be an integer >= 1 (got {maxiter!r})")
        self.m, self.k, self.rtol, self.atol, self.maxiter = int(m), int(k), float(rtol), float(atol), int(maxiter)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the recycled space (the next solve starts with a plain GMRES cycle)."""
        self._p = 0  # current recycle dimension (<= k); C lives in self._W[:p]
        self._W: np.ndarray | None = None  # (m + 2, n): rows [C; w_1 ... w_{m-p+1}], orthonormal, + scratch
        self._Z: np.ndarray | None = None  # (m, n): a cycle's domain vectors z_j, A M^-1 z_j in span [C; W]
        self._Ubuf: np.ndarray | None = None  # (2, k, n): U, double-buffered for the cycle update
        self._cur = 0  # which half of _Ubuf holds the current U
        self._scratch: np.ndarray | None = None  # (k, n): the new C before it replaces W[:p]
        self._psolve: Callable | None = None  # M^-1 of the last solve (for the U property)
        self._gemv, self._gemm = blas.dgemv, blas.dgemm  # BLAS of the buffers' type
        self._A_key: tuple | None = None
        self._A_ref: object | None = None  # keeps id()-based keys valid
        self._M_ref: object | None = None
        self._CtU: np.ndarray | None = None  # C^T U when known from the last update, else None

    @property
    def _U(self) -> np.ndarray:
        return self._Ubuf[self._cur, : self._p]

    @property
    def recycle_dim(self) -> int:
        """Dimension of the recycled space currently held (``<= k``)."""
        return self._p

    @property
    def C(self) -> np.ndarray:
        """Orthonormal basis of ``A M^-1 U`` as rows, shape ``(recycle_dim, n)`` (a copy; ``C.conj() @ C.T = I``)."""
        return np.array(self._W[: self._p]) if self._W is not None else np.zeros((0, 0))

    @property
    def U(self) -> np.ndarray:
        """Recycled directions in the solution space (``M^-1 U``) as rows, with ``A @ U.T = C.T``."""
        if not self._p:
            return np.zeros((0, 0))
        return np.array([self._psolve(u) for u in self._U]) if self._psolve is not None else np.array(self._U)

    # ------------------------------------------------------------------ solve
    def solve(self, A: Operator, b: np.ndarray, x0: np.ndarray | None = None, M: Operator | None = None,
              callback: Callable[[float], None] | None = None, same_operator: bool | None = None) -> SolveResult:
        """Solve ``A x = b``, reusing the recycled space from the previous call.

        Parameters
        ----------
        A
            ``(n, n)`` sparse matrix, dense array or ``LinearOperator`` (real or complex).
        b
            Right-hand side, shape ``(n,)``.
        x0
            Initial guess (default zero).
        M
            Preconditioner approximating ``A^-1`` (anything with ``@`` or ``.matvec``), applied on
            the right.
        callback
            Called after every inner iteration with the relative residual estimate
            ``||r_j|| / ||b||`` (like SciPy's ``callback_type="pr_norm"``).
        same_operator
            Whether ``A`` equals the previous call's matrix. ``None`` (default) decides by a
            checksum of the matrix; a new matrix costs ``k`` products to carry ``U, C`` over.

        Returns
        -------
        SolveResult
            ``converged`` is true only if the recomputed true residual meets the tolerance.
        """
        start = time.perf_counter()
        b = check_system(A, b)
        dtype = np.result_type(b.dtype, getattr(A, "dtype", np.float64), getattr(M, "dtype", np.float64), np.float64)
        b = b.astype(dtype, copy=False)
        n = b.shape[0]
        counts = _Counts()
        matvec = as_matvec(A)
        psolve = as_matvec(M) if M is not None else None
        bnorm = float(np.linalg.norm(b))
        tol = max(self.rtol * bnorm, self.atol)
        method = "gcrodr" if self.k else "gmres"

        x = np.zeros(n, dtype) if x0 is None else np.array(x0, dtype=dtype).reshape(n)
        started = x0 is not None and bool(x.any())
        r = (b - matvec(x)).astype(dtype, copy=False) if started else b.copy()
        counts.matvecs += int(started)
        self._prepare(A, M, n, dtype, psolve, same_operator, counts)
        self._project(x, r, psolve, counts)
        rnorm = float(np.linalg.norm(r))
        residual = rnorm
        converged = False
        history = [rnorm]  # residual norm after each cycle
        while True:
            if rnorm <= tol:
                r = np.asarray(b - matvec(x), dtype=dtype)
                counts.matvecs += 1
                residual = rnorm = float(np.linalg.norm(r))
                if rnorm <= tol:
                    converged = True
                    break
                self._project(x, r, psolve, counts)  # rounding drift: restart from the true residual
                rnorm = float(np.linalg.norm(r))
            if counts.iterations >= self.maxiter:
                break
            rnorm = self._cycle(matvec, psolve, x, r, rnorm, tol, self.maxiter - counts.iterations, callback, bnorm,
                                counts)
            counts.cycles += 1
            history.append(rnorm)
            if rnorm > tol and _hopeless(history, tol, counts, self.maxiter, self.k):
                break
            if counts.cycles % _WINDOW == 0 and rnorm > tol:
                r = np.asarray(b - matvec(x), dtype=dtype)  # the updated residual drifts from the true one over many cycles
                counts.matvecs += 1
                self._project(x, r, psolve, counts)
                rnorm = float(np.linalg.norm(r))
        if not converged:
            residual = float(np.linalg.norm(b - matvec(x)))
            counts.matvecs += 1
            converged = residual <= tol
        rel = residual / bnorm if bnorm > 0 else residual
        return SolveResult(x=x, converged=converged, iterations=counts.iterations, matvecs=counts.matvecs,
                           precond_applications=counts.precond, cycles=counts.cycles, residual=rel,
                           seconds=time.perf_counter() - start, method=method)

    # ------------------------------------------------------------------ pieces
    def _allocate(self, n: int, dtype: np.dtype) -> None:
        """Size the work buffers (once per size and type; a new size or type forgets the recycled space)."""
        if self._W is None or self._W.shape[1] != n or self._W.dtype != dtype:
            self.reset()
            self._W = np.empty((min(self.m, n) + 2, n), dtype)  # one spare row for the Gram-Schmidt pair
            if self.k:
                self._Ubuf = np.empty((2, self.k, n), dtype)
                self._scratch = np.empty((self.k, n), dtype)
            self._Z = np.empty((min(self.m, n), n), dtype)  # the domain vectors of a cycle
            self._gemv, self._gemm = blas.get_blas_funcs(("gemv", "gemm"), dtype=dtype)

    def _prepare(self, A: Operator, M: Operator | None, n: int, dtype: np.dtype, psolve: Callable | None,
                 same_operator: bool | None, counts: _Counts) -> None:
        """Size the buffers and carry the recycled space over to this call's ``A M^-1``."""
        self._allocate(n, dtype)
        if same_operator is None:
            key = fingerprint(A)
            a_changed = key != self._A_key
        else:
            key = self._A_key if same_operator else None  # None never equals a fingerprint
            a_changed = not same_operator
        if self._p and (M is not self._M_ref or a_changed or not self._orthonormal()):
            self._carry_to_new_operator(as_matmat(A), psolve, counts)
        self._A_key = key
        self._A_ref, self._M_ref, self._psolve = A, M, psolve

    def _orthonormal(self) -> bool:
        """Whether ``C^H C = I`` still holds to 1e-12 (one small Gram matrix, ~k^2 n flops).

        Only a new matrix re-orthonormalises ``C``; along a sequence with one matrix (implicit time
        steps) rounding could accumulate from update to update, so the invariant is checked at each
        solve and restored by the same QR a new matrix gets when it has drifted.
        """
        C = self._W[: self._p].T
        return bool(np.abs(self._gemm(1.0, C, C, trans_a=CONJ_TRANSPOSE) - np.eye(self._p)).max() <= 1e-12)

    def _carry_to_new_operator(self, matmat: Callable, psolve: Callable | None, counts: _Counts) -> None:
        """QR of ``A_new M^-1 U``: ``C = Q``, ``U = U R^-1`` (``k`` products with ``A`` and with ``M^-1``)."""
        p = self._p
        Ux = self._U.T if psolve is None else np.column_stack([np.ravel(psolve(u)) for u in self._U])
        Y = np.asarray(matmat(Ux))  # (n, p): the columns A M^-1 u_i
        counts.matvecs += p
        counts.precond += 0 if psolve is None else p
        Q, R, keep = tall_qr(Y)
        if keep.size == 0:
            self._p = 0
            return
        rank = keep.size
        Rinv_t = inverse_transpose(R)
        nxt = 1 - self._cur
        np.matmul(Rinv_t, self._U[keep], out=self._Ubuf[nxt, :rank])
        self._W[:rank] = Q.T
        self._CtU = None
        self._cur, self._p = nxt, rank

    def _project(self, x: np.ndarray, r: np.ndarray, psolve: Callable | None, counts: _Counts) -> None:
        """``x += M^-1 U C^T r``, ``r -= C C^T r``: the best correction from the recycled space."""
        if self._p:
            coef = self._project_residual(r)
            _add_preconditioned(x, self._gemv(1.0, self._U.T, coef), psolve, counts)

    def _project_residual(self, r: np.ndarray) -> np.ndarray:
        """``r -= C C^H r`` in place; returns ``C^H r`` (the coefficients of the matching ``U`` correction)."""
        Ct = self._W[: self._p].T
        coef = self._gemv(1.0, Ct, r, trans=CONJ_TRANSPOSE)
        self._gemv(-1.0, Ct, coef, beta=1.0, y=r, overwrite_y=1)
        return coef

    def _cycle(self, matvec: Callable, psolve: Callable | None, x: np.ndarray, r: np.ndarray, beta: float,
               tol: float, budget: int, callback: Callable | None, bnorm: float, counts: _Counts) -> float:
        """One cycle: ``m - p`` Arnoldi steps on ``(I - C C^H) A M^-1``, least squares, recycle update.

        Updates ``x`` and ``r`` in place and returns the new residual norm.
        """
        W, p, gemv = self._W, self._p, self._gemv
        n = W.shape[1]
        s = max(1, min(self.m - p, budget, n - p))
        coef0 = np.zeros(p, W.dtype)
        if p:
            # r = b - A x is orthogonal to C only up to rounding relative to the residual before
            # the last cycle; once the residual has dropped by many orders that error would enter
            # V's orthogonality against C, so project it out again (x follows at the cycle's end)
            coef0 = self._project_residual(r)
            beta = vector_norm(r)
        np.multiply(r, 1.0 / beta, out=W[p])

        def apply(z: np.ndarray) -> np.ndarray:
            counts.matvecs += 1
            if psolve is None:
                return matvec(z)
            counts.precond += 1
            return matvec(np.ravel(psolve(z)))

        cycle = arnoldi_cycle(apply, W, self._Z, p, s, beta, tol, (gemv, self._gemm), callback, bnorm)
        k, y = cycle.k, cycle.y
        counts.iterations += k
        # x += M^-1 (Z_k y + U (coef0 - B y)): one application of M^-1 per cycle
        t = gemv(1.0, self._Z[:k].T, y)
        if p:
            t = gemv(1.0, self._U.T, coef0 - cycle.B @ y, beta=1.0, y=t, overwrite_y=1)
        _add_preconditioned(x, t, psolve, counts)
        coef = -(cycle.Hbar @ y)
        coef[0] += beta
        gemv(1.0, W[p: p + k + 1].T, coef, beta=0.0, y=r, overwrite_y=1)
        if self.k:
            self._update_recycled(cycle)
        return cycle.residual

    def _update_recycled(self, cycle: ArnoldiCycle) -> None:
        """New ``U, C`` from the harmonic Ritz vectors of this cycle's search space ``[U D, Z_k]``.

        ``A M^-1 [U D, Z_k] = [C, W_{k+1}] G``; the new recycled directions are ``[U D, Z_k] P R^-1``
        and their images ``[C, W_{k+1}] Q`` for the thin QR ``G P = Q R``, so ``C`` stays orthonormal.
        """
        W, p, gemm, j = self._W, self._p, self._gemm, cycle.k
        dim = p + j
        G = np.zeros((dim + 1, dim), W.dtype)
        WtV = np.zeros((dim + 1, dim), W.dtype)  # [C, W]^H [U D, Z]
        d = np.zeros(0)
        if p:
            U = self._U
            d = 1.0 / np.sqrt(np.einsum("ij,ij->i", U.conj() if np.iscomplexobj(U) else U, U).real)
            G[:p, :p] = np.diag(d)
            G[:p, p:] = cycle.B
            CtU = self._CtU if self._CtU is not None else gemm(1.0, W[:p].T, U.T, trans_a=CONJ_TRANSPOSE)
            WtV[:p, :p] = CtU * d
            WtV[p:, :p] = gemm(1.0, W[p: dim + 1].T, U.T, trans_a=CONJ_TRANSPOSE) * d
        G[p:, p:] = cycle.Hbar
        WtV[:, p:] = cycle.ZW
        P = harmonic_ritz_vectors(G, WtV, self.k)
        kn = P.shape[1]
        if kn == 0:
            self._p = 0
            return
        Q, R = np.linalg.qr(G @ P)
        diag = np.abs(np.diag(R))
        if diag.min() <= 1e-12 * diag.max():
            return  # degenerate update: keep the current recycled space
        # U_new = [U D, Z_k] P R^-1 = Z_k F_z + U F_u: two products into the other half of the buffer
        F = P @ la.inv(R)
        nxt = 1 - self._cur
        _combine(gemm, self._Ubuf[nxt, :kn], F[p:], self._Z[:j], d[:, None] * F[:p], self._U if p else None)
        np.matmul(Q.T, W[: dim + 1], out=self._scratch[:kn])  # C_new = [C, W_{k+1}] Q
        W[:kn] = self._scratch[:kn]
        # C_new^H U_new = Q^H (W^H V) P R^-1 from small matrices: saves half of the next W^H U product
        self._CtU = Q.conj().T @ WtV @ F
        self._cur, self._p = nxt, kn


def _add_preconditioned(x: np.ndarray, t: np.ndarray, psolve: Callable | None, counts: _Counts) -> None:
    """``x += M^-1 t`` (``x += t`` without a preconditioner)."""
    if psolve is None:
        x += t
    else:
        x += np.ravel(psolve(t))
        counts.precond += 1


def _combine(gemm: Callable, out: np.ndarray, Fv: np.ndarray, V: np.ndarray, Fu: np.ndarray,
             U: np.ndarray | None) -> None:
    """``out = Fv^T V + Fu^T U`` for row-stored vectors, written in place (one or two GEMMs)."""
    np.matmul(Fv.T, V, out=out)
    if U is not None:
        gemm(1.0, U.T, Fu, beta=1.0, c=out.T, overwrite_c=1)


_WINDOW = 10  # cycles over which the convergence rate is measured


def _hopeless(history: list[float], tol: float, counts: _Counts, maxiter: int, k: int) -> bool:
    """Whether the solve cannot reach ``tol`` within ``maxiter``, judged from its residual history.

    A GMRES(m) cycle that makes no progress at all repeats itself forever (same residual, same
    Krylov space), so one such cycle ends a ``k = 0`` solve. Otherwise, once a tenth of the
    budget is spent, the mean rate over the last ``_WINDOW`` cycles is extrapolated; a solve that
    would need over ten times the cycles left is stopped now, so that a stronger method can take
    over without burning the whole budget.
    """
    if k == 0 and history[-1] > (1.0 - 1e-12) * history[-2]:
        return True
    if len(history) <= _WINDOW or counts.iterations < 0.1 * maxiter:
        return False  # indefinite problems often plateau before converging: judge only later
    rate = (history[-1] / history[-1 - _WINDOW]) ** (1.0 / _WINDOW)
    if not rate < 1.0 - 1e-12:
        return True
    cycles_left = (maxiter - counts.iterations) / (counts.iterations / counts.cycles)
    return np.log(tol / history[-1]) / np.log(rate) > 10.0 * cycles_left


def gmres(A: Operator, b: np.ndarray, x0: np.ndarray | None = None, *, rtol: float = 1e-8, atol: float = 0.0,
          restart: int = 40, maxiter: int = 10_000, M: Operator | None = None,
          callback: Callable[[float], None] | None = None) -> SolveResult:
    """Restarted GMRES(restart) with right preconditioning: :class:`GCRODR` with ``k = 0``.

    Parameters and result as in :meth:`GCRODR.solve`; ``maxiter`` counts inner iterations.
    """
    return GCRODR(m=restart, k=0, rtol=rtol, atol=atol, maxiter=maxiter).solve(A, b, x0=x0, M=M, callback=callback)
