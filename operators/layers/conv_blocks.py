"""Convolutional building blocks of the U-Net and dilated-ResNet baselines, in 1, 2 or 3 dimensions.

* :func:`grid_conv`: a ``k^d`` convolution that keeps the grid size, with the boundary handling of the
  problem (``circular`` for periodic grids, ``zeros``, ``reflect``), dilations included;
* :class:`ScalarConditioning`: turns the conditioning channels of the input (per-sample scalars such as
  the Kuramoto-Sivashinsky domain length ``L``, which the data protocol broadcasts over the grid)
  into one embedding vector per sample;
* :class:`FiLM`: the feature-wise scale and shift ``h (1 + s(e)) + b(e)`` that an embedding applies to
  a block's normalised fields (Perez et al. 2018; PDEArena's "scale-shift norm");
* :class:`ResidualBlock`: ``x + conv(act(norm(FiLM(conv(act(norm(x)))))))`` with a 1x1 shortcut when
  the channel count changes (the pre-activation block of PDEArena's modern U-Net);
* :class:`ConvBaseline` and :func:`check_conv_settings`: what the U-Net and the dilated ResNet share
  (input check, the split of the conditioning channels, the optional increment over the input).

Group normalisation uses each sample's statistics over channels of a group and the whole grid, so the
blocks do not tie a model to one grid size, and a circular shift of the input shifts every
intermediate field without changing the statistics.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from operators.layers.activations import ACTIVATIONS, ActivationName
from pde_data.config import check
from solvers.errors import ConfigError

Padding = Literal["circular", "zeros", "reflect"]

CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def grid_conv(n_dim: int, in_channels: int, out_channels: int, kernel_size: int = 3, padding: str = "circular",
              dilation: int = 1, stride: int = 1, bias: bool = True) -> nn.Module:
    """A convolution over ``n_dim`` axes that keeps the grid (``stride`` 1) or halves it (``stride`` 2).

    Parameters
    ----------
    n_dim
        Spatial axes (1 to 3).
    in_channels, out_channels
        Channel counts.
    kernel_size
        Odd kernel width.
    padding
        ``circular`` (periodic grid), ``zeros`` or ``reflect``.
    dilation
        Spacing of the kernel taps; the padding is ``dilation * (kernel_size - 1) / 2`` cells, so a
        circular convolution is exactly periodic for any dilation below the grid size.
    stride
        1, or 2 to down-sample.
    bias
        Learn a bias.
    """
    if kernel_size % 2 != 1:
        raise ConfigError(f"kernel_size must be odd (got {kernel_size})")
    return CONV[n_dim](in_channels, out_channels, kernel_size, stride=stride, padding=dilation * (kernel_size // 2),
                       dilation=dilation, padding_mode=padding, bias=bias)


def group_norm(channels: int, groups: int) -> nn.Module:
    """``GroupNorm(groups, channels)``, or the identity when ``groups`` is 0."""
    if groups == 0:
        return nn.Identity()
    if channels % groups:
        raise ConfigError(f"norm_groups = {groups} must divide every channel count of the model (got {channels})")
    return nn.GroupNorm(groups, channels)


class ScalarConditioning(nn.Module):
    """Embed the per-sample scalars carried by the last ``n_scalars`` input channels.

    The data protocol broadcasts a per-sample scalar over the grid; its spatial mean recovers it.
    The embedding is ``GELU(W2 GELU(W1 z + b1) + b2)`` with ``z`` the ``[B, n_scalars]`` scalars.

    Parameters
    ----------
    n_scalars
        Conditioning channels at the end of the input.
    dim
        Size of the embedding.
    """

    def __init__(self, n_scalars: int, dim: int) -> None:
        super().__init__()
        self.n_scalars = n_scalars
        self.net = nn.Sequential(nn.Linear(n_scalars, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU())

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split ``x`` ``[B, C, *space]`` into its fields ``[B, C - n_scalars, *space]`` and the embedding."""
        fields, scalars = x[:, :-self.n_scalars], x[:, -self.n_scalars:]
        return fields, self.net(scalars.flatten(2).mean(dim=2))


class FiLM(nn.Module):
    """Feature-wise affine modulation ``h (1 + s) + b`` with ``(s, b) = W e + c`` from an embedding ``e``.

    ``W`` and ``c`` start at zero, so an untrained model ignores the conditioning (the identity map).

    Parameters
    ----------
    embedding_dim
        Size of ``e``.
    channels
        Channels of ``h``.
    """

    def __init__(self, embedding_dim: int, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(embedding_dim, 2 * channels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Modulate ``h`` ``[B, C, *space]`` with ``embedding`` ``[B, E]``."""
        scale, shift = self.linear(embedding).unflatten(1, (2, -1)).unbind(1)
        expand = (...,) + (None,) * (h.ndim - 2)
        return h * (1 + scale[expand]) + shift[expand]


class ResidualBlock(nn.Module):
    """Pre-activation residual block with group norm and optional FiLM conditioning.

    ``y = shortcut(x) + conv2(act(FiLM(norm2(conv1(act(norm1(x)))))))``; the shortcut is the identity
    or, when the channel count changes, a 1x1 convolution.

    Parameters
    ----------
    n_dim
        Spatial axes.
    in_channels, out_channels
        Channel counts.
    padding
        Boundary handling of the convolutions.
    norm_groups
        Groups of the group norms (0: no normalisation).
    activation
        Name of the activation.
    embedding_dim
        Size of the conditioning embedding (0: no conditioning).
    """

    def __init__(self, n_dim: int, in_channels: int, out_channels: int, padding: str, norm_groups: int,
                 activation: ActivationName, embedding_dim: int = 0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, norm_groups)
        self.conv1 = grid_conv(n_dim, in_channels, out_channels, padding=padding)
        self.norm2 = group_norm(out_channels, norm_groups)
        self.film = FiLM(embedding_dim, out_channels) if embedding_dim else None
        self.conv2 = grid_conv(n_dim, out_channels, out_channels, padding=padding)
        self.shortcut = (nn.Identity() if in_channels == out_channels
                         else CONV[n_dim](in_channels, out_channels, kernel_size=1))
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Map ``[B, in_channels, *space]`` to ``[B, out_channels, *space]``."""
        h = self.conv1(self.activation(self.norm1(x)))
        h = self.norm2(h)
        if self.film is not None:
            h = self.film(h, embedding)
        return self.shortcut(x) + self.conv2(self.activation(h))


def check_conv_settings(config) -> None:
    """Checks shared by the convolutional baselines (channels, axes, conditioning, input residual)."""
    check(config.n_dim in (1, 2, 3), f"n_dim must be 1, 2 or 3 (got {config.n_dim})")
    check(config.in_channels >= 1 and config.out_channels >= 1,
          f"in_channels and out_channels must be >= 1 (got {config.in_channels}, {config.out_channels})")
    check(config.width >= 1, f"width must be >= 1 (got {config.width})")
    check(0 <= config.conditioning < config.in_channels,
          f"conditioning must count the trailing scalar input channels: 0 to in_channels - 1 = "
          f"{config.in_channels - 1} (got {config.conditioning})")
    check(config.conditioning_dim >= 1, f"conditioning_dim must be >= 1 (got {config.conditioning_dim})")
    check(not config.input_residual or config.in_channels - config.conditioning >= config.out_channels,
          f"input_residual needs at least out_channels = {config.out_channels} field input channels "
          f"(got {config.in_channels - config.conditioning})")


class ConvBaseline(nn.Module):
    """What the convolutional baselines share: the input check, the conditioning split, the residual."""

    config: Any

    def _init_conditioning(self) -> int:
        """Build the conditioning embedding (if any); returns its size (0 without conditioning)."""
        c = self.config
        self.conditioner = ScalarConditioning(c.conditioning, c.conditioning_dim) if c.conditioning else None
        return c.conditioning_dim if c.conditioning else 0

    def _inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        c = self.config
        if x.ndim != c.n_dim + 2 or x.shape[1] != c.in_channels:
            raise ConfigError(f"{type(self).__name__} expects [B, {c.in_channels}, {c.n_dim} spatial axes], "
                              f"got {list(x.shape)}")
        if self.conditioner is None:
            return x, None
        return self.conditioner.split(x)

    def _output(self, y: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        if not self.config.input_residual:
            return y
        return y + fields[:, fields.shape[1] - self.config.out_channels:]
