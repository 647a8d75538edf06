"""PNG figures of a run: training curves, sample panels, rollout error, correlation, energy spectra.

Every function writes one PNG with matplotlib's non-interactive Agg backend and returns its path.
Inputs are plain arrays and the dictionaries written by the trainer (``training.json``) and by
``pdeop evaluate`` (``metrics.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG (folders created), close it and return ``path``.

    The PNG is written to a staged file and renamed into place (:mod:`operators.atomic_files`), so a
    figure is never half-written. Figures made without a layout engine get ``tight_layout`` first;
    ``constrained_layout`` ones keep theirs.
    """
    from operators.atomic_files import staged_file

    if fig.get_layout_engine() is None:
        fig.tight_layout()
    try:
        with staged_file(path, overwrite=True) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        pyplot().close(fig)
    return path


def _floats(values: Any) -> np.ndarray:
    """A metrics list as floats (null, a non-finite value in strict JSON, becomes NaN)."""
    return np.asarray(values, dtype=float)


def _g(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def training_curves(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Training loss, validation error and (physics-informed runs) the PDE residual per epoch (log scale),
    learning rate on a second axis."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [row["epoch"] for row in history]
    ax.semilogy(epochs, _floats([row["train_loss"] for row in history]), label="train loss")
    for key, label in (("physics_loss", "PDE residual (unweighted)"), ("val_l2", "validation rel. L2")):
        if any(key in row for row in history):
            ax.semilogy(epochs, _floats([row.get(key) for row in history]), label=label)
    ax.set_xlabel("epoch")
    ax.legend(loc="upper right")
    lr_axis = ax.twinx()
    lr_axis.plot(epochs, _floats([row["lr"] for row in history]), color="0.6", linestyle=":", label="learning rate")
    lr_axis.set_ylabel("learning rate", color="0.4")
    return save_figure(fig, path)


#: line style and label of each baseline in the rollout figure
_BASELINE_STYLES = {"persistence": ("--", "persistence"), "linear_extrapolation": (":", "linear extrapolation")}


def rollout_curves(metrics: dict[str, Any], path: Path) -> Path:
    """Relative L2 error per predicted step and, when present, the mean correlation with the truth, each with
    the baselines' curves on the same items, and the model's skill per step against each baseline."""
    plt = pyplot()
    has_corr = "correlation" in metrics
    baselines = {k: v for k, v in metrics.get("baselines", {}).items() if "rollout" in v}
    panels = 1 + has_corr + bool(baselines)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    axes = axes[0]
    rollout = metrics["rollout"]
    marker = "." if len(rollout["t"]) <= 40 else None
    axes[0].plot(_floats(rollout["t"]), _floats(rollout["rel_l2"]), marker=marker, color="C0", label="model")
    for name, result in baselines.items():
        style, label = _BASELINE_STYLES.get(name, ("-.", name))
        axes[0].plot(_floats(result["rollout"]["t"]), _floats(result["rollout"]["rel_l2"]), style, color="0.35", label=label)
    if "super_resolution" in metrics and "rollout" in metrics["super_resolution"]:
        sr = metrics["super_resolution"]
        axes[0].plot(_floats(sr["rollout"]["t"]), _floats(sr["rollout"]["rel_l2"]), marker=marker, color="C1",
                     label=f"model, zero-shot {'x'.join(map(str, sr['resolution']))}")
    axes[0].set(xlabel="time after the last input step", ylabel="relative L2 error", title="rollout error")
    axes[0].legend()
    if has_corr:
        corr = metrics["correlation"]
        axes[1].plot(_floats(corr["t"]), _floats(corr["mean"]), marker=marker, color="C0", label="model")
        for name, result in baselines.items():
            style, label = _BASELINE_STYLES.get(name, ("-.", name))
            axes[1].plot(_floats(result["correlation"]["t"]), _floats(result["correlation"]["mean"]), style, color="0.35", label=label)
        axes[1].axhline(corr["threshold"], color="k", linestyle="--", linewidth=0.8)
        if corr.get("time_mean") is not None:
            axes[1].axvline(corr["time_mean"], color="C3", linestyle=":", label=f"model's mean time {_g(corr['time_mean'])}")
        axes[1].set(xlabel="time after the last input step", ylabel="Pearson correlation",
                    title="correlation with the truth")
        axes[1].legend()
    if baselines:
        ax = axes[-1]
        lowest = 0.0
        for name in baselines:
            style, label = _BASELINE_STYLES.get(name, ("-.", name))
            values = _floats(metrics["skill"][name]["rollout"]["rel_l2"])  # null (undefined) -> NaN
            lowest = min(lowest, np.nanmin(values, initial=0.0))
            ax.plot(_floats(rollout["t"]), values, style, marker=marker, color="C0", label=f"vs {label}")
        ax.axhline(0.0, color="k", linewidth=0.8)
        ax.set_ylim(max(lowest, -2.0) - 0.05, 1.05)  # a very negative skill is cut off at -2: it is bad enough
        ax.set(xlabel="time after the last input step", ylabel="1 - error_model / error_baseline",
               title="model skill (> 0: better than the baseline)")
        ax.legend()
    return save_figure(fig, path)


def energy_spectra(metrics: dict[str, Any], path: Path) -> Path:
    """Shell-summed energy spectra of truth and prediction on log-log axes."""
    plt = pyplot()
    spectrum = metrics["energy_spectrum"]
    k = _floats(spectrum["k"])[1:]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(k, _floats(spectrum["truth"])[1:], label="truth")
    ax.loglog(k, _floats(spectrum["prediction"])[1:], "--", label="prediction")
    ax.set(xlabel="wavenumber |k|", ylabel="E(k)",
           title=f"energy spectrum (rel. error {_g(spectrum.get('rel_l2'), 2)})")
    ax.legend()
    return save_figure(fig, path)


def sample_panels(truth: np.ndarray, prediction: np.ndarray, path: Path, title: str = "",
                  times: Sequence[float] | None = None) -> Path:
    """Truth, prediction and error of one item.

    Parameters
    ----------
    truth, prediction
        ``[C, *space]`` arrays: a 1D field per channel becomes lines (one channel) or a
        channel-by-space image (time steps); 2D fields become one row per shown channel (at most
        three: first, middle, last).
    times
        Labels of the channels (target times) for time-dependent data.
    """
    plt = pyplot()
    error = prediction - truth
    if truth.ndim == 2 and truth.shape[0] == 1:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        axes[0].plot(truth[0], label="truth")
        axes[0].plot(prediction[0], "--", label="prediction")
        axes[0].legend()
        axes[1].plot(error[0], color="C3")
        axes[1].set_title("error")
    elif truth.ndim == 2:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        extent = None if times is None else [0, truth.shape[1], times[-1], times[0]]
        _images(fig, axes, [truth, prediction, error], extent=extent, ylabel="time" if times is not None else "channel")
    else:
        rows = sorted({0, truth.shape[0] // 2, truth.shape[0] - 1})
        fig, axes = plt.subplots(len(rows), 3, figsize=(11, 3.4 * len(rows)), squeeze=False)
        for r, c in enumerate(rows):
            label = f"t = {times[c]:.3g}" if times is not None else f"channel {c}"
            _images(fig, axes[r], [truth[c], prediction[c], error[c]], ylabel=label)
    fig.suptitle(title)
    return save_figure(fig, path)


def _images(fig, axes, fields: list[np.ndarray], extent=None, ylabel: str = "") -> None:
    limit = max(abs(float(np.min(fields[0]))), abs(float(np.max(fields[0]))), 1e-12)
    for ax, field, name in zip(axes, fields, ("truth", "prediction", "error")):
        scale = limit if name != "error" else max(float(np.abs(field).max()), 1e-12)
        image = ax.imshow(field.T if field.ndim == 2 and extent is None else field, cmap="RdBu_r", vmin=-scale,
                          vmax=scale, origin="lower" if extent is None else "upper", aspect="auto", extent=extent)
        ax.set_title(name)
        fig.colorbar(image, ax=ax, shrink=0.8)
    axes[0].set_ylabel(ylabel)
