"""LPINN network: two independent PINN networks, one for the characteristic curves x_L(x0, t) and
one for the state u(x0, t) carried along them (Mojgani, Balajewicz & Hassanzadeh 2023).

Inputs are Lagrangian coordinates ``(t, x0)``. The characteristic network predicts the displacement,
x_L = x0 + scale * net_x(t, x0), which is periodic in x0 on a periodic domain, so both networks
use the exactly periodic embedding of x0. Mapping back to the Eulerian grid is
:func:`operators.physics.lagrangian.to_eulerian`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from operators.models.pinn import PINN, PINNConfig
from operators.registry import register_model
from pde_data.config import check


@dataclasses.dataclass(frozen=True)
class LPINNConfig:
    """Settings of an LPINN (both networks share the backbone settings, not the weights).

    Parameters
    ----------
    width, depth, backbone, activation, fourier_modes
        As in :class:`~operators.models.pinn.PINNConfig`, for each of the two networks.
    lower, upper
        Bounds of ``(t, x0)``.
    periodic
        Whether x0 is periodic (Fourier-feature embedding of period ``upper[1] - lower[1]``).
    displacement_scale
        Output scale of the characteristic network, about max|speed| * T, so that the network
        output stays O(1) even for fast characteristics (c = 50 moves them 50 units).
    """

    width: int = 64
    depth: int = 4
    backbone: Literal["mlp", "modified_mlp"] = "mlp"
    activation: Literal["tanh", "sin", "gelu", "silu"] = "tanh"
    lower: tuple[float, float] = (0.0, 0.0)
    upper: tuple[float, float] = (1.0, 1.0)
    periodic: bool = True
    fourier_modes: int = 1
    displacement_scale: float = 1.0

    def __post_init__(self) -> None:
        check(self.displacement_scale > 0, f"model.displacement_scale must be > 0 (got {self.displacement_scale})")

    def network(self) -> PINNConfig:
        """Config of each of the two networks."""
        return PINNConfig(in_dim=2, out_dim=1, width=self.width, depth=self.depth, backbone=self.backbone,
                          activation=self.activation, lower=self.lower, upper=self.upper,
                          periodic=(False, self.periodic), fourier_modes=self.fourier_modes)


@register_model("lpinn", LPINNConfig)
class LPINN(nn.Module):
    """``forward((t, x0) [N, 2]) -> [N, 2]``: column 0 the characteristic x_L, column 1 the state u."""

    def __init__(self, config: LPINNConfig) -> None:
        super().__init__()
        self.config = config
        self.position = PINN(config.network())
        self.state = PINN(config.network())

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        x_l = coords[:, 1:2] + self.config.displacement_scale * self.position(coords)
        return torch.cat((x_l, self.state(coords)), dim=1)
