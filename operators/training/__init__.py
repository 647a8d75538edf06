"""Training, evaluation, plotting and export of operator models.

Public names are imported lazily so that ``import operators.training`` stays light:

* :class:`Trainer`, :class:`TrainResult` — the training loop (``pdeop train``);
* :class:`RunConfig`, :func:`run_config_from_mapping`, :func:`load_run_config` — configs;
* :class:`Surrogate` — a model with its normalisers and protocol (calls, rollouts);
* :func:`load_run`, :func:`load_surrogate` — reading runs and checkpoints back;
* :func:`evaluate`, :func:`relative_l2`, :func:`relative_h1`, :func:`energy_spectrum` — metrics;
* :func:`export_surrogate` — TorchScript / ``torch.export``;
* :class:`PhysicsTerm` — the PDE-residual term of ``training.physics`` (physics-informed operator training).

The run-folder files (config, history, checkpoints) are read and written by :mod:`.run_folder`.
"""

from __future__ import annotations

from solvers.lazy_exports import lazy_exports

_LAZY = {
    "Trainer": "operators.training.trainer",
    "TrainResult": "operators.training.trainer",
    "RunConfig": "operators.training.config",
    "run_config_from_mapping": "operators.training.config",
    "load_run_config": "operators.training.config",
    "Surrogate": "operators.training.surrogate",
    "load_run": "operators.training.runs",
    "load_surrogate": "operators.training.runs",
    "evaluate": "operators.training.evaluation",
    "energy_spectrum": "operators.training.evaluation",
    "relative_l2": "operators.training.losses",
    "relative_h1": "operators.training.losses",
    "export_surrogate": "operators.training.export",
    "PhysicsTerm": "operators.training.physics_term",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
