"""Physics and code-path tests of the batched vorticity integrator (classic FNO scheme)."""

from __future__ import annotations

import numpy as np
import pytest

from solvers.errors import StabilityError
from solvers.navier_stokes import VorticityCN
from tests.solvers.vorticity_fields import grid as _grid
from tests.solvers.vorticity_fields import kolmogorov_forcing as _forcing
from tests.solvers.vorticity_fields import smooth_field as _smooth_field


@pytest.mark.parametrize("shape", ["taylor-green", "plane-wave"])
def test_single_mode_decays_exactly(shape: str) -> None:
    """Without forcing a field of one |k| shell has zero advection and decays as exp(-nu 4 pi^2 |k|^2 t).

    Both fields have |k|^2 = 2 (integer wavenumbers). The scheme multiplies the mode by the
    Crank–Nicolson factor (1 - a) / (1 + a), a = dt nu 4 pi^2 |k|^2 / 2, per step: we check that to
    rounding (1e-13, 10^4 steps of ~1e-16 each), and that its distance to the exponential,
    n (2a)^3 / 12 ~ 3e-11 here (nu = 0.01, dt = 4e-5, T = 0.4), is below the ~1e-10 asked of the
    scheme. The decay over the run is exp(-0.32), so a wrong rate would show at O(1e-2).
    """
    n, nu, dt, steps = 16, 0.01, 4e-5, 10_000
    x, y = _grid(n)
    w0 = np.sin(2 * np.pi * x) * np.sin(2 * np.pi * y) if shape == "taylor-green" else np.cos(2 * np.pi * (x - y))
    solver = VorticityCN(n, nu, dt)
    w = solver.rollout(w0[None], steps, 1, out_dtype=np.float64)[0, -1]
    lam = nu * 4 * np.pi**2 * 2
    a = 0.5 * dt * lam
    assert np.max(np.abs(w - w0 * ((1 - a) / (1 + a)) ** steps)) < 1e-13
    assert np.max(np.abs(w - w0 * np.exp(-lam * dt * steps))) < 1e-10


def test_matches_the_classic_update_formula() -> None:
    """The optimised step (fused operators, pruned forward FFT, in-place passes) equals the plain formula.

    The plain formula is the classic FNO generator's update written naively in float64,
    w_hat <- (-dt F + dt f_hat + (1 - dt/2 nu lap) w_hat) / (1 + dt/2 nu lap), with
    F = mask * rfft2(psi_y w_x - psi_x w_y). After 100 forced nonlinear steps the two agree to
    rounding (1e-13 relative; differences are re-association of the same operations).
    """
    n, nu, dt, steps = 32, 1e-3, 1e-3, 100
    rng = np.random.default_rng(1)
    w0 = _smooth_field(rng, n, 3)
    f = _forcing(n)
    kmax = n // 2
    ky = np.concatenate([np.arange(0, kmax), np.arange(-kmax, 0)])[None, :].repeat(n, 0)
    kx = ky.T[:, : kmax + 1]
    ky = ky[:, : kmax + 1]
    lap = 4 * np.pi**2 * (kx**2 + ky**2)
    lap[0, 0] = 1.0
    mask = (np.abs(ky) <= 2 / 3 * kmax) & (np.abs(kx) <= 2 / 3 * kmax)
    w_hat, f_hat = np.fft.rfft2(w0), np.fft.rfft2(f)
    for _ in range(steps):
        psi = w_hat / lap
        u = np.fft.irfft2(2j * np.pi * ky * psi, s=(n, n))
        v = np.fft.irfft2(-2j * np.pi * kx * psi, s=(n, n))
        wx = np.fft.irfft2(2j * np.pi * kx * w_hat, s=(n, n))
        wy = np.fft.irfft2(2j * np.pi * ky * w_hat, s=(n, n))
        F = mask * np.fft.rfft2(u * wx + v * wy)
        w_hat = (-dt * F + dt * f_hat + (1 - 0.5 * dt * nu * lap) * w_hat) / (1 + 0.5 * dt * nu * lap)
    plain = np.fft.irfft2(w_hat, s=(n, n))
    fast = VorticityCN(n, nu, dt, f).rollout(w0, steps, 1, out_dtype=np.float64)[:, -1]
    assert np.max(np.abs(fast - plain)) < 1e-13 * np.max(np.abs(plain))


def test_forced_flow_converges_at_first_order() -> None:
    """The forced nonlinear flow converges at order 1 in dt (forward Euler advection and forcing).

    Errors at T = 1 against a dt = 1e-4 run for dt = 0.02 ... 0.0025 (32^2 grid, nu = 1e-3, std(w0) = 1
    so that advection matters). The reference's own error biases the observed order by < 0.04;
    each halving must give an order within 0.1 of 1.
    """
    n, nu, T = 32, 1e-3, 1.0
    w0 = _smooth_field(np.random.default_rng(2), n, 1)
    f = _forcing(n)

    def final(dt: float) -> np.ndarray:
        steps = round(T / dt)
        return VorticityCN(n, nu, dt, f).rollout(w0, steps, 1, out_dtype=np.float64)[0, -1]

    reference = final(1e-4)
    errors = np.array([np.max(np.abs(final(dt) - reference)) for dt in (0.02, 0.01, 0.005, 0.0025)])
    orders = np.log2(errors[:-1] / errors[1:])
    assert errors[0] > 1e-4  # the flow is far from the reference at the coarsest step: a real test
    assert np.all(np.abs(orders - 1.0) < 0.1), orders


@pytest.mark.parametrize("n, steps", [(16, 20), (256, 2)])
def test_sample_is_bit_identical_in_any_batch(n: int, steps: int) -> None:
    """A sample's trajectory does not depend on the other samples in the batch, to the last bit.

    Inside a batch of 5 it shares numpy FFT calls with other samples in blocks; alone on 256^2
    it is one block large enough to get threaded scipy FFTs (same pocketfft code). Both must give
    identical bits (np.array_equal) to what the sample gets inside the batch.
    """
    rng = np.random.default_rng(3)
    w0 = _smooth_field(rng, n, 5 if n < 256 else 3)
    solver = VorticityCN(n, 1e-3, 1e-3, _forcing(n))
    together = solver.rollout(w0, steps, 2, out_dtype=np.float64, threads=2)
    for row in (0, 2):
        alone = solver.rollout(w0[row:row + 1], steps, 2, out_dtype=np.float64, threads=2)
        assert np.array_equal(alone[0], together[row])


@pytest.mark.parametrize("broken", ["cfl", "nan"])
def test_stability_guard_names_sample_time_and_remedy(broken: str) -> None:
    """An unstable sample stops the rollout with a StabilityError naming its label, time and remedy.

    Row 0 is harmless; row 1 either has a velocity whose CFL number dt*max(|u|+|v|)*k_max is ~15
    (limit 1) or contains a NaN. Only row 1 (label 11) may be reported.
    """
    n = 16
    w0 = _smooth_field(np.random.default_rng(4), n, 2, amplitude=0.1)
    if broken == "cfl":
        w0[1] *= 500.0
    else:
        w0[1, 3, 3] = np.nan
    with pytest.raises(StabilityError) as info:
        VorticityCN(n, 1e-3, 0.05).rollout(w0, 2, 2, labels=[7, 11])
    message = str(info.value)
    assert message.startswith("sample 11 became unstable by t = 0:")
    assert "smaller dt (now 0.05)" in message and "internal_resolution (now 16)" in message
