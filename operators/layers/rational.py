"""Group-rational activation and the GR-KAN layer (grouped rational, then Linear / 1x1 conv).

``GroupRational`` holds the learnable coefficients of ``F(x) = P(x)/Q(x)`` (see
:mod:`operators.kernels.rational_reference` for the function, its gradients and the sign(0)
convention) and evaluates them with :func:`operators.kernels.rational`, so the compiled kernels are
used wherever they are available. ``GRKAN`` follows it with a channel-mixing linear map whose
initial weights are scaled from the actual rational so that the layer preserves the second moment
of Gaussian inputs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from operators import kernels
from operators.kernels.rational_reference import DENOMINATOR_TERMS, NUMERATOR_TERMS
from operators.layers.channel_mlp import pointwise_linear
from operators.layers.rational_fit import load_fit
from solvers.errors import ConfigError

# Gauss-Legendre nodes on each half-line [0, QUADRATURE_RANGE * std]: F is smooth on each side of
# the kink at x = 0, so splitting there makes the quadrature converge spectrally; the Gaussian tail
# beyond 12 standard deviations weighs < 1e-32.
QUADRATURE_NODES = 96
QUADRATURE_RANGE = 12.0


class GroupRational(nn.Module):
    """Learnable rational activation ``P(x)/Q(x)`` with coefficients shared within channel groups.

    Parameters
    ----------
    channels
        Number of channels ``C``.
    groups
        Number of groups ``G`` (divides ``C``); channel ``c`` belongs to group ``c // (C // G)``.
    init
        Name of the shipped fit the coefficients start from: ``"identity"``, ``"gelu"``,
        ``"silu"`` or ``"tanh"`` (see :mod:`operators.layers.rational_fit`).
    shared_numerator
        One numerator ``[6]`` for all groups instead of one per group ``[G, 6]``. The denominator
        ``[G, 4]`` is always per group.
    channel_dim
        ``-1`` for channels-last inputs ``[..., C]``, ``1`` for channels-first ``[B, C, *spatial]``.

    Raises
    ------
    ConfigError
        For a group count that does not divide ``channels``, an unknown ``init`` or a
        ``channel_dim`` other than ``-1`` and ``1``.
    """

    def __init__(
        self,
        channels: int,
        groups: int = 8,
        init: str = "gelu",
        shared_numerator: bool = False,
        channel_dim: int = -1,
    ) -> None:
        super().__init__()
        _check_layout(channels, groups, channel_dim)
        self.channels = channels
        self.groups = groups
        self.init = init
        self.shared_numerator = shared_numerator
        self.channel_dim = channel_dim
        numerator, denominator = load_fit(init)
        a = torch.tensor(numerator, dtype=torch.get_default_dtype())
        b = torch.tensor(denominator, dtype=torch.get_default_dtype())
        self.numerator = nn.Parameter(a if shared_numerator else a.repeat(groups, 1))
        self.denominator = nn.Parameter(b.repeat(groups, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the activation channel-wise; output has the shape and dtype of ``x``."""
        return kernels.rational(
            x, self.numerator.to(x.dtype), self.denominator.to(x.dtype), self.groups, self.channel_dim
        )

    def group_coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients per group, ``numerator [G, 6]`` and ``denominator [G, 4]`` (detached copies)."""
        numerator = self.numerator.detach().expand(self.groups, NUMERATOR_TERMS).clone()
        return numerator, self.denominator.detach().clone()

    def second_moment(self, input_std: float = 1.0) -> torch.Tensor:
        """``E[F_g(x)^2]`` for ``x ~ N(0, input_std^2)``, per group ``[G]``, in float64.

        Computed from the current coefficients by Gauss-Legendre quadrature on each side of 0 (where
        ``F`` has its kink), evaluating ``F`` through the same kernel as :meth:`forward`.
        """
        if not input_std > 0:
            raise ConfigError(f"input_std must be a positive number (got {input_std!r})")
        nodes, weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
        half = QUADRATURE_RANGE * input_std / 2
        right = torch.as_tensor(half * (nodes + 1.0), dtype=torch.float64)
        x = torch.cat([-right, right])
        w = torch.as_tensor(np.concatenate([weights, weights]) * half, dtype=torch.float64)
        density = torch.exp(-0.5 * (x / input_std) ** 2) / (input_std * math.sqrt(2.0 * math.pi))
        numerator, denominator = self.group_coefficients()
        with torch.no_grad():
            values = kernels.rational(
                x.unsqueeze(-1).expand(-1, self.groups).contiguous(),
                numerator.to("cpu", torch.float64),
                denominator.to("cpu", torch.float64),
                self.groups,
            )
        return (w * density) @ values.square()

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, groups={self.groups}, init={self.init!r}, "
            f"shared_numerator={self.shared_numerator}, channel_dim={self.channel_dim}"
        )


class GRKAN(nn.Module):
    """GR-KAN layer: :class:`GroupRational` on the input channels, then a linear channel map.

    Channels-last inputs ``[..., C_in]`` go through ``Linear``; channels-first inputs
    ``[B, C_in, *spatial]`` through the equivalent 1x1 convolution with the *same* weight
    ``[C_out, C_in]``, so a state dict works in either layout. The 1x1 convolution is computed as
    one batched matrix product (:func:`~operators.layers.channel_mlp.pointwise_linear`, as in FNO's
    channel MLPs): on CPU the oneDNN 1x1 convolution's backward is several times slower.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    groups, init, shared_numerator, channel_dim
        As in :class:`GroupRational`.
    bias
        Whether the linear map has a bias (initialised to zero).
    input_std
        Standard deviation assumed for the inputs when initialising the linear weight (see
        :meth:`reset_linear`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        groups: int = 8,
        init: str = "gelu",
        shared_numerator: bool = False,
        channel_dim: int = -1,
        bias: bool = True,
        input_std: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
            raise ConfigError(f"out_channels must be a positive integer (got {out_channels!r})")
        self.rational = GroupRational(in_channels, groups, init, shared_numerator, channel_dim)
        self.linear = nn.Linear(in_channels, out_channels, bias=bias)
        self.channel_dim = channel_dim
        self.reset_linear(input_std)

    def reset_linear(self, input_std: float = 1.0) -> None:
        """Variance-preserving initialisation of the linear weight from the actual rational.

        Draws ``W ~ N(0, s^2)`` with ``s^2 = Var[x] / (d_in E[F(x)^2])``, ``Var[x] = input_std^2``,
        ``x ~ N(0, input_std^2)`` and ``E[F^2]`` averaged over the groups
        (:meth:`GroupRational.second_moment`), so that ``E[y^2] = Var[x]`` for zero bias. Bias is
        set to zero.
        """
        if self.linear.weight.is_meta:  # a shape-only build (operators.registry.layout): no data to draw
            return
        moment = float(self.rational.second_moment(input_std).mean())
        std = input_std / math.sqrt(self.linear.in_features * moment)
        with torch.no_grad():
            self.linear.weight.normal_(0.0, std)
            if self.linear.bias is not None:
                self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``Linear(F(x))`` over the channel dimension; other dimensions are kept."""
        y = self.rational(x)
        weight = self.linear.weight.to(y.dtype)
        bias = None if self.linear.bias is None else self.linear.bias.to(y.dtype)
        if self.channel_dim == -1:
            return F.linear(y, weight, bias)
        return pointwise_linear(y, weight, bias)


def _check_layout(channels: int, groups: int, channel_dim: int) -> None:
    """Raise ConfigError for a channel/group/layout combination the rational layers cannot use."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ConfigError(f"channels must be a positive integer (got {channels!r})")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or channels % groups:
        raise ConfigError(f"groups must be a positive divisor of channels={channels} (got {groups!r})")
    if channel_dim not in (-1, 1):
        raise ConfigError(
            f"channel_dim must be -1 (channels-last) or 1 (channels-first) (got {channel_dim!r})"
        )
