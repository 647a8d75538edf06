"""Linear algebra and time integration for pdeop.

This package knows nothing about datasets or models: it holds Krylov solvers (GCRO-DR with
subspace recycling), the ordering of sequences of systems, preconditioners and the spectral time
integrators used by the dataset generators.
"""

from solvers.errors import ConfigError, PdeopError, SolverError, StabilityError
from solvers.gcrodr import GCRODR, gmres, harmonic_ritz_vectors
from solvers.preconditioners import PRECONDITIONERS, PreconditionerReuse, build_preconditioner
from solvers.result import SolveResult
from solvers.sequence import METHODS, ProblemTraits, SequenceSolver, choose_method
from solvers.sorting import greedy_order, low_mode_features, scalable_order, similarity_order
from solvers.version import __version__

__all__ = [
    "ConfigError",
    "PdeopError",
    "SolverError",
    "StabilityError",
    "__version__",
    "GCRODR",
    "gmres",
    "harmonic_ritz_vectors",
    "PRECONDITIONERS",
    "PreconditionerReuse",
    "build_preconditioner",
    "SolveResult",
    "METHODS",
    "ProblemTraits",
    "SequenceSolver",
    "choose_method",
    "greedy_order",
    "low_mode_features",
    "scalable_order",
    "similarity_order",
]
