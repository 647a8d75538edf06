"""Trivial baselines (persistence, linear extrapolation, training mean) and the model's skill against them,
checked against exact values and independent NumPy computations on the stored arrays."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from operators.checkpoint import Operator
from operators.training.baselines import LinearExtrapolation, Persistence, TrainingMean, skill, time_baselines
from operators.training.evaluation import evaluate, evaluate_with_baselines
from operators.training.surrogate import Surrogate, fit_increment_normalizer
from pde_data import DataConfig, make_dataset
from tests.operators import tiny_data
from tests.operators.multiplier_model import FourierMultiplier, MultiplierConfig
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

NU, DT = 0.005, 0.5


def _linear_in_time(path, n_samples=6, n=16, steps=7, seed=0):
    """u(t, x) = a(x) + t b(x) with random low-mode a, b (float32 storage), recorded at t = 0, 0.5, 1, ..."""
    rng = np.random.default_rng(seed)
    a, b = tiny_data.random_modes(rng, n_samples, n, 1), tiny_data.random_modes(rng, n_samples, n, 1)
    t = np.arange(steps + 1) * 0.5
    u = a[:, None] + t[None, :, None] * b[:, None]
    coords = {"t": t, "x": np.arange(n) / n}
    return tiny_data.write_dataset(path, "heat", coords, {"u": (("sample", "t", "x"), u.astype(np.float32))}), u


def _multiplier(weight: torch.Tensor, increment: bool = False) -> Surrogate:
    model = FourierMultiplier(MultiplierConfig(1, 1, modes=weight.shape[-1]))
    with torch.no_grad():
        model.weight.copy_(weight.reshape(1, 1, -1))
    return Surrogate(Operator(model), history=1, step=1, increment=increment)


def test_linear_extrapolation_is_exact_on_linear_motion_and_persistence_matches_numpy(tmp_path):
    """On u = a + t b, linear extrapolation from two input frames has zero error at every step (float32
    rounding of the stored data, < 1e-5); persistence's per-step errors are ||k dt b|| / ||u(T + k dt)||,
    computed here with NumPy on the stored arrays."""
    path, u = _linear_in_time(tmp_path / "lin.h5")
    dataset = make_dataset(DataConfig(path=str(path), t_in=3, t_out=4, start=1, n_train=2, n_test=4), "test")
    baselines, unavailable = time_baselines(dataset)
    assert unavailable == {} and set(baselines) == {"persistence", "linear_extrapolation"}
    np.testing.assert_allclose(baselines["linear_extrapolation"][0].lead.numpy(), [1, 2, 3, 4])
    linear = evaluate(*baselines["linear_extrapolation"], periodic=True)
    assert max(linear["rollout"]["rel_l2"]) < 1e-5 and linear["rel_h1"] < 1e-5
    persistence = evaluate(*baselines["persistence"], periodic=True)
    with h5py.File(path, "r") as f:
        stored = f["u"][2:].astype(np.float64)
    target, last = stored[:, 4:8], stored[:, 3:4]
    expected = (np.linalg.norm(target - last, axis=2) / np.linalg.norm(target, axis=2)).mean(axis=0)
    np.testing.assert_allclose(persistence["rollout"]["rel_l2"], expected, rtol=1e-5)


def test_one_frame_windows_extrapolate_from_the_frame_before_on_the_same_items(tmp_path):
    """With t_in = 1 and start >= 1, linear extrapolation reads the same windows widened by one earlier
    frame: same items, identical targets, exact on linear motion. At start 0 there is no earlier frame,
    and the baseline is reported unavailable with a reason."""
    path, _ = _linear_in_time(tmp_path / "lin.h5")
    dataset = make_dataset(DataConfig(path=str(path), t_in=1, t_out=3, start=2, n_train=2, n_test=4), "test")
    baselines, unavailable = time_baselines(dataset)
    predictor, view = baselines["linear_extrapolation"]
    assert len(view) == len(dataset) and view.t_in == 2
    assert torch.equal(view.batch(range(4))[1], dataset.batch(range(4))[1])
    assert max(evaluate(predictor, view, periodic=True)["rollout"]["rel_l2"]) < 1e-5
    at_zero = make_dataset(DataConfig(path=str(path), t_in=1, t_out=3, n_train=2, n_test=4), "test")
    baselines, unavailable = time_baselines(at_zero)
    assert set(baselines) == {"persistence"} and "first stored time" in unavailable["linear_extrapolation"]


def test_skill_of_the_exact_operator_is_one_and_of_an_identity_model_is_zero(tmp_path):
    """Skill compares like with like: the identity multiplier predicts exactly what persistence predicts, so
    its skill is 0 at every step (the two differ only by float32 FFT rounding, < 1e-5); the exact heat
    multiplier's skill is 1 within its float32 error. Baselines are scored on the same items as the model."""
    path = tiny_data.heat(tmp_path / "heat.h5", n_samples=6, n=32, steps=4, nu=NU, dt=DT)
    dataset = make_dataset(DataConfig(path=str(path), t_in=1, start=1, n_train=2, n_test=4), "test")
    baselines, unavailable = time_baselines(dataset)
    identity = evaluate_with_baselines(_multiplier(torch.ones(17, dtype=torch.cfloat)), dataset, baselines,
                                       unavailable, periodic=True)
    assert identity["n_items"] == identity["baselines"]["persistence"]["n_items"] == 4
    np.testing.assert_allclose(identity["skill"]["persistence"]["rollout"]["rel_l2"], 0.0, atol=1e-5)
    np.testing.assert_allclose(identity["skill"]["persistence"]["rollout"]["rel_h1"], 0.0, atol=1e-5)
    k = torch.arange(8, dtype=torch.float64)
    exact = torch.exp(-NU * (2 * math.pi * k) ** 2 * DT).to(torch.cfloat)
    metrics = evaluate_with_baselines(_multiplier(exact), dataset, baselines, unavailable, periodic=True)
    assert min(metrics["skill"]["persistence"]["rollout"]["rel_l2"]) > 1 - 1e-4
    assert min(metrics["skill"]["linear_extrapolation"]["rollout"]["rel_l2"]) > 1 - 1e-4


def test_skill_formula_and_undefined_reference():
    """skill = 1 - model / baseline elementwise; a zero baseline error leaves it undefined (None, valid JSON)."""
    assert skill(0.25, 1.0) == 0.75 and skill([0.5, 2.0], [1.0, 1.0]) == [0.5, -1.0]
    assert skill(0.1, 0.0) is None


def test_training_mean_predicts_the_mean_output():
    """TrainingMean.fit averages the training outputs over items; its prediction ignores the input."""
    outputs = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    baseline = TrainingMean.fit(outputs)
    prediction = baseline(torch.randn(3, 1, 4, 4, dtype=torch.float64))
    assert prediction.shape == (3, 2, 4, 4)
    np.testing.assert_allclose(prediction[1].numpy(), outputs.mean(dim=0).numpy(), rtol=1e-15)


def test_persistence_and_extrapolation_shapes_follow_the_steps():
    """Persistence repeats the last frame; extrapolation adds lead x (last - previous) frame by frame."""
    x = torch.arange(3 * 4, dtype=torch.float64).reshape(1, 3, 4)  # frames 0..3, 4..7, 8..11
    assert torch.equal(Persistence().predict(x, None, 2), x[:, 2:3].repeat(1, 2, 1))
    np.testing.assert_array_equal(LinearExtrapolation([1, 2]).predict(x, None, 2)[0, :, 0].numpy(), [12.0, 16.0])
    with pytest.raises(ValueError, match="two input frames"):
        LinearExtrapolation([1]).predict(x[:, :1], None, 1)


def test_increment_surrogate_adds_the_last_frame_and_its_normaliser_fits_the_changes():
    """An increment surrogate returns x_last + operator(x); its output normaliser is fitted on the changes over
    1..step stored steps (one statistic per output channel), equal to NumPy's mean and std of those changes."""
    weight = 0.3 * torch.ones(5, dtype=torch.cfloat)
    x = torch.randn(2, 1, 16)
    plain, increment = _multiplier(weight), _multiplier(weight, increment=True)
    with torch.no_grad():
        torch.testing.assert_close(increment(x, None), plain(x, None) + x, rtol=0, atol=1e-6)
    trajectories = torch.randn(3, 6, 8)
    normaliser = fit_increment_normalizer(trajectories, 2, "global", periodic=True)
    t = trajectories.double().numpy()
    for lead in (1, 2):
        change = t[:, lead:] - t[:, :-lead]
        np.testing.assert_allclose(float(normaliser.mean[lead - 1].flatten()[0]), change.mean(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(float(normaliser.std[lead - 1].flatten()[0]), change.std(), rtol=1e-5)
    assert fit_increment_normalizer(trajectories, 1, "none", periodic=True) is None
