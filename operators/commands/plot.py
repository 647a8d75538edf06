"""Plot a run: training curves, sample panels, rollout error, correlation, spectra (pdeop plot RUN_DIR)."""

from __future__ import annotations

import argparse
from pathlib import Path

from solvers.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach this command's arguments to parser."""
    parser.add_argument("run_dir", type=Path, help="run folder written by 'pdeop train'")
    parser.add_argument("--samples", type=int, nargs="+", default=[0],
                        help="test items to draw as truth / prediction / error panels (default 0)")
    parser.add_argument("--data", type=Path, default=None, help="dataset file (default: the run's)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNGs (default RUN_DIR/plots)")
    parser.add_argument("--activations", action="store_true",
                        help="also draw each group's learned rational activation (KAN models)")


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from pde_data.output_files import check_folder_writable
    from operators.physics.evaluation import is_physics_run
    from operators.training import plots
    from operators.training.run_folder import read_config, read_history
    from operators.training.runs import read_metrics

    read_config(args.run_dir)  # a run folder at all, before anything else
    out = args.out or args.run_dir / "plots"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the PNGs")
    check_folder_writable(out, "--out")
    if is_physics_run(args.run_dir):  # a 'pde:' run: solution, error, loss and causal-weight figures
        from operators.physics.plots import plot

        for path in plot(args.run_dir, out):
            print(path)
        return 0
    written: list[Path] = []
    history = read_history(args.run_dir, required=("epoch", "train_loss", "lr"))
    if history:
        written.append(plots.training_curves(history, out / "training.png"))
    metrics_path = args.run_dir / "metrics.json"
    metrics = read_metrics(metrics_path) if metrics_path.is_file() else None
    written += _sample_figures(args, out, metrics)
    if metrics is None:
        print(f"no {metrics_path}: run 'pdeop evaluate {args.run_dir}' for rollout, correlation and spectrum plots")
    else:
        if "rollout" in metrics:
            written.append(plots.rollout_curves(metrics, out / "rollout.png"))
        written.append(plots.energy_spectra(metrics, out / "spectrum.png"))
    if args.activations:
        from operators.training.activation_plots import plot_run_activations

        written.append(plot_run_activations(args.run_dir, out / "activations.png", args.checkpoint, args.data))
    for path in written:
        print(path)
    return 0


def _sample_figures(args: argparse.Namespace, out: Path, metrics: dict | None) -> list[Path]:
    """Truth / prediction / error panels of the chosen test items."""
    import torch

    from operators.training import plots
    from operators.training.runs import evaluation_data, load_run
    from pde_data.loading import make_dataset

    loaded = load_run(args.run_dir, args.checkpoint)
    data = args.data or (Path(metrics["data"]) if metrics and metrics.get("data") else None)
    dataset = make_dataset(evaluation_data(loaded, data), "test")
    bad = [i for i in args.samples if not 0 <= i < len(dataset)]
    if bad:
        raise ConfigError(f"--samples {bad[0]} is out of range: the test split has {len(dataset)} items (0..{len(dataset) - 1})")
    x, y, c = dataset.batch(args.samples)
    with torch.no_grad():
        pred = loaded.surrogate.predict(x, c, y.shape[1]) if dataset.time_dependent else loaded.surrogate(x, c)
    times = dataset.target_times() if dataset.time_dependent else None
    paths = []
    for row, item in enumerate(args.samples):
        title = f"test item {item} (sample {int(dataset.samples[dataset.item_sample[item]])})"
        paths.append(plots.sample_panels(y[row].numpy(), pred[row].numpy(), out / f"sample_{item}.png", title, times))
    return paths
