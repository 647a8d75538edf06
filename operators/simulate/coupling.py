"""A trained run and the pdeop solver of its data, set up to simulate the same samples.

:func:`couple_run` reads a run folder (:func:`operators.training.runs.load_run`), the dataset it was
trained on (or another file of the same problem), and returns a :class:`Coupling`: the run's
:class:`~operators.simulate.operator_stepper.OperatorStepper`, the family's
:class:`~operators.simulate.solver_stepper.SolverStepper` with the same interval, and the first
stored states of the last ``samples`` samples (the test split) at the requested resolution.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from operators.simulate.operator_stepper import OperatorStepper
from operators.simulate.solver_stepper import SolverStepper, _resample, solver_from_dataset
from pde_data.grid_settings import time_stepping_problems
from solvers.errors import ConfigError


@dataclasses.dataclass
class Coupling:
    """What :func:`couple_run` returns.

    Attributes
    ----------
    operator, solver
        The two steppers (same interval, same samples).
    initial
        ``[samples, history, *grid]`` stored states the simulation starts from (physical units).
    stored
        ``[samples, T, *grid_of_file]`` the stored trajectories from the first initial state on.
    problem
        The family name; ``samples`` the dataset rows used.
    """

    operator: OperatorStepper
    solver: SolverStepper
    initial: torch.Tensor
    stored: torch.Tensor
    problem: str
    samples: np.ndarray
    times: np.ndarray
    #: the source file's root attributes, time-dependent variable and its spatial dims
    attrs: dict
    variable: str
    space_dims: list


def couple_run(run_dir: str | Path, samples: int = 8, problem: str | None = None, resolution: int | None = None,
               data: str | Path | None = None, checkpoint: str = "best", device: str = "cpu") -> Coupling:
    """Load a run and the solver of its problem for a simulation of ``samples`` test samples.

    Parameters
    ----------
    run_dir
        A trained time-dependent run.
    samples
        The last ``samples`` samples of the file.
    problem
        Expected family (a mismatch with the run's data is an error); None: the data's.
    resolution
        Grid points per axis of the simulation (default: the training grid); the stored states are
        interpolated spectrally (finer) or subsampled (coarser, a divisor).
    data
        Dataset file (default: the run's).

    Raises
    ------
    ConfigError
        A static run, another problem than ``problem``, a resolution the model cannot take.
    """
    from operators.training.runs import load_run, run_problem
    from pde_data.loading import make_dataset, open_dataset

    loaded = load_run(run_dir, checkpoint, device)
    config = loaded.config.data
    if not config.time_dependent or loaded.surrogate.history is None:
        raise ConfigError(f"{run_dir} is a static map; simulation needs a run trained on trajectories")
    path = Path(data) if data else Path(config.path)
    ds = open_dataset(path)
    try:
        attrs = dict(ds.attrs)
        variable = config.variable or next((name for name in ds.data_vars if ds[name].dims[:2] == ("sample", "t")), "")
        space_dims = [d for d in ds[variable].dims if d not in ("sample", "t")] if variable else []
    finally:
        ds.close()
    stored_problem = run_problem(loaded, path)
    if problem is not None and problem != stored_problem:
        raise ConfigError(f"--problem {problem} does not match the run's data ({path} holds {stored_problem})")
    if stored_problem not in time_stepping_problems():
        raise ConfigError(f"{path} holds {stored_problem} data; simulation supports "
                          f"{', '.join(time_stepping_problems())}")
    if not (isinstance(samples, int) and samples >= 1):
        raise ConfigError(f"samples must be an integer >= 1 (got {samples!r})")
    dataset = make_dataset(config.replace(path=str(path), windows="first"), "test", samples)
    trajectories = dataset.trajectories[:, config.start:]
    history = loaded.surrogate.history
    if trajectories.shape[1] < history:
        raise ConfigError(f"{path} stores {trajectories.shape[1]} states after data.start; the model reads {history}")
    lengths = _lengths(path, dataset.samples) if "L" in config.conditioning else None
    train_shape = tuple(loaded.metadata["grid"]["shape"])
    grid = tuple(trajectories.shape[2:])
    n = resolution or train_shape[0]
    target = (n,) * len(grid)
    cond = dataset.cond if dataset.cond.shape[1] else None
    internal = _internal(attrs)
    solver = solver_from_dataset(attrs, config.time_subsample, lengths, refine=internal // n if internal % n == 0 else 1)
    operator = OperatorStepper(loaded.surrogate, solver.interval, train_shape, cond)
    problem_text = operator.accepts(target)
    if problem_text:
        raise ConfigError(f"{run_dir}: {problem_text}; choose --resolution accordingly")
    initial = _regrid(trajectories[:, :history].double(), n)
    return Coupling(operator, solver, initial, trajectories, stored_problem, dataset.samples,
                    np.asarray(dataset.times)[config.start:], attrs, variable, space_dims)


def _internal(attrs: dict) -> int:
    import json

    return int(json.loads(str(attrs["config"]))["settings"]["internal_resolution"])


def _lengths(path: Path, rows: np.ndarray) -> np.ndarray:
    from pde_data.loading import open_dataset

    ds = open_dataset(path)
    try:
        return np.asarray(ds["L"].values, dtype=np.float64)[np.asarray(rows)]
    finally:
        ds.close()


def _regrid(states: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, T, *grid]`` on ``n`` points per axis: spectral interpolation up, subsampling down."""
    m = states.shape[-1]
    if n == m:
        return states
    if n < m:
        if m % n:
            raise ConfigError(f"a coarser resolution must divide the data's {m} points (got {n})")
        return states[(slice(None), slice(None)) + (slice(None, None, m // n),) * (states.ndim - 2)]
    if n % 2:
        raise ConfigError(f"resolution must be even (got {n})")
    flat = states.reshape(-1, *states.shape[2:]).numpy()
    return torch.from_numpy(_resample(flat, n)).reshape(*states.shape[:2], *(n,) * (states.ndim - 2))
