"""Linear algebra and time integration for pdeop.

This package knows nothing about datasets or models: it holds Krylov solvers (GCRO-DR with
subspace recycling), the ordering of sequences of systems, preconditioners and the spectral time
integrators used by the dataset generators.
"""

from solvers.errors import ConfigError, PdeopError, SolverError, StabilityError
from solvers.version import __version__

__all__ = ["ConfigError", "PdeopError", "SolverError", "StabilityError", "__version__"]
