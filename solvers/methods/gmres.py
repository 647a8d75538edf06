"""Restarted GMRES(m), right-preconditioned: GCRO-DR without a recycled space."""

from __future__ import annotations

from typing import Any

import numpy as np

from solvers.gcrodr import GCRODR
from solvers.registry import LinearMethod, register_method
from solvers.result import SolveResult


@register_method("gmres", code=2)
class GMRES(LinearMethod):
    """:class:`~solvers.gcrodr.GCRODR` with ``k = 0``: every system starts from scratch."""


    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        s = self.settings
        self.krylov = GCRODR(m=s.m, k=self.recycle_dimension(), rtol=s.rtol, maxiter=s.maxiter)

    def recycle_dimension(self) -> int:
        """Directions carried from one solve to the next (none for GMRES)."""
        return 0

    def solve(self, A: Any, b: np.ndarray, x0: np.ndarray | None, M: Any) -> SolveResult:
        return self.krylov.solve(A, b, x0=x0, M=M)

    def forget(self) -> None:
        """A failed cycle's harmonic Ritz vectors are not worth keeping."""
        self.krylov.reset()
