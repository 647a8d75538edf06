"""The PDE-residual term of operator training (the ``training.physics`` section of a run config).

A time-dependent surrogate predicts consecutive states after its input window. With the last input
state put in front, the prediction is a trajectory ``traj = cat((x_last, pred), dim=1)`` of shape
``[B, T >= 2, X(, Y)]`` (physical values: the surrogate's outputs are de-normalised), spaced by the
stored time step. :class:`PhysicsTerm` scores it with
:func:`operators.physics.operator_residual.physics_loss`; everything that loss needs besides the
trajectory is read once from the dataset:

* ``dt``: the spacing of the stored times (after ``data.time_subsample``);
* the domain periods: ``n * dx`` of each spatial coordinate (``x_j = j L / n``: 1 for Burgers and
  Navier-Stokes, ``L`` for Kuramoto-Sivashinsky with one length), or the per-sample variable
  ``L(sample)`` when the length varies (then ``x`` holds fractions of it);
* the equation: the one the file's family declares (root attribute ``equation``);
* the equation parameters not set in ``training.physics.params``: the physical parameters the file
  declares (``physical_parameters``): root attributes of the same name (``viscosity``) and, for
  Navier-Stokes, the forcing from the static variable ``f(x, y)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from operators.physics.operator_residual import PARAMETERS, physics_loss
from operators.training.config import PhysicsLossConfig, check_physics_params
from pde_data.loading import DataConfig, open_dataset
from solvers.errors import ConfigError

#: the dataset variable holding each sample's domain length when it varies (Kuramoto-Sivashinsky)
LENGTH_VARIABLE = "L"
#: the static dataset variable holding the Navier-Stokes forcing
FORCING_VARIABLE = "f"


class PhysicsTerm:
    """The PDE residual of predicted trajectories of one dataset split.

    Parameters
    ----------
    settings
        The ``training.physics`` section.
    data
        The run's ``data`` section (file, subsampling).
    info
        ``DataBundle.info`` of the run (grid, times, periodicity, fingerprint).
    dataset
        The split whose item indices the batches carry (a ``TrajectoryWindows``); per-sample
        lengths are looked up through it.

    Raises
    ------
    ConfigError
        If the data cannot give a residual: non-periodic grid, unequal time steps, a problem
        without residual, a parameter neither set nor in the file.
    """

    def __init__(self, settings: PhysicsLossConfig, data: DataConfig, info: dict[str, Any], dataset: Any) -> None:
        if not info["periodic"]:
            raise ConfigError("training.physics: the residual is evaluated spectrally on a periodic grid, but the "
                              "data is not periodic (data.periodic or the problem)")
        self.weight = settings.weight
        self.relative = settings.relative
        #: mean over the whole batch when several processes share it (:mod:`.distributed`); None: this batch
        self.mean_across: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.dt = _time_step(info["times"])
        self._item_sample = getattr(dataset, "item_sample", None)
        ds = open_dataset(data.path, allow_incomplete=data.allow_incomplete)
        try:
            self.problem = _problem(settings.problem, info["equation"], str(ds.attrs.get("problem")))
            check_physics_params(self.problem, settings.params)
            self.params = _parameters(ds, self.problem, dict(settings.params), info, data.subsample)
            self.periods, self._sample_periods = _periods(ds, info, dataset)
        finally:
            ds.close()

    def trajectory(self, x: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """``cat((x_last, prediction), dim=1)``: ``[B, 1 + T_pred, *space]`` consecutive states."""
        return torch.cat((x[:, -1:], prediction), dim=1)

    def __call__(self, x: torch.Tensor, prediction: torch.Tensor, items: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Residual loss of the trajectory that starts at the last input state.

        Parameters
        ----------
        x
            ``[B, t_in, *space]`` physical input window.
        prediction
            ``[B, T_pred, *space]`` physical predictions of the next ``T_pred`` stored states.
        items
            Indices of the batch's windows in the dataset (for per-sample lengths).

        Returns
        -------
        torch.Tensor
            Scalar :func:`~operators.physics.operator_residual.physics_loss` (unweighted).
        """
        periods: list[float | torch.Tensor] = list(self.periods)
        if self._sample_periods is not None:
            rows = self._item_sample[torch.as_tensor(items, dtype=torch.long)]
            periods = [self._sample_periods[rows]]
        trajectory = self.trajectory(x, prediction)
        shared_scale = self.relative and self.mean_across is not None
        try:
            loss = physics_loss(self.problem, trajectory, periods, self.dt, self.params,
                                relative=self.relative and not shared_scale)
        except ConfigError as exc:
            raise ConfigError(f"training.physics: {exc}") from None
        if shared_scale:  # the relative scale of the global batch, not of this rank's part of it
            rate = (trajectory[:, 1:] - trajectory[:, :-1]) / self.dt
            loss = loss / self.mean_across(rate.detach().square()).clamp_min(1e-30)
        return loss


def _time_step(times: Sequence[float] | None) -> float:
    if times is None or len(times) < 2:
        raise ConfigError("training.physics needs the stored time coordinate t with at least two times")
    steps = np.diff(np.asarray(times, dtype=np.float64))
    if not np.allclose(steps, steps[0], rtol=1e-6, atol=0) or steps[0] <= 0:
        raise ConfigError(f"training.physics needs equally spaced stored times (steps from {steps.min():g} to "
                          f"{steps.max():g})")
    return float(steps.mean())


def _problem(configured: str | None, equation: str | None, stored: str) -> str:
    """The equation of the residual: the configured one, else the one the file's family declares."""
    known = equation in PARAMETERS
    if configured is None:
        if not known:
            raise ConfigError(f"training.physics.problem: the dataset's problem {stored!r} has no residual; set it to "
                              f"one of {', '.join(PARAMETERS)}")
        return str(equation)
    if known and equation != configured:
        raise ConfigError(f"training.physics.problem is {configured!r} but the dataset holds {equation!r} data")
    return configured


def _parameters(ds, problem: str, params: dict[str, Any], info: dict[str, Any], subsample: int) -> dict[str, Any]:
    """``params`` completed from the file: the physical parameters its family declares (root attributes, and
    the forcing field ``f``); a file without the declaration (older files) is searched for every
    parameter by name."""
    declared = info["physical_parameters"]
    declared = {*PARAMETERS[problem], FORCING_VARIABLE} if declared is None else set(declared)
    space_dims = info["space_dims"]
    for name in PARAMETERS[problem]:
        if name in params:
            continue
        if name in declared and name in ds.attrs:
            value = np.asarray(ds.attrs[name], dtype=np.float64).reshape(-1)
            if value.size == 1:
                params[name] = float(value[0])
        elif name == "forcing" and FORCING_VARIABLE in declared and FORCING_VARIABLE in ds.variables:
            forcing = ds[FORCING_VARIABLE]
            if tuple(forcing.dims) != tuple(space_dims):
                raise ConfigError(f"training.physics: the forcing variable {FORCING_VARIABLE!r} has dims "
                                  f"{forcing.dims}, not the grid's {tuple(space_dims)}")
            values = forcing.isel({d: slice(None, None, subsample) for d in space_dims}).values
            params[name] = torch.from_numpy(np.asarray(values, dtype=np.float64))
    return params


def _periods(ds, info: dict[str, Any], dataset: Any) -> tuple[list[float], torch.Tensor | None]:
    """Domain period per spatial axis, and per-sample periods ``[N_split]`` when the length varies."""
    space_dims = info["space_dims"]
    if LENGTH_VARIABLE in ds.variables and tuple(ds[LENGTH_VARIABLE].dims) == ("sample",) and len(space_dims) == 1:
        lengths = np.asarray(ds[LENGTH_VARIABLE].values, dtype=np.float64)[np.asarray(dataset.samples)]
        return [], torch.from_numpy(lengths)
    periods = []
    for dim in space_dims:
        coords = np.asarray(info["grid"].get(dim, ()), dtype=np.float64)
        steps = np.diff(coords)
        if len(coords) < 2 or not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
            raise ConfigError(f"training.physics needs a uniform coordinate {dim!r} in the dataset to know the "
                              f"domain period")
        periods.append(float(len(coords) * steps.mean()))
    return periods, None
