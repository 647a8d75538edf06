"""LPINN: residuals of exact Lagrangian solutions, the map back to the Eulerian grid, crossing
detection, and a short training run on c = 10 convection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from operators.physics.exact import reference
from operators.physics.lagrangian import LPINNLoss, lagrangian_residuals, to_eulerian
from operators.physics.pde_specs import build_pde


class _Closed(nn.Module):
    """A 'model' returning closed-form (x_L, u) of Lagrangian coordinates (t, x0)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.fn(coords[:, 0], coords[:, 1])


def _coords(n: int = 64, length: float = 2 * math.pi, t_end: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(n, 2, generator=generator, dtype=torch.float64) * torch.tensor([t_end, length])


def test_convection_diffusion_characteristics_have_zero_residual() -> None:
    """x_L = x0 + c t, u = exp(-nu t) sin(x0) solves the Lagrangian convection-diffusion system
    (to rounding, 1e-12)."""
    spec = build_pde({"name": "convection", "c": 50.0, "nu": 0.3})
    model = _Closed(lambda t, x0: torch.stack((x0 + 50 * t, torch.exp(-0.3 * t) * torch.sin(x0)), dim=1))
    r_x, r_u, _ = lagrangian_residuals(model, spec.lagrangian(), _coords())
    assert r_x.abs().max().item() < 1e-12
    assert r_u.abs().max().item() < 1e-12


def test_burgers_front_characteristics_have_zero_residual() -> None:
    """For the viscous travelling front u = U - A tanh(A xi / 2 nu), xi = x - U t, the particle
    paths are xi(t) = (2 nu / A) asinh(sinh(A xi0 / 2 nu) exp(-A^2 t / 2 nu)). Along them du/dt =
    nu u_xx, where u_xx comes from the chain rule through x_L,x0 != 1: both residuals vanish
    (1e-9 against O(10) terms), which checks the Lagrangian second derivative."""
    nu, amp, shift = 0.1, 0.8, 0.3
    spec = build_pde({"name": "burgers", "nu": nu, "shift": shift})

    def fields(t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        xi = 2 * nu / amp * torch.asinh(torch.sinh(amp * x0 / (2 * nu)) * torch.exp(-amp**2 * t / (2 * nu)))
        return torch.stack((xi + shift * t, shift - amp * torch.tanh(amp * xi / (2 * nu))), dim=1)

    coords = _coords(length=2.0) - torch.tensor([0.0, 1.0])
    r_x, r_u, _ = lagrangian_residuals(_Closed(fields), spec.lagrangian(), coords)
    assert r_x.abs().max().item() < 1e-9
    assert r_u.abs().max().item() < 1e-9
    # a path that ignores the compression of the particles (x_L,x0 = 1) is not a solution
    wrong = _Closed(lambda t, x0: torch.stack((x0 + shift * t, fields(t, x0)[:, 1]), dim=1))
    assert lagrangian_residuals(wrong, spec.lagrangian(), coords)[0].abs().max().item() > 0.1


def test_reaction_law_along_fixed_particles() -> None:
    """For reaction (speed 0) the exact logistic solution at fixed x0 has zero residuals and zero
    loss, including the initial-condition term (1e-12)."""
    spec = build_pde({"name": "reaction", "rho": 5.0})

    def fields(t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        u0 = spec.initial(x0[:, None])[:, 0]
        grow = torch.exp(5.0 * t)
        return torch.stack((x0, u0 * grow / (u0 * grow + 1 - u0)), dim=1)

    model = _Closed(fields)
    terms = LPINNLoss(norm="mse")(model, spec, _coords(), _coords()[:, 1:])
    assert all(terms[k].item() < 1e-24 for k in ("characteristic", "state", "initial"))


def test_to_eulerian_recovers_the_travelling_sine() -> None:
    """Exact characteristics x0 + c t (c = 50: many periods) carrying u0 = sin x0, mapped back with
    4 particles per grid point, match sin(x - c t) to the linear-interpolation error
    h^2/8 = 1.9e-4 (h = 2 pi / 512); the particles stay evenly spaced (ratio 1)."""
    spec = build_pde({"name": "convection", "c": 50.0})
    model = _Closed(lambda t, x0: torch.stack((x0 + 50 * t, torch.sin(x0)), dim=1))
    t, x = np.linspace(0, 1, 11), 2 * math.pi * np.arange(128) / 128
    field, spacing = to_eulerian(model, spec, t, x)
    assert np.abs(field - reference(spec, t, x)).max() < 2e-4
    assert spacing == pytest.approx(1.0, abs=1e-9)


def test_to_eulerian_reports_crossing_characteristics() -> None:
    """Inviscid-like paths x0 + 2 t sin(x0) fold over once t > 1/2 (x_L,x0 = 1 + 2 t cos x0 < 0):
    the reported minimal spacing ratio is negative, about 1 - 2 t_end = -1."""
    spec = build_pde({"name": "convection", "c": 1.0})
    model = _Closed(lambda t, x0: torch.stack((x0 + 2 * t * torch.sin(x0), torch.sin(x0)), dim=1))
    _, spacing = to_eulerian(model, spec, np.linspace(0, 1, 5), 2 * math.pi * np.arange(64) / 64)
    assert spacing == pytest.approx(-1.0, abs=1e-3)


def test_lpinn_learns_convection_c10_quickly(tmp_path) -> None:
    """LPINN on u_t + 10 u_x = 0, sin x data: 400 Adam steps of two 3 x 32 networks (about 10-25 s
    on one core) reach relative L2 < 0.05 against the exact solution on the 101 x 256 grid
    (observed ~0.013; a plain PINN with this budget is also fine at c = 10, the point is that the
    Lagrangian pipeline, Eulerian map included, is right)."""
    from operators.physics.evaluation import evaluate
    from operators.physics.training import run

    config = {"method": "lpinn", "pde": {"name": "convection", "c": 10.0}, "model": {"width": 32, "depth": 3},
              "training": {"steps": 400, "n_residual": 512, "n_initial": 128, "threads": 1, "log_every": 50,
                           "eval_every": 200, "optimizer": {"lr": 5e-3},
                           "scheduler": {"name": "cosine", "min_lr_ratio": 0.01}}}
    summary = run(config, tmp_path / "run", quiet=True)
    assert summary["finished"] and summary["steps_done"] == 400
    metrics = evaluate(tmp_path / "run")
    assert metrics["rel_l2"] < 0.05
    assert metrics["min_particle_spacing"] > 0.5


def _monotone_lpinn(seed: int = 0):
    from operators.models.lpinn import LPINN, LPINNConfig

    torch.manual_seed(seed)
    model = LPINN(LPINNConfig(width=16, depth=2, lower=(0.0, -1.0), upper=(1.0, 1.0), displacement_scale=1.5,
                              characteristics="monotone")).double()
    for p in model.parameters():  # far from the initialisation: strongly varying spacings
        torch.nn.init.normal_(p, std=0.7)
    return model


def test_monotone_characteristics_are_ordered_periodic_and_start_at_the_labels() -> None:
    """For any weights the monotone construction gives x_L(x0, 0) = x0 (to the rounding of a 96-term
    cumulative sum, 1e-13), x_L strictly increasing
    in x0 at every time, a Jacobian of mean exactly 1 (so one period of labels spans exactly one
    period of space) and min/max spacings far from 1 (the weights are not a trivial case)."""
    model = _monotone_lpinn()
    t = torch.linspace(0, 1, 6, dtype=torch.float64)
    x0 = -1 + 2 * torch.arange(96, dtype=torch.float64) / 96 + 0.0123
    fields = model.grid_fields(t, x0, derivatives=True)
    torch.testing.assert_close(fields.x_l[0], x0, rtol=0, atol=1e-13)
    assert bool((fields.x_l.diff(dim=1) > 0).all())
    torch.testing.assert_close(fields.jacobian.mean(dim=1), torch.ones(6, dtype=torch.float64), rtol=1e-14, atol=0)
    wrap = fields.x_l[:, -1] + 0.5 * (fields.jacobian[:, -1] + fields.jacobian[:, 0]) * 2 / 96
    torch.testing.assert_close(wrap - fields.x_l[:, 0], torch.full((6,), 2.0, dtype=torch.float64))
    assert fields.jacobian.min() < 0.3 and fields.jacobian.max() > 2


def test_monotone_derivatives_match_finite_differences() -> None:
    """dx_L/dt at fixed labels (through the cumulative integral and the softmax normalisation, which
    both move with t) and d log J / dx0 equal central differences with h = 1e-6 (float64: truncation
    ~h^2 and rounding ~1e-16/h, so 1e-7 against O(1) values). Shifting every label by h also moves
    the grid's normalisation by the same amount for all labels of a time (a trapezoid sum of a
    periodic derivative, ~1e-7 here), so d log J / dx0 is compared up to that per-time constant."""
    model = _monotone_lpinn(1)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    x0 = -1 + 2 * torch.arange(48, dtype=torch.float64) / 48
    fields = model.grid_fields(t, x0, derivatives=True)
    h = 1e-6
    dt = (model.grid_fields(t + h, x0).x_l - model.grid_fields(t - h, x0).x_l) / (2 * h)
    torch.testing.assert_close(fields.x_l_t, dt.detach(), rtol=0, atol=1e-7)
    shifted = [model.grid_fields(t, x0 + s, derivatives=True).jacobian.log() for s in (h, -h)]
    difference = fields.log_jacobian_x0.detach() - (shifted[0] - shifted[1]).detach() / (2 * h)
    assert (difference - difference.mean(dim=1, keepdim=True)).abs().max() < 1e-7
    assert difference.mean(dim=1).abs().max() < 1e-5
    assert fields.x_l_t.abs().max() > 0.5


def test_monotone_lpinn_keeps_burgers_particles_ordered_and_beats_free_characteristics(tmp_path) -> None:
    """Short LPINN runs on the Burgers benchmark (nu = 0.01/pi, front moving at 0.5, t in [0, 1], where
    three quarters of the particles end up in the shock): with monotone characteristics the particles
    stay ordered (x_L increasing in x0 at every evaluated time, min spacing ratio > 0) and the error is
    below that of the paper's free characteristics trained the same way (measured 0.27 vs 1.71 at
    150 steps; the free characteristics fold over: min spacing -5.6)."""
    from operators.physics.evaluation import evaluate
    from operators.physics.lagrangian import lagrangian_state
    from operators.physics.training import run

    errors, spacings = {}, {}
    for kind in ("monotone", "free"):
        config = {"method": "lpinn", "pde": {"name": "burgers", "nu": 0.01 / math.pi, "shift": 0.5},
                  "model": {"width": 16, "depth": 2, "characteristics": kind},
                  "training": {"steps": 150, "n_residual": 256, "n_initial": 64, "threads": 1, "log_every": 50,
                               "eval_every": 150, "optimizer": {"lr": 5e-3}},
                  "lpinn": {"labels": 32, "jacobian_floor": 0.01}, "evaluation": {"n_t": 21, "n_space": 64}}
        run(config, tmp_path / kind, quiet=True)
        metrics = evaluate(tmp_path / kind)
        errors[kind], spacings[kind] = metrics["rel_l2"], metrics["min_particle_spacing"]
    from operators.checkpoint import load

    model = load(tmp_path / "monotone" / "best").model
    x_l, _ = lagrangian_state(model, np.linspace(0, 1, 21), -1 + 2 * np.arange(256) / 256)
    assert np.all(np.diff(x_l, axis=1) > 0)
    assert spacings["monotone"] > 0
    assert errors["monotone"] < errors["free"], errors


def test_causal_time_weights_of_the_monotone_lpinn_loss() -> None:
    """With ``causal_epsilon`` e the residuals at the k-th earliest time carry w_k = exp(-e sum_{i<k} L_i),
    L_i the mean square of both residuals at time i: the weighted terms equal those built by hand from
    the unweighted residuals (same float64 sums, 1e-12), and shuffling the step's times does not
    change them (the loss sorts them)."""
    spec = build_pde({"name": "burgers", "nu": 0.01 / math.pi, "shift": 0.5})
    model = _monotone_lpinn(2)
    labels, n_t = 16, 8
    generator = torch.Generator().manual_seed(3)
    coords = torch.rand(labels * n_t, 2, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 2.0]) - torch.tensor([0.0, 1.0])
    coords[:n_t, 0] = torch.sort(coords[:n_t, 0]).values
    plain = LPINNLoss(labels=labels, jacobian_floor=0.01)
    r_x, r_u, _ = plain._grid_residuals(model, spec, coords)
    r_x, r_u = r_x.detach().view(n_t, labels), r_u.detach().view(n_t, labels)
    per_time = r_x.square().mean(dim=1) + r_u.square().mean(dim=1)
    weights = torch.exp(-2.5 * (torch.cumsum(per_time, dim=0) - per_time))
    assert weights.min() < 0.5  # the weights are not trivially 1 here
    causal = LPINNLoss(labels=labels, jacobian_floor=0.01, causal_epsilon=2.5)
    shuffled = coords.clone()
    shuffled[:n_t, 0] = coords[:n_t, 0][torch.randperm(n_t, generator=generator)]  # labels keep their offset
    for points in (coords, shuffled):
        terms = causal(model, spec, points, points[:4, 1:])
        torch.testing.assert_close(terms["characteristic"].detach(), (weights * r_x.square().mean(dim=1)).mean().sqrt(),
                                   rtol=1e-12, atol=0)
        torch.testing.assert_close(terms["state"].detach(), (weights * r_u.square().mean(dim=1)).mean().sqrt(),
                                   rtol=1e-12, atol=0)


def test_position_network_width_and_learning_rate_of_its_own(tmp_path) -> None:
    """``model.position_width`` sizes the characteristic network alone (parameter counts of two
    2-layer tanh MLPs with 2 periodic features of x0 and t as inputs), and ``lpinn.position_lr_scale``
    gives it its own Adam group: Adam's first step moves every weight with |gradient| >> eps by the
    group's learning rate, so the largest move is 3 * lr for the position network and lr for the
    state network (to Adam's eps / |g| and float64 rounding of O(1) weights, below 1e-6 relative here)."""
    from operators.physics.run_config import parse_run_config
    from operators.physics.training import PhysicsTrainer

    config = {"method": "lpinn", "pde": {"name": "burgers", "nu": 0.01 / math.pi, "shift": 0.5},
              "model": {"width": 16, "depth": 2, "characteristics": "monotone", "position_width": 8},
              "training": {"steps": 10, "n_residual": 128, "n_initial": 32, "threads": 1, "dtype": "float64",
                           "optimizer": {"lr": 1e-3}, "scheduler": {"name": "constant"}},
              "lpinn": {"labels": 16, "position_lr_scale": 3.0}}
    trainer = PhysicsTrainer(parse_run_config(config), tmp_path / "run")
    inputs = 3  # t, cos and sin of pi x0

    def mlp(width: int, out: int) -> int:
        return (inputs * width + width) + (width * width + width) + (width * out + out)

    model = trainer.model
    assert sum(p.numel() for p in model.position.parameters()) == mlp(8, 2)
    assert sum(p.numel() for p in model.state.parameters()) == mlp(16, 1)
    before = [p.detach().clone() for p in model.parameters()]
    names = [name for name, _ in model.named_parameters()]
    trainer._adam_step({"step": 0})
    moves = {"position": 0.0, "state": 0.0}
    for name, old, new in zip(names, before, model.parameters()):
        key = name.split(".")[0]
        moves[key] = max(moves[key], float((new.detach() - old).abs().max()))
    assert moves["position"] == pytest.approx(3e-3, rel=1e-6)
    assert moves["state"] == pytest.approx(1e-3, rel=1e-6)


def test_focus_times_map_a_fraction_of_the_step_times_into_the_window() -> None:
    """``focus_fraction`` f of the step's times are mapped affinely from [0, T] into ``focus_times``:
    the loss equals the plain loss on points whose first f n_t times were mapped by hand (the same
    arithmetic, 1e-13); a bad window is a ConfigError naming the field."""
    from solvers.errors import ConfigError

    spec = build_pde({"name": "burgers", "nu": 0.01 / math.pi, "shift": 0.5})
    model = _monotone_lpinn(4)
    labels, n_t = 16, 8
    generator = torch.Generator().manual_seed(5)
    coords = torch.rand(labels * n_t, 2, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 2.0]) - torch.tensor([0.0, 1.0])
    mapped = coords.clone()
    mapped[:4, 0] = 0.2 + 0.3 * coords[:4, 0]  # f = 0.5 of 8 times into [0.2, 0.5] (T = 1)
    focused = LPINNLoss(labels=labels, focus_times=(0.2, 0.5), focus_fraction=0.5)(model, spec, coords, coords[:4, 1:])
    plain = LPINNLoss(labels=labels)(model, spec, mapped, coords[:4, 1:])
    for term in ("characteristic", "state", "initial"):
        torch.testing.assert_close(focused[term].detach(), plain[term].detach(), rtol=1e-13, atol=0)
    unfocused = LPINNLoss(labels=labels)(model, spec, coords, coords[:4, 1:])
    assert abs(float(unfocused["state"].detach() - plain["state"].detach())) > 1e-3 * float(plain["state"].detach())
    with pytest.raises(ConfigError, match="lpinn.focus_times"):
        LPINNLoss(focus_times=(0.5, 0.2))
