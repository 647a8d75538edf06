"""Learning-rate schedules as pure functions of training progress.

The rate at optimiser step ``s`` depends only on ``s``, the steps per epoch and the settings, so a
resumed run needs no scheduler state beyond the step count and reproduces an uninterrupted run.

Extending a run (``pdeop train --resume --set training.epochs=N`` with N above the run's epochs) adds a
*segment* of epochs (:func:`extended_lr_factor`): the epochs already planned keep their rates, and

* ``cosine`` and ``one-cycle``, whose shape depends on the run's length, start afresh over the added
  epochs (a warm restart, warm-up included), as if the extension were a run of ``N - epochs`` epochs
  starting from the trained weights and optimiser state;
* ``constant`` and ``step`` simply continue (their rate does not depend on the length), so the extended
  run gets exactly the rates of a run planned with N epochs from the start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from operators.training.config import EarlyStoppingConfig, SchedulerConfig


def lr_factor(config: SchedulerConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate before optimiser step ``step`` (0-based).

    Parameters
    ----------
    config
        The schedule.
    step
        Optimiser steps already taken.
    steps_per_epoch, epochs
        Length of training, to place ``step`` in it.
    """
    total = max(1, steps_per_epoch * epochs)
    epoch = step / max(1, steps_per_epoch)
    if config.name == "one-cycle":
        rise = config.pct_start * total
        low = 1.0 / config.div_factor
        if step < rise:
            return low + (1.0 - low) * (1 - math.cos(math.pi * step / rise)) / 2
        final = low / config.final_div_factor
        progress = (step - rise) / max(1.0, total - rise)
        return final + (1.0 - final) * (1 + math.cos(math.pi * min(1.0, progress))) / 2
    warm = 1.0
    if config.warmup_epochs > 0 and epoch < config.warmup_epochs:
        warm = (step + 1) / (config.warmup_epochs * steps_per_epoch)
    if config.name == "constant":
        return warm
    if config.name == "step":
        return warm * config.gamma ** (int(step // steps_per_epoch) // config.step_size)
    progress = min(1.0, step / total)
    floor = config.min_lr_ratio
    return warm * (floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2)


def extended_lr_factor(config: SchedulerConfig, step: int, steps_per_epoch: int,
                       segment_ends: Sequence[int]) -> float:
    """:func:`lr_factor` of a run whose length grew (see the module docstring).

    Parameters
    ----------
    segment_ends
        The epochs at which each planned segment ends, increasing: ``[epochs]`` for a run never
        extended, ``[10, 25]`` for a 10-epoch run extended to 25.
    """
    if config.name in ("constant", "step") or len(segment_ends) == 1:
        return lr_factor(config, step, steps_per_epoch, segment_ends[-1])
    start = 0
    for end in segment_ends[:-1]:
        if step < end * steps_per_epoch:
            break
        start = end
    else:
        end = segment_ends[-1]
    return lr_factor(config, step - start * steps_per_epoch, steps_per_epoch, end - start)


def stalled_epochs(progress: Mapping[str, Any], settings: EarlyStoppingConfig | None) -> int | None:
    """``settings.patience`` when early stopping should end the run now, else None.

    It fires when none of the last ``patience`` epochs brought ``val_l2`` below ``best * (1 - min_delta)``,
    ``best`` being the lowest ``val_l2`` of the epochs before them, and all of them come after the
    last extension of the run (so an extended run trains at least ``patience`` more epochs).

    Parameters
    ----------
    progress
        The trainer's progress: ``history`` (one row per finished epoch, with ``val_l2``) and
        ``extended_at`` (the epochs done when the run was last extended; 0 if never).
    settings
        ``training.early_stopping`` (None: never stop early).
    """
    if settings is None:
        return None
    scores = [float(row["val_l2"]) for row in progress["history"]]
    if len(scores) - int(progress.get("extended_at", 0)) < settings.patience:
        return None
    before = scores[:len(scores) - settings.patience]
    best = min(before) if before else math.inf
    recent = min(scores[len(scores) - settings.patience:])
    return None if recent < best * (1 - settings.min_delta) else settings.patience


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (times the group's ``lr_scale``, if it has one)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
