"""A simulation that advances a batch of states with a solver, an operator, or both under error control.

:class:`Simulation` keeps the window of past states every stepper reads (the operator's
``history``) so user code only asks for more states:

* ``mode="solver"``: the pdeop integrator advances every state;
* ``mode="surrogate"``: the operator advances; a step the
  :class:`~operators.simulate.indicator.ResidualIndicator` marks as unstable (non-finite, or the
  amplitude growing more than ``BLOWUP`` times in one step) is recomputed by the solver when one is
  given, and otherwise stops the simulation with a :class:`~solvers.errors.StabilityError`;
* ``mode="hybrid"``: the operator advances; every predicted step whose indicator ``eta`` exceeds
  ``tolerance`` is recomputed by the solver from the last accepted state (the solver takes over for
  that step and re-anchors the window), sample by sample.

When fewer past states are given than the operator reads, the solver makes the missing ones first.
:attr:`Simulation.counts` records how many of the returned states each stepper produced (an operator
call that makes ``step`` states past the requested count is cut there before it is checked or counted).
"""

from __future__ import annotations

from typing import Literal

import torch

from operators.simulate.indicator import ResidualIndicator
from solvers.errors import ConfigError, StabilityError

Mode = Literal["solver", "surrogate", "hybrid"]
MODES = ("solver", "surrogate", "hybrid")


class Simulation:
    """Advance ``[B, T0, *grid]`` physical states with the steppers of ``mode`` (module docstring).

    Parameters
    ----------
    initial
        ``[B, T0 >= 1, *grid]`` past states, oldest first, one ``interval`` apart.
    operator
        An :class:`~operators.simulate.operator_stepper.OperatorStepper` (modes surrogate and hybrid).
    solver
        A :class:`~operators.simulate.solver_stepper.SolverStepper` (modes solver and hybrid; optional
        fallback in surrogate mode).
    mode
        ``solver``, ``surrogate`` or ``hybrid``.
    tolerance
        Largest accepted indicator ``eta`` of a predicted step (hybrid mode; ``0 < tolerance``).
    """

    def __init__(self, initial: torch.Tensor, operator=None, solver=None, mode: Mode = "hybrid",
                 tolerance: float | None = None) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
        if mode in ("solver", "hybrid") and solver is None:
            raise ConfigError(f"mode '{mode}' needs a solver")
        if mode in ("surrogate", "hybrid") and operator is None:
            raise ConfigError(f"mode '{mode}' needs an operator")
        if mode == "hybrid" and not (tolerance is not None and tolerance > 0):
            raise ConfigError(f"tolerance must be > 0 in hybrid mode (got {tolerance!r}); it bounds the relative PDE "
                              f"residual eta of an accepted operator step (0 < eta <= 1)")
        if initial.ndim < 3 or initial.shape[1] < 1:
            raise ConfigError(f"initial states must be [batch, time >= 1, *grid] (got shape {list(initial.shape)})")
        grid = tuple(initial.shape[2:])
        for stepper in (operator, solver):
            problem = stepper.accepts(grid) if stepper is not None else None
            if problem:
                raise ConfigError(problem)
        if operator is not None and solver is not None and abs(operator.interval - solver.interval) > 1e-9 * solver.interval:
            raise ConfigError(f"the operator steps {operator.interval:g} time units, the solver {solver.interval:g}: "
                              "they do not simulate the same problem")
        self.operator, self.solver, self.mode = operator, solver, mode
        self.tolerance = tolerance
        self.indicator = ResidualIndicator(solver) if solver is not None else None
        self.states = initial
        self.counts = {"solver": 0, "operator": 0, "rejected": 0}
        self.eta: list[torch.Tensor] = []  # per operator call: [B] indicator (max over the call's kept steps)

    @property
    def interval(self) -> float:
        """Physical time between two states."""
        return (self.solver or self.operator).interval

    def advance(self, n: int) -> torch.Tensor:
        """Make ``n`` more states and return them ``[B, n, *grid]`` (they are also kept in :attr:`states`)."""
        if not (isinstance(n, int) and n >= 0):
            raise ConfigError(f"the number of states must be an integer >= 0 (got {n!r})")
        start = self.states.shape[1]
        target = start + n
        while self.states.shape[1] < target:
            if self.mode == "solver" or self.states.shape[1] < self.operator.history:
                if self.solver is None:
                    raise ConfigError(f"the operator reads {self.operator.history} past states; give that many or a "
                                      f"solver to make the missing ones")
                self._append(self.solver.advance(self.states[:, -1:]), "solver")
            else:
                self._operator_call(target - self.states.shape[1])
        return self.states[:, start:target]

    def _append(self, new: torch.Tensor, by: str) -> None:
        self.states = torch.cat([self.states, new], dim=1)
        self.counts[by] += new.shape[0] * new.shape[1]

    def _operator_call(self, wanted: int) -> None:
        """One operator call; only its first ``wanted`` states are checked, counted and kept."""
        window = self.states[:, -self.operator.history:]
        predicted = self.operator.advance(window)[:, :wanted]
        if self.indicator is None:  # surrogate mode without a solver: stop on an instability
            if not bool(torch.isfinite(predicted).all()):
                raise StabilityError(f"the operator's rollout is no longer finite after {self.states.shape[1]} states; "
                                     f"give a solver (--mode hybrid or a fallback) to continue")
            self._append(predicted, "operator")
            return
        chain = torch.cat([window[:, -1:], predicted], dim=1)
        eta = torch.stack([self.indicator(chain[:, j], chain[:, j + 1]) for j in range(predicted.shape[1])]).amax(0)
        self.eta.append(eta)
        limit = self.tolerance if self.mode == "hybrid" else float("inf")
        bad = ~(eta <= limit) if self.mode == "hybrid" else torch.isinf(eta) | torch.isnan(eta)
        if bool(bad.any()):
            rows = torch.nonzero(bad).flatten()
            redo = window[rows][:, -1:]
            for _ in range(predicted.shape[1]):
                redo = torch.cat([redo, self.solver.advance(redo[:, -1:], rows)], dim=1)
            predicted = predicted.clone()
            predicted[rows] = redo[:, 1:].to(predicted.dtype)
        replaced = int(bad.sum()) * predicted.shape[1]
        self.states = torch.cat([self.states, predicted], dim=1)
        self.counts["solver"] += replaced
        self.counts["operator"] += predicted.numel() // predicted[0, 0].numel() - replaced
        self.counts["rejected"] += int(bad.sum())
