"""Causal training of PINNs (Wang, Sankaran & Perdikaris 2022).

The residual loss is split over time slices t_1 < ... < t_Nt. Slice i is weighted by
w_i = exp(-eps * sum_{k<i} L_r(t_k)), computed from the detached slice losses (stop-gradient), so a
later slice only counts once the earlier ones are solved. eps is annealed upward through a schedule;
a stage ends, and eps moves to the next value, when min_i w_i > tolerance (0.99).
Time-marching windows (each starting from the previous window's prediction) are handled by the
trainer and by :class:`operators.models.pinn.PINN` (``windows``).
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
        A stage ends when ``min(w) > tolerance``.
    stage
        Index of the current stage.
    """

    epsilons: tuple[float, ...]
    tolerance: float = 0.99
    stage: int = 0

    @property
    def epsilon(self) -> float:
        """Current eps."""
        return self.epsilons[self.stage]

    @property
    def last_stage(self) -> bool:
        """Whether eps has reached the last value of the schedule."""
        return self.stage == len(self.epsilons) - 1

    def update(self, weights: torch.Tensor) -> bool:
        """Advance to the next eps when the current stage has ended; return whether it advanced."""
        if float(weights.min()) > self.tolerance and not self.last_stage:
            self.stage += 1
            return True
        return False
