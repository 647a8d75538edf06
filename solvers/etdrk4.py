"""ETDRK4: exponential time differencing with fourth-order Runge–Kutta stages (Cox & Matthews 2002).

For ``v' = L v + N(v)`` with a diagonal (Fourier-space) linear part ``L``, the linear part is
integrated exactly and the nonlinear part by four stages (Kassam & Trefethen 2005)::

    a = E2 v + Q N(v)
    b = E2 v + Q N(a)
    c = E2 a + Q (2 N(b) - N(v))
    v <- E v + f1 N(v) + 2 f2 (N(a) + N(b)) + f3 N(c)

with ``E = exp(h L)``, ``E2 = exp(h L / 2)`` and the phi-function combinations ``Q, f1, f2, f3``
evaluated by a contour integral around each ``h L`` (no cancellation for small ``|h L|``).
``L`` may differ per sample (shape ``[batch, modes]``), e.g. when the domain length varies. The
nonlinear term's diagonal factor (``N = factor * F``, e.g. ``-i k / 2``) is folded into ``Q, f1,
f2, f3``, and every buffer of a step is preallocated. The same integrator serves the
Kuramoto–Sivashinsky and the viscous Burgers equations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from solvers.rollout import Rollout
from solvers.spectral import as_real, interleave
from solvers.stability import RK4_IMAGINARY_LIMIT


class NonlinearTerm(Protocol):
    """What :class:`ETDRK4` needs from the nonlinear term ``N(v) = factor * F(v)`` of a 1-D real periodic field.

    ``factor`` is a diagonal (e.g. ``-i k / 2`` for ``-(u^2/2)_x``), ``[n // 2 + 1]`` or one row per
    sample, that ETDRK4 folds into its coefficients; :meth:`evaluate` computes ``F(v)``.
    """

    n: int
    cutoff_wavenumber: float
    factor: np.ndarray

    def workspace(self, batch: int) -> Any: ...

    def evaluate(self, v: np.ndarray, out: np.ndarray, workspace: Any) -> None: ...


@dataclass(frozen=True)
class PhiCoefficients:
    """``E, E2, Q, f1, f2, f3`` of ETDRK4 for one step ``h``; real arrays shaped like ``L``."""

    E: np.ndarray
    E2: np.ndarray
    Q: np.ndarray
    f1: np.ndarray
    f2: np.ndarray
    f3: np.ndarray


def phi_coefficients(linear: np.ndarray, dt: float, contour_points: int = 32) -> PhiCoefficients:
    """ETDRK4 coefficients by the contour integral of Kassam & Trefethen (2005).

    Each phi-function combination is the mean of its values on ``contour_points`` points of the
    unit circle around ``z = dt * L`` (trapezoidal rule for Cauchy's integral, exponentially
    accurate), which avoids the cancellation of the closed forms near ``z = 0``.

    Parameters
    ----------
    linear
        Real diagonal ``L`` (any shape).
    dt
        Time step ``h``.
    contour_points
        Points on the circle.

    Returns
    -------
    PhiCoefficients
        float64 arrays shaped like ``linear``.
    """
    z = dt * np.asarray(linear, dtype=np.float64)
    roots = np.exp(2j * np.pi * (np.arange(contour_points) + 0.5) / contour_points)
    lr = z[..., None] + roots
    ex = np.exp(lr)
    lr3 = lr**3

    def mean(values: np.ndarray) -> np.ndarray:
        return dt * np.real(np.mean(values, axis=-1))

    return PhiCoefficients(
        E=np.exp(z),
        E2=np.exp(z / 2),
        Q=mean((np.exp(lr / 2) - 1) / lr),
        f1=mean((-4 - lr + ex * (4 - 3 * lr + lr**2)) / lr3),
        f2=mean((2 + lr + ex * (lr - 2)) / lr3),
        f3=mean((-4 - 3 * lr - lr**2 + ex * (4 - lr)) / lr3),
    )


class ETDRK4(Rollout):
    """ETDRK4 integrator for batches of real 1-D periodic fields held as real-FFT spectra.

    :meth:`rollout` (from :class:`~solvers.rollout.Rollout`) records trajectories and stops with a
    :class:`~solvers.errors.StabilityError` when a snapshot is not finite or
    ``dt * max|u| * k_max`` exceeds the RK4 stability limit ``2 sqrt(2)`` on the imaginary axis.

    Parameters
    ----------
    linear
        Real diagonal linear operator on the half spectrum: ``[n // 2 + 1]`` shared by all
        samples, or ``[batch, n // 2 + 1]`` per sample.
    dt
        Time step.
    nonlinear
        The nonlinear term (e.g. :class:`~solvers.spectral.ConservativeAdvection1D`).
    contour_points
        Points of the contour integral of :func:`phi_coefficients`.
    """

    def __init__(self, linear: np.ndarray, dt: float, nonlinear: NonlinearTerm, contour_points: int = 32) -> None:
        linear = np.asarray(linear)
        if np.iscomplexobj(linear):
            raise TypeError("ETDRK4 here supports real diagonal linear operators only")
        self.dt = float(dt)
        self.nonlinear = nonlinear
        self.grid_points = int(nonlinear.n)
        self.cutoff_wavenumber = float(nonlinear.cutoff_wavenumber)
        self.cfl_limit = RK4_IMAGINARY_LIMIT
        self.bytes_per_sample = self.working_bytes(self.grid_points)
        self.phi = phi_coefficients(linear, self.dt, contour_points)
        p, g = self.phi, np.asarray(nonlinear.factor)
        # E and E2 multiply the state: interleaved real copies (real products on the complex
        # state's float view). The others multiply F(v) with the nonlinear factor folded in; for a
        # purely imaginary factor their real parts are exactly 0, which keeps the complex
        # products the same in every batch (see solvers.spectral).
        self._real = (interleave(p.E), interleave(p.E2))
        self._folded = tuple(np.asarray(c * g, dtype=np.complex128) for c in (p.Q, 2.0 * p.Q, p.f1, 2.0 * p.f2, p.f3))

    @staticmethod
    def working_bytes(n: int) -> int:
        """Working memory of one sample inside :meth:`advance` on ``n`` points (bytes).

        10 spectra, 7 coefficient rows copied per block and the nonlinear term's physical field.
        """
        m = n // 2 + 1
        return 10 * 16 * m + 7 * 16 * m + 8 * n

    @staticmethod
    def coefficient_bytes(n: int, contour_points: int = 32) -> int:
        """Peak memory of :func:`phi_coefficients` for one row of ``n // 2 + 1`` modes (bytes).

        Six complex ``[modes, contour_points]`` temporaries; per sample when ``L`` varies per sample.
        """
        return 6 * 16 * (n // 2 + 1) * contour_points

    def _coefficients(self, batch: int, rows: slice | None) -> tuple[np.ndarray, ...]:
        """The block's coefficient rows, copied to its full shape (equal shapes multiply faster than broadcasts)."""
        c = self._real + self._folded
        if rows is not None:
            c = tuple(a[rows] if a.ndim == 2 else a for a in c)
        return tuple(np.ascontiguousarray(np.broadcast_to(a, (batch, a.shape[-1]))) for a in c)

    def advance(self, v: np.ndarray, steps: int, rows: slice | None = None, workers: int = 1) -> None:
        """Advance the spectra ``v`` (complex128 ``[b, n // 2 + 1]``, C-contiguous) by ``steps`` steps in place.

        ``rows`` says which rows of per-sample operators ``v`` holds. Runs in the calling thread
        (``workers`` is unused: 1-D transforms are too short to split); :meth:`rollout` spreads
        blocks of samples over the cores.
        """
        if steps <= 0:
            return
        E, E2, Q, Q2, f1, f2x2, f3 = self._coefficients(v.shape[0], rows)
        evaluate = self.nonlinear.evaluate
        work = self.nonlinear.workspace(v.shape[0])
        # fv, fa, fb, fc hold F(.) without the factor (folded into Q, Q2, f1, f2x2, f3)
        fv, fa, fb, fc, a, b, c, e2v, qnv, tmp = (np.empty_like(v) for _ in range(10))
        rv, ra, rb, rc, re2v, rqnv, rtmp = (as_real(x) for x in (v, a, b, c, e2v, qnv, tmp))
        mul, add, sub = np.multiply, np.add, np.subtract
        for _ in range(steps):
            evaluate(v, fv, work)
            mul(rv, E2, out=re2v)
            mul(fv, Q, out=qnv)
            add(re2v, rqnv, out=ra)  # a = E2 v + Q N(v)
            evaluate(a, fa, work)
            mul(fa, Q, out=b)
            add(rb, re2v, out=rb)  # b = E2 v + Q N(a)
            evaluate(b, fb, work)
            mul(fb, Q2, out=tmp)
            mul(ra, E2, out=rc)
            add(rc, rtmp, out=rc)
            sub(rc, rqnv, out=rc)  # c = E2 a + Q (2 N(b) - N(v))
            evaluate(c, fc, work)
            mul(rv, E, out=rv)
            mul(fv, f1, out=tmp)
            add(rv, rtmp, out=rv)
            add(fa, fb, out=tmp)
            mul(tmp, f2x2, out=tmp)
            add(rv, rtmp, out=rv)
            mul(fc, f3, out=tmp)
            add(rv, rtmp, out=rv)  # v = E v + f1 N(v) + 2 f2 (N(a) + N(b)) + f3 N(c)

    def start(self, initial: np.ndarray, rows: slice) -> np.ndarray:
        """Real FFT of ``[b, n]`` physical fields: the state :meth:`advance` works on."""
        return np.fft.rfft(initial, axis=-1)

    def observe(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fields ``[b, n]`` and ``max |u|`` per sample."""
        u = np.fft.irfft(state, n=self.grid_points, axis=-1)
        return u, np.max(np.abs(u), axis=1)
