"""Kuramoto–Sivashinsky 1-D: ``u_t + u u_x + u_xx + u_xxxx = 0`` on ``[0, L)``, periodic (DESIGN.md §4).

Integrated by ETDRK4 in float64 (or float32: ``precision``) with 2/3 dealiasing (:mod:`solvers.kuramoto_sivashinsky`) on
``internal_resolution`` points ``x_j = j L / N``. ``warmup_steps`` steps are discarded, then a
snapshot is stored every ``record_every`` until ``T`` (the first snapshot, ``t = 0``, is the state
right after the warm-up). ``L`` is one length, or a range ``[low, high]`` from which each sample
draws its own (uniformly); the file then stores ``L(sample)`` and ``x`` as the fraction ``j / N`` of
the domain.

Initial conditions (band-limited, so the state never holds modes above the 2/3 cut-off):

* ``sines`` (LPSDA): ``sum_{n < sines} A_n sin(2 pi l_n x / L + phi_n)`` with ``A_n ~ U(-a, a)``,
  ``phi_n ~ U(0, 2 pi)``, ``l_n`` uniform from ``sine_wavenumbers``;
* ``fourier`` (APEBench/exponax ``RandomTruncatedFourierSeries``): modes ``1..cutoff`` with
  standard normal cosine and sine coefficients, scaled to ``max |u0| = 1``.

Resolution (:meth:`KuramotoSivashinskyConfig.check_physics`): the KS equation has fixed
coefficients, so its fine structure has a fixed size whatever ``L``: the time-averaged spectrum of
the attractor falls by a decade every ~0.7 in angular wavenumber beyond its peak near
``k = 1 / sqrt(2)``, and is three decades down at ``k = 3.2`` (:data:`RESOLVED_WAVENUMBER`). The grid
resolves every sample when its 2/3 cut-off ``2 pi k_c / L`` reaches that for the longest domain,
i.e. at least ``3 * 3.2 / (2 pi) ~ 1.5`` points per unit length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

from pde_data.config import check
from pde_data.family import Layout, Variable, register_family, sample_rng
from pde_data.grid_settings import RecordedGrid, RecordedGridFamily, kept_modes, safe_bound
from solvers.devices import on_device
from solvers.etdrk4 import ETDRK4, advection_1d_bytes
from solvers.kuramoto_sivashinsky import kuramoto_sivashinsky_stepper
from solvers.stability import RK4_IMAGINARY_LIMIT

#: random streams of a sample (see :func:`pde_data.family.sample_rng`)
INITIAL_STREAM = 0
LENGTH_STREAM = 1
#: a-priori bound of max|u| on the KS attractor (observed max |u| is about 3 for L around 60)
ATTRACTOR_SPEED = 4.0
#: angular wavenumber where the attractor's time-averaged spectrum is three decades
#: (RESOLVED_DECADES) below its peak: 3.24, measured on a resolved reference (L = 64, N = 512,
#: dt = 0.01, 8 trajectories x 200 snapshots after t = 50); a property of the equation
RESOLVED_WAVENUMBER = 3.2


@dataclasses.dataclass(frozen=True)
class KuramotoSivashinskyConfig(RecordedGrid):
    """Settings of the Kuramoto–Sivashinsky family (defaults: preset ``lpsda``).

    Attributes
    ----------
    resolution
        Stored grid points; must divide ``internal_resolution``.
    internal_resolution
        Grid points ``N`` of the simulation (even).
    L
        Domain length: one value, or ``[low, high]`` for a per-sample uniform draw.
    dt
        Time step.
    record_every
        Time between stored snapshots; a whole multiple of ``dt``.
    T
        Time stored after the warm-up; a whole multiple of ``record_every``.
    warmup_steps
        Steps discarded before the first stored snapshot.
    initial_condition
        ``"sines"`` or ``"fourier"`` (module docstring).
    sines, sine_wavenumbers, sine_amplitude
        Number of sines, the wavenumbers ``l`` they draw from, and ``a`` in ``A ~ U(-a, a)``.
    cutoff
        Highest mode of the ``fourier`` initial condition.
    precision
        Real precision of the integration: ``float64`` or ``float32`` (snapshots are stored as float32).
    """

    resolution: int = 256
    internal_resolution: int = 256
    L: tuple[float, ...] = (57.6, 70.4)
    dt: float = 0.05
    record_every: float = 0.2
    T: float = 27.8
    warmup_steps: int = 440
    initial_condition: Literal["sines", "fourier"] = "sines"
    sines: int = 10
    sine_wavenumbers: tuple[int, ...] = (1, 2)
    sine_amplitude: float = 0.5
    cutoff: int = 5
    precision: Literal["float64", "float32"] = "float64"

    def __post_init__(self) -> None:
        check(len(self.L) in (1, 2), f"L must be one length or a range [low, high] (got {list(self.L)})")
        check(all(v > 0 for v in self.L), f"L must be > 0 (got {list(self.L)})")
        check(self.L[0] <= self.L[-1], f"L must be a range [low, high] with low <= high (got {list(self.L)})")
        check(self.warmup_steps >= 0, f"warmup_steps must be an integer >= 0 (got {self.warmup_steps})")
        self.check_grid_and_times()
        band = self.internal_resolution // 3
        if self.initial_condition == "sines":
            check(self.sines >= 1, f"sines must be an integer >= 1 (got {self.sines})")
            check(len(self.sine_wavenumbers) >= 1 and all(1 <= l <= band for l in self.sine_wavenumbers),
                  f"sine_wavenumbers must be integers in [1, internal_resolution // 3 = {band}] "
                  f"(got {list(self.sine_wavenumbers)})")
            check(self.sine_amplitude >= 0, f"sine_amplitude must be >= 0 (got {self.sine_amplitude})")
        else:
            check(1 <= self.cutoff <= band,
                  f"cutoff must be an integer in [1, internal_resolution // 3 = {band}] (got {self.cutoff})")

    def check_physics(self) -> None:
        """The time step (CFL number on the attractor) and the grid (points per unit length, module docstring)."""
        self._check_cfl()
        longest = self.L[-1]
        longest_resolved = 2.0 * np.pi * kept_modes(self.internal_resolution) / RESOLVED_WAVENUMBER
        self.check_resolution(RESOLVED_WAVENUMBER * longest / (2.0 * np.pi),
                              f"the Kuramoto-Sivashinsky fine structure on L = {longest:g} (its spectrum needs "
                              f"wavenumbers up to {RESOLVED_WAVENUMBER:g}, about 1.5 points per unit length)",
                              f"L <= {safe_bound(longest_resolved, up=False)}")

    @property
    def varying_length(self) -> bool:
        """True when every sample draws its own ``L``."""
        return len(self.L) == 2 and self.L[0] != self.L[1]

    def _check_cfl(self) -> None:
        # the shortest domain has the largest resolved wavenumber
        k_max = 2.0 * np.pi / self.L[0] * (self.internal_resolution // 3)
        initial = self.sines * self.sine_amplitude if self.initial_condition == "sines" else 1.0
        speed = max(ATTRACTOR_SPEED, initial)
        cfl = self.dt * speed * k_max
        check(cfl <= RK4_IMAGINARY_LIMIT,
              f"dt = {self.dt:g} is too large for internal_resolution = {self.internal_resolution} and L = "
              f"{self.L[0]:g}: with max|u| about {speed:g} the CFL number dt*max|u|*k_max is about {cfl:.3g} "
              f"(limit {RK4_IMAGINARY_LIMIT:.3g}); use dt <= "
              f"{safe_bound(RK4_IMAGINARY_LIMIT / (speed * k_max), up=False)}")


@register_family("kuramoto-sivashinsky")
class KuramotoSivashinsky(RecordedGridFamily):
    """KS trajectories after a discarded transient, many samples per ETDRK4 step."""

    config_class = KuramotoSivashinskyConfig
    default_preset = "lpsda"
    periodic = True
    #: the domain length: root attribute ``L``, or variable ``L(sample)`` when it varies
    physical_parameters = ("L",)
    equation = "kuramoto-sivashinsky"
    # one 256-point sample: ~30 kB while stepping, 140 x 256 float32 snapshots stored
    default_chunk_size = 256
    torch_devices = True
    device_chunk_size = 4096
    space_dims = ("x",)

    def variables(self) -> dict[str, Variable]:
        """``u(sample, t, x)`` float32; ``L(sample)`` when the length varies."""
        variables = {"u": Variable(("sample", "t", "x"), "float32")}
        if self.config.varying_length:
            variables["L"] = Variable(("sample",), "float64", {"long_name": "domain length"})
        return variables

    def working_memory(self, n_samples: int) -> tuple[int, int]:
        """ETDRK4 state, ``u0`` and one snapshot per sample (and its own coefficients when L varies)."""
        n = self.config.internal_resolution
        stepping, coefficients = advection_1d_bytes(n, self.config.precision)
        per_sample = stepping + 4 * 8 * n
        if self.config.varying_length:
            return per_sample + coefficients, 20 * 8 * n
        return per_sample, coefficients + 20 * 8 * n

    def layout(self) -> Layout:
        """``u(sample, t, x)`` float32; ``L(sample)`` when the length varies."""
        c = self.config
        fraction = c.stored_points
        if c.varying_length:
            x = fraction  # position as a fraction of each sample's L(sample)
            attrs = {}
        else:
            x = fraction * c.L[0]
            attrs = {"L": c.L[0]}
        return Layout(coords={"x": x, "t": c.record_times}, variables=self.variables(), attrs=attrs)

    def length(self, index: int, seed: int) -> float:
        """Domain length of sample ``index``."""
        c = self.config
        if not c.varying_length:
            return float(c.L[0])
        return float(sample_rng(seed, index, LENGTH_STREAM).uniform(c.L[0], c.L[1]))

    def initial_condition(self, index: int, seed: int) -> np.ndarray:
        """``u0`` of sample ``index`` on the internal grid (float64 ``[N]``); it does not depend on L."""
        c = self.config
        rng = sample_rng(seed, index, INITIAL_STREAM)
        phase = 2.0 * np.pi * np.arange(c.internal_resolution) / c.internal_resolution  # 2 pi x / L
        if c.initial_condition == "sines":
            amplitude = rng.uniform(-c.sine_amplitude, c.sine_amplitude, c.sines)
            shift = rng.uniform(0.0, 2.0 * np.pi, c.sines)
            wavenumber = rng.choice(np.asarray(c.sine_wavenumbers), c.sines)
            return np.sum(amplitude[:, None] * np.sin(wavenumber[:, None] * phase[None, :] + shift[:, None]), axis=0)
        coefficients = rng.standard_normal((2, c.cutoff))
        modes = np.arange(1, c.cutoff + 1)[:, None] * phase[None, :]
        u = coefficients[0] @ np.cos(modes) + coefficients[1] @ np.sin(modes)
        return u / np.max(np.abs(u))

    def stepper(self, n: int, lengths: np.ndarray | None = None, dtype: str = "float64") -> ETDRK4:
        """The ETDRK4 integrator of the config's ``dt`` on ``n`` points, with the per-sample ``lengths``
        when given (else the config's ``L``; see the base)."""
        c = self.config
        return kuramoto_sivashinsky_stepper(n, c.L[0] if lengths is None else lengths, c.dt, np.dtype(dtype))

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, np.ndarray]:
        """Integrate the samples ``indices`` together and return their stored snapshots."""
        c = self.config
        lengths = np.array([self.length(i, seed) for i in indices])
        u0 = np.stack([self.initial_condition(i, seed) for i in indices])
        stepper = on_device(self.stepper(c.internal_resolution, lengths if c.varying_length else None, c.precision),
                            self.device)
        u = stepper.rollout(u0, c.steps_per_record, c.records, warmup_steps=c.warmup_steps, stride=c.stride,
                            labels=list(indices), progress=self.report_progress)
        out = {"u": u}
        if c.varying_length:
            out["L"] = lengths
        return out
