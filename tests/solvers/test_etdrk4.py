"""ETDRK4 (Kassam–Trefethen) for Kuramoto–Sivashinsky and viscous Burgers: order, invariants, exact solutions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ive

from solvers.burgers import burgers_stepper
from solvers.errors import StabilityError
from solvers.etdrk4 import phi_coefficients
from solvers.kuramoto_sivashinsky import kuramoto_sivashinsky_linear, kuramoto_sivashinsky_stepper


def test_phi_coefficients_match_closed_forms_and_limits() -> None:
    """The contour-integral coefficients equal the closed forms where those are accurate, and the limits at 0.

    For |z| >= 1 the closed forms (e.g. Q = h (e^{z/2} - 1) / z) lose nothing to cancellation; the
    contour mean of 32 terms with partly cancelling parts carries relative rounding of order
    1e-13 (1.2e-13 seen), so we ask 3e-13. At z = 0 (where the closed forms are 0/0) the
    coefficients are h/2 and h/6 exactly (f1 = f2 = f3 = h/6), which the contour reaches to 1e-14.
    """
    h = 0.1
    z = np.array([-300.0, -50.0, -10.0, -1.0, 1.0, 2.5])
    p = phi_coefficients(z / h, h)
    closed = {
        "Q": h * (np.exp(z / 2) - 1) / z,
        "f1": h * (-4 - z + np.exp(z) * (4 - 3 * z + z**2)) / z**3,
        "f2": h * (2 + z + np.exp(z) * (z - 2)) / z**3,
        "f3": h * (-4 - 3 * z - z**2 + np.exp(z) * (4 - z)) / z**3,
    }
    for name, value in closed.items():
        np.testing.assert_allclose(getattr(p, name), value, rtol=3e-13, atol=0)
    zero = phi_coefficients(np.zeros(1), h)
    np.testing.assert_allclose([zero.Q[0], zero.f1[0], zero.f2[0], zero.f3[0]], [h / 2, h / 6, h / 6, h / 6],
                               rtol=1e-14)


def _ks_final(dt: float, n: int = 64, length: float = 32 * np.pi, T: float = 1.0, shift: float = 0.0) -> np.ndarray:
    x = length * np.arange(n) / n
    u0 = np.cos(x / 16) * (1 + np.sin(x / 16)) + shift
    return kuramoto_sivashinsky_stepper(n, length, dt).rollout(u0[None], round(T / dt), 1, out_dtype=np.float64)[0, -1]


def test_ks_converges_at_fourth_order() -> None:
    """ETDRK4 is fourth order in dt on Kassam & Trefethen's smooth KS case over a short time.

    u0 = cos(x/16)(1 + sin(x/16)) on L = 32 pi, N = 64, T = 1; errors for dt = T/4 ... T/32 against
    dt = T/2048 (whose own error is ~1e-15, far below the smallest measured ~8e-12). Each halving
    must divide the error by 2^4 (observed order within 0.2 of 4).
    """
    reference = _ks_final(1.0 / 2048)
    errors = np.array([np.max(np.abs(_ks_final(dt) - reference)) for dt in (1 / 4, 1 / 8, 1 / 16, 1 / 32)])
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(np.abs(orders - 4.0) < 0.2), (errors, orders)


def test_ks_conserves_the_mean() -> None:
    """The conservative form keeps the spatial mean of u (the k = 0 mode) to rounding.

    With a mean of 0.3 added to the chaotic-length case (L = 32 pi, T = 20, 80 steps), the mean
    after the run must equal 0.3 to 1e-13 while the field itself changes at O(1).
    """
    n = 64
    x = 32 * np.pi * np.arange(n) / n
    u0 = np.cos(x / 16) * (1 + np.sin(x / 16)) + 0.3
    u = _ks_final(0.25, T=20.0, shift=0.3)
    assert abs(u.mean() - u0.mean()) < 1e-13
    assert np.max(np.abs(u - u0)) > 0.5


def _cole_hopf(x: np.ndarray, t: float, nu: float, amplitude: float) -> np.ndarray:
    """Exact Burgers solution from u0 = A sin(2 pi x) by Cole–Hopf: u = -2 nu phi_x / phi.

    phi solves the heat equation with phi0 = exp(A cos(2 pi x) / (4 pi nu)), whose Fourier series has
    modified Bessel coefficients: phi = I0(z) + 2 sum_n I_n(z) e^{-4 pi^2 nu n^2 t} cos(2 pi n x), z = A / (4 pi nu).
    """
    z = amplitude / (4 * np.pi * nu)
    n = np.arange(1, 80)[:, None]
    bessel = ive(n, z) * np.exp(-4 * np.pi**2 * nu * n**2 * t)
    numerator = 8 * np.pi * nu * np.sum(n * bessel * np.sin(2 * np.pi * n * x), axis=0)
    denominator = ive(0, z) + 2 * np.sum(bessel * np.cos(2 * np.pi * n * x), axis=0)
    return numerator / denominator


@pytest.mark.parametrize("nu, n", [(0.1, 64), (0.02, 128)])
def test_burgers_matches_cole_hopf(nu: float, n: int) -> None:
    """Viscous Burgers from u0 = sin(2 pi x) matches the exact Cole–Hopf solution at t = 0.5 to 1e-9.

    nu = 0.1 is the classic data's viscosity (smooth, decaying); nu = 0.02 steepens the wave to
    |u_x| ~ 10. With dt = 1e-3 the ETDRK4 error is ~1e-10 and the grids resolve the solution to
    below that. The Bessel series itself is accurate to ~1e-16 / e^{-2z} (z = 1/(4 pi nu) <= 4,
    cancellation where cos(2 pi x) = -1), i.e. 2e-13 at worst, which the t = 0 check allows.
    """
    x = np.arange(n) / n
    u0 = np.sin(2 * np.pi * x)
    assert np.max(np.abs(_cole_hopf(x, 0.0, nu, 1.0) - u0)) < 1e-12  # the exact solution is right at t = 0
    u = burgers_stepper(n, nu, 1e-3).rollout(u0[None], 500, 1, out_dtype=np.float64)[0, -1]
    assert np.max(np.abs(u - _cole_hopf(x, 0.5, nu, 1.0))) < 1e-9


def test_per_sample_lengths_equal_separate_runs() -> None:
    """A batch whose samples have different domain lengths equals one run per length, bit for bit.

    Per-sample operators ([batch, modes]) must be matched to their rows in every block; any mix-up
    would change the chaotic trajectories at O(1).
    """
    n, dt = 64, 0.1
    lengths = np.array([40.0, 55.0, 70.0])
    x = np.arange(n) / n
    u0 = np.stack([np.cos(2 * np.pi * x) + 0.1 * k * np.sin(4 * np.pi * x) for k in range(3)])
    together = kuramoto_sivashinsky_stepper(n, lengths, dt).rollout(u0, 10, 3, out_dtype=np.float64, threads=2)
    assert kuramoto_sivashinsky_linear(n, lengths).shape == (3, n // 2 + 1)
    for row, length in enumerate(lengths):
        alone = kuramoto_sivashinsky_stepper(n, length, dt).rollout(u0[row:row + 1], 10, 3, out_dtype=np.float64)
        assert np.array_equal(alone[0], together[row])


def test_sample_is_bit_identical_in_any_batch() -> None:
    """A KS sample's trajectory is the same to the last bit alone or inside a batch of 9 (split into blocks)."""
    n = 160
    x = np.arange(n) / n
    rng = np.random.default_rng(0)
    u0 = np.stack([np.sin(2 * np.pi * (k * x + rng.uniform())) for k in rng.integers(1, 5, 9)])
    stepper = kuramoto_sivashinsky_stepper(n, 60.0, 0.1)
    together = stepper.rollout(u0, 5, 4, warmup_steps=7, out_dtype=np.float64, threads=2)
    for row in (0, 4, 8):
        alone = stepper.rollout(u0[row:row + 1], 5, 4, warmup_steps=7, out_dtype=np.float64, threads=2)
        assert np.array_equal(alone[0], together[row])


def test_cfl_violation_names_the_sample() -> None:
    """dt*max|u|*k_max above 2 sqrt(2) stops the run with a StabilityError naming the sample and remedy.

    Burgers on 64 points, dt = 0.05: row 0 has max|u| = 1e-3 (CFL ~ 0.007), row 1 max|u| = 1
    (CFL ~ 6.6), so only the sample labelled 42 is reported.
    """
    x = np.arange(64) / 64
    u0 = np.stack([1e-3 * np.sin(2 * np.pi * x), np.sin(2 * np.pi * x)])
    with pytest.raises(StabilityError, match=r"^sample 42 became unstable by t = 0: the CFL number .*smaller dt"):
        burgers_stepper(64, 0.01, 0.05).rollout(u0, 1, 1, labels=[41, 42])


def test_float32_burgers_matches_cole_hopf() -> None:
    """In float32 the Burgers stepper still follows Cole–Hopf, to the accumulated float32 rounding.

    nu = 0.02 from u0 = sin(2 pi x), 500 steps of 1e-3 as in the float64 test (whose error is 1e-9):
    each step's four stages round every value at ~6e-8 relative and max|u| <= 1 never grows, so
    500 x 4 x 6e-8 = 1.2e-4 bounds the sum (5e-6 is typical), while the state must really be float32.
    """
    n, nu = 128, 0.02
    x = np.arange(n) / n
    stepper = burgers_stepper(n, nu, 1e-3, dtype=np.float32)
    assert stepper.start(np.sin(2 * np.pi * x)[None]).dtype == np.complex64
    u = stepper.rollout(np.sin(2 * np.pi * x)[None], 500, 1, out_dtype=np.float64)[0, -1]
    assert np.max(np.abs(u - _cole_hopf(x, 0.5, nu, 1.0))) < 1.2e-4


def test_float32_ks_follows_float64() -> None:
    """The float32 KS run stays within float32 rounding of the float64 one on Kassam & Trefethen's case.

    32 steps of 1/32 to T = 1: 32 steps x 4 stages x 6e-8 x max|u| (1.3), amplified at most by the
    fastest linear growth exp(T max(k^2 - k^4)) = exp(1/4), gives a bound of 1.3e-5 (4.5e-7 seen).
    """
    float64 = _ks_final(1 / 32)
    n, length = 64, 32 * np.pi
    x = length * np.arange(n) / n
    u0 = np.cos(x / 16) * (1 + np.sin(x / 16))
    float32 = kuramoto_sivashinsky_stepper(n, length, 1 / 32, np.float32).rollout(u0[None], 32, 1)[0, -1]
    assert float32.dtype == np.float32
    assert np.max(np.abs(float32 - float64)) < 1.3e-5
