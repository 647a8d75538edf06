"""Learning-rate schedules as pure functions of training progress.

The rate at optimiser step ``s`` depends only on ``s``, the steps per epoch and the settings, so a
resumed run needs no scheduler state beyond the step count and reproduces an uninterrupted run.
"""

from __future__ import annotations

import math

import torch

from operators.training.config import SchedulerConfig


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


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
