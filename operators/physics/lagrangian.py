"""LPINN: the PDE solved along characteristics, and the map back to the Eulerian grid.

With Lagrangian coordinates (t, x0), a 1-D equation u_t + c(u) u_x = nu u_xx + s(u) becomes

    d x_L / dt = c(u),        d u / dt = nu u_xx + s(u),       x_L(x0, 0) = x0,  u(x0, 0) = u0(x0)

where d/dt is at fixed x0 and u_xx is the Eulerian second derivative, obtained by the chain rule
u_x = u_x0 / x_L,x0 and u_xx = (u_x)_x0 / x_L,x0. The loss is
gamma_x ||r_x|| + gamma_u ||r_u|| + gamma_ic (||x_L(., 0) - x0|| + ||u(., 0) - u0||) with L2 (root mean
square) norms (or mean squares, ``norm="mse"``).

Limits and what we do about them. The map x0 -> x_L(x0, t) must stay one-to-one. Where
characteristics converge (a viscous Burgers shock) the exact particles never cross, but they pile
up: J = x_L,x0 decays like exp(-(Delta u)^2 t / (8 nu)) inside the shock (by t = 1 three quarters
of all particles of the Burgers benchmark sit in a front 6e-3 wide), and the chain rule divides by
J^2 ~ 0. With free characteristics (the paper's x_L = x0 + net) the barrier at J = 0 is infinitely
thin: training steps over it to the crossing, multivalued inviscid solution x_L = x0 + u0(x0) t,
whose residual -nu u0''/J^2 is small wherever J is not near 0 (measured: min spacing -15 to -46,
relative L2 1.2-2.4, and penalising J < J_min does not stop it). Two changes make Burgers work:

* monotone characteristics (:class:`operators.models.lpinn.LPINN`, ``characteristics: monotone``):
  J = n0 softmax(g) > 0 on a uniform label grid and x_L its cumulative integral, so particles are
  ordered by construction and x_L(x0, 0) = x0 exactly;
* a resolution floor in the diffusion term, u_xx = (u_x0x0 - u_x0 J_x0 / J) / (J^2 + J_min^2):
  outside the shock (J >> J_min) it is the exact chain rule; for particles compressed below J_min
  it is a strong diffusion across labels that gives them one common velocity, the shock speed
  (the discrete analogue of sticky particles), instead of a division by ~0.

Accuracy on that benchmark (issue 18): with monotone characteristics alone the LPINN was 1.15x the
plain PINN's error, lost around shock formation (the position network could not follow the particle
velocities there) and late. Causal weights in time (``causal_epsilon``) fix the early times, periodic
features of x0 up to mode 4 the late front; together (``configs/train/lpinn_burgers.yaml``) 0.098 on
three seeds against the plain PINN's 0.10-0.21 (``benchmarks/pinn_failure_modes.py``).

Equations whose highest derivative is above second order (KS) or in 2-D (Navier-Stokes) are not
handled here.
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


def lagrangian_residuals(model: nn.Module, form: LagrangianForm, coords: torch.Tensor,
                         jacobian_floor: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Residuals of the characteristic and state equations at Lagrangian points ``(t, x0)``.

    ``jacobian_floor`` > 0 divides by ``sqrt(J^2 + floor^2)`` instead of ``J = dx_L/dx0`` in the
    chain rule of the diffusion term (see :class:`LPINNLoss`).

    Returns ``(r_x, r_u, J)``, each ``[N]``.
    """
    coords = coords.detach().requires_grad_(True)
    out = model(coords)
    x_l, u = out[:, 0], out[:, 1]
    dx = gradient(x_l, coords)
    du = gradient(u, coords)
    jacobian = dx[:, 1]
    r_x = dx[:, 0] - form.speed(u)
    r_u = du[:, 0] - form.source(u)
    if form.nu:
        stretch = torch.sqrt(jacobian.square() + jacobian_floor**2) if jacobian_floor else jacobian
        u_x = du[:, 1] / stretch
        r_u = r_u - form.nu * partial(u_x, coords, 1) / stretch
    return r_x, r_u, jacobian


@dataclasses.dataclass(frozen=True)
class LPINNLoss:
    """Weights and norm of the LPINN loss (see the module docstring).

    Parameters
    ----------
    gamma_x, gamma_u, gamma_ic
        Weights of the characteristic, state and initial-condition terms.
    norm
        ``l2`` (root mean square, the paper's) or ``mse``.
    jacobian_floor
        Resolution limit ``J_min`` of the particle spacing in the diffusion term: the chain rule
        divides by ``J^2 + J_min^2`` instead of ``J^2`` (0: exact). See the module docstring.
    gamma_order
        Weight of the ordering term ``||max(J_min - J, 0)||`` for free characteristics (monotone
        ones are ordered by construction); 0 disables it.
    labels
        Label-grid size of monotone characteristics: each step's interior points give
        ``n_residual // labels`` times, and the labels are a uniform grid of one period shifted
        by a random offset.
    causal_epsilon
        Causal weighting in time of monotone characteristics' residuals (0: none): the residuals at
        the step's k-th earliest time are weighted by ``w_k = exp(-causal_epsilon * sum_{i<k} L_i)``
        (detached), L_i the mean square of both residuals at time i, as in the causal PINN.
    position_lr_scale
        Learning rate of the characteristic (position) network relative to ``training.optimizer.lr``
        (the state network keeps 1).
    focus_times, focus_fraction
        Denser times in ``focus_times = [t_a, t_b]`` (for example around shock formation): that
        fraction of each step's times is drawn uniformly in ``[t_a, t_b]`` instead of the whole
        interval (monotone characteristics; 0: uniform times).
    """

    gamma_x: float = 1.0
    gamma_u: float = 1.0
    gamma_ic: float = 1.0
    norm: Literal["l2", "mse"] = "l2"
    jacobian_floor: float = 0.0
    gamma_order: float = 0.0
    labels: int = 128
    causal_epsilon: float = 0.0
    position_lr_scale: float = 1.0
    focus_times: tuple[float, float] = (0.0, 1.0)
    focus_fraction: float = 0.0

    def __post_init__(self) -> None:
        check(0 <= self.focus_fraction <= 1, f"lpinn.focus_fraction must be in [0, 1] (got {self.focus_fraction})")
        check(len(self.focus_times) == 2 and self.focus_times[0] < self.focus_times[1],
              f"lpinn.focus_times must be [t_a, t_b] with t_a < t_b (got {list(self.focus_times)})")
        for name in ("gamma_x", "gamma_u", "gamma_ic", "jacobian_floor", "gamma_order", "causal_epsilon"):
            check(getattr(self, name) >= 0, f"lpinn.{name} must be >= 0 (got {getattr(self, name)})")
        check(self.position_lr_scale > 0, f"lpinn.position_lr_scale must be > 0 (got {self.position_lr_scale})")
        check(self.labels >= 4, f"lpinn.labels must be >= 4 (got {self.labels})")

    def __call__(self, model: nn.Module, spec: PDESpec, coords: torch.Tensor,
                 initial_x0: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms at interior Lagrangian points ``coords`` and initial positions ``initial_x0``.

        Returns ``{"loss", "characteristic", "state", "initial", "min_jacobian"}`` (the terms
        unweighted; ``"order"`` too when ``gamma_order`` is set).
        """
        monotone = _monotone(model)
        if monotone:
            r_x, r_u, jacobian = self._grid_residuals(model, spec, coords)
            ic = model.state(_at_start(initial_x0))[:, 0] - spec.initial(initial_x0)[:, 0]
        else:
            r_x, r_u, jacobian = lagrangian_residuals(model, spec.lagrangian(), coords, self.jacobian_floor)
            out0 = model(_at_start(initial_x0))
            ic = torch.cat((out0[:, 0] - initial_x0[:, 0], out0[:, 1] - spec.initial(initial_x0)[:, 0]))
        terms = {"characteristic": _norm(r_x, self.norm), "state": _norm(r_u, self.norm),
                 "initial": _norm(ic, self.norm)}
        terms["loss"] = (self.gamma_x * terms["characteristic"] + self.gamma_u * terms["state"]
                         + self.gamma_ic * terms["initial"])
        if self.gamma_order and not monotone:
            terms["order"] = _norm(torch.relu(self.jacobian_floor - jacobian), self.norm)
            terms["loss"] = terms["loss"] + self.gamma_order * terms["order"]
        terms["min_jacobian"] = jacobian.detach().min()
        return terms

    def _grid_residuals(self, model: nn.Module, spec: PDESpec,
                        coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(r_x, r_u, J)`` of monotone characteristics on the step's label grid (see ``labels``)."""
        lo, length = spec.lower[0], spec.upper[0] - spec.lower[0]
        spacing = length / self.labels
        times = coords[: max(1, coords.shape[0] // self.labels), 0]
        focused = round(self.focus_fraction * times.shape[0])
        if focused:  # the step's uniform times, mapped affinely into [t_a, t_b]
            t_a, t_b = self.focus_times  # LPINN runs start at t = 0 (one window)
            times = torch.cat((t_a + (t_b - t_a) * times[:focused] / spec.t_end, times[focused:]))
        if self.causal_epsilon:
            times = torch.sort(times).values
        offset = torch.remainder(coords[0, 1].detach() - lo, spacing)
        x0 = lo + offset + spacing * torch.arange(self.labels, dtype=coords.dtype, device=coords.device)
        fields = model.grid_fields(times, x0, derivatives=True)
        form = spec.lagrangian()
        r_x = fields.x_l_t - form.speed(fields.u)
        r_u = fields.u_t - form.source(fields.u)
        if form.nu:
            stretch = fields.jacobian.square() + self.jacobian_floor**2
            # u_xx = d/dx0 (u_x0 / J) / J = (u_x0x0 - u_x0 J_x0 / J) / J^2
            r_u = r_u - form.nu * (fields.u_x0x0 - fields.u_x0 * fields.log_jacobian_x0) / stretch
        if self.causal_epsilon:  # rows are times in increasing order; sqrt(w) on residuals = w on squares
            per_time = (r_x.square().mean(dim=1) + r_u.square().mean(dim=1)).detach()
            earlier = torch.cumsum(per_time, dim=0) - per_time
            scale = torch.exp(-0.5 * self.causal_epsilon * earlier)[:, None]
            r_x, r_u = r_x * scale, r_u * scale
        return r_x.reshape(-1), r_u.reshape(-1), fields.jacobian.reshape(-1)


def _monotone(model: nn.Module) -> bool:
    """Whether ``model`` is an LPINN with monotone characteristics (anything else is evaluated pointwise)."""
    return getattr(getattr(model, "config", None), "characteristics", "free") == "monotone"


def _at_start(x0: torch.Tensor) -> torch.Tensor:
    """Lagrangian points ``(0, x0)`` for positions ``x0 [N, 1]`` (runs start at t = 0)."""
    return torch.cat((torch.zeros_like(x0[:, :1]), x0), dim=1)


@torch.no_grad()
def lagrangian_state(model: nn.Module, t: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Characteristics and state on the Lagrangian grid: ``(x_L [nt, n0], u [nt, n0])``.

    ``x0`` must be a uniform grid of one period for monotone characteristics.
    """
    param = next(model.parameters())
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=param.dtype, device=param.device)  # noqa: E731
    if _monotone(model):
        fields = model.grid_fields(as_tensor(t), as_tensor(x0))
        return fields.x_l.double().cpu().numpy(), fields.u.double().cpu().numpy()
    tt, xx = np.meshgrid(t, x0, indexing="ij")
    out = model(as_tensor(np.stack((tt.ravel(), xx.ravel()), axis=1))).double().cpu().numpy()
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
