"""Reading a finished (or running) training run back: its config, its surrogate, its test data.

``pdeop evaluate``, ``pdeop plot`` and ``pdeop export`` all start here. The trainer's checkpoint
metadata (surrogate protocol, grid) is checked field by field (:class:`SurrogateMeta`,
:class:`ProtocolMeta`, :class:`GridMeta`) and against the model config and the run's
``run_config.json`` before it is used, so an edited or damaged checkpoint is a one-line error.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

from operators.training.config import RunConfig, run_config_from_mapping
from operators.training.surrogate import Surrogate
from operators.training.run_folder import first_difference, read_config
from pde_data.config import check, from_mapping, to_mapping
from pde_data.loading import DataConfig
from solvers.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SurrogateMeta:
    """``extra.surrogate`` of a trainer checkpoint: steps in the input window and per call (time-dependent data)."""

    history: Optional[int] = None
    step: Optional[int] = None
    #: the model predicts the change from the last input frame (``training.predict: increment``)
    increment: bool = False

    def __post_init__(self) -> None:
        for name in ("history", "step"):
            value = getattr(self, name)
            check(value is None or value >= 1, f"checkpoint extra.surrogate.{name} must be >= 1 or null (got {value})")
        check(not self.increment or self.history is not None,
              "checkpoint extra.surrogate.increment needs a time-dependent surrogate (history set)")


@dataclasses.dataclass(frozen=True)
class ProtocolMeta:
    """``extra.protocol`` of a trainer checkpoint: what one model call takes and gives."""

    protocol: str
    variable: Optional[str]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    conditioning: tuple[str, ...]
    t_in: int
    t_out: Optional[int]
    periodic: bool
    subsample: int

    def __post_init__(self) -> None:
        check(self.t_in >= 1 and (self.t_out is None or self.t_out >= 1) and self.subsample >= 1,
              f"checkpoint extra.protocol: t_in, t_out and subsample must be >= 1 (got {self.t_in}, {self.t_out}, "
              f"{self.subsample})")


@dataclasses.dataclass(frozen=True)
class GridMeta:
    """``grid`` of a trainer checkpoint: the training grid."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    coords: dict
    periodic: bool

    def __post_init__(self) -> None:
        check(len(self.dims) == len(self.shape) and 1 <= len(self.shape) <= 3 and all(n >= 1 for n in self.shape),
              f"checkpoint grid: shape {list(self.shape)[:4]} must give 1 to 3 sizes >= 1, one per dim "
              f"{list(self.dims)[:4]}")


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
    recorded = read_config(run_dir)
    if "pde" in recorded:
        raise ConfigError(f"{run_dir} holds a physics-informed run (a 'pde' section); it has no operator surrogate")
    config = run_config_from_mapping(recorded)
    path = run_dir / checkpoint
    if not path.is_dir():
        from operators.checkpoint_folder import recover

        recover(path)  # finishes a swap a kill interrupted, if that is what happened
        if not path.is_dir():
            raise ConfigError(f"{run_dir} has no '{checkpoint}' checkpoint (no epoch has finished, or it was removed)")
    surrogate, metadata = load_surrogate(path, device)
    difference = first_difference(metadata["run_config"], config.to_dict())
    if difference:
        raise ConfigError(f"{path} was not written by the run in {run_dir} ({difference}, checkpoint then, "
                          f"run_config.json now)")
    return LoadedRun(run_dir, config, surrogate, path, metadata)


def run_problem(loaded: LoadedRun, data: str | Path | None = None) -> str:
    """The problem of a run's data: the ``problem`` attribute of ``data`` (default: the run's data file),
    else the run config's ``data.generate.problem`` (a run trained online, or whose file was removed).

    Raises
    ------
    ConfigError
        If neither the file nor the config tells.
    """
    path = Path(data) if data is not None else Path(loaded.config.data.path)
    if path.is_file():
        from pde_data.loading import open_dataset

        ds = open_dataset(path)
        try:
            problem = ds.attrs.get("problem")
        finally:
            ds.close()
        if problem:
            return str(problem)
    generate = loaded.config.data.generate
    if isinstance(generate, dict) and generate.get("problem"):
        return str(generate["problem"])
    raise ConfigError(f"{loaded.run_dir}: cannot tell which problem the run was trained on (the data file {path} "
                      "is missing or has no 'problem' attribute, and the config has no data.generate.problem)")


def load_surrogate(checkpoint: str | Path, device: str = "cpu") -> tuple[Surrogate, dict[str, Any]]:
    """Rebuild the :class:`Surrogate` saved in a checkpoint folder by the trainer.

    Returns the surrogate (eval mode, on ``device``) and the checkpoint's metadata: the trainer's
    ``extra`` (``surrogate``, ``protocol``, ``run_config``) plus ``grid`` and ``dataset``.
    """
    from operators.checkpoint import load

    operator = load(checkpoint, device=device)
    extra = operator.extra if isinstance(operator.extra, dict) else {}
    if not all(isinstance(extra.get(key), dict) for key in ("surrogate", "protocol", "run_config")):
        raise ConfigError(f"{checkpoint} was not written by the pdeop trainer (it has no protocol metadata)")
    surrogate = from_mapping(SurrogateMeta, extra["surrogate"], where="checkpoint extra.surrogate.")
    protocol = from_mapping(ProtocolMeta, extra["protocol"], where="checkpoint extra.protocol.")
    grid = from_mapping(GridMeta, operator.grid if isinstance(operator.grid, dict) else {}, where="checkpoint grid.")
    _check_channels(operator, surrogate, protocol, checkpoint)
    metadata = {"surrogate": to_mapping(surrogate), "protocol": to_mapping(protocol), "run_config": extra["run_config"],
                "grid": to_mapping(grid), "dataset": operator.dataset}
    return Surrogate(operator, surrogate.history, surrogate.step, surrogate.increment).eval(), metadata


def _check_channels(operator: Any, surrogate: SurrogateMeta, protocol: ProtocolMeta, checkpoint: str | Path) -> None:
    """The model's channel counts (when its config states them) must be what the protocol feeds and expects."""
    config = operator.model.config
    if protocol.variable is not None and (surrogate.history is None or surrogate.step is None):
        raise ConfigError(f"{checkpoint}: time-dependent protocol without extra.surrogate history and step")
    takes = (surrogate.history if protocol.variable else len(protocol.inputs)) + len(protocol.conditioning)
    gives = surrogate.step if protocol.variable else len(protocol.outputs)
    for field, value in (("in_channels", takes), ("out_channels", gives)):
        stated = getattr(config, field, None)
        if isinstance(stated, int) and stated != value:
            raise ConfigError(f"{checkpoint}: the model has {field} = {stated} but its protocol metadata gives "
                              f"{value}; the checkpoint's metadata is inconsistent")


def evaluation_data(loaded: LoadedRun, path: str | Path | None = None, horizon: int | None = None,
                    subsample: int | None = None) -> DataConfig:
    """Data settings of the test evaluation of a run.

    Autoregressive models are rolled out from the first window of each test trajectory for
    ``horizon`` steps (default ``evaluation.horizon``, else the rest of the trajectory); direct
    models predict their trained target. ``path`` and ``subsample`` replace the run's (an online run's data
    are its held-out file).
    """
    data = loaded.config.data
    if data.source == "online":  # its validation and test samples are the run's held-out file
        from operators.training.run_folder import HELDOUT

        data = data.replace(path=str(loaded.run_dir / HELDOUT), source="file")
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


def read_metrics(path: str | Path) -> dict[str, Any]:
    """``metrics.json`` as :func:`evaluate_run` wrote it, checked to hold what the plots draw.

    Raises
    ------
    ConfigError
        If the file is not strict JSON or an entry the plots use is missing, of the wrong kind or
        of a mismatched length.
    """
    from operators.strict_json import check_fields, read

    what = str(path)
    metrics = check_fields(read(path), {"energy_spectrum": "mapping", "data": "string?"}, what)
    spectrum = check_fields(metrics["energy_spectrum"], {"k": "numbers", "truth": "numbers", "prediction": "numbers",
                                                         "rel_l2": "number?"}, f"{what}: energy_spectrum")
    _same_lengths(spectrum, ("k", "truth", "prediction"), f"{what}: energy_spectrum")
    parts = [("rollout", metrics, {"t": "numbers", "rel_l2": "numbers"}),
             ("correlation", metrics, {"t": "numbers", "mean": "numbers", "threshold": "number",
                                       "time_mean": "number?"})]
    if "super_resolution" in metrics:
        sr = check_fields(metrics["super_resolution"], {"resolution": "numbers"}, f"{what}: super_resolution")
        parts.append(("rollout", sr, {"t": "numbers", "rel_l2": "numbers"}))
    baselines = check_fields(metrics, {"baselines": "mapping", "skill": "mapping"}, what, required=False)
    for name, baseline in baselines.get("baselines", {}).items():
        where = f"{what}: baselines.{name}"
        if "rollout" in check_fields(baseline, {}, where):
            parts += [("rollout", baseline, {"t": "numbers", "rel_l2": "numbers"}),
                      ("correlation", baseline, {"t": "numbers", "mean": "numbers"})]
            skill = check_fields(baselines.get("skill", {}), {name: "mapping"}, f"{what}: skill")[name]
            parts.append(("rollout", skill, {"rel_l2": "numbers"}))
    for key, parent, spec in parts:
        if key in parent:
            check_fields(parent[key], spec, f"{what}: {key}")
            _same_lengths(parent[key], [k for k, kind in spec.items() if kind == "numbers"], f"{what}: {key}")
    return metrics


def _same_lengths(mapping: dict[str, Any], keys, what: str) -> None:
    lengths = {key: len(mapping[key]) for key in keys}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"{what}: the lists {', '.join(lengths)} differ in length ({list(lengths.values())})")


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
