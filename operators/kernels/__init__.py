"""The hot kernels (rational activation, spectral mode mixing) and the choice of their backend.

Callers use :func:`rational` and :func:`spectral_mix`; which implementation runs (the compiled
``pdeop`` custom ops on CUDA or CPU, or the pure-PyTorch reference) is decided here.
"""

from __future__ import annotations

import torch

from operators.kernels.spectral_reference import spectral_mix_reference


def backend() -> str:
    """Name of the kernel path in use: ``"cuda"``, ``"cpp"`` or ``"torch"``."""
    return "torch"


def spectral_mix(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Channel mixing per Fourier mode; see :func:`spectral_mix_reference` for shapes."""
    return spectral_mix_reference(x, weight)


def rational(
    x: torch.Tensor,
    numerator: torch.Tensor,
    denominator: torch.Tensor,
    groups: int,
    channel_dim: int = -1,
) -> torch.Tensor:
    """Group-rational activation P(x)/Q(x); see :mod:`operators.kernels.rational_reference`."""
    from operators.kernels.rational_reference import rational_reference

    return rational_reference(x, numerator, denominator, groups, channel_dim)
