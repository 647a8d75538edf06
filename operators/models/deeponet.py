"""DeepONet (Lu et al. 2021): ``G(u)(y)_k = sum_i b_{k,i}(u) t_{k,i}(y) + c_k``.

The branch net reads the input function at fixed sensors (an MLP on the flattened sensor values,
or, for inputs on a grid, a strided CNN with global average pooling); the trunk net reads query
coordinates. Each of the ``out_channels`` outputs has its own ``basis`` branch and trunk features
and its own bias ``c_k``. Queries can be anywhere: a shared set of points, per-sample points, or a
regular grid (:meth:`DeepONet.on_grid`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

from operators.layers.positional import regular_grid
from operators.layers.activations import ACTIVATIONS, ActivationName
from operators.registry import register_model
from pde_data.config import check
from solvers.errors import ConfigError

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


@dataclasses.dataclass(frozen=True)
class DeepONetConfig:
    """Settings of a DeepONet.

    Parameters
    ----------
    sensor_shape
        Grid of the sensors, e.g. ``(64, 64)``; the branch reads ``[B, in_channels, *sensor_shape]``.
    in_channels, out_channels
        Channels of the input function and number of output functions.
    coord_dim
        Dimension of the query points (default: ``len(sensor_shape)``; set it when the output lives
        in another space, e.g. space-time).
    branch
        ``"mlp"`` (flattened sensor values; tied to ``sensor_shape``) or ``"conv"`` (strided CNN with
        global pooling; any input grid).
    branch_width, branch_layers
        Hidden size and number of hidden layers of the branch MLP (for ``conv``: channels of the
        first convolution, doubled at each of the ``branch_layers`` stride-2 convolutions).
    trunk_width, trunk_layers
        Hidden size and number of hidden layers of the trunk MLP.
    basis
        Number of basis functions per output.
    activation
        Nonlinearity of both nets.
    grid_endpoint
        Grid convention of :meth:`DeepONet.on_grid`: False for ``x_i = i / n`` (periodic data),
        True for ``x_i = i / (n - 1)`` (vertex grids such as Darcy's).
    """

    sensor_shape: tuple[int, ...]
    in_channels: int = 1
    out_channels: int = 1
    coord_dim: int = 0
    branch: Literal["mlp", "conv"] = "mlp"
    branch_width: int = 128
    branch_layers: int = 2
    trunk_width: int = 128
    trunk_layers: int = 3
    basis: int = 64
    activation: ActivationName = "gelu"
    grid_endpoint: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensor_shape", tuple(self.sensor_shape))
        check(len(self.sensor_shape) >= 1 and all(n >= 1 for n in self.sensor_shape),
              f"sensor_shape must list positive grid sizes (got {list(self.sensor_shape)})")
        check(self.branch == "mlp" or 1 <= len(self.sensor_shape) <= 3,
              f"a conv branch needs a 1-3 dimensional sensor grid (got {list(self.sensor_shape)})")
        check(self.in_channels >= 1 and self.out_channels >= 1,
              f"in_channels and out_channels must be >= 1 (got {self.in_channels}, {self.out_channels})")
        check(self.coord_dim >= 0, f"coord_dim must be >= 0 (got {self.coord_dim})")
        for name in ("branch_width", "trunk_width", "basis"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("branch_layers", "trunk_layers"):
            check(getattr(self, name) >= 0, f"{name} must be >= 0 (got {getattr(self, name)})")

    @property
    def query_dim(self) -> int:
        """Dimension of the query points."""
        return self.coord_dim or len(self.sensor_shape)


class _MLP(nn.Module):
    """``n_hidden`` hidden layers of ``width`` with activations; ``last_activation`` on the output too."""

    def __init__(self, sizes: Sequence[int], activation: Callable[[torch.Tensor], torch.Tensor],
                 last_activation: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = activation
        self.last_activation = last_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last or self.last_activation:
                x = self.activation(x)
        return x


class _ConvBranch(nn.Module):
    """Stride-2 convolutions, global average pooling and a linear map to the basis coefficients."""

    def __init__(self, config: DeepONetConfig, n_out: int, activation: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        d = len(config.sensor_shape)
        channels = [config.in_channels] + [config.branch_width * 2 ** i for i in range(max(config.branch_layers, 1))]
        self.convs = nn.ModuleList(
            _CONV[d](a, b, kernel_size=3, stride=2, padding=1) for a, b in zip(channels[:-1], channels[1:])
        )
        self.head = nn.Linear(channels[-1], n_out)
        self.activation = activation

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            u = self.activation(conv(u))
        return self.head(u.flatten(2).mean(dim=2))


@register_model("deeponet", DeepONetConfig)
class DeepONet(nn.Module):
    """Deep operator network (see the module docstring).

    Parameters
    ----------
    config
        A :class:`DeepONetConfig`.

    Notes
    -----
    ``forward(u, points)``: ``u`` is ``[B, in_channels, *sensor_shape]``; ``points`` is
    ``[N, query_dim]`` (shared by the batch) or ``[B, N, query_dim]``; the result is
    ``[B, out_channels, N]``. ``forward(u)`` without points evaluates on the input's own grid
    (:meth:`on_grid`), so a DeepONet trains like the grid-to-grid models.
    """

    def __init__(self, config: DeepONetConfig) -> None:
        super().__init__()
        self.config = config
        n_features = config.basis * config.out_channels
        if config.branch == "mlp":
            n_sensors = config.in_channels * math.prod(config.sensor_shape)
            sizes = [n_sensors] + [config.branch_width] * config.branch_layers + [n_features]
            self.branch = self.make_mlp(sizes, last_activation=False)
        else:
            self.branch = self.make_conv_branch(n_features)
        sizes = [config.query_dim] + [config.trunk_width] * config.trunk_layers + [n_features]
        self.trunk = self.make_mlp(sizes, last_activation=True)
        self.bias = nn.Parameter(torch.zeros(config.out_channels))

    def make_mlp(self, sizes: Sequence[int], last_activation: bool) -> nn.Module:
        """Build the branch MLP or the trunk (layer sizes ``sizes``); subclasses swap the nets here.

        The result maps ``[..., sizes[0]]`` to ``[..., sizes[-1]]``, with the activation after the
        last layer too when ``last_activation``. ``self.config`` is set when this is called.
        """
        return _MLP(sizes, ACTIVATIONS[self.config.activation], last_activation)

    def make_conv_branch(self, n_out: int) -> nn.Module:
        """Build the ``conv`` branch: ``[B, in_channels, *grid]`` to ``[B, n_out]`` on any grid."""
        return _ConvBranch(self.config, n_out, ACTIVATIONS[self.config.activation])

    def coefficients(self, u: torch.Tensor) -> torch.Tensor:
        """Branch output ``[B, out_channels, basis]`` for input functions ``u``."""
        config = self.config
        if config.branch == "mlp":
            expected = (config.in_channels, *config.sensor_shape)
            if tuple(u.shape[1:]) != expected:
                raise ConfigError(f"DeepONet's MLP branch reads inputs [B, {', '.join(map(str, expected))}], "
                                 f"got {list(u.shape)}")
            u = u.flatten(1)
        elif u.ndim != len(config.sensor_shape) + 2 or u.shape[1] != config.in_channels:
            raise ConfigError(f"DeepONet's conv branch reads [B, {config.in_channels}, *grid], got {list(u.shape)}")
        return self.branch(u).view(u.shape[0], config.out_channels, config.basis)

    def basis_functions(self, points: torch.Tensor) -> torch.Tensor:
        """Trunk output ``[..., N, out_channels, basis]`` at query points ``[..., N, query_dim]``."""
        if points.shape[-1] != self.config.query_dim:
            raise ConfigError(f"query points need {self.config.query_dim} coordinates, got {list(points.shape)}")
        t = self.trunk(points)
        return t.view(*t.shape[:-1], self.config.out_channels, self.config.basis)

    def forward(self, u: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """Evaluate ``G(u)`` at ``points`` (``[B, out_channels, N]``), or on ``u``'s grid if None."""
        if points is None:
            return self.on_grid(u, tuple(u.shape[2:]))
        b = self.coefficients(u)
        t = self.basis_functions(points.to(b.dtype))
        if points.ndim == 2:
            y = torch.einsum("bkp,nkp->bkn", b, t)
        else:
            y = torch.einsum("bkp,bnkp->bkn", b, t)
        return y + self.bias.view(1, -1, 1)

    def on_grid(self, u: torch.Tensor, sizes: Sequence[int] | None = None) -> torch.Tensor:
        """Evaluate ``G(u)`` on a regular grid (default: the sensor grid).

        Returns ``[B, out_channels, *sizes]``; coordinates follow ``config.grid_endpoint``.
        """
        sizes = tuple(self.config.sensor_shape if sizes is None else sizes)
        if len(sizes) != self.config.query_dim:
            raise ConfigError(f"a grid for {self.config.query_dim}-D queries needs {self.config.query_dim} sizes, "
                             f"got {list(sizes)}")
        grid = regular_grid(sizes, dtype=u.dtype, device=u.device, endpoint=self.config.grid_endpoint)
        points = grid.reshape(len(sizes), -1).T
        return self(u, points).view(u.shape[0], self.config.out_channels, *sizes)
