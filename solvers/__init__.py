"""Linear algebra and time integration for pdeop.

This package knows nothing about datasets or models: it holds Krylov solvers (GCRO-DR with
subspace recycling), the ordering of sequences of systems, preconditioners and the spectral time
integrators used by the dataset generators.

The error types and the version are imported eagerly (every layer needs them, and they are
light); the solvers are imported lazily on first use, so ``import solvers.errors`` — and with it
``pdeop --help`` — does not pay for SciPy's linear algebra.
"""

from __future__ import annotations

from solvers.errors import ConfigError, PdeopError, SolverError, StabilityError
from solvers.lazy_exports import lazy_exports
from solvers.version import __version__

_LAZY = {
    "GCRODR": "solvers.gcrodr",
    "gmres": "solvers.gcrodr",
    "harmonic_ritz_vectors": "solvers.recycling",
    "PRECONDITIONERS": "solvers.preconditioners",
    "PreconditionerReuse": "solvers.preconditioners",
    "build_preconditioner": "solvers.preconditioners",
    "SolveResult": "solvers.result",
    "METHODS": "solvers.sequence",
    "ProblemTraits": "solvers.sequence",
    "SequenceSolver": "solvers.sequence",
    "choose_method": "solvers.sequence",
    "greedy_order": "solvers.sorting",
    "low_mode_features": "solvers.sorting",
    "scalable_order": "solvers.sorting",
    "similarity_order": "solvers.sorting",
    "ETDRK4": "solvers.etdrk4",
    "phi_coefficients": "solvers.etdrk4",
    "Rollout": "solvers.rollout",
    "burgers_stepper": "solvers.burgers",
    "kuramoto_sivashinsky_stepper": "solvers.kuramoto_sivashinsky",
    "VorticityCN": "solvers.navier_stokes",
    "VorticityAdvection": "solvers.navier_stokes",
    "navier_stokes_stepper": "solvers.navier_stokes",
}

__all__ = ["ConfigError", "PdeopError", "SolverError", "StabilityError", "__version__", *sorted(_LAZY)]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
