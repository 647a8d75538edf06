"""Accuracy with and without Lie-point symmetry augmentation (``data.augment``) on Kuramoto-Sivashinsky.

The data and protocol are those of ``configs/train/fno_ks_quick.yaml`` (LPSDA preset at N = 128: one
step in, one step out per call, pushforward training, L(sample) as a conditioning channel); the
training split is cut to ``--train`` trajectories (16, the low-data regime where Brandstetter et al.
report the largest gains, and all 48 of the config). Three FNOs (the fno_ks_quick model) are trained with the same epochs,
batch size, optimiser and schedule: without augmentation, with uniform translations, and with
translations plus Galilean boosts (eps ~ U(-0.4, 0.4)); each is scored on the same test trajectories
by ``pdeop evaluate``'s code: the one-step error, and the rollout of the whole remaining trajectory
(relative L2 over it, and the correlation time: the first time the correlation with the truth drops
below 0.8). Beside them, the trivial predictions of ``operators.training.baselines`` on the same
windows: persistence (the input state, held) and the training mean (of every training state, at every step).

    python benchmarks/augmentation.py [--quick] [--seeds 2] [--train 16 48] [--threads 1]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import format_table, parser, set_threads, write_results  # noqa: E402

from operators.commands.train import ensure_data  # noqa: E402
from operators.training.config import load_run_config, run_config_from_mapping  # noqa: E402
from operators.training.baselines import TrainingMean  # noqa: E402
from operators.training.evaluation import evaluate  # noqa: E402
from operators.training.runs import evaluate_run, evaluation_data, load_run  # noqa: E402
from operators.training.trainer import Trainer  # noqa: E402
from pde_data.config import configs_root  # noqa: E402
from pde_data.loading import make_dataset  # noqa: E402

CONFIG = "fno_ks_quick"
#: label -> data.augment section (None: no augmentation)
CONTENDERS: dict[str, dict[str, Any] | None] = {
    "fno": None,
    "fno + translate": {"translate": True},
    "fno + translate + boost": {"translate": True, "boost": 0.4},
}
#: (quick, full) epochs
EPOCHS = (2, 15)


def _scores(metrics: dict[str, Any], one_step: dict[str, Any]) -> dict[str, Any]:
    return {"one_step_rel_l2": one_step["rel_l2"], "rollout_rel_l2": metrics["rel_l2"],
            "correlation_time": metrics["correlation"]["time_mean"],
            "correlation_censored": metrics["correlation"]["censored"],
            "rollout_steps": len(metrics["rollout"]["rel_l2"])}


def run_one(label: str, augment: dict[str, Any] | None, seed: int, n_train: int, quick: bool,
            work: Path) -> tuple[dict[str, Any], Path, tuple[dict[str, Any], dict[str, Any]]]:
    """Train one contender; return its row, its run folder and its metrics (whole rollout, one step)."""
    mapping = load_run_config(configs_root() / "train" / f"{CONFIG}.yaml")
    mapping["seed"] = seed
    mapping["training"]["epochs"] = EPOCHS[0 if quick else 1]
    mapping["data"].update({"n_train": n_train, "n_val": 0, "augment": augment})
    if quick:
        mapping["data"]["n_test"] = 4
    config = run_config_from_mapping(mapping)
    ensure_data(config.data, quiet=True)
    run_dir = work / f"{label.replace(' ', '').replace('+', '-')}-{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    trainer = Trainer(config, run_dir, progress=False, log=lambda message: None)
    trainer.fit()
    seconds = time.perf_counter() - start
    loaded = load_run(run_dir)
    metrics = (evaluate_run(loaded), evaluate_run(loaded, horizon=1))
    row = {"model": label, "seed": seed, "train_trajectories": n_train, "epochs": config.training.epochs,
           "parameters": sum(p.numel() * (2 if p.is_complex() else 1) for p in trainer.surrogate.model.parameters()),
           "train_seconds": seconds, **_scores(*metrics)}
    return row, run_dir, metrics


def trivial_rows(run_dir: Path, metrics: tuple[dict[str, Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """Persistence (scored with the model by ``evaluate_run``, :mod:`operators.training.baselines`) and the
    training mean (:class:`~operators.training.baselines.TrainingMean` of every training state, predicted at
    every step) on the test windows of a trained run whose whole-rollout and one-step metrics are ``metrics``."""
    loaded = load_run(run_dir)
    train = make_dataset(loaded.config.data, "train")
    fixed = {"train_trajectories": len(train.samples), "epochs": 0, "parameters": 0, "train_seconds": 0.0}
    rows = [{"model": "persistence", "seed": None, **fixed,
             **_scores(*(m["baselines"]["persistence"] for m in metrics))}]
    state_mean = train.trajectories.to(torch.float64).mean(dim=(0, 1))  # [*space]
    errors = []
    for horizon in (None, 1):
        dataset = make_dataset(evaluation_data(loaded, horizon=horizon), "test")
        steps = state_mean.expand(dataset.out_channels, *state_mean.shape).to(train.trajectories.dtype)
        errors.append(evaluate(TrainingMean(steps), dataset, periodic=True)["rel_l2"])
    # a constant field has no correlation with anything
    rows.append({"model": "training mean", "seed": None, **fixed, "one_step_rel_l2": errors[1],
                 "rollout_rel_l2": errors[0]})
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean scores per training size and contender, and the ratios augmented / plain."""
    summary: dict[str, Any] = {}
    for n_train in sorted({r["train_trajectories"] for r in rows}):
        def mean(label: str, key: str) -> float:
            values = [r[key] for r in rows if r["model"] == label and r["train_trajectories"] == n_train
                      and r.get(key) is not None]
            return statistics.fmean(values) if values else float("nan")

        prefix = f"{n_train} trajectories, "
        for label in (*CONTENDERS, "persistence", "training mean"):
            for key in ("one_step_rel_l2", "rollout_rel_l2", "correlation_time"):
                summary[f"{prefix}{label}: {key}"] = mean(label, key)
        for label in list(CONTENDERS)[1:]:
            summary[f"{prefix}one_step_ratio ({label}) / fno"] = (mean(label, "one_step_rel_l2")
                                                                 / mean("fno", "one_step_rel_l2"))
            summary[f"{prefix}correlation_time_ratio ({label}) / fno"] = (mean(label, "correlation_time")
                                                                         / mean("fno", "correlation_time"))
    return summary


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=None, help="training seeds per contender (default 1 quick, 2 full)")
    p.add_argument("--train", type=int, nargs="+", default=None,
                   help="training trajectories, one run per value (default 8 quick, 16 and 48 full)")
    args = p.parse_args()
    set_threads(args.threads)
    seeds = range(args.seeds or (1 if args.quick else 2))
    rows = []
    with tempfile.TemporaryDirectory(prefix="pdeop-augmentation-") as tmp:
        for n_train in args.train or ([8] if args.quick else [16, 48]):
            for label, augment in CONTENDERS.items():
                for seed in seeds:
                    row, run_dir, metrics = run_one(label, augment, seed, n_train, args.quick, Path(tmp))
                    rows.append(row)
                    print(f"{n_train} trajectories, {label:24s} seed {seed}: one-step {row['one_step_rel_l2']:.4g}, "
                          f"correlation time {row['correlation_time']:.3g} ({row['train_seconds']:.0f} s)", flush=True)
            rows += trivial_rows(run_dir, metrics)
    summary = summarise(rows)
    print(format_table(rows, ["model", "seed", "train_trajectories", "epochs", "parameters", "train_seconds",
                              "one_step_rel_l2", "rollout_rel_l2", "correlation_time", "correlation_censored"]))
    for key, value in summary.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    name = "augmentation_quick" if args.quick else "augmentation"
    path = write_results(name, rows, summary, args.out, extra={"quick": args.quick, "threads": torch.get_num_threads(),
                                                               "command": " ".join(sys.argv)})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
