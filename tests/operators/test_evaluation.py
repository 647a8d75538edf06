"""Evaluation metrics against exact values and independent NumPy computations."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from operators.checkpoint import Operator
from operators.training.evaluation import correlation_time, energy_spectrum, evaluate, pearson_per_step
from operators.training.surrogate import Surrogate
from pde_data import DataConfig, make_dataset
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)
from tests.operators import tiny_data
from tests.operators.multiplier_model import FourierMultiplier, MultiplierConfig

NU, DT = 0.005, 0.5


@pytest.mark.parametrize("n", [32, 64])
def test_energy_spectrum_of_single_modes_is_exact_at_any_grid(n):
    """cos(2 pi 3 x) has E(3) = 1/4 and nothing else; cos(2 pi (3x + 4y)) puts 1/4 in shell |k| = 5.
    The forward-normalised FFT makes this independent of the grid size (float64 rounding)."""
    x = torch.arange(n, dtype=torch.float64) / n
    e1 = energy_spectrum(torch.cos(2 * math.pi * 3 * x)[None, None])[0, 0]
    expected = torch.zeros(n // 2 + 1, dtype=torch.float64)
    expected[3] = 0.25
    np.testing.assert_allclose(e1, expected, atol=1e-15)
    xx, yy = torch.meshgrid(x, x, indexing="ij")
    e2 = energy_spectrum(torch.cos(2 * math.pi * (3 * xx + 4 * yy))[None, None])[0, 0]
    expected[3], expected[5] = 0.0, 0.25
    np.testing.assert_allclose(e2, expected, atol=1e-14)


def test_pearson_and_correlation_time():
    """Affine copies correlate at 1, negatives at -1; the correlation time is the first step below the
    threshold and items that never drop are censored at the horizon."""
    target = torch.randn(2, 3, 16, dtype=torch.float64)
    np.testing.assert_allclose(pearson_per_step(3 * target + 1, target), 1.0, atol=1e-14)
    np.testing.assert_allclose(pearson_per_step(-target, target), -1.0, atol=1e-14)
    corr = torch.tensor([[0.99, 0.9, 0.79, 0.85], [0.95, 0.9, 0.85, 0.81]])
    times, censored = correlation_time(corr, np.array([0.2, 0.4, 0.6, 0.8]), 0.8)
    np.testing.assert_allclose(times, [0.6, 0.8])
    assert censored.tolist() == [False, True]


def _surrogate(weight: torch.Tensor) -> Surrogate:
    model = FourierMultiplier(MultiplierConfig(1, 1, modes=weight.shape[-1]))
    with torch.no_grad():
        model.weight.copy_(weight.reshape(1, 1, -1))
    return Surrogate(Operator(model), history=1, step=1)


def test_exact_operator_scores_zero_error_and_never_decorrelates(tmp_path):
    """The exact heat multiplier rolled out 4 steps has relative L2 and H1 errors at float32 rounding
    (< 1e-5), correlation 1 at every step (all items censored) and matching spectra."""
    path = tiny_data.heat(tmp_path / "heat.h5", n_samples=6, n=32, steps=4, nu=NU, dt=DT)
    dataset = make_dataset(DataConfig(path=str(path), t_in=1, n_train=2, n_test=4), "test")
    k = torch.arange(8, dtype=torch.float64)
    exact = torch.exp(-NU * (2 * math.pi * k) ** 2 * DT).to(torch.cfloat)
    metrics = evaluate(_surrogate(exact), dataset, periodic=True)
    assert metrics["n_items"] == 4 and metrics["resolution"] == [32]
    assert metrics["rel_l2"] < 1e-5 and metrics["rel_h1"] < 1e-5
    assert max(metrics["rollout"]["rel_l2"]) < 1e-5
    assert metrics["correlation"]["censored"] == 4
    np.testing.assert_allclose(metrics["rollout"]["t"], [0.5, 1.0, 1.5, 2.0])
    assert metrics["energy_spectrum"]["rel_l2"] < 1e-5


def test_rollout_curve_of_persistence_matches_numpy(tmp_path):
    """The identity multiplier (predict u(t) = u(t0)) has per-step errors ||u0 - u_t|| / ||u_t||; the
    evaluation's curve, overall error and correlations equal an independent NumPy computation on the
    stored arrays (float32 data, so rtol 1e-5)."""
    path = tiny_data.heat(tmp_path / "heat.h5", n_samples=6, n=32, steps=4, nu=NU, dt=DT)
    dataset = make_dataset(DataConfig(path=str(path), t_in=1, n_train=2, n_test=4), "test")
    metrics = evaluate(_surrogate(torch.ones(17, dtype=torch.cfloat)), dataset, periodic=True, batch_size=3)
    with h5py.File(path, "r") as f:
        u = f["u"][2:].astype(np.float64)
    diff = u[:, :1] - u[:, 1:]
    per_step = np.linalg.norm(diff, axis=2) / np.linalg.norm(u[:, 1:], axis=2)
    np.testing.assert_allclose(metrics["rollout"]["rel_l2"], per_step.mean(axis=0), rtol=1e-5)
    whole = np.linalg.norm(diff.reshape(4, -1), axis=1) / np.linalg.norm(u[:, 1:].reshape(4, -1), axis=1)
    np.testing.assert_allclose(metrics["rel_l2"], whole.mean(), rtol=1e-5)
    centred = lambda a: a - a.mean(axis=-1, keepdims=True)  # noqa: E731
    p, t = centred(np.repeat(u[:, :1], 4, axis=1)), centred(u[:, 1:])
    corr = (p * t).sum(-1) / np.sqrt((p ** 2).sum(-1) * (t ** 2).sum(-1))
    np.testing.assert_allclose(metrics["correlation"]["mean"], corr.mean(axis=0), rtol=1e-5)
