"""A stack of GR-KAN layers: the Kolmogorov–Arnold replacement of a pointwise MLP.

An MLP ``sizes[0] -> ... -> sizes[-1]`` is ``L_0, act, L_1, act, ..., L_last`` with fixed activations
between its linear maps. Its GR-KAN counterpart (as in the Kolmogorov–Arnold Transformer) puts a
learnable group-rational activation *in front of* every linear map::

    R_0, L_0, R_1, L_1, ..., R_last, L_last [, R_out]

Each ``(R_i, L_i)`` pair is one :class:`~operators.layers.rational.GRKAN`. ``R_0`` starts as the
identity and the later rationals as the MLP's activation, and the linear maps start as the MLP's do
(``linear_init: mlp``), so at initialisation the stack is a draw of the MLP it replaces up to the
fit errors of the shipped rationals (< 1e-2 on [-3, 3]); ``R_out`` stands for an activation after
the last linear map (a DeepONet trunk has one).

Groups: every rational asks for ``groups`` groups; a layer whose channel count ``C`` is not a
multiple uses ``gcd(C, groups)`` groups (one group for, e.g., the 3 input channels of a 2-D FNO
lifting), so one setting serves all layers of a model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from operators.layers.rational import GRKAN, GroupRational
from pde_data.config import check
from solvers.errors import ConfigError

#: names of the shipped rational fits (see :mod:`operators.layers.rational_fit`)
RationalInit = Literal["identity", "gelu", "silu", "tanh"]
#: how the linear maps of the GR-KAN layers start (see :class:`~operators.layers.rational.GRKAN`)
LinearInit = Literal["mlp", "variance-preserving"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RationalSettings:
    """Settings of a KAN model's rational activations; KAN model configs inherit them.

    Parameters
    ----------
    groups
        Rational groups per layer (a layer whose channel count is not a multiple uses
        :func:`group_count` of them).
    first_init, hidden_init
        Shipped fits the first rational of each net and the later ones start from.
    shared_numerator
        One numerator per rational shared by its groups (denominators stay per group).
    linear_init
        ``mlp`` (default): every linear map starts as the MLP layer it replaces does, so a fresh
        KAN model is its MLP twin up to the rational fits' errors, in distribution as well;
        ``variance-preserving``: DESIGN.md section 6's init from the actual rational. Measured in
        ``benchmarks/kan_operators.py``: the variance-preserving init starts KAN-DeepONet at a
        training loss 25-40x its twin's (the branch-trunk product of two unit-variance feature
        vectors has variance ``basis``) and costs KAN-FNO / KAN-DeepONet 2.5x / 9x the test
        error on Burgers; with ``mlp`` both match their twins.
    rational_lr_scale
        The rational coefficients train at this fraction of the learning rate
        (:class:`~operators.layers.rational.GroupRational` ``lr_scale``). The high-order
        coefficients of the fits are ~1e-3, so one Adam step at a typical rate (1e-3) changes
        them by 100% and ``x^5`` terms swing by a unit at ``|x| = 3``. 1 here; the KAN models
        set their own defaults (KAN-FNO 1, KAN-DeepONet 0.1).
    """

    groups: int = 8
    first_init: RationalInit = "identity"
    hidden_init: RationalInit = "gelu"
    shared_numerator: bool = False
    linear_init: LinearInit = "mlp"
    rational_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        check(self.groups >= 1, f"groups must be an integer >= 1 (got {self.groups})")
        check(self.rational_lr_scale > 0, f"rational_lr_scale must be > 0 (got {self.rational_lr_scale})")

    def rational_settings(self) -> RationalSettings:
        """Just these settings (a config that inherits them passes itself through this)."""
        return RationalSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(RationalSettings)})


def group_count(channels: int, groups: int) -> int:
    """Groups a rational on ``channels`` channels uses when ``groups`` are asked for: ``gcd(channels, groups)``."""
    return math.gcd(int(channels), int(groups))


def rational_layer(channels: int, settings: RationalSettings, first: bool, channel_dim: int) -> GroupRational:
    """A lone rational activation on ``channels`` channels (``first``: it starts from ``first_init``)."""
    return GroupRational(channels, group_count(channels, settings.groups),
                         settings.first_init if first else settings.hidden_init, settings.shared_numerator,
                         channel_dim, settings.rational_lr_scale)


class KANMLP(nn.Module):
    """GR-KAN stack ``sizes[0] -> ... -> sizes[-1]`` (see the module docstring).

    Parameters
    ----------
    sizes
        Channel counts, at least two entries (one GR-KAN layer per consecutive pair).
    settings
        Groups, initial fits (by default the first rational starts as the identity and every later
        one as GELU, the activation of the MLPs this replaces) and numerator sharing.
    channel_dim
        ``-1`` for channels-last inputs ``[..., C]``, ``1`` for channel-first fields ``[B, C, *space]``.
    last_rational
        Apply one more rational (``hidden_init``) to the output.

    Raises
    ------
    ConfigError
        For fewer than two sizes, a non-positive size, or an unknown init name.
    """

    def __init__(self, sizes: Sequence[int], settings: RationalSettings = RationalSettings(),
                 channel_dim: int = -1, last_rational: bool = False) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ConfigError(f"a KAN MLP needs at least two positive layer sizes (got {sizes})")
        self.layers = nn.ModuleList(
            GRKAN(a, b, groups=group_count(a, settings.groups),
                  init=settings.first_init if i == 0 else settings.hidden_init,
                  shared_numerator=settings.shared_numerator, channel_dim=channel_dim,
                  linear_init=settings.linear_init, lr_scale=settings.rational_lr_scale)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        )
        if last_rational:
            self.output_rational = rational_layer(sizes[-1], settings, first=False, channel_dim=channel_dim)
        else:
            self.output_rational = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``sizes[0]`` channels to ``sizes[-1]`` along the channel dimension; other dimensions are kept."""
        for layer in self.layers:
            x = layer(x)
        if self.output_rational is not None:
            x = self.output_rational(x)
        return x

