"""Fourier neural operators: FNO (dense spectral weights) and TFNO (Tucker-factorised weights).

The architecture is neuralop's ``FNO`` with its default options, so the two can be compared at the
same configuration (and :func:`operators.layers.neuralop_interop.fno_state_from_neuralop` copies a
neuralop model's weights into ours): optional grid channels, a pointwise lifting MLP, optional
domain padding, ``n_layers`` Fourier blocks, a pointwise projection MLP. A block computes::

    z = GELU(K x + S x)            # K: spectral convolution, S: skip (1x1 linear by default)
    y = GELU(MLP(z) + G x)         # MLP: channel MLP, G: its skip (soft gating by default)

without the GELUs in the last block.

With ``complex_data`` the fields are complex (a complex field in, a complex field out): the spectral
convolutions transform with full FFTs, and the pointwise layers act through
:class:`~operators.layers.complex_valued.ComplexValued` pairs with the GELU applied to the real and
imaginary parts, as in neuralop's FNO with ``complex_data=True``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from operators.layers.channel_mlp import ChannelMLP
from operators.layers.complex_valued import ComplexValued, complex_gelu
from operators.layers.padding import pad_domain, padding_widths, unpad_domain
from operators.layers.positional import append_grid_channels
from operators.layers.skip import make_skip
from operators.layers.spectral_conv import SpectralConv
from operators.models.grid_rule import GridRule
from operators.registry import register_model
from pde_data.config import check
from solvers.errors import ConfigError

SkipKind = Literal["linear", "soft-gating", "identity", "none"]

#: ``factory(in_channels, out_channels, hidden_channels, n_layers)`` -> a pointwise module mapping
#: ``[B, C_in, *space]`` to ``[B, C_out, *space]`` (default :class:`ChannelMLP`)
PointwiseFactory = Callable[[int, int, int, int], nn.Module]


@dataclasses.dataclass(frozen=True)
class FNOConfig:
    """Settings of an FNO.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    n_modes
        Fourier modes kept per spatial axis (one or more axes; for real data the last axis keeps
        ``m // 2 + 1`` real-FFT columns, as in neuralop).
    width
        Channels of the hidden fields.
    n_layers
        Number of Fourier blocks.
    lifting_ratio, projection_ratio
        Hidden channels of the lifting and projection MLPs, as multiples of ``width``; 0 makes the
        lifting a single linear map.
    positional_grid
        Append the grid coordinates ``x_i = i / n`` as input channels.
    channel_mlp
        Use a pointwise MLP (hidden ``channel_mlp_expansion * width``) in each block.
    channel_mlp_expansion
        Hidden size of the block MLPs relative to ``width``.
    channel_mlp_skip, skip
        Skip connections around the block MLP and around the spectral convolution.
    domain_padding
        Fraction of each axis added as zeros on both sides before the blocks (one value for all
        axes, or one per axis); 0 for periodic problems.
    factorization, rank
        Spectral weights: ``"dense"``, ``"tucker"`` or ``"cp"``, and the fraction of the dense
        parameter count kept by a factorisation.
    spectral_bias
        Learn a bias in each spectral convolution (neuralop does).
    complex_data
        Complex-valued fields (inputs, hidden fields and outputs); see the module docstring.
    """

    in_channels: int
    out_channels: int
    n_modes: tuple[int, ...]
    width: int = 32
    n_layers: int = 4
    lifting_ratio: float = 2.0
    projection_ratio: float = 2.0
    positional_grid: bool = True
    channel_mlp: bool = True
    channel_mlp_expansion: float = 0.5
    channel_mlp_skip: SkipKind = "soft-gating"
    skip: SkipKind = "linear"
    domain_padding: tuple[float, ...] = (0.0,)
    factorization: Literal["dense", "tucker", "cp"] = "dense"
    rank: float = 1.0
    spectral_bias: bool = True
    complex_data: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_modes", tuple(self.n_modes))
        object.__setattr__(self, "domain_padding", tuple(self.domain_padding))
        check(len(self.n_modes) >= 1, f"n_modes must list one mode count per spatial axis (got {list(self.n_modes)})")
        check(all(m >= 1 for m in self.n_modes), f"n_modes must be positive (got {list(self.n_modes)})")
        check(self.in_channels >= 1, f"in_channels must be >= 1 (got {self.in_channels})")
        check(self.out_channels >= 1, f"out_channels must be >= 1 (got {self.out_channels})")
        check(self.width >= 1, f"width must be >= 1 (got {self.width})")
        check(self.n_layers >= 1, f"n_layers must be >= 1 (got {self.n_layers})")
        check(self.lifting_ratio >= 0, f"lifting_ratio must be >= 0 (got {self.lifting_ratio})")
        check(self.projection_ratio > 0, f"projection_ratio must be > 0 (got {self.projection_ratio})")
        check(self.channel_mlp_expansion > 0,
              f"channel_mlp_expansion must be > 0 (got {self.channel_mlp_expansion})")
        check(len(self.domain_padding) in (1, len(self.n_modes)),
              f"domain_padding must be one fraction or one per axis ({len(self.n_modes)}), "
              f"got {list(self.domain_padding)}")
        check(all(0 <= p < 1 for p in self.domain_padding),
              f"domain_padding fractions must be in [0, 1) (got {list(self.domain_padding)})")
        check(0 < self.rank <= 1 or self.factorization == "dense",
              f"rank must be a fraction in (0, 1] for a factorised model (got {self.rank})")

    @property
    def n_dim(self) -> int:
        """Number of spatial axes."""
        return len(self.n_modes)

    @property
    def padding_fractions(self) -> tuple[float, ...]:
        """Domain padding fraction per axis."""
        if len(self.domain_padding) == 1:
            return self.domain_padding * self.n_dim
        return self.domain_padding


@dataclasses.dataclass(frozen=True)
class TFNOConfig(FNOConfig):
    """Settings of a TFNO: an FNO whose spectral weights are Tucker factorised (rank 0.1 by default)."""

    factorization: Literal["dense", "tucker", "cp"] = "tucker"
    rank: float = 0.1


class FourierBlock(nn.Module):
    """One Fourier block (see the module docstring); ``last`` drops its activations; ``pointwise``
    makes its channel MLP."""

    def __init__(self, config: FNOConfig, last: bool, pointwise: PointwiseFactory = ChannelMLP) -> None:
        super().__init__()
        width, d = config.width, config.n_dim
        self.last = last
        self.conv = SpectralConv(width, width, config.n_modes, bias=config.spectral_bias,
                                 factorization=config.factorization, rank=config.rank,
                                 complex_data=config.complex_data)
        self.activation = complex_gelu if config.complex_data else F.gelu
        self.skip = _complex_if(config, make_skip(config.skip, width, width, d))
        if config.channel_mlp:
            hidden = int(round(width * config.channel_mlp_expansion))
            self.mlp = pointwise(width, width, hidden, 2)
            self.mlp_skip = _complex_if(config, make_skip(config.channel_mlp_skip, width, width, d))
        else:
            self.mlp = None
            self.mlp_skip = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map hidden fields ``[B, width, *space]`` to the next ones."""
        z = self.conv(x, residual=self.skip(x) if self.skip is not None else None)
        if not self.last:
            z = self.activation(z)
        if self.mlp is not None:
            y = self.mlp(z)
            z = y + self.mlp_skip(x) if self.mlp_skip is not None else y
        if not self.last:
            z = self.activation(z)
        return z


def _complex_if(config: FNOConfig, module: nn.Module | None) -> nn.Module | None:
    """``module`` wrapped for complex fields when the model has ``complex_data``."""
    return ComplexValued(module) if config.complex_data and module is not None else module


@register_model("fno", FNOConfig)
class FNO(nn.Module):
    """Fourier neural operator on grids of any dimension and resolution, for real or complex fields.

    Parameters
    ----------
    config
        An :class:`FNOConfig`.

    Notes
    -----
    ``forward(x)`` maps ``[B, in_channels, n_1..n_d]`` to ``[B, out_channels, n_1..n_d]``, complex to
    complex with ``config.complex_data``.
    """

    def __init__(self, config: FNOConfig) -> None:
        super().__init__()
        self.config = config
        d, width = config.n_dim, config.width
        lift_in = config.in_channels + (d if config.positional_grid else 0)
        lift_hidden = int(config.lifting_ratio * width)
        if lift_hidden:
            self.lifting = self._pointwise(lift_in, width, lift_hidden, 2)
        else:
            self.lifting = self._pointwise(lift_in, width, width, 1)
        self.blocks = nn.ModuleList(FourierBlock(config, i == config.n_layers - 1, self._pointwise)
                                    for i in range(config.n_layers))
        self.projection = self._pointwise(width, config.out_channels, int(config.projection_ratio * width), 2)

    def _pointwise(self, in_channels: int, out_channels: int, hidden_channels: int, n_layers: int) -> nn.Module:
        """:meth:`make_pointwise`, wrapped for complex fields when the model has ``complex_data``."""
        return _complex_if(self.config, self.make_pointwise(in_channels, out_channels, hidden_channels, n_layers))

    def make_pointwise(self, in_channels: int, out_channels: int, hidden_channels: int, n_layers: int) -> nn.Module:
        """Build the pointwise MLPs (lifting, block MLPs, projection); subclasses swap them here.

        ``n_layers`` linear maps ``in -> hidden -> ... -> out``; the result maps ``[B, in, *space]``
        to ``[B, out, *space]``. ``self.config`` is set when this is called.
        """
        return ChannelMLP(in_channels, out_channels, hidden_channels, n_layers=n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[B, in_channels, *space]`` to ``[B, out_channels, *space]``."""
        d = self.config.n_dim
        if x.ndim != d + 2 or x.shape[1] != self.config.in_channels:
            raise ConfigError(f"{type(self).__name__} expects [B, {self.config.in_channels}, {d} spatial axes], "
                             f"got {list(x.shape)}")
        if x.is_complex() and not self.config.complex_data:
            raise ConfigError(f"{type(self).__name__} got a complex input; set complex_data: true in its config "
                              "for complex-valued fields")
        if self.config.positional_grid:
            x = append_grid_channels(x, d)
        x = self.lifting(x)
        widths = padding_widths(x.shape[2:], self.config.padding_fractions)
        x = pad_domain(x, widths)
        for block in self.blocks:
            x = block(x)
        x = unpad_domain(x, widths)
        return self.projection(x)

    def grid_rule(self, train_shape: tuple[int, ...]) -> GridRule:
        """Any grid on which every axis keeps all its Fourier modes (size >= the axis's mode count)."""
        return GridRule(tuple(self.config.n_modes), (1,) * self.config.n_dim)


@register_model("tfno", TFNOConfig)
class TFNO(FNO):
    """FNO with Tucker-factorised spectral weights (see :class:`TFNOConfig`)."""
