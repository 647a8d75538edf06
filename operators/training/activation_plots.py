"""The learned rational activations of a model (KAN-FNO, KAN-DeepONet, any model with GR-KAN layers).

``pdeop plot RUN_DIR --activations`` draws, for every :class:`~operators.layers.rational.GroupRational`
in the model, one curve per group over a symmetric interval, with the shipped fit it started from
dashed for comparison and, when test data is at hand, the range of the inputs that rational actually
received shaded (outside it the curve is extrapolation the model never used).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from operators import kernels
from operators.layers.rational import GroupRational
from operators.layers.rational_fit import load_fit
from operators.training.plots import pyplot, save_figure
from solvers.errors import ConfigError

#: percentiles of a rational's inputs reported as its observed range (robust to a few outliers)
RANGE_PERCENTILES = (0.5, 99.5)


@dataclasses.dataclass(frozen=True)
class ActivationCurves:
    """Values of one rational activation on a grid.

    Attributes
    ----------
    name
        The module's name in the model (e.g. ``blocks.0.mlp.layers.1.rational``).
    x
        Grid ``[n]``.
    values
        ``F_g(x)`` per group, ``[G, n]``.
    initial
        The shipped fit the rational started from, ``[n]``.
    init
        Its name (``identity``, ``gelu``, ...).
    """

    name: str
    x: np.ndarray
    values: np.ndarray
    initial: np.ndarray
    init: str


def rational_modules(model: nn.Module) -> list[tuple[str, GroupRational]]:
    """The model's group-rational activations with their names, in registration order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, GroupRational)]


def _evaluate(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor) -> np.ndarray:
    """``F_g(x)`` for every group of the given coefficients, ``[G, n]`` in float64."""
    groups = denominator.shape[0]
    with torch.no_grad():
        values = kernels.rational(x.unsqueeze(-1).expand(-1, groups).contiguous(),
                                  numerator.to("cpu", torch.float64), denominator.to("cpu", torch.float64), groups)
    return values.T.numpy()


def activation_curves(model: nn.Module, limit: float | Mapping[str, float] = 3.0,
                      points: int = 401) -> list[ActivationCurves]:
    """Each group's learned rational on ``[-limit, limit]``, for every rational of ``model``.

    Parameters
    ----------
    model
        Any module holding :class:`GroupRational` activations.
    limit
        Half-width of the interval: one for all rationals, or per rational name (3 for the others).
    points
        Grid points.

    Raises
    ------
    ConfigError
        If the model has no rational activations.
    """
    modules = rational_modules(model)
    if not modules:
        raise ConfigError(f"{type(model).__name__} has no rational activations to draw "
                          f"(--activations is for KAN models such as kan-fno and kan-deeponet)")
    curves = []
    for name, module in modules:
        half = limit.get(name, 3.0) if isinstance(limit, Mapping) else limit
        x = torch.linspace(-half, half, points, dtype=torch.float64)
        numerator, denominator = module.group_coefficients()
        init_numerator, init_denominator = (torch.tensor([c], dtype=torch.float64) for c in load_fit(module.init))
        curves.append(ActivationCurves(name, x.numpy(), _evaluate(x, numerator, denominator),
                                       _evaluate(x, init_numerator, init_denominator)[0], module.init))
    return curves


def input_ranges(model: nn.Module, run: Callable[[], object]) -> dict[str, tuple[float, float]]:
    """Observed input range of every rational of ``model`` while ``run()`` calls it.

    Returns ``{name: (low, high)}``: the :data:`RANGE_PERCENTILES` of all values each rational
    received (every group together).
    """
    seen: dict[str, list[torch.Tensor]] = {}

    def hook(name: str):
        def record(module: nn.Module, args: tuple) -> None:
            values = args[0].detach().flatten().to(torch.float64)
            step = max(1, values.numel() // 200_000)  # a strided subset keeps quantile() cheap
            seen.setdefault(name, []).append(values[::step].cpu())
        return record

    handles = [module.register_forward_pre_hook(hook(name)) for name, module in rational_modules(model)]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    low, high = (p / 100.0 for p in RANGE_PERCENTILES)
    ranges = {}
    for name, chunks in seen.items():
        values = torch.cat(chunks)
        ranges[name] = (float(torch.quantile(values, low)), float(torch.quantile(values, high)))
    return ranges


def activation_figure(curves: list[ActivationCurves], path: Path,
                      ranges: dict[str, tuple[float, float]] | None = None, title: str = "") -> Path:
    """One panel per rational: a line per group, the initial fit dashed, the observed input range shaded."""
    plt = pyplot()
    columns = min(4, len(curves))
    rows = math.ceil(len(curves) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.9 * rows), squeeze=False)
    for ax, curve in zip(axes.flat, curves):
        colors = plt.cm.viridis(np.linspace(0.0, 0.9, curve.values.shape[0]))
        for g, (values, color) in enumerate(zip(curve.values, colors)):
            ax.plot(curve.x, values, color=color, linewidth=1.0, label=f"group {g}")
        ax.plot(curve.x, curve.initial, "k--", linewidth=0.8, label="initial fit")
        if ranges and curve.name in ranges:
            low, high = ranges[curve.name]
            ax.axvspan(max(low, curve.x[0]), min(high, curve.x[-1]), color="0.9", zorder=0,
                       label="inputs seen (99%)")
        ax.set_title(f"{curve.name} (from {curve.init})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="upper left")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_run_activations(run_dir: str | Path, path: Path, checkpoint: str = "best", data: Path | None = None,
                         items: int = 16) -> Path:
    """Draw a training run's learned rationals, shading the input ranges seen on its first test items.

    Each panel spans [-3, 3] or, if wider, the range its rational was fed.

    Parameters
    ----------
    run_dir
        Run folder written by ``pdeop train``.
    path
        The PNG to write.
    checkpoint
        ``best`` or ``last``.
    data
        Dataset file (default: the run's).
    items
        Test items run through the model to measure each rational's input range.

    Raises
    ------
    ConfigError
        If the run's model has no rational activations.
    """
    from operators.training.runs import evaluation_data, load_run
    from pde_data.loading import make_dataset

    loaded = load_run(run_dir, checkpoint)
    model = loaded.surrogate.model
    activation_curves(model, points=2)  # a model without rationals fails here, before any data is read
    dataset = make_dataset(evaluation_data(loaded, data), "test")
    x, _, c = dataset.batch(range(min(items, len(dataset))))
    ranges = input_ranges(model, lambda: loaded.surrogate(x, c))
    # draw at least [-3, 3] (the fits' interval) and the whole range each rational was fed
    limits = {name: max(3.0, 1.05 * max(abs(low), abs(high))) for name, (low, high) in ranges.items()}
    curves = activation_curves(model, limits)
    title = f"{type(model).model_name} rationals ({Path(run_dir).name}/{checkpoint}); shaded: inputs seen on test items"
    return activation_figure(curves, path, ranges, title)
