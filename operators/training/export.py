"""Export a surrogate (model + normalisers) for use without pdeop: TorchScript or ``torch.export``.

The exported program computes one model call on physical fields, ``forward(x)`` or
``forward(x, cond)`` when the run has conditioning channels, with the normalisers built in. It is
traced at an example input of the training grid with the pure-PyTorch reference kernels; a model
whose :class:`~operators.models.grid_rule.GridRule` accepts other grids (FNO, TFNO, KAN-FNO, MgNO) is
traced in :func:`~operators.layers.resolution_free.resolution_free` mode with dynamic spatial sizes,
so the program runs at every grid the rule accepts (checked at twice the training grid too). The
program carries its protocol and normalisers as extra files (:func:`protocol_files`). It is traced
with the pure-PyTorch reference kernels
(:func:`operators.kernels.reference_kernels`), so the program holds only ATen operations and loads
with nothing but torch — the compiled ``pdeop`` custom ops would need pdeop to be imported first.
TorchScript and ``torch.export`` programs are both checked against the eager surrogate after a
save / load round trip.

:func:`export_run` writes through a staged file (:mod:`operators.atomic_files`): the program is
saved under a temporary name, reloaded and compared there, and only a program that reproduces the
model is renamed into place. A model whose outputs are not finite is refused (NaN compares false
with every tolerance, so the check is ``not error <= tolerance``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from operators.models.grid_rule import GridRule, grid_rule
from operators.training.surrogate import Surrogate
from solvers.errors import ConfigError

Format = Literal["torchscript", "torch-export"]


class ExportedCall(nn.Module):
    """One surrogate call with a plain tensor signature (what gets traced)."""

    def __init__(self, surrogate: Surrogate) -> None:
        super().__init__()
        self.surrogate = surrogate

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.surrogate(x, cond)


def example_inputs(in_channels: int, cond_channels: int, grid: tuple[int, ...], batch: int = 2,
                   seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs ``x`` (and ``cond``) of the given shape.

    The default batch is 2 because ``torch.export`` specialises sizes 0 and 1: a batch-1 example
    could not give a program with a dynamic batch axis.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, in_channels, *grid), generator=generator)
    if cond_channels == 0:
        return (x,)
    return x, torch.randn((batch, cond_channels, *grid), generator=generator)


def export_surrogate(surrogate: Surrogate, inputs: tuple[torch.Tensor, ...], fmt: Format, path: Path,
                     dynamic_grid: bool = False, extra_files: dict[str, str] | None = None,
                     check_grids: tuple[tuple[int, ...], ...] = ()) -> float:
    """Export ``surrogate`` to ``path`` and return the max abs difference of the reloaded program.

    Parameters
    ----------
    surrogate
        In eval mode.
    inputs
        Example ``(x,)`` or ``(x, cond)``.
    fmt
        ``torchscript`` (``torch.jit.trace``, load with ``torch.jit.load``) or ``torch-export``
        (``torch.export.export`` with a dynamic batch axis, load with ``torch.export.load``).
    dynamic_grid
        Trace inside :func:`operators.layers.resolution_free.resolution_free` (and, for
        ``torch-export``, with dynamic spatial sizes) so the program runs at other grid sizes.
    extra_files
        Named text files stored in the program (``torch.jit.load(..., _extra_files=...)`` /
        ``torch.export.load(..., extra_files=...)`` read them back).
    check_grids
        Further grids at which the reloaded program is compared with the model (random inputs).

    Returns
    -------
    float
        The largest difference over the example input and every grid of ``check_grids``.
    """
    import contextlib

    from operators.kernels import reference_kernels
    from operators.layers.resolution_free import resolution_free

    module = ExportedCall(surrogate.eval()).eval()
    extra_files = dict(extra_files or {})
    with torch.no_grad(), reference_kernels():
        expected = module(*inputs)
        with resolution_free() if dynamic_grid else contextlib.nullcontext():
            batch = torch.export.Dim("batch", min=1, max=4096)
            spatial = {axis: torch.export.Dim.AUTO for axis in range(2, inputs[0].ndim)} if dynamic_grid else {}
            reloaded = save_program(module, inputs, fmt, path, tuple({0: batch, **spatial} for _ in inputs),
                                    extra_files)
        error = float((reloaded(*inputs) - expected).abs().max())
        for seed, grid in enumerate(check_grids, start=1):
            others = example_inputs(inputs[0].shape[1], inputs[1].shape[1] if len(inputs) > 1 else 0, grid,
                                    batch=3, seed=seed)
            error = max(error, float((reloaded(*others) - module(*others)).abs().max()))
    return error


def save_program(module: nn.Module, inputs: tuple[torch.Tensor, ...], fmt: Format, path: Path,
                 dynamic_shapes: tuple[dict[int, Any], ...], extra_files: dict[str, str]) -> Any:
    """Trace ``module`` at ``inputs``, save it to ``path`` with ``extra_files`` and return the reloaded program.

    ``dynamic_shapes`` gives, per input, its dynamic axes for ``torch-export``
    (``torch.export.export(..., dynamic_shapes=...)``); TorchScript traces record the shape arithmetic
    of the model and ignore it. The caller holds ``torch.no_grad()`` and the kernel context.
    """
    if fmt == "torchscript":
        traced = torch.jit.trace(module, inputs, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files=extra_files)
        return torch.jit.load(str(path))
    program = torch.export.export(module, inputs, dynamic_shapes=dynamic_shapes)
    torch.export.save(program, str(path), extra_files=extra_files)
    return torch.export.load(str(path)).module()


def check_outputs_finite(output: torch.Tensor, checkpoint: Any) -> float:
    """The output scale ``max |output|`` of a model on a random input; ConfigError if not finite."""
    if not bool(torch.isfinite(output).all()):
        raise ConfigError(f"the model of {checkpoint} gives non-finite outputs on a random input; export "
                          f"refuses it (its weights diverged or are damaged)")
    return float(output.abs().max())


def check_program_error(error: float, scale: float) -> None:
    """Refuse a program whose largest difference to the model exceeds ``1e-4 * max(1, scale)`` (NaN too).

    Raises
    ------
    RuntimeError
        A bug in the export, not in the run.
    """
    tolerance = 1e-4 * max(scale, 1.0)
    if not error <= tolerance:  # NaN fails here too
        raise RuntimeError(f"the exported program differs from the model by {error:.3g} (output scale "
                           f"{scale:.3g}, tolerance {tolerance:.3g})")


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote: the program's signature, input shape and its max difference."""

    signature: str
    shape: str
    error: float


def export_run(loaded: Any, fmt: Format, path: Path, overwrite: bool = False) -> ExportResult:
    """Export a loaded run's surrogate (:func:`~operators.training.runs.load_run`) to ``path``.

    The example input has the training grid and channels. The program is kept only if its outputs
    on that input are finite and within ``1e-4 * max(1, output scale)`` of the model's.

    Raises
    ------
    ConfigError
        If the model's outputs are not finite (a diverged or damaged checkpoint), ``path`` exists
        without ``overwrite``, or it cannot be written.
    RuntimeError
        If the program differs from the finite model (a bug in the export, not in the run).
    """
    from operators.atomic_files import staged_file

    protocol = loaded.metadata["protocol"]
    grid = tuple(loaded.metadata["grid"]["shape"])
    in_channels = protocol["t_in"] if protocol["variable"] else len(protocol["inputs"])
    inputs = example_inputs(in_channels, len(protocol["conditioning"]), grid)
    with torch.no_grad():
        output = loaded.surrogate.eval()(*inputs)
    scale = check_outputs_finite(output, loaded.checkpoint)
    rule = grid_rule(loaded.surrogate.model, grid)
    checks = (tuple(2 * n for n in grid),) if rule.resolution_free else ()
    with staged_file(path, overwrite) as staged:
        error = export_surrogate(loaded.surrogate, inputs, fmt, staged, rule.resolution_free,
                                 protocol_files(loaded, rule), checks)
        check_program_error(error, scale)
    signature = "forward(x)" if len(inputs) == 1 else "forward(x, cond)"
    space = ", ".join(map(str, grid)) if not rule.resolution_free else f"*grid ({rule.describe()})"
    shape = f"x: [batch, {inputs[0].shape[1]}, {space}]"
    return ExportResult(signature, shape, error)


#: the extra files an exported program carries (read them with ``_extra_files`` / ``extra_files``)
PROTOCOL_TEXT, PROTOCOL_JSON = "pdeop_protocol.txt", "pdeop_protocol.json"


def protocol_files(loaded: Any, rule: GridRule) -> dict[str, str]:
    """The protocol (history, step, channels, grids) and the normalisers, as the program's extra files.

    ``pdeop_protocol.txt`` holds one ``key value...`` line per item for programs without JSON
    (the C++ example in ``examples/cpp_rollout``); ``pdeop_protocol.json`` holds the same plus the
    normalisers' statistics (they are also applied inside the program) and the run's metadata.
    """
    surrogate, protocol = loaded.metadata["surrogate"], loaded.metadata["protocol"]
    grid = loaded.metadata["grid"]
    lines = {"history": surrogate.get("history"), "step": surrogate.get("step"),
             "increment": int(bool(surrogate.get("increment"))), "variable": protocol.get("variable"),
             "inputs": " ".join(protocol["inputs"]), "outputs": " ".join(protocol["outputs"]),
             "conditioning": " ".join(protocol["conditioning"]), "dims": " ".join(grid["dims"]),
             "train_grid": " ".join(map(str, grid["shape"])),
             "min_grid": " ".join(map(str, rule.fixed or rule.minimum)),
             "grid_multiple": " ".join(map(str, (1,) * len(grid["shape"]) if rule.fixed else rule.multiple)),
             "resolution_free": int(rule.resolution_free), "periodic": int(bool(grid["periodic"]))}
    payload = {"protocol": protocol, "surrogate": surrogate, "grid": {k: grid[k] for k in ("dims", "shape", "periodic")},
               "grids": rule.describe(), "resolution_free": rule.resolution_free,
               "normalizers": getattr(loaded.surrogate.operator, "normalizers", None),
               "run_config": loaded.metadata.get("run_config")}
    return protocol_extra_files(lines, payload)


def protocol_extra_files(lines: dict[str, Any], payload: dict[str, Any]) -> dict[str, str]:
    """``pdeop_protocol.txt`` (one ``key value`` line per set item of ``lines``) and ``pdeop_protocol.json``."""
    import json

    text = "".join(f"{key} {value}\n" for key, value in lines.items() if value not in (None, ""))
    return {PROTOCOL_TEXT: text, PROTOCOL_JSON: json.dumps(payload, sort_keys=True, default=str)}
