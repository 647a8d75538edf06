"""LPINN network: two independent PINN networks, one for the characteristic curves x_L(x0, t) and
one for the state u(x0, t) carried along them (Mojgani, Balajewicz & Hassanzadeh 2023).

Inputs are Lagrangian coordinates ``(t, x0)``; both networks use the exactly periodic embedding of
x0 on a periodic domain. Two forms of the characteristic network:

* ``free`` (the paper's): x_L = x0 + scale * net_x(t, x0). Nothing keeps the particles ordered, and
  where characteristics converge (a Burgers shock) training drifts to the crossing, multivalued
  inviscid solution (measured: relative L2 2.39 on the Burgers benchmark).
* ``monotone`` (ours): the network gives the log-density g(t, x0) of the particle spacing and the
  displacement h of one reference particle. On a uniform periodic label grid x0_j the Jacobian
  J = dx_L/dx0 = n0 softmax_j(g) is positive with mean 1, and x_L is its cumulative trapezoid
  integral from the reference particle: x_L(x0_j) = x0_0 + scale h(t, x0_0) + sum_{i<j} (J_i +
  J_{i+1}) dx0 / 2. So x_L increases in x0 and x_L(x0 + L) = x_L(x0) + L by construction; g and h
  are multiplied by (t - t0), so x_L(x0, t0) = x0 exactly. The price: the map is defined on a
  uniform label grid (:meth:`LPINN.grid_fields`), not at scattered points.

Mapping back to the Eulerian grid is :func:`operators.physics.lagrangian.to_eulerian`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from operators.models.pinn import PINN, PINNConfig
from operators.physics.pde_specs import gradient
from operators.registry import register_model
from pde_data.config import check
from solvers.errors import ConfigError


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
    characteristics
        ``free`` or ``monotone`` (see the module docstring; ``monotone`` needs ``periodic``).
    position_width
        Width of the characteristic (position) network; 0: ``width``, like the state network.
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
    characteristics: Literal["free", "monotone"] = "free"
    position_width: int = 0

    def __post_init__(self) -> None:
        check(self.position_width >= 0, f"model.position_width must be >= 0 (got {self.position_width})")
        check(self.displacement_scale > 0, f"model.displacement_scale must be > 0 (got {self.displacement_scale})")
        check(self.characteristics == "free" or self.periodic,
              "model.characteristics: monotone needs a periodic x0 (training.boundary_condition: hard)")

    def network(self, out_dim: int = 1, width: int = 0) -> PINNConfig:
        """Config of one of the two networks (``width`` 0: the config's)."""
        return PINNConfig(in_dim=2, out_dim=out_dim, width=width or self.width, depth=self.depth, backbone=self.backbone,
                          activation=self.activation, lower=self.lower, upper=self.upper,
                          periodic=(False, self.periodic), fourier_modes=self.fourier_modes)


@dataclasses.dataclass
class GridFields:
    """Characteristics and state on a ``[nt, n0]`` Lagrangian grid (see :meth:`LPINN.grid_fields`).

    The derivative fields are None unless asked for: ``x_l_t`` (dx_L/dt at fixed x0), ``jacobian``
    (J = dx_L/dx0), ``log_jacobian_x0`` (dJ/dx0 / J), ``u_t``, ``u_x0``, ``u_x0x0``.
    """

    x_l: torch.Tensor
    u: torch.Tensor
    x_l_t: torch.Tensor | None = None
    jacobian: torch.Tensor | None = None
    log_jacobian_x0: torch.Tensor | None = None
    u_t: torch.Tensor | None = None
    u_x0: torch.Tensor | None = None
    u_x0x0: torch.Tensor | None = None


@register_model("lpinn", LPINNConfig)
class LPINN(nn.Module):
    """``forward((t, x0) [N, 2]) -> [N, 2]``: column 0 the characteristic x_L, column 1 the state u
    (``free`` characteristics); :meth:`grid_fields` on a uniform label grid (both forms)."""

    def __init__(self, config: LPINNConfig) -> None:
        super().__init__()
        self.config = config
        self.position = PINN(config.network(2 if config.characteristics == "monotone" else 1, config.position_width))
        self.state = PINN(config.network())

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        if self.config.characteristics == "monotone":
            raise ConfigError("an LPINN with monotone characteristics is evaluated on a uniform label grid "
                              "(LPINN.grid_fields), not at scattered points")
        x_l = coords[:, 1:2] + self.config.displacement_scale * self.position(coords)
        return torch.cat((x_l, self.state(coords)), dim=1)

    def grid_fields(self, t: torch.Tensor, x0: torch.Tensor, derivatives: bool = False) -> GridFields:
        """x_L and u at every ``(t_k, x0_j)``, each ``[nt, n0]``.

        Parameters
        ----------
        t
            Times ``[nt]``.
        x0
            Labels ``[n0]``: for ``monotone`` characteristics a uniform grid of one period
            (``x0_j = x0_0 + j L / n0``), which the construction integrates over.
        derivatives
            Also return the derivatives the Lagrangian residuals need (with graphs, for training;
            ``monotone`` characteristics only).
        """
        nt, n0 = t.shape[0], x0.shape[0]
        coords = torch.stack(torch.broadcast_tensors(t[:, None], x0[None, :]), dim=-1).reshape(-1, 2)
        if derivatives:
            coords = coords.detach().requires_grad_(True)
        u = self.state(coords)[:, 0]
        if self.config.characteristics == "free":
            if derivatives:
                raise ValueError("free characteristics take their derivatives at scattered points "
                                 "(operators.physics.lagrangian.lagrangian_residuals)")
            x_l = coords[:, 1] + self.config.displacement_scale * self.position(coords)[:, 0]
            fields = GridFields(x_l.view(nt, n0), u.view(nt, n0))
        else:
            fields = self._monotone(coords, u, nt, n0, derivatives)
        if derivatives:
            du = gradient(u, coords)
            fields.u_t, fields.u_x0 = du[:, 0].view(nt, n0), du[:, 1].view(nt, n0)
            fields.u_x0x0 = gradient(du[:, 1], coords)[:, 1].view(nt, n0)
        return fields

    def _monotone(self, coords: torch.Tensor, u: torch.Tensor, nt: int, n0: int, derivatives: bool) -> GridFields:
        """The monotone construction of the module docstring on the grid of ``coords``."""
        raw = self.position(coords)
        elapsed = coords[:, :1] - self.config.lower[0]
        g, h = (elapsed * raw).unbind(dim=1)
        spacing = (self.config.upper[1] - self.config.lower[1]) / n0
        scale = self.config.displacement_scale
        jacobian = n0 * torch.softmax(g.view(nt, n0), dim=1)

        def integrate(density: torch.Tensor) -> torch.Tensor:  # cumulative trapezoid from label 0
            steps = 0.5 * (density[:, :-1] + density[:, 1:]) * spacing
            return torch.cat((torch.zeros_like(density[:, :1]), torch.cumsum(steps, dim=1)), dim=1)

        labels = coords[:, 1].view(nt, n0)
        x_l = labels[:, :1] + scale * h.view(nt, n0)[:, :1] + integrate(jacobian)
        fields = GridFields(x_l, u.view(nt, n0))
        if derivatives:
            dg, dh = gradient(g, coords).view(nt, n0, 2), gradient(h, coords).view(nt, n0, 2)
            g_t = dg[..., 0]
            # d log J_j / dt = g_t,j - mean_i(J_i g_t,i): the softmax normalisation moves with t
            jacobian_t = jacobian * (g_t - (jacobian * g_t).mean(dim=1, keepdim=True))
            fields.x_l_t = scale * dh[:, :1, 0] + integrate(jacobian_t)
            fields.jacobian, fields.log_jacobian_x0 = jacobian, dg[..., 1]
        return fields
