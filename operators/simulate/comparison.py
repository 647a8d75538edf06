"""Run one coupling in every mode, score each against the solver, write trajectories and a report.

What ``pdeop simulate`` does (its command module only parses and prints): :func:`compare_modes`
advances the same initial states with the solver (the reference), the surrogate, the hybrid scheme
and persistence (the trivial yardstick: the last initial state repeated), and returns per mode the
relative L2 error against the solver at every stored time, the wall time and the states the solver
made; :func:`write_trajectories` stores one mode's trajectories as a normal pdeop dataset file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from operators.simulate.coupling import Coupling
from operators.simulate.simulation import Simulation


def run_mode(coupling: Coupling, mode: str, steps: int, tolerance: float | None = None) -> tuple[torch.Tensor, dict]:
    """States ``[B, history + steps, *grid]`` of ``mode`` and its statistics (seconds, counts)."""
    start = time.perf_counter()
    simulation = Simulation(coupling.initial, coupling.operator, coupling.solver, mode, tolerance)
    simulation.advance(steps)
    seconds = time.perf_counter() - start
    stats: dict[str, Any] = {"seconds": seconds, **simulation.counts}
    if simulation.eta:
        eta = torch.stack(simulation.eta)
        stats["eta_median"] = float(eta[torch.isfinite(eta)].median()) if bool(torch.isfinite(eta).any()) else None
    return simulation.states, stats


def relative_errors(states: torch.Tensor, reference: torch.Tensor) -> list[float]:
    """Relative L2 error per time ``||s - r|| / ||r||`` over all samples and points (NaN stays NaN)."""
    difference = (states - reference).flatten(2).norm(dim=2).square().sum(0).sqrt()
    size = reference.flatten(2).norm(dim=2).square().sum(0).sqrt()
    return (difference / size).tolist()


def compare_modes(coupling: Coupling, steps: int, tolerance: float) -> tuple[dict[str, torch.Tensor], dict]:
    """Every mode's trajectories and the report (see the module docstring)."""
    history = coupling.initial.shape[1]
    trajectories, report = {}, {"problem": coupling.problem, "samples": len(coupling.samples), "steps": steps,
                                "interval": coupling.solver.interval, "tolerance": tolerance,
                                "grid": list(coupling.initial.shape[2:]), "modes": {}}
    for mode in ("solver", "surrogate", "hybrid"):
        trajectories[mode], report["modes"][mode] = run_mode(coupling, mode, steps, tolerance)
    reference = trajectories["solver"][:, history:]
    persistence = coupling.initial[:, -1:].expand_as(reference)
    report["times"] = [coupling.solver.interval * (j + 1) for j in range(steps)]
    for mode, states in trajectories.items():
        report["modes"][mode]["error"] = relative_errors(states[:, history:], reference)
    report["modes"]["persistence"] = {"error": relative_errors(persistence, reference), "seconds": 0.0}
    report["eta_solver_median"] = solver_floor(coupling, trajectories["solver"])
    solver_seconds = report["modes"]["solver"]["seconds"]
    for mode, entry in report["modes"].items():
        entry["cost"] = entry["seconds"] / solver_seconds if solver_seconds > 0 else None
    return trajectories, report


def solver_floor(coupling: Coupling, states: torch.Tensor) -> float:
    """Median indicator ``eta`` of the solver's own steps: the floor a tolerance should sit above.

    ``eta`` of the exact solution is not zero when the stored interval does not resolve the
    dynamics (the trapezoidal rule over one interval), so a tolerance below this floor rejects
    even perfect predictions.
    """
    from operators.simulate.indicator import ResidualIndicator

    indicator = ResidualIndicator(coupling.solver)
    history = coupling.initial.shape[1]
    values = [indicator(states[:, j - 1], states[:, j]) for j in range(history, states.shape[1])]
    return float(torch.cat(values).median())


def write_trajectories(path: Path, coupling: Coupling, states: torch.Tensor, mode: str, report: dict,
                       source_attrs: dict[str, Any], variable: str, space_dims: list[str],
                       overwrite: bool = False) -> None:
    """Store ``states`` ``[B, T, *grid]`` as a pdeop dataset (same problem, variable and dims as the source).

    ``t`` starts at 0 for the first initial state; the root attributes keep the source's problem
    and configuration (with the simulated resolution) plus ``simulate_mode`` and the report as JSON.
    """
    from operators.atomic_files import staged_file
    from pde_data.family import Layout, Variable
    from pde_data.storage import DatasetWriter, create

    grid = tuple(states.shape[2:])
    config = json.loads(str(source_attrs["config"]))
    refine = coupling.solver.refine
    config["settings"].update(resolution=grid[0], internal_resolution=grid[0] * refine)
    config["samples"] = states.shape[0]
    period = coupling.solver.settings.L[0] if coupling.problem == "kuramoto-sivashinsky" and coupling.solver.lengths is None else 1.0
    coords = {d: np.arange(n) * (period / n) for d, n in zip(space_dims, grid)}
    coords["t"] = np.arange(states.shape[1]) * coupling.solver.interval
    variables = {variable: Variable(("sample", "t", *space_dims), "float32")}
    arrays = {variable: states.detach().cpu().numpy().astype(np.float32)}
    if coupling.solver.lengths is not None:
        variables["L"] = Variable(("sample",), "float64", {"long_name": "domain length"})
        arrays["L"] = np.asarray(coupling.solver.lengths)
    attrs = {k: v for k, v in source_attrs.items() if k not in ("complete", "config")}
    attrs.update(config=json.dumps(config, sort_keys=True), samples_from=json.dumps(coupling.samples.tolist()),
                 simulate_mode=mode, simulate_report=json.dumps(report))
    with staged_file(path, overwrite) as staged:
        staged.unlink(missing_ok=True)
        create(staged, Layout(coords=coords, variables=variables), states.shape[0], attrs)
        with DatasetWriter(staged) as writer:
            writer.write(range(states.shape[0]), arrays)
            writer.finish()
