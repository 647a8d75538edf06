"""Navier–Stokes 2-D vorticity on the unit torus: the classic FNO benchmark data (DESIGN.md §4).

``w_t + u . grad w = nu lap w + f`` with ``f = A (sin 2pi(x+y) + cos 2pi(x+y))`` (``A = 0.1``) and
``w0`` a zero-mean periodic Gaussian random field with covariance
``sigma^2 (-lap + tau^2)^(-alpha)`` (``alpha = 2.5``, ``tau = 7``, ``sigma = sqrt(2) 7^1.5``:
std ~ 0.262 on 256^2, as in the released data). Integrated on the internal grid with the classic
Crank–Nicolson / forward-Euler scheme (``scheme: classic``, the presets that reproduce the released
data) or with exact viscosity and fourth-order exponential Runge–Kutta advection (``scheme:
etdrk4``, steps as large as the advective CFL number allows; :mod:`solvers.navier_stokes`), in
float64 or float32 (``precision``), and stored every ``record_every`` at ``resolution^2`` points
(every ``internal_resolution / resolution``-th point, ``x_i = i / resolution``), including the
initial state at ``t = 0``. The file's attributes record the scheme and the time step used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

from pde_data.config import check, check_finite
from pde_data.family import Family, Layout, Variable, register_family, sample_rng
from pde_data.grid_settings import RecordedGrid, check_positive
from pde_data.random_fields import periodic_grf, periodic_grf_variance
from solvers.devices import on_device
from solvers.navier_stokes import SCHEME_CFL_LIMITS, navier_stokes_stepper

#: random stream of the initial vorticity (see :func:`pde_data.family.sample_rng`)
INITIAL_STREAM = 0
#: the initial speed max(|u| + |v|) is estimated as this many standard deviations of |u|
_SPEED_DEVIATIONS = 4.0 * np.sqrt(2.0)


@dataclasses.dataclass(frozen=True)
class NavierStokesConfig(RecordedGrid):
    """Settings of the Navier–Stokes family (defaults: preset ``fno``).

    Attributes
    ----------
    resolution
        Stored grid points per side; must divide ``internal_resolution``.
    internal_resolution
        Grid points per side of the simulation (even).
    viscosity
        ``nu``.
    dt
        Time step.
    T
        Final time; a whole multiple of ``record_every``.
    record_every
        Time between stored snapshots; a whole multiple of ``dt``.
    forcing_amplitude
        ``A`` in ``f = A (sin 2pi(x+y) + cos 2pi(x+y))``; 0 for unforced flow.
    ic_alpha, ic_tau, ic_sigma
        Covariance ``ic_sigma^2 (-lap + ic_tau^2)^(-ic_alpha)`` of ``w0``; ``ic_sigma`` None means
        ``sqrt(2) ic_tau^(ic_alpha - 1)``, the released FNO data's amplitude.
    scheme
        Time scheme: ``classic`` (Crank–Nicolson / forward Euler, first order, CFL limit 1) or
        ``etdrk4`` (exact viscosity, fourth order, CFL limit 2 sqrt(2)).
    precision
        Real precision of the integration: ``float64`` or ``float32`` (snapshots are stored as float32).
    """

    resolution: int = 64
    internal_resolution: int = 256
    viscosity: float = 1e-3
    dt: float = 1e-4
    T: float = 50.0
    record_every: float = 1.0
    forcing_amplitude: float = 0.1
    ic_alpha: float = 2.5
    ic_tau: float = 7.0
    ic_sigma: float | None = None
    scheme: Literal["classic", "etdrk4"] = "classic"
    precision: Literal["float64", "float32"] = "float64"

    def __post_init__(self) -> None:
        check_positive(viscosity=self.viscosity, ic_alpha=self.ic_alpha, ic_tau=self.ic_tau)
        check(self.ic_sigma is None or self.ic_sigma >= 0, f"ic_sigma must be >= 0 (got {self.ic_sigma!r})")
        check_finite(forcing_amplitude=self.forcing_amplitude)
        self.check_grid_and_times()
        speed = self.initial_speed()
        self.check_initial_cfl(speed, SCHEME_CFL_LIMITS[self.scheme], f"the initial velocity (about {speed:.3g})")

    @property
    def sigma(self) -> float:
        """Amplitude of the initial field's covariance."""
        return float(np.sqrt(2.0) * self.ic_tau ** (self.ic_alpha - 1.0)) if self.ic_sigma is None else self.ic_sigma

    def initial_speed(self) -> float:
        """A-priori estimate of ``max(|u| + |v|)`` of the initial velocity (a few standard deviations)."""
        n = self.internal_resolution
        k2 = np.add.outer(np.fft.fftfreq(n, 1.0 / n) ** 2, np.fft.fftfreq(n, 1.0 / n) ** 2)
        k2[0, 0] = np.inf  # |u_hat|^2 = |w_hat|^2 / (4 pi^2 |k|^2); the mean mode carries no velocity
        velocity_variance = periodic_grf_variance((n, n), self.ic_alpha, self.ic_tau, self.sigma,
                                                  weights=1.0 / (4.0 * np.pi**2 * k2))
        return float(_SPEED_DEVIATIONS * np.sqrt(velocity_variance))


def forcing_field(n: int, amplitude: float) -> np.ndarray:
    """``A (sin 2pi(x+y) + cos 2pi(x+y))`` on the ``n x n`` grid ``x_i = i / n`` (first axis ``x``)."""
    x = np.arange(n) / n
    phase = 2.0 * np.pi * (x[:, None] + x[None, :])
    return amplitude * (np.sin(phase) + np.cos(phase))


@register_family("navier-stokes")
class NavierStokes(Family):
    """2-D vorticity on the unit torus, batched pseudo-spectral integration (classic FNO scheme or ETDRK4)."""

    config_class = NavierStokesConfig
    default_preset = "fno"
    # a 256^2 sample needs ~5 MB while stepping and stores 0.8 MB per 50 snapshots at 64^2
    default_chunk_size = 8
    torch_devices = True
    # a 256^2 float64 sample needs ~20 MB of device memory (ETDRK4): a GPU batch of hundreds
    device_chunk_size = 256

    def layout(self) -> Layout:
        """``w(sample, t, x, y)`` float32, the forcing ``f(x, y)``, the viscosity, time scheme and step."""
        c = self.config
        x = c.stored_points
        forcing = forcing_field(c.internal_resolution, c.forcing_amplitude)[:: c.stride, :: c.stride]
        return Layout(
            coords={"x": x, "y": x, "t": c.record_times},
            variables={"w": Variable(("sample", "t", "x", "y"), "float32", {"long_name": "vorticity"})},
            static={"f": (("x", "y"), forcing)},
            attrs={"viscosity": c.viscosity, "scheme": c.scheme, "dt": c.dt, "precision": c.precision},
        )

    def initial_vorticity(self, index: int, seed: int) -> np.ndarray:
        """``w0`` of sample ``index`` on the internal grid (float64 ``[n, n]``)."""
        c = self.config
        n = c.internal_resolution
        return periodic_grf(sample_rng(seed, index, INITIAL_STREAM), (n, n), c.ic_alpha, c.ic_tau, c.sigma)

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, np.ndarray]:
        """Integrate the samples ``indices`` together and return their stored snapshots."""
        c = self.config
        forcing = forcing_field(c.internal_resolution, c.forcing_amplitude) if c.forcing_amplitude else None
        solver = on_device(navier_stokes_stepper(c.internal_resolution, c.viscosity, c.dt, forcing, c.scheme,
                                                 np.dtype(c.precision)), self.device)
        w0 = np.stack([self.initial_vorticity(i, seed) for i in indices])
        w = solver.rollout(w0, c.steps_per_record, c.records, stride=c.stride, labels=list(indices),
                           progress=self.report_progress)
        return {"w": w}
