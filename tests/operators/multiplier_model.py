"""A minimal registered model for trainer tests: a learnable Fourier multiplier (complex weights).

``y_hat(k) = sum_i W[i, o, k] x_hat_i(k)`` for the lowest ``modes`` real-FFT modes of a 1D field
(higher modes are dropped). It represents the one-step map of the periodic heat equation exactly
(``W = exp(-nu (2 pi k)^2 dt)``), so a trainer that works must drive the error to ~0, and its complex
parameters exercise the optimiser's complex handling. It is a continuous operator, so a model
trained at one grid applies unchanged on a finer one.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from operators.registry import MODELS, register_model


@dataclasses.dataclass(frozen=True)
class MultiplierConfig:
    """Channels and kept modes of :class:`FourierMultiplier`."""

    in_channels: int
    out_channels: int
    modes: int = 8
    init_scale: float = 0.1


class FourierMultiplier(nn.Module):
    """1D Fourier multiplier with complex weights ``[in, out, modes]``."""

    def __init__(self, config: MultiplierConfig) -> None:
        super().__init__()
        self.config = config
        shape = (config.in_channels, config.out_channels, config.modes)
        self.weight = nn.Parameter(config.init_scale * torch.randn(shape, dtype=torch.cfloat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        spectrum = torch.fft.rfft(x, dim=-1, norm="forward")[..., :self.config.modes]
        out = torch.einsum("bik,iok->bok", spectrum, self.weight)
        return torch.fft.irfft(out, n=n, dim=-1, norm="forward")


if "test-multiplier" not in MODELS:
    register_model("test-multiplier", MultiplierConfig)(FourierMultiplier)
