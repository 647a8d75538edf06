"""Exception types shared by every layer of pdeop.

User mistakes (bad settings, bad paths, bad files) raise :class:`ConfigError`; the CLI prints its
message as one line and exits with code 2. Numerical failures that the user can fix by changing a
setting (an unstable time step, a singular set-up) raise :class:`StabilityError` or
:class:`SolverError`; the CLI prints them as one line and exits with code 1. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class PdeopError(Exception):
    """Base class of the errors pdeop reports to the user as one line."""

    exit_code: int = 1


class ConfigError(PdeopError, ValueError):
    """A setting, file or argument given by the user is invalid.

    The message names the field, what was expected and what was given.
    """

    exit_code = 2


class StabilityError(PdeopError, FloatingPointError):
    """A time integration produced non-finite values or broke its stability bound."""


class SolverError(PdeopError, ArithmeticError):
    """A linear solve could not reach its tolerance even with the strongest method."""
