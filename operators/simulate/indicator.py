"""Error indicators computed from a predicted step alone (no reference solution).

:class:`ResidualIndicator` scores the step from ``u0`` to ``u1`` (an interval ``dt`` apart) by its
relative Crank-Nicolson residual

    eta = ||(u1 - u0) / dt - (F(u1) + F(u0)) / 2|| / (||(u1 - u0) / dt|| + ||(F(u1) + F(u0)) / 2||),

with ``F`` the PDE's right-hand side (:func:`operators.physics.operator_residual.tendency_function`).
By the triangle inequality ``0 <= eta <= 1``: 1 for a state that did not move although ``F`` is not
zero (persistence), ``O(dt^2)`` for the exact solution when ``dt`` resolves the dynamics, and
``inf`` for non-finite values or a state whose amplitude grew more than ``blowup`` times (an
unstable rollout). The floor of the exact solution depends on how well the stored interval resolves
the dynamics; :meth:`ResidualIndicator.__call__` on the solver's own steps measures it.
"""

from __future__ import annotations

import torch

from operators.physics.operator_residual import tendency_function

#: the ratio of max |u1| to max |u0| above which a step counts as blowing up
BLOWUP = 10.0


class ResidualIndicator:
    """Relative Crank-Nicolson residual of one step, per sample (see the module docstring).

    Parameters
    ----------
    solver
        The :class:`~operators.simulate.solver_stepper.SolverStepper` of the problem (its equation
        parameters, domain lengths and interval are used).
    blowup
        Amplitude growth per step counted as an instability.
    """

    def __init__(self, solver, blowup: float = BLOWUP) -> None:
        self.problem = solver.problem
        self.settings = solver.settings
        self.lengths = solver.lengths
        self.dt = solver.interval
        self.blowup = float(blowup)

    def __call__(self, u0: torch.Tensor, u1: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``eta`` ``[b]`` of the steps ``u0 -> u1`` (``[b, *grid]`` each; ``rows`` as in the steppers)."""
        a, b = u0.detach().to("cpu", torch.float64), u1.detach().to("cpu", torch.float64)
        finite = torch.isfinite(b.flatten(1)).all(1)
        b = torch.where(finite.view(-1, *([1] * (b.ndim - 1))), b, torch.zeros_like(b))
        pair = torch.stack([a, b], dim=1)  # [b, 2, *grid]
        tendency = tendency_function(self.problem, pair, self._grid(rows, a.shape), self._params(a.shape[1:]))
        mean = 0.5 * (tendency(pair[:, :1]) + tendency(pair[:, 1:]))[:, 0]
        change = (b - a) / self.dt
        residual = (change - mean).flatten(1).norm(dim=1)
        scale = change.flatten(1).norm(dim=1) + mean.flatten(1).norm(dim=1)
        eta = torch.where(scale > 0, residual / scale.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(scale))
        grown = b.flatten(1).abs().amax(1) > self.blowup * a.flatten(1).abs().amax(1).clamp_min(1e-300)
        return torch.where(finite & ~grown, eta, torch.full_like(eta, float("inf")))

    def _grid(self, rows: torch.Tensor | None, shape: torch.Size) -> list:
        if self.problem == "navier-stokes":
            return [1.0, 1.0]
        if self.problem == "kuramoto-sivashinsky":
            if self.lengths is not None:
                lengths = torch.as_tensor(self.lengths, dtype=torch.float64)
                return [lengths if rows is None else lengths[rows.cpu()]]
            return [float(self.settings.L[0])]
        return [1.0]

    def _params(self, grid: torch.Size) -> dict:
        if self.problem == "navier-stokes":
            from pde_data.families.navier_stokes import forcing_field

            amplitude = self.settings.forcing_amplitude
            forcing = torch.as_tensor(forcing_field(grid[0], amplitude)) if amplitude else None
            return {"viscosity": self.settings.viscosity, "forcing": forcing}
        if self.problem == "burgers":
            return {"viscosity": self.settings.viscosity}
        return {}
