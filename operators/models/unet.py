"""A modern U-Net baseline (the PDEArena design of Gupta & Brandstetter 2022) in 1, 2 or 3 dimensions.

Pre-activation residual blocks with group normalisation (:class:`~operators.layers.conv_blocks.ResidualBlock`)
on every level; between levels a stride-2 convolution down, a nearest-neighbour doubling followed by a
convolution up, and the skip connection of each level concatenated on the way up::

    h = conv_in(x)
    level 0 .. L-1:  h = blocks(h); keep h; h = down(h)      (not after the coarsest level)
    middle:          h = block(block(h))
    level L-2 .. 0:  h = blocks(cat(up(h), kept))
    y = conv_out(act(norm(h)))

Level ``i`` has ``width * channel_multipliers[i]`` channels; the grid must be divisible by
``2^(L-1)`` along every axis. Every convolution pads according to the boundary (``circular`` for
periodic problems), so with circular padding the network commutes with circular shifts by multiples
of ``2^(L-1)`` cells (shifts that the stride-2 down-sampling maps to whole coarse cells).

Conditioning (optional): the last ``conditioning`` input channels are per-sample scalars broadcast
over the grid (e.g. ``data.conditioning: [L]``); instead of entering as fields, their spatial means
are embedded by a small MLP and modulate every residual block (FiLM scale and shift after the second
normalisation; zero-initialised, so training starts from the unconditioned network).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from operators.layers.activations import ACTIVATIONS, ActivationName
from operators.layers.conv_blocks import (ConvBaseline, Padding, ResidualBlock, check_conv_settings, grid_conv,
                                          group_norm)
from operators.registry import register_model
from pde_data.config import check
from solvers.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Settings of a U-Net.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input (conditioning channels included) and of the output.
    n_dim
        Spatial axes (1, 2 or 3).
    width
        Channels of the finest level.
    channel_multipliers
        Channels of each level as multiples of ``width``; its length is the number of levels.
    blocks_per_level
        Residual blocks per level, on the way down and on the way up.
    norm_groups
        Groups of every group norm (0: no normalisation); must divide every level's channels.
    padding
        Boundary handling: ``circular`` (periodic), ``zeros`` or ``reflect``.
    activation
        Activation inside the blocks.
    conditioning
        Number of trailing input channels that are per-sample scalars, used by FiLM (0: none; they
        then enter as ordinary fields, if any).
    conditioning_dim
        Size of the conditioning embedding.
    input_residual
        Predict an increment: add the last ``out_channels`` field channels of the input to the output
        (needs at least ``out_channels`` field channels).
    """

    in_channels: int
    out_channels: int
    n_dim: int = 2
    width: int = 32
    channel_multipliers: tuple[int, ...] = (1, 2, 2)
    blocks_per_level: int = 1
    norm_groups: int = 8
    padding: Padding = "circular"
    activation: ActivationName = "gelu"
    conditioning: int = 0
    conditioning_dim: int = 64
    input_residual: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_multipliers", tuple(self.channel_multipliers))
        check_conv_settings(self)
        check(len(self.channel_multipliers) >= 1 and all(m >= 1 for m in self.channel_multipliers),
              f"channel_multipliers must list positive integers (got {list(self.channel_multipliers)})")
        check(self.blocks_per_level >= 1, f"blocks_per_level must be >= 1 (got {self.blocks_per_level})")
        check(self.norm_groups >= 0, f"norm_groups must be >= 0 (got {self.norm_groups})")
        for m in self.channel_multipliers:
            check(self.norm_groups == 0 or (self.width * m) % self.norm_groups == 0,
                  f"norm_groups = {self.norm_groups} must divide every level's channels "
                  f"(width * channel_multipliers = {[self.width * k for k in self.channel_multipliers]})")

    @property
    def levels(self) -> int:
        """Number of grid levels."""
        return len(self.channel_multipliers)


@register_model("unet", UNetConfig)
class UNet(ConvBaseline):
    """Modern U-Net (see the module docstring).

    Parameters
    ----------
    config
        A :class:`UNetConfig`.

    Notes
    -----
    ``forward(x)`` maps ``[B, in_channels, *space]`` to ``[B, out_channels, *space]``; every axis of the
    grid must be divisible by ``2^(levels - 1)``. Its 3^d stencils act on grid cells, so the learned
    operator belongs to the training resolution.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = c = config
        d = c.n_dim
        embedding = self._init_conditioning()
        widths = [c.width * m for m in c.channel_multipliers]

        def block(c_in: int, c_out: int) -> ResidualBlock:
            return ResidualBlock(d, c_in, c_out, c.padding, c.norm_groups, c.activation, embedding)

        self.conv_in = grid_conv(d, c.in_channels - c.conditioning, c.width, padding=c.padding)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = c.width
        for level, channels in enumerate(widths):
            self.down.append(nn.ModuleList(block(previous if b == 0 else channels, channels)
                                           for b in range(c.blocks_per_level)))
            previous = channels
            if level < c.levels - 1:
                self.downsample.append(grid_conv(d, channels, channels, padding=c.padding, stride=2))
        self.middle = nn.ModuleList([block(widths[-1], widths[-1]), block(widths[-1], widths[-1])])
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for level in range(c.levels - 1):
            self.upsample.append(grid_conv(d, widths[level + 1], widths[level], padding=c.padding))
            self.up.append(nn.ModuleList(block(2 * widths[level] if b == 0 else widths[level], widths[level])
                                         for b in range(c.blocks_per_level)))
        self.norm_out = group_norm(c.width, c.norm_groups)
        self.conv_out = grid_conv(d, c.width, c.out_channels, padding=c.padding)
        self.activation = ACTIVATIONS[c.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[B, in_channels, *space]`` to ``[B, out_channels, *space]``."""
        fields, embedding = self._inputs(x)
        factor = 2 ** (self.config.levels - 1)
        if any(n % factor for n in fields.shape[2:]):
            raise ConfigError(f"U-Net with {self.config.levels} levels needs grid sizes divisible by {factor} "
                              f"(got {list(fields.shape[2:])})")
        h = self.conv_in(fields)
        kept = []
        for level, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, embedding)
            if level < len(self.downsample):
                kept.append(h)
                h = self.downsample[level](h)
        for blk in self.middle:
            h = blk(h, embedding)
        for level in range(len(self.up) - 1, -1, -1):
            h = self.upsample[level](F.interpolate(h, scale_factor=2.0, mode="nearest"))
            h = torch.cat((h, kept[level]), dim=1)
            for blk in self.up[level]:
                h = blk(h, embedding)
        y = self.conv_out(self.activation(self.norm_out(h)))
        return self._output(y, fields)
