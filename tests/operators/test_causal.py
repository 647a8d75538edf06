"""Causal PINN weights: the formula, monotonicity, stop-gradient, the eps schedule and the
slice layout of the collocation points."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from operators.physics import sampling
from operators.physics.causal import EpsilonSchedule, causal_loss, causal_weights, slice_losses
from operators.physics.pde_specs import build_pde


def test_weights_follow_the_formula() -> None:
    """w_i = exp(-eps * sum_{k<i} L_k), checked against an explicit loop (float64, to 1e-15)."""
    losses = torch.tensor([0.3, 1.2, 0.05, 2.0, 0.7], dtype=torch.float64)
    eps = 0.8
    expected = [math.exp(-eps * float(losses[:i].sum())) for i in range(len(losses))]
    np.testing.assert_allclose(causal_weights(losses, eps).numpy(), expected, rtol=1e-15, atol=0)


def test_weights_are_monotone_and_start_at_one() -> None:
    """For any non-negative slice losses w_0 = 1 and w is non-increasing in time (exactly, in
    floating point; large eps underflows late weights to 0, which is still monotone)."""
    generator = torch.Generator().manual_seed(3)
    for eps in (1e-2, 1.0, 100.0):
        losses = torch.rand(32, generator=generator, dtype=torch.float64) ** 3
        w = causal_weights(losses, eps)
        assert w[0].item() == 1.0
        assert bool((w[1:] <= w[:-1]).all())
        assert bool((w >= 0).all())


def test_weights_are_detached_so_the_gradient_is_w() -> None:
    """Stop-gradient: d(mean_i w_i L_i)/dL_j = w_j / N exactly. Without the stop-gradient the
    earlier slices would get extra (negative) terms from the later weights."""
    losses = torch.tensor([0.5, 0.2, 0.9, 0.1], dtype=torch.float64, requires_grad=True)
    loss, w = causal_loss(losses, 2.0)
    assert not w.requires_grad
    (grad,) = torch.autograd.grad(loss, losses)
    np.testing.assert_allclose(grad.numpy(), w.numpy() / 4, rtol=1e-15)


def test_zero_epsilon_is_the_plain_residual_loss() -> None:
    """With eps = 0 every weight is 1 and the causal loss equals the mean of the slice losses."""
    losses = torch.tensor([0.5, 0.2, 0.9], dtype=torch.float64)
    loss, w = causal_loss(losses, 0.0)
    assert torch.equal(w, torch.ones(3, dtype=torch.float64))
    assert loss.item() == pytest.approx(float(losses.mean()), rel=1e-15)


def test_schedule_advances_only_when_min_weight_exceeds_tolerance() -> None:
    """A stage ends when min w > 0.99: 0.985 keeps eps, 0.995 moves to the next eps; the last
    eps is kept however small the residual becomes."""
    schedule = EpsilonSchedule((0.1, 1.0, 10.0))
    assert not schedule.update(torch.tensor([1.0, 0.985]))
    assert schedule.epsilon == 0.1
    assert schedule.update(torch.tensor([1.0, 0.995]))
    assert schedule.epsilon == 1.0
    assert schedule.update(torch.tensor([1.0, 0.999]))
    assert schedule.last_stage
    assert not schedule.update(torch.tensor([1.0, 1.0]))
    assert schedule.epsilon == 10.0


def test_slice_losses_group_the_stratified_points_by_time() -> None:
    """time_slices puts per_slice points with t in [t_i, t_i+1) in consecutive rows, and
    slice_losses averages exactly those rows (checked with the residual r = t, whose slice mean of
    squares is known from the points)."""
    spec = build_pde({"name": "convection", "c": 10.0, "t_end": 2.0})
    points = sampling.time_slices(spec, 8, 16, torch.Generator().manual_seed(0))
    t = points[:, 0].reshape(8, 16)
    edges = torch.linspace(0, 2.0, 9, dtype=torch.float64)
    assert bool((t >= edges[:-1, None]).all()) and bool((t < edges[1:, None]).all())
    losses = slice_losses(points[:, :1], 8)
    np.testing.assert_allclose(losses.numpy(), (t**2).mean(dim=1).numpy(), rtol=1e-15)


def test_causal_training_moves_through_the_schedule(tmp_path) -> None:
    """A short causal run on slow convection (c = 1): the slice losses shrink front to back, so
    min w passes 0.99 and eps climbs past its first value; the logged eps never decreases
    (annealed upward) and the logged weights are non-increasing in time."""
    import json

    from operators.physics.training import run

    config = {"method": "causal_pinn", "pde": {"name": "convection", "c": 1.0},
              "model": {"width": 16, "depth": 2},
              "training": {"steps": 150, "n_residual": 256, "n_initial": 64, "threads": 1, "log_every": 10,
                           "eval_every": 150, "optimizer": {"lr": 5e-3}},
              "causal": {"n_slices": 8, "epsilons": [0.01, 0.1, 1.0, 10.0]}}
    run(config, tmp_path / "run", quiet=True)
    rows = json.loads((tmp_path / "run" / "causal_weights.json").read_text())["rows"]
    eps = [row["epsilon"] for row in rows]
    assert eps == sorted(eps) and eps[-1] > 0.01
    for row in rows:
        w = np.asarray(row["weights"])
        assert w[0] == 1.0 and bool(np.all(np.diff(w) <= 0))


def test_time_marching_window_starts_from_the_previous_prediction() -> None:
    """With windows, window k's initial-condition term is mean((u_k - u_{k-1})^2) at t = t_k on
    the step's points: recomputed here from the two windows' networks, it matches to rounding, and
    window 0's term is against u0 instead."""
    from operators.physics.objectives import Objective
    from operators.physics.run_config import model_settings, parse_run_config
    from operators.registry import build

    config = parse_run_config({"method": "causal_pinn", "pde": {"name": "convection", "c": 5.0},
                               "model": {"width": 8, "depth": 2},
                               "training": {"steps": 30, "windows": 3, "n_residual": 64, "n_initial": 16},
                               "causal": {"n_slices": 4}})
    spec = build_pde(config.pde)
    torch.manual_seed(0)
    model = build(model_settings(config, spec)).double()
    objective = Objective(config, spec, torch.float64, "cpu")
    step = 17
    for window in (0, 1):
        t0 = objective.window_bounds(window)[0]
        generator = sampling.step_generator(0, step)  # the objective draws the interior points first
        sampling.time_slices(spec, 4, 16, generator, t0, objective.window_bounds(window)[1])
        start = sampling.initial(spec, 16, generator, t0)
        with torch.no_grad():
            target = spec.initial(start[:, 1:]) if window == 0 else model.window_forward(0, start)
            expected = (model.window_forward(window, start) - target).square().mean().item()
        got = objective.step_loss(model, step, window, epsilon=1.0).terms["initial"]
        assert got == pytest.approx(expected, rel=1e-12)
    assert objective.window_bounds(1) == pytest.approx((1 / 3, 2 / 3))


def test_schedule_caps_each_stage_and_reports_convergence_at_the_last_eps() -> None:
    """max_stage_steps ends a stage that never reaches min w > tol (the paper's per-eps iteration
    cap); converged() is the paper's stopping criterion: true only at the last eps with min w > tol."""
    schedule = EpsilonSchedule((0.1, 1.0), max_stage_steps=3)
    low, high = torch.tensor([1.0, 0.5]), torch.tensor([1.0, 0.995])
    assert [schedule.update(low) for _ in range(3)] == [False, False, True]
    assert schedule.epsilon == 1.0 and schedule.stage_steps == 0
    assert not schedule.converged(low) and schedule.converged(high)
    assert not EpsilonSchedule((0.1, 1.0)).converged(high)  # min w > tol at the first eps ends a stage only


def test_stop_at_convergence_ends_each_window_early(tmp_path) -> None:
    """Slow convection (c = 1) with a single small eps: the causal weights pass 0.99 within a few
    dozen steps, so with stop_at_convergence each of the two windows stops early and the run takes
    fewer optimiser steps than configured, while steps_done still reaches the configured total."""
    from operators.physics.training import run

    config = {"method": "causal_pinn", "pde": {"name": "convection", "c": 1.0}, "model": {"width": 16, "depth": 2},
              "training": {"steps": 200, "windows": 2, "n_residual": 128, "n_initial": 32, "threads": 1,
                           "log_every": 10, "eval_every": 100, "optimizer": {"lr": 5e-3}},
              "causal": {"n_slices": 4, "epsilons": [0.01], "stop_at_convergence": True}}
    summary = run(config, tmp_path / "run", quiet=True)
    assert summary["finished"] and summary["steps_done"] == 200
    assert summary["optimizer_steps"] < 200
    windows = [row["window"] for row in json.loads((tmp_path / "run" / "training.json").read_text())["history"]]
    assert sorted(set(windows)) == [0, 1]


def test_balanced_weights_equalise_the_weighted_gradient_norms() -> None:
    """lambda_k = mean_j |g_j| / |g_k| makes lambda_k |g_k| the same for every term (up to the 1e-5
    guard); the running average moves a fraction 1 - m of the way; gradient_norms is the Euclidean
    norm over all parameters, checked against a hand-computed gradient of a linear model."""
    from operators.physics.loss_weights import balanced_weights, gradient_norms, update_weights

    weights = balanced_weights({"residual": 1.0, "initial": 3.0})
    assert weights["residual"] * 1.0 == pytest.approx(weights["initial"] * 3.0, rel=1e-4)
    assert weights["residual"] == pytest.approx(2.0, rel=1e-4)
    moved = update_weights({"residual": 1.0, "initial": 1.0}, {"residual": 1.0, "initial": 3.0}, momentum=0.9)
    assert moved["residual"] == pytest.approx(0.9 + 0.1 * weights["residual"], rel=1e-12)
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    x = torch.tensor([3.0, 4.0], dtype=torch.float64)
    norms = gradient_norms({"a": (w * x).sum(), "b": (w**2).sum()}, [w])
    assert norms["a"] == pytest.approx(5.0, rel=1e-15) and norms["b"] == pytest.approx(2 * math.sqrt(5.0), rel=1e-15)


def test_grad_norm_weighting_balances_the_terms_during_training(tmp_path) -> None:
    """With loss_weighting grad_norm and momentum 0, after the update at step 0 the logged weights
    differ from 1 and are what balanced_weights gives for the gradient norms at the start (recomputed
    here from the seeded network and the step's points), so lambda_r |g_r| = lambda_ic |g_ic|."""
    from operators.physics.loss_weights import balanced_weights, gradient_norms
    from operators.physics.objectives import Objective
    from operators.physics.run_config import model_settings, parse_run_config
    from operators.physics.training import run
    from operators.registry import build

    config = {"method": "pinn", "pde": {"name": "convection", "c": 5.0}, "model": {"width": 16, "depth": 2},
              "training": {"steps": 2, "n_residual": 128, "n_initial": 32, "threads": 1, "log_every": 1,
                           "eval_every": 2, "loss_weighting": "grad_norm", "weight_update_every": 10,
                           "weight_momentum": 0.0, "dtype": "float64"}}
    run(config, tmp_path / "run", quiet=True)
    history = json.loads((tmp_path / "run" / "training.json").read_text())["history"]
    parsed = parse_run_config(config)
    spec = build_pde(parsed.pde)
    torch.manual_seed(parsed.seed)
    model = build(model_settings(parsed, spec)).double()
    parts = Objective(parsed, spec, torch.float64, "cpu").step_loss(model, 0).parts
    expected = balanced_weights(gradient_norms(parts, model.parameters()))
    assert history[0]["weight_residual"] == 1.0  # step 0 trains with the starting weights
    assert history[1]["weight_residual"] == pytest.approx(expected["residual"], rel=1e-9)
    assert history[1]["weight_initial"] == pytest.approx(expected["initial"], rel=1e-9)
    assert abs(math.log(expected["residual"] / expected["initial"])) > 0.1
