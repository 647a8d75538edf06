"""A switch that makes the layers trace and export without fixing the grid size.

In eager mode the layers pick fast paths by grid size (a real DFT matrix instead of an FFT along
short axes, sizes read as Python ints). ``torch.jit.trace`` and ``torch.export`` would bake those
decisions, and every size they read, into the program. Inside :func:`resolution_free` the layers
instead read sizes as the tracer's symbolic values and take the size-independent path (FFTs only),
so one exported program runs at every grid size its modes fit (:mod:`operators.training.export`).
The numbers agree with the eager paths to rounding (the DFT matrix and the FFT compute the same
transform).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

_active = False


@contextlib.contextmanager
def resolution_free() -> Iterator[None]:
    """Within the block, layers take size-independent code paths (see the module docstring)."""
    global _active
    previous = _active
    _active = True
    try:
        yield
    finally:
        _active = previous


def active() -> bool:
    """Whether :func:`resolution_free` is in effect."""
    return _active


def rounded_fraction(fraction: float, size: Any) -> Any:
    """``round(fraction * size)`` (half to even) for an int, a traced size or a symbolic one.

    An int gives Python's ``round``; a size the tracer or ``torch.export`` follows keeps following it
    (no constant is baked into the program). Zero fractions give 0 without reading the size.
    """
    if fraction == 0:
        return 0
    if isinstance(size, int):
        return int(round(fraction * size))
    import torch

    if isinstance(size, torch.Tensor):  # torch.jit.trace hands sizes out as 0-d tensors
        return torch.round(size.double() * fraction).long()
    # a torch.export SymInt: floor(fraction * size + 1/2) in exact rational arithmetic, which is
    # Python's round except at exact ties (never for the even sizes and fractions of 1/10 used here)
    numerator, denominator = _ratio(fraction)
    return (2 * numerator * size + denominator) // (2 * denominator)


def _ratio(fraction: float) -> tuple[int, int]:
    """The fraction as ``numerator / denominator`` exactly (a float is a dyadic rational)."""
    numerator, denominator = float(fraction).as_integer_ratio()
    divisor = math.gcd(numerator, denominator)
    return numerator // divisor, denominator // divisor
