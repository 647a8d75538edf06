"""Stopping training at the first non-finite loss or gradient, with a message a user can act on.

The trainers check every optimiser step: the loss before ``backward`` and the gradients before the
optimiser uses them (checking changes no number). A step that fails raises :class:`NonFiniteStep`
(the parameters and optimiser state are untouched: the step is never taken); the training loop adds
where it happened and what the run folder still holds and raises :class:`TrainingDiverged`, a
:class:`~solvers.errors.ConfigError` (one line, exit code 2). Nothing of the failed epoch is saved,
so ``best/`` and ``last/`` stay those of the last good epoch and ``--resume`` continues from there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from solvers.errors import ConfigError


class NonFiniteStep(ArithmeticError):
    """A step's loss or gradient is not finite; ``what`` says which and ``value`` shows it."""

    def __init__(self, what: str, value: str) -> None:
        super().__init__(f"{what} is {value}")
        self.what = what
        self.value = value


class TrainingDiverged(ConfigError):
    """Training stopped at a non-finite loss or gradient (the message says where and what to change)."""


def check_loss(loss: torch.Tensor | float, what: str = "the loss") -> float:
    """``float(loss)``, or :class:`NonFiniteStep` when it is NaN or infinite."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise NonFiniteStep(what, _name(value))
    return value


def check_gradients(named_parameters: Iterable[tuple[str, nn.Parameter]]) -> None:
    """Raise :class:`NonFiniteStep` naming the first parameter whose gradient holds NaN or infinity.

    One reduction over all gradients (a single device synchronisation); the slow search for the
    name only runs when something is wrong.
    """
    named = [(name, p.grad) for name, p in named_parameters if p.grad is not None]
    if not named:
        return
    if bool(torch.stack([torch.isfinite(g).all() for _, g in named]).all()):
        return
    for name, grad in named:
        if not bool(torch.isfinite(grad).all()):
            bad = grad[~torch.isfinite(grad)].flatten()[0]
            value = _name(float(bad.real if bad.is_complex() else bad))
            raise NonFiniteStep(f"the gradient of {name}", value)


def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, with an update beyond the parameters' float range as :class:`NonFiniteStep`.

    torch refuses (RuntimeError "cannot be converted ... without overflow") an update scale such as a
    learning rate of 1e38 over Adam's bias correction that float32 parameters cannot hold.
    """
    try:
        optimizer.step()
    except RuntimeError as exc:
        if "overflow" not in str(exc):
            raise
        raise NonFiniteStep("the optimiser's update (learning rate over the moment estimates)",
                            "beyond the float range of the parameters") from None


def stop_message(error: NonFiniteStep, where: str, lr: float, first_step: bool, saved: str) -> str:
    """The one-line explanation of a stop.

    Parameters
    ----------
    error
        What was not finite.
    where
        ``"epoch 3, step 57"`` or ``"step 120"``.
    lr
        Learning rate of the failed step.
    first_step
        Whether no step had succeeded yet (then the data or the initial model, not the rate, is the
        likely cause).
    saved
        What the run folder holds, e.g. ``"runs/x/last holds epoch 2 (--resume continues from it)"``.
    """
    if first_step and not error.what.startswith("the optimiser"):
        cause = ("likely cause: the data (values far from order one; the loaded arrays were checked finite) or "
                 "the model's settings, since the untrained model already fails on the first batch")
    else:
        cause = (f"likely cause: a learning rate too large for this model ({lr:.3g} at this step); lower "
                 "training.optimizer.lr or set training.grad_clip and start a new run with another --out (a resume "
                 "with the same settings replays the same steps)")
    return f"training stopped at {where}: {error}; {cause}; {saved}"


def _name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "inf" if value > 0 else "-inf"
