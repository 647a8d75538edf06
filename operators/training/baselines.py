"""Trivial predictors that every surrogate must beat, scored by the same metric code as the model.

A neural surrogate's error means little without a yardstick. For time-dependent data the classic
yardsticks of weather and PDE forecasting are

* :class:`Persistence` — the last input frame repeated ("nothing changes"); its error after ``k``
  steps measures how far the state has moved;
* :class:`LinearExtrapolation` — the straight line through the last two input frames, continued
  in time (needs a window of at least two frames);

and for static maps (Darcy ``a -> u``) :class:`TrainingMean` — the mean training output, whatever
the input. Each predictor has the interface :func:`operators.training.evaluation.evaluate` uses for
a :class:`~operators.training.surrogate.Surrogate` (``eval()``, ``predict(x, cond, n_steps)``, a call
for static maps), so baselines and model go through the same metrics on the same test items.
The model's *skill* against a baseline is ``1 - error_model / error_baseline`` (:func:`skill`), per
rollout step from the mean errors at that step: 1 is perfect, 0 no better than the baseline, negative
worse — the skill score of weather forecasting, where persistence is the classic reference. Like the
model's, the baselines' errors are reported step by step (rollout curves, correlation times), the way
PDEArena and APEBench report autoregressive rollouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch


class _Baseline:
    """A parameter-free predictor with the surrogate interface the evaluation calls."""

    def eval(self) -> _Baseline:
        """No state to switch (the evaluation calls it on every predictor)."""
        return self

    def predict(self, x: torch.Tensor, cond: Optional[torch.Tensor], n_steps: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.predict(x, cond)


class Persistence(_Baseline):
    """Predict that the last input frame stays: ``u(T + k) = u(T)`` for every target step ``k``."""

    def predict(self, x: torch.Tensor, cond: Optional[torch.Tensor], n_steps: int | None = None) -> torch.Tensor:
        """``x`` ``[B, t_in, *space]`` -> ``[B, n_steps, *space]``, every step the frame ``x[:, -1]``."""
        return x[:, -1:].expand(x.shape[0], n_steps, *x.shape[2:]).clone()


class LinearExtrapolation(_Baseline):
    """Continue the line through the last two input frames: ``u(t) = u(T) + (t - T) (u(T) - u(T')) / (T - T')``.

    Parameters
    ----------
    lead
        ``[n_steps]`` times ``t - T`` of the target steps after the last input time ``T``, in units of the
        spacing ``T - T'`` of the last two input frames (1, 2, 3, ... on a uniform record).
    """

    def __init__(self, lead: Sequence[float]) -> None:
        self.lead = torch.as_tensor(np.asarray(lead, dtype=np.float64))

    def predict(self, x: torch.Tensor, cond: Optional[torch.Tensor], n_steps: int | None = None) -> torch.Tensor:
        """``x`` ``[B, t_in >= 2, *space]`` -> ``[B, n_steps, *space]``."""
        if x.shape[1] < 2:
            raise ValueError("linear extrapolation needs at least two input frames")
        n_steps = len(self.lead) if n_steps is None else n_steps
        if n_steps > len(self.lead):
            raise ValueError(f"linear extrapolation knows {len(self.lead)} lead times, {n_steps} steps were asked for")
        last, slope = x[:, -1:], x[:, -1:] - x[:, -2:-1]
        lead = self.lead[:n_steps].to(x.dtype).reshape(1, n_steps, *([1] * (x.ndim - 2)))
        return last + lead * slope


class TrainingMean(_Baseline):
    """Predict the mean training output ``[C_out, *space]`` for every input (static maps)."""

    def __init__(self, mean: torch.Tensor) -> None:
        self.mean = mean

    @classmethod
    def fit(cls, outputs: torch.Tensor) -> TrainingMean:
        """The pointwise mean over the items of ``outputs`` ``[N, C_out, *space]`` (accumulated in float64)."""
        return cls(outputs.to(torch.float64).mean(dim=0).to(outputs.dtype))

    def predict(self, x: torch.Tensor, cond: Optional[torch.Tensor], n_steps: int | None = None) -> torch.Tensor:
        """``[B, ...]`` inputs -> ``[B, C_out, *space]`` copies of the mean."""
        return self.mean.to(x.device).expand(x.shape[0], *self.mean.shape).clone()


def time_baselines(dataset) -> tuple[dict[str, tuple[_Baseline, Any]], dict[str, str]]:
    """The baselines of a :class:`~pde_data.samples.TrajectoryWindows` dataset, each with the windows it reads.

    Persistence reads the dataset itself. Linear extrapolation needs two input frames: with ``t_in >= 2``
    it reads the dataset too; with ``t_in = 1`` it reads a view of the same windows widened by the frame
    before them (same items, same targets), which exists unless a window starts at the first stored time.
    Its lead times come from the time coordinate at the first window, like the rollout's ``t``.

    Returns
    -------
    (baselines, unavailable)
        ``{name: (predictor, dataset)}`` and ``{name: reason}`` for the baselines that do not apply.
    """
    baselines: dict[str, tuple[_Baseline, Any]] = {"persistence": (Persistence(), dataset)}
    unavailable: dict[str, str] = {}
    view = dataset if dataset.t_in >= 2 else _widened(dataset)
    if view is None:
        unavailable["linear_extrapolation"] = ("the input window is one frame at the first stored time, so there "
                                               "is no second frame to extrapolate from")
    else:
        last = int(view.starts[0]) + view.t_in - 1
        times = view.times
        lead = (times[last + 1:last + 1 + view.t_out] - times[last]) / (times[last] - times[last - 1])
        baselines["linear_extrapolation"] = (LinearExtrapolation(lead), view)
    return baselines, unavailable


def _widened(dataset):
    """The windows of ``dataset`` with one more input frame in front (None if a window starts at time 0)."""
    from pde_data.samples import TrajectoryWindows

    if int(dataset.starts.min()) < 1:
        return None
    return TrajectoryWindows(dataset.trajectories, dataset.times, dataset.t_in + 1, dataset.t_out,
                             dataset.starts - 1, dataset.cond, dataset.samples)


def skill(model: Sequence[float] | float, baseline: Sequence[float] | float) -> Any:
    """``1 - model / baseline`` elementwise (a list for sequences): the fraction of the baseline's error removed.

    Undefined where the baseline's error is 0 (None there, so the result stays valid JSON).
    """
    if isinstance(model, Sequence):
        return [skill(m, b) for m, b in zip(model, baseline, strict=True)]
    return 1.0 - float(model) / float(baseline) if baseline > 0 else None


def skill_summary(model: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Skill of a model against one baseline from their :func:`~operators.training.evaluation.evaluate`
    metrics on the same items: of the mean relative L2 and H1 errors and, for time-dependent data, of
    the mean errors at each rollout step (``rollout``, with its times ``t``)."""
    out: dict[str, Any] = {"rel_l2": skill(model["rel_l2"], baseline["rel_l2"]),
                           "rel_h1": skill(model["rel_h1"], baseline["rel_h1"])}
    if "rollout" in model:
        out["rollout"] = {"t": model["rollout"]["t"],
                          **{k: skill(model["rollout"][k], baseline["rollout"][k]) for k in ("rel_l2", "rel_h1")}}
    return out
