"""The interface of an import format and the format registry.

A format is a module of :mod:`pde_data.importers` with a class registered by :func:`register_format`:
``matches(inventory)`` says whether a file has its layout, ``plan(inventory, settings)`` returns an
:class:`ImportPlan`: the pdeop :class:`~pde_data.family.Layout` of the converted file and a reader of
sample blocks. The converter (:mod:`pde_data.importers.convert`) does the rest once for all formats.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from pde_data.family import Layout
from pde_data.importers.source import SourceInventory
from solvers.errors import ConfigError

FORMATS: dict[str, type[ImportFormat]] = {}


@dataclasses.dataclass
class ImportPlan:
    """How one source file becomes a pdeop dataset file.

    Attributes
    ----------
    problem
        The ``problem`` attribute of the converted file (a family name where one fits).
    layout
        Coordinates, per-sample and static variables, and the physical attributes found in the source.
    n_samples
        Samples in the source.
    read
        ``read(start, stop)`` returns ``{variable: array}`` for samples ``start .. stop - 1``, the first
        axis being the sample, in the layout's dimension order.
    periodic
        Whether the grid is periodic, when no family of that name says so.
    close
        Releases the source.
    extra
        Further root attributes (e.g. the source's train / valid / test split sizes).
    """

    problem: str
    layout: Layout
    n_samples: int
    read: Callable[[int, int], dict[str, np.ndarray]]
    periodic: bool = False
    close: Callable[[], None] = lambda: None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class ImportFormat:
    """Base of an import format: a published layout of PDE data."""

    name: ClassVar[str]
    #: one line for ``pdeop import --help``
    summary: ClassVar[str] = ""

    @staticmethod
    def matches(source: SourceInventory) -> bool:
        """Whether ``source`` has this layout (names and shapes only; nothing is read)."""
        raise NotImplementedError

    @staticmethod
    def plan(source: SourceInventory, settings: dict[str, Any]) -> ImportPlan:
        """The conversion of ``source``; consumes the keys of ``settings`` it understands (``dt``...)."""
        raise NotImplementedError


def register_format(name: str) -> Callable[[type[ImportFormat]], type[ImportFormat]]:
    """Class decorator adding an import format to :data:`FORMATS` under ``name``."""

    def decorate(cls: type[ImportFormat]) -> type[ImportFormat]:
        if name in FORMATS and FORMATS[name] is not cls:
            raise ValueError(f"import format {name!r} is registered twice")
        cls.name = name
        FORMATS[name] = cls
        return cls

    return decorate


def formats() -> dict[str, type[ImportFormat]]:
    """Every import format, by name (importing the format modules of this package registers them)."""
    import pde_data.importers as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return dict(sorted(FORMATS.items()))


def choose_format(source: SourceInventory, name: str | None) -> type[ImportFormat]:
    """The format named ``name``, or the only one whose layout ``source`` has.

    Raises
    ------
    ConfigError
        For an unknown name, a file that does not have the named layout, or a file matching no
        layout (the message lists the arrays and shapes found) or several (use ``--format``).
    """
    known = formats()
    if name is not None:
        if name not in known:
            raise ConfigError(f"--format: unknown format {name!r}; known formats: {', '.join(known)}")
        if not known[name].matches(source):
            raise ConfigError(f"{source.path} does not have the {name} layout: it holds {source.describe()}")
        return known[name]
    found = [cls for cls in known.values() if cls.matches(source)]
    if not found:
        raise ConfigError(f"{source.path} matches no known layout: it holds {source.describe()}; "
                          f"known formats: {', '.join(known)} (see 'pdeop import --help')")
    if len(found) > 1:
        raise ConfigError(f"{source.path} matches several layouts ({', '.join(c.name for c in found)}); "
                          f"choose one with --format")
    return found[0]


def channel_names(count: int, base: str = "u") -> list[str]:
    """Variable names of ``count`` channels: ``u`` for one, ``u0, u1, ...`` for several."""
    return [base] if count == 1 else [f"{base}{c}" for c in range(count)]


def setting(settings: dict[str, Any], key: str, default: float) -> float:
    """Pop the numeric import setting ``key`` (``--set key=value``), or ``default``."""
    value = settings.pop(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise ConfigError(f"--set {key}: expected a number > 0 (got {value!r})")
    return float(value)


def periodic_points(n: int, length: float = 1.0) -> np.ndarray:
    """``x_i = i L / n``: the points of a periodic grid."""
    return np.arange(n) / n * length
