"""Checks of the grid and time-step settings shared by the time-dependent problem families.

Each check raises :class:`~solvers.errors.ConfigError` naming the setting, what was expected and
what was given, so that a bad ``--set`` fails before any file is written.

Resolution rule shared by the families: a pseudo-spectral run resolves its solution when the
solution's Fourier coefficients at the 2/3 cut-off have fallen :data:`RESOLVED_DECADES` decades
below the energetic ones. Each family turns this into a smallest grid from its own physics (the
narrowest Burgers shock, the 2-D enstrophy-dissipation wavenumber, the Kuramoto–Sivashinsky
spectrum) and refuses coarser grids, naming the smallest grid that would do
(:meth:`RecordedGrid.check_resolution`).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import numpy as np

from pde_data.config import check
from pde_data.family import Family

#: relative tolerance when a time interval must be a whole number of time steps
_RATIO_TOLERANCE = 1e-9
#: the most grid points per side a remedy may name (HDF5 and NumPy index grids beyond this with
#: 64-bit integers, but no machine holds such a grid: a run needing more is refused as hopeless)
LARGEST_GRID = 2**31
#: most time steps one sample may take: 2000 times the longest preset (5e5, Navier-Stokes fno at dt 1e-4);
#: beyond it no run finishes (a dt of 1e-200 was accepted and the run never ended)
MAX_TIME_STEPS = 10**9
#: decades the spectrum must have fallen by at the 2/3 cut-off for the grid to resolve the solution
#: (coefficients below 1e-3 of the energetic ones: Gibbs ripples of at most ~0.1% of the amplitude)
RESOLVED_DECADES = 3.0


def safe_bound(value: float, up: bool, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, rounded away from the refused side, for a remedy.

    A remedy "use viscosity >= V" must name a V that passes the check: ``up`` rounds a lower bound
    up, else an upper bound (``dt <= ...``, ``L <= ...``) is rounded down.
    """
    if not math.isfinite(value) or value <= 0:
        return f"{value:g}"
    exponent = math.floor(math.log10(value)) - digits + 1
    units = value / 10.0**exponent
    count = round(units)
    while True:
        text = f"{count * 10.0**exponent:.{digits + 1}g}"
        if (float(text) >= value) if up else (float(text) <= value):
            return f"{float(text):g}"
        count += 1 if up else -1


def kept_modes(n: int) -> int:
    """Largest integer wavenumber that the 2/3 rule keeps on an ``n``-point axis.

    Exactly what :func:`solvers.spectral.dealias_mask` keeps, including its rounding: the mask
    compares ``numpy.fft.fftfreq(n, 1 / n)``, i.e. ``k * (1 / (n * (1 / n)))``, with
    ``(2 / 3) (n // 2)``, which drops the mode ``2 (n // 2) / 3`` for some ``n`` (474, 498, ...).
    """
    scale = 1.0 / (n * (1.0 / n))
    limit = (2.0 / 3.0) * (n // 2)
    k = (2 * (n // 2)) // 3 + 1
    while k * scale > limit:
        k -= 1
    return k


def smallest_grid(modes: float, multiple_of: int, minimum: int = 4) -> int:
    """The smallest even grid, a multiple of ``multiple_of`` and ``>= minimum``, keeping ``modes`` modes.

    Returns the smallest ``n`` with :func:`kept_modes` ``(n) >= modes``.
    """
    step = math.lcm(2, int(multiple_of))
    n = max(minimum, step * -(-max(3 * math.ceil(modes) - 2, 1) // step))  # integer arithmetic: exact
    while kept_modes(n) < modes:
        n += step
    return n


def check_positive(**settings: float) -> None:
    """Every given setting must be > 0."""
    for name, value in settings.items():
        check(value > 0, f"{name} must be > 0 (got {value!r})")


def grid_stride(resolution: int, internal_resolution: int, minimum: int = 4) -> int:
    """Return ``internal_resolution // resolution`` after checking both grids.

    The internal grid must be even and at least ``minimum``; the stored grid (``resolution``)
    must divide it, so that snapshots are the internal values at every ``stride``-th point.
    """
    check(resolution >= 1, f"resolution must be an integer >= 1 (got {resolution})")
    check(internal_resolution >= minimum and internal_resolution % 2 == 0,
          f"internal_resolution must be an even integer >= {minimum} (got {internal_resolution})")
    check(internal_resolution % resolution == 0,
          f"resolution must divide internal_resolution (got resolution={resolution}, "
          f"internal_resolution={internal_resolution})")
    return internal_resolution // resolution


def whole_multiple(name: str, value: float, unit_name: str, unit: float) -> int:
    """Return ``value / unit`` after checking that it is a whole number >= 1.

    Used for ``record_every`` (a multiple of ``dt``) and ``T`` (a multiple of ``record_every``).
    """
    ratio = value / unit
    check(math.isfinite(ratio), f"{name} / {unit_name} = {value:g} / {unit:g} is beyond the float range; "
          f"use a larger {unit_name} or a smaller {name}")
    count = round(ratio)
    check(count >= 1 and abs(ratio - count) <= _RATIO_TOLERANCE * max(1.0, ratio),
          f"{name} must be a whole multiple of {unit_name} = {unit:g} (got {name} = {value:g}, "
          f"{ratio:.6g} times {unit_name})")
    return int(count)


class RecordedGrid:
    """Grid and time-step settings shared by the time-dependent family configs.

    Mixed into a frozen dataclass that has the fields ``resolution``, ``internal_resolution``,
    ``dt``, ``record_every`` and ``T`` (and may have ``warmup_steps``); the dataclass calls
    :meth:`check_grid_and_times` from its ``__post_init__``.
    """

    #: steps taken and discarded before the first snapshot (a field of the families that have a warm-up)
    warmup_steps: int = 0

    def check_physics(self) -> None:
        """A-priori checks of the time step and grid (each family: CFL number, resolution)."""

    def check_grid_and_times(self) -> None:
        """Check the grids and that ``record_every`` / ``T`` are whole multiples of ``dt`` / ``record_every``."""
        check_positive(dt=self.dt, record_every=self.record_every, T=self.T)
        grid_stride(self.resolution, self.internal_resolution)
        whole_multiple("record_every", self.record_every, "dt", self.dt)
        whole_multiple("T", self.T, "record_every", self.record_every)
        steps = self.steps_per_record * self.records + max(0, self.warmup_steps)
        check(steps <= MAX_TIME_STEPS,
              f"each sample would take {steps:.3g} time steps (T / dt = {self.T:g} / {self.dt:g}"
              f"{' plus warmup_steps' if self.warmup_steps else ''}), more than the {MAX_TIME_STEPS:.0e} any run "
              f"can finish; use a larger dt, a smaller T{' or fewer warmup_steps' if self.warmup_steps else ''}")

    def check_initial_cfl(self, speed: float, limit: float, state: str) -> None:
        """Check the a-priori CFL number ``dt * speed * k_max`` of the initial state against ``limit``.

        Parameters
        ----------
        speed
            Estimate of the initial ``max|u|``.
        limit
            Largest stable CFL number of the time stepper.
        state
            What has that speed, for the message (e.g. ``"the initial velocity (about 2.1)"``).

        Raises
        ------
        ConfigError
            Naming ``dt``, the CFL number and the largest stable ``dt``. ``k_max`` is the largest
            wavenumber kept by the 2/3 rule on the internal grid of the unit domain.
        """
        n = self.internal_resolution
        k_max = 2.0 * np.pi * kept_modes(n)
        cfl = self.dt * speed * k_max
        if cfl <= limit:
            return
        check(False, f"dt = {self.dt:g} is too large for internal_resolution = {n}: {state} gives a CFL number "
                     f"dt*max|u|*k_max of about {cfl:.3g} (limit {limit:.3g}); use dt <= "
                     f"{safe_bound(limit / (speed * k_max), up=False)}")

    def check_resolution(self, modes: float, what: str, alternative: str) -> None:
        """Refuse an ``internal_resolution`` that keeps fewer than ``modes`` Fourier modes.

        Parameters
        ----------
        modes
            Integer wavenumber (cycles per period) the 2/3 cut-off must reach (the family's physics
            decides it; see the module docstring).
        what
            What needs the modes, for the message (e.g. ``"shocks of width 8e-07"``).
        alternative
            The other remedy (e.g. ``"viscosity >= 0.0012"``, from :func:`safe_bound`).

        Raises
        ------
        ConfigError
            Naming the smallest ``internal_resolution`` (a multiple of ``resolution``) that would do.
        """
        n = self.internal_resolution
        if kept_modes(n) >= modes:
            return
        if not modes <= LARGEST_GRID / 3:
            check(False, f"internal_resolution = {n} cannot resolve {what}: about {modes:.3g} Fourier modes are "
                         f"needed, more than any grid can hold; use {alternative} instead")
        needed = smallest_grid(modes, self.resolution)
        check(False, f"internal_resolution = {n} cannot resolve {what}: it keeps {kept_modes(n)} Fourier modes "
                     f"after 2/3 dealiasing, {math.ceil(modes)} are needed; use internal_resolution >= {needed} "
                     f"(a multiple of resolution = {self.resolution}) or {alternative}")

    def stored_sizes(self, space_dims: tuple[str, ...]) -> dict[str, int]:
        """Sizes of the stored dimensions: ``t`` and each of ``space_dims`` (no allocation)."""
        return {**{d: self.resolution for d in space_dims}, "t": self.records + 1}

    @property
    def stride(self) -> int:
        """Internal grid points per stored grid point (along each axis)."""
        return self.internal_resolution // self.resolution

    @property
    def steps_per_record(self) -> int:
        """Time steps between stored snapshots."""
        return round(self.record_every / self.dt)

    @property
    def records(self) -> int:
        """Stored snapshots after the first one."""
        return round(self.T / self.record_every)

    @property
    def record_times(self) -> np.ndarray:
        """Times of the stored snapshots, ``j * record_every`` for ``j = 0 .. records`` (``t = 0`` first)."""
        return np.arange(self.records + 1) * self.record_every

    @property
    def stored_points(self) -> np.ndarray:
        """Stored periodic grid points along each axis as fractions of the period: ``i / resolution``."""
        return np.arange(self.resolution) / self.resolution


def time_stepping_problems() -> tuple[str, ...]:
    """Names of the registered families that step in time (each a :class:`RecordedGridFamily`)."""
    import pde_data.families  # noqa: F401  (registers the built-in families)
    from pde_data.family import FAMILIES

    return tuple(sorted(name for name, cls in FAMILIES.items() if issubclass(cls, RecordedGridFamily)))


class RecordedGridFamily(Family):
    """Base of the families whose config is a :class:`RecordedGrid`: snapshots ``(t, *space_dims)``.

    Subclasses set :attr:`space_dims`; the config's :meth:`RecordedGrid.check_physics` is the
    family's :meth:`check_settings`.
    """

    #: stored spatial dimensions, first axis first
    space_dims: tuple[str, ...] = ("x",)
    size_settings = "internal_resolution, resolution or T / record_every"

    def check_settings(self) -> None:
        """The config's CFL and resolution checks (:meth:`RecordedGrid.check_physics`)."""
        self.config.check_physics()

    @abstractmethod
    def stepper(self, n: int, lengths: np.ndarray | None = None, dtype: str = "float64") -> Any:
        """The family's time integrator on ``n`` points per spatial axis, with the config's ``dt``.

        Parameters
        ----------
        n
            Points per spatial axis (the family's ``internal_resolution`` when generating data).
        lengths
            Per-sample domain lengths ``[batch]`` for a family that varies them (else ignored;
            None: the config's length).
        dtype
            Precision of the state (``float64`` or ``float32``).

        Returns
        -------
        A :mod:`solvers` integrator (``start``, ``advance``, ``observe``, ``rollout``).
        """

    def dimension_sizes(self) -> dict[str, int]:
        """The stored points along each of :attr:`space_dims` and the snapshots ``t``."""
        return self.config.stored_sizes(self.space_dims)

    def static_bytes(self) -> int:
        """No static variables (families that store some override this)."""
        return 0
