"""A trained operator as the trainer and evaluation use it: one-call maps, rollouts, teacher forcing.

:class:`Surrogate` wraps an :class:`operators.checkpoint.Operator` (a registered model with its
input and output normalisers, what ``operators.save`` writes and ``operators.load`` returns). One
call takes physical fields ``x`` ``[B, C_in, *space]`` and conditioning channels ``cond``
``[B, C_cond, *space]``, concatenates them along the channel axis and applies the operator. For
time-dependent data ``x`` holds ``history`` time steps and one call predicts the next ``step``
steps; :meth:`rollout` feeds predictions back to go further. Every training mode of the trainer is
one of the methods here, so training, evaluation and export run the same code.

With ``increment`` set, the operator predicts the change from the last input frame and one call
returns ``x[:, -1] + operator(x)`` for each of its ``step`` output steps: the untrained model starts
near persistence ("nothing changes") instead of having to learn to copy the state through its
spectral truncation, and its capacity goes into the dynamics.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class Surrogate(nn.Module):
    """An operator with its protocol: physical fields in, physical fields out.

    Parameters
    ----------
    operator
        ``operators.checkpoint.Operator`` mapping ``[B, C_in + C_cond, *space]`` to
        ``[B, C_out, *space]`` (normalisation included).
    history, step
        For time-dependent data: steps in the input window and steps predicted per call
        (None for static maps).
    increment
        The operator's output is the change from the last input frame (time-dependent data only).
    """

    def __init__(self, operator: nn.Module, history: Optional[int] = None, step: Optional[int] = None,
                 increment: bool = False) -> None:
        super().__init__()
        if increment and history is None:
            raise ValueError("increment prediction needs a time-dependent surrogate (history and step set)")
        self.operator = operator
        self.history = history
        self.step = step
        self.increment = bool(increment)

    @property
    def model(self) -> nn.Module:
        """The bare registered model (its parameters are what training updates)."""
        return self.operator.model

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One model call on physical fields: ``[B, C_in, *space]`` -> ``[B, C_out, *space]``."""
        inputs = torch.cat([x, cond], dim=1) if cond is not None and cond.shape[1] > 0 else x
        out = self.operator(inputs)
        if self.increment:
            out = out + x[:, -1:]
        return out

    def rollout(self, x: torch.Tensor, cond: Optional[torch.Tensor], n_calls: int,
                grad_calls: Optional[int] = None) -> torch.Tensor:
        """Autoregressive prediction of ``n_calls * step`` steps after the history ``x``.

        Each call sees the last ``history`` steps (true ones first, then its own predictions).

        Parameters
        ----------
        x
            ``[B, history, *space]`` physical history.
        cond
            ``[B, C_cond, *space]`` or None.
        n_calls
            Model calls.
        grad_calls
            Only the last ``grad_calls`` calls record gradients (None: all); the first ones run
            under ``torch.no_grad`` (pushforward training).

        Returns
        -------
        torch.Tensor
            ``[B, n_calls * step, *space]`` physical predictions.
        """
        if self.history is None:
            raise ValueError("rollout needs a time-dependent surrogate (history and step set)")
        window = x
        outputs = []
        first_grad = 0 if grad_calls is None else n_calls - grad_calls
        for call in range(n_calls):
            with torch.set_grad_enabled(torch.is_grad_enabled() and call >= first_grad):
                out = self(window, cond)
            outputs.append(out)
            window = torch.cat([window, out], dim=1)[:, -self.history:]
        return torch.cat(outputs, dim=1)

    def teacher_forced(self, x: torch.Tensor, y: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        """Predict every ``step``-block of ``y`` from the true preceding ``history`` steps, in one batch.

        Returns ``[B, T_out, *space]`` like ``y``.
        """
        full = torch.cat([x, y], dim=1)
        n_calls = y.shape[1] // self.step
        starts = [x.shape[1] - self.history + j * self.step for j in range(n_calls)]
        windows = torch.cat([full[:, s:s + self.history] for s in starts], dim=0)
        cond_rep = None if cond is None else cond.repeat(n_calls, *([1] * (cond.ndim - 1)))
        out = self(windows, cond_rep)
        return torch.cat(out.split(x.shape[0], dim=0), dim=1)

    def predict(self, x: torch.Tensor, cond: Optional[torch.Tensor], n_steps: int | None = None) -> torch.Tensor:
        """Physical prediction of ``n_steps`` target steps (time-dependent) or of the output (static).

        Autoregressive models are rolled out for ``ceil(n_steps / step)`` calls and cut to
        ``n_steps``; static maps ignore ``n_steps``.
        """
        if self.history is None or self.step is None:
            return self(x, cond)
        n_calls = -(-n_steps // self.step)
        return self.rollout(x, cond, n_calls)[:, :n_steps]


def fit_increment_normalizer(trajectories, step: int, kind: str, periodic: bool):
    """Output normaliser of an ``increment`` surrogate: statistics of the changes it predicts.

    Output channel ``j`` (0-based) of one call is the change over ``j + 1`` stored steps, so its
    statistics are fitted on ``u(t + j + 1) - u(t)`` over every sample and time of the training
    ``trajectories`` ``[N, T, *space]``, one statistic per channel. ``trajectories`` may also be a
    training split read on demand (:class:`pde_data.lazy_split.LazySplit`), fitted chunk by chunk in one
    read of it for every lead.

    Returns
    -------
    UnitGaussianNormalizer or None
        ``kind`` as in :func:`pde_data.normalization.fit_normalizer` (None for ``"none"``).
    """
    from pde_data.normalization import ChunkedFit, concat_channels, fit_normalizer

    if kind == "none":
        return None
    lazy = hasattr(trajectories, "array_chunks")
    shape = trajectories.array_shape("trajectories") if lazy else tuple(trajectories.shape)
    if step >= shape[1]:
        raise ValueError(f"trajectories of {shape[1]} steps hold no change over {step} steps")

    def changes(chunk: torch.Tensor, lead: int) -> torch.Tensor:
        return (chunk[:, lead:] - chunk[:, :-lead]).reshape(-1, 1, *shape[2:])

    if lazy:  # one read of the split for every lead
        fits = [ChunkedFit(kind, periodic=periodic) for _ in range(step)]
        trajectories.scan([("trajectories", lambda c, lead=lead, fit=fit: fit.add(changes(c, lead)))
                           for lead, fit in enumerate(fits, start=1)])
        return concat_channels([(fit.result(), 1) for fit in fits])
    return concat_channels([(fit_normalizer(changes(trajectories, lead), kind, periodic=periodic), 1)
                            for lead in range(1, step + 1)])
