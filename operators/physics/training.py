"""Training of PINN, causal PINN and LPINN runs (configs with a ``pde:`` section).

``pdeop train`` hands such configs to :func:`run`. The run folder has the trainer's layout::

    run_config.json             the resolved configuration (a resume must use the same one)
    training.csv, training.json one row every ``log_every`` steps: loss terms averaged over the
                                rows' steps, lr, eps and min causal weight; validation loss and
                                relative L2 on a coarse monitor grid every ``eval_every`` steps
    causal_weights.json         causal weights w_i of the last step of each logged row
    best/, last/                ``operators.save`` checkpoints; ``last/`` also holds the training state

Reproducibility: the networks are initialised from ``seed``; the collocation points of step s
depend only on ``(seed, s)``; the learning rate is a pure function of the step; the eps stage, the
running averages and the optimiser moments are saved in ``last/``. Resuming after a kill or a
``max_minutes`` stop therefore gives the run an uninterrupted one gives (Adam phase; an L-BFGS
phase restarts its curvature history from the checkpoint).

Safety as in the operator trainer: the run folder is claimed (:func:`operators.training.run_folder.claim`),
the model's size is checked on the meta device before it is built, and the first non-finite loss or
gradient stops training before the step is taken (:mod:`operators.training.divergence`), leaving
``last/`` at the last validation.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from operators import strict_json
from operators.physics import sampling
from operators.physics.causal import EpsilonSchedule
from operators.physics.evaluation import predict, relative_l2
from operators.physics.exact import reference
from operators.physics.loss_weights import gradient_norms, update_weights
from operators.physics.objectives import Objective
from operators.physics.pde_specs import PDESpec, build_pde, describe_pde
from operators.physics.run_config import PhysicsRunConfig, model_settings, parse_run_config
from operators.registry import build, check_fits_memory, layout
from operators.strict_json import check_fields
from operators.training import run_folder
from operators.training.divergence import (NonFiniteStep, TrainingDiverged, check_gradients, check_loss,
                                           optimizer_step, stop_message)
from operators.training.optimizers import build_optimizer
from operators.training.schedules import lr_factor, set_lr
from operators.training.state import load_training_state, save_training_state
from solvers.errors import ConfigError

CAUSAL_WEIGHTS = "causal_weights.json"
#: coarse grid on which the relative error is monitored during training
MONITOR_GRID = (26, 64)


def run(config: dict[str, Any], run_dir: Path, resume: bool = False, device: str = "cpu",
        max_minutes: float | None = None, quiet: bool = False) -> dict[str, Any]:
    """Train a physics-informed model described by ``config`` into ``run_dir``.

    Parameters
    ----------
    config
        The plain mapping of a YAML config with a ``pde:`` section (see
        :mod:`operators.physics.run_config`).
    run_dir
        Run folder (created; must not hold a run unless ``resume``).
    resume
        Continue the run in ``run_dir`` from ``last/``.
    device
        ``cpu`` or ``cuda``.
    max_minutes
        Stop (after saving ``last/``) once this much wall time has passed; ``resume`` continues.
    quiet
        No progress lines on stderr.

    Returns
    -------
    dict
        ``run_dir``, ``method``, ``steps_done``, ``optimizer_steps`` (fewer than ``steps_done`` when
        causal convergence ended windows early), ``finished``, ``best_val_loss``, ``rel_l2`` (last
        monitored value, on the coarse monitor grid) and ``seconds``.
    """
    parsed = parse_run_config(config)
    log = (lambda message: None) if quiet else (lambda message: print(message, file=sys.stderr))
    return PhysicsTrainer(parsed, run_dir, device, log).fit(resume=resume, max_minutes=max_minutes)


class PhysicsTrainer:
    """Train the model of a :class:`PhysicsRunConfig` into ``run_dir`` (see :func:`run`)."""

    def __init__(self, config: PhysicsRunConfig, run_dir: str | Path, device: str = "cpu",
                 log: Callable[[str], None] | None = None) -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but torch sees no CUDA device; use --device cpu")
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.log = log or (lambda message: None)
        self.spec: PDESpec = build_pde(config.pde)
        self.dtype = torch.float64 if config.training.dtype == "float64" else torch.float32
        torch.manual_seed(config.seed)
        settings = model_settings(config, self.spec)
        check_fits_memory(layout(settings), copies=4 * (2 if self.dtype == torch.float64 else 1),
                          what="the model of this config")
        self.model = build(settings).to(device=self.device, dtype=self.dtype)
        self.optimizer = build_optimizer(self._parameter_groups(), config.training.optimizer)
        self.objective = Objective(config, self.spec, self.dtype, self.device)
        self._monitor: tuple[list[np.ndarray], np.ndarray] | None | bool = False

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """One group, or for an LPINN with ``lpinn.position_lr_scale`` two (position, state)."""
        scale = self.config.lpinn.position_lr_scale if self.config.method == "lpinn" else 1.0
        if scale == 1.0:
            return [{"params": list(self.model.parameters())}]
        return [{"params": list(self.model.state.parameters())},
                {"params": list(self.model.position.parameters()), "lr_scale": scale}]

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False, max_minutes: float | None = None) -> dict[str, Any]:
        """Train (Adam, then optional L-BFGS) until done or until ``max_minutes``; see :func:`run`."""
        cfg = self.config.training
        threads = torch.get_num_threads()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        try:
            with run_folder.claim(self.run_dir, resume):
                return self._fit(resume, max_minutes)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, resume: bool, max_minutes: float | None) -> dict[str, Any]:
        cfg = self.config.training
        progress = self._resume() if resume else self._start()
        started = time.perf_counter()
        total = cfg.steps + cfg.lbfgs_steps
        stopped = False
        while progress["step"] < total and not stopped:
            tick = time.perf_counter()
            try:
                terms = self._adam_step(progress) if progress["step"] < cfg.steps else self._lbfgs_step(progress)
            except NonFiniteStep as exc:
                raise TrainingDiverged(self._stop_message(exc, progress)) from None
            progress["step"] += 1
            skip_to = progress.pop("skip_to", None)
            if skip_to is not None:  # causal convergence: the rest of this window's steps are not needed
                self.log(f"step {progress['step']}: causal weights converged (min w > {self.config.causal.tolerance} "
                         f"at the last eps); skipping to step {skip_to}")
                progress["step"] = skip_to
            progress["elapsed"] += time.perf_counter() - tick
            self._accumulate(progress, terms)
            done = progress["step"] == total
            stopped = max_minutes is not None and time.perf_counter() - started > 60 * max_minutes and not done
            if progress["step"] % cfg.log_every == 0 or done or stopped or skip_to is not None:
                self._log_row(progress, validate=progress["step"] % cfg.eval_every == 0 or done or stopped
                              or skip_to is not None)
        progress["finished"] = progress["step"] >= total
        if stopped:
            self.log(f"stopped after step {progress['step']}/{total}: max_minutes {max_minutes} reached; "
                     "continue with --resume")
        last = next((row for row in reversed(progress["history"]) if "val_loss" in row), {})
        return {"run_dir": str(self.run_dir), "method": self.config.method, "steps_done": progress["step"],
                "optimizer_steps": progress.get("optimizer_steps", progress["step"]),
                "finished": progress["finished"], "best_val_loss": progress["best_score"],
                "rel_l2": last.get("rel_l2"), "seconds": progress["elapsed"]}

    def _adam_step(self, progress: dict[str, Any]) -> dict[str, float]:
        cfg, causal = self.config.training, self.config.causal
        per_window = cfg.steps // cfg.windows
        step = progress["step"]
        window, local = divmod(step, per_window)
        if local == 0:
            progress["stage"], progress["stage_steps"] = 0, 0
        set_lr(self.optimizer, cfg.optimizer.lr * lr_factor(cfg.scheduler, local, 1, per_window))
        schedule = EpsilonSchedule(causal.epsilons, causal.tolerance, progress["stage"], causal.max_stage_steps,
                                   progress.get("stage_steps", 0))
        weights = {**self.objective.fixed_weights(), **progress.get("loss_weights", {})}
        result = self.objective.step_loss(self.model, step, window, schedule.epsilon, weights)
        check_loss(result.loss)
        if cfg.loss_weighting == "grad_norm" and local % cfg.weight_update_every == 0:
            norms = gradient_norms(result.parts, self.model.parameters())
            current = {name: weights[name] for name in norms}
            progress["loss_weights"] = {**progress.get("loss_weights", {}),
                                        **update_weights(current, norms, cfg.weight_momentum)}
        self.optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        check_gradients(self.model.named_parameters())
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        optimizer_step(self.optimizer)
        progress["optimizer_steps"] = progress.get("optimizer_steps", 0) + 1
        if result.weights is not None:
            schedule.update(result.weights)
            progress["stage"], progress["stage_steps"] = schedule.stage, schedule.stage_steps
            progress["last_weights"] = result.weights.tolist()
            if causal.stop_at_convergence and schedule.converged(result.weights):
                progress["skip_to"] = (window + 1) * per_window
        terms = {**result.terms, "window": window, "lr": self.optimizer.param_groups[0]["lr"]}
        if cfg.loss_weighting == "grad_norm":
            terms.update({f"weight_{name}": weights[name] for name in result.parts})
        return terms

    def _lbfgs_step(self, progress: dict[str, Any]) -> dict[str, float]:
        """One L-BFGS iteration on the fixed collocation set of step ``training.steps``.

        The logged terms are those at the weights the iteration starts from (line-search trials
        are not logged).
        """
        cfg = self.config.training
        if not hasattr(self, "_lbfgs"):
            # one iteration per call, but room for the line search (max_eval defaults to 1.25 max_iter,
            # which would stop the strong-Wolfe search after its first trial and never move)
            self._lbfgs = torch.optim.LBFGS(self.model.parameters(), lr=1.0, max_iter=1, max_eval=25,
                                            history_size=50, line_search_fn="strong_wolfe")
        epsilon = self.config.causal.epsilons[progress["stage"]]
        weights = {**self.objective.fixed_weights(), **progress.get("loss_weights", {})}
        holder: dict[str, Any] = {}

        def closure() -> torch.Tensor:
            self._lbfgs.zero_grad(set_to_none=True)
            result = self.objective.step_loss(self.model, cfg.steps, cfg.windows - 1, epsilon, weights)
            check_loss(result.loss)
            result.loss.backward()
            check_gradients(self.model.named_parameters())
            holder.setdefault("result", result)  # the first evaluation: the loss at the current weights
            return result.loss

        self._lbfgs.step(closure)
        return {**holder["result"].terms, "window": cfg.windows - 1, "lr": 1.0}

    def _stop_message(self, error: NonFiniteStep, progress: dict[str, Any]) -> str:
        saved = progress.get("saved_step", 0)
        if saved:
            where = f"{self.run_dir / 'last'} holds step {saved} (--resume continues from it)"
        else:
            where = "no validation step had finished, so no checkpoint was written"
        lr = self.optimizer.param_groups[0]["lr"] if progress["step"] < self.config.training.steps else 1.0
        return stop_message(error, f"step {progress['step'] + 1}", lr, progress["step"] == 0, where)

    # ------------------------------------------------------------------ logging and validation
    @staticmethod
    def _accumulate(progress: dict[str, Any], terms: dict[str, float]) -> None:
        sums = progress["running"]
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        sums["_count"] = sums.get("_count", 0) + 1

    def _log_row(self, progress: dict[str, Any], validate: bool) -> None:
        sums = progress["running"]
        count = sums.pop("_count")
        row: dict[str, Any] = {"step": progress["step"]}
        for key, value in sums.items():
            row[key] = int(round(value / count)) if key == "window" else value / count
        if "epsilon" in row:
            row["epsilon"] = self.config.causal.epsilons[progress["stage"]]
        row["seconds"] = progress["elapsed"]
        progress["running"] = {}
        if "last_weights" in progress:
            progress["causal"].append({"step": progress["step"], "epsilon": row.get("epsilon"),
                                       "window": row.get("window"), "weights": progress["last_weights"]})
        improved = False
        if validate:
            row["val_loss"] = self.objective.validation_loss(self.model)
            error = self._monitor_error()
            if error is not None:
                row["rel_l2"] = error
            improved = row["val_loss"] < progress["best_score"]
            if improved:
                progress["best_score"] = row["val_loss"]
            text = ", ".join(f"{k} {row[k]:.3g}" for k in ("loss", "val_loss", "rel_l2", "epsilon") if k in row)
            self.log(f"step {progress['step']}: {text}")
        progress["history"].append(row)
        if validate:
            self._save(progress, improved)

    def _monitor_error(self) -> float | None:
        """Relative L2 on the coarse monitor grid (None when the PDE has no reference)."""
        n_t, n_space = MONITOR_GRID
        if self._monitor is False:
            _, axes = sampling.grid(self.spec, n_t, n_space)
            axes = [a.numpy() for a in axes]
            try:
                self._monitor = (axes, reference(self.spec, *axes))
            except ConfigError:
                self._monitor = None
        if self._monitor is None:
            return None
        prediction, _, _ = predict(self.model, self.spec, self.config.method, n_t, n_space)
        return relative_l2(prediction, self._monitor[1])

    # ------------------------------------------------------------------ files
    def _fresh_progress(self) -> dict[str, Any]:
        return {"step": 0, "stage": 0, "history": [], "causal": [], "running": {}, "best_score": math.inf,
                "elapsed": 0.0, "finished": False}

    def _start(self) -> dict[str, Any]:
        run_folder.start(self.run_dir, self.config.to_dict())
        return self._fresh_progress()

    def _resume(self) -> dict[str, Any]:
        last = run_folder.resume_checkpoint(self.run_dir, self.config.to_dict())
        if last is None:
            self.log(f"no checkpoint in {self.run_dir} yet; starting from the beginning")
            return self._fresh_progress()
        progress = load_training_state(last, self.model, self.optimizer, self.device)
        check_fields(progress, {"step": "int", "stage": "int", "history": "list", "causal": "list",
                                "running": "mapping", "best_score": "number", "elapsed": "number"},
                     f"the progress recorded in {last}")
        total = self.config.training.steps + self.config.training.lbfgs_steps
        if not (0 <= progress["step"] <= total and 0 <= progress["stage"] < len(self.config.causal.epsilons)):
            raise ConfigError(f"the progress recorded in {last} (step {progress['step']}, eps stage "
                              f"{progress['stage']}) does not fit this run of {total} steps")
        self.log(f"resuming {self.run_dir} at step {progress['step']}")
        return progress

    def _save(self, progress: dict[str, Any], improved: bool) -> None:
        """Write ``last/`` (with the training state), ``best/`` when improved, and the histories."""
        from operators.checkpoint import save

        spec = self.spec
        grid = {"t": [0.0, spec.t_end], "lower": list(spec.lower), "upper": list(spec.upper)}
        extra = {"physics": {"method": self.config.method, "pde": describe_pde(spec),
                             "fields": list(spec.fields), "observable": list(spec.observable_names)},
                 "run_config": self.config.to_dict()}

        progress["saved_step"] = progress["step"]

        def save_model(folder: Path, name: str) -> None:
            save(self.model, folder, grid=grid, extra={**extra, "step": progress["step"]} if name == "best" else extra)

        run_folder.save_checkpoints(
            self.run_dir, save_model, lambda folder: save_training_state(folder, self.model, self.optimizer, progress),
            improved)
        run_folder.write_history(self.run_dir, progress["history"], self.config.training.tensorboard)
        if progress["causal"]:
            run_folder.write_atomic(self.run_dir / CAUSAL_WEIGHTS, strict_json.dumps({"rows": progress["causal"]},
                                                                                    indent=None))
