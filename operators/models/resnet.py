"""The dilated ResNet baseline of Stachenfeld et al. ("Learned Coarse Models for Efficient Turbulence
Simulation", ICLR 2022), in 1, 2 or 3 dimensions.

An encoder convolution lifts the input to ``width`` channels; ``n_blocks`` processor blocks follow,
each a stack of ``k^d`` convolutions with growing then shrinking dilation rates (default
``1, 2, 4, 8, 4, 2, 1``: the receptive field of one block spans 45 cells per axis at full
resolution, without any down-sampling) and a residual connection around the stack; a decoder
convolution maps back to the output channels::

    h = encoder(x)
    for each block:  h = h + conv_7(act(... act(conv_1(h)) ...))     (conv_i dilated by rate_i)
    y = decoder(h)          (+ the last input state with input_residual, as in the paper)

Every convolution pads according to the boundary (``circular`` for periodic problems); with circular
padding the network commutes exactly with every circular shift of the grid. Optional group
normalisation after each convolution, and optional FiLM conditioning on per-sample scalars (the last
``conditioning`` input channels, as in :mod:`operators.models.unet`) applied after the first
convolution of every block.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from operators.layers.activations import ACTIVATIONS, ActivationName
from operators.layers.conv_blocks import FiLM, ConvBaseline, Padding, check_conv_settings, grid_conv, group_norm
from operators.registry import register_model
from pde_data.config import check


@dataclasses.dataclass(frozen=True)
class DilatedResNetConfig:
    """Settings of a dilated ResNet.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input (conditioning channels included) and of the output.
    n_dim
        Spatial axes (1, 2 or 3).
    width
        Channels of the hidden fields (48 in the paper).
    n_blocks
        Processor blocks (4 in the paper).
    dilations
        Dilation rate of each convolution of a block.
    kernel_size
        Odd kernel width of every convolution.
    norm_groups
        Groups of a group norm after each block convolution (0, the paper's choice: none).
    padding
        Boundary handling: ``circular`` (periodic), ``zeros`` or ``reflect``.
    activation
        Activation after every block convolution but the last.
    conditioning, conditioning_dim
        Trailing per-sample scalar input channels used by FiLM, and their embedding size.
    input_residual
        Predict an increment: add the last ``out_channels`` field channels of the input.
    """

    in_channels: int
    out_channels: int
    n_dim: int = 2
    width: int = 48
    n_blocks: int = 4
    dilations: tuple[int, ...] = (1, 2, 4, 8, 4, 2, 1)
    kernel_size: int = 3
    norm_groups: int = 0
    padding: Padding = "circular"
    activation: ActivationName = "relu"
    conditioning: int = 0
    conditioning_dim: int = 64
    input_residual: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", tuple(self.dilations))
        check_conv_settings(self)
        check(self.n_blocks >= 1, f"n_blocks must be >= 1 (got {self.n_blocks})")
        check(len(self.dilations) >= 1 and all(r >= 1 for r in self.dilations),
              f"dilations must list positive integers (got {list(self.dilations)})")
        check(self.kernel_size >= 1 and self.kernel_size % 2 == 1, f"kernel_size must be odd (got {self.kernel_size})")
        check(self.norm_groups >= 0 and (self.norm_groups == 0 or self.width % self.norm_groups == 0),
              f"norm_groups must be 0 or divide width = {self.width} (got {self.norm_groups})")


class DilatedBlock(nn.Module):
    """``h + conv_n(act(... act(conv_1(h))))`` with dilated convolutions (see the module docstring)."""

    def __init__(self, config: DilatedResNetConfig, embedding_dim: int) -> None:
        super().__init__()
        c = config
        self.convs = nn.ModuleList(grid_conv(c.n_dim, c.width, c.width, c.kernel_size, c.padding, dilation=rate)
                                   for rate in c.dilations)
        self.norms = nn.ModuleList(group_norm(c.width, c.norm_groups) for _ in c.dilations)
        self.film = FiLM(embedding_dim, c.width) if embedding_dim else None
        self.activation = ACTIVATIONS[c.activation]

    def forward(self, h: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Map ``[B, width, *space]`` to the next hidden fields."""
        z = h
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            z = norm(conv(z))
            if i == 0 and self.film is not None:
                z = self.film(z, embedding)
            if i < last:
                z = self.activation(z)
        return h + z


@register_model("resnet", DilatedResNetConfig)
class DilatedResNet(ConvBaseline):
    """Dilated ResNet (see the module docstring).

    Parameters
    ----------
    config
        A :class:`DilatedResNetConfig`.

    Notes
    -----
    ``forward(x)`` maps ``[B, in_channels, *space]`` to ``[B, out_channels, *space]`` on any grid larger
    than the largest dilation. Its stencils act on grid cells, so the learned operator belongs to the
    training resolution.
    """

    def __init__(self, config: DilatedResNetConfig) -> None:
        super().__init__()
        self.config = c = config
        embedding = self._init_conditioning()
        self.encoder = grid_conv(c.n_dim, c.in_channels - c.conditioning, c.width, c.kernel_size, c.padding)
        self.blocks = nn.ModuleList(DilatedBlock(c, embedding) for _ in range(c.n_blocks))
        self.decoder = grid_conv(c.n_dim, c.width, c.out_channels, c.kernel_size, c.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[B, in_channels, *space]`` to ``[B, out_channels, *space]``."""
        fields, embedding = self._inputs(x)
        h = self.encoder(fields)
        for block in self.blocks:
            h = block(h, embedding)
        return self._output(self.decoder(h), fields)
