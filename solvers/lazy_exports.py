"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package lists its public names and the submodule each lives in; the submodule is imported on
the first access of one of its names, so importing the package itself stays light (``pdeop
--help`` and ``import pde_data`` pay for neither torch nor SciPy)::

    _EXPORTS = {"GCRODR": "solvers.gcrodr", "SolveResult": "solvers.result"}
    __all__ = sorted(_EXPORTS)
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

This module imports only the standard library, so every layer (``solvers``, ``pde_data``,
``operators``) may use it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build a package's module-level ``__getattr__`` and ``__dir__`` from a name -> module map.

    Parameters
    ----------
    package : str
        The package's ``__name__``; the package must be in :data:`sys.modules` (it is while its
        ``__init__`` runs).
    exports : Mapping[str, str]
        Public name -> dotted name of the module that defines it.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)``. ``__getattr__(name)`` imports the module of ``name``, stores
        the value in the package's namespace (later accesses are ordinary attribute look-ups) and
        returns it; any other name raises :class:`AttributeError` as a plain module would.
        ``__dir__()`` lists the package's namespace together with the exported names.
    """
    namespace = sys.modules[package].__dict__
    table = dict(exports)

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
