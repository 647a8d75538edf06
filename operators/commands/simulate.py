"""Simulate with a trained run, its solver, or both (pdeop simulate RUN --mode ... --steps N --out FILE)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach this command's arguments to parser."""
    parser.add_argument("run_dir", type=Path, help="run folder of a time-dependent model ('pdeop train')")
    parser.add_argument("--problem", help="expected problem of the run's data (an error when it differs)")
    parser.add_argument("--preset", help="accepted for symmetry with 'pdeop generate'; the run's data decides")
    parser.add_argument("--samples", type=int, default=8, help="simulate the last N samples of the data (default 8)")
    parser.add_argument("--steps", type=int, required=True, help="states to make after the initial window")
    parser.add_argument("--mode", choices=("solver", "surrogate", "hybrid"), default="hybrid",
                        help="whose trajectories go to --out (the report compares all three)")
    parser.add_argument("--tolerance", type=float, default=0.3,
                        help="hybrid: largest accepted relative PDE residual of an operator step, 0 < tol (default 0.3)")
    parser.add_argument("--resolution", type=int, help="grid points per axis (default: the training grid)")
    parser.add_argument("--data", type=Path, help="dataset file with the initial states (default: the run's)")
    parser.add_argument("--out", type=Path, required=True, help="trajectory file to write (.h5)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --out and report files")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--device", default="cpu", help="where the operator runs (cpu, cuda)")


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from operators.atomic_files import check_output_file, write_text
    from operators.strict_json import dumps
    from operators.simulate.comparison import compare_modes, write_trajectories
    from operators.simulate.coupling import couple_run
    from solvers.errors import ConfigError

    if not args.tolerance > 0:
        raise ConfigError(f"--tolerance must be > 0 (got {args.tolerance:g}); it bounds the relative PDE residual "
                          f"of an accepted operator step (between 0 and 1)")
    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1 (got {args.steps})")
    report_path = args.out.with_suffix(".report.json")
    check_output_file(args.out, args.overwrite)
    check_output_file(report_path, args.overwrite, what="the report file")
    coupling = couple_run(args.run_dir, args.samples, args.problem, args.resolution, args.data, args.checkpoint,
                          args.device)
    trajectories, report = compare_modes(coupling, args.steps, args.tolerance)
    write_trajectories(args.out, coupling, trajectories[args.mode], args.mode, report, coupling.attrs,
                       coupling.variable, coupling.space_dims, args.overwrite)
    write_text(report_path, dumps(report) + "\n", args.overwrite)
    grid = "x".join(map(str, report["grid"]))
    print(f"{coupling.problem} on {grid}, {report['samples']} samples, {args.steps} steps of {report['interval']:g}")
    print(f"{'mode':<12}{'final error':>12}{'mean error':>12}{'seconds':>10}{'solver states':>15}")
    for mode, entry in report["modes"].items():
        errors = entry["error"]
        print(f"{mode:<12}{errors[-1]:>12.3g}{sum(errors) / len(errors):>12.3g}{entry['seconds']:>10.3g}"
              f"{entry.get('solver', 0):>15}")
    print(f"indicator eta: median {report['eta_solver_median']:.3g} on the solver's own steps (its floor), "
          f"tolerance {args.tolerance:g}")
    print(f"wrote {args.out} ({args.mode}) and {report_path}")
    return 0
