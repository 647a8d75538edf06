"""Summaries of dataset files, for ``pdeop info``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py

from pde_data.output_files import shown, writer_of
from pde_data.storage import COMPLETE_MARKS, DAMAGED_FILE_ERRORS, attr_to_python, open_checked
from solvers.errors import ConfigError

#: per-sample statistics summarised when present (DESIGN.md §3)
STATISTICS = ("iterations", "matvecs", "residual", "solve_seconds", "retries")


def describe(path: str | Path) -> dict[str, Any]:
    """Describe a pdeop dataset file.

    Returns
    -------
    dict
        ``problem``, ``preset``, ``seed``, ``samples``, ``stored`` (samples written), ``complete``,
        ``variables`` (name → dims and shape), ``statistics`` (name → min/mean/max over stored
        samples), ``attrs`` (other root attributes), ``size_bytes``, ``pdeop_version`` and
        ``writer`` ("process PID" while a ``pdeop generate`` writes the file, else None).

    Raises
    ------
    ConfigError
        If the file is missing, is not a pdeop dataset, or is damaged (see
        :func:`pde_data.storage.open_checked`).
    """
    path = Path(path)
    writer = writer_of(path)
    try:  # a file being written is read without HDF5's lock (its metadata no longer changes)
        f = open_checked(path, locking=writer is None)
    except ConfigError as exc:
        damaged = " is damaged" in str(exc) or " is truncated" in str(exc)
        raise ConfigError(f"{exc}; regenerate it with pdeop generate ... --overwrite" if damaged else str(exc)) \
            from None
    with f:
        try:
            attrs = {k: attr_to_python(v) for k, v in f.attrs.items() if not k.startswith("_")}
            marks = f[COMPLETE_MARKS][:].astype(bool)
            variables = {}
            statistics = {}
            for name, var in f.items():
                if name == COMPLETE_MARKS or not isinstance(var, h5py.Dataset) or var.is_scale:
                    continue
                dims = [next(iter(var.dims[i].keys()), f"dim_{i}") for i in range(var.ndim)]
                variables[name] = {"dims": dims, "shape": list(var.shape), "dtype": str(var.dtype)}
                if name in STATISTICS and var.shape == marks.shape and marks.any():
                    values = var[:][marks].astype(float)
                    statistics[name] = {"min": float(values.min()), "mean": float(values.mean()),
                                        "max": float(values.max())}
        except DAMAGED_FILE_ERRORS as exc:
            raise ConfigError(f"{shown(path)} is damaged: {(str(exc).splitlines() or [type(exc).__name__])[0]}") \
                from None
    config = json.loads(str(attrs.get("config", "{}")))
    settings = config.get("settings", {}) if isinstance(config, dict) else {}
    return {
        "path": str(path),
        "problem": attrs.get("problem"),
        "preset": attrs.get("preset"),
        "seed": attrs.get("seed"),
        "samples": int(marks.size),
        "stored": int(marks.sum()),
        "complete": bool(attrs.get("complete", 0)),
        "writer": writer,
        "pdeop_version": attrs.get("pdeop_version"),
        "settings": settings if isinstance(settings, dict) else {},
        "variables": variables,
        "statistics": statistics,
        "attrs": {k: v for k, v in attrs.items()
                  if k not in ("config", "problem", "preset", "seed", "complete", "pdeop_version")},
        "size_bytes": path.stat().st_size,
    }


def format_description(info: dict[str, Any]) -> str:
    """Human-readable lines for :func:`describe`'s result."""
    state = "complete" if info["complete"] else f"INCOMPLETE ({info['stored']} of {info['samples']} stored)"
    if info.get("writer"):
        state += f", being written by {info['writer']}"
    lines = [
        f"file:      {shown(info['path'])} ({_size(info['size_bytes'])})",
        f"problem:   {info['problem']} (preset {info['preset']}), seed {info['seed']}, pdeop {info['pdeop_version']}",
        f"samples:   {info['samples']}, {state}",
        "variables:",
    ]
    for name, var in info["variables"].items():
        lines.append(f"  {name}({', '.join(var['dims'])})  shape {tuple(var['shape'])}  {var['dtype']}")
    if info["statistics"]:
        lines.append("solver statistics (over stored samples): min / mean / max")
        for name, s in info["statistics"].items():
            lines.append(f"  {name}: {s['min']:.4g} / {s['mean']:.4g} / {s['max']:.4g}")
    for key, value in info["attrs"].items():
        if key == "provenance":
            lines += provenance_lines(value)
        else:
            lines.append(f"{key}: {value}")
    settings = ", ".join(f"{k}={v}" for k, v in info["settings"].items())
    lines.append(f"settings:  {settings}")
    return "\n".join(lines)


def provenance_lines(value: Any) -> list[str]:
    """``made by:`` lines from the ``provenance`` attribute (one JSON record per run that computed samples)."""
    try:
        runs = json.loads(value) if isinstance(value, str) else value
        runs = [r for r in runs if isinstance(r, dict)]
    except (TypeError, ValueError):
        return [f"provenance: {value}"]
    lines = ["made by:"]
    for number, run in enumerate(runs, 1):
        kind = run.get("scheduler")
        if kind == "none":
            where = "one process"
        else:
            threads = run.get("threads_per_worker")
            hosts = run.get("hosts")
            workers = run.get("workers")
            each = f"{threads} thread{'' if threads == 1 else 's'} each"
            cluster = "local cluster" if kind == "local" else "external scheduler"
            spread = f", {hosts} hosts" if isinstance(hosts, int) and hosts > 1 else ""
            where = f"{workers} Dask worker{'' if workers == 1 else 's'} ({cluster}{spread}, {each})"
        lines.append(f"  run {number}: {where}, device {run.get('device', 'cpu')}, {run.get('samples')} samples to "
                     f"compute, pdeop {run.get('pdeop_version')}")
    return lines


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
