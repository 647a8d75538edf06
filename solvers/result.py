"""What every linear solve in pdeop returns: the solution and how it was obtained."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SolveResult:
    """Outcome of one linear solve ``A x = b``.

    Attributes
    ----------
    x
        Solution, float64, shape ``(n,)``.
    converged
        True when ``residual`` meets the requested tolerance.
    iterations
        Krylov (inner) iterations, or V-cycles for a standalone multigrid solve; 0 for a direct solve.
    matvecs
        Products with ``A``, including the ``k`` products that carry a recycled space to a new
        matrix and the products that recompute the true residual.
    precond_applications
        Applications of the preconditioner.
    cycles
        Restart cycles of a restarted method (1 for non-restarted ones, 0 for a direct solve).
    residual
        True relative residual ``||b - A x|| / ||b||``, recomputed from ``x`` (0 when ``b = 0``).
    seconds
        Wall time of the solve, including any retries.
    method
        Method that produced ``x`` (``"gcrodr"``, ``"gmres"``, ``"cg"``, ``"amg"``, ``"direct"``...).
    retries
        Stronger methods tried after the requested one failed.
    """

    x: np.ndarray
    converged: bool
    iterations: int
    matvecs: int
    precond_applications: int
    cycles: int
    residual: float
    seconds: float
    method: str
    retries: int = 0

    def stats(self) -> dict[str, float | int | str | bool]:
        """Return every field except ``x`` as a plain dict (for tables and per-sample statistics)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "x"}
