"""Export a surrogate (model + normalisers) for use without pdeop: TorchScript or ``torch.export``.

The exported program computes one model call on physical fields, ``forward(x)`` or
``forward(x, cond)`` when the run has conditioning channels, with the normalisers built in. It is
traced at an example input of the training grid with the pure-PyTorch reference kernels
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


def export_surrogate(surrogate: Surrogate, inputs: tuple[torch.Tensor, ...], fmt: Format, path: Path) -> float:
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
    """
    from operators.kernels import reference_kernels

    module = ExportedCall(surrogate.eval()).eval()
    with torch.no_grad(), reference_kernels():
        expected = module(*inputs)
        if fmt == "torchscript":
            traced = torch.jit.trace(module, inputs, check_trace=False)
            torch.jit.save(traced, str(path))
            reloaded = torch.jit.load(str(path))
        else:
            batch = torch.export.Dim("batch", min=1, max=4096)
            shapes = tuple({0: batch} for _ in inputs)
            program = torch.export.export(module, inputs, dynamic_shapes=shapes)
            torch.export.save(program, str(path))
            reloaded = torch.export.load(str(path)).module()
        got = reloaded(*inputs)
    return float((got - expected).abs().max())


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
    if not bool(torch.isfinite(output).all()):
        raise ConfigError(f"the model of {loaded.checkpoint} gives non-finite outputs on a random input of the "
                          f"training shape; export refuses it (its weights diverged or are damaged)")
    scale = float(output.abs().max())
    tolerance = 1e-4 * max(scale, 1.0)
    with staged_file(path, overwrite) as staged:
        error = export_surrogate(loaded.surrogate, inputs, fmt, staged)
        if not error <= tolerance:  # NaN fails here too
            raise RuntimeError(f"the exported program differs from the model by {error:.3g} (output scale "
                               f"{scale:.3g}, tolerance {tolerance:.3g})")
    signature = "forward(x)" if len(inputs) == 1 else "forward(x, cond)"
    shape = "x: [batch, " + ", ".join(map(str, inputs[0].shape[1:])) + "]"
    return ExportResult(signature, shape, error)
