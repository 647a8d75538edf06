"""Shared plumbing of the benchmark scripts: timing, machine description, tables and JSON.

Every ``benchmarks/<name>.py`` runs its competitors side by side in one process and writes
``benchmarks/results/<name>.json`` as ``{"benchmark", "machine", "rows", "summary"}`` (DESIGN.md §9).
Import it from a script with ``from harness import ...`` (scripts run from this folder or via
``pdeop bench NAME``, which puts this folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with the flags every benchmark has (``--quick``, ``--out``, ``--threads``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes; finishes in under two minutes")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/NAME.json)")
    p.add_argument("--threads", type=int, default=None, help="torch/BLAS threads (default: all cores)")
    return p


def machine() -> dict[str, Any]:
    """Describe the machine the numbers come from."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    return info


def time_call(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1, min_seconds: float = 0.0,
              sync: Callable[[], Any] | None = None) -> dict[str, float]:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeat`` timed ones.

    Each timed sample runs ``fn`` as many times as needed to last ``min_seconds`` (at least once)
    and records the time per call. Returns the median, minimum and spread of those samples; the
    median is what the tables report because the machine is shared and noisy.
    """
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    samples = []
    for _ in range(repeat):
        calls = 0
        start = time.perf_counter()
        while True:
            fn()
            calls += 1
            if sync:
                sync()
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        samples.append(elapsed / calls)
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "repeat": repeat,
    }


def interleaved(contenders: Mapping[str, Callable[[], Any]], rounds: int = 5, warmup: int = 1,
                min_seconds: float = 0.0, sync: Callable[[], Any] | None = None) -> dict[str, dict[str, float]]:
    """Time several contenders round-robin so that load changes hit all of them alike.

    Returns ``{name: {"median_s", "min_s", "max_s", "repeat"}}``.
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            samples[name].append(time_call(fn, repeat=1, warmup=0, min_seconds=min_seconds, sync=sync)["median_s"])
    return {
        name: {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s), "repeat": rounds}
        for name, s in samples.items()
    }


def format_table(rows: Sequence[Mapping[str, Any]], columns: Iterable[str] | None = None) -> str:
    """Render rows as a Markdown table (floats with 4 significant digits)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
                  out: Path | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"benchmark", "machine", "rows", "summary"}`` JSON and return its path."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), "rows": list(rows), "summary": dict(summary)}
    if extra:
        payload.update(extra)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_plain) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def set_threads(threads: int | None) -> None:
    """Fix torch's intra-op thread count when asked (``--threads``)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
