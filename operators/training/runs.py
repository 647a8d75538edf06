"""Reading a finished (or running) training run back: its config, its surrogate, its test data.

``pdeop evaluate``, ``pdeop plot`` and ``pdeop export`` all start here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from operators.training.config import RunConfig, run_config_from_mapping
from operators.training.surrogate import Surrogate
from operators.training.run_folder import read_config
from pde_data.loading import DataConfig
from solvers.errors import ConfigError


@dataclasses.dataclass
class LoadedRun:
    """A run folder's config and one of its checkpoints as a ready surrogate."""

    run_dir: Path
    config: RunConfig
    surrogate: Surrogate
    checkpoint: Path
    metadata: dict[str, Any]

    @property
    def periodic(self) -> bool:
        """Whether the training grid was periodic."""
        return bool(self.metadata["protocol"]["periodic"])


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> LoadedRun:
    """Load ``run_dir``'s config and its ``checkpoint`` (``best`` or ``last``) on ``device``.

    Raises
    ------
    ConfigError
        If the folder is not a pdeop run or the checkpoint is missing.
    """
    run_dir = Path(run_dir)
    config = run_config_from_mapping(read_config(run_dir))
    path = run_dir / checkpoint
    if not path.is_dir():
        raise ConfigError(f"{run_dir} has no '{checkpoint}' checkpoint yet (no epoch has finished)")
    surrogate, metadata = load_surrogate(path, device)
    return LoadedRun(run_dir, config, surrogate, path, metadata)


def load_surrogate(checkpoint: str | Path, device: str = "cpu") -> tuple[Surrogate, dict[str, Any]]:
    """Rebuild the :class:`Surrogate` saved in a checkpoint folder by the trainer.

    Returns the surrogate (eval mode, on ``device``) and the checkpoint's metadata: the trainer's
    ``extra`` (``surrogate``, ``protocol``, ``run_config``) plus ``grid`` and ``dataset``.
    """
    from operators.checkpoint import load

    operator = load(checkpoint, device=device)
    extra = operator.extra if isinstance(operator.extra, dict) else {}
    if "surrogate" not in extra or "protocol" not in extra:
        raise ConfigError(f"{checkpoint} was not written by the pdeop trainer (it has no protocol metadata)")
    metadata = {**extra, "grid": operator.grid, "dataset": operator.dataset}
    return Surrogate(operator, **extra["surrogate"]).eval(), metadata


def evaluation_data(loaded: LoadedRun, path: str | Path | None = None, horizon: int | None = None,
                    subsample: int | None = None) -> DataConfig:
    """Data settings of the test evaluation of a run.

    Autoregressive models are rolled out from the first window of each test trajectory for
    ``horizon`` steps (default ``evaluation.horizon``, else the rest of the trajectory); direct
    models predict their trained target. ``path`` and ``subsample`` replace the run's.
    """
    data = loaded.config.data
    changes: dict[str, Any] = {"path": str(path) if path else data.path, "windows": "first",
                               "subsample": subsample or data.subsample}
    if data.time_dependent:
        t_out = loaded.metadata["protocol"]["t_out"]
        autoregressive = loaded.surrogate.step is not None and loaded.surrogate.step < t_out
        if autoregressive or loaded.config.training.mode != "direct":
            changes["t_out"] = horizon or loaded.config.evaluation.horizon
        else:
            changes["t_out"] = t_out
        changes["protocol"] = "window"
    return data.replace(**changes)


def evaluate_run(loaded: LoadedRun, data: Path | None = None, samples: int | None = None, horizon: int | None = None,
                 device: str = "cpu") -> dict[str, Any]:
    """All test metrics of a loaded run (what ``pdeop evaluate`` writes to ``metrics.json``).

    Parameters
    ----------
    loaded
        From :func:`load_run`.
    data
        Dataset file (default: the run's); its last ``samples`` (default ``n_test``) samples are
        the test split.
    horizon
        Rollout steps of autoregressive models (default: ``evaluation.horizon`` or the rest).

    Returns
    -------
    dict
        :func:`~operators.training.evaluation.evaluate_with_baselines`'s metrics (the model's, the
        same metrics of the trivial baselines on the same items — persistence and linear
        extrapolation for time-dependent data, the training-set mean output for static maps — and
        the model's skill against each) plus the data used, whether it is the training dataset, the
        training grid and, when training used a coarser grid than the file's (or
        ``evaluation.super_resolution_subsample`` is set), ``super_resolution``: the zero-shot errors
        on the finer grid.
    """
    from operators.training.evaluation import evaluate, evaluate_with_baselines
    from pde_data.loading import fingerprint, make_dataset, open_dataset

    config = evaluation_data(loaded, data, horizon)
    n_test = samples or loaded.config.data.n_test
    dataset = make_dataset(config, "test", n_samples=n_test)
    kwargs = {"periodic": loaded.periodic, "threshold": loaded.config.evaluation.correlation_threshold,
              "batch_size": loaded.config.training.eval_batch_size, "device": device}
    metrics: dict[str, Any] = {"run": str(loaded.run_dir), "checkpoint": loaded.checkpoint.name,
                               "data": config.path, "subsample": config.subsample, "test_samples": list(map(
                                   int, dataset.samples))}
    ds = open_dataset(config.path, allow_incomplete=config.allow_incomplete)
    metrics["same_dataset_as_training"] = fingerprint(ds) == loaded.metadata["dataset"]
    ds.close()
    metrics["train_resolution"] = loaded.metadata["grid"]["shape"]
    baselines, unavailable = run_baselines(loaded, dataset)
    metrics.update(evaluate_with_baselines(loaded.surrogate, dataset, baselines, unavailable, **kwargs))
    sub = loaded.config.evaluation.super_resolution_subsample
    if sub is None and config.subsample > 1:
        sub = 1
    if sub is not None and sub != config.subsample:
        fine = make_dataset(config.replace(subsample=sub), "test", n_samples=n_test)
        result = evaluate(loaded.surrogate, fine, **kwargs)
        metrics["super_resolution"] = {"subsample": sub, **{k: result[k] for k in ("resolution", "rel_l2", "rel_h1")}}
        if "rollout" in result:
            metrics["super_resolution"]["rollout"] = result["rollout"]
    return metrics


def run_baselines(loaded: LoadedRun, dataset) -> tuple[dict[str, tuple[Any, Any]], dict[str, str]]:
    """The trivial baselines of a run's test ``dataset`` (see :mod:`operators.training.baselines`).

    Time-dependent data: persistence and linear extrapolation. Static maps: the mean output of the
    run's training split (read from the run's data file, resampled to the test grid if it differs).

    Returns
    -------
    (baselines, unavailable)
        ``{name: (predictor, dataset)}`` and ``{name: reason}`` for those that cannot be computed.
    """
    from operators.training.baselines import TrainingMean, time_baselines
    from pde_data.loading import make_dataset
    from pde_data.normalization import resample

    if getattr(dataset, "time_dependent", False):
        return time_baselines(dataset)
    data = loaded.config.data
    try:
        train = make_dataset(data, "train")
    except ConfigError as exc:
        return {}, {"training_mean": f"the training data cannot be read ({exc})"}
    mean = TrainingMean.fit(train.outputs).mean
    mean = resample(mean, dataset.space_shape, loaded.periodic)
    return {"training_mean": (TrainingMean(mean), dataset)}, {}
