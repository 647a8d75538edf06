"""The code dataset files store for solutions made by a neural-accelerated Krylov solve.

Such a solve (:func:`solvers.neural_krylov.neural_solve`) needs a trained model bound to each
system, which a ``solver`` setting cannot name: it runs when ``pdeop generate ... --warm-start RUN``
(or ``generate_dataset(..., warm_start=...)``) hands the family one. The method is registered so
that its samples carry their own code; choosing it as ``solver`` is refused with that advice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solvers.errors import ConfigError
from solvers.registry import LinearMethod, register_method
from solvers.result import SolveResult
from solvers.traits import ProblemTraits


@register_method("neural", code=6)
class NeuralKrylov(LinearMethod):
    """Flexible CG / FGMRES with a learned two-level preconditioner (see :mod:`solvers.neural_krylov`)."""

    preconditioned = False

    @classmethod
    def check(cls, traits: ProblemTraits, preconditioner: str) -> None:
        """Always refused as a ``solver`` setting: the method needs a trained model per system."""
        raise ConfigError("solver 'neural' cannot be chosen in a config: it needs a trained operator, given with "
                          "pdeop generate ... --warm-start RUN (Python: generate_dataset(..., warm_start=...)); "
                          "choose one of auto, skr, gcrodr, gmres, cg, amg, direct as solver")

    def solve(self, A: Any, b: np.ndarray, x0: np.ndarray | None, M: Any) -> SolveResult:
        raise ConfigError("solver 'neural' runs only through a warm start (pdeop generate ... --warm-start RUN)")
