"""Test metrics of a surrogate: relative L2 / H1, rollout error curve, correlation time, energy spectra.

:func:`evaluate` runs a :class:`~operators.training.surrogate.Surrogate` over a dataset in
batches and accumulates:

* ``rel_l2`` / ``rel_h1``: mean over test items of the relative error of the whole predicted target;
* ``rollout``: for time-dependent data, the mean relative L2 and H1 errors of every predicted step;
* ``correlation``: the mean Pearson correlation with the truth per step and the *correlation
  time*, the first time after the last input step at which the correlation drops below the
  threshold (items that never drop count as the horizon; ``censored`` says how many);
* ``energy_spectrum``: shell-averaged spectra of truth and prediction (pooled over items and
  steps) and their errors.

:func:`evaluate_with_baselines` scores trivial predictors (:mod:`.baselines`) with the same
function on the same items and adds the model's skill against each.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from operators.training.losses import per_step_relative_h1, per_step_relative_l2, relative_h1, relative_l2


def energy_spectrum(u: torch.Tensor) -> torch.Tensor:
    """Shell-summed energy ``E(k) = sum_{round|k| = k} |u_k|^2 / 2`` of ``u`` ``[B, C, *space]``.

    Fourier coefficients are normalised by the number of points (``norm="forward"``), so a
    field sampled on a finer grid has the same low-``k`` spectrum. Returns ``[B, C, K]`` with
    ``K = max(space) // 2 + 1`` shells (``k = 0 .. K-1``).
    """
    dims = tuple(range(2, u.ndim))
    spectrum = torch.fft.fftn(u.to(torch.float64), dim=dims, norm="forward")
    k2 = torch.zeros(u.shape[2:], dtype=torch.float64, device=u.device)
    for axis, n in enumerate(u.shape[2:]):
        k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64, device=u.device)
        shape = [1] * len(dims)
        shape[axis] = n
        k2 = k2 + (k ** 2).reshape(shape)
    n_shells = max(u.shape[2:]) // 2 + 1
    shell = torch.round(k2.sqrt()).long().clamp_max(n_shells)  # shells past K-1 are dropped
    energy = (spectrum.abs() ** 2 / 2).flatten(2)
    out = torch.zeros(*energy.shape[:2], n_shells + 1, dtype=torch.float64, device=u.device)
    out.index_add_(2, shell.flatten(), energy)
    return out[..., :n_shells]


def pearson_per_step(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over space of every item and channel: ``[B, C, *space]`` -> ``[B, C]``."""
    p = pred.flatten(2).to(torch.float64)
    t = target.flatten(2).to(torch.float64)
    p = p - p.mean(dim=2, keepdim=True)
    t = t - t.mean(dim=2, keepdim=True)
    denominator = (p.pow(2).sum(dim=2) * t.pow(2).sum(dim=2)).sqrt().clamp_min(1e-300)
    return (p * t).sum(dim=2) / denominator


def correlation_time(correlation: torch.Tensor, times: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """First time at which each item's correlation drops below ``threshold``.

    Parameters
    ----------
    correlation
        ``[B, T]`` correlation per predicted step.
    times
        ``[T]`` time elapsed since the last input step at each predicted step.
    threshold
        E.g. 0.8.

    Returns
    -------
    (times, censored)
        ``[B]`` correlation times and ``[B]`` booleans for items that never dropped below the
        threshold within the horizon (their time is the horizon, a lower bound).
    """
    below = (correlation < threshold).cpu().numpy()
    censored = ~below.any(axis=1)
    first = np.where(censored, below.shape[1] - 1, below.argmax(axis=1))
    return np.asarray(times)[first], censored


class _Accumulator:
    """Running sums of the metrics over batches."""

    def __init__(self) -> None:
        self.count = 0
        self.sums: dict[str, Any] = {}
        self.corr_times: list[np.ndarray] = []
        self.censored: list[np.ndarray] = []

    def add(self, name: str, value: torch.Tensor | float) -> None:
        value = value.detach().to(torch.float64).cpu() if isinstance(value, torch.Tensor) else value
        self.sums[name] = self.sums.get(name, 0) + value

    def mean(self, name: str) -> Any:
        value = self.sums[name] / self.count
        return value.tolist() if isinstance(value, torch.Tensor) else float(value)


def predictions(surrogate, dataset, n_steps: int | None = None, batch_size: int = 32,
                device: str | torch.device = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(prediction, truth)`` batches over ``dataset`` without gradients.

    Time-dependent targets are cut to ``n_steps`` (default all) and predicted by
    :meth:`~operators.training.surrogate.Surrogate.predict` (rolled out if the model is
    autoregressive); static targets come from one call.
    """
    time_dependent = getattr(dataset, "time_dependent", False)
    surrogate.eval()
    with torch.no_grad():
        for first in range(0, len(dataset), batch_size):
            x, y, c = (t.to(device) for t in dataset.batch(range(first, min(first + batch_size, len(dataset)))))
            if time_dependent:
                y = y[:, :n_steps]
                yield surrogate.predict(x, c, y.shape[1]), y
            else:
                yield surrogate(x, c), y


def evaluate(surrogate, dataset, periodic: bool, n_steps: int | None = None, threshold: float = 0.8,
             batch_size: int = 32, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Metrics of ``surrogate`` on every item of ``dataset``.

    Parameters
    ----------
    surrogate
        A :class:`~operators.training.surrogate.Surrogate`.
    dataset
        :class:`~pde_data.samples.StaticPairs` or :class:`~pde_data.samples.TrajectoryWindows`.
    periodic
        Grid type, for the H1 norm.
    n_steps
        Steps to predict for time-dependent data (default: the dataset's ``t_out``).
    threshold
        Correlation threshold of the correlation time.

    Returns
    -------
    dict
        ``n_items``, ``resolution``, ``rel_l2``, ``rel_h1``, ``energy_spectrum`` and, for
        time-dependent data, ``rollout`` and ``correlation`` (see the module docstring).
    """
    time_dependent = getattr(dataset, "time_dependent", False)
    n_steps = n_steps or (dataset.out_channels if time_dependent else None)
    acc = _Accumulator()
    for pred, y in predictions(surrogate, dataset, n_steps, batch_size, device):
        acc.count += y.shape[0]
        acc.add("rel_l2", relative_l2(pred, y, reduction="sum"))
        acc.add("rel_h1", relative_h1(pred, y, periodic, reduction="sum"))
        acc.add("spectrum_true", energy_spectrum(y).sum(dim=(0, 1)) / y.shape[1])
        acc.add("spectrum_pred", energy_spectrum(pred).sum(dim=(0, 1)) / y.shape[1])
        if time_dependent:
            acc.add("per_step", per_step_relative_l2(pred, y).sum(dim=0))
            acc.add("per_step_h1", per_step_relative_h1(pred, y, periodic).sum(dim=0))
            corr = pearson_per_step(pred, y)
            acc.add("correlation", corr.sum(dim=0))
            times, censored = correlation_time(corr, _lead_times(dataset, y.shape[1]), threshold)
            acc.corr_times.append(times)
            acc.censored.append(censored)
    result: dict[str, Any] = {
        "n_items": acc.count,
        "resolution": list(dataset.space_shape),
        "rel_l2": acc.mean("rel_l2"),
        "rel_h1": acc.mean("rel_h1"),
        "energy_spectrum": _spectrum_summary(acc.mean("spectrum_true"), acc.mean("spectrum_pred")),
    }
    if time_dependent:
        lead = _lead_times(dataset, n_steps)
        times = np.concatenate(acc.corr_times)
        censored = np.concatenate(acc.censored)
        result["rollout"] = {"t": lead.tolist(), "rel_l2": acc.mean("per_step"), "rel_h1": acc.mean("per_step_h1")}
        result["correlation"] = {
            "t": lead.tolist(),
            "mean": acc.mean("correlation"),
            "threshold": threshold,
            "time_mean": float(times.mean()),
            "time_median": float(np.median(times)),
            "censored": int(censored.sum()),
        }
    return result


def evaluate_with_baselines(surrogate, dataset, baselines: dict[str, tuple[Any, Any]],
                            unavailable: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """:func:`evaluate` of ``surrogate`` plus the same metrics of each baseline and the model's skill.

    Parameters
    ----------
    surrogate, dataset
        As in :func:`evaluate`.
    baselines
        ``{name: (predictor, dataset)}`` (see :func:`operators.training.baselines.time_baselines`); each
        predictor is scored on its dataset, which holds the same items and targets as ``dataset``.
    unavailable
        ``{name: reason}`` of baselines that do not apply, recorded as they are.
    **kwargs
        Passed to :func:`evaluate` for the model and every baseline alike.

    Returns
    -------
    dict
        The model's metrics with ``baselines`` (name -> metrics), ``baselines_unavailable`` (name ->
        reason) and ``skill`` (name -> :func:`~operators.training.baselines.skill_summary`).
    """
    from operators.training.baselines import skill_summary

    metrics = evaluate(surrogate, dataset, **kwargs)
    scored = {name: evaluate(predictor, data, **kwargs) for name, (predictor, data) in baselines.items()}
    metrics["baselines"] = scored
    metrics["baselines_unavailable"] = dict(unavailable or {})
    metrics["skill"] = {name: skill_summary(metrics, result) for name, result in scored.items()}
    return metrics


def _lead_times(dataset, n_steps: int) -> np.ndarray:
    """Time since the last input step of the first window, for each of ``n_steps`` targets."""
    start = int(dataset.starts[0])
    times = dataset.times
    last_input = times[start + dataset.t_in - 1]
    return times[start + dataset.t_in:start + dataset.t_in + n_steps] - last_input


def _spectrum_summary(true: list[float], pred: list[float]) -> dict[str, Any]:
    """Spectra and two errors: relative L2 of the spectra, and mean |log10 ratio| over shells k >= 1."""
    t = np.asarray(true)
    p = np.asarray(pred)
    shells = slice(1, None)
    valid = (t[shells] > 0) & (p[shells] > 0)
    log_error = float(np.mean(np.abs(np.log10(p[shells][valid] / t[shells][valid])))) if valid.any() else math.nan
    return {
        "k": list(range(len(t))),
        "truth": t.tolist(),
        "prediction": p.tolist(),
        "rel_l2": float(np.linalg.norm(p - t) / max(np.linalg.norm(t), 1e-300)),
        "mean_abs_log10": log_error,
    }
