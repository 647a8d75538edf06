"""The interface every problem family implements, and the family registry.

A family knows how to draw the random inputs of sample ``i`` from ``(seed, i)``, how to solve its
PDE for a batch of samples, and what it stores (its :class:`Layout`). It knows nothing about files,
chunking, resuming or progress: :mod:`pde_data.pipeline` does that once for all families.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from pde_data.resources import FILE_OVERHEAD_BYTES, PIPELINE_BYTES_PER_SAMPLE, Estimate, stored_bytes
from solvers.errors import ConfigError

FAMILIES: dict[str, type[Family]] = {}


@dataclasses.dataclass(frozen=True)
class Variable:
    """One stored variable.

    Parameters
    ----------
    dims
        Dimension names; per-sample variables start with ``"sample"``.
    dtype
        NumPy dtype name of the stored values (``"float32"``, ``"float64"``, ``"int32"``, ...).
    attrs
        netCDF attributes (``units``, ``long_name``, ...).
    """

    dims: tuple[str, ...]
    dtype: str = "float32"
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Layout:
    """What a family's dataset file holds, apart from the root attributes written by the pipeline.

    Parameters
    ----------
    coords
        1-D coordinate variables by dimension name (``x``, ``y``, ``t``...). Their length fixes the
        size of that dimension.
    variables
        Per-sample variables (first dimension ``"sample"``), filled chunk by chunk.
    static
        Variables written once at creation, as ``(dims, values)`` (e.g. the forcing ``f(x, y)``).
    attrs
        Extra root attributes (``viscosity``, ``forcing``, ...).
    dims
        Sizes of dimensions that have no coordinate variable.
    """

    coords: Mapping[str, np.ndarray]
    variables: Mapping[str, Variable]
    static: Mapping[str, tuple[tuple[str, ...], np.ndarray]] = dataclasses.field(default_factory=dict)
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dims: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def sizes(self, n_samples: int) -> dict[str, int]:
        """Return every dimension's size, ``sample`` included."""
        sizes = {"sample": int(n_samples)}
        sizes.update({name: int(np.asarray(values).shape[0]) for name, values in self.coords.items()})
        sizes.update({name: int(size) for name, size in self.dims.items()})
        return sizes

    def shape(self, name: str, n_samples: int) -> tuple[int, ...]:
        """Return the full stored shape of per-sample variable ``name``."""
        sizes = self.sizes(n_samples)
        return tuple(sizes[d] for d in self.variables[name].dims)


class Family(ABC):
    """Base class of a problem family.

    Subclasses set ``name``, ``config_class`` (a frozen dataclass of the family's settings) and
    ``default_preset`` and register themselves with :func:`register_family`.

    The contract the pipeline relies on:

    * sample ``i`` depends only on ``(seed, i)`` and the config — use :func:`sample_rng`;
    * :meth:`generate` may be called with any subset of indices in any order and returns, for
      every per-sample variable of :meth:`layout`, an array whose first axis follows ``indices``;
    * a numerical failure raises :class:`~solvers.errors.StabilityError` /
      :class:`~solvers.errors.SolverError` naming the sample (global index), time and remedy;
    * :meth:`estimate` (from :meth:`dimension_sizes`, :meth:`variables` and
      :meth:`working_memory`) allocates nothing, so the pipeline can refuse a run that cannot fit
      before anything is allocated; only then does it call :meth:`check_settings` (a-priori
      physical checks that may compute on the grid) and :meth:`layout`.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    default_preset: ClassVar[str]
    #: samples per chunk when the user gives none; families size it to their memory use.
    default_chunk_size: ClassVar[int] = 16
    #: the family's integrators have PyTorch ports, so it runs on torch devices (:mod:`solvers.devices`)
    torch_devices: ClassVar[bool] = False
    #: samples per chunk on a torch device when the user gives none (a GPU wants large batches)
    device_chunk_size: ClassVar[int] = 16
    #: the settings that drive memory and file size, named in messages when a run does not fit
    size_settings: ClassVar[str] = "resolution"
    #: whether the stored grid is periodic (``x_i = i L / n``) rather than a vertex grid with both ends
    periodic: ClassVar[bool] = False
    #: names of the physical parameters the file holds, as root attributes or static variables
    physical_parameters: ClassVar[tuple[str, ...]] = ()
    #: the time-dependent equation whose residual the physics losses evaluate (a name known to
    #: :mod:`operators.physics.operator_residual`), or None
    equation: ClassVar[str | None] = None

    @classmethod
    def description(cls) -> dict[str, Any]:
        """Root attributes by which every file of this family describes the problem (see :func:`stored_description`)."""
        return {"periodic": bool(cls.periodic), "physical_parameters": list(cls.physical_parameters),
                "equation": cls.equation or ""}

    def __init__(self, config: Any) -> None:
        self.config = config
        self._progress: Callable[[float], None] | None = None
        #: where the integrators run (:func:`solvers.devices.check_device`); set by the pipeline
        self.device = "cpu"

    def set_progress_callback(self, callback: Callable[[float], None] | None) -> None:
        """Install the pipeline's progress hook (see :meth:`report_progress`)."""
        self._progress = callback

    def report_progress(self, fraction: float) -> None:
        """Tell the progress bar how far the current :meth:`generate` call is (0 to 1).

        Long-running families (many time steps per chunk) call this now and then; it is cheap and
        does nothing when no bar is shown.
        """
        if self._progress is not None:
            self._progress(min(max(float(fraction), 0.0), 1.0))

    @abstractmethod
    def layout(self) -> Layout:
        """Describe the stored variables, coordinates and attributes."""

    @abstractmethod
    def generate(self, indices: Sequence[int], seed: int) -> dict[str, np.ndarray]:
        """Compute the per-sample variables for ``indices`` (any subset, any order).

        Returns
        -------
        dict
            ``{variable: array}`` with ``array.shape[0] == len(indices)`` and row ``r`` belonging
            to sample ``indices[r]``.
        """

    def check_settings(self) -> None:
        """A-priori physical checks of the settings (time step, resolution), after the size check.

        Raises
        ------
        ConfigError
            Naming the setting, why it is meaningless and the value that would do.
        """

    def dimension_sizes(self) -> dict[str, int]:
        """Sizes of the stored dimensions other than ``sample``, from the settings without allocating.

        The default reads :meth:`layout`; families whose grids grow with user settings override it.
        """
        return {k: v for k, v in self.layout().sizes(1).items() if k != "sample"}

    def variables(self) -> dict[str, Variable]:
        """The per-sample variables :meth:`layout` declares (default: read from it)."""
        return dict(self.layout().variables)

    def static_bytes(self) -> int:
        """Bytes of the variables written once at creation (default: read from :meth:`layout`)."""
        return sum(int(np.asarray(values).nbytes) for _, values in self.layout().static.values())

    def working_memory(self, n_samples: int) -> tuple[int, int]:
        """Working memory of :meth:`generate` beyond the arrays it returns, in bytes.

        Returns
        -------
        tuple of int
            ``(per_sample, fixed)``: what grows with the chunk (per sample computed together) and
            what does not (operators, one sample's temporaries, data kept for all ``n_samples``).
            The default assumes one temporary copy of each sample's stored arrays.
        """
        return self.stored_sample_bytes(), 0

    def stored_sample_bytes(self) -> int:
        """Bytes one sample takes in the file (all per-sample variables)."""
        sizes = {**self.dimension_sizes(), "sample": 1}
        return sum(stored_bytes([sizes[d] for d in var.dims], var.dtype) for var in self.variables().values())

    def estimate(self, n_samples: int) -> Estimate:
        """Memory and disk of generating ``n_samples`` samples, from the settings alone.

        The file holds every per-sample variable, the coordinates (float64), the static variables,
        the ``sample`` coordinate and completion marks (9 bytes per sample) and HDF5's metadata;
        the memory of a chunk is :meth:`working_memory` plus the arrays :meth:`generate` returns,
        plus the pipeline's bookkeeping for every sample.
        """
        per_sample = self.stored_sample_bytes()
        coords = 8 * sum(self.dimension_sizes().values())
        file_bytes = FILE_OVERHEAD_BYTES + coords + self.static_bytes() + n_samples * (per_sample + 9)
        work_sample, work_fixed = self.working_memory(n_samples)
        return Estimate(file_bytes=file_bytes, sample_bytes=work_sample + per_sample,
                        fixed_bytes=work_fixed + PIPELINE_BYTES_PER_SAMPLE * n_samples,
                        size_settings=self.size_settings)

    def solve_order(self, n_samples: int, seed: int) -> np.ndarray:
        """Order in which samples are computed (a permutation of ``range(n_samples)``).

        Families that solve sequences of related linear systems override this to sort them by
        similarity. The order never changes which sample gets which index.
        """
        return np.arange(n_samples)

    def sequence_length(self) -> int:
        """Samples of the solve order computed as one sequence from a fresh solver state (1: none carried).

        A family whose solver carries state from one sample to the next (a recycled Krylov space, a
        reused preconditioner) cuts its :meth:`solve_order` into consecutive sequences of this many
        samples and starts each from a fresh state. The pipeline keeps every sequence whole, in
        order, inside one chunk (one :meth:`generate` call), so a chunk computes the same values in
        any process, on any worker and after any resumption.
        """
        return 1

    def summary(self) -> dict[str, Any]:
        """Statistics of the run so far (e.g. solver retries), for the CLI's final report."""
        return {}


def register_family(name: str) -> Callable[[type[Family]], type[Family]]:
    """Class decorator adding a family to :data:`FAMILIES` under ``name``."""

    def decorate(cls: type[Family]) -> type[Family]:
        if name in FAMILIES and FAMILIES[name] is not cls:
            raise ValueError(f"problem family {name!r} is registered twice")
        cls.name = name
        FAMILIES[name] = cls
        return cls

    return decorate


def get_family(name: str) -> type[Family]:
    """Return the family class registered as ``name``.

    Raises
    ------
    ConfigError
        If no family of that name exists (the message lists the known ones).
    """
    import pde_data.families  # noqa: F401  (registers the built-in families)

    if name not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise ConfigError(f"unknown problem {name!r}; known problems are: {known}")
    return FAMILIES[name]


def sample_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """Random generator of sample ``index``: depends only on ``(seed, index, stream)``.

    ``stream`` separates independent random inputs of one sample (e.g. coefficient and
    right-hand side), so adding a new input never changes the existing ones.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(stream)]))


def stored_description(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """What a dataset file says about its problem: ``periodic``, ``physical_parameters``, ``equation``.

    Files written since the families describe themselves carry the three root attributes of
    :meth:`Family.description`. For older files (and files written by other tools) the family named
    by the ``problem`` attribute gives ``periodic`` and ``equation`` when it is registered; otherwise
    the grid counts as not periodic and the equation is the problem name itself. Their
    ``physical_parameters`` is None: nothing is declared, so readers look parameters up by name as
    before.

    Parameters
    ----------
    attrs
        Root attributes of the file (plain Python values, e.g. from :func:`pde_data.storage.read_attrs`).
    """
    import json

    import pde_data.families  # noqa: F401  (registers the built-in families)

    problem = str(attrs.get("problem", ""))
    family = FAMILIES.get(problem)
    fallback = family.description() if family is not None else {"periodic": False, "equation": problem}
    periodic = bool(int(attrs["periodic"])) if "periodic" in attrs else fallback["periodic"]
    names = attrs.get("physical_parameters")
    if isinstance(names, bytes):
        names = names.decode()
    if isinstance(names, str):
        names = json.loads(names) if names.startswith("[") else [n for n in names.split(",") if n]
    names = None if names is None else [str(n) for n in np.atleast_1d(names)]
    equation = str(attrs["equation"]) if "equation" in attrs else fallback["equation"]
    return {"periodic": periodic, "physical_parameters": names, "equation": equation or None}


def merge_summaries(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Combine :meth:`Family.summary` results of runs over disjoint samples into one.

    Numbers add up, except those named ``worst_*`` or ``max_*`` (the largest is kept); nested
    mappings merge the same way; other values (method names) are kept when every part agrees, and
    listed (sorted) when they differ.
    """
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for part in parts for k in part):
        values = [part[key] for part in parts if key in part]
        if all(isinstance(v, Mapping) for v in values):
            merged[key] = merge_summaries(values)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            merged[key] = max(values) if key.startswith(("worst_", "max_")) else sum(values)
        else:
            distinct = sorted({str(v) for v in values})
            merged[key] = values[0] if len(distinct) == 1 else distinct
    return merged
