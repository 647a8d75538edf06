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

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from solvers.rollout import Rollout
from solvers.spectral import ConservativeAdvection1D, as_real, interleave
from solvers.stability import RK4_IMAGINARY_LIMIT


class NonlinearTerm(Protocol):
    """What :class:`ETDRK4` needs from the nonlinear part ``N(v) = factor * F(v) + source`` of a real periodic field.

    The state ``v`` is a batch of real-FFT spectra ``[b, *spectrum_shape]``. ``factor`` is a
    diagonal (e.g. ``-i k / 2`` for ``-(u^2/2)_x``, or ``-mask`` for 2-D advection), real or
    purely imaginary, shaped like one spectrum or with one row per sample in front; ETDRK4 folds it
    into its coefficients. ``source`` is a constant spectrum (e.g. a forcing) or None.
    :meth:`evaluate` computes ``F(v)``; :meth:`start` and :meth:`observe` turn fields into the
    state and back (with the largest advection speed of each sample, for the CFL guard).
    """

    grid_points: int
    cutoff_wavenumber: float
    spectrum_shape: tuple[int, ...]
    bytes_per_sample: int
    dtype: np.dtype
    factor: np.ndarray
    source: np.ndarray | None

    def workspace(self, batch: int, workers: int = 1) -> Any: ...

    def evaluate(self, v: np.ndarray, out: np.ndarray, workspace: Any) -> None: ...

    def start(self, initial: np.ndarray) -> np.ndarray: ...

    def observe(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


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


@dataclass(frozen=True)
class FoldedCoefficients:
    """ETDRK4's coefficients as one step uses them (see :meth:`ETDRK4.folded_coefficients`).

    Attributes
    ----------
    exp
        ``(E, E2)``, real, each value repeated twice along the last axis (they multiply the
        interleaved real and imaginary parts of the state).
    folded
        ``(Q, 2 Q, f1, 2 f2, f3)`` times the nonlinear term's factor: interleaved real like ``exp``
        when the factor is real (``real_factor``), complex when it is purely imaginary.
    source
        ``(Q s, h phi1(h L) s)`` (complex) for a constant source ``s``, else ``()``.
    real_factor
        Whether ``folded`` is real.
    per_sample
        Whether the coefficients carry one row per sample in front (a per-sample ``L``).
    """

    exp: tuple[np.ndarray, ...]
    folded: tuple[np.ndarray, ...]
    source: tuple[np.ndarray, ...]
    real_factor: bool
    per_sample: bool


class ETDRK4(Rollout):
    """ETDRK4 integrator for batches of real periodic fields (1-D or 2-D) held as real-FFT spectra.

    :meth:`rollout` (from :class:`~solvers.rollout.Rollout`) records trajectories and stops with a
    :class:`~solvers.errors.StabilityError` when a snapshot is not finite or the CFL number
    ``dt * speed * k_max`` exceeds the RK4 stability limit ``2 sqrt(2)`` on the imaginary axis
    (``speed`` as the nonlinear term's :meth:`~NonlinearTerm.observe` reports it).

    Parameters
    ----------
    linear
        Real diagonal linear operator on the half spectrum: shaped like one spectrum (shared by all
        samples) or with one row per sample in front.
    dt
        Time step.
    nonlinear
        The nonlinear term (:class:`~solvers.spectral.ConservativeAdvection1D`,
        :class:`~solvers.navier_stokes.VorticityAdvection`); its ``dtype`` is the state's precision.
    contour_points
        Points of the contour integral of :func:`phi_coefficients`.
    """

    def __init__(self, linear: np.ndarray, dt: float, nonlinear: NonlinearTerm, contour_points: int = 32) -> None:
        linear = np.asarray(linear)
        if np.iscomplexobj(linear):
            raise TypeError("ETDRK4 here supports real diagonal linear operators only")
        self.dt = float(dt)
        self.nonlinear = nonlinear
        self.grid_points = int(nonlinear.grid_points)
        self.cutoff_wavenumber = float(nonlinear.cutoff_wavenumber)
        self.cfl_limit = RK4_IMAGINARY_LIMIT
        self.dtype = np.dtype(nonlinear.dtype)
        self.phi = phi_coefficients(linear, self.dt, contour_points)
        p, g, s = self.phi, np.asarray(nonlinear.factor), nonlinear.source
        self._per_sample = linear.ndim > len(nonlinear.spectrum_shape)
        # The factor is folded into Q, 2Q, f1, 2 f2, f3. A real factor (2-D advection's -mask) keeps
        # them real: they multiply the float view of the spectra (one real product per number). A
        # purely imaginary factor (-i k / 2) gives coefficients with real part exactly 0, whose
        # complex products are batch-independent too (see solvers.spectral).
        self._real_factor = bool(np.isrealobj(g))
        if self._real_factor:
            fold = lambda c: interleave(c * g).astype(self.dtype)
        else:
            fold = lambda c: np.asarray(c * g, dtype=self._complex)
        # E and E2 multiply the state: interleaved real copies (real products on its float view)
        self._exp = tuple(interleave(c).astype(self.dtype) for c in (p.E, p.E2))
        self._folded = tuple(fold(c) for c in (p.Q, 2.0 * p.Q, p.f1, 2.0 * p.f2, p.f3))
        if s is None:
            self._source: tuple[np.ndarray, ...] = ()
        else:  # a constant N is integrated exactly: Q s in stages a-c, (f1 + 4 f2 + f3) s = h phi1(h L) s at the end
            s = np.asarray(s, dtype=np.complex128)
            self._source = tuple(np.asarray(c * s, dtype=self._complex) for c in (p.Q, p.f1 + 4.0 * p.f2 + p.f3))
        self.bytes_per_sample = self.working_bytes(nonlinear.bytes_per_sample, nonlinear.spectrum_shape, self.dtype,
                                                   len(self._source))

    @staticmethod
    def working_bytes(term_bytes: int, spectrum_shape: tuple[int, ...], dtype: type, sources: int = 0) -> int:
        """Working memory of one sample inside :meth:`advance` (bytes), from the sizes alone.

        Parameters
        ----------
        term_bytes
            The nonlinear term's own working memory per sample (its ``bytes_per_sample``).
        spectrum_shape
            Shape of one sample's half spectrum.
        dtype
            Real precision of the state.
        sources
            Coefficient rows of a constant source (0 or 2).

        Returns
        -------
        int
            ``term_bytes`` + the work spectra (``v``, 4 ``F``'s, ``a``, ``b``, ``c``, ``E2 v``,
            ``Q F(v)``, a temporary) and, for 1-D spectra (copied per block), the coefficient rows.
        """
        spectrum = math.prod(spectrum_shape) * 2 * np.dtype(dtype).itemsize
        tiled = len(spectrum_shape) == 1
        return int(term_bytes) + 11 * spectrum + ((7 + sources) * spectrum if tiled else 0)

    @staticmethod
    def coefficient_bytes(modes: int, contour_points: int = 32) -> int:
        """Peak memory of building the coefficients of ``modes`` spectral modes (bytes), from the sizes alone.

        :func:`phi_coefficients` holds about six complex ``[modes, contour_points]`` temporaries;
        the kept coefficients (at most nine complex rows) are small beside them. Per sample when
        ``L`` varies per sample.
        """
        return 6 * 16 * int(modes) * int(contour_points) + 9 * 16 * int(modes)

    def folded_coefficients(self) -> FoldedCoefficients:
        """The coefficients :meth:`advance` multiplies by, for ports of the step to other array libraries."""
        return FoldedCoefficients(self._exp, self._folded, self._source, self._real_factor, self._per_sample)

    @property
    def _complex(self) -> np.dtype:
        return np.result_type(self.dtype, np.complex64)

    @property
    def _tiled(self) -> bool:
        # 1-D spectra are short: coefficients copied to the block's full shape multiply faster than broadcasts
        return len(self.nonlinear.spectrum_shape) == 1

    def _coefficients(self, batch: int, rows: slice | None) -> tuple[np.ndarray, ...]:
        """The block's coefficients: its rows of per-sample operators, copied to the block's shape if short."""
        out = []
        for c in self._exp + self._folded + self._source:
            if self._per_sample:
                c = c[rows if rows is not None else slice(None)]
            if self._tiled:
                c = np.ascontiguousarray(np.broadcast_to(c, (batch,) + c.shape[-1:]))
            out.append(c)
        return tuple(out)

    def advance(self, v: np.ndarray, steps: int, rows: slice | None = None, workers: int = 1) -> None:
        """Advance the spectra ``v`` (``[b, *spectrum_shape]``, C-contiguous) by ``steps`` steps in place.

        ``rows`` says which rows of per-sample operators ``v`` holds; ``workers`` threads may run
        inside the nonlinear term's FFTs (:meth:`rollout` spreads blocks of samples over the cores).
        """
        if steps <= 0:
            return
        E, E2, Q, Q2, f1, f2x2, f3, *source = self._coefficients(v.shape[0], rows)
        qs, ps = source if source else (None, None)
        evaluate = self.nonlinear.evaluate
        work = self.nonlinear.workspace(v.shape[0], workers)
        # fv, fa, fb, fc hold F(.) without the factor (folded into Q, Q2, f1, f2x2, f3)
        fv, fa, fb, fc, a, b, c, e2v, qnv, tmp = (np.empty_like(v) for _ in range(10))
        rv, ra, rc, re2v = (as_real(x) for x in (v, a, c, e2v))
        # the views the folded coefficients multiply: real products for a real factor
        fold = as_real if self._real_factor else (lambda z: z)
        mfv, mfa, mfb, mfc, mb, mqnv, mtmp = (fold(x) for x in (fv, fa, fb, fc, b, qnv, tmp))
        mul, add, sub = np.multiply, np.add, np.subtract
        for _ in range(steps):
            evaluate(v, fv, work)
            mul(rv, E2, re2v)
            if qs is not None:
                add(e2v, qs, e2v)  # E2 v + Q s
            mul(mfv, Q, mqnv)
            add(e2v, qnv, a)  # a = E2 v + Q N(v)
            evaluate(a, fa, work)
            mul(mfa, Q, mb)
            add(b, e2v, b)  # b = E2 v + Q N(a)
            evaluate(b, fb, work)
            mul(mfb, Q2, mtmp)
            mul(ra, E2, rc)
            add(c, tmp, c)
            sub(c, qnv, c)
            if qs is not None:
                add(c, qs, c)  # c = E2 a + Q (2 N(b) - N(v))
            evaluate(c, fc, work)
            mul(rv, E, rv)
            mul(mfv, f1, mtmp)
            add(v, tmp, v)
            add(fa, fb, tmp)
            mul(mtmp, f2x2, mtmp)
            add(v, tmp, v)
            mul(mfc, f3, mtmp)
            add(v, tmp, v)
            if ps is not None:
                add(v, ps, v)  # v = E v + f1 N(v) + 2 f2 (N(a) + N(b)) + f3 N(c)

    def start(self, initial: np.ndarray, rows: slice | None = None) -> np.ndarray:
        """Spectra of ``[b, *grid]`` physical fields: the state :meth:`advance` works on."""
        return self.nonlinear.start(initial)

    def observe(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fields ``[b, *grid]`` and the largest advection speed of each sample."""
        return self.nonlinear.observe(state)


def advection_1d_bytes(n: int, dtype: type = np.float64) -> tuple[int, int]:
    """Memory of an :class:`ETDRK4` integrator of ``-(u^2/2)_x`` plus a linear part on ``n`` points (sizes alone).

    Returns
    -------
    tuple of int
        ``(per_sample, coefficients)``: the working memory of one sample inside
        :meth:`ETDRK4.advance` (state precision ``dtype``) and the peak of building one row of
        coefficients (per sample when ``L`` varies per sample), in bytes.
    """
    m = n // 2 + 1
    return (ETDRK4.working_bytes(ConservativeAdvection1D.sample_bytes(n, dtype), (m,), dtype),
            ETDRK4.coefficient_bytes(m))
