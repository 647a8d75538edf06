"""Train an operator model from a YAML config (pdeop train CONFIG.yaml).

Several processes: ``pdeop train CONFIG --nproc N`` on this machine, or ``torchrun [--nnodes ...]
--nproc_per_node N -m operators.cli train CONFIG`` (see README "Training at scale").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from operators.commands.arguments import minutes, positive_int, threads
from solvers.errors import ConfigError, PdeopError


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
    parser.add_argument("--nproc", type=positive_int, default=None,
                        help="train in N processes on this machine (data-parallel, torchrun's standalone mode); "
                             "training.batch_size stays the global batch")
    parser.add_argument("--online", action="store_true",
                        help="train on samples generated while training from data.generate (data.source=online)")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="online: generator processes per training process (default 1)")
    parser.add_argument("--ahead", type=positive_int, default=4,
                        help="online: blocks of samples generated ahead of the trainer at most (default 4)")
    parser.add_argument("--keep-samples", type=Path, default=None, metavar="FILE",
                        help="online: also write the generated samples to this dataset file")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="online: generate on this Dask cluster (tcp://host:8786 or a scheduler file; "
                             "'local' starts one of --workers processes)")
    parser.add_argument("--scheduler-timeout", type=float, default=None, metavar="SECONDS",
                        help="online: seconds to reach the scheduler and see a worker (default 10)")


def run(args: argparse.Namespace) -> int:
    """Run the command (or start ``--nproc`` processes that each run it)."""
    if args.nproc is not None and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from operators.training.launch import launch

        return launch(rank_arguments(args), args.nproc, args.threads)
    from operators.training.distributed import Distributed

    set_threads(args.threads)
    check_device(args.device)
    distributed = Distributed.from_environment(args.device)
    try:
        code = _train(args, distributed)
        distributed.close(together=True)
        return code
    except PdeopError as exc:
        if distributed.is_main:
            raise
        return exc.exit_code  # rank 0 says it
    except RuntimeError as exc:
        if distributed.lost_peer(exc):  # another rank died (its launcher reports why): one line, no traceback
            print(f"error: rank {distributed.rank} lost contact with the other training processes; "
                  f"rerun with --resume to continue from the last finished epoch", file=sys.stderr)
            return 1
        raise
    finally:
        distributed.close()


def _train(args: argparse.Namespace, distributed: Any) -> int:
    from operators.training.config import load_run_config
    from operators.training.run_folder import check_target

    overrides = list(args.overrides) + (["data.source=online"] if args.online else [])
    mapping = load_run_config(args.config, overrides)
    run_dir = args.out or Path("runs") / args.config.stem
    # before data are generated or loaded; again under the lock
    distributed.from_main(lambda: check_target(run_dir, args.resume))
    if "pde" in mapping:
        if distributed.active:
            raise ConfigError("physics-informed runs (a 'pde' section) train in one process; drop --nproc / torchrun")
        return _run_physics(mapping, run_dir, args)
    from operators.training.config import run_config_from_mapping
    from operators.training.online import StreamOptions
    from operators.training.trainer import Trainer

    config = run_config_from_mapping(mapping)
    stream = StreamOptions(workers=args.workers, ahead=args.ahead, keep_samples=args.keep_samples,
                           scheduler=args.scheduler, scheduler_timeout=args.scheduler_timeout)
    if args.scheduler is not None and config.data.source != "online":
        raise ConfigError("--scheduler generates the samples of online training; add --online "
                          "(or data.source: online), or generate the file with 'pdeop generate --scheduler'")
    if config.data.source == "file":
        distributed.from_main(lambda: ensure_data(config.data, quiet=args.quiet), share=False)
    trainer = Trainer(config, run_dir, device=args.device, progress=not args.quiet, distributed=distributed,
                      stream=stream)
    result = trainer.fit(resume=args.resume, max_minutes=args.max_minutes)
    if not distributed.is_main:
        return 0
    last = result.history[-1] if result.history else {}
    if not result.finished:
        state = "stopped (--max-minutes)"
    else:
        state = "finished" if result.epochs_done >= config.training.epochs else "finished by early stopping"
    scores = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k in ("train_loss", "val_l2") and v is not None)
    print(f"{state} after {result.epochs_done}/{config.training.epochs} epochs ({scores}); "
          f"best {result.best_score:.4g}; checkpoints in {run_dir}/best and {run_dir}/last")
    return 0


def rank_arguments(args: argparse.Namespace) -> list[str]:
    """The ``train`` command line of one rank: ``args`` without ``--nproc`` (``--out`` made explicit)."""
    argv = ["train", str(args.config), "--out", str(args.out or Path("runs") / args.config.stem),
            "--device", args.device, "--workers", str(args.workers), "--ahead", str(args.ahead)]
    for override in args.overrides:
        argv += ["--set", override]
    for flag, value in (("--max-minutes", args.max_minutes), ("--threads", args.threads),
                        ("--keep-samples", args.keep_samples), ("--scheduler", args.scheduler),
                        ("--scheduler-timeout", args.scheduler_timeout)):
        if value is not None:
            argv += [flag, str(value)]
    argv += [flag for flag, on in (("--resume", args.resume), ("--quiet", args.quiet), ("--online", args.online)) if on]
    return argv


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
    from operators.training.online import resolve_recipe
    from pde_data.pipeline import generate_dataset

    resolved = resolve_recipe(config)
    print(f"generating {path} ({resolved.problem}, {resolved.samples} samples) for this run", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    generate_dataset(resolved, path, progress=not quiet)
