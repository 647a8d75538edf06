"""Pointwise (1x1) channel mixing on channel-first fields ``[B, C, *space]``.

neuralop implements these as ``Conv1d(kernel_size=1)``; on CPU the oneDNN convolution's backward
dominates an FNO training step. Here a 1x1 layer is one batched matrix product per sample
(``W @ x_b`` with ``x_b`` of shape ``[C, n]``), which needs no layout change and whose backward is two
more batched products.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def pointwise_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``y[b, o, ...] = sum_i weight[o, i] x[b, i, ...] + bias[o]``.

    Parameters
    ----------
    x
        ``[B, C_in, *space]``.
    weight
        ``[C_out, C_in]``.
    bias
        ``[C_out]`` or None.

    Returns
    -------
    torch.Tensor
        ``[B, C_out, *space]``.
    """
    batch, channels = x.shape[:2]
    space = x.shape[2:]
    flat = x.reshape(batch, channels, -1)
    w = weight.expand(batch, *weight.shape)
    if bias is None:
        y = torch.bmm(w, flat)
    else:
        y = torch.baddbmm(bias.view(1, -1, 1).expand(batch, -1, 1), w, flat)
    return y.view(batch, weight.shape[0], *space)


class PointwiseLinear(nn.Module):
    """A 1x1 convolution over any number of spatial axes (``nn.Conv1d(k=1)`` initialisation).

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    bias
        Learn a per-channel bias.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        bound = 1.0 / math.sqrt(self.in_channels)
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.in_channels).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_channels).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[B, C_in, *space]`` to ``[B, C_out, *space]``."""
        return pointwise_linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"


class ChannelMLP(nn.Module):
    """Pointwise MLP ``C_in -> hidden -> ... -> C_out`` with an activation between layers.

    Parameters
    ----------
    in_channels, out_channels, hidden_channels
        Channel counts.
    n_layers
        Number of linear layers (1 means a single ``C_in -> C_out`` map).
    activation
        Applied after every layer but the last (default GELU).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, n_layers: int = 2,
                 activation: Callable[[torch.Tensor], torch.Tensor] = F.gelu) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1 (got {n_layers})")
        sizes = [in_channels] + [hidden_channels] * (n_layers - 1) + [out_channels]
        self.layers = nn.ModuleList(PointwiseLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[B, C_in, *space]`` to ``[B, C_out, *space]``."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.activation(x)
        return x
