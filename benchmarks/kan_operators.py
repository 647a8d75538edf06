"""KAN operators against their MLP twins: KAN-FNO vs FNO and KAN-DeepONet vs DeepONet (issue 6, req. 7).

Each pair has the same architecture (the KAN model swaps the MLPs' fixed GELUs for learnable
rationals in front of the same linear maps) and the same parameter count: the rationals' coefficients
(10 per group and layer) are matched by widening the MLP twin's pointwise nets (FNO: the block
channel MLPs, ``channel_mlp_expansion``; DeepONet: ``trunk_width``) to the closest count. Both get the
same training budget: same data, epochs, batch size, optimiser, schedule and seed, through
the common trainer (``operators.training.Trainer``). Datasets are generated on the fly with the
pdeop families: Burgers (nu = 0.1, u0 -> u(t = 1)), Darcy (a -> u) and Navier–Stokes nu = 1e-3
(``t_in`` steps in, the following steps one per call: trained with teacher forcing, scored on the
autoregressive rollout).

Reported per model: test relative L2 error (the trainer's ``evaluate_split`` of the final weights on
the test split, the first samples of which never touch training), parameter count, and seconds per
training epoch. Epoch times come from timing one extra epoch of each pair's two models round-robin
after training (``harness.interleaved``), so load changes on a shared machine hit both alike; the
in-training epoch times are reported too. ``summary`` holds, per dataset and pair, the error,
parameter and time ratios KAN / MLP.

Run: ``python benchmarks/kan_operators.py [--quick] [--threads N]``.
"""

from __future__ import annotations

import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import format_table, interleaved, parser, set_threads, write_results  # noqa: E402

PAIRS = (("fno", "kan-fno"), ("deeponet", "kan-deeponet"))


def datasets(quick: bool) -> dict[str, dict[str, Any]]:
    """Per dataset: the ``data`` section (with its generation recipe), the training mode and the models."""
    if quick:
        burgers = {"samples": 96, "set": {"resolution": 64, "internal_resolution": 128, "dt": 1e-3}}
        darcy = {"samples": 96, "set": {"resolution": 25}}
        ns = {"samples": 40, "set": {"resolution": 32, "internal_resolution": 32, "dt": 1e-2, "T": 8.0}}
        n_test = {"burgers": 16, "darcy": 16, "navier-stokes": 8}
        width, modes_1d, modes_2d, ns_t = 16, 12, 8, (4, 4)
    else:
        burgers = {"samples": 400, "set": {"resolution": 128, "internal_resolution": 256, "dt": 5e-4}}
        darcy = {"samples": 400, "set": {"resolution": 25}}
        ns = {"samples": 80, "set": {"resolution": 32, "internal_resolution": 64, "dt": 5e-3, "T": 20.0}}
        n_test = {"burgers": 100, "darcy": 100, "navier-stokes": 20}
        width, modes_1d, modes_2d, ns_t = 24, 16, 10, (10, 10)

    def data(name: str, recipe: dict, **protocol: Any) -> dict[str, Any]:
        samples = recipe["samples"]
        return {"path": f"{name}.h5", "n_train": samples - n_test[name], "n_val": 0, "n_test": n_test[name],
                "generate": {"problem": name, "preset": "fno", "seed": 0, **recipe}, **protocol}

    burgers["set"] = {**burgers["set"], "record_every": 1.0}
    fno_1d = {"n_modes": [modes_1d], "width": width, "n_layers": 4}
    fno_2d = {"n_modes": [modes_2d, modes_2d], "width": width, "n_layers": 4}
    deeponet_1d = {"branch": "mlp", "branch_width": 4 * width, "branch_layers": 2, "trunk_width": 4 * width,
                   "trunk_layers": 3, "basis": 2 * width}
    deeponet_2d = {"branch": "conv", "branch_width": width, "branch_layers": 3, "trunk_width": 4 * width,
                   "trunk_layers": 3, "basis": 2 * width}
    return {
        "burgers": {"data": data("burgers", burgers, protocol="window", t_in=1, t_out=1, normalization="global"),
                    "mode": "direct", "models": {"fno": fno_1d, "deeponet": deeponet_1d}},
        "darcy": {"data": data("darcy", darcy, protocol="static", inputs=["a"], outputs=["u"],
                               normalization="pointwise"),
                  "mode": "direct", "models": {"fno": {**fno_2d, "domain_padding": [0.125]},
                                               "deeponet": deeponet_2d}},
        "navier-stokes": {"data": data("navier-stokes", ns, protocol="window", t_in=ns_t[0], t_out=ns_t[1],
                                       normalization="global"),
                          "mode": "teacher-forcing", "models": {"fno": fno_2d, "deeponet": deeponet_2d}},
    }


def run_config(dataset: dict[str, Any], model: str, folder: Path, epochs: int) -> dict[str, Any]:
    """The training configuration of one model on one dataset (the same budget for every model)."""
    base = "fno" if "fno" in model else "deeponet"
    data = {**dataset["data"], "path": str(folder / dataset["data"]["path"])}
    training = {"epochs": epochs, "batch_size": 10, "loss": "l2", "mode": dataset["mode"],
                "optimizer": {"name": "adam", "lr": 2e-3}, "scheduler": {"name": "cosine"}}
    if dataset["mode"] != "direct":
        training["step"] = 1
    return {"seed": 0, "data": data, "model": {"model": model, **dataset["models"][base]}, "training": training}


def parameter_count(model: torch.nn.Module) -> int:
    """Real numbers the model learns (a complex weight counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


def matched_width(kan_model: torch.nn.Module, mlp_name: str) -> dict[str, Any]:
    """The MLP twin's width setting whose parameter count is closest to ``kan_model``'s.

    The twin is the KAN model's own config without the rational settings; FNO's block MLPs
    (``channel_mlp_expansion``) or DeepONet's trunk (``trunk_width``) grow one hidden unit at a time.
    """
    import dataclasses

    from operators.registry import MODELS, build, describe

    fields = {f.name for f in dataclasses.fields(MODELS[mlp_name][1])}
    settings = {k: v for k, v in describe(kan_model).items() if k in fields}
    target = parameter_count(kan_model)
    if mlp_name == "fno":
        hidden = round(settings["width"] * settings["channel_mlp_expansion"])
        options = [{"channel_mlp_expansion": (hidden + k) / settings["width"]} for k in range(65)]
    else:
        options = [{"trunk_width": settings["trunk_width"] + k} for k in range(65)]
    return min(options, key=lambda option: abs(parameter_count(build({"model": mlp_name, **settings, **option}))
                                               - target))


def _train_epoch(trainer) -> None:
    """One more epoch of optimiser steps, as the trainer's loop does them (for the interleaved timing)."""
    train = trainer.data.train
    size = trainer.config.training.batch_size
    trainer.surrogate.train()
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))
    for first in range(0, len(train), size):
        items = order[first:first + size]
        trainer.train_step(*train.batch(items), items)


def train_pair(name: str, dataset: dict[str, Any], pair: tuple[str, str], folder: Path, epochs: int,
               rounds: int) -> list[dict[str, Any]]:
    """Train both models of a pair with the same budget; test errors, sizes and epoch times."""
    from operators.commands.train import ensure_data
    from operators.training.config import run_config_from_mapping
    from operators.training.trainer import Trainer

    trainers, rows = {}, []
    for model in reversed(pair):  # the KAN model first: its size sets the MLP twin's
        mapping = run_config(dataset, model, folder, epochs)
        if model == pair[0]:
            mapping["model"].update(matched_width(trainers[pair[1]].surrogate.model, model))
        config = run_config_from_mapping(mapping)
        ensure_data(config.data, quiet=True)
        trainer = Trainer(config, folder / f"{name}-{model}", progress=False, log=lambda message: None)
        start = time.perf_counter()
        result = trainer.fit()
        seconds = time.perf_counter() - start
        error = trainer.evaluate_split(trainer.data.test)
        rows.append({"dataset": name, "model": model, "model_config": dict(config.model),
                     "parameters": parameter_count(trainer.surrogate.model),
                     "test_rel_l2": error, "final_train_loss": result.history[-1]["train_loss"],
                     "epochs": epochs, "train_items": len(trainer.data.train), "test_items": len(trainer.data.test),
                     "epoch_s_in_training": statistics.median(row["seconds"] for row in result.history),
                     "train_s": seconds})
        trainers[model] = trainer
    rows.reverse()
    timings = interleaved({model: (lambda t=t: _train_epoch(t)) for model, t in trainers.items()},
                          rounds=rounds, warmup=0)
    for row in rows:
        row["epoch_s"] = timings[row["model"]]["median_s"]
        row["epoch_s_min"] = timings[row["model"]]["min_s"]
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """KAN / MLP ratios per dataset and pair, and their geometric means per pair."""
    by = {(r["dataset"], r["model"]): r for r in rows}
    summary: dict[str, Any] = {}
    for mlp, kan in PAIRS:
        ratios = []
        for dataset in dict.fromkeys(r["dataset"] for r in rows):
            if (dataset, mlp) not in by or (dataset, kan) not in by:
                continue
            a, b = by[(dataset, mlp)], by[(dataset, kan)]
            entry = {"error_ratio": b["test_rel_l2"] / a["test_rel_l2"],
                     "parameter_ratio": b["parameters"] / a["parameters"],
                     "epoch_time_ratio": b["epoch_s"] / a["epoch_s"],
                     "kan_better": b["test_rel_l2"] < a["test_rel_l2"]}
            summary[f"{kan}_vs_{mlp}_{dataset}"] = entry
            ratios.append(entry)
        if ratios:
            geo = lambda key: float(torch.tensor([r[key] for r in ratios]).log().mean().exp())  # noqa: E731
            summary[f"{kan}_vs_{mlp}_geomean"] = {key: geo(key) for key in
                                                  ("error_ratio", "parameter_ratio", "epoch_time_ratio")}
    return summary


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 8 quick, 40 full)")
    p.add_argument("--datasets", nargs="+", default=None, help="subset of burgers, darcy, navier-stokes")
    args = p.parse_args(argv)
    set_threads(args.threads)
    epochs = args.epochs or (8 if args.quick else 40)
    rounds = 2 if args.quick else 3
    chosen = datasets(args.quick)
    if args.datasets:
        unknown = sorted(set(args.datasets) - set(chosen))
        if unknown:
            p.error(f"unknown datasets {unknown}; choose from {sorted(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in args.datasets}
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pdeop-kan-bench-") as tmp:
        for name, dataset in chosen.items():
            for pair in PAIRS:
                rows += train_pair(name, copy.deepcopy(dataset), pair, Path(tmp), epochs, rounds)
                print(format_table(rows[-2:], ["dataset", "model", "parameters", "test_rel_l2", "epoch_s"]),
                      flush=True)
    columns = ["dataset", "model", "parameters", "test_rel_l2", "final_train_loss", "epoch_s", "epoch_s_min",
               "epoch_s_in_training"]
    print(format_table(rows, columns))
    summary = summarise(rows)
    summary["wall_seconds"] = time.perf_counter() - start
    summary["mode"] = "quick" if args.quick else "full"
    summary["epochs"] = epochs
    for key, value in summary.items():
        print(f"{key}: {value}")
    path = write_results("kan_operators", rows, summary, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
