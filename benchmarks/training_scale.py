"""Training at scale on CPU: data-parallel ranks, bfloat16 autocast, and online training from the generator.

All three parts train the quick Navier-Stokes config (``configs/train/fno_ns_quick.yaml``: FNO-2D,
nu = 1e-3, 32^2 grid, 10 frames in, 10 out, unrolled one step per call) with one torch thread per
process, and compare two ways of doing the same thing side by side in this run:

1. **DDP, 1 vs 2 processes** (``pdeop train --nproc``, gloo): the same global batch of 10, so the same
   steps; throughput = training items per second of the epochs after the first (which pays for
   start-up and warm-up), both runs alternated ``--rounds`` times. Target: 2 ranks >= 1.7x.
2. **bfloat16 vs float32** (``training.precision``), in this process: epoch seconds and the test error
   after the same epochs (reported, no target on CPU).
3. **Online vs offline at equal wall-clock**: offline trains epochs over the fixed file (generated
   once, its cost reported beside), online trains on fresh samples from one background generator
   process (``data.source: online``). Online stops after the first epoch that ends past ``--budget``
   seconds of training, offline after the first epoch past the seconds online trained (equal wall-clock;
   the held-out generation of the online run is reported apart, as the file's generation is). Both models are scored on the same independent test samples (another seed of
   the recipe, seen by neither), beside persistence (the last input frame repeated). The rows give the
   generator's and the trainer's throughput and the fraction of the online run spent waiting for samples.

Run: ``python benchmarks/training_scale.py [--quick]`` (about 2 minutes quick, 12 full, on 2 idle cores).
``--only ddp`` runs the DDP rows alone (full: 2 alternated rounds of 6 epochs, about 2-3 minutes on two
idle cores; the 1.7x target needs two free cores, so run it on a quiet machine and report the load).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import format_table, parser, set_threads, write_results

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "train" / "fno_ns_quick.yaml"
#: the parts of the benchmark, in the order they run
PARTS = ("ddp", "precision", "online")


def _arguments():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=None, help="alternated 1-rank / 2-rank runs (default 1 quick, 2 full)")
    p.add_argument("--budget", type=float, default=None,
                   help="online vs offline: seconds of training each (default 15 quick, 90 full)")
    p.add_argument("--epochs", type=int, default=None,
                   help="bfloat16 vs float32: epochs of each run (default 3 quick, 30 full: the config's)")
    p.add_argument("--data", type=Path, default=None,
                   help="the NS file (default: the config's data.path below the repository, made if missing)")
    p.add_argument("--only", choices=PARTS, default=None,
                   help="run one part alone (e.g. 'ddp': the 1-vs-2-process rows, a few minutes, for a quiet "
                        "machine); writes training_scale[_quick]_PART.json")
    return p


def _overrides(quick: bool, data: Path) -> list[str]:
    """The config's settings for this benchmark (quick: 12 training samples instead of 60)."""
    extra = ["data.n_train=12", "data.n_val=2", "data.n_test=4"] if quick else []
    return [f"data.path={data}", *extra]


def _mapping(overrides: list[str]) -> dict[str, Any]:
    from operators.training.config import load_run_config

    return load_run_config(CONFIG, overrides)


def _config(overrides: list[str]):
    from operators.training.config import run_config_from_mapping

    return run_config_from_mapping(_mapping(overrides))


def _steady(history: list[dict[str, Any]]) -> float:
    """Median seconds of the epochs after the first (all of them if there is one)."""
    seconds = [row["seconds"] for row in history]
    return statistics.median(seconds[1:] or seconds)


# ---------------------------------------------------------------------------------------------- DDP
def ddp_rows(overrides: list[str], items: int, epochs: int, rounds: int, work: Path) -> tuple[list[dict], dict]:
    """Alternate 1- and 2-process runs of ``pdeop train`` (one thread each); items/s per run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    seconds: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for nproc in (1, 2):
            out = work / f"ddp_{nproc}_{r}"
            command = [sys.executable, "-m", "operators.cli", "train", str(CONFIG), "--out", str(out), "--quiet",
                       "--threads", "1", "--nproc", str(nproc), "--set", f"training.epochs={epochs}"]
            command += [a for o in overrides for a in ("--set", o)]
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"pdeop train --nproc {nproc} failed:\n{done.stderr[-2000:]}")
            seconds[nproc].append(_steady(json.loads((out / "training.json").read_text())["history"]))
    rows = [{"part": "ddp", "case": f"{n} process{'es' if n > 1 else ''} x 1 thread", "epoch_s": statistics.median(s),
             "epoch_s_all": s, "items_per_s": items / statistics.median(s)} for n, s in seconds.items()]
    ratios = [a / b for a, b in zip(seconds[1], seconds[2])]
    return rows, {"ddp_2_over_1_throughput": statistics.median(ratios), "ddp_ratios_per_round": ratios,
                  "ddp_target": 1.7, "ddp_target_met": statistics.median(ratios) >= 1.7}


# ---------------------------------------------------------------------------------------- precision
def _test_error(model, dataset) -> float:
    """Mean relative L2 error of the whole rollout over ``dataset`` (the trainer's own metric)."""
    from operators.training.evaluation import predictions
    from operators.training.losses import relative_l2

    total = sum(float(relative_l2(pred, y, reduction="sum")) for pred, y in predictions(model, dataset))
    return total / len(dataset)


def precision_rows(overrides: list[str], epochs: int, test, work: Path) -> tuple[list[dict], dict]:
    """float32 and bfloat16 runs of the same config in this process: epoch seconds, test error."""
    from operators.training.trainer import Trainer

    rows = []
    for name in ("float32", "bfloat16"):
        config = _config([*overrides, f"training.precision={name}", f"training.epochs={epochs}"])
        trainer = Trainer(config, work / f"precision_{name}", progress=False)
        result = trainer.fit()
        rows.append({"part": "precision", "case": name, "epochs": epochs, "epoch_s": _steady(result.history),
                     "items_per_s": len(trainer.data.train) / _steady(result.history),
                     "test_rel_l2": _test_error(trainer.surrogate, test)})
    f32, bf16 = rows
    return rows, {"bf16_over_f32_throughput": bf16["items_per_s"] / f32["items_per_s"],
                  "bf16_over_f32_test_error": bf16["test_rel_l2"] / f32["test_rel_l2"]}


# ------------------------------------------------------------------------------------ online/offline
def online_rows(overrides: list[str], budget: float, test, generation: dict[str, float],
                work: Path) -> tuple[list[dict], dict]:
    """Online (one generator process) training for ``budget`` seconds, then offline (the file) for as long."""
    from operators.training.online import StreamOptions
    from operators.training.trainer import Trainer

    rows = []
    for source in ("online", "file"):  # offline gets the seconds online actually trained (its epochs are long)
        config = _config([*overrides, f"data.source={source}", "training.epochs=100000"])
        made = time.perf_counter()
        trainer = Trainer(config, work / f"source_{source}", progress=False, stream=StreamOptions(workers=1, ahead=4))
        setup = time.perf_counter() - made
        result = trainer.fit(max_minutes=(budget if source == "online" else rows[0]["train_s"]) / 60)
        history = result.history
        trained = sum(row["seconds"] for row in history)
        waited = sum(row.get("data_wait_s", 0.0) for row in history)
        items = len(trainer.data.train)
        rows.append({"part": "online_vs_offline", "case": "offline (file)" if source == "file" else "online (1 generator)",
                     "setup_s": setup, "train_s": trained, "epochs": len(history), "steps": len(history) * math.ceil(
                         items / config.training.batch_size), "samples_seen": len(history) * items,
                     "distinct_samples": items if source == "file" else len(history) * items,
                     "items_per_s": len(history) * items / trained, "wait_fraction": waited / trained,
                     "test_rel_l2": _test_error(trainer.surrogate, test)})
    online, offline = rows
    return rows, {"online_over_offline_test_error": online["test_rel_l2"] / offline["test_rel_l2"],
                  "online_wait_fraction": online["wait_fraction"],
                  "generator_samples_per_s": generation["samples_per_s"],
                  "trainer_items_per_s_offline": offline["items_per_s"],
                  "trainer_over_generator": offline["items_per_s"] / generation["samples_per_s"],
                  "winner_at_equal_wall_clock": "online" if online["test_rel_l2"] < offline["test_rel_l2"] else "offline"}


def _generate(overrides: list[str], path: Path, samples: int, seed_shift: int = 0) -> dict[str, float]:
    """Generate ``samples`` of the config's recipe into ``path`` (seed + ``seed_shift``); seconds and rate."""
    from operators.training.online import resolve_recipe
    from pde_data.pipeline import generate_dataset

    data = _config(overrides).data
    recipe = resolve_recipe(data, samples)
    if seed_shift:
        recipe = dataclasses.replace(recipe, seed=recipe.seed + seed_shift)
    start = time.perf_counter()
    generate_dataset(recipe, path, progress=False)
    seconds = time.perf_counter() - start
    return {"samples": samples, "seconds": seconds, "samples_per_s": samples / seconds}


def _independent_test(overrides: list[str], work: Path, samples: int):
    """``samples`` windows of the recipe with another seed (in no training or validation set)."""
    from pde_data.loading import make_dataset

    path = work / "independent_test.h5"
    generation = _generate(overrides, path, samples, seed_shift=1000)
    data = _config(overrides).data
    return make_dataset(data.replace(path=str(path), n_train=1, n_val=0, n_test=samples - 1), "test"), generation


def main() -> None:
    args = _arguments().parse_args()
    quick = args.quick
    threads = args.threads or 1
    set_threads(threads)
    rounds = args.rounds or (1 if quick else 2)
    budget = args.budget or (15.0 if quick else 90.0)
    parts = (args.only,) if args.only else PARTS
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="training_scale_") as folder:
        work = Path(folder)
        data = args.data or ROOT / _mapping([]).get("data", {})["path"]
        overrides = _overrides(quick, data)
        file_generation = None
        if not Path(data).exists():
            count = _mapping([])["data"]["generate"]["samples"]
            Path(data).parent.mkdir(parents=True, exist_ok=True)
            file_generation = _generate([f"data.path={data}"], Path(data), count)
        rows, summary = [], {}
        test = test_generation = None
        if "precision" in parts or "online" in parts:
            test, test_generation = _independent_test(overrides, work, 5 if quick else 9)
        if "ddp" in parts:
            from operators.training.trainer import Trainer

            full = overrides[:1]  # DDP: the config's 60 training samples also when quick (6 steps an epoch)
            items = len(Trainer(_config(full), work / "probe", progress=False).data.train)
            summary.update({"ddp_training_items": items, "rounds": rounds})
        run = {"ddp": lambda: ddp_rows(full, items, 3 if quick else 6, rounds, work),
               "precision": lambda: precision_rows(overrides, args.epochs or (3 if quick else 30), test, work),
               "online": lambda: online_rows(overrides, budget, test, test_generation, work)}
        for part in parts:
            new_rows, new_summary = run[part]()
            rows += new_rows
            summary.update(new_summary)
            print(format_table(new_rows, [c for c in dict.fromkeys(k for r in new_rows for k in r) if c != "epoch_s_all"]))
    summary.update({
        "quick": quick, "parts": list(parts), "threads_per_process": threads, "config": str(CONFIG.relative_to(ROOT)),
        "overrides": overrides[1:], "file_generation": file_generation,
        "load_average_1min": [load_before[0], os.getloadavg()[0]], "cpu_count": os.cpu_count(),
    })
    if test is not None:
        summary.update({
            "budget_s": budget, "persistence_test_rel_l2": _test_error(_persistence(), test), "test_samples": len(test),
            "independent_test_generation": test_generation,
            "file_generation_estimate_s": _mapping([])["data"]["generate"]["samples"] / test_generation["samples_per_s"],
        })
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (list, dict))}, indent=1))
    name = "training_scale" + ("_quick" if quick else "") + (f"_{args.only}" if args.only else "")
    print(f"wrote {write_results(name, rows, summary, out=args.out)}")


def _persistence():
    from operators.training.baselines import Persistence

    return Persistence()


if __name__ == "__main__":
    main()
