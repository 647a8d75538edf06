"""Reading dataset files: ``open_dataset`` and the torch datasets of the training protocols.

Protocols (the ``protocol`` setting of :class:`DataConfig`):

``static``
    input fields -> output fields of each sample (Darcy ``a -> u``).
``window``
    ``t_in`` steps of one variable in, the next ``t_out`` steps out (channels = time steps); by
    default one window per sample starting at ``start`` (the FNO Navier–Stokes protocol: 10 in,
    the next 10 or the rest out), or every window (``windows: all``).
``one-step``
    pairs ``(u_t, u_{t+1})`` at every time of every sample.
``rollout``
    the first ``t_in`` steps in, the whole rest of the trajectory out (evaluation of
    autoregressive models).

Splits are by sample index: the first ``n_train`` samples train, the last ``n_test`` test and
the ``n_val`` just before them validate. Normalisers are fitted on the training split only.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np

from pde_data.augmentation import AugmentConfig
from pde_data.config import check
from solvers.errors import ConfigError

SPLITS = ("train", "val", "test")
_COMPLETE_MARKS = "sample_complete"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The ``data:`` section of a training configuration.

    Parameters
    ----------
    path
        Dataset file (DESIGN.md §3 layout).
    protocol
        ``static``, ``window``, ``one-step`` or ``rollout`` (see the module docstring).
    variable
        Time-dependent variable for the time protocols (default: the only one in the file).
    inputs, outputs
        Input and output variables of the ``static`` protocol (e.g. ``[a]`` and ``[u]``).
    conditioning
        Variables given to the model as extra constant channels at every call: per-sample scalars
        (``L``), fields (``f``) or per-sample fields.
    t_in, t_out
        Input and target steps of a window; ``t_out`` null means the rest of the trajectory.
    start
        Time index of the first window (1 skips the stored initial condition).
    windows, window_stride
        ``first`` (one window per sample) or ``all`` (every ``window_stride``-th start); the
        default is ``all`` for ``one-step`` and ``first`` otherwise.
    n_train, n_val, n_test
        Split sizes in samples.
    subsample
        Keep every ``subsample``-th grid point in each spatial direction.
    time_subsample
        Keep every ``time_subsample``-th stored time step (before windows are cut), e.g. 20 turns
        Burgers snapshots every 0.05 into the classic pair u(0) -> u(1).
    normalization
        ``none``, ``pointwise`` or ``global`` unit-Gaussian normalisation fitted on the training split.
    periodic
        Whether the grid is periodic; null reads it from the file (the ``periodic`` attribute its
        family wrote, see :func:`pde_data.family.stored_description`).
    allow_incomplete
        Accept a file whose generation has not finished (only finished samples are used).
    generate
        Optional recipe to create a missing file: ``{problem, preset, samples, seed, set: {...}}``.
    augment
        Optional symmetry augmentation of the training windows (:mod:`pde_data.augmentation`).
    source
        ``file`` (train on ``path``) or ``online``: train on samples generated from ``generate``
        while training, with no file (``operators.training.online``; ``path`` is then unused).
    online
        Settings of the online source (``{block: N}``, checked by ``operators.training.online``).
    """

    path: str
    protocol: Literal["static", "window", "one-step", "rollout"] = "window"
    variable: Optional[str] = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    conditioning: tuple[str, ...] = ()
    t_in: int = 1
    t_out: Optional[int] = None
    start: int = 0
    windows: Optional[Literal["first", "all"]] = None
    window_stride: int = 1
    n_train: int = 1
    n_val: int = 0
    n_test: int = 1
    subsample: int = 1
    time_subsample: int = 1
    normalization: Literal["none", "pointwise", "global"] = "none"
    periodic: Optional[bool] = None
    allow_incomplete: bool = False
    generate: Optional[dict] = None
    augment: Optional[AugmentConfig] = None
    source: Literal["file", "online"] = "file"
    online: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self.source == "file" or bool(self.generate),
              "data.source 'online' generates the samples from the data.generate recipe "
              "({problem, preset, seed, set}); add it")
        check(self.source == "file" or self.augment is None,
              "data.augment transforms windows of a stored file; with data.source 'online' every sample is "
              "fresh already: remove data.augment or train from a file (data.source: file)")
        check(self.t_in >= 1, f"data.t_in must be an integer >= 1 (got {self.t_in})")
        check(self.t_out is None or self.t_out >= 1, f"data.t_out must be >= 1 or null (got {self.t_out})")
        check(self.start >= 0, f"data.start must be >= 0 (got {self.start})")
        check(self.window_stride >= 1, f"data.window_stride must be >= 1 (got {self.window_stride})")
        check(self.n_train >= 1, f"data.n_train must be >= 1 (got {self.n_train})")
        check(self.n_val >= 0, f"data.n_val must be >= 0 (got {self.n_val})")
        check(self.n_test >= 1, f"data.n_test must be >= 1 (got {self.n_test})")
        check(self.subsample >= 1, f"data.subsample must be an integer >= 1 (got {self.subsample})")
        check(self.time_subsample >= 1, f"data.time_subsample must be an integer >= 1 (got {self.time_subsample})")
        if self.protocol == "static":
            check(bool(self.inputs) and bool(self.outputs),
                  "data.inputs and data.outputs must name the input and output variables for protocol 'static'")
        if self.protocol == "one-step":
            check(self.t_in == 1 and self.t_out in (None, 1),
                  f"protocol 'one-step' has t_in = t_out = 1 (got t_in={self.t_in}, t_out={self.t_out})")
        if self.protocol == "rollout":
            check(self.t_out is None, f"protocol 'rollout' predicts the rest of the trajectory; "
                                      f"data.t_out must be null (got {self.t_out})")

    @property
    def time_dependent(self) -> bool:
        """Whether the protocol serves time windows."""
        return self.protocol != "static"

    def replace(self, **changes: Any) -> DataConfig:
        """Copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class Normalizers:
    """Normalisers of the model's input channels (data then conditioning) and of its output channels.

    ``None`` where no normalisation applies. For time protocols both are fitted on the variable's
    training trajectories (one statistic for all time steps) and the input one also covers the
    conditioning channels.
    """

    input: Any = None
    output: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible statistics for a checkpoint."""
        return {k: None if getattr(self, k) is None else getattr(self, k).to_dict() for k in ("input", "output")}


@dataclasses.dataclass
class DataBundle:
    """Datasets of the three splits, the normalisers fitted on ``train`` and facts about the file."""

    train: Any
    val: Any
    test: Any
    normalizers: Normalizers
    info: dict[str, Any]


def open_dataset(path: str | Path, allow_incomplete: bool = False):
    """Open a pdeop dataset file lazily as an ``xarray.Dataset`` (engine ``h5netcdf``).

    Parameters
    ----------
    path
        File written by ``pdeop generate``.
    allow_incomplete
        Accept a file whose ``complete`` attribute is not set (generation still running or
        interrupted); its unfinished samples hold garbage, see ``sample_complete``.

    Raises
    ------
    ConfigError
        If the file is missing, is not a pdeop dataset, or is incomplete.
    """
    import xarray as xr

    from pde_data.storage import DAMAGED_FILE_ERRORS, open_checked

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"dataset file {path} does not exist (generate it with 'pdeop generate')")
    open_checked(path, require_pdeop=False).close()  # damaged or foreign metadata: one clear error here
    try:
        ds = xr.open_dataset(path, engine="h5netcdf", phony_dims="sort")
    except DAMAGED_FILE_ERRORS as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path} is not a readable HDF5/netCDF dataset: {first}") from None
    if "problem" not in ds.attrs or "complete" not in ds.attrs:
        ds.close()
        raise ConfigError(f"{path} is not a pdeop dataset (root attributes 'problem' and 'complete' are missing)")
    if not allow_incomplete and int(ds.attrs["complete"]) != 1:
        ds.close()
        raise ConfigError(f"{path} is incomplete (generation did not finish); rerun the same 'pdeop generate' "
                          f"command to resume it, or pass allow_incomplete")
    return ds


def fingerprint(ds) -> dict[str, Any]:
    """Identify a dataset by what made it: problem, preset, seed, version and a hash of its config."""
    config = str(ds.attrs.get("config", ""))
    return {
        "problem": str(ds.attrs.get("problem")),
        "preset": str(ds.attrs.get("preset", "")),
        "seed": int(ds.attrs["seed"]) if "seed" in ds.attrs else None,
        "pdeop_version": str(ds.attrs.get("pdeop_version", "")),
        "config_sha256": hashlib.sha256(config.encode("utf-8")).hexdigest(),
        "samples": int(ds.sizes.get("sample", 0)),
    }


def make_datasets(config: DataConfig, lazy_train: bool = False) -> DataBundle:
    """Load the train, validation and test splits of ``config`` and fit the normalisers on train.

    Parameters
    ----------
    config
        The ``data`` section.
    lazy_train
        Serve the training split from the file on demand (:class:`~pde_data.lazy_split.LazySplit`:
        each batch reads its samples, a bounded cache) instead of loading it: what each rank of a
        data-parallel run does. The validation and test splits are loaded either way.

    Returns
    -------
    DataBundle
        ``train`` / ``val`` / ``test`` are :class:`~pde_data.samples.StaticPairs` or
        :class:`~pde_data.samples.TrajectoryWindows` (``val`` is None when ``n_val`` is 0); ``train``
        is a :class:`~pde_data.lazy_split.LazySplit` with ``lazy_train``.

    Raises
    ------
    ConfigError
        For a missing or unsuitable file, unknown variables, too few samples or time steps.
    """
    ds = open_dataset(config.path, allow_incomplete=config.allow_incomplete)
    try:
        rows = _split_rows(ds, config)
        info = describe(ds, config)
        datasets = {split: _load(ds, config, rows[split]) if len(rows[split]) else None
                    for split in SPLITS if not (lazy_train and split == "train")}
    finally:
        ds.close()
    if lazy_train:
        from pde_data.lazy_split import LazySplit

        datasets["train"] = LazySplit(config, rows["train"])
    normalizers = fit_normalizers(datasets["train"], config.normalization, info["periodic"])
    return DataBundle(datasets["train"], datasets["val"], datasets["test"], normalizers, info)


def make_dataset(config: DataConfig, split: str = "test", n_samples: int | None = None):
    """Load one split of ``config`` (normalisers are not fitted).

    ``n_samples`` overrides that split's size; for ``test`` this takes the last ``n_samples`` of
    the file, which is how a model is evaluated on another file (e.g. a finer grid).
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)} (got {split!r})")
    if n_samples is not None:
        config = config.replace(**{f"n_{split}": int(n_samples)})
    ds = open_dataset(config.path, allow_incomplete=config.allow_incomplete)
    try:
        rows = _split_rows(ds, config, only=split)
        return _load(ds, config, rows[split])
    finally:
        ds.close()


def load_rows(ds, config: DataConfig, rows: np.ndarray):
    """The protocol's dataset of ``rows`` of an open dataset (a file, or samples held in memory).

    Returns a :class:`~pde_data.samples.StaticPairs` or :class:`~pde_data.samples.TrajectoryWindows`
    as :func:`make_datasets` builds for a split.
    """
    return _load(ds, config, np.asarray(rows))


def describe(ds, config: DataConfig) -> dict[str, Any]:
    """Facts about the file a checkpoint records: fingerprint, grid, periodicity, variable names."""
    from pde_data.family import stored_description

    stored = stored_description(ds.attrs)
    periodic = config.periodic if config.periodic is not None else stored["periodic"]
    variable = _time_variable(ds, config) if config.time_dependent else None
    names = [variable] if variable else list(config.inputs)
    space_dims = [d for d in ds[names[0]].dims if d not in ("sample", "t")]
    grid = {d: np.asarray(ds[d].values)[::config.subsample].tolist() for d in space_dims if d in ds.coords}
    return {
        "path": str(Path(config.path)),
        "fingerprint": fingerprint(ds),
        "periodic": bool(periodic),
        "equation": stored["equation"],
        "physical_parameters": stored["physical_parameters"],
        "variable": variable,
        "space_dims": space_dims,
        "grid": grid,
        "times": np.asarray(ds["t"].values)[::config.time_subsample].tolist()
        if variable and "t" in ds.coords else None,
    }


def fit_normalizers(train, kind: str, periodic: bool) -> Normalizers:
    """Fit the normalisers of a protocol on the training dataset (see :class:`Normalizers`); a
    :class:`~pde_data.lazy_split.LazySplit` is fitted in its start-up read (which also hashes it)."""
    from pde_data.normalization import concat_channels, fit_normalizer

    wanted = [("trajectories", True)] if train.time_dependent else [("outputs", False), ("inputs", False)]
    wanted += [("cond", False)] if train.cond_channels else []
    fitted = {}
    if hasattr(train, "start_up"):
        fitted = train.start_up(wanted if kind != "none" else [], kind, periodic)
    elif kind != "none":
        fitted = {name: fit_normalizer(getattr(train, name), kind, shared_channels=shared, periodic=periodic)
                  for name, shared in wanted}
    if kind == "none":
        return Normalizers()
    output = fitted["trajectories" if train.time_dependent else "outputs"]
    parts = [(output if train.time_dependent else fitted["inputs"], train.in_channels)]
    if train.cond_channels:
        parts.append((fitted["cond"], train.cond_channels))
    return Normalizers(concat_channels(parts), output)


def _usable_rows(ds) -> np.ndarray:
    n = int(ds.sizes["sample"])
    if int(ds.attrs["complete"]) != 1 and _COMPLETE_MARKS in ds:
        return np.flatnonzero(np.asarray(ds[_COMPLETE_MARKS].values) == 1)
    return np.arange(n)


def _split_rows(ds, config: DataConfig, only: str | None = None) -> dict[str, np.ndarray]:
    rows = _usable_rows(ds)
    sizes = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    needed = sizes[only] if only else sum(sizes.values())
    if needed > len(rows):
        what = f"n_{only} = {sizes[only]}" if only else (
            f"n_train + n_val + n_test = {config.n_train} + {config.n_val} + {config.n_test}")
        raise ConfigError(f"data: {what} samples requested but {config.path} has only {len(rows)}")
    n_test_first = len(rows) - config.n_test
    return {
        "train": rows[:config.n_train],
        "val": rows[n_test_first - config.n_val:n_test_first],
        "test": rows[n_test_first:],
    }


def _time_variable(ds, config: DataConfig) -> str:
    if config.variable is not None:
        _check_variable(ds, config.variable, "data.variable")
        if "t" not in ds[config.variable].dims:
            raise ConfigError(f"data.variable {config.variable!r} has no time axis (dims {ds[config.variable].dims}); "
                              f"use protocol 'static' for it")
        return config.variable
    candidates = [n for n, v in ds.data_vars.items() if v.dims[:2] == ("sample", "t")]
    if len(candidates) != 1:
        found = ", ".join(candidates) or "none"
        raise ConfigError(f"data.variable must name the time-dependent variable (candidates in {config.path}: {found})")
    return candidates[0]


def _check_variable(ds, name: str, field: str) -> None:
    if name not in ds.variables:
        known = ", ".join(sorted(n for n in ds.data_vars if n != _COMPLETE_MARKS))
        raise ConfigError(f"{field}: variable {name!r} is not in {ds.encoding.get('source', 'the file')} "
                          f"(variables: {known})")


def _read(ds, name: str, rows: np.ndarray, subsample: int, space_dims: list[str], time_subsample: int = 1) -> np.ndarray:
    """The selected values of variable ``name`` as float32, checked finite (see :func:`_check_finite`)."""
    var = ds[name]
    index: dict[str, Any] = {d: slice(None, None, subsample) for d in var.dims if d in space_dims}
    if "t" in var.dims:
        index["t"] = slice(None, None, time_subsample)
    if "sample" in var.dims:
        index["sample"] = rows
    selected = var.isel(index)
    values = np.asarray(selected.values)
    if values.dtype.kind not in "fciub":
        raise ConfigError(f"data: variable {name!r} holds {values.dtype} values, not numbers")
    with np.errstate(over="ignore", invalid="ignore"):
        converted = values.astype(np.float32, copy=False)
    _check_finite(ds, name, values, converted, selected.dims, rows, index)
    return converted


def _check_finite(ds, name: str, values: np.ndarray, converted: np.ndarray, dims: tuple[str, ...],
                  rows: np.ndarray, index: dict[str, Any]) -> None:
    """ConfigError naming the variable, sample and position of the first NaN / infinity of ``converted``
    (the float32 copy of ``values``, which also overflows beyond 3.4e38)."""
    finite = np.isfinite(converted)
    if finite.all():
        return
    position = np.unravel_index(int(np.argmin(finite.reshape(-1))), values.shape)
    where = []
    for dim, i in zip(dims, position):
        step = index.get(dim)
        stored = _sample_number(ds, int(rows[i])) if dim == "sample" and dim in index else (
            i * (step.step or 1) if isinstance(step, slice) else i)
        where.append(f"sample {stored}" if dim == "sample" else f"{dim} index {stored}")
    value = values[position]
    what = "a value beyond the float32 range" if np.isfinite(value) else f"{value}"
    source = ds.encoding.get("source", "the dataset file")
    raise ConfigError(f"data: variable {name!r} in {source} holds {what} at {', '.join(where)} (the file is damaged "
                      f"or its generation diverged); regenerate it, or choose samples without it")


def _sample_number(ds, row: int) -> int:
    """The sample number of position ``row``: its ``sample`` coordinate where the dataset has one (samples
    held in memory, see :mod:`pde_data.lazy_split`), else the position (a file's row)."""
    return int(ds["sample"].values[row]) if "sample" in ds.coords else row


def _conditioning(ds, config: DataConfig, rows: np.ndarray, space_dims: list[str], space_shape: tuple[int, ...]):
    import torch

    channels = []
    for name in config.conditioning:
        _check_variable(ds, name, "data.conditioning")
        dims = ds[name].dims
        extra = [d for d in dims if d not in ("sample", *space_dims)]
        if extra:
            raise ConfigError(f"data.conditioning: variable {name!r} has dims {dims}; only sample and space "
                              f"dims {tuple(space_dims)} are allowed")
        values = _read(ds, name, rows, config.subsample, space_dims)
        if "sample" not in dims:
            values = np.broadcast_to(values, (len(rows), *values.shape))
        present = [d for d in dims if d != "sample"]
        expand = tuple(slice(None) if d in present else None for d in space_dims)
        values = np.broadcast_to(values[(slice(None), *expand)], (len(rows), *space_shape))
        channels.append(values)
    if not channels:
        return torch.zeros((len(rows), 0, *space_shape))
    return torch.from_numpy(np.ascontiguousarray(np.stack(channels, axis=1)))


def _load(ds, config: DataConfig, rows: np.ndarray):
    import torch

    from pde_data.samples import StaticPairs, TrajectoryWindows

    if config.time_dependent:
        variable = _time_variable(ds, config)
        space_dims = [d for d in ds[variable].dims if d not in ("sample", "t")]
        traj = _read(ds, variable, rows, config.subsample, space_dims, config.time_subsample)
        traj = torch.from_numpy(traj)
        cond = _conditioning(ds, config, rows, space_dims, tuple(traj.shape[2:]))
        times = np.asarray(ds["t"].values) if "t" in ds.coords else np.arange(ds.sizes["t"], dtype=np.float64)
        times = times[::config.time_subsample]
        t_out, starts = _window_starts(config, traj.shape[1])
        return TrajectoryWindows(traj, times, config.t_in, t_out, starts, cond, rows)
    for name in (*config.inputs, *config.outputs):
        _check_variable(ds, name, "data.inputs/outputs")
    space_dims = [d for d in ds[config.inputs[0]].dims if d != "sample"]
    fields = {}
    for name in (*config.inputs, *config.outputs):
        dims = ds[name].dims
        if dims != ("sample", *space_dims):
            raise ConfigError(f"data: variable {name!r} has dims {dims}; protocol 'static' needs "
                              f"{('sample', *space_dims)} like {config.inputs[0]!r}")
        fields[name] = _read(ds, name, rows, config.subsample, space_dims)
    inputs = torch.from_numpy(np.stack([fields[n] for n in config.inputs], axis=1))
    outputs = torch.from_numpy(np.stack([fields[n] for n in config.outputs], axis=1))
    cond = _conditioning(ds, config, rows, space_dims, tuple(inputs.shape[2:]))
    return StaticPairs(inputs, outputs, cond, rows)


def _window_starts(config: DataConfig, n_times: int) -> tuple[int, list[int]]:
    if config.protocol == "one-step":
        t_out = 1
    else:
        t_out = config.t_out if config.t_out is not None else n_times - config.start - config.t_in
    span = config.t_in + t_out
    if t_out < 1 or config.start + span > n_times:
        raise ConfigError(f"data: start + t_in + t_out = {config.start} + {config.t_in} + {t_out} exceeds the "
                          f"{n_times} stored time steps")
    mode = config.windows or ("all" if config.protocol == "one-step" else "first")
    if mode == "first":
        return t_out, [config.start]
    return t_out, list(range(config.start, n_times - span + 1, config.window_stride))

