"""MgNO: a neural operator whose layers are multigrid V-cycles over channels (He, Liu, Xu 2023).

Each layer maps a field ``f`` (the "right-hand side") to ``u`` with one V-cycle of learned
convolutions, then ``x <- act(Vcycle(x) + W x + b)``:

* level 0 starts from ``u = S f``; every further smoothing step is ``u <- u + S (f - A u)`` with
  3x3 (3^d) convolutions ``A`` (u -> f channels) and ``S`` (f -> u channels);
* going down, stride-2 convolutions restrict ``u`` (``Pi``) and ``f`` (``R``); with
  ``restrict_residual`` the residual ``f - A u`` is restricted instead of ``f``;
* going up, a stride-2 transposed convolution (kernel 4) prolongs the coarse ``u`` and adds it to the
  finer one, followed by the normalisation and optional post-smoothing.

Convolutions pad according to the boundary condition (``zeros``: Dirichlet, ``circular``: periodic,
``reflect``: Neumann-like), also in the prolongation. The default normalisation, a group norm with
one group, uses each sample's own statistics, so the model is not tied to one grid size (the
reference Navier-Stokes model's ``LayerNorm([C, 64, 64])`` is). Grids of any size work: a
prolonged field is cropped to the finer grid (odd vertex grids like 421 or 85 points).

Parameter count (reference Darcy configuration: ``MGNO_PRESETS["darcy"]``, 24 channels, 4 layers,
6 levels, pre-smoothing 1,1,1,1,1,2, one input channel, no normalisation): a layer with ``c_f``
input channels and ``c = 24`` has ``9 c c_f`` (level-0 ``S``) + per coarse level ``9 c^2`` (``Pi``)
+ ``9 c_f^2`` (``R``) + ``18 c c_f`` per further smoothing step + ``5 * 16 c^2`` (prolongations)
weights, plus ``c_f c + c`` for its 1x1 skip. Layers with ``c_f = 24``: 165,312 + 600 = 165,912 each;
the first (``c_f = 1``) 74,853 + 48 = 74,901; the projection 24: total 572,661, the count of the
reference implementation (``MgNO_DC``) in this configuration. The default ``norm="group"`` adds ``2 c`` per prolongation (960 in all).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from operators.layers.activations import ACTIVATIONS, ActivationName
from operators.models.grid_rule import GridRule
from operators.registry import register_model
from pde_data.config import check, from_mapping
from solvers.errors import ConfigError

Padding = Literal["zeros", "circular", "reflect"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@dataclasses.dataclass(frozen=True)
class MgNOConfig:
    """Settings of an MgNO.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    n_dim
        Number of spatial axes (1, 2 or 3).
    width
        Channels of ``u`` (and of ``f`` after the first layer).
    n_layers
        Number of V-cycle layers.
    levels
        Grid levels per V-cycle (each coarser level halves every axis).
    pre_smoothing, post_smoothing
        Smoothing steps per level on the way down / up: one value for every level or one per level
        (post-smoothing of the coarsest level is not used).
    restrict_residual
        Restrict ``f - A u`` instead of ``f``.
    padding
        Boundary handling of every convolution: ``zeros``, ``circular`` or ``reflect``.
    norm
        ``group`` (one group: per-sample statistics over channels and space), ``instance`` or
        ``none``; applied after each prolongation.
    activation
        Between layers.
    projection_hidden
        Hidden channels of a 2-layer output MLP; 0 for a single 1x1 map without bias.
    input_residual
        Add the input to the output (predicting an increment; needs ``in_channels == out_channels``).
    """

    in_channels: int = 1
    out_channels: int = 1
    n_dim: int = 2
    width: int = 24
    n_layers: int = 4
    levels: int = 6
    pre_smoothing: tuple[int, ...] = (1, 1, 1, 1, 1, 2)
    post_smoothing: tuple[int, ...] = (0,)
    restrict_residual: bool = False
    padding: Padding = "zeros"
    norm: Literal["group", "instance", "none"] = "group"
    activation: ActivationName = "gelu"
    projection_hidden: int = 0
    input_residual: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "pre_smoothing", tuple(self.pre_smoothing))
        object.__setattr__(self, "post_smoothing", tuple(self.post_smoothing))
        check(self.n_dim in (1, 2, 3), f"n_dim must be 1, 2 or 3 (got {self.n_dim})")
        check(self.in_channels >= 1 and self.out_channels >= 1,
              f"in_channels and out_channels must be >= 1 (got {self.in_channels}, {self.out_channels})")
        check(self.width >= 1, f"width must be >= 1 (got {self.width})")
        check(self.n_layers >= 1, f"n_layers must be >= 1 (got {self.n_layers})")
        check(self.levels >= 1, f"levels must be >= 1 (got {self.levels})")
        for name in ("pre_smoothing", "post_smoothing"):
            counts = getattr(self, name)
            check(len(counts) in (1, self.levels),
                  f"{name} must give one count or one per level ({self.levels}), got {list(counts)}")
            check(all(c >= 0 for c in counts), f"{name} counts must be >= 0 (got {list(counts)})")
        check(self.pre_per_level[0] >= 1, "pre_smoothing on the finest level must be >= 1 (it computes u = S f)")
        check(self.projection_hidden >= 0, f"projection_hidden must be >= 0 (got {self.projection_hidden})")
        check(not self.input_residual or self.in_channels == self.out_channels,
              "input_residual needs in_channels == out_channels "
              f"(got {self.in_channels} and {self.out_channels})")

    @property
    def pre_per_level(self) -> tuple[int, ...]:
        """Pre-smoothing steps for each level."""
        return self.pre_smoothing * self.levels if len(self.pre_smoothing) == 1 else self.pre_smoothing

    @property
    def post_per_level(self) -> tuple[int, ...]:
        """Post-smoothing steps for each level."""
        return self.post_smoothing * self.levels if len(self.post_smoothing) == 1 else self.post_smoothing


#: Documented presets: Darcy (Dirichlet, zero padding: the reference MgNO_DC configuration with
#: 572,661 parameters) and 2-D Navier-Stokes (periodic, circular padding, one step -> next step).
MGNO_PRESETS: dict[str, dict[str, object]] = {
    "darcy": {"in_channels": 1, "out_channels": 1, "width": 24, "n_layers": 4, "levels": 6,
              "pre_smoothing": (1, 1, 1, 1, 1, 2), "post_smoothing": (0,), "padding": "zeros",
              "norm": "none"},
    "navier-stokes": {"in_channels": 1, "out_channels": 1, "width": 24, "n_layers": 4, "levels": 5,
                      "pre_smoothing": (1, 1, 1, 1, 2), "post_smoothing": (0,), "padding": "circular",
                      "norm": "group", "projection_hidden": 64, "input_residual": True},
}


def _conv(d: int, c_in: int, c_out: int, padding: str, stride: int = 1) -> nn.Module:
    return _CONV[d](c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False, padding_mode=padding)


class Prolongation(nn.Module):
    """Stride-2 transposed convolution (kernel 4) honouring the padding mode, cropped to a given grid.

    For ``circular`` and ``reflect`` the coarse field is first padded by one cell with that mode and
    the transposed convolution runs unpadded; the window kept is the one a zero-padded transposed
    convolution (``padding=1``) would return, so the three modes differ only at the boundary.
    """

    def __init__(self, d: int, channels: int, padding: str) -> None:
        super().__init__()
        self.d = d
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(channels, channels, *(4,) * d))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def forward(self, u: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        """Prolong ``u`` ``[B, C, m_1..m_d]`` onto the grid ``size`` (about ``2 m_i`` per axis)."""
        if self.padding == "zeros":
            fine = _CONV_T[self.d](u, self.weight, stride=2, padding=1)
            start = 0
        else:
            fine = _CONV_T[self.d](F.pad(u, (1, 1) * self.d, mode=self.padding), self.weight, stride=2)
            start = 3  # one padded coarse cell is two fine cells, plus the transposed conv's padding 1
        index = (slice(None), slice(None)) + tuple(slice(start, start + n) for n in size)
        return fine[index]


class _Smoother(nn.Module):
    """``u <- u + S (f - A u)``, or ``u = S f`` when there is no ``A`` (first step on level 0)."""

    def __init__(self, d: int, c_u: int, c_f: int, padding: str, initial: bool) -> None:
        super().__init__()
        self.A = None if initial else _conv(d, c_u, c_f, padding)
        self.S = _conv(d, c_f, c_u, padding)

    def forward(self, u: torch.Tensor | None, f: torch.Tensor) -> torch.Tensor:
        if self.A is None:
            return self.S(f)
        return u + self.S(f - self.A(u))


class VCycle(nn.Module):
    """One multigrid V-cycle ``f [B, c_f, *space] -> u [B, c_u, *space]`` (see the module docstring)."""

    def __init__(self, config: MgNOConfig, c_f: int) -> None:
        super().__init__()
        d, c, pad = config.n_dim, config.width, config.padding
        self.restrict_residual = config.restrict_residual
        pre, post = config.pre_per_level, config.post_per_level
        self.pre = nn.ModuleList(
            nn.ModuleList(_Smoother(d, c, c_f, pad, initial=(level == 0 and i == 0)) for i in range(pre[level]))
            for level in range(config.levels)
        )
        self.post = nn.ModuleList(
            nn.ModuleList(_Smoother(d, c, c_f, pad, initial=False) for _ in range(post[level]))
            for level in range(config.levels - 1)
        )
        coarse = range(1, config.levels)
        self.restrict_u = nn.ModuleList(_conv(d, c, c, pad, stride=2) for _ in coarse)
        self.restrict_f = nn.ModuleList(_conv(d, c_f, c_f, pad, stride=2) for _ in coarse)
        self.residual_A = (nn.ModuleList(_conv(d, c, c_f, pad) for _ in coarse)
                           if config.restrict_residual else None)
        self.prolong = nn.ModuleList(Prolongation(d, c, pad) for _ in coarse)
        if config.norm == "none":
            self.norms = None
        else:
            groups = 1 if config.norm == "group" else c
            self.norms = nn.ModuleList(nn.GroupNorm(groups, c) for _ in coarse)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Apply the V-cycle to the right-hand side ``f``."""
        us: list[torch.Tensor] = []
        fs: list[torch.Tensor] = []
        u: torch.Tensor | None = None
        for level, smoothers in enumerate(self.pre):
            if level > 0:
                k = level - 1
                f = self.restrict_f[k](f - self.residual_A[k](u) if self.residual_A is not None else f)
                u = self.restrict_u[k](u)
            for smoother in smoothers:
                u = smoother(u, f)
            us.append(u)
            fs.append(f)
        for level in range(len(self.pre) - 2, -1, -1):
            u = us[level] + self.prolong[level](u, tuple(us[level].shape[2:]))
            if self.norms is not None:
                u = self.norms[level](u)
            for smoother in self.post[level]:
                u = smoother(u, fs[level])
        return u


@register_model("mgno", MgNOConfig)
class MgNO(nn.Module):
    """Multigrid neural operator (see the module docstring).

    Parameters
    ----------
    config
        An :class:`MgNOConfig`.

    Notes
    -----
    ``forward(x)`` maps ``[B, in_channels, *space]`` to ``[B, out_channels, *space]`` on any grid.
    Its 3x3 stencils act on grid cells, so unlike an FNO the learned operator depends on the grid
    spacing: it is meant to be used on the training resolution.
    """

    def __init__(self, config: MgNOConfig) -> None:
        super().__init__()
        self.config = config
        d, c = config.n_dim, config.width
        conv1x1 = _CONV[d]
        inputs = [config.in_channels] + [c] * (config.n_layers - 1)
        self.cycles = nn.ModuleList(VCycle(config, c_f) for c_f in inputs)
        self.skips = nn.ModuleList(conv1x1(c_f, c, kernel_size=1) for c_f in inputs)
        if config.projection_hidden:
            self.projection = nn.Sequential(conv1x1(c, config.projection_hidden, kernel_size=1), nn.GELU(),
                                            conv1x1(config.projection_hidden, config.out_channels, 1, bias=False))
        else:
            self.projection = conv1x1(c, config.out_channels, kernel_size=1, bias=False)
        self.activation = ACTIVATIONS[config.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[B, in_channels, *space]`` to ``[B, out_channels, *space]``."""
        d = self.config.n_dim
        if x.ndim != d + 2 or x.shape[1] != self.config.in_channels:
            raise ConfigError(f"MgNO expects [B, {self.config.in_channels}, {d} spatial axes], got {list(x.shape)}")
        u = x
        for cycle, skip in zip(self.cycles, self.skips):
            u = self.activation(cycle(u) + skip(u))
        y = self.projection(u)
        return y + x if self.config.input_residual else y

    def grid_rule(self, train_shape: tuple[int, ...]) -> GridRule:
        """Sizes that halve exactly down the hierarchy: multiples of ``2**(levels - 1)``.

        (Other sizes run too, cropping prolonged fields, but an exported program fixes the hierarchy's
        arithmetic to exact halving.) The stencils act on grid cells, so the accuracy off the
        training grid is the user's to judge (see the class notes).
        """
        step = 2 ** (self.config.levels - 1)
        return GridRule((step,) * self.config.n_dim, (step,) * self.config.n_dim)


def mgno_preset(name: str, **overrides: object) -> MgNOConfig:
    """Return the :class:`MgNOConfig` of preset ``name`` (``darcy`` or ``navier-stokes``) with overrides."""
    if name not in MGNO_PRESETS:
        raise ConfigError(f"unknown MgNO preset {name!r}; presets are: {', '.join(sorted(MGNO_PRESETS))}")
    return from_mapping(MgNOConfig, {**MGNO_PRESETS[name], **overrides}, where="model.")
