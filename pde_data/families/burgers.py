"""Viscous Burgers 1-D: ``u_t + u u_x = nu u_xx`` on the unit circle (DESIGN.md §4).

``u0`` is a zero-mean periodic Gaussian random field with covariance
``sigma^2 (-lap + tau^2)^(-alpha)`` — the classic FNO set ``625 (-lap + 25)^-2`` (std ~ 0.594) or
the sharper ``nu = 1e-3`` variant ``7^4 (-lap + 49)^-2.5`` (std ~ 0.274) — projected onto the
modes kept by the 2/3 rule (it changes the field by far less than float32 rounding). The viscous
part is integrated exactly in Fourier space, the advection by ETDRK4 (float64 or float32,
:mod:`solvers.burgers`); snapshots every ``record_every`` from ``t = 0`` (the initial condition)
to ``T`` at every ``internal_resolution / resolution``-th point ``x_i = i / resolution``.

Resolution (:meth:`BurgersConfig.check_physics`): a viscous shock ``u = -a tanh(a x / (2 nu))`` of
half-jump ``a <= max|u| = U`` has width ``eps = 2 nu / a >= 2 nu / U``, and its Fourier coefficients
decay like ``exp(-pi^2 eps k)``. The grid resolves every shock the initial speed allows when they
have fallen :data:`~pde_data.grid_settings.RESOLVED_DECADES` decades by the 2/3 cut-off ``k_c``:
``pi^2 (2 nu / U) k_c >= ln(10^3)``. Coarser grids give Gibbs ripples whose total variation grows
(``nu = 1e-6`` on 256 points: 3.7 -> 37.7), which the integrator's total-variation guard also stops.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from pde_data.config import check, check_power
from pde_data.family import Layout, Variable, register_family, sample_rng
from pde_data.grid_settings import (RESOLVED_DECADES, RecordedGrid, RecordedGridFamily, check_positive, kept_modes,
                                    safe_bound)
from pde_data.random_fields import periodic_grf, periodic_grf_variance
from solvers.burgers import burgers_stepper
from solvers.devices import on_device
from solvers.etdrk4 import ETDRK4, advection_1d_bytes
from solvers.spectral import dealias_mask
from solvers.stability import RK4_IMAGINARY_LIMIT

#: random stream of the initial condition (see :func:`pde_data.family.sample_rng`)
INITIAL_STREAM = 0
#: a-priori estimate of max|u0| in standard deviations (max|u| never grows for Burgers)
_SPEED_DEVIATIONS = 4.0


@dataclasses.dataclass(frozen=True)
class BurgersConfig(RecordedGrid):
    """Settings of the Burgers family (defaults: preset ``fno``).

    Attributes
    ----------
    resolution
        Stored grid points; must divide ``internal_resolution``.
    internal_resolution
        Grid points of the simulation (even).
    viscosity
        ``nu``.
    dt
        Time step.
    T
        Final time; a whole multiple of ``record_every``.
    record_every
        Time between stored snapshots; a whole multiple of ``dt``.
    ic_alpha, ic_tau, ic_sigma
        Covariance ``ic_sigma^2 (-lap + ic_tau^2)^(-ic_alpha)`` of ``u0``.
    precision
        Real precision of the integration: ``float64`` or ``float32`` (snapshots are stored as float32).
    """

    resolution: int = 1024
    internal_resolution: int = 1024
    viscosity: float = 0.1
    dt: float = 2e-4
    T: float = 1.0
    record_every: float = 0.05
    ic_alpha: float = 2.0
    ic_tau: float = 5.0
    ic_sigma: float = 25.0
    precision: Literal["float64", "float32"] = "float64"

    def __post_init__(self) -> None:
        check_positive(viscosity=self.viscosity, ic_alpha=self.ic_alpha, ic_tau=self.ic_tau)
        check(self.ic_sigma >= 0, f"ic_sigma must be >= 0 (got {self.ic_sigma!r})")
        if self.ic_sigma > 0:
            check_power("the initial field's variance scale ic_sigma^2", self.ic_sigma, 2.0)
        check_power("ic_tau^2", self.ic_tau, 2.0)
        self.check_grid_and_times()

    def check_physics(self) -> None:
        """The time step (initial CFL number) and the grid (the narrowest shock, module docstring)."""
        speed = self.initial_std() * _SPEED_DEVIATIONS
        self.check_initial_cfl(speed, RK4_IMAGINARY_LIMIT, f"the initial condition (max|u| about {speed:.3g})")
        if speed > 0:
            decay = math.log(10.0**RESOLVED_DECADES)
            width = 2.0 * self.viscosity / speed
            smallest = decay * speed / (2.0 * math.pi**2 * max(1, kept_modes(self.internal_resolution)))
            self.check_resolution(decay / (math.pi**2 * width),
                                  f"the shocks of viscosity {self.viscosity:g} (width 2 nu / max|u| about {width:.3g} "
                                  f"with max|u| about {speed:.3g})", f"viscosity >= {safe_bound(smallest, up=True)}")

    def initial_std(self) -> float:
        """Pointwise standard deviation of ``u0`` on the internal grid."""
        return float(np.sqrt(periodic_grf_variance((self.internal_resolution,), self.ic_alpha, self.ic_tau,
                                                   self.ic_sigma)))


@register_family("burgers")
class Burgers(RecordedGridFamily):
    """Viscous Burgers trajectories from Gaussian random initial conditions."""

    config_class = BurgersConfig
    default_preset = "fno"
    periodic = True
    physical_parameters = ("viscosity",)
    equation = "burgers"
    # a 1024-point sample: ~0.2 MB while stepping, 21 x 1024 float32 snapshots stored
    default_chunk_size = 64
    torch_devices = True
    device_chunk_size = 1024
    space_dims = ("x",)

    def variables(self) -> dict[str, Variable]:
        """``u(sample, t, x)`` float32."""
        return {"u": Variable(("sample", "t", "x"), "float32", {"long_name": "velocity"})}

    def working_memory(self, n_samples: int) -> tuple[int, int]:
        """ETDRK4 state, ``u0`` and one snapshot per sample; coefficients and one field's sampling fixed."""
        n = self.config.internal_resolution
        stepping, coefficients = advection_1d_bytes(n, self.config.precision)
        return stepping + 4 * 8 * n, coefficients + 20 * 8 * n

    def layout(self) -> Layout:
        """``u(sample, t, x)`` float32 with ``t[0] = 0`` the initial condition; the viscosity."""
        c = self.config
        return Layout(coords={"x": c.stored_points, "t": c.record_times}, variables=self.variables(),
                      attrs={"viscosity": c.viscosity})

    def initial_condition(self, index: int, seed: int) -> np.ndarray:
        """``u0`` of sample ``index`` on the internal grid, projected onto the dealiased modes."""
        c = self.config
        n = c.internal_resolution
        u = periodic_grf(sample_rng(seed, index, INITIAL_STREAM), (n,), c.ic_alpha, c.ic_tau, c.ic_sigma)
        return np.fft.irfft(np.fft.rfft(u) * dealias_mask(n)[: n // 2 + 1], n=n)

    def stepper(self, n: int, lengths: np.ndarray | None = None, dtype: str = "float64") -> ETDRK4:
        """The ETDRK4 integrator of the config's viscosity and ``dt`` on ``n`` points (see the base)."""
        return burgers_stepper(n, self.config.viscosity, self.config.dt, dtype=np.dtype(dtype))

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, np.ndarray]:
        """Integrate the samples ``indices`` together and return their stored snapshots."""
        c = self.config
        u0 = np.stack([self.initial_condition(i, seed) for i in indices])
        stepper = on_device(self.stepper(c.internal_resolution, dtype=c.precision), self.device)
        u = stepper.rollout(u0, c.steps_per_record, c.records, stride=c.stride, labels=list(indices),
                            progress=self.report_progress)
        return {"u": u}
