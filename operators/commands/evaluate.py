"""Evaluate a trained run on the test split (pdeop evaluate RUN_DIR --data FILE)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from solvers.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach this command's arguments to parser."""
    parser.add_argument("run_dir", type=Path, help="run folder written by 'pdeop train'")
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset file (default: the run's); its last n_test samples are the test split")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint (default best)")
    parser.add_argument("--samples", type=int, default=None, help="test samples (default: the run's n_test)")
    parser.add_argument("--horizon", type=int, default=None, help="rollout steps of autoregressive models")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="metrics file (default RUN_DIR/metrics.json)")


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from operators.physics.evaluation import is_physics_run
    from operators.training.runs import load_run

    if is_physics_run(args.run_dir):  # a 'pde:' run: errors against the exact / reference solution
        from operators.physics.evaluation import evaluate

        metrics = evaluate(args.run_dir, args.checkpoint)
        print(f"{metrics['method']} on {metrics['pde']['name']}: rel L2 {metrics['rel_l2']:.4g} "
              f"(max abs error {metrics['max_abs_error']:.4g}); metrics written to {args.run_dir / 'metrics.json'}")
        return 0
    for name in ("samples", "horizon"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be an integer >= 1 (got {value})")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but torch sees no CUDA device; use --device cpu")
    loaded = load_run(args.run_dir, args.checkpoint, args.device)
    metrics = evaluate_run(loaded, args.data, args.samples, args.horizon, args.device)
    out = args.out or args.run_dir / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    print(summary(metrics))
    print(f"metrics written to {out}")
    return 0


def evaluate_run(loaded, data: Path | None = None, samples: int | None = None, horizon: int | None = None,
                 device: str = "cpu") -> dict[str, Any]:
    """All test metrics of a loaded run, including zero-shot super-resolution when it applies."""
    from operators.training.evaluation import evaluate
    from operators.training.runs import evaluation_data
    from pde_data.loading import fingerprint, make_dataset, open_dataset

    config = evaluation_data(loaded, data, horizon)
    n_test = samples or loaded.config.data.n_test
    dataset = make_dataset(config, "test", n_samples=n_test)
    kwargs = {"periodic": loaded.periodic, "threshold": loaded.config.evaluation.correlation_threshold,
              "batch_size": loaded.config.training.eval_batch_size, "device": device}
    metrics: dict[str, Any] = {"run": str(loaded.run_dir), "checkpoint": loaded.checkpoint.name,
                               "data": config.path, "subsample": config.subsample, "test_samples": list(map(
                                   int, dataset.samples))}
    ds = open_dataset(config.path, allow_incomplete=config.allow_incomplete)
    metrics["same_dataset_as_training"] = fingerprint(ds) == loaded.metadata["dataset"]
    ds.close()
    metrics["train_resolution"] = loaded.metadata["grid"]["shape"]
    metrics.update(evaluate(loaded.surrogate, dataset, **kwargs))
    sub = loaded.config.evaluation.super_resolution_subsample
    if sub is None and config.subsample > 1:
        sub = 1
    if sub is not None and sub != config.subsample:
        fine = make_dataset(config.replace(subsample=sub), "test", n_samples=n_test)
        result = evaluate(loaded.surrogate, fine, **kwargs)
        metrics["super_resolution"] = {"subsample": sub, **{k: result[k] for k in ("resolution", "rel_l2", "rel_h1")}}
        if "rollout" in result:
            metrics["super_resolution"]["rollout"] = result["rollout"]
    return metrics


def summary(metrics: dict[str, Any]) -> str:
    """A few human-readable lines of the headline numbers."""
    lines = [f"test ({metrics['n_items']} items at {'x'.join(map(str, metrics['resolution']))}): "
             f"rel L2 {metrics['rel_l2']:.4g}, rel H1 {metrics['rel_h1']:.4g}, "
             f"spectrum error {metrics['energy_spectrum']['rel_l2']:.3g}"]
    if "rollout" in metrics:
        curve = metrics["rollout"]["rel_l2"]
        lines.append(f"rollout over {len(curve)} steps: rel L2 first {curve[0]:.4g}, last {curve[-1]:.4g}")
        corr = metrics["correlation"]
        lines.append(f"correlation time (corr < {corr['threshold']}): mean {corr['time_mean']:.4g}, "
                     f"median {corr['time_median']:.4g} ({corr['censored']} never dropped)")
    if "super_resolution" in metrics:
        sr = metrics["super_resolution"]
        lines.append(f"zero-shot at {'x'.join(map(str, sr['resolution']))}: rel L2 {sr['rel_l2']:.4g}, "
                     f"rel H1 {sr['rel_h1']:.4g}")
    return "\n".join(lines)
