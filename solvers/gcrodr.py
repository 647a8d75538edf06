"""GCRO-DR: restarted GMRES with deflated restarting and Krylov subspace recycling.

Parks, de Sturler, Mackey, Johnson and Maiti, "Recycling Krylov subspaces for sequences of linear
systems", SIAM J. Sci. Comput. 28 (2006). The solver object keeps ``U, C`` with ``A M^-1 U = C`` and
``C^T C = I`` between calls to :meth:`GCRODR.solve`, so a sequence of related systems reuses the
spectral information (approximate harmonic Ritz vectors of the smallest eigenvalues) of the
previous solves. With ``k = 0`` every cycle is a plain GMRES(m) cycle.

Preconditioning is on the right, ``A M^-1 y = b, x = M^-1 y``, so the least-squares residual that
stops a cycle is the true residual ``b - A x`` (up to rounding, which the final check catches).
Vectors are stored as rows of C-ordered arrays so every projection is one BLAS matrix-vector
product: the new Arnoldi vector is orthogonalised against ``[C; V]`` at once (classical
Gram-Schmidt, repeated only when the DGKS test detects cancellation).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import scipy.linalg as la

from solvers.errors import ConfigError
from solvers.linear_system import Operator, as_matmat, as_matvec, check_system, fingerprint
from solvers.recycling import harmonic_ritz_vectors, inverse_transpose, tall_qr
from solvers.result import SolveResult

_EPS = np.finfo(np.float64).eps
_DGKS = 1.0 / np.sqrt(2.0)  # DGKS: reorthogonalise when one projection removed over ~30% of the norm


@dataclasses.dataclass
class _Counts:
    iterations: int = 0
    matvecs: int = 0
    precond: int = 0
    cycles: int = 0


class GCRODR:
    """Restarted GMRES with deflated restarting and subspace recycling (Parks et al. 2006).

    Keeps ``U, C`` with ``A @ M^-1 @ U = C`` and ``C.T @ C = I`` between calls to :meth:`solve`
    (``k`` vectors of length ``n`` each, plus their unpreconditioned images ``M^-1 U`` when a
    preconditioner is used).

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
        self._U: np.ndarray | None = None  # (p, n) preconditioned-space recycled vectors
        self._Ux: np.ndarray | None = None  # (p, n) = M^-1 U (the same array when M is None)
        self._p = 0  # current recycle dimension (<= k); C lives in self._W[:p]
        self._W: np.ndarray | None = None  # (m + 1, n): rows [C; v_1 ... v_{m-p+1}]
        self._Z: np.ndarray | None = None  # (m, n): M^-1 v_j
        self._A_key: tuple | None = None
        self._A_ref: object | None = None  # keeps id()-based keys valid
        self._M_ref: object | None = None
        self._CtU: np.ndarray | None = None  # C^T U when known from the last update, else None

    @property
    def recycle_dim(self) -> int:
        """Dimension of the recycled space currently held (``<= k``)."""
        return self._p

    @property
    def C(self) -> np.ndarray:
        """Orthonormal basis of ``A M^-1 U`` as rows, shape ``(recycle_dim, n)`` (a copy)."""
        return np.array(self._W[: self._p]) if self._W is not None else np.zeros((0, 0))

    @property
    def U(self) -> np.ndarray:
        """Recycled directions in the solution space (``M^-1 U``) as rows, with ``A @ U.T = C.T``."""
        return np.array(self._Ux) if self._Ux is not None else np.zeros((0, 0))

    # ------------------------------------------------------------------ solve
    def solve(self, A: Operator, b: np.ndarray, x0: np.ndarray | None = None, M: Operator | None = None,
              callback: Callable[[float], None] | None = None, same_operator: bool | None = None) -> SolveResult:
        """Solve ``A x = b``, reusing the recycled space from the previous call.

        Parameters
        ----------
        A
            ``(n, n)`` sparse matrix, dense array or ``LinearOperator``.
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
        n = b.shape[0]
        counts = _Counts()
        matvec = as_matvec(A)
        psolve = as_matvec(M) if M is not None else None
        bnorm = float(np.linalg.norm(b))
        tol = max(self.rtol * bnorm, self.atol)
        method = "gcrodr" if self.k else "gmres"

        x = np.zeros(n) if x0 is None else np.array(x0, dtype=np.float64).reshape(n)
        r = b.copy() if x0 is None or not x.any() else b - matvec(x)
        counts.matvecs += 0 if x0 is None or not x.any() else 1
        self._prepare(A, M, n, matvec, psolve, same_operator, counts)
        self._project(x, r)
        rnorm = float(np.linalg.norm(r))
        residual = rnorm
        converged = False
        history = [rnorm]  # residual norm after each cycle
        while True:
            if rnorm <= tol:
                r = b - matvec(x)
                counts.matvecs += 1
                residual = rnorm = float(np.linalg.norm(r))
                if rnorm <= tol:
                    converged = True
                    break
                self._project(x, r)  # rounding drift: restart from the true residual
                rnorm = float(np.linalg.norm(r))
            if counts.iterations >= self.maxiter:
                break
            r, rnorm = self._cycle(matvec, psolve, x, r, rnorm, tol, self.maxiter - counts.iterations,
                                   callback, bnorm, counts)
            counts.cycles += 1
            history.append(rnorm)
            if rnorm > tol and _hopeless(history, tol, counts, self.maxiter, self.k):
                break
            if counts.cycles % _WINDOW == 0 and rnorm > tol:
                r = b - matvec(x)  # the updated residual drifts from the true one over many cycles
                counts.matvecs += 1
                self._project(x, r)
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
    def _prepare(self, A: Operator, M: Operator | None, n: int, matvec: Callable, psolve: Callable | None,
                 same_operator: bool | None, counts: _Counts) -> None:
        """Size the buffers and carry the recycled space over to this call's ``A M^-1``."""
        if self._W is None or self._W.shape[1] != n:
            self.reset()
            self._W = np.empty((min(self.m, n) + 1, n))
        if psolve is not None and (self._Z is None or self._Z.shape[1] != n):
            self._Z = np.empty((min(self.m, n), n))
        if same_operator is None:
            key = fingerprint(A)
            a_changed = key != self._A_key
        else:
            key = self._A_key if same_operator else None  # None never equals a fingerprint
            a_changed = not same_operator
        if self._p:
            m_changed = M is not self._M_ref
            if m_changed:
                self._Ux = self._U if psolve is None else np.array([psolve(u) for u in self._U])
                counts.precond += 0 if psolve is None else self._p
            if m_changed or a_changed:
                self._carry_to_new_operator(as_matmat(A), counts)
        self._A_key = key
        self._A_ref, self._M_ref = A, M

    def _carry_to_new_operator(self, matmat: Callable, counts: _Counts) -> None:
        """QR of ``A_new M^-1 U``: ``C = Q``, ``U = U R^-1`` (``k`` products with ``A``)."""
        Y = np.asarray(matmat(np.ascontiguousarray(self._Ux.T)))
        counts.matvecs += self._p
        Q, R, keep = tall_qr(Y)
        if keep.size == 0:
            self._p = 0
            self._U = self._Ux = None
            return
        rank = keep.size
        Rinv_t = inverse_transpose(R)
        U = Rinv_t @ self._U[keep]
        Ux = U if self._Ux is self._U else Rinv_t @ self._Ux[keep]
        self._W[:rank] = Q.T
        self._CtU = None
        self._U, self._Ux, self._p = U, Ux, rank

    def _project(self, x: np.ndarray, r: np.ndarray) -> None:
        """``x += U C^T r``, ``r -= C C^T r``: the best correction from the recycled space.

        Repeated once when the projection removed most of ``r`` (the DGKS test, "twice is
        enough"): when the recycled space holds nearly all of the right-hand side (e.g. a time
        step whose solution barely changes) one pass leaves ``r`` with components along ``C`` of
        relative size ``eps ||r_before|| / ||r_after||``. That ``r`` starts the next Arnoldi
        basis, whose loss of orthogonality to ``C`` the recycle update then copies into the new
        ``C``: without the second pass ``C^T C - I`` grew about tenfold per solve of a repeated
        matrix and the solver stalled after twenty solves.
        """
        if self._p:
            C = self._W[: self._p]
            before = float(np.linalg.norm(r))
            for _ in range(2):
                coef = C @ r
                x += coef @ self._Ux
                r -= coef @ C
                after = float(np.linalg.norm(r))
                if after >= _DGKS * before:
                    break
                before = after

    def _cycle(self, matvec: Callable, psolve: Callable | None, x: np.ndarray, r: np.ndarray, beta: float,
               tol: float, budget: int, callback: Callable | None, bnorm: float,
               counts: _Counts) -> tuple[np.ndarray, float]:
        """One cycle: ``m - p`` Arnoldi steps on ``(I - C C^T) A M^-1``, least squares, recycle update.

        Updates ``x`` in place and returns the new residual and its norm.
        """
        W, Z, p = self._W, self._Z, self._p
        n = W.shape[1]
        s = max(1, min(self.m - p, budget, n - p))
        Hbar = np.zeros((s + 1, s))
        B = np.zeros((p, s))
        Rt = np.zeros((s, s))
        rot_c: list[float] = []
        rot_s: list[float] = []
        g = [beta] + [0.0] * s
        np.multiply(r, 1.0 / beta, out=W[p])
        j = 0
        for j in range(1, s + 1):
            v = W[p + j - 1]
            if psolve is not None:
                Z[j - 1] = np.ravel(psolve(v))
                counts.precond += 1
                w = np.asarray(matvec(Z[j - 1]), dtype=np.float64).reshape(n)
            else:
                w = np.asarray(matvec(v), dtype=np.float64).reshape(n)
            counts.matvecs += 1
            basis = W[: p + j]
            h0 = float(np.linalg.norm(w))
            h = basis @ w
            w -= h @ basis
            hn = float(np.linalg.norm(w))
            if hn < _DGKS * h0:
                h2 = basis @ w
                w -= h2 @ basis
                h += h2
                hn = float(np.linalg.norm(w))
            B[:, j - 1] = h[:p]
            Hbar[:j, j - 1] = h[p:]
            Hbar[j, j - 1] = hn
            breakdown = hn <= _EPS * h0
            if breakdown:
                Hbar[j, j - 1] = 0.0
                W[p + j] = 0.0
            else:
                np.multiply(w, 1.0 / hn, out=W[p + j])
            col = Hbar[: j + 1, j - 1].tolist()
            for i in range(j - 1):
                c, sn = rot_c[i], rot_s[i]
                col[i], col[i + 1] = c * col[i] + sn * col[i + 1], -sn * col[i] + c * col[i + 1]
            c, sn, rho = _givens(col[j - 1], col[j])
            rot_c.append(c)
            rot_s.append(sn)
            col[j - 1] = rho
            Rt[:j, j - 1] = col[:j]
            g[j - 1], g[j] = c * g[j - 1], -sn * g[j - 1]
            counts.iterations += 1
            if callback is not None:
                callback(abs(g[j]) / bnorm if bnorm > 0 else abs(g[j]))
            if abs(g[j]) <= tol or breakdown:
                break
        y = _triangular_least_squares(Rt[:j, :j], np.asarray(g[:j]), Hbar[: j + 1, :j], beta)
        x += y @ (Z[:j] if psolve is not None else W[p: p + j])
        if p:
            x -= (B[:, :j] @ y) @ self._Ux
        coef = -(Hbar[: j + 1, :j] @ y)
        coef[0] += beta
        r_new = coef @ W[p: p + j + 1]
        if self.k:
            self._update_recycled(Hbar[: j + 1, :j], B[:, :j], j, psolve is not None)
        return r_new, abs(g[j])

    def _update_recycled(self, Hbar: np.ndarray, B: np.ndarray, j: int, preconditioned: bool) -> None:
        """New ``U, C`` from the harmonic Ritz vectors of this cycle's search space ``[U D, V_j]``."""
        W, p = self._W, self._p
        dim = p + j
        G = np.zeros((dim + 1, dim))
        WtV = np.zeros((dim + 1, dim))
        d = np.zeros(0)
        if p:
            d = 1.0 / np.linalg.norm(self._U, axis=1)
            G[:p, :p] = np.diag(d)
            G[:p, p:] = B
            CtU = self._CtU if self._CtU is not None else W[:p] @ self._U.T
            WtV[:p, :p] = CtU * d
            WtV[p:, :p] = (W[p: dim + 1] @ self._U.T) * d
        G[p:, p:] = Hbar
        WtV[p: p + j, p:] = np.eye(j)
        P = harmonic_ritz_vectors(G, WtV, self.k)
        kn = P.shape[1]
        if kn == 0:
            self._p, self._U, self._Ux = 0, None, None
            return
        Q, R = np.linalg.qr(G @ P)
        diag = np.abs(np.diag(R))
        if diag.min() <= 1e-12 * diag.max():
            return  # degenerate update: keep the current recycled space
        C_new = Q.T @ W[: dim + 1]
        # U_new = [U D, V_j] P R^-1: fold the small factors first so each block is one GEMM
        Rinv_t = inverse_transpose(R)
        from_v = Rinv_t @ P[p:].T
        from_u = Rinv_t @ (P[:p] * d[:, None]).T if p else None
        U = from_v @ W[p: p + j]
        if p:
            U += from_u @ self._U
        if preconditioned:
            Ux = from_v @ self._Z[:j]
            if p:
                Ux += from_u @ self._Ux
        else:
            Ux = U
        W[:kn] = C_new
        self._U, self._Ux, self._p = U, Ux, kn
        # C_new^T U_new = Q^T (W^T V) P R^-1 from small matrices: saves half of the next W^T U product
        self._CtU = Q.T @ WtV @ P @ Rinv_t.T


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


def _givens(a: float, b: float) -> tuple[float, float, float]:
    """Rotation ``[c s; -s c]`` with ``[c s; -s c] @ [a, b] = [rho, 0]``."""
    if b == 0.0:
        return 1.0, 0.0, a
    rho = float(np.hypot(a, b))
    return a / rho, b / rho, rho


def _triangular_least_squares(Rt: np.ndarray, g: np.ndarray, Hbar: np.ndarray, beta: float) -> np.ndarray:
    """Solve the cycle's least-squares problem from its Givens-triangularised factor.

    Falls back to a dense least-squares solve when the triangle is singular (a singular ``A``).
    """
    diag = np.abs(np.diag(Rt))
    if diag.size and diag.min() > _EPS * diag.max():
        return la.solve_triangular(Rt, g)
    rhs = np.zeros(Hbar.shape[0])
    rhs[0] = beta
    return np.linalg.lstsq(Hbar, rhs, rcond=None)[0]
