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
        # A real factor (2-D advection's -mask) keeps every folded coefficient real: those multiply
        # the float view of the spectra (one real product per number). A purely imaginary factor
        # (-i k / 2) gives coefficients with real part exactly 0, whose complex products are
        # batch-independent too (see solvers.spectral).
        self._real_factor = bool(np.isrealobj(g))
        fold = (lambda c: interleave(c * g)) if self._real_factor else (lambda c: c * g)
        stack = lambda *cs: np.stack(cs).astype(self.dtype if self._real_factor else self._complex)
        self._exp = np.stack([interleave(p.E2), interleave(p.E)]).astype(self.dtype)  # E2 v, E v
        self._on_v = stack(fold(p.Q), fold(p.f1))  # Q F(v), f1 F(v)
        self._on_a = stack(fold(p.Q), fold(2.0 * p.f2))  # Q F(a), 2 f2 F(a)
        self._on_b = stack(fold(2.0 * p.Q), fold(2.0 * p.f2))  # 2 Q F(b), 2 f2 F(b)
        self._on_c = stack(fold(p.f3))  # f3 F(c)
        if s is None:
            self._source = None
        else:  # a constant N is integrated exactly: Q s in stages a-c, (f1 + 4 f2 + f3) s = h phi1(h L) s at the end
            s = np.asarray(s, dtype=np.complex128)
            self._source = np.stack([p.Q * s, (p.f1 + 4.0 * p.f2 + p.f3) * s]).astype(self._complex)
        self._slots = 12 if s is not None else 11
        spectrum = int(np.prod(nonlinear.spectrum_shape)) * 2 * self.dtype.itemsize
        coefficient_spectra = 9 + (2 if s is not None else 0)
        # work spectra (slots + v, F(v), F(a), F(b), F(c), b) and, for tiled 1-D spectra, coefficients
        self.bytes_per_sample = (nonlinear.bytes_per_sample + (self._slots + 6) * spectrum
                                 + (coefficient_spectra * spectrum if self._tiled else 0))

    @property
    def _complex(self) -> np.dtype:
        return np.result_type(self.dtype, np.complex64)

    @property
    def _tiled(self) -> bool:
        # 1-D spectra are short: coefficients copied to the block's full shape multiply faster than broadcasts
        return len(self.nonlinear.spectrum_shape) == 1

    def _coefficients(self, batch: int, rows: slice | None) -> list[np.ndarray]:
        """The block's coefficient stacks ``[k, b or 1, *spectrum]``: its rows of per-sample operators, tiled if short."""
        stacks = [self._exp, self._on_v, self._on_a, self._on_b, self._on_c]
        if self._source is not None:
            stacks.append(self._source)
        out = []
        for c in stacks:
            c = c[:, rows if rows is not None else slice(None)] if self._per_sample else c[:, None]
            if self._tiled:
                c = np.broadcast_to(c, (c.shape[0], batch) + c.shape[2:])
            out.append(np.ascontiguousarray(c))
        return out

    def advance(self, v: np.ndarray, steps: int, rows: slice | None = None, workers: int = 1) -> None:
        """Advance the spectra ``v`` (``[b, *spectrum_shape]``, C-contiguous) by ``steps`` steps in place.

        ``rows`` says which rows of per-sample operators ``v`` holds; ``workers`` threads may run
        inside the nonlinear term's FFTs (:meth:`rollout` spreads blocks of samples over the cores).
        """
        if steps <= 0:
            return
        exp, on_v, on_a, on_b, on_c, *source = self._coefficients(v.shape[0], rows)
        evaluate = self.nonlinear.evaluate
        work = self.nonlinear.workspace(v.shape[0], workers)
        # Slots of W: 0 Q F(v), 1 f1 F(v), 2 Q F(a), 3 2 f2 F(a), 4 2 Q F(b), 5 2 f2 F(b), 6 c,
        # 7 f3 F(c), 8 E2 v (+ Q s), 9 E v, 10 a, 11 (f1 + 4 f2 + f3) s: the new v is the sum of the odd slots.
        W = np.empty((self._slots,) + v.shape, dtype=v.dtype)
        fv, fa, fb, fc, b = (np.empty_like(v) for _ in range(5))
        a, c = W[10], W[6]
        real = as_real
        folded = real if self._real_factor else (lambda z: z)  # view multiplied by the folded coefficients
        rv, ra, rW = real(v), real(a), real(W)
        mv, ma, mb, mc, mW = (folded(x) for x in (fv, fa, fb, fc, W))
        e2 = exp[0]
        qs = None
        if source:
            qs = source[0][0]
            W[11] = source[0][1]
        mul, add, sub = np.multiply, np.add, np.subtract
        odd = W[1::2]
        for _ in range(steps):
            evaluate(v, fv, work)
            mul(rv, exp, rW[8:10])
            mul(mv, on_v, mW[0:2])
            if qs is not None:
                add(W[8], qs, W[8])
            add(W[8], W[0], a)  # a = E2 v + Q N(v)
            evaluate(a, fa, work)
            mul(ma, on_a, mW[2:4])
            add(W[8], W[2], b)  # b = E2 v + Q N(a)
            evaluate(b, fb, work)
            mul(mb, on_b, mW[4:6])
            mul(ra, e2, rW[6])
            add(c, W[4], c)
            sub(c, W[0], c)
            if qs is not None:
                add(c, qs, c)  # c = E2 a + Q (2 N(b) - N(v))
            evaluate(c, fc, work)
            mul(mc, on_c[0], mW[7])
            np.add.reduce(odd, axis=0, out=v)  # v = E v + f1 N(v) + 2 f2 (N(a) + N(b)) + f3 N(c)

    def start(self, initial: np.ndarray, rows: slice | None = None) -> np.ndarray:
        """Spectra of ``[b, *grid]`` physical fields: the state :meth:`advance` works on."""
        return self.nonlinear.start(initial)

    def observe(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fields ``[b, *grid]`` and the largest advection speed of each sample."""
        return self.nonlinear.observe(state)
