"""Refusing numerically singular systems after their solve, from a provable condition-number bound."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from solvers.errors import SolverError

#: a matrix whose condition number provably exceeds this is reported as singular
SINGULAR_CONDITION = 1e12


def condition_lower_bound(A: sp.spmatrix, b: np.ndarray, x: np.ndarray) -> float:
    """A provable lower bound of ``cond_2(A)`` from one solve: ``max_j ||A e_j|| * ||x|| / ||b||``.

    ``||A||_2`` is at least any column's norm and ``||A^-1||_2 >= ||x|| / ||A x||``, and ``A x`` is
    ``b`` to within the verified tolerance.
    """
    bnorm = float(np.linalg.norm(b))
    if bnorm == 0:
        return 1.0
    column = float(np.sqrt(np.asarray(abs(sp.csr_matrix(A)).power(2).sum(axis=0)).max()))
    return column * float(np.linalg.norm(x)) / bnorm


def check_conditioning(label: str, A: sp.spmatrix, b: np.ndarray, x: np.ndarray) -> None:
    bound = condition_lower_bound(A, b, x)
    if not bound <= SINGULAR_CONDITION:
        raise SolverError(f"{label}: the system is numerically singular (condition number >= {bound:.3g}); "
                          "its solution would be meaningless — move the parameters away from the "
                          "resonance or degeneracy (e.g. a Helmholtz wavenumber at a Dirichlet eigenvalue)")
