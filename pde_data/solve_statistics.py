"""Per-sample solver statistics of the elliptic families: totals over a sample's solves and the stored variables.

Stored per sample: ``iterations``, ``matvecs``, ``residual`` (true relative residual of the stored
float64 solution), ``solve_seconds``, ``solver`` (integer code of the method, with the code -> name
table of :mod:`solvers.registry` in its CF ``flag_values`` / ``flag_meanings``) and ``retries``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from pde_data.family import Variable
from solvers.registry import method_class, method_codes
from solvers.result import SolveResult
from solvers.sequence import FALLBACK


@dataclasses.dataclass
class SampleStats:
    """Per-sample totals over the solves of one sample (one, or one per time step)."""

    iterations: int = 0
    matvecs: int = 0
    residual: float = 0.0
    seconds: float = 0.0
    retries: int = 0
    methods: dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, result: SolveResult) -> None:
        self.iterations += result.iterations
        self.matvecs += result.matvecs
        self.residual = max(self.residual, result.residual)
        self.seconds += result.seconds
        self.retries += result.retries
        self.methods[result.method] = self.methods.get(result.method, 0) + 1

    def method_code(self) -> int:
        """Code of the method that produced most of this sample's solves (ties: the fallback, the stronger)."""
        best = max(self.methods.items(), key=lambda item: (item[1], item[0] == FALLBACK))
        return method_class(best[0]).code


def statistics_variables() -> dict[str, Variable]:
    codes = method_codes()
    return {
        "iterations": Variable(("sample",), "int32", {"long_name": "Krylov iterations, summed over retries and steps"}),
        "matvecs": Variable(("sample",), "int64",
                            {"long_name": "matrix-vector products incl. recycling overhead and residual checks"}),
        "residual": Variable(("sample",), "float64",
                             {"long_name": "true relative residual ||b - A u|| / ||b|| of the float64 solution "
                                           "(max over steps)"}),
        "solve_seconds": Variable(("sample",), "float64", {"long_name": "wall time of the solves", "units": "s"}),
        "solver": Variable(("sample",), "int8", {"long_name": "method that produced the solution",
                                                 "flag_values": np.array(list(codes), dtype=np.int8),
                                                 "flag_meanings": " ".join(codes.values())}),
        "retries": Variable(("sample",), "int32", {"long_name": "stronger methods needed after the requested one"}),
    }


def statistics_row(stats: SampleStats) -> dict[str, Any]:
    return {"iterations": stats.iterations, "matvecs": stats.matvecs, "residual": stats.residual,
            "solve_seconds": stats.seconds, "solver": stats.method_code(), "retries": stats.retries}
