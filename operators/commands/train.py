"""Train an operator model from a YAML config (pdeop train CONFIG.yaml)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Optional

from operators.commands.arguments import minutes, threads
from solvers.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class GenerateRecipe:
    """``data.generate``: how to make the dataset file of a run when it is missing."""

    problem: str
    preset: Optional[str] = None
    samples: Optional[int] = None
    seed: Optional[int] = None
    set: dict = dataclasses.field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach this command's arguments to parser."""
    parser.add_argument("config", type=Path, help="training config (e.g. configs/train/fno_ns_quick.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, dotted keys nest (repeatable), e.g. --set training.epochs=5")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder (default: runs/CONFIG_NAME); must be new or empty unless --resume")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    parser.add_argument("--max-minutes", type=minutes, default=None,
                        help="stop after the epoch that ends past this time; --resume continues")
    parser.add_argument("--threads", type=threads, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is often fastest on a busy machine)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from operators.training.config import load_run_config
    from operators.training.run_folder import check_target

    set_threads(args.threads)
    check_device(args.device)
    mapping = load_run_config(args.config, args.overrides)
    run_dir = args.out or Path("runs") / args.config.stem
    check_target(run_dir, args.resume)  # before data are generated or loaded; again under the lock
    if "pde" in mapping:
        return _run_physics(mapping, run_dir, args)
    from operators.training.config import run_config_from_mapping
    from operators.training.trainer import Trainer

    config = run_config_from_mapping(mapping)
    ensure_data(config.data, quiet=args.quiet)
    trainer = Trainer(config, run_dir, device=args.device, progress=not args.quiet)
    result = trainer.fit(resume=args.resume, max_minutes=args.max_minutes)
    last = result.history[-1] if result.history else {}
    if not result.finished:
        state = "stopped (--max-minutes)"
    else:
        state = "finished" if result.epochs_done >= config.training.epochs else "finished by early stopping"
    scores = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k in ("train_loss", "val_l2") and v is not None)
    print(f"{state} after {result.epochs_done}/{config.training.epochs} epochs ({scores}); "
          f"best {result.best_score:.4g}; checkpoints in {run_dir}/best and {run_dir}/last")
    return 0


def _run_physics(mapping: dict[str, Any], run_dir: Path, args: argparse.Namespace) -> int:
    """Physics-informed runs (a ``pde:`` section instead of ``data:``) belong to operators.physics."""
    try:
        from operators.physics import training as physics_training
    except ModuleNotFoundError as exc:
        if exc.name not in ("operators.physics.training", "operators.physics"):
            raise
        raise ConfigError("this config has a 'pde' section (physics-informed training), but "
                          "operators.physics.training is not available in this installation") from None
    result = physics_training.run(mapping, run_dir, resume=args.resume, device=args.device,
                                  max_minutes=args.max_minutes)
    return int(result) if isinstance(result, int) else 0


def check_device(device: str) -> None:
    """Refuse ``--device cuda`` when torch has no CUDA device."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but torch sees no CUDA device; use --device cpu")


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (None leaves torch's default)."""
    if threads is None:
        return
    if not 1 <= threads <= 4096:
        raise ConfigError(f"--threads must be an integer from 1 to 4096 (got {threads})")
    import torch

    torch.set_num_threads(threads)


def ensure_data(config: Any, quiet: bool = False) -> None:
    """Generate ``config.path`` from its ``generate`` recipe when the file does not exist yet.

    The recipe is ``{problem, preset, samples, seed, set: {key: value}}``; generation resumes an
    interrupted file like ``pdeop generate`` does.
    """
    path = Path(config.path)
    if path.exists() or not config.generate:
        return
    from pde_data.config import from_mapping
    from pde_data.pipeline import generate_dataset, resolve_config

    recipe = from_mapping(GenerateRecipe, config.generate, where="data.generate.")
    overrides = [f"{k}={v}" for k, v in recipe.set.items()]
    resolved = resolve_config(recipe.problem, recipe.preset, overrides=overrides, samples=recipe.samples,
                              seed=recipe.seed)
    print(f"generating {path} ({recipe.problem}, {resolved.samples} samples) for this run", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    generate_dataset(resolved, path, progress=not quiet)
