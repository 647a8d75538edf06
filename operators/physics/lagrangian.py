"""LPINN: the PDE solved along characteristics, and the map back to the Eulerian grid.

With Lagrangian coordinates (t, x0), a 1-D equation u_t + c(u) u_x = nu u_xx + s(u) becomes

    d x_L / dt = c(u),        d u / dt = nu u_xx + s(u),       x_L(x0, 0) = x0,  u(x0, 0) = u0(x0)

where d/dt is at fixed x0 and u_xx is the Eulerian second derivative, obtained by the chain rule
u_x = u_x0 / x_L,x0 and u_xx = (u_x)_x0 / x_L,x0. The loss is
gamma_x ||r_x|| + gamma_u ||r_u|| + gamma_ic (||x_L(., 0) - x0|| + ||u(., 0) - u0||) with L2 (root mean
square) norms (or mean squares, ``norm="mse"``).

Limits. The map x0 -> x_L(x0, t) must stay one-to-one: where characteristics cross (a shock of
inviscid Burgers, or a steep viscous front where x_L,x0 -> 0) the Eulerian field is multivalued
and the chain rule divides by ~0. Viscous Burgers with small nu therefore compresses the particles
into the front and loses resolution there; :func:`to_eulerian` reports the smallest x_L,x0
spacing ratio so users see it. Equations whose highest derivative is above second order (KS) or
in 2-D (Navier-Stokes) are not handled here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import torch
from torch import nn

from operators.physics.pde_specs import LagrangianForm, PDESpec, gradient, partial
from pde_data.config import check


def _norm(values: torch.Tensor, kind: str) -> torch.Tensor:
    mean_square = values.square().mean()
    # the epsilon keeps the gradient of the root finite when a term is exactly zero
    return torch.sqrt(mean_square + 1e-30) if kind == "l2" else mean_square


def lagrangian_residuals(model: nn.Module, form: LagrangianForm,
                         coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals of the characteristic and state equations at Lagrangian points ``(t, x0)``.

    Returns ``(r_x, r_u)``, each ``[N]``.
    """
    coords = coords.detach().requires_grad_(True)
    out = model(coords)
    x_l, u = out[:, 0], out[:, 1]
    dx = gradient(x_l, coords)
    du = gradient(u, coords)
    r_x = dx[:, 0] - form.speed(u)
    r_u = du[:, 0] - form.source(u)
    if form.nu:
        u_x = du[:, 1] / dx[:, 1]
        r_u = r_u - form.nu * partial(u_x, coords, 1) / dx[:, 1]
    return r_x, r_u


@dataclasses.dataclass(frozen=True)
class LPINNLoss:
    """Weights and norm of the LPINN loss (see the module docstring)."""

    gamma_x: float = 1.0
    gamma_u: float = 1.0
    gamma_ic: float = 1.0
    norm: Literal["l2", "mse"] = "l2"

    def __post_init__(self) -> None:
        for name in ("gamma_x", "gamma_u", "gamma_ic"):
            check(getattr(self, name) >= 0, f"lpinn.{name} must be >= 0 (got {getattr(self, name)})")

    def __call__(self, model: nn.Module, spec: PDESpec, coords: torch.Tensor,
                 initial_x0: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms at interior Lagrangian points ``coords`` and initial positions ``initial_x0``.

        Returns ``{"loss", "characteristic", "state", "initial"}`` (the last three unweighted).
        """
        r_x, r_u = lagrangian_residuals(model, spec.lagrangian(), coords)
        start = torch.cat((torch.zeros_like(initial_x0[:, :1]), initial_x0), dim=1)
        out0 = model(start)
        ic = torch.cat((out0[:, 0] - initial_x0[:, 0], out0[:, 1] - spec.initial(initial_x0)[:, 0]))
        terms = {"characteristic": _norm(r_x, self.norm), "state": _norm(r_u, self.norm),
                 "initial": _norm(ic, self.norm)}
        terms["loss"] = (self.gamma_x * terms["characteristic"] + self.gamma_u * terms["state"]
                         + self.gamma_ic * terms["initial"])
        return terms


@torch.no_grad()
def lagrangian_state(model: nn.Module, t: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Characteristics and state on the Lagrangian grid: ``(x_L [nt, n0], u [nt, n0])``."""
    tt, xx = np.meshgrid(t, x0, indexing="ij")
    param = next(model.parameters())
    coords = torch.tensor(np.stack((tt.ravel(), xx.ravel()), axis=1), dtype=param.dtype, device=param.device)
    out = model(coords).double().cpu().numpy()
    return out[:, 0].reshape(tt.shape), out[:, 1].reshape(tt.shape)


def to_eulerian(model: nn.Module, spec: PDESpec, t: np.ndarray, x: np.ndarray,
                particles: int | None = None) -> tuple[np.ndarray, float]:
    """Map an LPINN's prediction to the Eulerian grid ``t x x``.

    At each time, ``particles`` starting points x0 (default 4 per grid point) are advanced along
    the predicted characteristics, wrapped into the periodic domain, and their predicted states
    interpolated (piecewise linearly, periodically) at ``x``.

    Returns
    -------
    (numpy.ndarray, float)
        The field ``[nt, nx]`` and the smallest ratio (x_L spacing) / (x0 spacing) between
        neighbouring particles over all times: near 0 the characteristics are crossing (a shock) and
        the map is unreliable; negative means they have crossed.
    """
    lo, hi = spec.lower[0], spec.upper[0]
    length = hi - lo
    n0 = particles or 4 * len(x)
    x0 = lo + length * np.arange(n0) / n0
    x_l, u = lagrangian_state(model, np.asarray(t, dtype=np.float64), x0)
    spacing = np.diff(np.concatenate((x_l, x_l[:, :1] + length), axis=1), axis=1) / (length / n0)
    field = np.empty((len(t), len(x)))
    for i in range(len(t)):
        field[i] = np.interp(x, lo + np.mod(x_l[i] - lo, length), u[i], period=length)
    return field, float(spacing.min()) if math.isfinite(spacing.min()) else float("nan")
