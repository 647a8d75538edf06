"""Typed settings of a physics-informed run: a ``configs/train/*.yaml`` file with a ``pde:`` section.

::

    method: lpinn                 # pinn | causal_pinn | lpinn
    pde: {name: convection, c: 50}
    model: {width: 64, depth: 4, backbone: mlp}     # the rest is derived from the pde
    training: {steps: 3000, optimizer: {lr: 5e-3}, scheduler: {name: cosine, min_lr_ratio: 0.01}}
    causal: {n_slices: 32, epsilons: [0.01, 0.1, 1, 10, 100]}
    lpinn: {gamma_x: 1, gamma_u: 1, gamma_ic: 1}
    evaluation: {n_t: 101, n_space: 256}
    seed: 0

The optimiser and the learning-rate schedule reuse the trainer's settings
(:class:`~operators.training.config.OptimizerConfig`, :class:`~operators.training.config.SchedulerConfig`);
here the schedule's "epochs" are optimiser steps (of one time window when ``windows > 1``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Optional

from operators.physics.lagrangian import LPINNLoss
from operators.physics.pde_specs import PDESpec, build_pde, describe_pde
from operators.training.config import OptimizerConfig, RunSettings, SchedulerConfig
from operators.training.tensorboard_log import check_available
from pde_data.config import check, from_mapping
from solvers.errors import ConfigError

Method = Literal["pinn", "causal_pinn", "lpinn"]


@dataclasses.dataclass(frozen=True)
class PhysicsTrainingConfig:
    """The ``training:`` section of a physics-informed run.

    Parameters
    ----------
    steps
        Adam steps in all (split evenly over the time windows).
    n_residual, n_initial, n_boundary
        Collocation points per step: interior, initial-time and per periodic face (resampled
        uniformly every step).
    residual_weight, initial_weight, boundary_weight
        Weights of the PINN loss terms (mean squares). LPINN uses the ``lpinn`` section instead.
    loss_weighting
        ``fixed`` (the weights above) or ``grad_norm``: the weights start at the values above and
        every ``weight_update_every`` steps move towards mean_j ||grad L_j|| / ||grad L_k|| with
        momentum ``weight_momentum`` (:mod:`operators.physics.loss_weights`; PINN methods only).
    initial_condition, boundary_condition
        ``soft`` (a loss term) or ``hard`` (imposed by the network: u = u0 + t N for the initial
        condition, exactly periodic Fourier features of x for the periodic boundary).
    windows
        Time-marching windows; each starts from the previous window's prediction.
    lbfgs_steps
        L-BFGS iterations after Adam, on a fixed collocation set.
    log_every, eval_every
        Steps between history rows (averaged terms) and between validations / checkpoints.
    dtype
        Precision of the networks.
    grad_clip
        Clip the global gradient norm (null: no clipping).
    threads
        torch intra-op threads while training (null: torch's default). Small PINNs run fastest on
        one thread, and far slower on a loaded machine with more.
    tensorboard
        Also write the history as TensorBoard scalars to ``RUN_DIR/tensorboard`` (needs the
        optional ``tensorboard`` package).
    """

    steps: int = 5000
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    n_residual: int = 2048
    n_initial: int = 256
    n_boundary: int = 128
    residual_weight: float = 1.0
    initial_weight: float = 1.0
    boundary_weight: float = 1.0
    loss_weighting: Literal["fixed", "grad_norm"] = "fixed"
    weight_update_every: int = 100
    weight_momentum: float = 0.9
    initial_condition: Literal["soft", "hard"] = "soft"
    boundary_condition: Literal["soft", "hard"] = "hard"
    windows: int = 1
    lbfgs_steps: int = 0
    log_every: int = 100
    eval_every: int = 500
    dtype: Literal["float32", "float64"] = "float32"
    grad_clip: Optional[float] = None
    threads: Optional[int] = None
    tensorboard: bool = False

    def __post_init__(self) -> None:
        if self.tensorboard:
            check_available("training.tensorboard")
        check(self.threads is None or self.threads >= 1, f"training.threads must be >= 1 or null (got {self.threads})")
        for name in ("steps", "n_residual", "n_initial", "n_boundary", "windows", "log_every", "eval_every",
                     "weight_update_every"):
            check(getattr(self, name) >= 1, f"training.{name} must be an integer >= 1 (got {getattr(self, name)})")
        check(self.lbfgs_steps >= 0, f"training.lbfgs_steps must be >= 0 (got {self.lbfgs_steps})")
        check(self.steps % self.windows == 0,
              f"training.steps ({self.steps}) must be a multiple of training.windows ({self.windows})")
        check(self.eval_every % self.log_every == 0,
              f"training.eval_every ({self.eval_every}) must be a multiple of training.log_every ({self.log_every})")
        for name in ("residual_weight", "initial_weight", "boundary_weight"):
            check(getattr(self, name) >= 0, f"training.{name} must be >= 0 (got {getattr(self, name)})")
        check(0 <= self.weight_momentum < 1,
              f"training.weight_momentum must lie in [0, 1) (got {self.weight_momentum})")
        check(self.grad_clip is None or self.grad_clip > 0, f"training.grad_clip must be > 0 (got {self.grad_clip})")
        check(self.lbfgs_steps == 0 or self.windows == 1, "training.lbfgs_steps needs training.windows: 1")


@dataclasses.dataclass(frozen=True)
class CausalConfig:
    """The ``causal:`` section (method ``causal_pinn``): time slices and the eps schedule.

    Parameters
    ----------
    n_slices
        Time slices of the residual loss (per time window).
    epsilons
        The eps schedule, annealed upward: the next value is taken when ``min w > tolerance``
        (or after ``max_stage_steps``).
    tolerance
        The stage-end and stopping threshold on the smallest causal weight (0.99 in the paper).
    max_stage_steps
        At most this many steps per eps value (the paper's per-stage iteration cap; null: none).
    stop_at_convergence
        End a window's training once the last eps is reached and ``min w > tolerance`` (the
        paper's stopping criterion); its remaining steps are skipped.
    """

    n_slices: int = 32
    epsilons: tuple[float, ...] = (1e-2, 1e-1, 1.0, 10.0, 100.0)
    tolerance: float = 0.99
    max_stage_steps: Optional[int] = None
    stop_at_convergence: bool = False

    def __post_init__(self) -> None:
        check(self.n_slices >= 2, f"causal.n_slices must be >= 2 (got {self.n_slices})")
        check(len(self.epsilons) >= 1 and all(e > 0 for e in self.epsilons),
              f"causal.epsilons must be a non-empty list of positive numbers (got {list(self.epsilons)})")
        check(list(self.epsilons) == sorted(self.epsilons),
              f"causal.epsilons must increase (eps is annealed upward; got {list(self.epsilons)})")
        check(0 < self.tolerance < 1, f"causal.tolerance must lie in (0, 1) (got {self.tolerance})")
        check(self.max_stage_steps is None or self.max_stage_steps >= 1,
              f"causal.max_stage_steps must be >= 1 or null (got {self.max_stage_steps})")


@dataclasses.dataclass(frozen=True)
class PhysicsEvaluationConfig:
    """The ``evaluation:`` section: the grid on which errors are measured.

    ``n_t`` times including 0 and t_end, ``n_space`` periodic points per spatial axis; LPINN
    advects ``particles`` starting points (0: four per grid point) before interpolating.
    """

    n_t: int = 101
    n_space: int = 256
    particles: int = 0

    def __post_init__(self) -> None:
        check(self.n_t >= 2, f"evaluation.n_t must be >= 2 (got {self.n_t})")
        check(self.n_space >= 4, f"evaluation.n_space must be >= 4 (got {self.n_space})")
        check(self.particles >= 0, f"evaluation.particles must be >= 0 (got {self.particles})")


@dataclasses.dataclass(frozen=True)
class PhysicsRunConfig(RunSettings):
    """A whole physics-informed run configuration (see the module docstring)."""

    method: Method
    pde: dict
    model: dict = dataclasses.field(default_factory=dict)
    training: PhysicsTrainingConfig = dataclasses.field(default_factory=PhysicsTrainingConfig)
    causal: CausalConfig = dataclasses.field(default_factory=CausalConfig)
    lpinn: LPINNLoss = dataclasses.field(default_factory=LPINNLoss)
    evaluation: PhysicsEvaluationConfig = dataclasses.field(default_factory=PhysicsEvaluationConfig)
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        self.check_seed()
        if self.method == "causal_pinn":
            check(self.training.n_residual % self.causal.n_slices == 0,
                  f"training.n_residual ({self.training.n_residual}) must be a multiple of causal.n_slices "
                  f"({self.causal.n_slices}) for method causal_pinn")
        if self.method == "lpinn":
            check(self.training.windows == 1, "method lpinn does not use time windows (set training.windows: 1)")
            check(self.training.initial_condition == "soft",
                  "method lpinn imposes the initial condition softly (set training.initial_condition: soft)")
            check(self.training.boundary_condition == "hard",
                  "method lpinn needs the exactly periodic embedding (set training.boundary_condition: hard)")
            check(self.training.loss_weighting == "fixed",
                  "method lpinn weights its terms by lpinn.gamma_*; set training.loss_weighting: fixed")


def parse_run_config(mapping: dict[str, Any]) -> PhysicsRunConfig:
    """Build and check a :class:`PhysicsRunConfig` from a plain mapping (YAML plus overrides).

    The ``pde`` section is checked too (:func:`~operators.physics.pde_specs.build_pde`), and so is
    the model built from it, so a bad setting fails before training starts.
    """
    if not isinstance(mapping.get("pde"), dict):
        raise ConfigError("a physics-informed config needs a 'pde' section (pde: {name: convection, ...})")
    if "method" not in mapping:
        raise ConfigError("a physics-informed config needs 'method': one of pinn, causal_pinn, lpinn")
    config = from_mapping(PhysicsRunConfig, mapping)
    spec = build_pde(config.pde)
    if config.method == "lpinn":
        spec.lagrangian()
    return config


def model_settings(config: PhysicsRunConfig, spec: PDESpec) -> dict[str, Any]:
    """The ``model`` section completed from the PDE: inputs, outputs, bounds, periodicity, hard IC.

    Raises
    ------
    ConfigError
        If the section sets one of the derived settings itself.
    """
    settings = dict(config.model)
    training = config.training
    hard_bc = training.boundary_condition == "hard"
    lower, upper = (0.0, *spec.lower), (spec.t_end, *spec.upper)
    if config.method == "lpinn":
        form = spec.lagrangian()
        length = spec.upper[0] - spec.lower[0]
        derived: dict[str, Any] = {"model": "lpinn", "lower": list(lower), "upper": list(upper), "periodic": hard_bc,
                                   "displacement_scale": max(form.max_speed * spec.t_end, 0.1 * length)}
    else:
        derived = {"model": "pinn", "in_dim": 1 + spec.space_dim, "out_dim": len(spec.fields),
                   "lower": list(lower), "upper": list(upper), "periodic": [False] + [hard_bc] * spec.space_dim,
                   "hard_initial": describe_pde(spec) if training.initial_condition == "hard" else None,
                   "windows": training.windows}
    clash = sorted(set(settings) & set(derived))
    if clash:
        raise ConfigError(f"model.{clash[0]} is derived from the pde and training sections; remove it "
                          f"(derived: {', '.join(sorted(derived))})")
    return {**derived, **settings}

