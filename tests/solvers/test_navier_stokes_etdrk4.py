"""The ETDRK4 vorticity scheme (exact viscosity, fourth-order advection and forcing) and float32 runs."""

from __future__ import annotations

import numpy as np
import pytest

from solvers.errors import StabilityError
from solvers.navier_stokes import navier_stokes_stepper
from solvers.stability import RK4_IMAGINARY_LIMIT
from tests.solvers.vorticity_fields import grid as _grid
from tests.solvers.vorticity_fields import kolmogorov_forcing as _forcing
from tests.solvers.vorticity_fields import smooth_field as _smooth_field


def _final(w0: np.ndarray, dt: float, T: float, scheme: str = "etdrk4", nu: float = 1e-3,
           forcing: np.ndarray | None = None, dtype: type = np.float64) -> np.ndarray:
    n = w0.shape[-1]
    solver = navier_stokes_stepper(n, nu, dt, forcing, scheme, dtype)
    return solver.rollout(w0, round(T / dt), 1, out_dtype=np.float64)[:, -1]


@pytest.mark.parametrize("shape", ["taylor-green", "plane-wave"])
def test_single_mode_decays_exactly(shape: str) -> None:
    """Without forcing a field of one |k| shell has zero advection and decays as exp(-nu 4 pi^2 |k|^2 t).

    |k|^2 = 2 (integer wavenumbers), nu = 0.01, 200 steps of 2e-3 (decay exp(-0.32) over the run, so a
    wrong rate shows at O(1e-2)). The scheme multiplies the mode by the exact factor exp(h L) per step;
    rounding adds ~1e-16 per step and the pseudo-spectral advection, zero in exact arithmetic, ~1e-16
    times dt: 1e-13 leaves a margin of ~10 over 200 steps.
    """
    n, nu, dt, steps = 16, 0.01, 2e-3, 200
    x, y = _grid(n)
    w0 = np.sin(2 * np.pi * x) * np.sin(2 * np.pi * y) if shape == "taylor-green" else np.cos(2 * np.pi * (x - y))
    w = _final(w0[None], dt, dt * steps, nu=nu)[0]
    assert np.max(np.abs(w - w0 * np.exp(-nu * 4 * np.pi**2 * 2 * dt * steps))) < 1e-13


def test_constant_forcing_is_integrated_exactly() -> None:
    """From rest, the single-shell forcing f drives w(t) = f (1 - exp(-nu lam t)) / (nu lam), lam = 8 pi^2.

    w stays in f's shell, where the advection vanishes, so only the exact linear part and the
    constant-forcing weights (Q f in the stages, h phi1(h L) f at the end) act: 50 steps of 0.02 with
    nu = 0.1 (nu lam t = 7.9, near the steady state) must match to rounding. The weights come from a
    32-point contour integral, accurate to ~1e-15 relative; 1e-13 of max|w| ~ 1.3e-13 is the bound.
    """
    n, nu, dt, steps = 16, 0.1, 0.02, 50
    f = _forcing(n)
    w = _final(np.zeros((1, n, n)), dt, dt * steps, nu=nu, forcing=f)[0]
    lam = 8 * np.pi**2
    exact = f * (1 - np.exp(-nu * lam * dt * steps)) / (nu * lam)
    assert np.max(np.abs(w - exact)) < 1e-13 * np.max(np.abs(exact)) + 1e-15


def test_forced_flow_converges_at_fourth_order() -> None:
    """The forced nonlinear flow converges at order 4 in dt.

    32^2 grid, nu = 1e-3, std(w0) = 1 (advection matters: max(|u| + |v|) ~ 0.3), T = 1; errors at
    dt = 1/16 ... 1/128 against dt = 1/1024. The reference's own error (~2^-12 of the smallest
    measured one) biases the observed order by < 1e-3 and rounding (~1e-14) is far below the smallest
    error (~1e-8); the next term of the error expansion changes the first ratio by a few percent
    (order 4.03 observed), so each halving must give an order within 0.1 of 4.
    """
    w0 = _smooth_field(np.random.default_rng(2), 32, 1)
    f = _forcing(32)
    reference = _final(w0, 1 / 1024, 1.0, forcing=f)
    errors = np.array([np.max(np.abs(_final(w0, dt, 1.0, forcing=f) - reference)) for dt in (1 / 16, 1 / 32, 1 / 64, 1 / 128)])
    orders = np.log2(errors[:-1] / errors[1:])
    assert errors[0] > 1e-6  # far from the reference at the coarsest step: a real test
    assert np.all(np.abs(orders - 4.0) < 0.1), (errors, orders)


def test_classic_scheme_converges_to_the_etdrk4_solution() -> None:
    """As dt -> 0 the classic Crank–Nicolson / Euler scheme approaches the ETDRK4 solution at first order.

    Same forced case as above; the ETDRK4 run at dt = 1/256 is ~1e-9 from the exact solution, far
    below the classic errors (~1e-3 ... 1e-4) at dt = 0.01, 0.005, 0.0025, so each halving must halve
    the distance (order within 0.1 of 1, like the classic scheme's own convergence test).
    """
    w0 = _smooth_field(np.random.default_rng(2), 32, 1)
    f = _forcing(32)
    reference = _final(w0, 1 / 256, 1.0, forcing=f)
    errors = np.array([np.max(np.abs(_final(w0, dt, 1.0, "classic", forcing=f) - reference))
                       for dt in (0.01, 0.005, 0.0025)])
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(np.abs(orders - 1.0) < 0.1), (errors, orders)


@pytest.mark.parametrize("scheme", ["classic", "etdrk4"])
def test_float32_run_agrees_with_float64(scheme: str) -> None:
    """The float32 integration follows the float64 one to float32 rounding.

    40 forced nonlinear steps on 32^2 (dt = 0.01 for ETDRK4, 0.001 for the classic scheme's smaller
    stability limit). Each step adds a few float32 roundings (eps = 6e-8) per value in each of its
    stages; 40 steps x 4 stages x 5 roundings x eps ~ 5e-5 of max|w| bounds their sum with
    margin (the flow is not chaotic at this time scale), while a wrong coefficient shows at O(1e-2).
    """
    w0 = _smooth_field(np.random.default_rng(5), 32, 2)
    f = _forcing(32)
    dt = 0.01 if scheme == "etdrk4" else 0.001
    double = _final(w0, dt, 40 * dt, scheme, forcing=f)
    single = _final(w0, dt, 40 * dt, scheme, forcing=f, dtype=np.float32)
    solver = navier_stokes_stepper(32, 1e-3, dt, f, scheme, np.float32)
    assert solver.rollout(w0, 1, 1).dtype == np.float32
    assert np.max(np.abs(single - double)) < 5e-5 * np.max(np.abs(double))
    assert np.max(np.abs(double - w0)) > 1e-2  # the run changed the field


@pytest.mark.parametrize("n, steps, dtype", [(16, 20, np.float64), (256, 2, np.float64), (16, 20, np.float32),
                                             (256, 2, np.float32)])
def test_sample_is_bit_identical_in_any_batch(n: int, steps: int, dtype: type) -> None:
    """An ETDRK4 sample's trajectory does not depend on the other samples in the batch, to the last bit.

    As for the classic scheme: inside a batch it shares FFT calls and coefficient products with other
    samples; alone on 256^2 it gets threaded FFTs. Both must give identical bits, in float64 (numpy.fft,
    or scipy.fft when threaded) and in float32 (always scipy.fft).
    """
    rng = np.random.default_rng(3)
    w0 = _smooth_field(rng, n, 5 if n < 256 else 3)
    solver = navier_stokes_stepper(n, 1e-3, 1e-2, _forcing(n), "etdrk4", dtype)
    together = solver.rollout(w0, steps, 2, out_dtype=np.float64, threads=2)
    for row in (0, 2):
        alone = solver.rollout(w0[row:row + 1], steps, 2, out_dtype=np.float64, threads=2)
        assert np.array_equal(alone[0], together[row])


def test_cfl_guard_uses_the_rk4_limit() -> None:
    """ETDRK4 stops a sample whose dt*max(|u|+|v|)*k_max exceeds 2 sqrt(2), naming it; below that it runs.

    On 16^2 (k_max = 2 pi 5) with dt = 0.05, amplitudes giving CFL numbers of ~1.5 (above the classic
    scheme's limit 1, allowed here) and ~15 (label 11).
    """
    n, dt = 16, 0.05
    w0 = _smooth_field(np.random.default_rng(4), n, 2)
    solver = navier_stokes_stepper(n, 1e-3, dt, None, "etdrk4")
    speeds = solver.observe(solver.start(w0))[1]
    w0 *= (np.array([1.5, 15.0]) / (dt * speeds * solver.cutoff_wavenumber))[:, None, None]
    assert solver.cfl_limit == RK4_IMAGINARY_LIMIT
    with pytest.raises(StabilityError, match=r"^sample 11 became unstable by t = 0: the CFL number"):
        solver.rollout(w0, 1, 1, labels=[7, 11])
    assert np.all(np.isfinite(solver.rollout(w0[:1], 2, 1)))
