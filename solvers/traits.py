"""What the choice of a linear-solve method needs to know about a family's systems, and the ``auto`` rule.

A family describes its systems by :class:`ProblemTraits` — dimension, size, symmetry, definiteness,
whether only the right-hand side changes — and, where ``benchmarks/skr*.py`` has measured it, by
its *crossover*: which method was fastest up to which size. :func:`choose_method` uses the
crossover when the family has one and falls back to a generic rule otherwise, so ``solver: auto``
runs what was measured, not what was guessed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

#: the generic rule's size limit for sparse LU in 2D (above it: multigrid for SPD problems)
DIRECT_2D_LIMIT = 25_000


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
    crossover
        ``((max_unknowns, method), ...)`` in increasing ``max_unknowns``: the method measured
        fastest for this family up to that size (``benchmarks/skr*.py``); sizes beyond the last
        entry use its method. Empty: the generic rule of :func:`choose_method`.
    """

    dim: int
    n_unknowns: int
    symmetric: bool
    definite: bool
    same_matrix: bool = False
    crossover: tuple[tuple[float, str], ...] = ()

    @property
    def spd(self) -> bool:
        """Symmetric positive definite."""
        return self.symmetric and self.definite


def choose_method(traits: ProblemTraits) -> str:
    """The ``auto`` rule: the method measured fastest for a family of this kind and size.

    A family's own :attr:`ProblemTraits.crossover` decides when it has one. Otherwise the
    generic rule, from the measurements of ``benchmarks/skr.py`` (CPU time per system, rtol 1e-8,
    single-threaded BLAS; ``benchmarks/results/skr.md``):

    * only the right-hand side changes -> ``"direct"``: one sparse LU per trajectory, then two
      triangular solves per step (heat at 99^2 unknowns: ~3 ms per step, 4x faster than the next
      method, CG with Jacobi);
    * 2D with up to :data:`DIRECT_2D_LIMIT` unknowns -> ``"direct"``: SuperLU's fill stays modest
      in 2D, and at ~10^4 unknowns it beat every iterative method on every 2D family;
    * larger 2D SPD -> ``"amg"``; larger 2D non-SPD -> ``"direct"``;
    * 3D SPD -> ``"cg"`` with Jacobi (24^3 Darcy: 3x faster than multigrid, 40x faster than LU);
    * 3D non-SPD -> ``"skr"`` below the sizes where the 3D families measured otherwise.

    Parameters
    ----------
    traits
        The family's problem traits.

    Returns
    -------
    str
        The name of a registered method (never ``"auto"``).
    """
    for limit, method in traits.crossover:
        if traits.n_unknowns <= limit:
            return method
    if traits.crossover:
        return traits.crossover[-1][1]
    if traits.same_matrix:
        return "direct"
    if traits.dim <= 2:
        if traits.n_unknowns <= DIRECT_2D_LIMIT or not traits.spd:
            return "direct"
        return "amg"
    return "cg" if traits.spd else "skr"


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
