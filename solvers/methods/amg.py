"""Algebraic multigrid as a preconditioner: CG with a V-cycle for SPD systems, GMRES(m) otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from solvers.gcrodr import GCRODR
from solvers.methods.cg import conjugate_gradients
from solvers.registry import LinearMethod, register_method
from solvers.result import SolveResult
from solvers.traits import ProblemTraits


@register_method("amg", code=4)
class Multigrid(LinearMethod):
    """A Krylov method preconditioned by one pyamg V-cycle (smoothed aggregation by default)."""


    @classmethod
    def default_preconditioner(cls, traits: ProblemTraits) -> str:
        return "amg"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        s = self.settings
        self._gmres = None if self.traits.spd else GCRODR(m=s.m, k=0, rtol=s.rtol, maxiter=s.maxiter)

    def solve(self, A: Any, b: np.ndarray, x0: np.ndarray | None, M: Any) -> SolveResult:
        if self._gmres is None:
            return conjugate_gradients(A, b, x0, M, self.settings.rtol, self.settings.maxiter, self.name)
        return self._gmres.solve(A, b, x0=x0, M=M)
