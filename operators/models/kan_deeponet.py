"""KAN-DeepONet: a DeepONet whose branch and trunk are GR-KAN networks.

Everything but the two nets is :class:`~operators.models.deeponet.DeepONet` (the basis expansion,
the output bias, queries anywhere, evaluation on grids). The trunk and an ``mlp`` branch become
:class:`~operators.layers.kan_mlp.KANMLP` stacks with the DeepONet's layer sizes; a ``conv`` branch
keeps its stride-2 3x3 convolutions but, KAN-style, puts a learnable group-rational activation in
front of each of them and one more before the global pooling. As in KAN-FNO the first rational of
each net starts as the identity and the others as GELU, so a fresh model computes what a DeepONet
with ``activation: gelu`` and the same linear weights computes, up to the rational fits' errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from operators.layers.kan_mlp import KANMLP, RationalSettings, rational_layer
from operators.models.deeponet import DeepONet, DeepONetConfig, _ConvBranch
from operators.registry import register_model


@dataclasses.dataclass(frozen=True)
class KANDeepONetConfig(DeepONetConfig, RationalSettings):
    """Settings of a KAN-DeepONet: those of :class:`DeepONetConfig` (``activation`` unused: the
    rationals replace it) plus the rational activations'
    (:class:`~operators.layers.kan_mlp.RationalSettings`: ``groups``, ``first_init``,
    ``hidden_init``, ``shared_numerator``, ``linear_init``, ``rational_lr_scale``).

    ``rational_lr_scale`` defaults to 0.1 here (1 in KAN-FNO): on the Burgers benchmark the
    rationals of the MLP branch and trunk, at the full learning rate, drive the training loss below
    the twin's but the test error above it (5 seeds: 0.030 vs DeepONet's 0.025); at a tenth of it
    the test error is the twin's (0.025). On Darcy and Navier-Stokes the scale made no measurable
    difference for KAN-DeepONet and cost KAN-FNO 10-15% (see benchmarks/kan_operators.py).
    """

    rational_lr_scale: float = dataclasses.field(default=0.1, kw_only=True)

    def __post_init__(self) -> None:
        DeepONetConfig.__post_init__(self)
        RationalSettings.__post_init__(self)


class _KANConvBranch(_ConvBranch):
    """DeepONet's conv branch with a rational in front of every convolution and before the pooling."""

    def __init__(self, config: KANDeepONetConfig, n_out: int) -> None:
        super().__init__(config, n_out, activation=None)
        channels = [conv.in_channels for conv in self.convs] + [self.convs[-1].out_channels]
        settings = config.rational_settings()
        self.rationals = nn.ModuleList(rational_layer(c, settings, first=i == 0, channel_dim=1)
                                       for i, c in enumerate(channels))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        for rational, conv in zip(self.rationals, self.convs):
            u = conv(rational(u))
        u = self.rationals[-1](u)
        return self.head(u.flatten(2).mean(dim=2))


@register_model("kan-deeponet", KANDeepONetConfig)
class KANDeepONet(DeepONet):
    """DeepONet with GR-KAN branch and trunk (see the module docstring).

    Parameters
    ----------
    config
        A :class:`KANDeepONetConfig`.

    Notes
    -----
    ``forward(u, points)`` and ``forward(u)`` behave as in :class:`DeepONet`.
    """

    def make_mlp(self, sizes: Sequence[int], last_activation: bool) -> nn.Module:
        """A channels-last GR-KAN stack with the given layer sizes (a final rational if ``last_activation``)."""
        return KANMLP(sizes, self.config.rational_settings(), channel_dim=-1, last_rational=last_activation)

    def make_conv_branch(self, n_out: int) -> nn.Module:
        """The conv branch with rationals before its convolutions and before the pooling."""
        return _KANConvBranch(self.config, n_out)
