"""Accuracy at an equal, small training budget (issue 4, 9b): our FNO vs neuralop's FNO on our
Navier-Stokes nu = 1e-3 data, MgNO vs FNO on Darcy, and FNO's correlation time on Kuramoto-Sivashinsky.

Every contender is trained by the same trainer (``operators.training.Trainer``) on the same data
with the same epochs, batch size, optimiser and schedule, then scored by ``pdeop evaluate``'s code
on the test split, which also scores the trivial baselines on the same items
(``operators.training.baselines``): each row carries the baseline's error and the model's skill
``1 - error_model / error_baseline`` — persistence (last input frame repeated) for time-dependent
data, with the skill at the first and the worst rollout step, and the training-set mean output for
Darcy. The data and protocols are those of the shipped quick configs
(``configs/train/{fno_ns,fno_darcy,fno_ks}_quick.yaml``; data generated on first use); only the
``model`` section and the budget change here. neuralop's ``FNO`` is registered for this script as
model ``neuralop-fno`` with the same width, modes and layers as ours (both at neuralop's default
architecture: lifting/projection MLPs, channel MLPs with soft-gating skips, grid channels).

    python benchmarks/operator_accuracy.py [--quick] [--seeds 2] [--threads 1]

Targets (DESIGN.md §10): our FNO's test error <= neuralop's; MgNO's < FNO's on Darcy.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import format_table, parser, set_threads, write_results  # noqa: E402

from operators.commands.train import ensure_data  # noqa: E402
from operators.layers.neuralop_interop import fno_state_from_neuralop  # noqa: E402
from operators.registry import MODELS, register_model  # noqa: E402
from operators.training.config import load_run_config, run_config_from_mapping  # noqa: E402
from operators.training.runs import evaluate_run, load_run  # noqa: E402
from operators.training.trainer import Trainer  # noqa: E402
from pde_data.config import configs_root  # noqa: E402


@dataclasses.dataclass(frozen=True)
class NeuralopFNOConfig:
    """neuralop.models.FNO at its default architecture."""

    in_channels: int
    out_channels: int
    n_modes: tuple[int, ...]
    width: int = 32
    n_layers: int = 4


class NeuralopFNO(nn.Module):
    """neuralop's FNO behind pdeop's model interface (benchmark only)."""

    def __init__(self, config: NeuralopFNOConfig) -> None:
        super().__init__()
        from neuralop.models import FNO

        self.config = config
        self.net = FNO(n_modes=tuple(config.n_modes), in_channels=config.in_channels,
                       out_channels=config.out_channels, hidden_channels=config.width, n_layers=config.n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Tensors only: neuralop adds a ``_metadata`` dict, which a safetensors checkpoint cannot hold."""
        state = super().state_dict(*args, **kwargs)  # the destination dict when called by a parent
        for key in [k for k, v in state.items() if not isinstance(v, torch.Tensor)]:
            del state[key]
        return state


if "neuralop-fno" not in MODELS:
    register_model("neuralop-fno", NeuralopFNOConfig)(NeuralopFNO)

# (task, contender) -> model section; the data, protocol and training settings come from the config.
NS_MODEL = {"n_modes": [8, 8], "width": 20, "n_layers": 4}
CONTENDERS: dict[str, tuple[str, list[tuple[str, dict[str, Any]]]]] = {
    "navier-stokes": ("fno_ns_quick", [
        ("pdeop fno", {"model": "fno", **NS_MODEL}),
        ("neuralop fno", {"model": "neuralop-fno", **NS_MODEL}),
        # our FNO started from the very weights neuralop's contender starts from (same seed): separates
        # "different model or training" from "different random initial draw"
        ("pdeop fno, neuralop init", {"model": "fno", **NS_MODEL, "init": "neuralop"}),
    ]),
    "darcy": ("fno_darcy_quick", [
        ("pdeop fno", {"model": "fno", "n_modes": [12, 12], "width": 24, "n_layers": 4, "domain_padding": [0.1]}),
        ("pdeop mgno", {"model": "mgno", "width": 24, "n_layers": 4, "levels": 5, "pre_smoothing": [1, 1, 1, 1, 2],
                        "post_smoothing": [0], "padding": "zeros", "norm": "none"}),
    ]),
    "kuramoto-sivashinsky": ("fno_ks_quick", [
        ("pdeop fno", {"model": "fno", "n_modes": [32], "width": 32, "n_layers": 4}),
    ]),
}
#: epochs per task: (quick, full)
EPOCHS = {"navier-stokes": (1, 25), "darcy": (2, 30), "kuramoto-sivashinsky": (1, 15)}
#: quick mode trains on fewer samples so that everything (data included) fits in two minutes
QUICK_DATA = {"navier-stokes": {"n_train": 12, "n_val": 0, "n_test": 4},
              "darcy": {"n_train": 40, "n_val": 0, "n_test": 10},
              "kuramoto-sivashinsky": {"n_train": 8, "n_val": 0, "n_test": 4}}


def neuralop_initial_state(config, work: Path) -> dict[str, torch.Tensor]:
    """The initial weights the ``neuralop-fno`` contender gets under ``config``'s seed, as our FNO's state."""
    section = {**config.model, "model": "neuralop-fno"}
    theirs = Trainer(dataclasses.replace(config, model=section), work, progress=False, log=lambda message: None)
    return fno_state_from_neuralop(theirs.surrogate.model.net.state_dict(), len(theirs.data.train.space_shape))


def run_one(task: str, label: str, model: dict[str, Any], seed: int, quick: bool, work: Path) -> dict[str, Any]:
    """Train one contender with the task's budget and return its row."""
    config_name, _ = CONTENDERS[task]
    mapping = load_run_config(configs_root() / "train" / f"{config_name}.yaml")
    mapping["model"] = dict(model)
    init = mapping["model"].pop("init", None)
    mapping["seed"] = seed
    mapping["training"]["epochs"] = EPOCHS[task][0 if quick else 1]
    if quick:
        mapping["data"].update(QUICK_DATA[task])
    config = run_config_from_mapping(mapping)
    ensure_data(config.data, quiet=True)
    run_dir = work / f"{task}-{label.replace(' ', '-')}-{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    trainer = Trainer(config, run_dir, progress=False, log=lambda message: None)
    if init == "neuralop":
        trainer.surrogate.model.load_state_dict(neuralop_initial_state(config, work / "neuralop-init"))
    result = trainer.fit()
    seconds = time.perf_counter() - start
    metrics = evaluate_run(load_run(run_dir))
    row = {
        "task": task, "model": label, "seed": seed, "epochs": config.training.epochs,
        "parameters": sum(p.numel() * (2 if p.is_complex() else 1) for p in trainer.surrogate.model.parameters()),
        "train_seconds": seconds, "test_rel_l2": metrics["rel_l2"], "test_rel_h1": metrics["rel_h1"],
        "best_val_or_train": result.best_score,
    }
    if "correlation" in metrics:
        row["correlation_time"] = metrics["correlation"]["time_mean"]
        row["correlation_censored"] = metrics["correlation"]["censored"]
        row["rollout_steps"] = len(metrics["rollout"]["rel_l2"])
    row.update(baseline_columns(metrics))
    return row


def baseline_columns(metrics: dict[str, Any]) -> dict[str, Any]:
    """The reference baseline of a run's metrics (persistence, else the training mean), its test error and the
    model's skill against it; for rollouts also the skill at the first step and at the worst step."""
    name = next(n for n in ("persistence", "training_mean") if n in metrics["skill"])
    skill = metrics["skill"][name]
    columns = {"baseline": name, "baseline_rel_l2": metrics["baselines"][name]["rel_l2"], "skill": skill["rel_l2"]}
    if "rollout" in skill:
        steps = skill["rollout"]["rel_l2"]
        columns.update({"baseline_rel_l2_step1": metrics["baselines"][name]["rollout"]["rel_l2"][0],
                        "rel_l2_step1": metrics["rollout"]["rel_l2"][0], "skill_step1": steps[0],
                        "skill_worst_step": min((v for v in steps if v is not None), default=None)})
    return columns


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean errors per contender and the target ratios."""
    def mean(task: str, label: str, key: str = "test_rel_l2") -> float:
        values = [r[key] for r in rows if r["task"] == task and r["model"] == label]
        return statistics.fmean(values) if values else float("nan")

    skills = {f"{task}_{label.replace(' ', '_').replace(',', '')}_{key}": mean(task, label, key)
              for task, (_, contenders) in CONTENDERS.items() for label, _ in contenders
              for key in ("baseline_rel_l2", "skill", "skill_step1", "skill_worst_step")
              if any(r["task"] == task and r["model"] == label and key in r for r in rows)}

    ours, theirs = mean("navier-stokes", "pdeop fno"), mean("navier-stokes", "neuralop fno")
    fno, mgno = mean("darcy", "pdeop fno"), mean("darcy", "pdeop mgno")
    return {
        "ns_rel_l2_pdeop_fno": ours,
        "ns_rel_l2_neuralop_fno": theirs,
        "ns_ratio_pdeop_over_neuralop": ours / theirs,
        "ns_target_met (ratio <= 1)": ours <= theirs,
        "ns_rel_l2_pdeop_fno_from_neuralop_init": mean("navier-stokes", "pdeop fno, neuralop init"),
        "darcy_rel_l2_fno": fno,
        "darcy_rel_l2_mgno": mgno,
        "darcy_ratio_mgno_over_fno": mgno / fno,
        "darcy_target_met (ratio < 1)": mgno < fno,
        "ks_correlation_time_fno": mean("kuramoto-sivashinsky", "pdeop fno", "correlation_time"),
        "ks_rel_l2_fno": mean("kuramoto-sivashinsky", "pdeop fno"),
        "every_model_beats_its_baseline_at_every_step": all(
            (r.get("skill_worst_step", r["skill"]) or 0.0) > 0 for r in rows),
        **skills,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=None, help="training seeds per contender (default 1 quick, 2 full)")
    p.add_argument("--tasks", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    args = p.parse_args()
    set_threads(args.threads)
    seeds = range(args.seeds or (1 if args.quick else 2))
    rows = []
    with tempfile.TemporaryDirectory(prefix="pdeop-accuracy-") as tmp:
        for task in args.tasks:
            for label, model in CONTENDERS[task][1]:
                for seed in seeds:
                    rows.append(run_one(task, label, model, seed, args.quick, Path(tmp)))
                    print(f"{task:22s} {label:13s} seed {seed}: rel L2 {rows[-1]['test_rel_l2']:.4g} "
                          f"({rows[-1]['train_seconds']:.0f} s)", flush=True)
    summary = summarise(rows)
    print(format_table(rows, ["task", "model", "seed", "epochs", "parameters", "train_seconds", "test_rel_l2",
                              "test_rel_h1", "correlation_time"]))
    print(format_table(rows, ["task", "model", "seed", "test_rel_l2", "baseline", "baseline_rel_l2", "skill",
                              "rel_l2_step1", "baseline_rel_l2_step1", "skill_step1", "skill_worst_step"]))
    for key, value in summary.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    name = "operator_accuracy_quick" if args.quick else "operator_accuracy"
    path = write_results(name, rows, summary, args.out, extra={"quick": args.quick, "threads": torch.get_num_threads(),
                                                               "command": " ".join(sys.argv)})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
