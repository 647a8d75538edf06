"""PDE specifications: autograd residuals against exact solutions and against independent sympy
residuals, initial conditions, and the reference solutions of operators.physics.exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch

from operators.physics import exact
from operators.physics.pde_specs import build_pde, describe_pde
from solvers.errors import ConfigError

T, X, Y = sympy.symbols("t x y", real=True)


def _points(spec, n: int = 64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    t = spec.t_end * torch.rand(n, 1, generator=generator, dtype=torch.float64)
    lo = torch.tensor(spec.lower, dtype=torch.float64)
    hi = torch.tensor(spec.upper, dtype=torch.float64)
    x = lo + (hi - lo) * torch.rand(n, spec.space_dim, generator=generator, dtype=torch.float64)
    return torch.cat((t, x), dim=1).requires_grad_(True)


def _residual_of(spec, fields, coords: torch.Tensor) -> torch.Tensor:
    """Residual the spec computes for output = fields(coords)."""
    return spec.residual(fields(coords), coords)


EXACT = {
    # u_t + c u_x = nu u_xx: the decaying travelling sine
    "convection": ({"name": "convection", "c": 50.0, "nu": 0.1, "wavenumber": 2},
                   lambda s: lambda c: (torch.exp(-s.nu * 4 * c[:, 0]) * torch.sin(2 * (c[:, 1] - 50 * c[:, 0])))[:, None]),
    "convection-inviscid": ({"name": "convection", "c": 30.0},
                            lambda s: lambda c: torch.sin(c[:, 1:] - 30 * c[:, :1])),
    # Burgers: the viscous travelling front u = U - A tanh(A (x - U t) / (2 nu))
    "burgers": ({"name": "burgers", "nu": 0.05, "shift": 0.4},
                lambda s: lambda c: (0.4 - 0.7 * torch.tanh(0.7 * (c[:, 1] - 0.4 * c[:, 0]) / (2 * 0.05)))[:, None]),
    # Fisher: the Ablowitz-Zeppetella wave 1 / (1 + C exp(sqrt(rho / 6 nu) x - 5 rho t / 6))^2
    "reaction-diffusion": ({"name": "reaction-diffusion", "rho": 3.0, "nu": 0.2},
                           lambda s: lambda c: (1 + 0.5 * torch.exp(math.sqrt(3.0 / (6 * 0.2)) * c[:, 1:]
                                                                    - 2.5 * c[:, :1])) ** -2),
    # Allen-Cahn: the stationary interface tanh(x sqrt(rho / (2 d))) (d u_xx = rho (u^3 - u) for it)
    "allen-cahn": ({"name": "allen-cahn", "d": 0.01, "rho": 5.0},
                   lambda s: lambda c: torch.tanh(c[:, 1:] * math.sqrt(5.0 / (2 * 0.01)))),
    # pure reaction: logistic growth of the spec's own initial condition
    "reaction": ({"name": "reaction", "rho": 5.0},
                 lambda s: lambda c: s.initial(c[:, 1:]) * torch.exp(5 * c[:, :1])
                 / (s.initial(c[:, 1:]) * torch.exp(5 * c[:, :1]) + 1 - s.initial(c[:, 1:]))),
}


def _ks_wave(alpha: float, beta: float, gamma: float, speed: float = 0.3):
    """Travelling tanh solution of KS (Kuramoto-Tsuzuki), rescaled from alpha = beta = gamma = 1."""
    a = math.sqrt(gamma / beta)
    b = gamma / beta**2
    scale = a / (alpha * b)
    k = 0.5 * math.sqrt(11 / 19)

    def u(c: torch.Tensor) -> torch.Tensor:
        xi = c[:, 1] / a - speed * c[:, 0] / b
        th = torch.tanh(k * xi)
        return (scale * (speed + 15 / 19 * math.sqrt(11 / 19) * (11 * th**3 - 9 * th)))[:, None]

    return u


@pytest.mark.parametrize("case", sorted(EXACT))
def test_residual_vanishes_on_exact_solutions(case: str) -> None:
    """Every 1-D spec's autograd residual of a known exact solution is zero to rounding (float64:
    terms are O(1)-O(100), so 1e-9 leaves a wide margin yet catches any wrong coefficient)."""
    settings, solution = EXACT[case]
    spec = build_pde(settings)
    coords = _points(spec)
    residual = _residual_of(spec, solution(spec), coords)
    assert residual.shape == (coords.shape[0], 1)
    assert residual.abs().max().item() < 1e-9


@pytest.mark.parametrize("coefficients", [(1.0, 1.0, 1.0), (100 / 16, 100 / 16**2, 100 / 16**4)])
def test_kuramoto_sivashinsky_residual_vanishes_on_tanh_wave(coefficients) -> None:
    """The KS residual (four autograd derivatives) is zero on the exact travelling tanh wave, for the
    unit equation and for Wang et al.'s coefficients (rescaled wave); 1e-8 relative to O(1e2) terms."""
    alpha, beta, gamma = coefficients
    spec = build_pde({"name": "kuramoto-sivashinsky", "alpha": alpha, "beta": beta, "gamma": gamma})
    coords = _points(spec)
    residual = _residual_of(spec, _ks_wave(alpha, beta, gamma), coords)
    assert residual.abs().max().item() < 1e-8


def _taylor_green(nu: float, k: float):
    def fields(c: torch.Tensor) -> torch.Tensor:
        decay = torch.exp(-2 * nu * k**2 * c[:, 0])
        return torch.stack((torch.cos(k * c[:, 1]) * torch.sin(k * c[:, 2]) * decay,
                            -torch.sin(k * c[:, 1]) * torch.cos(k * c[:, 2]) * decay), dim=1)

    return fields


def _forced_shear(nu: float, k: float, a0: float = 0.3, b0: float = -0.2):
    """w = a(t) sin(k s) + b(t) cos(k s), s = x + y, with a' = -2 nu k^2 a + 0.1 (same for b)."""
    rate = 2 * nu * k**2

    def coefficient(t: torch.Tensor, start: float) -> torch.Tensor:
        return 0.1 / rate + (start - 0.1 / rate) * torch.exp(-rate * t)

    def fields(c: torch.Tensor) -> torch.Tensor:
        a, b = coefficient(c[:, 0], a0), coefficient(c[:, 0], b0)
        s = k * (c[:, 1] + c[:, 2])
        psi_s = (a * torch.cos(s) - b * torch.sin(s)) / (2 * k)
        return torch.stack((psi_s, -psi_s), dim=1)

    return fields


def test_navier_stokes_residuals_vanish_on_exact_flows() -> None:
    """Vorticity and continuity residuals are zero for the decaying Taylor-Green vortex (unforced)
    and for a forced shear flow of the FNO forcing on the unit torus (1e-9: O(10) terms in float64)."""
    tg = build_pde({"name": "navier-stokes", "nu": 0.05})
    coords = _points(tg)
    assert _residual_of(tg, _taylor_green(0.05, 1.0), coords).abs().max().item() < 1e-9
    forced = build_pde({"name": "navier-stokes", "nu": 1e-3, "length": 1.0, "forcing": "fno"})
    coords = _points(forced)
    residual = _residual_of(forced, _forced_shear(1e-3, 2 * math.pi), coords)
    assert residual.shape[1] == 2
    assert residual.abs().max().item() < 1e-9


def test_navier_stokes_observable_is_the_vorticity() -> None:
    """The observable of the (u, v) output is w = v_x - u_y; for Taylor-Green it equals the closed
    form used as the evaluation reference (to rounding)."""
    spec = build_pde({"name": "navier-stokes", "nu": 0.05, "amplitude": 1.0})
    coords = _points(spec)
    w = spec.observable(_taylor_green(0.05, 1.0)(coords), coords)[:, 0].detach().numpy()
    c = coords.detach().numpy()
    expected = -2 * np.cos(c[:, 1]) * np.cos(c[:, 2]) * np.exp(-2 * 0.05 * c[:, 0])
    np.testing.assert_allclose(w, expected, atol=1e-12)


# -- independent residuals: sympy expressions of each PDE applied to a function that is NOT a solution
_TEST_FIELD = sympy.sin(X) * sympy.cos(T) + sympy.Rational(3, 10) * sympy.cos(2 * X) * T**2 + sympy.Rational(1, 5)

SYMPY_RESIDUALS = {
    "convection": ({"name": "convection", "c": 7.0, "nu": 0.3},
                   lambda u: sympy.diff(u, T) + 7 * sympy.diff(u, X) - sympy.Rational(3, 10) * sympy.diff(u, X, 2)),
    "burgers": ({"name": "burgers", "nu": 0.02},
                lambda u: sympy.diff(u, T) + u * sympy.diff(u, X) - sympy.Rational(1, 50) * sympy.diff(u, X, 2)),
    "allen-cahn": ({"name": "allen-cahn", "d": 0.25, "rho": 3.0},
                   lambda u: sympy.diff(u, T) - sympy.Rational(1, 4) * sympy.diff(u, X, 2) + 3 * (u**3 - u)),
    "reaction-diffusion": ({"name": "reaction-diffusion", "rho": 4.0, "nu": 0.5},
                           lambda u: sympy.diff(u, T) - sympy.Rational(1, 2) * sympy.diff(u, X, 2) - 4 * u * (1 - u)),
    "kuramoto-sivashinsky": ({"name": "kuramoto-sivashinsky", "alpha": 2.0, "beta": 0.5, "gamma": 0.25},
                             lambda u: sympy.diff(u, T) + 2 * u * sympy.diff(u, X) + sympy.Rational(1, 2) * sympy.diff(u, X, 2)
                             + sympy.Rational(1, 4) * sympy.diff(u, X, 4)),
}


@pytest.mark.parametrize("case", sorted(SYMPY_RESIDUALS))
def test_residual_matches_sympy_on_a_non_solution(case: str) -> None:
    """On a field that solves nothing, the autograd residual equals the residual written out
    independently in sympy (so a residual that vanished everywhere, or had a wrong sign, fails);
    1e-10 relative to O(1-10) values in float64."""
    settings, written = SYMPY_RESIDUALS[case]
    spec = build_pde(settings)
    coords = _points(spec)
    expected_fn = sympy.lambdify((T, X), written(_TEST_FIELD), "numpy")

    def fields(c: torch.Tensor) -> torch.Tensor:
        t, x = c[:, 0], c[:, 1]
        return (torch.sin(x) * torch.cos(t) + 0.3 * torch.cos(2 * x) * t**2 + 0.2)[:, None]

    got = _residual_of(spec, fields, coords)[:, 0].detach().numpy()
    c = coords.detach().numpy()
    expected = expected_fn(c[:, 0], c[:, 1])
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_navier_stokes_residual_matches_sympy_on_a_non_solution() -> None:
    """2-D vorticity and continuity residuals equal sympy's for a compressible, non-solution
    velocity field with the FNO forcing (1e-10 in float64)."""
    spec = build_pde({"name": "navier-stokes", "nu": 0.1, "length": 1.0, "forcing": "fno"})
    k = 2 * sympy.pi
    u = sympy.sin(k * X) * sympy.cos(k * Y) * (1 + T)
    v = sympy.cos(k * X) * sympy.sin(2 * k * Y) * T + sympy.sin(k * Y)
    w = sympy.diff(v, X) - sympy.diff(u, Y)
    f = sympy.Rational(1, 10) * (sympy.sin(k * (X + Y)) + sympy.cos(k * (X + Y)))
    vort = sympy.diff(w, T) + u * sympy.diff(w, X) + v * sympy.diff(w, Y) - sympy.Rational(1, 10) * (
        sympy.diff(w, X, 2) + sympy.diff(w, Y, 2)) - f
    cont = sympy.diff(u, X) + sympy.diff(v, Y)
    expected_fn = sympy.lambdify((T, X, Y), [vort, cont], "numpy")
    coords = _points(spec)
    kk = 2 * math.pi

    def fields(c: torch.Tensor) -> torch.Tensor:
        t, x, y = c[:, 0], c[:, 1], c[:, 2]
        return torch.stack((torch.sin(kk * x) * torch.cos(kk * y) * (1 + t),
                            torch.cos(kk * x) * torch.sin(2 * kk * y) * t + torch.sin(kk * y)), dim=1)

    got = _residual_of(spec, fields, coords).detach().numpy()
    c = coords.detach().numpy()
    expected = np.stack([np.broadcast_to(e, c[:, 0].shape) for e in expected_fn(c[:, 0], c[:, 1], c[:, 2])], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-9)


def test_build_pde_round_trip_and_errors() -> None:
    """describe_pde gives back the mapping build_pde accepts; bad settings are ConfigErrors naming the field."""
    spec = build_pde({"name": "burgers", "nu": 0.01, "shift": 0.5})
    assert build_pde(describe_pde(spec)) == spec
    with pytest.raises(ConfigError, match="pde.name"):
        build_pde({"name": "heat-equation"})
    with pytest.raises(ConfigError, match="pde.nu"):
        build_pde({"name": "burgers", "nu": -1})
    with pytest.raises(ConfigError, match="viscosity"):
        build_pde({"name": "burgers", "viscosity": 0.1})


# -- reference solutions
def test_burgers_cole_hopf_matches_the_published_maximum_slope() -> None:
    """For u0 = -sin(pi x), nu = 0.01/pi, the steepest slope |u_x(0, t)| is 152.00516 at t = 1.6037/pi
    (Basdevant et al. 1986); a central difference with h = 1e-6 reproduces it to 1e-4 relative."""
    spec = build_pde({"name": "burgers"})
    h = 1e-6
    u = exact.burgers_cole_hopf(spec, np.array([1.6037 / math.pi]), np.array([-h, h]))
    slope = (u[0, 1] - u[0, 0]) / (2 * h)
    assert abs(slope + 152.00516) < 152.00516 * 1e-4


def test_burgers_moving_front_is_the_galilean_shift() -> None:
    """With shift U the reference is U + u_0(x - U t, t) (periodic on [-1, 1)); at t = 0 it is u0."""
    still = build_pde({"name": "burgers", "nu": 0.02})
    moving = build_pde({"name": "burgers", "nu": 0.02, "shift": 0.5})
    t, x = np.array([0.0, 0.6]), np.linspace(-1, 1, 33)[:-1]
    shifted = np.mod(x - 0.5 * 0.6 + 1, 2) - 1
    np.testing.assert_allclose(exact.burgers_cole_hopf(moving, t, x)[1],
                               0.5 + exact.burgers_cole_hopf(still, t[1:], shifted)[0], atol=1e-12)
    np.testing.assert_allclose(exact.burgers_cole_hopf(moving, t, x)[0], 0.5 - np.sin(np.pi * x), atol=1e-14)


def test_reaction_diffusion_reference_converges_to_second_order() -> None:
    """Strang splitting is second order in dt: halving dt divides the difference to a fine run by ~4
    (observed order between 1.8 and 2.2)."""
    spec = build_pde({"name": "reaction-diffusion", "rho": 3.0, "nu": 0.05})
    t, x = np.array([0.5]), np.linspace(0, 2 * math.pi, 64, endpoint=False)
    fine = exact.reaction_diffusion_reference(spec, t, x, n=256, dt=1e-3)
    errors = [np.abs(exact.reaction_diffusion_reference(spec, t, x, n=256, dt=dt) - fine).max()
              for dt in (0.04, 0.02)]
    order = math.log2(errors[0] / errors[1])
    assert 1.8 < order < 2.2


def test_allen_cahn_reference_is_exact_in_its_two_limits() -> None:
    """Without diffusion (d = 0) each point follows u' = rho (u - u^3) exactly,
    u = u0 e^(rho t) / sqrt(1 - u0^2 + u0^2 e^(2 rho t)); without reaction (rho = 0) each Fourier mode
    of the gridded u0 decays as exp(-d k^2 t). The splitting is exact in both limits, so the reference
    matches the closed forms to rounding (1e-12; 1e-10 for the 5000 diffusion steps)."""
    t = np.array([0.0, 0.13, 0.5])
    x = -1.0 + 2.0 * np.arange(64) / 64
    u0 = x**2 * np.cos(np.pi * x)
    reaction = exact.allen_cahn_reference(build_pde({"name": "allen-cahn", "d": 0.0}), t, x, n=64)
    growth = np.exp(5.0 * t)[:, None]
    np.testing.assert_allclose(reaction, u0 * growth / np.sqrt(1 - u0**2 + u0**2 * growth**2), atol=1e-12)
    diffusion = exact.allen_cahn_reference(build_pde({"name": "allen-cahn", "d": 0.01, "rho": 0.0}), t, x, n=64)
    k = np.pi * np.fft.rfftfreq(64, d=1 / 64)
    expected = np.fft.irfft(np.fft.rfft(u0)[None] * np.exp(-0.01 * k**2 * t[:, None]), 64, axis=1)
    np.testing.assert_allclose(diffusion, expected, atol=1e-10)


def test_allen_cahn_reference_converges_to_second_order_in_time() -> None:
    """With both terms the Strang splitting is second order: the difference to a dt = 1e-4 run falls
    by ~4 when dt halves from 0.02 to 0.01 (order between 1.8 and 2.2; d = 1e-3 keeps the
    interfaces resolved on 128 points)."""
    spec = build_pde({"name": "allen-cahn", "d": 1e-3, "t_end": 0.4})
    t, x = np.array([0.4]), -1.0 + 2.0 * np.arange(32) / 32
    fine = exact.allen_cahn_reference(spec, t, x, n=128, dt=1e-4)
    errors = [np.abs(exact.allen_cahn_reference(spec, t, x, n=128, dt=dt) - fine).max() for dt in (0.02, 0.01)]
    assert 1.8 < math.log2(errors[0] / errors[1]) < 2.2, errors


def test_kuramoto_sivashinsky_reference_is_exact_for_the_linear_equation() -> None:
    """With alpha = 0 each Fourier mode evolves as exp((beta k^2 - gamma k^4) t); the Radau reference
    matches that closed form to 1e-7 (its tolerance is 1e-8)."""
    spec = build_pde({"name": "kuramoto-sivashinsky", "alpha": 0.0, "beta": 0.5, "gamma": 0.1})
    t, x = np.array([0.0, 0.3, 1.0]), np.linspace(0, 2 * math.pi, 32, endpoint=False)
    got = exact.kuramoto_sivashinsky_reference(spec, t, x, n=32)
    # u0 = cos x + sin x cos x = cos x + sin(2x)/2
    growth = {k: np.exp((0.5 * k**2 - 0.1 * k**4) * t)[:, None] for k in (1, 2)}
    expected = growth[1] * np.cos(x)[None] + growth[2] * 0.5 * np.sin(2 * x)[None]
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_kuramoto_sivashinsky_reference_satisfies_the_spec_residual() -> None:
    """Interpolating the nonlinear reference (Fourier in x, local quadratic in t) and applying the
    spec's autograd residual gives ~0: |r| < 0.05 (observed 0.009) while the alpha u u_x term
    reaches ~20 (the bound allows the O(dt^2) time interpolation and the 256-mode truncation; a
    wrong sign or factor in the reference or the residual would leave O(10))."""
    spec = build_pde({"name": "kuramoto-sivashinsky", "t_end": 0.06})
    n, dt, t_mid = 256, 1e-3, 0.05
    grid = 2 * math.pi * np.arange(n) / n
    states = exact.kuramoto_sivashinsky_reference(spec, np.array([t_mid - dt, t_mid, t_mid + dt]), grid, n=n)
    coeffs = torch.tensor(np.fft.rfft(states, axis=1) / n)
    m = torch.arange(coeffs.shape[1], dtype=torch.float64)
    weight = torch.where((m == 0) | (m == n // 2), 1.0, 2.0)

    def fields(c: torch.Tensor) -> torch.Tensor:
        phase = torch.outer(c[:, 1], m)
        cos, sin = torch.cos(phase), torch.sin(phase)
        values = [(cos * (weight * coeffs[j].real) - sin * (weight * coeffs[j].imag)).sum(1) for j in range(3)]
        s = (c[:, 0] - t_mid) / dt
        return (values[1] + s * (values[2] - values[0]) / 2 + s**2 * (values[2] - 2 * values[1] + values[0]) / 2)[:, None]

    coords = _points(spec, 32)
    coords = torch.cat((torch.full_like(coords[:, :1], t_mid), coords[:, 1:]), dim=1).detach().requires_grad_(True)
    out = fields(coords)
    u_x = torch.autograd.grad(out[:, 0].sum(), coords, create_graph=True)[0][:, 1]
    assert (spec.alpha * out[:, 0] * u_x).abs().max().item() > 10
    assert _residual_of(spec, fields, coords).abs().max().item() < 0.05


def test_convection_reference_is_the_travelling_sine() -> None:
    """reference() for convection is sin(x - c t) exactly (nu = 0) and zero-mean per time."""
    spec = build_pde({"name": "convection", "c": 50.0})
    t, x = np.linspace(0, 1, 5), np.linspace(0, 2 * math.pi, 16, endpoint=False)
    np.testing.assert_allclose(exact.reference(spec, t, x), np.sin(x[None] - 50 * t[:, None]), atol=1e-12)
