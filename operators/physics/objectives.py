"""The loss of one training step for each physics-informed method, and the validation loss.

* ``pinn``: residual_weight * mean(r^2) + initial_weight * mean((u(t0, x) - u0)^2)
  + boundary_weight * (periodic mismatch of u and u_x on opposite faces, when soft); with
  ``training.loss_weighting: grad_norm`` the trainer passes adaptive weights instead
  (:mod:`operators.physics.loss_weights`);
* ``causal_pinn``: the residual term becomes mean_i(w_i L_r(t_i)) over time slices
  (:mod:`operators.physics.causal`);
* ``lpinn``: :class:`operators.physics.lagrangian.LPINNLoss`.

With time windows, window k trains its own network on [t_k, t_k+1]; its initial condition is the
previous window's prediction at t_k (detached), so each window starts where the last one ended.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from operators.physics import sampling
from operators.physics.causal import causal_loss, slice_losses
from operators.physics.pde_specs import PDESpec, gradient
from operators.physics.run_config import PhysicsRunConfig


@dataclasses.dataclass
class StepLoss:
    """The differentiable loss of a step, its terms as floats, the causal weights (if any) and the
    differentiable unweighted terms the loss sums (``parts``: residual, initial, boundary)."""

    loss: torch.Tensor
    terms: dict[str, float]
    weights: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


class Objective:
    """Loss functions of one run (method, PDE, collocation sizes, weights).

    Parameters
    ----------
    config
        The run configuration.
    spec
        Its PDE specification.
    dtype, device
        Where the network lives; collocation points are cast accordingly.
    """

    def __init__(self, config: PhysicsRunConfig, spec: PDESpec, dtype: torch.dtype,
                 device: torch.device | str) -> None:
        self.config = config
        self.spec = spec
        self.dtype = dtype
        self.device = device
        self.soft_ic = config.training.initial_condition == "soft"
        self.soft_bc = config.training.boundary_condition == "soft"
        generator = sampling.step_generator(config.seed, 0, stream=1)
        self._validation = self._draw(generator, 0.0, spec.t_end, causal=False)

    def window_bounds(self, window: int) -> tuple[float, float]:
        """Time interval of window ``window``."""
        width = self.spec.t_end / self.config.training.windows
        return window * width, (window + 1) * width

    # ------------------------------------------------------------------ points
    def _cast(self, points: torch.Tensor) -> torch.Tensor:
        return points.to(dtype=self.dtype, device=self.device)

    def _draw(self, generator: torch.Generator, t0: float, t1: float, causal: bool) -> dict[str, torch.Tensor]:
        cfg, spec = self.config.training, self.spec
        if causal:
            n_slices = self.config.causal.n_slices
            interior = sampling.time_slices(spec, n_slices, cfg.n_residual // n_slices, generator, t0, t1)
        else:
            interior = sampling.interior(spec, cfg.n_residual, generator, t0, t1)
        points = {"interior": interior, "initial": sampling.initial(spec, cfg.n_initial, generator, t0)}
        if self.soft_bc and self.config.method != "lpinn":
            points["low"], points["high"] = sampling.periodic_pairs(spec, cfg.n_boundary, generator, t0, t1)
        return {k: self._cast(v) for k, v in points.items()}

    # ------------------------------------------------------------------ losses
    def fixed_weights(self) -> dict[str, float]:
        """The configured weights of the PINN loss terms (the start of adaptive weighting too)."""
        cfg = self.config.training
        return {"residual": cfg.residual_weight, "initial": cfg.initial_weight, "boundary": cfg.boundary_weight}

    def step_loss(self, model: nn.Module, step: int, window: int = 0, epsilon: float | None = None,
                  weights: dict[str, float] | None = None) -> StepLoss:
        """Loss of training step ``step`` (its points depend only on ``(seed, step)``).

        Parameters
        ----------
        model
            A PINN (methods ``pinn``/``causal_pinn``) or an LPINN.
        step
            Global step index, which seeds the collocation points.
        window
            Time window being trained.
        epsilon
            Causality parameter (method ``causal_pinn``).
        weights
            Weights of the PINN terms (default :meth:`fixed_weights`).
        """
        t0, t1 = self.window_bounds(window)
        causal = self.config.method == "causal_pinn"
        points = self._draw(sampling.step_generator(self.config.seed, step), t0, t1, causal)
        if self.config.method == "lpinn":
            terms = self.config.lpinn(model, self.spec, points["interior"], points["initial"][:, 1:])
            return StepLoss(terms["loss"], {k: float(v.detach()) for k, v in terms.items()})
        return self._pinn_loss(model, points, window, epsilon if causal else None, weights or self.fixed_weights())

    def validation_loss(self, model: nn.Module) -> float:
        """Unweighted loss on a fixed point set over the whole time interval (selects ``best/``)."""
        points = self._validation
        if self.config.method == "lpinn":  # unweighted in time, like the PINNs' validation loss
            loss = dataclasses.replace(self.config.lpinn, causal_epsilon=0.0)
            return float(loss(model, self.spec, points["interior"], points["initial"][:, 1:])["loss"].detach())
        coords = points["interior"].detach().requires_grad_(True)
        total = self.spec.residual(model(coords), coords).square().mean()
        if self.soft_ic:
            total = total + (model(points["initial"]) - self.spec.initial(points["initial"][:, 1:])).square().mean()
        if self.soft_bc:
            total = total + self._periodic_mismatch(model, points["low"], points["high"])
        return float(total.detach())

    def _pinn_loss(self, model: nn.Module, points: dict[str, torch.Tensor], window: int,
                   epsilon: float | None, weights: dict[str, float]) -> StepLoss:
        def net(coords: torch.Tensor) -> torch.Tensor:
            return model.window_forward(window, coords)

        coords = points["interior"].detach().requires_grad_(True)
        residual = self.spec.residual(net(coords), coords)
        causal = None
        if epsilon is None:
            parts = {"residual": residual.square().mean()}
        else:
            residual_loss, causal = causal_loss(slice_losses(residual, self.config.causal.n_slices), epsilon)
            parts = {"residual": residual_loss}
        if self.soft_ic or window > 0:
            start = points["initial"]
            if window == 0:
                target = self.spec.initial(start[:, 1:])
            else:
                with torch.no_grad():
                    target = model.window_forward(window - 1, start)
            parts["initial"] = (net(start) - target).square().mean()
        if self.soft_bc:
            parts["boundary"] = self._periodic_mismatch(net, points["low"], points["high"])
        loss = sum(weights[name] * part for name, part in parts.items())
        terms = {name: float(part.detach()) for name, part in parts.items()}
        terms["loss"] = float(loss.detach())
        if causal is not None:
            terms["epsilon"] = float(epsilon)
            terms["min_weight"] = float(causal.min())
        return StepLoss(loss, terms, causal, parts)

    def _periodic_mismatch(self, net, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Mean square of u(low) - u(high) and of the face-normal derivative difference."""
        low = low.detach().requires_grad_(True)
        high = high.detach().requires_grad_(True)
        out_low, out_high = net(low), net(high)
        n = low.shape[0] // self.spec.space_dim
        axis = torch.arange(low.shape[0], device=low.device) // n + 1
        total = (out_low - out_high).square().mean()
        for field in range(out_low.shape[1]):
            g_low, g_high = gradient(out_low[:, field], low), gradient(out_high[:, field], high)
            normal = (g_low - g_high).gather(1, axis[:, None])
            total = total + normal.square().mean()
        return total
