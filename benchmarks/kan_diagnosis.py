"""Why KAN-FNO and KAN-DeepONet lost to their MLP twins on Burgers: one setting at a time (issue 18).

The full ``kan_operators`` run of issue 6 measured test-error ratios KAN / twin of 2.64 (KAN-FNO)
and 8.85 (KAN-DeepONet) on Burgers at equal parameters. This script trains each KAN model on one
dataset of ``kan_operators`` (Burgers by default, its sizes and budget) with its shipped settings
and with one setting changed at a time, next to its MLP twin (default initialisation, parameters
matched to the shipped KAN model), for several seeds:

- ``issue-6 settings``: the linear maps initialised variance-preserving (DESIGN.md section 6) and
  the rationals at the full learning rate, the defaults the 2.64 / 8.85 were measured with;
- ``linear_init: variance-preserving`` alone; the rationals' learning-rate scale 1 or 0.1 (whichever
  is not the model's default) and ~0 (``1e-6``: the rationals stay the GELU / identity fits they
  start from, i.e. an MLP with rational-fitted activations: isolates what learning them does);
- one rational group per layer instead of 8; the hidden rationals fitted to SiLU instead of GELU.
- (issue 18, third session) the rationals' learning rate at 0.3x and 3x; one group per channel
  (``groups: 24``, up to the layer's channel count).

With ``--validation N`` the last ``N`` training samples are held out as a validation split (the
test split is the same as ``kan_operators``'); the validation error is what a setting is chosen
on, so that the test error stays an unbiased estimate. ``--families`` and ``--variants`` restrict
the run; ``--first-seed`` picks fresh seeds (the final comparison in ``kan_operators`` uses 0-4).

Reported per model, variant and seed: the test relative L2 error before training (what the
initialisation alone gives) and after, and the final training loss. ``summary`` holds per model and
variant the spread over the seeds and the ratio of the mean test error to the twin's.

Run: ``python benchmarks/kan_diagnosis.py [--quick] [--threads 1] [--seeds 3] [--epochs 20]``
(results in ``benchmarks/results/kan_diagnosis.json``; the numbers are discussed in the issue 18 note).
"""

from __future__ import annotations

import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import format_table, parser, set_threads, write_results  # noqa: E402
from kan_operators import PAIRS, datasets, matched_width, parameter_count, run_config, spread  # noqa: E402

#: one setting changed at a time from the KAN model's shipped config (a variant equal to the shipped
#: config for a family, e.g. ``rational_lr_scale: 1`` for KAN-FNO, is skipped for it)
VARIANTS = {
    "shipped": {},
    "issue-6 settings": {"linear_init": "variance-preserving", "rational_lr_scale": 1.0},
    "variance-preserving init": {"linear_init": "variance-preserving"},
    "rational lr x1": {"rational_lr_scale": 1.0},
    "rational lr x0.1": {"rational_lr_scale": 0.1},
    "rational lr x0.3": {"rational_lr_scale": 0.3},
    "rational lr x3": {"rational_lr_scale": 3.0},
    "rationals frozen": {"rational_lr_scale": 1e-6},
    "groups 1": {"groups": 1},
    "groups 24": {"groups": 24},
    "hidden rationals SiLU": {"hidden_init": "silu"},
}
TWIN = "MLP twin"
#: the twin with the KAN model's own widths (not widened to its parameter count): what the rational
#: coefficients' parameters buy when the twin spends them on hidden units instead
NARROW_TWIN = "MLP twin, KAN's widths"


def configure(dataset: dict[str, Any], model: str, settings: dict[str, Any], folder: Path, epochs: int,
              seed: int, twin_of=None, validation: int = 0):
    """The run config of one model: ``kan_operators``' config of the dataset with ``settings`` (and,
    for a twin, the width matching ``twin_of``'s parameter count); ``validation`` training samples
    become the validation split."""
    from operators.training.config import run_config_from_mapping

    mapping = run_config(copy.deepcopy(dataset), model, folder, epochs, seed)
    mapping["data"]["n_train"] -= validation
    mapping["data"]["n_val"] += validation
    mapping["model"].update(settings)
    if twin_of is not None:
        mapping["model"].update(matched_width(twin_of, model))
    return run_config_from_mapping(mapping)


def settings_of(config) -> dict[str, Any]:
    """Every setting of the run config's model, unset ones at their defaults."""
    import dataclasses

    from operators.registry import MODELS, model_names

    model_names()  # registers the models
    settings = dict(config.model)
    fields = dataclasses.fields(MODELS[settings.pop("model")][1])
    return {f.name: settings.get(f.name, f.default) for f in fields}


def train(config, folder: Path):
    """Train one model; its trainer and the test errors before and after training."""
    from operators.commands.train import ensure_data
    from operators.training.trainer import Trainer

    ensure_data(config.data, quiet=True)
    trainer = Trainer(config, folder / f"run-{time.time_ns()}", progress=False, log=lambda message: None)
    before = trainer.evaluate_split(trainer.data.test)
    result = trainer.fit()
    scores = {"initial_test_rel_l2": before, "test_rel_l2": trainer.evaluate_split(trainer.data.test),
              "final_train_loss": result.history[-1]["train_loss"]}
    if trainer.data.val is not None:
        scores["val_rel_l2"] = trainer.evaluate_split(trainer.data.val)
    return trainer, scores


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per KAN model and variant: spreads over the seeds and the mean test error over the twin's."""
    summary: dict[str, Any] = {}
    for twin, kan in PAIRS:
        twin_rows = [r for r in rows if r["family"] == kan and r["variant"] == TWIN]
        if not twin_rows:
            continue
        keys = [k for k in ("val_rel_l2", "test_rel_l2", "initial_test_rel_l2", "final_train_loss")
                if all(k in r for r in rows)]
        twin_means = {key: statistics.fmean(r[key] for r in twin_rows) for key in keys}
        entry = {}
        for variant in dict.fromkeys(r["variant"] for r in rows if r["family"] == kan):
            chosen = [r for r in rows if r["family"] == kan and r["variant"] == variant]
            entry[variant] = {key: spread([r[key] for r in chosen]) for key in keys}
            entry[variant]["parameters"] = chosen[0]["parameters"]
            entry[variant]["error_over_twin"] = entry[variant]["test_rel_l2"]["mean"] / twin_means["test_rel_l2"]
            if "val_rel_l2" in keys:
                entry[variant]["val_error_over_twin"] = (entry[variant]["val_rel_l2"]["mean"]
                                                         / twin_means["val_rel_l2"])
        summary[kan] = entry
    return summary


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 8 quick, 20 full)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per model and variant (default 1 quick, 3 full)")
    p.add_argument("--dataset", default="burgers", choices=("burgers", "darcy", "navier-stokes"))
    p.add_argument("--families", nargs="+", default=[kan for _, kan in PAIRS], choices=[kan for _, kan in PAIRS],
                   help="KAN models to diagnose (default both)")
    p.add_argument("--variants", nargs="+", default=None, choices=[v for v in VARIANTS if v != "shipped"],
                   help="variants besides the shipped config (default all)")
    p.add_argument("--validation", type=int, default=0,
                   help="training samples held out as the validation split that settings are chosen on")
    p.add_argument("--first-seed", type=int, default=0, help="first seed")
    p.add_argument("--narrow-twin", action="store_true",
                   help="also train the twin with the KAN model's widths (fewer parameters than the KAN model)")
    args = p.parse_args(argv)
    variants = {k: v for k, v in VARIANTS.items() if k == "shipped" or args.variants is None or k in args.variants}
    set_threads(args.threads)
    epochs = args.epochs or (8 if args.quick else 20)
    seeds = args.seeds or (1 if args.quick else 3)
    dataset = datasets(args.quick)[args.dataset]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pdeop-kan-diagnosis-") as tmp:
        for twin, kan in [pair for pair in PAIRS if pair[1] in args.families]:
            for seed in range(args.first_seed, args.first_seed + seeds):
                shipped = None
                for variant, settings in variants.items():
                    config = configure(dataset, kan, settings, Path(tmp), epochs, seed, validation=args.validation)
                    if shipped is not None and settings_of(config) == settings_of(shipped.config):
                        continue  # this variant is the family's shipped config
                    trainer, result = train(config, Path(tmp))
                    shipped = shipped or trainer
                    rows.append({"dataset": args.dataset, "family": kan, "variant": variant, "model": kan,
                                 "settings": settings, "seed": seed, "epochs": epochs,
                                 "parameters": parameter_count(trainer.surrogate.model), **result})
                config = configure(dataset, twin, {}, Path(tmp), epochs, seed, twin_of=shipped.surrogate.model,
                                   validation=args.validation)
                trainer, result = train(config, Path(tmp))
                rows.append({"dataset": args.dataset, "family": kan, "variant": TWIN, "model": twin,
                             "settings": dict(config.model), "seed": seed, "epochs": epochs,
                             "parameters": parameter_count(trainer.surrogate.model), **result})
                if args.narrow_twin:
                    config = configure(dataset, twin, {}, Path(tmp), epochs, seed, validation=args.validation)
                    trainer, result = train(config, Path(tmp))
                    rows.append({"dataset": args.dataset, "family": kan, "variant": NARROW_TWIN, "model": twin,
                                 "settings": dict(config.model), "seed": seed, "epochs": epochs,
                                 "parameters": parameter_count(trainer.surrogate.model), **result})
                print(format_table([r for r in rows if r["family"] == kan and r["seed"] == seed],
                                   ["family", "variant", "seed", "parameters", "initial_test_rel_l2", "val_rel_l2",
                                    "test_rel_l2", "final_train_loss"]), flush=True)
                write_results("kan_diagnosis", rows, {**summarise(rows), "partial": True}, args.out)
    summary = summarise(rows)
    for kan, entry in summary.items():
        print(kan)
        for variant, values in entry.items():
            error = values["test_rel_l2"]
            val = (f"val {values['val_rel_l2']['mean']:.4f} +- {values['val_rel_l2']['std']:.4f} "
                   f"(x{values['val_error_over_twin']:.2f}), " if "val_rel_l2" in values else "")
            print(f"  {variant:26s} {val}test {error['mean']:.4f} +- {error['std']:.4f} "
                  f"(x{values['error_over_twin']:.2f} the twin), initial {values['initial_test_rel_l2']['mean']:.3g}")
    summary.update({"wall_seconds": time.perf_counter() - started, "mode": "quick" if args.quick else "full",
                    "epochs": epochs, "seeds": list(range(args.first_seed, args.first_seed + seeds)),
                    "dataset": args.dataset, "validation": args.validation})
    path = write_results("kan_diagnosis", rows, summary, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
