"""Causal training of PINNs (Wang, Sankaran & Perdikaris 2022, "Respecting causality is all you need").

The residual loss is split over time slices t_1 < ... < t_Nt. Slice i is weighted by
w_i = exp(-eps * sum_{k<i} L_r(t_k)), computed from the detached slice losses (stop-gradient), so a
later slice only counts once the earlier ones are solved. eps is annealed upward through a schedule
(the paper's [1e-2, 1e-1, 1, 10, 100]); a stage ends, and eps moves to the next value, when
min_i w_i > tolerance (0.99), or after at most ``max_stage_steps`` steps; once the last eps has
min_i w_i > tolerance the training has converged (the paper's stopping criterion).
Time-marching windows (each starting from the previous window's prediction) are handled by the
trainer and by :class:`operators.models.pinn.PINN` (``windows``).

Where we differ from the paper: the slices are stratified random times (t uniform within each of
``n_slices`` equal slices, resampled every step) rather than a fixed temporal grid with random
spatial points; the follow-up "expert's guide" (Wang et al. 2023) sorts random times into equal
chunks, which this matches in expectation.
"""

from __future__ import annotations

import dataclasses

import torch


def slice_losses(residual: torch.Tensor, n_slices: int) -> torch.Tensor:
    """Mean squared residual of each time slice.

    Parameters
    ----------
    residual
        ``[n_slices * per_slice, n_equations]``, slice-major as produced by
        :func:`operators.physics.sampling.time_slices`.
    n_slices
        Number of time slices.

    Returns
    -------
    torch.Tensor
        ``[n_slices]``, differentiable.
    """
    return residual.square().reshape(n_slices, -1).mean(dim=1)


def causal_weights(losses: torch.Tensor, epsilon: float) -> torch.Tensor:
    """w_i = exp(-epsilon * sum_{k<i} losses_k), computed without gradient (stop-gradient).

    ``w_0 = 1`` and the weights are non-increasing in i.
    """
    losses = losses.detach()
    # exclusive cumulative sum; prepending 0 (not subtracting L_i) keeps it exactly non-decreasing
    preceding = torch.cat((losses.new_zeros(1), torch.cumsum(losses, dim=0)[:-1]))
    return torch.exp(-epsilon * preceding)


def causal_loss(losses: torch.Tensor, epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Causally weighted residual loss mean_i(w_i L_r(t_i)) and the weights ``w``."""
    weights = causal_weights(losses, epsilon)
    return (weights * losses).mean(), weights


@dataclasses.dataclass
class EpsilonSchedule:
    """Annealing of the causality parameter eps (mutable training state).

    Parameters
    ----------
    epsilons
        Increasing values of eps, one per stage.
    tolerance
        A stage ends when ``min(w) > tolerance``; in the last stage that means convergence.
    stage
        Index of the current stage.
    max_stage_steps
        A stage also ends after this many steps (None: no cap).
    stage_steps
        Steps taken in the current stage.
    """

    epsilons: tuple[float, ...]
    tolerance: float = 0.99
    stage: int = 0
    max_stage_steps: int | None = None
    stage_steps: int = 0

    @property
    def epsilon(self) -> float:
        """Current eps."""
        return self.epsilons[self.stage]

    @property
    def last_stage(self) -> bool:
        """Whether eps has reached the last value of the schedule."""
        return self.stage == len(self.epsilons) - 1

    def update(self, weights: torch.Tensor) -> bool:
        """Count a step with causal weights ``weights``; advance to the next eps when the stage has
        ended. Returns whether it advanced."""
        self.stage_steps += 1
        capped = self.max_stage_steps is not None and self.stage_steps >= self.max_stage_steps
        if (float(weights.min()) > self.tolerance or capped) and not self.last_stage:
            self.stage += 1
            self.stage_steps = 0
            return True
        return False

    def converged(self, weights: torch.Tensor) -> bool:
        """The paper's stopping criterion: the last eps is reached and ``min(w) > tolerance``."""
        return self.last_stage and float(weights.min()) > self.tolerance
