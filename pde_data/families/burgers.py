"""Viscous Burgers 1-D: ``u_t + u u_x = nu u_xx`` on the unit circle (DESIGN.md §4).

``u0`` is a zero-mean periodic Gaussian random field with covariance
``sigma^2 (-lap + tau^2)^(-alpha)`` — the classic FNO set ``625 (-lap + 25)^-2`` (std ~ 0.594) or
the sharper ``nu = 1e-3`` variant ``7^4 (-lap + 49)^-2.5`` (std ~ 0.274) — projected onto the
modes kept by the 2/3 rule (it changes the field by far less than float32 rounding). The viscous
part is integrated exactly in Fourier space, the advection by ETDRK4 (float64 or float32,
:mod:`solvers.burgers`); snapshots every ``record_every`` from ``t = 0`` (the initial condition)
to ``T`` at every ``internal_resolution / resolution``-th point ``x_i = i / resolution``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

from pde_data.config import check
from pde_data.family import Family, Layout, Variable, register_family, sample_rng
from pde_data.grid_settings import RecordedGrid, check_positive
from pde_data.random_fields import periodic_grf, periodic_grf_variance
from solvers.burgers import burgers_stepper
from solvers.devices import on_device
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
        self.check_grid_and_times()
        speed = self.initial_std() * _SPEED_DEVIATIONS
        self.check_initial_cfl(speed, RK4_IMAGINARY_LIMIT, f"the initial condition (max|u| about {speed:.3g})")

    def initial_std(self) -> float:
        """Pointwise standard deviation of ``u0`` on the internal grid."""
        return float(np.sqrt(periodic_grf_variance((self.internal_resolution,), self.ic_alpha, self.ic_tau,
                                                   self.ic_sigma)))


@register_family("burgers")
class Burgers(Family):
    """Viscous Burgers trajectories from Gaussian random initial conditions."""

    config_class = BurgersConfig
    default_preset = "fno"
    # a 1024-point sample: ~0.2 MB while stepping, 21 x 1024 float32 snapshots stored
    default_chunk_size = 64
    torch_devices = True
    device_chunk_size = 1024

    def layout(self) -> Layout:
        """``u(sample, t, x)`` float32 with ``t[0] = 0`` the initial condition; the viscosity."""
        c = self.config
        return Layout(
            coords={"x": c.stored_points, "t": c.record_times},
            variables={"u": Variable(("sample", "t", "x"), "float32", {"long_name": "velocity"})},
            attrs={"viscosity": c.viscosity},
        )

    def initial_condition(self, index: int, seed: int) -> np.ndarray:
        """``u0`` of sample ``index`` on the internal grid, projected onto the dealiased modes."""
        c = self.config
        n = c.internal_resolution
        u = periodic_grf(sample_rng(seed, index, INITIAL_STREAM), (n,), c.ic_alpha, c.ic_tau, c.ic_sigma)
        return np.fft.irfft(np.fft.rfft(u) * dealias_mask(n)[: n // 2 + 1], n=n)

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, np.ndarray]:
        """Integrate the samples ``indices`` together and return their stored snapshots."""
        c = self.config
        u0 = np.stack([self.initial_condition(i, seed) for i in indices])
        stepper = on_device(burgers_stepper(c.internal_resolution, c.viscosity, c.dt, dtype=np.dtype(c.precision)),
                            self.device)
        u = stepper.rollout(u0, c.steps_per_record, c.records, stride=c.stride, labels=list(indices),
                            progress=self.report_progress)
        return {"u": u}
