"""Physics-informed operator loss: second-order residuals of exact trajectories, agreement of the
spectral tendencies with the autograd PDE residuals, per-sample periods and differentiability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from operators.physics.exact import burgers_cole_hopf
from operators.physics.operator_residual import physics_loss, tendency_function
from operators.physics.pde_specs import build_pde
from solvers.errors import ConfigError


def _observed_order(trajectory, dts) -> float:
    """Order p of the residual from loss ~ dt^(2p) over two step sizes, after checking it fell."""
    losses = [float(trajectory(dt)) for dt in dts]
    assert losses[1] < losses[0]
    return 0.5 * math.log(losses[0] / losses[1]) / math.log(dts[0] / dts[1])


def test_convection_diffusion_exact_trajectory_has_second_order_residual() -> None:
    """exp(-nu k^2 t) sin(k (x - c t)) sampled every dt: the Crank-Nicolson residual is O(dt^2)
    (observed order within 0.1 of 2)."""
    x = 2 * math.pi * torch.arange(64, dtype=torch.float64) / 64

    def loss(dt: float) -> torch.Tensor:
        t = dt * torch.arange(6, dtype=torch.float64)
        u = torch.exp(-0.2 * 4 * t)[:, None] * torch.sin(2 * (x[None] - 3.0 * t[:, None]))
        return physics_loss("convection", u[None], [2 * math.pi], dt, {"c": 3.0, "viscosity": 0.2}, relative=False)

    assert abs(_observed_order(loss, [0.02, 0.01]) - 2) < 0.1


def test_burgers_cole_hopf_trajectory_has_second_order_residual() -> None:
    """The Cole-Hopf solution (nu = 0.1 on [-1, 1), 128 points: spectrally resolved) has an
    O(dt^2) residual under the nonlinear, dealiased Burgers tendency (order within 0.15 of 2)."""
    spec = build_pde({"name": "burgers", "nu": 0.1, "shift": 0.2})
    x = -1 + 2 * np.arange(128) / 128

    def loss(dt: float) -> torch.Tensor:
        u = torch.tensor(burgers_cole_hopf(spec, 0.3 + dt * np.arange(5), x))
        return physics_loss("burgers", u[None], [2.0], dt, {"viscosity": 0.1}, relative=False)

    assert abs(_observed_order(loss, [0.01, 0.005]) - 2) < 0.15


def _autograd_tendency(spec, fields, coords: torch.Tensor) -> torch.Tensor:
    """-residual of a time-independent field = F(u) (the residual is u_t - F(u) with u_t = 0)."""
    coords = coords.detach().requires_grad_(True)
    return -spec.residual(fields(coords), coords)[:, 0].detach()


def test_kuramoto_sivashinsky_tendency_matches_the_autograd_residual() -> None:
    """For a trigonometric polynomial resolved by the 2/3 rule, the spectral KS tendency equals
    minus the autograd residual of the PDE spec (time-independent field), to 1e-10."""
    spec = build_pde({"name": "kuramoto-sivashinsky", "alpha": 1.5, "beta": 0.7, "gamma": 0.2, "length": 4.0})
    n, k = 48, 2 * math.pi / 4.0
    x = 4.0 * torch.arange(n, dtype=torch.float64) / n

    def fields(c: torch.Tensor) -> torch.Tensor:
        return (torch.sin(k * c[:, 1]) + 0.5 * torch.cos(3 * k * c[:, 1]) + 0.2)[:, None]

    coords = torch.stack((torch.zeros_like(x), x), dim=1)
    u = fields(coords)[:, 0]
    params = {"alpha": 1.5, "beta": 0.7, "gamma": 0.2}
    spectral = tendency_function("kuramoto-sivashinsky", u[None, None], [4.0], params)(u[None, None])[0, 0]
    torch.testing.assert_close(spectral, _autograd_tendency(spec, fields, coords), rtol=0, atol=1e-10)


def test_navier_stokes_tendency_matches_the_autograd_residual() -> None:
    """For a stream function psi (trigonometric, resolved), w = -lap psi: the spectral vorticity
    tendency (Poisson solve, dealiased advection, viscosity, FNO forcing) equals minus the
    autograd vorticity residual of the spec with (u, v) = (psi_y, -psi_x), to 1e-9."""
    spec = build_pde({"name": "navier-stokes", "nu": 0.01, "length": 1.0, "forcing": "fno"})
    n, k = 24, 2 * math.pi

    def velocity(c: torch.Tensor) -> torch.Tensor:
        x, y = c[:, 1], c[:, 2]
        # psi = sin(k x) cos(2 k y) + 0.3 cos(k (x + y))
        psi_y = -2 * k * torch.sin(k * x) * torch.sin(2 * k * y) - 0.3 * k * torch.sin(k * (x + y))
        psi_x = k * torch.cos(k * x) * torch.cos(2 * k * y) - 0.3 * k * torch.sin(k * (x + y))
        return torch.stack((psi_y, -psi_x), dim=1)

    line = torch.arange(n, dtype=torch.float64) / n
    gx, gy = torch.meshgrid(line, line, indexing="ij")
    coords = torch.stack((torch.zeros(n * n, dtype=torch.float64), gx.reshape(-1), gy.reshape(-1)), dim=1)
    w = (5 * k**2 * torch.sin(k * gx) * torch.cos(2 * k * gy) + 0.3 * 2 * k**2 * torch.cos(k * (gx + gy)))
    forcing = spec.force(coords[:, 1:]).reshape(n, n)
    tendency = tendency_function("navier-stokes", w[None, None], [1.0, 1.0], {"viscosity": 0.01, "forcing": forcing})
    spectral = tendency(w[None, None])[0, 0].reshape(-1)
    torch.testing.assert_close(spectral, _autograd_tendency(spec, velocity, coords), rtol=0, atol=1e-9)


def test_per_sample_periods_equal_separate_calls() -> None:
    """KS with a [B] tensor of periods gives the mean of the per-sample losses computed one by one."""
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(2, 3, 32, generator=generator, dtype=torch.float64)
    lengths = torch.tensor([20.0, 25.0], dtype=torch.float64)
    both = physics_loss("kuramoto-sivashinsky", u, [lengths], 0.1, relative=False)
    each = [physics_loss("kuramoto-sivashinsky", u[i:i + 1], [float(lengths[i])], 0.1, relative=False) for i in range(2)]
    torch.testing.assert_close(both, (each[0] + each[1]) / 2, rtol=1e-12, atol=0)


def test_physics_loss_gradcheck() -> None:
    """The loss is differentiable in the prediction: torch.autograd.gradcheck in float64 (Burgers,
    absolute form; the relative form divides by a detached scale on purpose, so that enlarging the
    time variation cannot lower the loss, and its gradient is that of the absolute form scaled)."""
    generator = torch.Generator().manual_seed(1)
    u = torch.randn(1, 3, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: physics_loss("burgers", p, [1.0], 0.05, {"viscosity": 0.1}, relative=False),
                                      (u,))
    absolute = physics_loss("burgers", u, [1.0], 0.05, {"viscosity": 0.1}, relative=False)
    relative = physics_loss("burgers", u, [1.0], 0.05, {"viscosity": 0.1})
    (g_abs,) = torch.autograd.grad(absolute, u)
    (g_rel,) = torch.autograd.grad(relative, u)
    torch.testing.assert_close(g_rel, g_abs * (relative / absolute).detach(), rtol=1e-12, atol=0)


def test_physics_loss_errors() -> None:
    """Unknown problem, missing parameter and a single-state prediction are ConfigErrors."""
    u = torch.zeros(1, 2, 8)
    with pytest.raises(ConfigError, match="unknown problem"):
        physics_loss("heat", u, [1.0], 0.1, {})
    with pytest.raises(ConfigError, match="viscosity"):
        physics_loss("burgers", u, [1.0], 0.1, {})
    with pytest.raises(ConfigError, match="time >= 2"):
        physics_loss("burgers", u[:, :1], [1.0], 0.1, {"viscosity": 0.1})
