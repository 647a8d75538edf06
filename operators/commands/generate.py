"""Generate a PDE dataset file (resumable; rerun the same command to continue after a crash).

Example: pdeop generate navier-stokes --preset fno --samples 4 --set internal_resolution=64 --out ns.h5

With ``--warm-start RUN`` a trained static run of the same elliptic problem and grid accelerates
every linear solve (:mod:`operators.krylov`); each stored solution still meets ``rtol``.
"""

from __future__ import annotations

import argparse
import sys

from solvers.neural_krylov import CYCLES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach ``generate``'s arguments to ``parser``."""
    parser.add_argument("problem", help="problem family (the list of problems and presets is at the end)")
    parser.add_argument("--preset", help="preset name (configs/data/PROBLEM/PRESET.yaml); default: the family's")
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of settings applied over the preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting (repeatable), e.g. --set dt=1e-4")
    parser.add_argument("--samples", type=int,
                        help="number of samples (default: the preset's count, listed below; e.g. 5000 for "
                             "navier-stokes --preset fno)")
    parser.add_argument("--resolution", help="stored grid size (shorthand for --set resolution=N)")
    parser.add_argument("--solver", help="linear solver for elliptic families: auto|skr|gcrodr|gmres|cg|amg|direct "
                                         "(shorthand for --set solver=NAME)")
    parser.add_argument("--seed", type=int, help="random seed; sample i depends only on (seed, i)")
    parser.add_argument("--warm-start", metavar="RUN",
                        help="elliptic problems: a trained run (same problem and resolution) whose prediction starts "
                             "each solve and whose residual-correction network (trained first, cost printed) "
                             "preconditions it; solutions still meet rtol")
    parser.add_argument("--warm-start-epochs", type=int, default=None, metavar="N",
                        help="epochs of the warm start's correction network (default 40; its cost is printed)")
    parser.add_argument("--warm-start-cycle", choices=CYCLES, default=None,
                        help="how the correction network joins the smoother: additive-smoothed S r + N(S r) "
                             "(default: fewest products measured), additive S r + N(r), multiplicative S, N, S")
    parser.add_argument("--chunk-size", type=int, help="samples computed together (never changes the results)")
    parser.add_argument("--out", required=True, help="output file (.h5)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    parser.add_argument("--device", default="cpu",
                        help="where the spectral families integrate: cpu (NumPy, default), cuda, cuda:N (PyTorch), "
                             "torch-cpu (PyTorch on the CPU)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="compute chunks on a Dask LocalCluster of N single-threaded worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="compute chunks on an existing Dask cluster (tcp://host:8786 or a scheduler file)")
    parser.add_argument("--scheduler-timeout", type=float, metavar="SECONDS",
                        help="seconds to reach the scheduler and see a worker (default 10)")
    plain_help = parser.format_help
    parser.format_help = lambda: plain_help() + preset_listing()  # type: ignore[method-assign]


def preset_listing() -> str:
    """The problems and their presets with the sample count each gives by default (read when help is shown)."""
    from pde_data.pipeline import preset_catalogue

    rows = preset_catalogue()
    width = max(len(row["problem"]) for row in rows)
    preset_width = max(len(row["preset"]) for row in rows)
    lines = ["", "problems and presets (samples when --samples is not given; * = the problem's default preset):"]
    problem = None
    for row in rows:
        name = row["problem"] if row["problem"] != problem else ""
        problem = row["problem"]
        mark = "*" if row["default"] else " "
        lines.append(f"  {name:<{width}}  {mark}{row['preset']:<{preset_width}} {row['samples']:>6,} samples")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Resolve the settings, then generate or resume the file."""
    from pde_data.pipeline import generate_dataset, resolve_config

    overrides = list(args.overrides)
    if args.resolution is not None:
        overrides.append(f"resolution={args.resolution}")
    if args.solver is not None:
        overrides.append(f"solver={args.solver}")
    config = resolve_config(args.problem, preset=args.preset, config_file=args.config, overrides=overrides,
                            samples=args.samples, seed=args.seed)
    log = None if args.quiet else (lambda message: print(message, file=sys.stderr))
    warm_start = None
    if args.warm_start is not None:
        from operators.krylov import CorrectionSettings, warm_start_from_run

        chosen = {"epochs": args.warm_start_epochs, "cycle": args.warm_start_cycle}
        correction = CorrectionSettings(**{key: value for key, value in chosen.items() if value is not None})
        warm_start = warm_start_from_run(args.warm_start, config.problem, config.settings, log=log,
                                         correction=correction)
        if log is not None and warm_start.correction is not None:
            log(f"warm start: {warm_start.cycle} correction network trained in {warm_start.correction.seconds:.1f} s "
                f"(final training loss {warm_start.correction.final_loss:.3f}; smoother {warm_start.smoother})")
    result = generate_dataset(config, args.out, overwrite=args.overwrite, chunk_size=args.chunk_size,
                              progress=not args.quiet, log=log, device=args.device, workers=args.workers,
                              scheduler=args.scheduler, scheduler_timeout=args.scheduler_timeout,
                              warm_start=warm_start)
    if warm_start is not None and log is not None:
        log(f"warm start: inference {warm_start.predict_seconds + warm_start.correct_seconds:.2f} s "
            f"(prediction {warm_start.predict_seconds:.2f} s, corrections {warm_start.correct_seconds:.2f} s)")
    if not args.quiet:
        if result["computed"] == 0:
            print(f"{result['path']} is already complete ({result['samples']} samples)", file=sys.stderr)
        else:
            rate = result["computed"] / max(result["seconds"], 1e-9)
            print(f"wrote {result['path']}: {result['computed']} samples in {result['seconds']:.1f} s "
                  f"({rate:.3g} samples/s)", file=sys.stderr)
        for key, value in (result["summary"] or {}).items():
            print(f"  {key}: {value}", file=sys.stderr)
    return 0
