"""The generation pipeline: settings → family → chunks of samples → a resumable dataset file.

Written once for every problem family. It resolves the configuration (preset YAML, config file,
``key=value`` overrides), validates everything before touching the output, creates or resumes the
file, computes samples chunk by chunk in the family's solve order, and marks the file complete.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pde_data import storage
from pde_data.chunking import ChunkRunner, open_runner, plan_chunks
from pde_data.config import apply_overrides, coerce, configs_root, from_mapping, load_yaml, merge, to_mapping
from pde_data.family import Family, get_family
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
        return json.dumps(payload, sort_keys=True)


def presets(problem: str) -> list[str]:
    """Names of the presets shipped for ``problem``."""
    folder = configs_root() / "data" / problem
    return sorted(p.stem for p in folder.glob("*.yaml"))


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
        Replace an existing file whatever it holds.
    chunk_size
        Samples computed and stored together; never changes the stored values.
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

    Returns
    -------
    dict
        ``path``, ``samples``, ``computed`` (samples computed by this call), ``seconds`` and the
        family's ``summary()``.
    """
    out = Path(out)
    say = log or (lambda message: None)
    family: Family = get_family(config.problem)(config.settings)
    family.device = _check_device(family, device, distributed=workers is not None or scheduler is not None)
    layout = family.layout()
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"chunk size must be an integer >= 1 (got {chunk_size})")
    chunk = chunk_size or (family.device_chunk_size if uses_torch(family.device) else family.default_chunk_size)
    storage.check_writable(out)
    with open_runner(family, config, family.device, workers, scheduler, scheduler_timeout) as runner:
        created = _prepare_file(out, config, layout, overwrite, say, family.device)
        start = time.perf_counter()
        computed, summary = _fill(out, created, config, family, layout, runner, chunk, progress, say)
    seconds = time.perf_counter() - start
    return {"path": str(out), "samples": config.samples, "computed": computed, "seconds": seconds,
            "summary": summary}


def _fill(out: Path, created: bool, config: ResolvedConfig, family: Family, layout: Any, runner: ChunkRunner,
          chunk: int, progress: bool, say: Callable[[str], None]) -> tuple[int, dict[str, Any]]:
    """Compute and store every sample not yet in ``out``; mark it complete. Returns (computed, summary)."""
    computed = 0
    with storage.DatasetWriter(out) as writer:
        done = writer.written()
        bar = None
        try:
            order = np.asarray(family.solve_order(config.samples, config.seed))
            if sorted(order.tolist()) != list(range(config.samples)):
                raise RuntimeError(f"{config.problem}: solve_order is not a permutation of the samples")
            chunks = plan_chunks(order, done, chunk, family.sequence_length())
            if done.any() and chunks:
                say(f"resuming {out}: {int(done.sum())} of {config.samples} samples already stored")
            if chunks:
                writer.record_run({**runner.provenance(), "device": family.device,
                                   "samples": sum(len(c) for c in chunks), "pdeop_version": __version__})
            bar = _progress_bar(config.samples, int(done.sum()), enabled=progress and bool(chunks))
            initial = int(done.sum())
            advance = (lambda samples: _advance(bar, initial + samples)) if bar is not None else (lambda samples: None)
            for indices, arrays in runner.run(chunks, advance):
                _check_arrays(config.problem, layout, indices, arrays)
                writer.write(indices, arrays)
                computed += len(indices)
        except PdeopError:
            writer.close()
            if created and computed == 0:
                out.unlink(missing_ok=True)
            raise
        finally:
            if bar is not None:
                bar.close()
        summary = runner.summary()
        if writer.written().all() and not writer.complete:
            writer.finish({"summary": summary} if summary else None)
    return computed, summary


def _check_device(family: Family, device: str, distributed: bool) -> str:
    """The canonical device name; refuse a torch device for a family without PyTorch integrators.

    On a Dask cluster the workers, not this process, must have the device (checked there).
    """
    device = str(device).strip() if distributed else check_device(device, getattr(family.config, "precision",
                                                                                  "float64"))
    if uses_torch(device) and not family.torch_devices:
        raise ConfigError(f"{family.name} has no PyTorch integrators and runs on the CPU only; drop --device {device}")
    return device


def _prepare_file(out: Path, config: ResolvedConfig, layout: Any, overwrite: bool,
                  say: Callable[[str], None], device: str = "cpu") -> bool:
    """Create the file, or check that an existing one may be resumed. Returns True if created."""
    if out.exists() and not overwrite:
        attrs = storage.read_attrs(out)
        if attrs is None or "config" not in attrs:
            raise ConfigError(
                f"{out} exists and is not a pdeop dataset (or is damaged); use --overwrite to replace it "
                "or choose another --out"
            )
        if attrs["config"] != config.to_json():
            diff = _config_difference(attrs["config"], config.to_json())
            raise ConfigError(
                f"{out} was made with a different configuration ({diff}); use --overwrite to replace it "
                "or choose another --out"
            )
        made_on = str(attrs.get("device", "cpu"))
        if device_kind(made_on) != device_kind(device):
            raise ConfigError(f"{out} was written with --device {made_on}; resume it with the same kind of device "
                              f"(the values differ in the last bits between devices) or use --overwrite")
        return False
    attrs = {
        "problem": config.problem,
        "preset": config.preset,
        "config": config.to_json(),
        "seed": config.seed,
        "pdeop_version": __version__,
        "device": device,
        "Conventions": "CF-1.8",
    }
    storage.create(out, layout, config.samples, attrs)
    say(f"writing {config.samples} samples of {config.problem} ({config.preset}) to {out}")
    return True


def _check_arrays(problem: str, layout: Any, indices: Sequence[int], arrays: dict[str, np.ndarray]) -> None:
    """A family must return every declared variable with one row per requested sample."""
    missing = set(layout.variables) - set(arrays)
    extra = set(arrays) - set(layout.variables)
    if missing or extra:
        raise RuntimeError(f"{problem}: generate() returned {sorted(arrays)}, layout declares "
                           f"{sorted(layout.variables)}")
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
