"""Symmetry transforms map solutions to solutions: checked against pdeop's own solvers at tiny sizes.

Each test transforms a solver trajectory and compares it with the solver's trajectory from the
transformed initial condition. Translations and the square's reflections commute with the
pseudo-spectral schemes exactly (up to FFT rounding); a Galilean boost changes the advection speed,
so the two runs differ by their time-integration errors, which each test measures (dt against dt/2)
and uses as its tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pde_data.families.navier_stokes import forcing_field
from pde_data.symmetries import (SQUARE_ELEMENTS, element_sign, fourier_shift, galilean_boost, square_stabiliser,
                                 torus_transform, translate)
from solvers.burgers import burgers_stepper
from solvers.kuramoto_sivashinsky import kuramoto_sivashinsky_stepper
from solvers.navier_stokes import VorticityCN

#: (stepper factory(dt), domain length, boost velocity, grid points, time step); small nonlinear cases
ONE_D = {
    "kuramoto-sivashinsky": (lambda dt: kuramoto_sivashinsky_stepper(64, 22.0, dt), 22.0, 0.8, 64, 0.02),
    "burgers": (lambda dt: burgers_stepper(64, 0.02, dt), 1.0, 0.6, 64, 2e-3),
}


def _initial_1d(n: int, length: float) -> np.ndarray:
    """A smooth zero-mean field of modes 1..3 (well inside the 2/3 dealiasing band)."""
    x = np.arange(n) * length / n
    k = 2 * np.pi / length
    return 0.6 * np.sin(k * x + 0.3) + 0.4 * np.cos(2 * k * x - 1.1) + 0.2 * np.sin(3 * k * x + 2.0)


def _solve(factory, u0: np.ndarray, dt: float, steps_per_record: int, records: int) -> np.ndarray:
    return factory(dt).rollout(u0[None], steps_per_record, records, out_dtype=np.float64, threads=1)[0]


@pytest.mark.parametrize("problem", sorted(ONE_D))
def test_galilean_boost_of_a_trajectory_is_the_solution_from_the_boosted_initial_state(problem):
    """u(x - eps t, t) + eps (transform of the stored trajectory, the shift by Fourier interpolation)
    equals the solver's trajectory from u0 + eps, within the two runs' time-integration errors.

    The semi-discrete spectral scheme is exactly Galilean invariant for dealiased fields, so only
    the time stepping (ETDRK4, 80 steps) separates the two; each run's error is estimated by
    rerunning it at dt / 2 (for a 4th-order method the estimate is 15/16 of the error). The bound
    allows twice the sum of the estimates plus float64 rounding. A boost in the wrong direction or
    with the wrong length scale misses by orders of magnitude more (checked).
    """
    factory, length, eps, n, dt = ONE_D[problem]
    per_record, records = 10, 8
    u0 = _initial_1d(n, length)
    times = np.arange(records + 1) * dt * per_record
    plain = _solve(factory, u0, dt, per_record, records)
    boosted_run = _solve(factory, u0 + eps, dt, per_record, records)
    error_plain = np.abs(plain - _solve(factory, u0, dt / 2, 2 * per_record, records)).max()
    error_boosted = np.abs(boosted_run - _solve(factory, u0 + eps, dt / 2, 2 * per_record, records)).max()

    def boost(velocity: float, period: float) -> np.ndarray:
        return galilean_boost(torch.from_numpy(plain)[None], torch.tensor([velocity], dtype=torch.float64),
                              torch.from_numpy(times)[None], torch.tensor([period], dtype=torch.float64))[0].numpy()

    tolerance = 2.0 * (error_plain + error_boosted) + 1e-12 * n
    assert np.abs(boost(eps, length) - boosted_run).max() <= tolerance
    assert np.abs(boost(-eps, length) - (boosted_run - 2 * eps)).max() > 100 * tolerance
    assert np.abs(boost(eps, 2 * length) - boosted_run).max() > 100 * tolerance


@pytest.mark.parametrize("problem", sorted(ONE_D))
def test_translation_of_a_trajectory_is_the_solution_from_the_translated_initial_state(problem):
    """A shift by whole cells commutes with the pseudo-spectral solvers to FFT rounding (1e-12 on O(1)
    fields after 80 steps: rounding 1e-16 per operation, amplified by at most a few hundred)."""
    factory, length, _, n, dt = ONE_D[problem]
    u0 = _initial_1d(n, length)
    plain = _solve(factory, u0, dt, 10, 8)
    shifted = _solve(factory, np.roll(u0, 13), dt, 10, 8)
    moved = translate(torch.from_numpy(plain)[None], torch.tensor([[13]]))[0].numpy()
    assert np.abs(moved - shifted).max() <= 1e-12


def test_fourier_shift_is_exact_for_band_limited_fields_and_inverts():
    """Shifting a band-limited field by a fraction of a cell samples it at the moved points (1e-13), and
    shifting back returns it (Fourier interpolation is unitary on the resolved modes)."""
    n = 32
    x = np.arange(n) / n
    field = lambda s: np.sin(2 * np.pi * (x - s)) + 0.5 * np.cos(2 * np.pi * 5 * (x - s) + 0.4)  # noqa: E731
    shift_cells = 3.37
    u = torch.from_numpy(field(0.0))
    moved = fourier_shift(u, torch.tensor(shift_cells, dtype=torch.float64))
    np.testing.assert_allclose(moved.numpy(), field(shift_cells / n), atol=1e-13)
    np.testing.assert_allclose(fourier_shift(moved, torch.tensor(-shift_cells, dtype=torch.float64)).numpy(), u.numpy(), atol=1e-13)


def _ns_run(w0: np.ndarray, forcing: np.ndarray) -> np.ndarray:
    solver = VorticityCN(16, 1e-2, 2e-3, forcing)
    return solver.rollout(w0[None], 25, 4, out_dtype=np.float64, threads=1)[0]


@pytest.mark.parametrize("element,shift", [(0, (5, 11)), (1, (0, 0)), (6, (3, 7)), (4, (2, 0)), (7, (9, 1))])
def test_torus_transforms_map_navier_stokes_solutions_to_solutions(element, shift):
    """Shifted / reflected / rotated vorticity w'(p) = det(g) w(g^-1(p - s)) with the forcing transformed
    the same way equals the solver's run from the transformed initial vorticity, to FFT rounding
    (1e-11 on O(1) fields after 100 steps; the scheme's dealiasing square is symmetric). Keeping the
    old forcing breaks it for a reflection (difference > 1e-3): the forcing must move with the flow."""
    rng = np.random.default_rng(4)
    n = 16
    k = np.fft.fftfreq(n, 1 / n)
    spectrum = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) * (np.add.outer(k**2, k**2) <= 9)
    w0 = np.fft.ifft2(spectrum).real * n
    f = forcing_field(n, 0.5)
    move = lambda a: torus_transform(torch.from_numpy(a)[None] if a.ndim == 3 else torch.from_numpy(a)[None, None],  # noqa: E731
                                     torch.tensor([element]), torch.tensor([shift]), pseudo=True)[0]
    expected = move(_ns_run(w0, f)).numpy()
    got = _ns_run(move(w0)[0].numpy(), move(f)[0].numpy())
    assert np.abs(expected).max() > 0.5
    assert np.abs(got - expected).max() <= 1e-11
    if element_sign(element) == -1:
        assert np.abs(_ns_run(move(w0)[0].numpy(), f) - expected).max() > 1e-3


def test_the_stabiliser_of_the_fno_forcing():
    """For f = sin 2pi(x+y) + cos 2pi(x+y) on a 16^2 grid the transforms that keep f are exactly: the
    shifts with s_x + s_y = 0 (mod n), the point reflection with s_x + s_y = n/4, the swap with
    s_x + s_y = n/2 and the anti-diagonal reflection with s_x + s_y = 3n/4 (16 each, found by
    solving f(g^-1(p - s)) = det(g) f(p) by hand); every one leaves f unchanged."""
    n = 16
    f = forcing_field(n, 0.1).astype(np.float32)
    kept = square_stabiliser(f, SQUARE_ELEMENTS, shifts=True)
    expected = {0: 0, 3: n // 4, 4: n // 2, 7: 3 * n // 4}
    assert sorted({int(e) for e in kept[:, 0]}) == sorted(expected)
    for element, total in expected.items():
        rows = kept[kept[:, 0] == element]
        assert len(rows) == n and np.all((rows[:, 1] + rows[:, 2]) % n == total)
    images = torus_transform(torch.from_numpy(f).double()[None, None].expand(len(kept), 1, n, n),
                             torch.from_numpy(kept[:, 0]), torch.from_numpy(kept[:, 1:]), pseudo=True)
    assert float((images - torch.from_numpy(f).double()).abs().max()) < 1e-6
    assert square_stabiliser(f, SQUARE_ELEMENTS, shifts=False).tolist() == [[0, 0, 0]]
    assert len(square_stabiliser(np.zeros((n, n)), (0, 1), shifts=True)) == 2 * n * n
