"""2-D incompressible Navier–Stokes in vorticity form on the unit torus, batched and pseudo-spectral.

``w_t + u . grad w = nu lap w + f`` with ``u = (psi_y, -psi_x)`` and ``-lap psi = w``; grid points
``x_i = i / n``, the first array axis is ``x``. In Fourier space ``w_hat' = L w_hat + N(w_hat)``
with ``L = -nu 4 pi^2 |k|^2`` and ``N = f_hat - mask * F[u . grad w]``, the advection 2/3-dealiased
(square mask ``|k_x|, |k_y| <= (2/3)(n/2)``). :class:`VorticityAdvection` holds the spatial
operators (derivative multipliers, mask, forcing) and evaluates ``F``; two time schemes use it:

* ``classic`` — :class:`VorticityCN`, the scheme of the classic FNO data generator (Li et al.
  2021): Crank–Nicolson on the viscous term, explicit (forward Euler) advection and forcing::

      w_hat <- ((1 - h/2 nu |k|^2) w_hat - h mask * F[u . grad w] + h f_hat) / (1 + h/2 nu |k|^2)

  first order in ``h``; for a single Fourier mode without forcing (no advection) exactly the
  Crank–Nicolson factor per step. Only the mean vorticity is treated differently from the classic
  code, which damps it by a spurious factor: here it is left unchanged (it is zero up to rounding
  in the classic data anyway).
* ``etdrk4`` — :class:`~solvers.etdrk4.ETDRK4` with the viscous part exact (``exp(h L)``) and
  the advection and the constant forcing in the four stages: fourth order in ``h``, stable up to
  the RK4 advective CFL number ``2 sqrt(2)``, so it takes steps of the size the flow's velocity
  allows instead of the classic ``1e-4``. The constant forcing is integrated exactly.

One evaluation of ``F`` costs four inverse and one forward real 2-D FFT; the four inverse
transforms run as one call, the forward transform skips the columns the dealiasing mask removes,
and all other arithmetic is a handful of in-place passes with precomputed operators. Both schemes
run in float64 or float32 (``dtype``). Blocks of samples run on all cores (:mod:`solvers.batching`).

Both schemes guard the root-mean-square vorticity (:class:`VorticityNorm`), which the exact
equation keeps below ``||w0|| + t ||f||``: an unresolved flow piles enstrophy up at the grid scale
and breaks that bound while staying finite and within the CFL limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvers.etdrk4 import ETDRK4
from solvers.rollout import Rollout
from solvers.spectral import as_real, dealias_mask, forward_rfft2, interleave, inverse_rfft2, wavenumbers
from solvers.stability import RK4_IMAGINARY_LIMIT, Invariant

#: CFL limit ``dt * max(|u| + |v|) * k_max`` of the classic scheme's explicit (forward Euler) advection.
NAVIER_STOKES_CFL_LIMIT = 1.0
#: the time schemes and the CFL limit ``dt * max(|u| + |v|) * k_max`` of each
SCHEME_CFL_LIMITS = {"classic": NAVIER_STOKES_CFL_LIMIT, "etdrk4": RK4_IMAGINARY_LIMIT}
#: relative growth beyond the exact bound of :class:`VorticityNorm` tolerated on the grid. Rounding
#: adds about ``eps sqrt(steps)`` (round-to-nearest errors do not drift one way): 1e-13 in float64,
#: under 1e-4 in float32 (eps 6e-8) for the 5e5 steps of the longest preset. The classic scheme's
#: explicit advection adds O(dt) (below 0.1% in every resolved run of the issue-11 note, which
#: stayed at or below 0.9994 of the bound even at nu = 5e-6 on 64^2); ETDRK4 within its CFL limit
#: only damps (its stability function has modulus below 1 on the imaginary axis there).
NORM_GROWTH_TOLERANCE = 1e-2


class VorticityNorm(Invariant):
    """Root-mean-square vorticity ``||w||``: ``||w(t)|| <= ||w0|| + t ||f||`` for the exact equation.

    Advection conserves ``||w||`` (``<w, u . grad w> = 0`` for divergence-free ``u``), viscosity
    only lowers it and the forcing changes it at most at rate ``||f||``; without forcing it never
    grows. ``||.||`` is the root mean square over the grid.
    """

    name = "the root-mean-square vorticity"

    def __init__(self, forcing_rms: float, n: int, viscosity: float) -> None:
        self.forcing_rms = float(forcing_rms)
        self.remedy = (f"the discretisation does not represent the flow: use a finer internal_resolution (now {n}), "
                       f"a larger viscosity (now {viscosity:g}) or a smaller dt")

    def measure(self, fields: np.ndarray) -> np.ndarray:
        """``sqrt(mean(w^2))`` of each ``[n, n]`` field of ``[batch, n, n]`` (accumulated in float64)."""
        return np.sqrt(np.mean(np.square(fields, dtype=np.float64), axis=(1, 2)))

    def limit(self, initial: np.ndarray, time: float) -> np.ndarray:
        """``(||w0|| + t ||f||) (1 +`` :data:`NORM_GROWTH_TOLERANCE` ``)``."""
        return (initial + time * self.forcing_rms) * (1.0 + NORM_GROWTH_TOLERANCE)


@dataclass
class _Workspace:
    spectra: np.ndarray  # [b, 4, n, n // 2 + 1]: psi_y, -psi_x, w_x, w_y
    fields: np.ndarray  # [b, 4, n, n]: the same in physical space
    workers: int


class VorticityAdvection:
    """The nonlinear part ``N(w_hat) = f_hat - mask * F(w_hat)`` of the vorticity equation, ``F = rfft2(u . grad w)``.

    Holds the spatial operators every time scheme shares: the spectral multipliers giving ``u``,
    ``v``, ``w_x``, ``w_y`` from ``w_hat``, the 2/3 mask, the Laplacian symbol and the forcing.
    Works on batches of half spectra ``[b, n, n // 2 + 1]`` of the precision ``dtype``.

    Parameters
    ----------
    n
        Grid points per side (even).
    forcing
        ``[n, n]`` forcing ``f`` on the grid, or None for no forcing.
    dtype
        Real precision of the state: ``numpy.float64`` (default) or ``numpy.float32``.
    """

    def __init__(self, n: int, forcing: np.ndarray | None = None, dtype: type = np.float64) -> None:
        if n % 2:
            raise ValueError(f"n must be even (got {n})")
        self.n = self.grid_points = int(n)
        self.dtype = np.dtype(dtype)
        complex_dtype = np.result_type(self.dtype, np.complex64)
        m = self.n // 2 + 1
        self.spectrum_shape = (self.n, m)
        k = wavenumbers(self.n)
        kx, ky = k[:, None], k[None, :m]
        #: ``4 pi^2 |k|^2`` (integer k) on the half spectrum, float64: ``lap`` is ``-laplacian``
        self.laplacian = kx**2 + ky**2
        lap_psi = self.laplacian.copy()
        lap_psi[0, 0] = 1.0  # psi's mean is irrelevant (only its derivatives are used)
        # i*(multiplier) per field: psi_y = u, -psi_x = v, w_x, w_y. Purely imaginary factors keep
        # the complex product batch-independent (see solvers.spectral).
        kx_full, ky_full = np.broadcast_to(kx, (self.n, m)), np.broadcast_to(ky, (self.n, m))
        self.derivatives = np.ascontiguousarray(
            1j * np.stack([ky / lap_psi, -kx / lap_psi, kx_full, ky_full]), dtype=complex_dtype)
        #: the 2/3 rule on the half spectrum (bool ``[n, n // 2 + 1]``)
        self.mask = dealias_mask(self.n)[:, None] & dealias_mask(self.n)[None, :m]
        #: ``N = factor * F + source`` (float64; integrators fold it into their coefficients)
        self.factor = -self.mask.astype(np.float64)
        self.source = None if forcing is None else np.fft.rfft2(np.asarray(forcing, dtype=np.float64))
        self.kept_columns = int(np.max(np.nonzero(dealias_mask(self.n)[:m]))) + 1
        self.cutoff_wavenumber = float(np.max(np.abs(k[dealias_mask(self.n)])))
        self.bytes_per_sample = self.sample_bytes(self.n, self.dtype)
        self.forcing_rms = 0.0 if forcing is None else float(np.sqrt(np.mean(np.square(forcing, dtype=np.float64))))

    @staticmethod
    def sample_bytes(n: int, dtype: type = np.float64) -> int:
        """Working memory of one sample in :meth:`evaluate` on ``n x n`` points (bytes): 4 spectra, 4 fields."""
        return np.dtype(dtype).itemsize * (8 * n * (n // 2 + 1) + 4 * n * n)

    @staticmethod
    def operator_bytes(n: int) -> int:
        """Memory of the operators of an ``n x n`` term and the temporaries that build them (bytes):
        derivative multipliers, Laplacian, mask, factor and forcing spectrum (float64/complex128 bounds)."""
        return 16 * 10 * n * (n // 2 + 1) + 8 * 4 * n * n

    def vorticity_norm(self, viscosity: float) -> VorticityNorm:
        """The vorticity-norm guard of a flow of ``viscosity`` driven by this term's forcing."""
        return VorticityNorm(self.forcing_rms, self.n, viscosity)

    def workspace(self, batch: int, workers: int = 1) -> _Workspace:
        """Scratch memory for :meth:`evaluate` on ``batch`` samples, with ``workers`` threads in each FFT."""
        n, m = self.n, self.n // 2 + 1
        return _Workspace(np.empty((batch, 4, n, m), dtype=self.derivatives.dtype),
                          np.empty((batch, 4, n, n), dtype=self.dtype), workers)

    def evaluate(self, w_hat: np.ndarray, out: np.ndarray, work: _Workspace) -> None:
        """Write ``F(w_hat) = rfft2(u w_x + v w_y)`` into ``out`` on the columns the mask keeps.

        The other columns of ``out`` hold partial transforms: callers multiply them by the mask.

        Parameters
        ----------
        w_hat, out
            ``[b, n, n // 2 + 1]`` C-contiguous spectra of the state's precision.
        work
            From :meth:`workspace` for the same ``b``.
        """
        np.multiply(w_hat[:, None], self.derivatives, out=work.spectra)
        physical = inverse_rfft2(work.spectra, self.n, work.fields, work.workers)  # u, v, w_x, w_y
        advect = physical[:, 0]
        np.multiply(advect, physical[:, 2], out=advect)
        np.multiply(physical[:, 1], physical[:, 3], out=physical[:, 1])
        np.add(advect, physical[:, 1], out=advect)
        forward_rfft2(advect, out, self.kept_columns, work.workers)

    def start(self, initial: np.ndarray) -> np.ndarray:
        """Real 2-D FFT of ``[b, n, n]`` vorticity (in the state's precision): the integrators' state."""
        return np.fft.rfft2(np.asarray(initial, dtype=self.dtype))

    def observe(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vorticity ``[b, n, n]`` and ``max(|u| + |v|)`` per sample."""
        w = np.fft.irfft2(state, s=(self.n, self.n))
        uv = np.fft.irfft2(state[:, None] * self.derivatives[:2], s=(self.n, self.n))
        return w, np.max(np.abs(uv[:, 0]) + np.abs(uv[:, 1]), axis=(1, 2))


class VorticityCN(Rollout):
    """Crank–Nicolson / forward-Euler vorticity integrator of the classic FNO data (``scheme: classic``).

    :meth:`rollout` (from :class:`~solvers.rollout.Rollout`) records trajectories and stops with a
    :class:`~solvers.errors.StabilityError` when a snapshot is not finite,
    ``dt * max(|u| + |v|) * k_max`` exceeds :data:`NAVIER_STOKES_CFL_LIMIT` or the vorticity norm
    breaks its bound (:class:`VorticityNorm`).

    Parameters
    ----------
    n
        Grid points per side (even).
    viscosity
        Kinematic viscosity ``nu``.
    dt
        Time step ``h``.
    forcing
        ``[n, n]`` forcing ``f`` on the grid, or None for no forcing.
    dtype
        Real precision of the state (``numpy.float64`` or ``numpy.float32``).
    """

    def __init__(self, n: int, viscosity: float, dt: float, forcing: np.ndarray | None = None,
                 dtype: type = np.float64) -> None:
        self.term = VorticityAdvection(n, forcing, dtype)
        self.n, self.viscosity, self.dt = self.term.n, float(viscosity), float(dt)
        real = self.term.dtype
        half = 0.5 * self.dt * self.viscosity * self.term.laplacian
        self._decay = interleave((1.0 - half) / (1.0 + half)).astype(real)
        self._advect = interleave(self.dt * self.term.factor / (1.0 + half)).astype(real)
        if self.term.source is None:
            self._force = None
        else:
            self._force = as_real(np.ascontiguousarray(self.dt * self.term.source / (1.0 + half))).astype(real)
        self.cutoff_wavenumber = self.term.cutoff_wavenumber
        self.cfl_limit = NAVIER_STOKES_CFL_LIMIT
        self.grid_points = self.n
        self.bytes_per_sample = self.working_bytes(self.n, real)
        self.invariant = self.term.vorticity_norm(self.viscosity)

    @staticmethod
    def working_bytes(n: int, dtype: type = np.float64) -> int:
        """Working memory of one sample inside :meth:`advance` on ``n x n`` points (bytes): the term's
        buffers plus the state and ``F``."""
        return VorticityAdvection.sample_bytes(n, dtype) + 4 * np.dtype(dtype).itemsize * n * (n // 2 + 1)

    def step_coefficients(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(decay, advect, force)`` as :meth:`advance` multiplies and adds them, for ports of the step to
        other array libraries: real ``[n, 2 (n // 2 + 1)]`` arrays acting on the interleaved real and
        imaginary parts of the state (``force`` None without forcing)."""
        return self._decay, self._advect, self._force

    def start(self, initial: np.ndarray, rows: slice | None = None) -> np.ndarray:
        """Real 2-D FFT of ``[b, n, n]`` vorticity: the state :meth:`advance` works on."""
        return self.term.start(initial)

    def observe(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vorticity ``[b, n, n]`` and ``max(|u| + |v|)`` per sample."""
        return self.term.observe(state)

    def advance(self, w_hat: np.ndarray, steps: int, rows: slice | None = None, workers: int = 1) -> None:
        """Advance C-contiguous spectra ``[b, n, n // 2 + 1]`` by ``steps`` steps, in place.

        Runs in the calling thread, with ``workers`` threads inside each FFT; :meth:`rollout`
        spreads blocks of samples over the cores and gives the spare cores to the FFTs.
        """
        if steps <= 0:
            return
        work = self.term.workspace(w_hat.shape[0], workers)
        f_hat = np.empty_like(w_hat)
        wr, fr = as_real(w_hat), as_real(f_hat)
        for _ in range(steps):
            self.term.evaluate(w_hat, f_hat, work)
            np.multiply(wr, self._decay, out=wr)
            np.multiply(fr, self._advect, out=fr)
            np.add(wr, fr, out=wr)
            if self._force is not None:
                np.add(wr, self._force, out=wr)


def navier_stokes_stepper(n: int, viscosity: float, dt: float, forcing: np.ndarray | None = None,
                          scheme: str = "classic", dtype: type = np.float64) -> Rollout:
    """Vorticity integrator on ``n^2`` points with time step ``dt`` and the time scheme ``scheme``.

    Parameters
    ----------
    n, viscosity, dt, forcing, dtype
        As for :class:`VorticityCN`.
    scheme
        ``"classic"`` (:class:`VorticityCN`) or ``"etdrk4"`` (exact viscosity, fourth-order
        exponential Runge–Kutta advection and forcing); see the module docstring. Both guard the
        vorticity norm (:class:`VorticityNorm`).
    """
    if scheme == "classic":
        return VorticityCN(n, viscosity, dt, forcing, dtype)
    if scheme == "etdrk4":
        term = VorticityAdvection(n, forcing, dtype)
        stepper = ETDRK4(-float(viscosity) * term.laplacian, dt, term)
        stepper.invariant = term.vorticity_norm(viscosity)
        return stepper
    raise ValueError(f"scheme must be one of {sorted(SCHEME_CFL_LIMITS)} (got {scheme!r})")
