"""KAN operators against their MLP twins: KAN-FNO vs FNO and KAN-DeepONet vs DeepONet (issues 6 and 18).

Each pair has the same architecture (the KAN model swaps the MLPs' fixed GELUs for learnable
rationals in front of the same linear maps, initialised as the twin's: ``linear_init: mlp``) and
the same parameter count. Every model is trained twice: with the twin's default initialisation of
the pointwise linear maps (``linear_init: mlp`` for the KAN model) and with DESIGN.md section 6's
variance-preserving one, which for the twin is applied here by :func:`variance_preserving_twin`;
each family is then scored with its better initialisation (the same search for both; which one
wins depends on the problem). Parameters: the rationals' coefficients (10 per group and layer) are matched by
widening the MLP twin's pointwise nets (FNO: the block channel MLPs, ``channel_mlp_expansion``;
DeepONet: ``trunk_width``) to the closest count. Both get the same training budget: same data,
epochs, batch size, optimiser, schedule and seed, through the common trainer
(``operators.training.Trainer``), and every pair is trained for ``--seeds`` seeds (the seed sets
the initial weights and the batch order; the data are the same). Datasets are generated on the fly
with the pdeop families: Burgers (nu = 0.1, u0 -> u(t = 1)), Darcy (a -> u) and Navier–Stokes
nu = 1e-3 (``t_in`` steps in, the following steps one per call: trained with teacher forcing, scored
on the autoregressive rollout).

Reported per contender and seed: test relative L2 error (the trainer's ``evaluate_split`` of the final
weights on the test split, the first samples of which never touch training), parameter count and
seconds per training epoch. ``summary`` holds, per dataset and pair, the mean, sample standard
deviation, minimum and maximum of each contender's test error over the seeds, the ratio of the
means KAN / twin and the seeds on which KAN is at least as accurate (best init against best init,
and for each common init), and the parameter and epoch-time ratios (epoch times from one extra
epoch of the KAN model and the twin, default inits, of the first seed, timed round-robin after training,
``harness.interleaved``, so load changes on a shared machine hit both alike). ``summary["search"]``
records what was searched for each model family before the defaults were fixed (issue 18).

Run: ``python benchmarks/kan_operators.py [--quick] [--threads N] [--seeds N] [--dataset-seeds burgers=5]
[--datasets ...] [--pairs kan-fno] [--kan-settings JSON] [--inits default]``.
"""

from __future__ import annotations

import copy
import json
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

#: what was tried before the shipped defaults were fixed (issue 18; numbers in the issue 18 note)
SEARCH = {
    "controlled": "benchmarks/kan_diagnosis.py (results/kan_diagnosis.json): each KAN model on Burgers with "
                  "one setting changed at a time (linear_init, rational_lr_scale 1 / 0.1 / ~0, groups 1, "
                  "hidden rationals fitted to SiLU, issue 6's settings) against its twin, 3 seeds",
    "init": "both initialisations of every model are trained here and each family is scored with its better one",
    "rational_lr": "KAN-FNO's rational learning-rate scale 1 (shipped), 0.3, 0.1: chosen 0.3 on a Burgers validation "
                   "split (kan_diagnosis --validation 60), then measured here on every problem "
                   "(results/kan_operators_rational_lr_0.3.json, _0.1.json): lower scales cost Darcy and NS 5-11%, so 1 stays",
    "lr": "2e-3 for every model: of 5e-4, 1e-3, 2e-3, 5e-3 the one with the lowest final training loss of "
          "DeepONet on Burgers (seed 0, 40 epochs, issue 18's scratch runs)",
}


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
        darcy = {"samples": 300, "set": {"resolution": 25}}
        ns = {"samples": 80, "set": {"resolution": 32, "internal_resolution": 64, "dt": 5e-3, "T": 20.0}}
        n_test = {"burgers": 100, "darcy": 60, "navier-stokes": 20}
        width, modes_1d, modes_2d, ns_t = 24, 16, 10, (10, 5)

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


def run_config(dataset: dict[str, Any], model: str, folder: Path, epochs: int, seed: int = 0) -> dict[str, Any]:
    """The training configuration of one model on one dataset (the same budget for every model)."""
    base = "fno" if "fno" in model else "deeponet"
    data = {**dataset["data"], "path": str(folder / dataset["data"]["path"])}
    training = {"epochs": epochs, "batch_size": 10, "loss": "l2", "mode": dataset["mode"],
                "optimizer": {"name": "adam", "lr": 2e-3}, "scheduler": {"name": "cosine"}}
    if dataset["mode"] != "direct":
        training["step"] = 1
    return {"seed": seed, "data": data, "model": {"model": model, **dataset["models"][base]}, "training": training}


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


#: the two initialisations every model is trained with: the MLP twin's default (``nn.Linear``)
#: draw, which is also the KAN model's ``linear_init: mlp``, and DESIGN.md section 6's
#: variance-preserving one; each family is scored with its better one (the same search for both)
INITS = {"kan": ("mlp", "variance-preserving"), "twin": ("default", "variance-preserving")}
#: E[GELU(x)^2] for x ~ N(0, 1), by quadrature
GELU_SECOND_MOMENT = 0.42522


def variance_preserving_twin(model: torch.nn.Module) -> None:
    """Re-draw the MLP twin's pointwise MLPs with DESIGN.md section 6's variance-preserving rule, the one
    GR-KAN layers offer (``linear_init: variance-preserving``): ``W ~ N(0, 1 / (d_in E[F^2]))`` with F
    the identity for an MLP's first layer and GELU after it, zero bias. The spectral convolutions,
    skips and convolutional branches keep their initialisation, as in the KAN model."""
    from operators.layers.channel_mlp import ChannelMLP
    from operators.models.deeponet import _MLP

    for module in model.modules():
        if isinstance(module, (ChannelMLP, _MLP)):
            for i, layer in enumerate(module.layers):
                moment = 1.0 if i == 0 else GELU_SECOND_MOMENT
                with torch.no_grad():
                    layer.weight.normal_(0.0, (layer.weight.shape[1] * moment) ** -0.5)
                    if layer.bias is not None:
                        layer.bias.zero_()


def train_pair(name: str, dataset: dict[str, Any], pair: tuple[str, str], folder: Path, epochs: int,
               rounds: int, seed: int, inits: dict[str, tuple[str, ...]] = INITS,
               kan_settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Train the KAN model and its MLP twin, each with its ``inits`` (default both of :data:`INITS`;
    the first one of each first), with the same budget and seed; test errors, sizes and epoch times
    (the round-robin epoch timing of the KAN model and the twin with the default init only when
    ``rounds`` > 0). ``kan_settings`` overrides the KAN model's settings (e.g. a non-default
    ``rational_lr_scale``)."""
    from operators.commands.train import ensure_data
    from operators.training.config import run_config_from_mapping
    from operators.training.trainer import Trainer

    mlp, kan = pair
    trainers, rows = {}, []
    contenders = [(kan, init) for init in inits["kan"]] + [(mlp, init) for init in inits["twin"]]
    for model, init in contenders:  # the KAN model first: its size sets the twin's
        mapping = run_config(dataset, model, folder, epochs, seed)
        if model == kan:
            mapping["model"].update(kan_settings or {})
            mapping["model"]["linear_init"] = init
        else:
            mapping["model"].update(matched_width(trainers[kan].surrogate.model, model))
        config = run_config_from_mapping(mapping)
        ensure_data(config.data, quiet=True)
        trainer = Trainer(config, folder / f"{name}-{model}-{init}-{seed}", progress=False, log=lambda message: None)
        if model == mlp and init == "variance-preserving":
            variance_preserving_twin(trainer.surrogate.model)
        start = time.perf_counter()
        result = trainer.fit()
        seconds = time.perf_counter() - start
        error = trainer.evaluate_split(trainer.data.test)
        rows.append({"dataset": name, "model": model, "init": init, "seed": seed, "model_config": dict(config.model),
                     "parameters": parameter_count(trainer.surrogate.model),
                     "rational_lr_scale": getattr(trainer.surrogate.model.config, "rational_lr_scale", None),
                     "test_rel_l2": error, "final_train_loss": result.history[-1]["train_loss"],
                     "epochs": epochs, "train_items": len(trainer.data.train), "test_items": len(trainer.data.test),
                     "epoch_s_in_training": statistics.median(row["seconds"] for row in result.history),
                     "train_s": seconds})
        if init != "variance-preserving":
            trainers[model] = trainer
    if rounds:
        timings = interleaved({model: (lambda t=trainers[model]: _train_epoch(t)) for model in pair},
                              rounds=rounds, warmup=0)
        for row in rows:
            if row["init"] != "variance-preserving":
                row["epoch_s"] = timings[row["model"]]["median_s"]
                row["epoch_s_min"] = timings[row["model"]]["min_s"]
    return rows


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation, minimum, maximum and count of ``values``."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per dataset and pair: each contender's error spread over the seeds; the KAN model with its
    better init (lower mean) against the twin with its better init -- the ratio of the means and the
    seeds where KAN is at least as accurate -- and the same for each common init; parameter and
    epoch-time ratios; and the geometric means of the best-against-best ratios per pair."""
    summary: dict[str, Any] = {}
    for mlp, kan in PAIRS:
        ratios = []
        for dataset in dict.fromkeys(r["dataset"] for r in rows):
            errors = {(r["model"], r["init"], r["seed"]): r["test_rel_l2"] for r in rows if r["dataset"] == dataset}
            inits = {family: tuple(i for i in INITS[family] if any(m == model and i == init for m, init, _ in errors))
                     for family, model in (("kan", kan), ("twin", mlp))}
            wanted = [(kan, i) for i in inits["kan"]] + [(mlp, i) for i in inits["twin"]]
            seeds = sorted({s for _, _, s in errors if all((m, i, s) in errors for m, i in wanted)})
            if not seeds or not inits["kan"] or not inits["twin"]:
                continue
            spreads = {f"{m}/{i}": spread([errors[(m, i, s)] for s in seeds]) for m, i in wanted}
            best_kan = min(inits["kan"], key=lambda i: spreads[f"{kan}/{i}"]["mean"])
            best_twin = min(inits["twin"], key=lambda i: spreads[f"{mlp}/{i}"]["mean"])

            def versus(kan_init: str, twin_init: str) -> dict[str, Any]:
                ours = [errors[(kan, kan_init, s)] for s in seeds]
                theirs = [errors[(mlp, twin_init, s)] for s in seeds]
                return {"kan_init": kan_init, "twin_init": twin_init,
                        "error_ratio": statistics.fmean(ours) / statistics.fmean(theirs),
                        "kan_wins": sum(a <= b for a, b in zip(ours, theirs))}

            best = versus(best_kan, best_twin)
            entry: dict[str, Any] = {"seeds": len(seeds), "errors": spreads, "best": best,
                                     "same_init": [versus(k, t) for k, t in zip(inits["kan"], inits["twin"])],
                                     "error_ratio": best["error_ratio"], "kan_le_twin": best["error_ratio"] <= 1.0}
            first = {(r["model"], r["init"]): r for r in rows if r["dataset"] == dataset and r["seed"] == seeds[0]}
            ours, theirs = first[(kan, INITS["kan"][0])], first[(mlp, INITS["twin"][0])]
            entry["parameter_ratio"] = ours["parameters"] / theirs["parameters"]
            if "epoch_s" in ours and "epoch_s" in theirs:
                entry["epoch_time_ratio"] = ours["epoch_s"] / theirs["epoch_s"]
            summary[f"{kan}_vs_{mlp}_{dataset}"] = entry
            ratios.append(entry)
        if ratios:
            keys = [k for k in ("error_ratio", "parameter_ratio", "epoch_time_ratio") if all(k in r for r in ratios)]
            summary[f"{kan}_vs_{mlp}_geomean"] = {
                key: float(torch.tensor([r[key] for r in ratios]).log().mean().exp()) for key in keys}
    return summary


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 8 quick, 15 full)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per pair (default 1 quick, 3 full)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="first seed (use fresh ones, e.g. 100, to score settings chosen on seeds 0-4)")
    p.add_argument("--datasets", nargs="+", default=None, help="subset of burgers, darcy, navier-stokes")
    p.add_argument("--dataset-seeds", nargs="+", default=[], metavar="DATASET=N",
                   help="more (or fewer) seeds than --seeds for a dataset, e.g. burgers=5")
    p.add_argument("--pairs", nargs="+", default=[kan for _, kan in PAIRS], choices=[kan for _, kan in PAIRS],
                   help="KAN models to compare with their twins (default both)")
    p.add_argument("--kan-settings", type=json.loads, default={},
                   help='JSON of settings for the KAN models of --pairs (both by default), e.g. '
                        '\'{"rational_lr_scale": 1.0}\'')
    p.add_argument("--extend", type=Path, default=None,
                   help="a results file of this script (same epochs, inits and KAN settings) whose rows this run "
                        "adds to, e.g. more seeds with --first-seed; the summary covers all rows")
    p.add_argument("--inits", choices=("both", "default"), default="both",
                   help="train each model with both initialisations (default) or only its default one "
                        "(KAN linear_init mlp against the twin's default: half the time, no init search)")
    args = p.parse_args(argv)
    set_threads(args.threads)
    epochs = args.epochs or (8 if args.quick else 15)
    seeds = args.seeds or (1 if args.quick else 3)
    rounds = 2 if args.quick else 3
    inits = INITS if args.inits == "both" else {family: choices[:1] for family, choices in INITS.items()}
    chosen = datasets(args.quick)
    if args.datasets:
        unknown = sorted(set(args.datasets) - set(chosen))
        if unknown:
            p.error(f"unknown datasets {unknown}; choose from {sorted(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in args.datasets}
    per_dataset = {name: seeds for name in chosen}
    for item in args.dataset_seeds:
        name, _, count = item.partition("=")
        if name not in chosen or not count.isdigit() or int(count) < 1:
            p.error(f"--dataset-seeds takes DATASET=N with DATASET one of {sorted(chosen)} and N >= 1 (got {item!r})")
        per_dataset[name] = int(count)
    rows: list[dict[str, Any]] = []
    if args.extend is not None:
        try:
            earlier = json.loads(args.extend.read_text())
        except (OSError, ValueError) as error:
            p.error(f"--extend {args.extend}: cannot read a results file ({error})")
        same = {"epochs": epochs, "inits": {family: list(choices) for family, choices in inits.items()},
                "kan_settings": args.kan_settings}
        found = {key: earlier["summary"].get(key, {} if key == "kan_settings" else None) for key in same}
        if earlier.get("benchmark") != "kan_operators" or found != same:
            p.error(f"--extend {args.extend}: not a kan_operators run with {same} (it has {found})")
        scales = {row.get("rational_lr_scale") for row in earlier["rows"] if row["model"] == "kan-fno"} - {None}
        if args.kan_settings.get("rational_lr_scale") is not None and scales - {args.kan_settings["rational_lr_scale"]}:
            p.error(f"--extend {args.extend}: its KAN-FNO rows have rational_lr_scale {sorted(scales)}")
        rows = [row for row in earlier["rows"]
                if not (row["seed"] in range(args.first_seed, args.first_seed + max(per_dataset.values()))
                        and row["dataset"] in chosen)]
    start = time.perf_counter()
    # seeds outermost: a run stopped early still has every dataset and pair, with fewer seeds
    jobs = [(seed, name, pair) for seed in range(args.first_seed, args.first_seed + max(per_dataset.values()))
            for name in chosen if seed < args.first_seed + per_dataset[name]
            for pair in PAIRS if pair[1] in args.pairs]

    def summary_of(pending: list[tuple[int, str, tuple[str, str]]]) -> dict[str, Any]:
        summary = summarise(rows)
        summary.update(search=SEARCH, wall_seconds=time.perf_counter() - start,
                       mode="quick" if args.quick else "full", epochs=epochs,
                       seeds={name: sorted({r["seed"] for r in rows if r["dataset"] == name})
                              for name in dict.fromkeys(r["dataset"] for r in rows)},
                       pairs=list(args.pairs), kan_settings=args.kan_settings,
                       extended=str(args.extend) if args.extend else None,
                       inits={family: list(choices) for family, choices in inits.items()})
        if pending:  # written after each pair and seed while the run goes on
            summary["pending"] = [f"{name}/{pair[1]}/seed {seed}" for seed, name, pair in pending]
        return summary

    with tempfile.TemporaryDirectory(prefix="pdeop-kan-bench-") as tmp:
        for done, (seed, name, pair) in enumerate(jobs, start=1):
            rows += train_pair(name, copy.deepcopy(chosen[name]), pair, Path(tmp), epochs,
                               rounds if seed == args.first_seed else 0, seed, inits, args.kan_settings)
            print(format_table(rows[-len(inits["kan"]) - len(inits["twin"]):],
                               ["dataset", "model", "init", "seed", "parameters", "test_rel_l2"]), flush=True)
            if done < len(jobs):
                write_results("kan_operators", rows, summary_of(jobs[done:]), args.out)
    columns = ["dataset", "model", "init", "seed", "parameters", "test_rel_l2", "final_train_loss", "epoch_s", "epoch_s_min",
               "epoch_s_in_training"]
    print(format_table(rows, columns))
    summary = summary_of([])
    for key, value in summary.items():
        print(f"{key}: {value}")
    path = write_results("kan_operators", rows, summary, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
