"""A trained operator as a stepper on physical states (same interface as the solver's stepper).

:class:`OperatorStepper` wraps a time-dependent :class:`~operators.training.surrogate.Surrogate`:
each :meth:`~OperatorStepper.advance` maps the last ``history`` states ``[B, history, *grid]`` to
the next ``step`` states, normalisers included, on the model's device, at any grid the model's
:class:`~operators.models.grid_rule.GridRule` accepts. Conditioning channels (e.g. a per-sample
domain length) are fixed per simulated sample at construction and resampled to the state's grid
when they are constant in space.
"""

from __future__ import annotations

import torch

from operators.models.grid_rule import GridRule, grid_rule
from solvers.errors import ConfigError


class OperatorStepper:
    """Advance physical states with a time-dependent surrogate.

    Parameters
    ----------
    surrogate
        Time-dependent ``Surrogate`` (``history`` and ``step`` set), in eval mode.
    interval
        Physical time between two states of the surrogate's data.
    train_shape
        The training grid (what a grid-bound model accepts).
    cond
        ``[B, C_cond, *grid]`` conditioning channels of the simulated samples, or None.
    """

    def __init__(self, surrogate: torch.nn.Module, interval: float, train_shape: tuple[int, ...],
                 cond: torch.Tensor | None = None) -> None:
        if getattr(surrogate, "history", None) is None:
            raise ConfigError("the run's model is a static map (no history / step); simulation needs a "
                              "time-dependent run (window, one-step or rollout protocol)")
        self.surrogate = surrogate.eval()
        self.history = int(surrogate.history)
        self.step = int(surrogate.step)
        self.interval = float(interval)
        self.rule: GridRule = grid_rule(surrogate.model, train_shape)
        self.cond = cond
        parameter = next(surrogate.parameters(), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")
        self.dtype = parameter.dtype if parameter is not None else torch.float32

    def accepts(self, grid: tuple[int, ...]) -> str | None:
        """Why the model cannot run on ``grid``, or None."""
        return self.rule.problem(grid)

    def advance(self, window: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The next ``step`` states after ``window`` ``[b, history, *grid]`` (device and dtype kept).

        ``rows`` selects the conditioning of the simulated samples ``window`` holds (None: all).
        """
        grid = tuple(window.shape[2:])
        problem = self.accepts(grid)
        if problem:
            raise ConfigError(problem)
        if window.shape[1] != self.history:
            raise ConfigError(f"the model reads {self.history} states per call (got a window of {window.shape[1]})")
        cond = None
        if self.cond is not None:
            cond = self.cond if rows is None else self.cond[rows.to(self.cond.device)]
            cond = _on_grid(cond, grid).to(self.device, self.dtype)
        with torch.no_grad():
            out = self.surrogate(window.to(self.device, self.dtype), cond)
        return out.to(window.device, window.dtype)


def _on_grid(cond: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Conditioning on ``grid``: as is when it matches, broadcast when constant in space, else refused."""
    if tuple(cond.shape[2:]) == grid:
        return cond
    flat = cond.flatten(2)
    if bool((flat == flat[..., :1]).all()):
        return flat[..., :1].reshape(*cond.shape[:2], *([1] * len(grid))).expand(*cond.shape[:2], *grid)
    raise ConfigError(f"the run's conditioning fields are given on {'x'.join(map(str, cond.shape[2:]))} and vary "
                      f"in space; the model can run only on that grid (got {'x'.join(map(str, grid))})")
