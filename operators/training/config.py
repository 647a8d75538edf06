"""Typed settings of a training run: the sections of a ``configs/train/*.yaml`` file.

A run config has four sections — ``data`` (:class:`~pde_data.loading.DataConfig`), ``model``
(the registered model's settings, checked by :func:`operators.build`), ``training`` and
``evaluation`` — plus ``seed``. :func:`load_run_config` reads a YAML file, applies ``--set``
overrides and returns a checked :class:`RunConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Optional

from pde_data.config import apply_overrides, check, from_mapping, load_yaml, to_mapping
from operators.training.tensorboard_log import check_available
from pde_data.loading import DataConfig
from solvers.errors import ConfigError

#: how a time-dependent target is produced and trained (see :mod:`operators.training.trainer`)
Mode = Literal["direct", "teacher-forcing", "unrolled", "pushforward"]


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam or AdamW (decoupled weight decay); complex parameters are updated as pairs of reals."""

    name: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        check(self.lr > 0, f"training.optimizer.lr must be > 0 (got {self.lr})")
        check(self.weight_decay >= 0, f"training.optimizer.weight_decay must be >= 0 (got {self.weight_decay})")
        check(all(0 <= b < 1 for b in self.betas), f"training.optimizer.betas must lie in [0, 1) (got {self.betas})")


@dataclasses.dataclass(frozen=True)
class SchedulerConfig:
    """Learning-rate schedule as a function of training progress (see :mod:`.schedules`).

    ``step``: multiply by ``gamma`` every ``step_size`` epochs; ``cosine``: cosine decay to
    ``min_lr_ratio`` of the base rate; ``one-cycle``: linear-cosine warm-up to the base rate over
    ``pct_start`` of training, then cosine decay to ``1 / final_div_factor``. ``warmup_epochs``
    adds a linear warm-up in front of ``constant``, ``step`` and ``cosine``.
    """

    name: Literal["constant", "step", "cosine", "one-cycle"] = "constant"
    step_size: int = 100
    gamma: float = 0.5
    min_lr_ratio: float = 0.0
    warmup_epochs: float = 0.0
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def __post_init__(self) -> None:
        check(self.step_size >= 1, f"training.scheduler.step_size must be >= 1 (got {self.step_size})")
        check(0 < self.gamma <= 1, f"training.scheduler.gamma must lie in (0, 1] (got {self.gamma})")
        check(0 <= self.min_lr_ratio <= 1, f"training.scheduler.min_lr_ratio must lie in [0, 1] (got {self.min_lr_ratio})")
        check(self.warmup_epochs >= 0, f"training.scheduler.warmup_epochs must be >= 0 (got {self.warmup_epochs})")
        check(0 < self.pct_start < 1, f"training.scheduler.pct_start must lie in (0, 1) (got {self.pct_start})")
        check(self.div_factor >= 1 and self.final_div_factor >= 1,
              "training.scheduler.div_factor and final_div_factor must be >= 1")


@dataclasses.dataclass(frozen=True)
class PhysicsLossConfig:
    """The optional ``training.physics:`` section: a PDE-residual term added to the data loss.

    Each batch adds ``weight * physics_loss(problem, traj, periods, dt, params)``
    (:func:`operators.physics.operator_residual.physics_loss`) on the predicted trajectory with the
    last input state in front (see :mod:`operators.training.physics_term`).

    Parameters
    ----------
    weight
        Weight of the term (0 logs the residual without training on it).
    problem
        PDE of the residual (``burgers``, ``kuramoto-sivashinsky``, ``convection``,
        ``navier-stokes``); default: the equation the dataset's family declares (its ``equation``
        attribute; for older files the ``problem``).
    params
        Equation parameters; each one not given is read from the physical parameters the dataset
        declares (root attribute of the same name, e.g. ``viscosity``; the Navier-Stokes ``forcing``
        from the static variable ``f``).
    relative
        Divide by the mean square of the predicted time differences (scale-free, like the data loss).
    """

    weight: float = 1.0
    problem: Optional[str] = None
    params: dict = dataclasses.field(default_factory=dict)
    relative: bool = True

    def __post_init__(self) -> None:
        from operators.physics.operator_residual import PARAMETERS

        check(math.isfinite(self.weight) and self.weight >= 0,
              f"training.physics.weight must be a number >= 0 (got {self.weight})")
        check(self.problem is None or self.problem in PARAMETERS,
              f"training.physics.problem must be one of {', '.join(PARAMETERS)} or null for the dataset's "
              f"problem (got {self.problem!r})")
        for name, value in self.params.items():
            check(isinstance(value, (int, float)) and not isinstance(value, bool),
                  f"training.physics.params.{name} must be a number (got {value!r})")
        if self.problem is not None:
            check_physics_params(self.problem, self.params)


def check_physics_params(problem: str, params: dict) -> None:
    """Raise ConfigError naming ``training.physics.params`` if it holds a parameter ``problem`` does not use."""
    from operators.physics.operator_residual import PARAMETERS

    unknown = sorted(set(params) - set(PARAMETERS[problem]))
    if unknown:
        raise ConfigError(f"training.physics.params: {problem} has no parameter {unknown[0]!r} "
                          f"(its parameters: {', '.join(PARAMETERS[problem])})")


@dataclasses.dataclass(frozen=True)
class EarlyStoppingConfig:
    """The optional ``training.early_stopping:`` section: stop when the validation error stalls.

    Training ends (as finished) after the epoch at which ``val_l2`` has not improved for ``patience``
    epochs; an improvement is ``val_l2 < best * (1 - min_delta)``. The count starts again where an
    extended run (``--resume --set training.epochs=N``) begins its added epochs. Needs ``data.n_val >= 1``.
    """

    patience: int = 10
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        check(self.patience >= 1, f"training.early_stopping.patience must be an integer >= 1 (got {self.patience})")
        check(math.isfinite(self.min_delta) and 0 <= self.min_delta < 1,
              f"training.early_stopping.min_delta must lie in [0, 1) (got {self.min_delta})")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The ``training:`` section.

    Parameters
    ----------
    epochs, batch_size
        Passes over the training windows and windows per optimiser step.
    loss
        ``l2`` or ``h1`` relative error (on physical, de-normalised values).
    loss_reduction
        ``mean`` over items and model calls, or ``sum`` as in the classic FNO scripts (changes the
        balance against coupled weight decay).
    mode
        ``direct``: one model call predicts the whole target. Time-dependent targets may instead
        be produced ``step`` steps per call: ``teacher-forcing`` (every call sees true history),
        ``unrolled`` (calls fed their own predictions, gradients through the whole chain) or
        ``pushforward`` (a random number of calls without gradient, then one call with it).
    step
        Time steps per model call (default: the whole target in ``direct`` mode, 1 otherwise).
    predict
        What the model outputs for time-dependent data: ``state`` (the next steps themselves) or
        ``increment`` (their change from the last input frame, added back by the surrogate; see
        :class:`~operators.training.surrogate.Surrogate`). The loss is on the state either way.
    grad_clip
        Clip the global gradient norm (null: no clipping).
    physics
        Optional PDE-residual term (:class:`PhysicsLossConfig`; time-dependent data only).
    tensorboard
        Also write the history as TensorBoard scalars to ``RUN_DIR/tensorboard`` (needs the
        optional ``tensorboard`` package).
    precision
        ``float32``, or mixed precision: ``bfloat16`` / ``float16`` autocast of the forward pass
        (float16 with loss scaling); see :mod:`operators.training.precision` for what runs in which type.
    early_stopping
        Optional stop on a stalled validation error (:class:`EarlyStoppingConfig`).
    """

    epochs: int = 10
    batch_size: int = 16
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    loss: Literal["l2", "h1"] = "l2"
    loss_reduction: Literal["mean", "sum"] = "mean"
    mode: Mode = "direct"
    step: Optional[int] = None
    predict: Literal["state", "increment"] = "state"
    grad_clip: Optional[float] = None
    eval_batch_size: int = 64
    physics: Optional[PhysicsLossConfig] = None
    tensorboard: bool = False
    precision: Literal["float32", "bfloat16", "float16"] = "float32"
    early_stopping: Optional[EarlyStoppingConfig] = None

    def __post_init__(self) -> None:
        if self.tensorboard:
            check_available("training.tensorboard")
        check(self.epochs >= 1, f"training.epochs must be an integer >= 1 (got {self.epochs})")
        check(self.batch_size >= 1, f"training.batch_size must be an integer >= 1 (got {self.batch_size})")
        check(self.eval_batch_size >= 1, f"training.eval_batch_size must be >= 1 (got {self.eval_batch_size})")
        check(self.step is None or self.step >= 1, f"training.step must be >= 1 or null (got {self.step})")
        check(self.grad_clip is None or self.grad_clip > 0, f"training.grad_clip must be > 0 (got {self.grad_clip})")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The ``evaluation:`` section (used by ``pdeop evaluate``).

    Parameters
    ----------
    horizon
        Steps of the test rollout for autoregressive models (null: the rest of each trajectory).
    correlation_threshold
        The correlation time is the first time the Pearson correlation with the truth drops
        below this value.
    super_resolution_subsample
        Evaluate zero-shot on the test split at this subsample of the file as well (null: at the
        file's full grid whenever training used a coarser one).
    """

    horizon: Optional[int] = None
    correlation_threshold: float = 0.8
    super_resolution_subsample: Optional[int] = None

    def __post_init__(self) -> None:
        check(self.horizon is None or self.horizon >= 1, f"evaluation.horizon must be >= 1 (got {self.horizon})")
        check(-1 < self.correlation_threshold < 1,
              f"evaluation.correlation_threshold must lie in (-1, 1) (got {self.correlation_threshold})")


class RunSettings:
    """What every run configuration shares: a checked ``seed`` and the mapping ``run_config.json`` holds.

    Mixed into the frozen dataclasses :class:`RunConfig` and
    :class:`~operators.physics.run_config.PhysicsRunConfig`, which declare the field ``seed`` and
    call :meth:`check_seed` from their ``__post_init__``.
    """

    def check_seed(self) -> None:
        """The seed must be an integer >= 0 (ConfigError naming ``seed`` otherwise)."""
        check(self.seed >= 0, f"seed must be an integer >= 0 (got {self.seed})")

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (what ``run_config.json`` holds)."""
        return to_mapping(self)


@dataclasses.dataclass(frozen=True)
class RunConfig(RunSettings):
    """A whole training configuration."""

    data: DataConfig
    model: dict
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        self.check_seed()
        check("model" in self.model, "model.model must name a registered model (e.g. fno, tfno, deeponet, mgno)")
        check(self.training.early_stopping is None or self.data.n_val >= 1,
              "training.early_stopping watches the validation error; set data.n_val >= 1")
        mode = self.training.mode
        if not self.data.time_dependent:
            check(self.training.physics is None, "training.physics needs a time-dependent protocol (a predicted "
                                                 "trajectory); data.protocol is 'static'")
            check(mode == "direct", f"training.mode {mode!r} needs a time-dependent protocol; "
                                    f"data.protocol is 'static' (use mode 'direct')")
            check(self.training.step is None, "training.step applies to time-dependent protocols only")
            check(self.training.predict == "state", "training.predict 'increment' needs a time-dependent protocol; "
                                                    "data.protocol is 'static' (use predict 'state')")
        elif mode == "direct":
            check(self.training.step is None or self.data.t_out is None or self.training.step == self.data.t_out,
                  f"training.mode 'direct' predicts all data.t_out = {self.data.t_out} steps at once "
                  f"(got training.step = {self.training.step})")
        check(not (self.training.predict == "increment" and self.model.get("input_residual")),
              "training.predict 'increment' and model.input_residual both add the input to the output; "
              "keep one of them")
        if self.data.time_dependent and mode != "direct" and self.data.t_out is not None:
            step = self.call_steps(self.data.t_out)
            check(self.data.t_out % step == 0,
                  f"data.t_out = {self.data.t_out} must be a multiple of training.step = {step}")

    def call_steps(self, t_out: int) -> int:
        """Time steps produced by one model call for a target of ``t_out`` steps."""
        if self.training.mode == "direct":
            return t_out
        return self.training.step or 1


def run_config_from_mapping(mapping: dict[str, Any]) -> RunConfig:
    """Build and check a :class:`RunConfig` from a plain mapping."""
    mapping = dict(mapping)
    if "data" not in mapping:
        raise ConfigError("a training config needs a 'data' section (or 'pde' for physics-informed runs)")
    if not isinstance(mapping.get("model"), dict):
        raise ConfigError("a training config needs a 'model' section naming the model (model: {model: fno, ...})")
    return from_mapping(RunConfig, mapping)


def load_run_config(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a training YAML and apply ``key=value`` overrides; returns the plain mapping.

    Relative ``data.path`` values are kept as written (relative to the working directory).
    """
    return apply_overrides(load_yaml(path, what="training config"), overrides)
