"""Export a physics-informed run (PINN, causal PINN, LPINN) as TorchScript or ``torch.export``.

The programs work in physical units, with any number of points (a dynamic axis):

* PINN and causal PINN: ``forward(coords [N, 1 + d]) -> [N, len(fields)]``. ``coords`` holds time
  first, then ``x`` (and ``y``), as the run's PDE has them. The network's own input scaling (to
  [-1, 1] with the domain bounds, or exactly periodic Fourier features) is inside the program, so
  nothing is normalised by the caller. A windowed network picks each point's time window with
  masks instead of the eager model's gather, so the traced program has no data-dependent shapes.
* LPINN: the network lives in Lagrangian coordinates ``(t, x0)``, and its scattered outputs are
  not the solution (and, with monotone characteristics, exist only on a uniform label grid). The
  program is what :func:`operators.physics.evaluation.predict` does to get the solution:
  ``forward(t [nt], x [nx]) -> u [nt, nx]`` (float64) on the Eulerian grid ``t x x``. It advances
  ``particles`` labels along the predicted characteristics, wraps them into the period and
  interpolates their states linearly and periodically at ``x``, as
  :func:`operators.physics.lagrangian.to_eulerian` does with NumPy.

Each program carries ``pdeop_protocol.txt`` / ``pdeop_protocol.json``
(:data:`~operators.training.export.PROTOCOL_TEXT`, :data:`~operators.training.export.PROTOCOL_JSON`)
with the PDE specification, the domain and time bounds, the coordinate order, the input scaling,
the output variables and the signature (:func:`physics_protocol`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from operators.models.lpinn import LPINN
from operators.models.pinn import PINN
from operators.physics.pde_specs import PDESpec, describe_pde
from operators.physics.run_config import PhysicsRunConfig
from operators.training.export import (ExportResult, Format, check_outputs_finite, check_program_error,
                                       protocol_extra_files, save_program)
from solvers.errors import ConfigError


class PointwiseCall(nn.Module):
    """A PINN on physical coordinates ``[N, 1 + d]`` -> ``[N, out_dim]``, both in the network's dtype.

    (A TorchScript trace also converts other float inputs; a ``torch.export`` program is fixed to
    the dtype it was traced with.)
    """

    def __init__(self, model: PINN) -> None:
        super().__init__()
        self.model = model
        self.dtype = next(model.parameters()).dtype

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        coords = coords.to(self.dtype)
        model = self.model
        if len(model.nets) == 1:
            return model.window_forward(0, coords)
        window = model.window_of(coords[:, 0])[:, None]
        out = model.window_forward(0, coords)
        for k in range(1, len(model.nets)):
            out = torch.where(window == k, model.window_forward(k, coords), out)
        return out


class EulerianCall(nn.Module):
    """An LPINN's solution ``u [nt, nx]`` (float64) on the Eulerian grid ``t [nt] x x [nx]``.

    Parameters
    ----------
    model
        The LPINN.
    lower, length
        Start and period of the spatial domain.
    particles
        Labels ``x0_j = lower + j length / particles`` advanced along the characteristics.
    """

    def __init__(self, model: LPINN, lower: float, length: float, particles: int) -> None:
        super().__init__()
        self.model = model
        self.dtype = next(model.parameters()).dtype
        self.lower, self.length = float(lower), float(length)
        labels = lower + length * torch.arange(particles, dtype=torch.float64) / particles
        self.register_buffer("labels", labels.to(self.dtype), persistent=False)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        fields = self.model.grid_fields(t.to(self.dtype), self.labels)
        period = self.length
        # np.interp(x, lower + mod(x_L - lower, L), u, period=L), in float64 as to_eulerian does it
        positions = torch.remainder(self.lower + torch.remainder(fields.x_l.double() - self.lower, period), period)
        positions, order = torch.sort(positions, dim=1)
        values = torch.gather(fields.u.double(), 1, order)
        positions = torch.cat((positions[:, -1:] - period, positions, positions[:, :1] + period), dim=1)
        values = torch.cat((values[:, -1:], values, values[:, :1]), dim=1)
        query = torch.remainder(x.double(), period).unsqueeze(0).expand(positions.shape[0], -1).contiguous()
        right = torch.searchsorted(positions, query, right=True).clamp(1, positions.shape[1] - 1)
        x_a, x_b = torch.gather(positions, 1, right - 1), torch.gather(positions, 1, right)
        u_a, u_b = torch.gather(values, 1, right - 1), torch.gather(values, 1, right)
        gap = x_b - x_a
        slope = (u_b - u_a) / torch.where(gap > 0, gap, torch.ones_like(gap))
        return u_a + slope * (query - x_a)


def particles_of(config: PhysicsRunConfig) -> int:
    """Labels an exported LPINN advances: the run's ``evaluation.particles`` or four per evaluation point."""
    return config.evaluation.particles or 4 * config.evaluation.n_space


def example_inputs(method: str, spec: PDESpec, points: int = 7, seed: int = 0,
                   dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """Random inputs in the run's domain: ``(coords [points, 1 + d],)`` in ``dtype`` (the network's: a
    ``torch.export`` program takes that dtype only) or LPINN's float64 ``(t [points], x [points + 2])``.

    At least 2 points per axis: ``torch.export`` specialises sizes 0 and 1.
    """
    generator = torch.Generator().manual_seed(seed)
    lower = torch.tensor((0.0, *spec.lower), dtype=torch.float64)
    upper = torch.tensor((spec.t_end, *spec.upper), dtype=torch.float64)
    if method == "lpinn":
        t = spec.t_end * torch.rand(points, generator=generator, dtype=torch.float64)
        x = lower[1] + (upper[1] - lower[1]) * torch.rand(points + 2, generator=generator, dtype=torch.float64)
        return t, x
    coords = lower + (upper - lower) * torch.rand(points, len(lower), generator=generator, dtype=torch.float64)
    return (coords.to(dtype),)


def exported_call(model: nn.Module, spec: PDESpec, config: PhysicsRunConfig) -> nn.Module:
    """The module an exported program computes (see the module docstring), in eval mode."""
    if config.method == "lpinn":
        return EulerianCall(model, spec.lower[0], spec.upper[0] - spec.lower[0], particles_of(config)).eval()
    return PointwiseCall(model).eval()


def physics_protocol(config: PhysicsRunConfig, spec: PDESpec,
                     model: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """The program's metadata: ``(text lines, JSON payload)`` for :func:`protocol_extra_files`.

    Keys: ``kind`` (``pointwise`` or ``eulerian-grid``), ``method``, ``pde`` (the name; the JSON has
    the whole specification), ``coordinates`` (input order), ``lower`` / ``upper`` (bounds of each
    coordinate, time first: ``[0, t_end]`` then the spatial domain), ``periodic`` (per coordinate),
    ``outputs`` (output columns), ``observables`` (what the reference solution compares; the
    Navier-Stokes vorticity is a derivative of the outputs), ``dtype`` and, for LPINN,
    ``particles``. ``input_scaling`` says how the program maps each coordinate before the network.
    """
    coordinates = ("t", "x", "y")[: 1 + spec.space_dim]
    lower, upper = (0.0, *spec.lower), (spec.t_end, *spec.upper)
    lpinn = config.method == "lpinn"
    network = model.state.config if lpinn else model.config
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    scaling = [f"fourier features of period {hi - lo:g} ({network.fourier_modes} harmonics)" if periodic
               else f"2 (c - {lo:g}) / ({hi:g} - {lo:g}) - 1" for lo, hi, periodic in
               zip(network.lower, network.upper, network.periodic)]
    windows = getattr(network, "windows", 1)
    if windows > 1:
        scaling[0] += f", per time window ({windows} windows of length {spec.t_end / windows:g})"
    lines = {"kind": "eulerian-grid" if lpinn else "pointwise", "method": config.method, "pde": spec.name,
             "signature": "forward(t, x)" if lpinn else "forward(coords)",
             "coordinates": " ".join(coordinates), "lower": " ".join(f"{v:.17g}" for v in lower),
             "upper": " ".join(f"{v:.17g}" for v in upper),
             "periodic": " ".join(str(int(p)) for p in (False, *(True,) * spec.space_dim)),
             "outputs": "u" if lpinn else " ".join(spec.fields), "observables": " ".join(spec.observable_names),
             "dtype": "float64" if lpinn else dtype, "particles": particles_of(config) if lpinn else None}
    shapes = ({"t": "[nt]", "x": "[nx]", "u": "[nt, nx]"} if lpinn else
              {"coords": f"[N, {len(coordinates)}]", "output": f"[N, {len(spec.fields)}]"})
    payload = {**{k: v for k, v in lines.items() if v is not None}, "pde": describe_pde(spec),
               "coordinates": list(coordinates), "lower": list(lower), "upper": list(upper),
               "periodic": [False, *(True,) * spec.space_dim], "outputs": lines["outputs"].split(),
               "observables": list(spec.observable_names), "shapes": shapes, "input_scaling": scaling,
               "network_dtype": dtype, "run_config": config.to_dict()}
    return lines, payload


def export_physics_run(run_dir: str | Path, fmt: Format, path: Path, checkpoint: str = "best",
                       overwrite: bool = False) -> ExportResult:
    """Export the network of a physics-informed run folder (written by ``pdeop train`` with a ``pde:`` config).

    The program is written through a staged file and kept only if, after a save / load round trip,
    it reproduces the model on random points of the domain (also at 1 and 40 points) within
    ``1e-4 * max(1, output scale)``.

    Raises
    ------
    ConfigError
        If the folder is not a physics-informed run, has no such checkpoint, its model gives
        non-finite outputs, or ``path`` exists without ``overwrite``.
    RuntimeError
        If the program differs from the finite model (a bug in the export, not in the run).
    """
    from operators.atomic_files import staged_file
    from operators.kernels import reference_kernels
    from operators.physics.evaluation import is_physics_run, load_physics_run

    if not is_physics_run(run_dir):
        raise ConfigError(f"{run_dir} is not a physics-informed run (its run_config.json has no 'pde' section)")
    config, spec, model = load_physics_run(run_dir, checkpoint)
    module = exported_call(model, spec, config)
    dtype = next(model.parameters()).dtype
    inputs = example_inputs(config.method, spec, dtype=dtype)
    checks = [example_inputs(config.method, spec, points, seed, dtype) for seed, points in ((1, 1), (2, 40))]
    with torch.no_grad():
        scale = check_outputs_finite(module(*inputs), run_dir / checkpoint)
    lines, payload = physics_protocol(config, spec, model)
    axes = tuple({0: torch.export.Dim(f"points_{name}", min=1, max=2**24)} for name in ("t", "x")[: len(inputs)])
    with staged_file(path, overwrite) as staged, torch.no_grad(), reference_kernels():
        program = save_program(module, inputs, fmt, staged, axes, protocol_extra_files(lines, payload))
        error = max(float((program(*args) - module(*args)).abs().max()) for args in (inputs, *checks))
        check_program_error(error, scale)
    if config.method == "lpinn":
        return ExportResult("forward(t, x)", f"t: [nt], x: [nx] -> u: [nt, nx] ({lines['particles']} particles)",
                            error)
    width = 1 + spec.space_dim
    return ExportResult("forward(coords)", f"coords: [N, {width}] ({', '.join(lines['coordinates'].split())}) "
                        f"-> [N, {len(spec.fields)}] ({', '.join(spec.fields)})", error)
