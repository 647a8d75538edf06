"""Figures of ``pdeop simulate`` reports: error against the solver vs time, and error vs cost."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_reports(reports: Sequence[dict[str, Any]], path: Path) -> Path:
    """Two panels in one PNG: each mode's relative L2 error vs time (first report), and the final error vs
    wall time relative to the solver of every mode of every report (one hybrid point per tolerance;
    zero errors are left out of the log axes)."""
    from operators.training.plots import pyplot, save_figure

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    first = reports[0]
    for mode, entry in first["modes"].items():
        if mode == "solver":
            continue
        label = f"{mode} (tol {first['tolerance']:g})" if mode == "hybrid" else mode
        left.semilogy(first["times"], [max(e, 1e-16) for e in entry["error"]], marker="o", label=label)
    left.set(xlabel="time after the initial window", ylabel="rel. L2 error vs solver",
             title=f"{first['problem']}, {first['samples']} samples")
    left.legend()
    for report in reports:
        for mode, entry in report["modes"].items():
            # a zero error (every step made by the solver) has no place on the log axis
            if mode in ("solver", "persistence") or entry.get("cost") is None or not entry["error"][-1] > 0:
                continue
            right.scatter(entry["cost"], entry["error"][-1], color="C1" if mode == "hybrid" else "C0")
            if mode == "hybrid":
                right.annotate(f"{report['tolerance']:g}", (entry["cost"], entry["error"][-1]))
    right.axhline(first["modes"]["persistence"]["error"][-1], color="gray", linestyle="--", label="persistence")
    right.scatter([], [], color="C0", label="surrogate")
    right.scatter([], [], color="C1", label="hybrid (tolerance)")
    right.set(xscale="log", yscale="log", xlabel="wall time / solver's", ylabel="final rel. L2 error vs solver",
              title="error vs cost")
    right.legend()
    return save_figure(fig, path)
