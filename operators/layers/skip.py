"""Skip connections of a Fourier block: linear (1x1), soft gating (per-channel scale) or identity."""

from __future__ import annotations

import torch
from torch import nn

from operators.layers.channel_mlp import PointwiseLinear
from solvers.errors import ConfigError


class SoftGating(nn.Module):
    """Per-channel scaling ``y = w * x`` with ``w`` initialised to one.

    Parameters
    ----------
    channels
        Number of channels.
    n_dim
        Number of spatial axes of the inputs ``[B, C, *space]``.
    """

    def __init__(self, channels: int, n_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, *(1,) * n_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale every channel of ``x`` by its weight."""
        return self.weight * x


def make_skip(kind: str, in_channels: int, out_channels: int, n_dim: int) -> nn.Module | None:
    """Build a skip connection.

    Parameters
    ----------
    kind
        ``"linear"`` (1x1 map without bias), ``"soft-gating"``, ``"identity"`` or ``"none"``.
    in_channels, out_channels
        Channel counts; gating and identity need them equal.
    n_dim
        Number of spatial axes.

    Returns
    -------
    nn.Module or None
        None for ``"none"``.
    """
    if kind == "none":
        return None
    if kind == "linear":
        return PointwiseLinear(in_channels, out_channels, bias=False)
    if kind in ("soft-gating", "identity"):
        if in_channels != out_channels:
            raise ConfigError(f"a {kind} skip needs equal channel counts (got {in_channels} -> {out_channels})")
        return SoftGating(in_channels, n_dim) if kind == "soft-gating" else nn.Identity()
    raise ConfigError(f"skip must be one of 'linear', 'soft-gating', 'identity', 'none' (got {kind!r})")
