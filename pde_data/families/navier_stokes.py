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

Resolution (:meth:`NavierStokesConfig.check_physics`): the root-mean-square vorticity obeys
``||w(t)|| <= ||w0|| + ||f|| (1 - exp(-lambda t)) / lambda`` with ``lambda = 4 pi^2 nu`` (advection
conserves it, viscosity damps every mean-free mode at least at rate ``lambda``, the forcing adds at
most ``||f||`` per unit time), so ``Omega = ||w0|| + ||f|| (1 - exp(-lambda T)) / lambda`` bounds it
over the run. Kraichnan's enstrophy-dissipation wavenumber of 2-D turbulence is
``k_d = (eta / nu^3)^(1/6)`` with the enstrophy flux ``eta <= Omega^3`` (enstrophy ``Omega^2``
carried at the strain rate ``Omega``): ``k_d = sqrt(Omega / nu)``. Beyond ``k_d`` the spectrum falls
off exponentially, so the grid resolves the flow when its 2/3 cut-off reaches ``k_d``
(``2 pi k_c >= k_d``). All shipped presets pass (``nu = 1e-5`` on 256^2: ``k_d = 475 <= 534``);
coarser grids pile enstrophy up at the cut-off, which the integrator's vorticity-norm guard stops.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from pde_data.config import check, check_finite, check_power
from pde_data.family import Layout, Variable, register_family, sample_rng
from pde_data.grid_settings import RecordedGrid, RecordedGridFamily, check_positive, kept_modes, safe_bound
from pde_data.random_fields import periodic_grf, periodic_grf_variance
from solvers.devices import on_device
from solvers.etdrk4 import ETDRK4
from solvers.navier_stokes import SCHEME_CFL_LIMITS, VorticityAdvection, VorticityCN, navier_stokes_stepper
from solvers.rollout import Rollout

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
        if self.ic_sigma is None:
            check_power("the initial field's amplitude ic_tau^(ic_alpha - 1)", self.ic_tau, self.ic_alpha - 1.0)
        elif self.ic_sigma > 0:
            check_power("the initial field's variance scale ic_sigma^2", self.ic_sigma, 2.0)
        check_power("ic_tau^2", self.ic_tau, 2.0)
        check_finite(forcing_amplitude=self.forcing_amplitude)
        self.check_grid_and_times()

    def check_physics(self) -> None:
        """The time step (initial CFL number) and the grid (the dissipation wavenumber, module docstring)."""
        speed = self.initial_speed()
        self.check_initial_cfl(speed, SCHEME_CFL_LIMITS[self.scheme], f"the initial velocity (about {speed:.3g})")
        decay = 4.0 * math.pi**2 * self.viscosity
        forced = abs(self.forcing_amplitude) * -math.expm1(-decay * self.T) / decay  # ||f|| = |A| on the grid
        initial = math.sqrt(periodic_grf_variance((self.internal_resolution,) * 2, self.ic_alpha, self.ic_tau,
                                                  self.sigma))
        omega = initial + forced
        dissipation = math.sqrt(omega / self.viscosity)
        smallest_viscosity = omega / (2.0 * math.pi * max(1, kept_modes(self.internal_resolution))) ** 2
        self.check_resolution(dissipation / (2.0 * math.pi),
                              f"the flow of viscosity {self.viscosity:g}: its enstrophy-dissipation wavenumber "
                              f"sqrt(Omega / nu) is about {dissipation:.4g} (rms vorticity bound Omega about "
                              f"{omega:.3g})", f"viscosity >= {safe_bound(smallest_viscosity, up=True)}")

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
class NavierStokes(RecordedGridFamily):
    """2-D vorticity on the unit torus, batched pseudo-spectral integration (classic FNO scheme or ETDRK4)."""

    config_class = NavierStokesConfig
    default_preset = "fno"
    periodic = True
    #: the viscosity attribute and the forcing field ``f(x, y)``
    physical_parameters = ("viscosity", "f")
    equation = "navier-stokes"
    # a 256^2 sample needs ~5 MB while stepping and stores 0.8 MB per 50 snapshots at 64^2
    default_chunk_size = 8
    torch_devices = True
    # a 256^2 float64 sample needs ~20 MB of device memory (ETDRK4): a GPU batch of hundreds
    device_chunk_size = 256
    space_dims = ("x", "y")

    def variables(self) -> dict[str, Variable]:
        """``w(sample, t, x, y)`` float32."""
        return {"w": Variable(("sample", "t", "x", "y"), "float32", {"long_name": "vorticity"})}

    def static_bytes(self) -> int:
        """The forcing ``f(x, y)`` (float64)."""
        return 8 * self.config.resolution**2

    def working_memory(self, n_samples: int) -> tuple[int, int]:
        """Per sample: the integrator's arrays, ``w0``, the observed fields and the spectrum; fixed: the
        operators (and the ETDRK4 coefficients), one initial field's random draw and the forcing on the
        internal grid."""
        c = self.config
        n, modes = c.internal_resolution, c.internal_resolution * (c.internal_resolution // 2 + 1)
        fixed = VorticityAdvection.operator_bytes(n) + 14 * 8 * n * n
        if c.scheme == "classic":
            stepping = VorticityCN.working_bytes(n, c.precision)
        else:
            stepping = ETDRK4.working_bytes(VorticityAdvection.sample_bytes(n, c.precision), (n, n // 2 + 1),
                                            c.precision, sources=2 if c.forcing_amplitude else 0)
            fixed += ETDRK4.coefficient_bytes(modes)
        return stepping + 4 * 8 * n * n + 16 * modes, fixed

    def layout(self) -> Layout:
        """``w(sample, t, x, y)`` float32, the forcing ``f(x, y)``, the viscosity, time scheme and step."""
        c = self.config
        x = c.stored_points
        forcing = forcing_field(c.internal_resolution, c.forcing_amplitude)[:: c.stride, :: c.stride]
        return Layout(coords={"x": x, "y": x, "t": c.record_times}, variables=self.variables(),
                      static={"f": (("x", "y"), forcing)},
                      attrs={"viscosity": c.viscosity, "scheme": c.scheme, "dt": c.dt, "precision": c.precision})

    def initial_vorticity(self, index: int, seed: int) -> np.ndarray:
        """``w0`` of sample ``index`` on the internal grid (float64 ``[n, n]``)."""
        c = self.config
        n = c.internal_resolution
        return periodic_grf(sample_rng(seed, index, INITIAL_STREAM), (n, n), c.ic_alpha, c.ic_tau, c.sigma)

    def stepper(self, n: int, lengths: np.ndarray | None = None, dtype: str = "float64") -> Rollout:
        """The vorticity integrator of the config's scheme, ``dt`` and forcing on ``n^2`` points (see the base)."""
        c = self.config
        forcing = forcing_field(n, c.forcing_amplitude) if c.forcing_amplitude else None
        return navier_stokes_stepper(n, c.viscosity, c.dt, forcing, c.scheme, np.dtype(dtype))

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, np.ndarray]:
        """Integrate the samples ``indices`` together and return their stored snapshots."""
        c = self.config
        solver = on_device(self.stepper(c.internal_resolution, dtype=c.precision), self.device)
        w0 = np.stack([self.initial_vorticity(i, seed) for i in indices])
        w = solver.rollout(w0, c.steps_per_record, c.records, stride=c.stride, labels=list(indices),
                           progress=self.report_progress)
        return {"w": w}
