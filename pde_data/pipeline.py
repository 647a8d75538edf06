"""The generation pipeline: settings → family → chunks of samples → a resumable dataset file.

Written once for every problem family. It resolves the configuration (preset YAML, config file,
``key=value`` overrides), validates everything before touching the output — the settings, then
(holding the output's writer lock, :mod:`pde_data.output_files`) the memory and disk the run needs
(:mod:`pde_data.resources`) and the family's physical checks — creates or resumes the file,
computes samples chunk by chunk in the family's solve order, and marks the file complete. An
existing file is replaced (``overwrite``) only once its successor is complete.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pde_data import chunk_timeline, output_files, resources, storage
from pde_data.chunking import ChunkRunner, open_runner, plan_chunks
from pde_data.config import apply_overrides, coerce, configs_root, from_mapping, load_yaml, merge, to_mapping
from pde_data.elliptic import EllipticFamily
from pde_data.family import Family, get_family
from pde_data.warm_start import WarmStart
from solvers.devices import check_device, device_kind, uses_torch
from solvers.errors import ConfigError, PdeopError
from solvers.version import __version__

#: keys of a preset / config file that belong to the run, not to the family's settings
RUN_KEYS = ("samples", "seed", "description")
DEFAULT_SAMPLES = 8


@dataclasses.dataclass(frozen=True)
class ResolvedConfig:
    """Everything that determines a dataset file's contents."""

    problem: str
    preset: str
    samples: int
    seed: int
    settings: Any  # the family's config dataclass

    def to_json(self) -> str:
        """Canonical JSON (sorted keys) stored as the file's ``config`` attribute."""
        payload = {
            "problem": self.problem,
            "preset": self.preset,
            "samples": self.samples,
            "seed": self.seed,
            "settings": to_mapping(self.settings),
        }
        return json.dumps(payload, sort_keys=True, allow_nan=False)  # settings are finite (pde_data.config)


def presets(problem: str) -> list[str]:
    """Names of the presets shipped for ``problem``."""
    folder = configs_root() / "data" / problem
    return sorted(p.stem for p in folder.glob("*.yaml"))


def preset_catalogue() -> list[dict[str, Any]]:
    """Every shipped preset, by problem then name: ``problem``, ``preset``, ``samples`` (the count
    ``--samples`` defaults to) and ``default`` (whether it is the family's default preset)."""
    import pde_data.families  # noqa: F401  (registers the built-in families)
    from pde_data.family import FAMILIES

    rows = []
    for problem in sorted(FAMILIES):
        for preset in presets(problem):
            mapping = load_yaml(configs_root() / "data" / problem / f"{preset}.yaml", what="preset")
            rows.append({"problem": problem, "preset": preset,
                         "samples": coerce(mapping.get("samples", DEFAULT_SAMPLES), int, "samples"),
                         "default": preset == FAMILIES[problem].default_preset})
    return rows


def resolve_config(
    problem: str,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    samples: int | None = None,
    seed: int | None = None,
) -> ResolvedConfig:
    """Merge preset, config file and overrides into a validated :class:`ResolvedConfig`.

    Later sources win: preset YAML < ``config_file`` < ``overrides`` < explicit ``samples``/``seed``.

    Raises
    ------
    ConfigError
        Unknown problem, preset or setting; wrong type; invalid value.
    """
    family_cls = get_family(problem)
    preset = preset or family_cls.default_preset
    preset_path = configs_root() / "data" / problem / f"{preset}.yaml"
    if not preset_path.is_file():
        known = ", ".join(presets(problem)) or "none"
        raise ConfigError(f"unknown preset {preset!r} for problem {problem!r}; known presets: {known}")
    mapping = load_yaml(preset_path, what="preset")
    if config_file is not None:
        mapping = merge(mapping, load_yaml(config_file))
    mapping = apply_overrides(mapping, overrides)
    run = {key: mapping.pop(key) for key in RUN_KEYS if key in mapping}
    if samples is not None:
        run["samples"] = samples
    if seed is not None:
        run["seed"] = seed
    n_samples = coerce(run.get("samples", DEFAULT_SAMPLES), int, "samples")
    seed_value = coerce(run.get("seed", 0), int, "seed")
    if n_samples < 1:
        raise ConfigError(f"samples must be an integer >= 1 (got {n_samples})")
    if seed_value < 0:
        raise ConfigError(f"seed must be an integer >= 0 (got {seed_value})")
    settings = from_mapping(family_cls.config_class, mapping)
    return ResolvedConfig(problem, preset, n_samples, seed_value, settings)


def generate_dataset(
    config: ResolvedConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    chunk_size: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    device: str = "cpu",
    workers: int | None = None,
    scheduler: str | None = None,
    scheduler_timeout: float | None = None,
    warm_start: WarmStart | None = None,
) -> dict[str, Any]:
    """Generate (or resume) the dataset file ``out`` for ``config``.

    Parameters
    ----------
    config
        From :func:`resolve_config`.
    out
        Output path. An existing file made with the same configuration is resumed (or left alone
        if complete); one made with another configuration is refused unless ``overwrite``.
    overwrite
        Replace an existing file whatever it holds. The new file grows under
        :func:`~pde_data.output_files.partial_path` and replaces ``out`` atomically once complete,
        so ``out`` stays as it was until then (a rerun resumes the partial file).
    chunk_size
        Samples computed and stored together; never changes the stored values. Default: the
        family's, lowered to what fits in the available memory.
    progress
        Show a progress bar on stderr.
    log
        Receives one-line status messages (default: discard).
    device
        Where the integrators run (:mod:`solvers.devices`): ``cpu`` (NumPy), ``cuda``, ``cuda:N``,
        ``torch-cpu``. Recorded in the file; a file is resumed only on the same kind of device.
    workers, scheduler
        Compute the chunks on a Dask ``LocalCluster`` of ``workers`` processes, or on the cluster
        of the scheduler at ``scheduler`` (:mod:`pde_data.distributed`); this process writes the
        file. Never changes the stored values.
    scheduler_timeout
        Seconds to reach the scheduler and see a worker (default
        :data:`pde_data.distributed.DEFAULT_TIMEOUT`).
    warm_start
        A trained model's help with the linear solves of an elliptic family
        (:class:`~pde_data.warm_start.WarmStart`, made by ``operators.krylov.warm_start_from_run``);
        every stored solution still meets ``rtol``. Runs in this process (not with ``workers`` or
        ``scheduler``).

    Returns
    -------
    dict
        ``path``, ``samples``, ``computed`` (samples computed by this call), ``seconds``, the
        family's ``summary()`` and ``timing``: where the whole call's time went
        (:func:`pde_data.chunk_timeline.account`: workers' busy intervals, their overlap, the
        client's serial seconds).

    Raises
    ------
    ConfigError
        Bad settings or output path; another process writing ``out``; not enough memory or disk
        (before anything is allocated); a file that cannot be written (no space left...).
    """
    wall_start = time.time()
    say = log or (lambda message: None)
    family: Family = get_family(config.problem)(config.settings)
    family.device = _check_device(family, device, distributed=workers is not None or scheduler is not None)
    if warm_start is not None:
        _attach_warm_start(family, warm_start, distributed=workers is not None or scheduler is not None)
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"chunk size must be an integer >= 1 (got {chunk_size})")
    out = output_files.resolve_output(out)
    storage.check_writable(out)
    with output_files.WriterLock(out):
        for orphan in output_files.remove_orphans(out):
            say(f"removed {output_files.shown(orphan)}, left by an interrupted run")
        target, create, chunk = _plan_file(out, config, family, overwrite, chunk_size, workers, say)
        with open_runner(family, config, family.device, workers, scheduler, scheduler_timeout) as runner:
            if create:
                _create_file(target, out, config, family, say)
            start = time.perf_counter()
            computed, summary = _fill(target, create, config, family, runner, chunk, progress, say)
            timings, workers = runner.timings(), runner.provenance().get("workers")
        if target != out:
            output_files.replace(target, out)
            say(f"replaced {output_files.shown(out)} with the new file")
    seconds = time.perf_counter() - start
    return {"path": str(out), "samples": config.samples, "computed": computed, "seconds": seconds,
            "summary": summary, "timing": chunk_timeline.account(timings, wall_start, time.time(), workers)}


def _fill(target: Path, created: bool, config: ResolvedConfig, family: Family, runner: ChunkRunner, chunk: int,
          progress: bool, say: Callable[[str], None]) -> tuple[int, dict[str, Any]]:
    """Compute and store every sample not yet in ``target``; mark it complete. Returns (computed, summary)."""
    layout_variables = family.variables()
    computed = 0
    shown = output_files.shown(target)
    try:
        with storage.DatasetWriter(target) as writer:
            done = writer.written()
            bar = None
            try:
                order = np.asarray(family.solve_order(config.samples, config.seed), dtype=np.int64)
                if order.shape != (config.samples,) or not np.array_equal(np.sort(order), np.arange(config.samples)):
                    raise RuntimeError(f"{config.problem}: solve_order is not a permutation of the samples")
                chunks = plan_chunks(order, done, chunk, family.sequence_length())
                if done.any() and chunks:
                    say(f"resuming {shown}: {int(done.sum())} of {config.samples} samples already stored")
                if chunks:
                    writer.record_run({**runner.provenance(), "device": family.device,
                                       "samples": sum(len(c) for c in chunks), "pdeop_version": __version__})
                bar = _progress_bar(config.samples, int(done.sum()), enabled=progress and bool(chunks))
                initial = int(done.sum())
                advance = (lambda samples: _advance(bar, initial + samples)) if bar is not None else \
                    (lambda samples: None)
                for indices, arrays in runner.run(chunks, advance):
                    _check_arrays(config.problem, layout_variables, indices, arrays)
                    writer.write(indices, arrays)
                    computed += len(indices)
            except PdeopError:
                writer.close()
                if created and computed == 0 and not done.any():
                    target.unlink(missing_ok=True)
                raise
            finally:
                if bar is not None:
                    bar.close()
            summary = runner.summary()
            if writer.written().all() and not writer.complete:
                writer.finish({"summary": summary} if summary else None)
    except OSError as exc:  # the file system refused a write (no space left, file too large, I/O error)
        raise ConfigError(f"cannot write {shown}: {_first_line(exc)}; the samples stored so far are kept — free "
                          "space (or fix the file system) and rerun the same command to resume") from None
    except MemoryError:
        raise ConfigError(f"ran out of memory computing a chunk of {chunk} samples; use --chunk-size "
                          f"{max(1, chunk // 2)} (it never changes the results) or free memory") from None
    return computed, summary


def _attach_warm_start(family: Family, warm_start: WarmStart, distributed: bool) -> None:
    if not isinstance(family, EllipticFamily):
        raise ConfigError(f"warm start: problem {family.name!r} has no linear solves to accelerate; "
                          "use it with an elliptic problem (darcy, poisson, helmholtz, ...)")
    if distributed:
        raise ConfigError("warm start runs the model in this process: drop --workers/--scheduler")
    family.warm_start = warm_start


def _check_device(family: Family, device: str, distributed: bool) -> str:
    """The canonical device name; refuse a torch device for a family without PyTorch integrators.

    On a Dask cluster the workers, not this process, must have the device (checked there).
    """
    device = str(device).strip() if distributed else check_device(device, getattr(family.config, "precision",
                                                                                  "float64"))
    if uses_torch(device) and not family.torch_devices:
        raise ConfigError(f"{family.name} has no PyTorch integrators and runs on the CPU only; drop --device {device}")
    return device


def _plan_file(out: Path, config: ResolvedConfig, family: Family, overwrite: bool, chunk_size: int | None,
               workers: int | None, say: Callable[[str], None]) -> tuple[Path, bool, int]:
    """Choose the file to fill (``out``, or its partial replacement) and check, before any work, that
    the run fits and is physically meaningful.

    Returns
    -------
    tuple
        ``(target, create, chunk)``: ``create`` when ``target`` must be created.
    """
    partial = output_files.partial_path(out)
    resumable_partial = _same_config(partial, config)
    if out.exists() and not overwrite:
        try:
            with storage.open_checked(out) as f:
                existing = str(storage.attr_to_python(f.attrs["config"]))
                made_on = str(storage.attr_to_python(f.attrs.get("device", "cpu")))
        except ConfigError as exc:
            raise ConfigError(f"{exc}; --out exists, so use --overwrite to replace it or choose another --out") \
                from None
        if existing != config.to_json():
            diff = _config_difference(existing, config.to_json())
            pending = f" (an interrupted --overwrite is kept in {output_files.shown(partial)})" if partial.exists() \
                else ""
            raise ConfigError(
                f"{output_files.shown(out)} was made with a different configuration ({diff}){pending}; use "
                "--overwrite to replace it or choose another --out")
        _check_same_device(out, made_on, family.device)
        target, create = out, False
    elif resumable_partial:
        _check_same_device(partial, str((storage.read_attrs(partial) or {}).get("device", "cpu")), family.device)
        target, create = partial, False
        say(f"resuming the replacement of {output_files.shown(out)} in {output_files.shown(partial)}")
    else:
        target, create = (partial if out.exists() else out), True
    estimate = family.estimate(config.samples)
    new_disk = estimate.file_bytes - (resources.allocated_bytes(target) if not create else 0)
    # each local worker holds one chunk at a time: the memory of this machine is shared among them
    memory = resources.available_memory() // workers if workers else None
    default_chunk = family.device_chunk_size if uses_torch(family.device) else family.default_chunk_size
    chunk = resources.check_resources(estimate, samples=config.samples, chunk=chunk_size, default_chunk=default_chunk,
                                      out=out, new_disk_bytes=new_disk, memory=memory)
    family.check_settings()
    return target, create, chunk


def _check_same_device(path: Path, made_on: str, device: str) -> None:
    """Refuse to resume a file written on another kind of device (the values differ in the last bits)."""
    if device_kind(made_on) != device_kind(device):
        raise ConfigError(f"{output_files.shown(path)} was written with --device {made_on}; resume it with the same "
                          "kind of device (the values differ in the last bits between devices) or use --overwrite")


def _create_file(target: Path, out: Path, config: ResolvedConfig, family: Family, say: Callable[[str], None]) -> None:
    """Create the empty dataset file ``target`` (``out`` or its partial replacement)."""
    attrs = {
        "problem": config.problem,
        "preset": config.preset,
        "config": config.to_json(),
        "seed": config.seed,
        "pdeop_version": __version__,
        "device": family.device,
        "Conventions": "CF-1.8",
        **family.description(),
    }
    storage.create(target, family.layout(), config.samples, attrs)
    say(f"writing {config.samples} samples of {config.problem} ({config.preset}) to {output_files.shown(out)}")


def _same_config(path: Path, config: ResolvedConfig) -> bool:
    """Whether ``path`` is a pdeop dataset made with ``config``."""
    if not path.is_file():
        return False
    attrs = storage.read_attrs(path)
    return attrs is not None and attrs.get("config") == config.to_json()


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (HDF5 errors span many)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def _check_arrays(problem: str, variables: Any, indices: Sequence[int], arrays: dict[str, np.ndarray]) -> None:
    """A family must return every declared variable with one row per requested sample."""
    missing = set(variables) - set(arrays)
    extra = set(arrays) - set(variables)
    if missing or extra:
        raise RuntimeError(f"{problem}: generate() returned {sorted(arrays)}, layout declares "
                           f"{sorted(variables)}")
    for name, values in arrays.items():
        if len(values) != len(indices):
            raise RuntimeError(f"{problem}: {name} has {len(values)} rows for {len(indices)} samples")


def _config_difference(old_json: str, new_json: str) -> str:
    """Describe the first few settings that differ between two config JSON strings."""
    old, new = _flatten(json.loads(old_json)), _flatten(json.loads(new_json))
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    parts = [f"{k.removeprefix('settings.')}: file has {old.get(k)!r}, requested {new.get(k)!r}"
             for k in keys[:3]]
    return "; ".join(parts) + ("; ..." if len(keys) > 3 else "")


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="sample", dynamic_ncols=True, smoothing=0.1,
                bar_format="{l_bar}{bar}| {n:.1f}/{total} [{elapsed}<{remaining}, {rate_fmt}]")


def _advance(bar: Any, position: float) -> None:
    bar.update(position - bar.n)
