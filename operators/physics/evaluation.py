"""Errors of a physics-informed run against the exact / reference solution on a grid.

``evaluate(run_dir)`` loads ``run_dir/best`` (via :func:`operators.load`), predicts the observable
on the ``evaluation`` grid (LPINN predictions are first mapped back to the Eulerian grid),
compares with :func:`operators.physics.exact.reference` and writes ``metrics.json`` (strict JSON) and
``prediction.npz`` (t, x, (y), prediction, reference) into the run folder, each through a staged file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from operators.physics import sampling
from operators.physics.exact import reference
from operators.physics.lagrangian import to_eulerian
from operators.physics.pde_specs import PDESpec, build_pde
from operators.physics.run_config import PhysicsRunConfig, parse_run_config

METRICS = "metrics.json"
PREDICTION = "prediction.npz"


def predict(model: nn.Module, spec: PDESpec, method: str, n_t: int, n_space: int, particles: int = 0,
            chunk: int = 16384) -> tuple[np.ndarray, list[np.ndarray], dict[str, Any]]:
    """The model's observable on the evaluation grid (``sampling.grid``).

    Returns
    -------
    (numpy.ndarray, list of numpy.ndarray, dict)
        The field ``[n_t, n_space(, n_space)]`` (float64), the axes ``[t, x(, y)]``, and extra
        diagnostics (LPINN: ``min_particle_spacing``, see :func:`to_eulerian`).
    """
    coords, axes = sampling.grid(spec, n_t, n_space)
    axes_np = [a.numpy() for a in axes]
    if method == "lpinn":
        field, spacing = to_eulerian(model, spec, axes_np[0], axes_np[1], particles or None)
        return field, axes_np, {"min_particle_spacing": spacing}
    param = next(model.parameters())
    # only observables built from derivatives (the vorticity of Navier-Stokes) need a graph
    needs_grad = type(spec).observable is not PDESpec.observable
    values = []
    for start in range(0, coords.shape[0], chunk):
        part = coords[start:start + chunk].to(dtype=param.dtype, device=param.device).requires_grad_(needs_grad)
        with torch.set_grad_enabled(needs_grad):
            observed = spec.observable(model(part), part)
        values.append(observed[:, 0].detach().double().cpu())
    shape = tuple(len(a) for a in axes)
    return torch.cat(values).reshape(shape).numpy(), axes_np, {}


def relative_l2(prediction: np.ndarray, truth: np.ndarray) -> float:
    """||prediction - truth|| / ||truth|| over all grid points."""
    return float(np.linalg.norm(prediction - truth) / np.linalg.norm(truth))


def error_metrics(prediction: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Relative L2 over the whole grid, per time (``rel_l2_per_time``) and the maximum absolute error."""
    flat_p = prediction.reshape(prediction.shape[0], -1)
    flat_t = truth.reshape(truth.shape[0], -1)
    per_time = np.linalg.norm(flat_p - flat_t, axis=1) / np.maximum(np.linalg.norm(flat_t, axis=1), 1e-300)
    return {"rel_l2": relative_l2(prediction, truth), "max_abs_error": float(np.abs(prediction - truth).max()),
            "rel_l2_per_time": per_time.tolist()}


def load_physics_run(run_dir: str | Path, checkpoint: str = "best") -> tuple[PhysicsRunConfig, PDESpec, nn.Module]:
    """The run's configuration, PDE and model (``checkpoint`` is ``best`` or ``last``)."""
    from operators.checkpoint import load
    from operators.training.run_folder import read_config
    from solvers.errors import ConfigError

    run_dir = Path(run_dir)
    config = parse_run_config(read_config(run_dir))
    if not (run_dir / checkpoint).is_dir():
        raise ConfigError(f"{run_dir} has no '{checkpoint}' checkpoint yet (no validation step has finished)")
    model = load(run_dir / checkpoint).model.eval()
    return config, build_pde(config.pde), model


def is_physics_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a physics-informed run (its config has a ``pde`` section)."""
    from operators.training.run_folder import RUN_CONFIG, read_config

    return (Path(run_dir) / RUN_CONFIG).is_file() and "pde" in read_config(Path(run_dir))


def evaluate(run_dir: Path, checkpoint: str = "best", out: Path | None = None,
             overwrite: bool = True) -> dict[str, Any]:
    """Relative L2 of the run's prediction against the exact / reference solution.

    Writes the metrics to ``out`` (default ``run_dir/metrics.json``; an existing ``out`` is replaced
    only with ``overwrite``) and ``run_dir/prediction.npz``; returns the metrics.
    """
    from operators import strict_json
    from operators.atomic_files import staged_file, write_text

    run_dir = Path(run_dir)
    config, spec, model = load_physics_run(run_dir, checkpoint)
    ev = config.evaluation
    prediction, axes, extra = predict(model, spec, config.method, ev.n_t, ev.n_space, ev.particles)
    started = time.perf_counter()
    truth = reference(spec, *axes)
    metrics = {"run": str(run_dir), "checkpoint": checkpoint, "method": config.method, "pde": config.pde,
               "grid": {"n_t": ev.n_t, "n_space": ev.n_space, "t_end": spec.t_end},
               "observable": spec.observable_names[0], **error_metrics(prediction, truth), **extra,
               "reference_seconds": time.perf_counter() - started}
    names = ["t", "x", "y"][: len(axes)]
    with staged_file(run_dir / PREDICTION, overwrite=True) as tmp:
        np.savez(tmp, prediction=prediction, reference=truth, **dict(zip(names, axes)))
    write_text(out or run_dir / METRICS, strict_json.dumps(metrics) + "\n", overwrite=overwrite)
    return metrics
