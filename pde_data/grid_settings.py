"""Checks of the grid and time-step settings shared by the time-dependent problem families.

Each check raises :class:`~solvers.errors.ConfigError` naming the setting, what was expected and
what was given, so that a bad ``--set`` fails before any file is written.
"""

from __future__ import annotations

import numpy as np

from pde_data.config import check
from solvers.spectral import dealias_mask, wavenumbers

#: relative tolerance when a time interval must be a whole number of time steps
_RATIO_TOLERANCE = 1e-9


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
    count = round(ratio)
    check(count >= 1 and abs(ratio - count) <= _RATIO_TOLERANCE * max(1.0, ratio),
          f"{name} must be a whole multiple of {unit_name} = {unit:g} (got {name} = {value:g}, "
          f"{ratio:.6g} times {unit_name})")
    return int(count)


class RecordedGrid:
    """Grid and time-step settings shared by the time-dependent family configs.

    Mixed into a frozen dataclass that has the fields ``resolution``, ``internal_resolution``,
    ``dt``, ``record_every`` and ``T``; the dataclass calls :meth:`check_grid_and_times` from its
    ``__post_init__``.
    """

    def check_grid_and_times(self) -> None:
        """Check the grids and that ``record_every`` / ``T`` are whole multiples of ``dt`` / ``record_every``."""
        check_positive(dt=self.dt, record_every=self.record_every, T=self.T)
        grid_stride(self.resolution, self.internal_resolution)
        whole_multiple("record_every", self.record_every, "dt", self.dt)
        whole_multiple("T", self.T, "record_every", self.record_every)

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
        k_max = float(np.max(np.abs(wavenumbers(n)[dealias_mask(n)])))
        cfl = self.dt * speed * k_max
        check(cfl <= limit,
              f"dt = {self.dt:g} is too large for internal_resolution = {n}: {state} gives a CFL number "
              f"dt*max|u|*k_max of about {cfl:.3g} (limit {limit:.3g}); use dt <= {limit / (speed * k_max):.3g}")

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
