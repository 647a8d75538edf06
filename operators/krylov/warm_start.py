"""A trained run as the :class:`~pde_data.warm_start.WarmStart` of an elliptic family's solves.

:func:`warm_start_from_run` loads a static run (``inputs -> outputs`` of one elliptic problem),
checks that it was trained on the problem and grid being generated, trains the residual-to-error
network (:mod:`operators.krylov.correction`) for the family, and returns a
:class:`NeuralWarmStart`: the run's prediction as the initial guess, the correction network inside
the two-level cycle, and the family's cycle smoother (symmetric Gauss–Seidel for SPD families, an
ILU of the shifted Laplacian for impedance Helmholtz, the family solver's ILU otherwise).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from operators.krylov.correction import CorrectionModel, CorrectionSettings, train_correction
from pde_data.elliptic import EllipticFamily
from pde_data.family import get_family
from solvers.errors import ConfigError


class NeuralWarmStart:
    """The :class:`~pde_data.warm_start.WarmStart` of a run: prediction as ``x0``, network in the cycle.

    Parameters
    ----------
    surrogate
        The run's static surrogate (physical fields ``[B, C_in, *grid]`` -> ``[B, C_out, *grid]``),
        or None to start from zero.
    inputs, outputs
        Field names of the surrogate's input and output channels.
    correction
        The trained residual-to-error network (None: the smoother alone).
    smoother
        Preconditioner name of the cycle's relaxation.
    smoother_options
        Its options (e.g. ILU ``drop_tol``, ``fill_factor``); None: the family solver's.

    Attributes
    ----------
    predict_seconds, correct_seconds
        Inference time spent so far (reported next to the solve times).
    """

    def __init__(self, surrogate: Any, inputs: tuple[str, ...], outputs: tuple[str, ...],
                 correction: CorrectionModel | None, smoother: str, smoother_options: dict | None = None) -> None:
        self.surrogate, self.inputs, self.outputs = surrogate, tuple(inputs), tuple(outputs)
        self.correction, self.smoother, self.smoother_options = correction, smoother, smoother_options
        self.predict_seconds = self.correct_seconds = 0.0

    @property
    def cycle(self) -> str:
        """The cycle the correction network was trained for (``multiplicative`` without a network)."""
        return self.correction.cycle if self.correction is not None else "multiplicative"

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """The run's prediction of the solution fields from the sample's input fields."""
        if self.surrogate is None:
            return None
        start = time.perf_counter()
        x = torch.from_numpy(np.stack([inputs[name] for name in self.inputs])[None]).float()
        with torch.no_grad():
            out = self.surrogate(x)[0].double().numpy()
        self.predict_seconds += time.perf_counter() - start
        return {name: out[i] for i, name in enumerate(self.outputs)}

    def correct(self, inputs: dict[str, np.ndarray], residual: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The correction network's error fields for the residual fields (zeros without a network)."""
        if self.correction is None:
            return {name: np.zeros_like(values) for name, values in residual.items()}
        start = time.perf_counter()
        out = self.correction(inputs, residual)
        self.correct_seconds += time.perf_counter() - start
        return out


def warm_start_from_run(run_dir: str | Path, problem: str, settings: Any,
                        correction: CorrectionSettings | None = CorrectionSettings(), checkpoint: str = "best",
                        log: Any = None, smoother: str | None = None,
                        smoother_options: dict | None = None) -> NeuralWarmStart:
    """Load ``run_dir`` for the solves of ``problem`` with the family settings ``settings``.

    Parameters
    ----------
    run_dir
        A pdeop run trained on ``problem`` with the ``static`` protocol at ``settings.resolution``.
    problem
        The family being generated.
    settings
        Its config dataclass (``ResolvedConfig.settings``).
    correction
        Training size of the correction network; None: prediction as initial guess and the
        smoother alone (no network in the cycle).
    checkpoint
        ``best`` or ``last``.
    log
        Optional callable receiving progress lines.
    smoother
        The cycle's relaxation (a :mod:`solvers.preconditioners` name or ``shifted-ilu``); None: the
        family's :meth:`~pde_data.elliptic.EllipticFamily.cycle_smoother`.
    smoother_options
        Its options (:func:`~pde_data.warm_start.build_smoother`); None: its defaults.

    Raises
    ------
    ConfigError
        A missing run folder, a physics-informed or time-dependent run, a run trained on another
        problem or at another resolution, a non-elliptic problem.
    """
    from operators.training.runs import load_run, run_problem

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"--warm-start {run_dir}: no such run folder; give the folder pdeop train --out wrote")
    family = get_family(problem)(settings)
    if not isinstance(family, EllipticFamily):
        raise ConfigError(f"--warm-start: problem {problem!r} has no linear solves to accelerate; "
                          "use an elliptic problem (darcy, poisson, helmholtz, ...)")
    loaded = load_run(run_dir, checkpoint)
    data = loaded.config.data
    if data.protocol != "static":
        raise ConfigError(f"--warm-start {run_dir}: the run uses protocol {data.protocol!r}; a warm start needs a "
                          "static run mapping a sample's input fields to its solution")
    trained_on = run_problem(loaded)
    if trained_on != problem:
        raise ConfigError(f"--warm-start {run_dir}: the run was trained on {trained_on!r}, not {problem!r}; "
                          f"train a run on {problem} data or generate {trained_on}")
    shape = tuple(int(n) for n in loaded.metadata["grid"]["shape"])
    wanted = (settings.resolution,) * family.dim
    if shape != wanted:
        raise ConfigError(f"--warm-start {run_dir}: the run was trained at resolution {shape[0]}, the data asks for "
                          f"{settings.resolution}; use --resolution {shape[0]} or a run trained at {settings.resolution}")
    missing = [name for name in data.inputs if name not in family.inputs]
    unknown = [name for name in data.outputs if name not in family.solution_variables()]
    if missing or unknown:
        raise ConfigError(f"--warm-start {run_dir}: the run maps {list(data.inputs)} -> {list(data.outputs)}; "
                          f"{problem} has inputs {list(family.inputs)} and solution {list(family.solution_variables())}")
    smoother = smoother or family.cycle_smoother()
    model = None
    if correction is not None:
        model = train_correction(family, smoother, correction, log=log, smoother_options=smoother_options)
    return NeuralWarmStart(loaded.surrogate, data.inputs, data.outputs, model, smoother, smoother_options)
