"""Export a surrogate (model + normalisers) for use without pdeop: TorchScript or ``torch.export``.

The exported program computes one model call on physical fields, ``forward(x)`` or
``forward(x, cond)`` when the run has conditioning channels, with the normalisers built in. It is
traced at an example input of the training grid with the pure-PyTorch reference kernels
(:func:`operators.kernels.reference_kernels`), so the program holds only ATen operations and loads
with nothing but torch — the compiled ``pdeop`` custom ops would need pdeop to be imported first.
TorchScript and ``torch.export`` programs are both checked against the eager surrogate after a
save / load round trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from operators.training.surrogate import Surrogate

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
    path.parent.mkdir(parents=True, exist_ok=True)
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
