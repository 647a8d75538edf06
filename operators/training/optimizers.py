"""Adam / AdamW for models with complex parameters.

Spectral weights are complex. A real loss of a complex parameter z = a + ib is a function of the
two real parameters (a, b); PyTorch's gradient is dL/da + i dL/db (the conjugate Wirtinger
convention). Optimising z correctly means updating (a, b) exactly as Adam would update two real
parameters: first and second moments per real component, weight decay on both components. Since
torch 2.0 ``torch.optim.Adam/AdamW`` do precisely that through ``view_as_real`` in both their
single-tensor and ``foreach`` paths (``tests/operators/test_training.py`` holds a complex
parameter's trajectory equal to its real twin's, with coupled and decoupled weight decay), so we
use them directly — but never the ``fused`` path, whose complex support depends on the device.

The older hand-written complex Adam of neuralop shares one second moment ``|g|^2`` between the
real and imaginary parts; that is a different (phase-invariant) algorithm, not a correction.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from operators.training.config import OptimizerConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], config: OptimizerConfig) -> torch.optim.Optimizer:
    """Return Adam or AdamW for ``params`` with the settings of ``config``.

    Parameters
    ----------
    params
        Real and/or complex parameters, or parameter groups (dicts with ``params`` and, for
        :func:`~operators.training.schedules.set_lr`, an optional ``lr_scale``).
    config
        ``name`` (``adam``: L2 penalty added to the gradient; ``adamw``: decoupled decay), ``lr``,
        ``weight_decay``, ``betas``, ``eps``.
    """
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.name]
    return cls(list(params), lr=config.lr, betas=tuple(config.betas), eps=config.eps,
               weight_decay=config.weight_decay, fused=False)
