"""Domain padding for non-periodic problems: zero-extend the lifted fields before the Fourier layers.

The FFT treats the grid as periodic; padding each side by a fraction of the grid lets the layers
represent fields whose two ends differ (Dirichlet, Neumann or inflow boundaries). The widths scale
with the grid, so the same model runs at any resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from operators.layers.resolution_free import rounded_fraction


def padding_widths(sizes: Sequence[int], fractions: Sequence[float]) -> tuple[int, ...]:
    """Cells added on each side of each axis: ``round(fraction * n)`` (sizes may be traced or symbolic)."""
    return tuple(rounded_fraction(f, n) for f, n in zip(fractions, sizes))


def pad_domain(x: torch.Tensor, widths: Sequence[int]) -> torch.Tensor:
    """Zero-pad both ends of the last ``len(widths)`` axes of ``x`` by ``widths``."""
    flat = []
    for w in reversed(tuple(widths)):  # F.pad lists the last axis first
        flat += [w, w]
    if all(isinstance(w, int) and w == 0 for w in widths):
        return x
    return F.pad(x, flat)


def unpad_domain(x: torch.Tensor, widths: Sequence[int]) -> torch.Tensor:
    """Remove what :func:`pad_domain` added."""
    d = len(widths)
    index = [slice(None)] * (x.ndim - d) + [slice(w, x.shape[x.ndim - d + i] - w) for i, w in enumerate(widths)]
    return x[tuple(index)]
