"""The linear-solve methods a sequence of systems can use, each registered with a stable integer code.

A method is one class in one file of ``solvers/methods/``, decorated with :func:`register_method`::

    @register_method("gmres", code=2)
    class GMRES(LinearMethod):
        ...

Dataset files store the code of the method that produced each sample (``solver(sample)``, with
the code -> name table in its CF ``flag_values`` / ``flag_meanings`` attributes). A code therefore
never changes meaning: it is written explicitly next to the method, never derived from an order,
and registering a second method under a taken code or name is an error. Adding a method is adding
one file; the package imports every module in it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from solvers.errors import ConfigError
from solvers.traits import ProblemTraits

if TYPE_CHECKING:
    from collections.abc import Callable

    from solvers.result import SolveResult

#: registered methods by name (filled by :func:`register_method`)
METHOD_CLASSES: dict[str, type[LinearMethod]] = {}


@dataclasses.dataclass(frozen=True)
class MethodSettings:
    """Settings every method receives (each uses the ones it needs).

    Attributes
    ----------
    rtol
        Required true relative residual.
    m, k
        Restart length and recycle dimension of the GMRES family.
    maxiter
        Inner iterations allowed to one iterative attempt.
    """

    rtol: float
    m: int = 40
    k: int = 20
    maxiter: int = 10_000


class LinearMethod:
    """One way of solving ``A x = b`` along a sequence; subclasses keep whatever state they reuse.

    Class attributes (set by :func:`register_method`: ``name``, ``code``):

    * ``preconditioned`` — whether the sequence builds (and reuses) a preconditioner for it;
    * ``order_matters`` — whether the answers depend on the solve order (state carried from one
      system to the next); a family skips sorting for methods where it does not.
    """

    name: ClassVar[str] = ""
    code: ClassVar[int] = -1
    preconditioned: ClassVar[bool] = True
    order_matters: ClassVar[bool] = True

    def __init__(self, traits: ProblemTraits, settings: MethodSettings) -> None:
        self.traits, self.settings = traits, settings
        #: why the last attempt failed, when it can say more than "missed the tolerance"
        self.failure: str | None = None
        #: sparse factorizations computed so far (for the run summary)
        self.factorizations = 0

    @classmethod
    def check(cls, traits: ProblemTraits, preconditioner: str) -> None:
        """Raise :class:`ConfigError` if the method cannot solve these systems with this preconditioner."""

    @classmethod
    def default_preconditioner(cls, traits: ProblemTraits) -> str:
        """Preconditioner used with ``preconditioner: auto``."""
        return "ilu" if cls.preconditioned else "none"

    def solve(self, A: Any, b: np.ndarray, x0: np.ndarray | None, M: Any) -> SolveResult:
        """One attempt at ``A x = b`` (``M``: the preconditioner or ``None``); the result's
        ``converged`` says whether it met ``settings.rtol`` in the true residual."""
        raise NotImplementedError

    def forget(self) -> None:
        """Drop state carried between solves (called after an attempt that missed the tolerance)."""


def register_method(name: str, code: int) -> Callable[[type[LinearMethod]], type[LinearMethod]]:
    """Class decorator registering a method under ``name`` with the stored integer ``code``.

    Raises
    ------
    ValueError
        If the name or the code is already taken by another class, or the code is not a
        non-negative integer that fits the stored ``int8`` (a programming error, not a user's).
    """
    if not (isinstance(code, int) and 0 <= code <= 127):
        raise ValueError(f"method code must be an integer in [0, 127] (got {code!r} for {name!r})")

    def decorate(cls: type[LinearMethod]) -> type[LinearMethod]:
        old = METHOD_CLASSES.get(name)
        if old is not None and old is not cls:
            raise ValueError(f"solver method {name!r} is registered twice")
        for other in METHOD_CLASSES.values():
            if other.code == code and other.name != name:
                raise ValueError(f"method code {code} of {name!r} is already {other.name!r}'s: codes are stored "
                                 "in dataset files and must never be reused")
        cls.name, cls.code = name, code
        METHOD_CLASSES[name] = cls
        return cls

    return decorate


def _registered() -> dict[str, type[LinearMethod]]:
    import solvers.methods  # noqa: F401  (registers the built-in methods)

    return METHOD_CLASSES


def method_class(name: str) -> type[LinearMethod]:
    """The method registered as ``name``; :class:`ConfigError` listing the known ones otherwise."""
    methods = _registered()
    if name not in methods:
        raise ConfigError(f"solver must be one of {', '.join(solver_choices())} (got {name!r})")
    return methods[name]


def method_names() -> tuple[str, ...]:
    """Names of the registered methods, in code order."""
    return tuple(cls.name for cls in sorted(_registered().values(), key=lambda cls: cls.code))


def method_codes() -> dict[int, str]:
    """The code -> name table of the registered methods (what dataset files record)."""
    return {cls.code: cls.name for cls in sorted(_registered().values(), key=lambda cls: cls.code)}


def solver_choices() -> tuple[str, ...]:
    """Values a ``solver`` setting accepts: ``auto`` and every registered method."""
    return ("auto", *method_names())
