"""Figures of a physics-informed run (PNG, matplotlib's Agg backend), written to ``run_dir/plots``.

* ``solution.png``: prediction, reference and absolute error (t-x images in 1-D; the last time in 2-D);
* ``error_in_time.png``: relative L2 error at each time;
* ``training.png``: loss terms, validation loss and monitored relative L2 against the step;
* ``causal_weights.png`` (causal PINN): w_i against slice time for logged steps, and min w / eps;
* ``characteristics.png`` (LPINN): predicted characteristic curves x_L(x0, t).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from operators import strict_json
from operators.physics.evaluation import METRICS, PREDICTION, evaluate, load_physics_run
from operators.physics.lagrangian import lagrangian_state
from operators.physics.training import CAUSAL_WEIGHTS
from operators.training.plots import pyplot, save_figure
from operators.training.run_folder import read_history
from solvers.errors import ConfigError


def plot(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Draw every figure that applies to the run; evaluates it first if it has no ``prediction.npz``.

    Figures go to ``out`` (default ``run_dir/plots``). Returns the paths of the PNG files written.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    if not (run_dir / PREDICTION).is_file() or not (run_dir / METRICS).is_file():
        evaluate(run_dir)
    metrics = strict_json.check_fields(strict_json.read(run_dir / METRICS), {
        "method": "string", "pde": "mapping", "rel_l2": "number?", "rel_l2_per_time": "numbers",
        "checkpoint": "string"}, str(run_dir / METRICS))
    arrays = _prediction_arrays(run_dir / PREDICTION)
    written = [solution_panels(arrays, metrics, out / "solution.png"),
               error_in_time(arrays["t"], metrics, out / "error_in_time.png")]
    history = read_history(run_dir, required=("step",))
    if history:
        written.append(training_curves(history, out / "training.png"))
    causal_path = run_dir / CAUSAL_WEIGHTS
    if causal_path.is_file():
        rows = strict_json.check_fields(strict_json.read(causal_path), {"rows": "list"}, str(causal_path))["rows"]
        for i, row in enumerate(rows):
            strict_json.check_fields(row, {"step": "int", "weights": "numbers"}, f"{causal_path} row {i}")
        if rows:
            written.append(causal_weight_curves(rows, out / "causal_weights.png"))
    if metrics["method"] == "lpinn":
        _, spec, model = load_physics_run(run_dir, metrics.get("checkpoint", "best"))
        written.append(characteristics(model, spec.lower[0], spec.upper[0], spec.t_end, out / "characteristics.png"))
    return written


def _prediction_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of ``prediction.npz`` (no pickles), checked to be what the plots draw."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path} is damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                          f"rerun 'pdeop evaluate'") from None
    needed = ("t", "x", "prediction", "reference")
    if any(k not in arrays for k in needed) or arrays["prediction"].shape != arrays["reference"].shape or \
            arrays["prediction"].shape[:1] != arrays["t"].shape or arrays["prediction"].ndim not in (2, 3):
        raise ConfigError(f"{path} does not hold the arrays {', '.join(needed)} of matching shapes; rerun "
                          f"'pdeop evaluate'")
    return arrays


def solution_panels(arrays: dict[str, np.ndarray], metrics: dict[str, Any], path: Path) -> Path:
    """Prediction, reference and |error| side by side."""
    plt = pyplot()

    pred, ref = arrays["prediction"], arrays["reference"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    error = "n/a" if metrics["rel_l2"] is None else format(metrics["rel_l2"], ".3g")
    title = f"{metrics['method']} on {metrics['pde'].get('name')}: rel. L2 {error}"
    if pred.ndim == 2:
        t, x = arrays["t"], arrays["x"]
        extent = (t[0], t[-1], x[0], x[-1])
        panels = (pred.T, ref.T, np.abs(pred - ref).T)
        labels = ("t", "x")
    else:
        x, y = arrays["x"], arrays["y"]
        extent = (x[0], x[-1], y[0], y[-1])
        panels = (pred[-1].T, ref[-1].T, np.abs(pred[-1] - ref[-1]).T)
        labels = ("x", "y")
        title += f" (t = {arrays['t'][-1]:.3g})"
    limit = float(np.abs(ref).max())
    for ax, values, name in zip(axes, panels, ("prediction", "reference", "|error|")):
        kwargs = {"cmap": "magma"} if name == "|error|" else {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
        image = ax.imshow(values, origin="lower", aspect="auto", extent=extent, **kwargs)
        ax.set_title(name)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        fig.colorbar(image, ax=ax)
    fig.suptitle(title)
    return save_figure(fig, path)


def error_in_time(t: np.ndarray, metrics: dict[str, Any], path: Path) -> Path:
    """Relative L2 error at each evaluation time."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    per_time = np.asarray(metrics["rel_l2_per_time"], dtype=float)
    if per_time.shape != t.shape:
        raise ConfigError(f"metrics.json: rel_l2_per_time has {per_time.size} values for {t.size} times; "
                          f"rerun 'pdeop evaluate'")
    ax.semilogy(t, per_time)
    ax.set_xlabel("t")
    ax.set_ylabel("relative L2 error")
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, path)


def training_curves(history: list[dict[str, Any]], path: Path) -> Path:
    """Loss terms (log scale) and, on the right, validation loss and monitored relative error."""
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    steps = [row["step"] for row in history]
    skip = {"step", "window", "lr", "seconds", "val_loss", "rel_l2", "epsilon", "min_weight"}
    for key in dict.fromkeys(k for row in history for k in row if k not in skip):
        left.semilogy(steps, np.asarray([row.get(key) for row in history], dtype=float), label=key)
    left.set_xlabel("step")
    left.set_title("training loss terms")
    left.legend()
    validated = [row for row in history if "val_loss" in row]
    right.semilogy([r["step"] for r in validated], np.asarray([r["val_loss"] for r in validated], dtype=float), "o-",
                   label="validation loss")
    if any("rel_l2" in r for r in validated):
        right.semilogy([r["step"] for r in validated], np.asarray([r.get("rel_l2") for r in validated], dtype=float),
                       "s-",
                       label="relative L2 (monitor grid)")
    right.set_xlabel("step")
    right.legend()
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, path)


def causal_weight_curves(rows: list[dict[str, Any]], path: Path) -> Path:
    """Causal weights against slice index for the logged steps, and min weight / eps over training."""
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    colors = plt.cm.viridis(np.linspace(0, 1, len(rows)))
    for row, color in zip(rows, colors):
        weights = row["weights"]
        left.plot((np.arange(len(weights)) + 0.5) / len(weights), weights, color=color)
    left.set_xlabel("slice time (fraction of the window)")
    left.set_ylabel("w_i")
    left.set_title("causal weights (dark: early steps, light: late)")
    steps = [row["step"] for row in rows]
    right.plot(steps, [min(row["weights"]) for row in rows], label="min w_i")
    right.set_xlabel("step")
    right.set_ylim(-0.02, 1.02)
    twin = right.twinx()
    twin.semilogy(steps, [row["epsilon"] for row in rows], "k--", label="eps")
    twin.set_ylabel("eps")
    right.legend(loc="lower right")
    right.grid(True, alpha=0.3)
    return save_figure(fig, path)


def characteristics(model, lower: float, upper: float, t_end: float, path: Path, curves: int = 24) -> Path:
    """Predicted characteristic curves x_L(x0, t), unwrapped (not taken modulo the period)."""
    plt = pyplot()

    t = np.linspace(0.0, t_end, 101)
    x0 = lower + (upper - lower) * np.arange(curves) / curves
    x_l, _ = lagrangian_state(model, t, x0)
    fig, ax = plt.subplots(figsize=(6, 5), constrained_layout=True)
    ax.plot(x_l, t, color="tab:blue", lw=1)
    ax.set_xlabel("x_L(x0, t)")
    ax.set_ylabel("t")
    ax.set_title("LPINN characteristics")
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)
