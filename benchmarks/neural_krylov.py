"""Neural-accelerated Krylov solves (``pdeop generate ... --warm-start RUN``) against the same method cold and ``auto``.

For each problem (Darcy, and Helmholtz with the absorbing boundary of the ``fno`` preset) at rtol 1e-8,
N unseen samples (seed 12345; the runs trained on seed-0 data) are solved in the family's similarity
order, side by side in this process, every answer's true relative residual checked:

* ``cold``     the warm start's Krylov method without the model, from zero: flexible CG preconditioned by
               symmetric Gauss–Seidel (Darcy, SPD) / FGMRES(30) preconditioned by an ILU of the
               complex-shifted Laplacian (impedance Helmholtz), i.e. the family's ``cycle_smoother()``;
* ``guess``    the same, started from the run's prediction (``x0`` only; only at the run's own grid);
* ``neural``   the warm-start path of the generator (``EllipticFamily.solve`` with a
               :class:`~operators.krylov.NeuralWarmStart`): the prediction as ``x0`` (at the run's
               grid; elsewhere ``x0 = 0``) and the neural cycle as the flexible preconditioner; by
               default the additive-smoothed cycle ``y = S r, z = y + N(y)`` (one product with ``A``
               per iteration; the network learns the smoother's remainder ``A^-1 r - S r`` from ``S r``);
* ``skr``      GCRO-DR(40, 20) with ILU and recycling (pdeop's recycled Krylov method), cold;
* ``auto``     what ``solver: auto`` picks (the measured-fastest cold method: sparse LU at these sizes).

Reported per competitor: matvecs per system (every product with ``A``, the cycle's included),
seconds per system **including inference** (prediction and correction calls), the worst residual and
fallbacks. The correction network's one-off training (pairs and epochs) is reported separately, with
the number of systems after which the warm start would pay it back against ``auto`` (none when the
warm start is slower per system). The a -> u runs are trained once with ``pdeop train`` on the
shipped ``configs/train/fno_*_krylov_quick.yaml`` (or given with ``--darcy-run`` / ``--helmholtz-run``);
``--quick`` skips them (no prediction, no ``guess`` row) and trains a smaller correction network.

Sizes: ``--resolutions 33 65 129`` measures each grid (rows and a summary per size). The correction
network trains at each size, or once at ``--correction-resolution`` and is applied at every size:
the Darcy matrix is ``h^-2``-scaled (a discrete ``-div(a grad .)``), so residuals and errors are grid
functions of the same continuous map at every ``h`` and the FNO's ``r -> e`` map transfers. Cold
SSOR-FCG iterations grow like ``h^-1`` (42, 83, 170 at 33², 65², 129²); the cycle's grow more slowly.
``--cycle`` picks the cycle (``multiplicative``: smoother, ``N(r)``, smoother, three products per
iteration; ``additive``: ``S r + N(r)``; ``additive-smoothed``, the default). ``--helmholtz-smoother ilu``
replaces the shifted-Laplacian ILU by an ILU of the Helmholtz matrix itself, and ``--helmholtz-ilu DROP
FILL`` sets the drop tolerance and fill of whichever ILU the Helmholtz cycle and its cold baseline use (the
family solver's near-complete ILU of the matrix itself leaves nothing to cut: 3 products cold).
``--correction-seed`` changes the seed of the correction's training pairs and weights (the spread between
seeds is the noise of the matvec ratios).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import format_table, parser, set_threads, write_results
from operators.krylov import CorrectionSettings
from pde_data.warm_start import SHIFTED_ILU
from solvers.neural_krylov import CYCLES

RTOL = 1e-8
SEED = 12345
PROBLEMS = {"darcy": ("fno", "fno_darcy_krylov_quick"), "helmholtz": ("fno", "fno_helmholtz_krylov_quick")}
ROOT = Path(__file__).resolve().parent.parent


def trained_run(name: str, given: str | None, quick: bool) -> Path | None:
    """The a -> u run for ``name`` (trained with pdeop train on first use; None in quick mode)."""
    if given:
        return Path(given)
    if quick:
        return None
    folder = ROOT / "runs" / "neural_krylov" / name
    if not (folder / "best").is_dir():
        config = ROOT / "configs" / "train" / f"{name}.yaml"
        resume = ["--resume"] if (folder / "run_config.json").is_file() else []  # an interrupted first training
        subprocess.run([sys.executable, "-m", "operators.cli", "train", str(config), "--out", str(folder),
                        "--threads", "1", *resume], check=True, cwd=ROOT)
    return folder


def solve_all(family: Any, systems: list, solve: Any) -> dict[str, Any]:
    """Solve every system with ``solve(system) -> SolveResult``; totals and the worst true residual."""
    start = time.perf_counter()
    matvecs, iterations, worst, retries, missed = 0, 0, 0.0, 0, 0
    for system in systems:
        result = solve(system)
        residual = float(np.linalg.norm(system.b - system.A @ result.x) / np.linalg.norm(system.b))
        missed += int(not residual <= RTOL)  # only a bare method can miss: the generator's paths fall back
        matvecs += result.matvecs
        iterations += result.iterations
        worst = max(worst, residual)
        retries += result.retries
    n = len(systems)
    return {"matvecs": matvecs / n, "iterations": iterations / n, "seconds": (time.perf_counter() - start) / n,
            "worst_residual": worst,
            "retries": retries, "missed_rtol": missed}


def warm_start_for(problem: str, resolution: int, run: Path | None, correction: Any, smoother: str,
                   smoother_options: dict | None) -> Any:
    """The generator's warm start at ``resolution``: the run's prediction where the run was trained at
    this grid (else none: ``x0 = 0``) and the given correction model in the cycle."""
    from operators.krylov import NeuralWarmStart, warm_start_from_run

    config = problem_config(problem, resolution, 1)
    if run is not None and run_resolution(run) == resolution:
        warm = warm_start_from_run(run, problem, config.settings, correction=None, smoother=smoother,
                                   smoother_options=smoother_options)
        warm.correction = correction
        return warm
    return NeuralWarmStart(None, (), (), correction, smoother, smoother_options)


def problem_config(problem: str, resolution: int, n: int) -> Any:
    from pde_data.pipeline import resolve_config

    return resolve_config(problem, preset=PROBLEMS[problem][0], overrides=[f"resolution={resolution}", f"rtol={RTOL}"],
                          samples=n, seed=SEED)


def run_resolution(run: Path) -> int:
    """Vertices per side of the run's training grid."""
    from operators.training.runs import load_run

    return int(load_run(run).metadata["grid"]["shape"][0])


def measure(problem: str, resolution: int, n: int, warm: Any) -> tuple[list, dict]:
    from pde_data.family import get_family
    from pde_data.warm_start import build_smoother
    from solvers.neural_krylov import NeuralKrylovSettings, neural_solve
    from solvers.sequence import SequenceSolver

    config = problem_config(problem, resolution, n)
    family = get_family(problem)(config.settings)
    systems = list(family.systems(family.solve_order(n, SEED), SEED))
    inputs = {s.index: family.sample_inputs(s.index, SEED) for s in systems}
    spd, settings = family.traits().spd, NeuralKrylovSettings(rtol=RTOL)

    def same_method(with_guess: bool) -> Any:
        def solve(system: Any) -> Any:
            guess = None
            if with_guess and warm.surrogate is not None:
                guess = family.solution_vector(warm.predict(inputs[system.index]))
            smoother = build_smoother(family, warm.smoother, system.A, warm.smoother_options, inputs[system.index])
            return neural_solve(system.A, system.b, smoother, None, guess=guess, spd=spd, settings=settings)
        return solve

    def sequence(method: str) -> Any:
        solver = SequenceSolver(method, family.traits(), rtol=RTOL)
        return lambda system: solver.solve(system.A, system.b)

    def neural(system: Any) -> Any:
        return family.solve(system.index, system.A, system.b, inputs=inputs[system.index])

    family.warm_start = warm
    auto = family.method()
    competitors = [("cold", same_method(False))]
    if warm.surrogate is not None:
        competitors.append(("guess", same_method(True)))
    competitors += [("neural", neural), ("skr", sequence("skr")), (f"auto ({auto})", sequence("auto"))]
    rows, results = [], {}
    for name, solve in competitors:
        warm.predict_seconds = warm.correct_seconds = 0.0
        outcome = solve_all(family, systems, solve)
        outcome["inference_seconds"] = (warm.predict_seconds + warm.correct_seconds) / n if name != "cold" else 0.0
        results[name] = outcome
        rows.append({"problem": problem, "resolution": resolution, "method": name, "systems": n,
                     "smoother": smoother_label(warm), **outcome})
    best_cold = min(value["seconds"] for key, value in results.items() if key not in ("guess", "neural"))
    neural_result = results["neural"]
    gain = best_cold - neural_result["seconds"]
    summary = {
        "resolution": resolution,
        "smoother": smoother_label(warm),
        "cycle": warm.cycle,
        "prediction_as_x0": warm.surrogate is not None,
        "matvec_ratio_cold_over_neural": results["cold"]["matvecs"] / neural_result["matvecs"],
        "time_ratio_cold_over_neural": results["cold"]["seconds"] / neural_result["seconds"],
        "time_ratio_neural_over_fastest_cold": neural_result["seconds"] / best_cold,
        "fastest_cold_seconds": best_cold,
        "inference_share_of_neural": neural_result["inference_seconds"] / neural_result["seconds"],
        "correction_training_seconds": warm.correction.seconds,
        "correction_final_loss": warm.correction.final_loss,
        "break_even_systems": warm.correction.seconds / gain if gain > 0 else None,
        "auto_method": auto,
    }
    if "guess" in results:
        summary["matvec_ratio_cold_over_guess"] = results["cold"]["matvecs"] / results["guess"]["matvecs"]
    return rows, summary


def smoother_label(warm: Any) -> str:
    options = warm.smoother_options
    if not options:
        return warm.smoother
    return warm.smoother + "(" + ", ".join(f"{key}={value:g}" for key, value in options.items()) + ")"


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--systems", type=int, default=None, help="systems per problem and size (default 20; quick 4)")
    p.add_argument("--resolution", type=int, default=33, help="vertices per side of the runs' grid (default 33)")
    p.add_argument("--resolutions", type=int, nargs="+", default=None,
                   help="grids to measure (default: --resolution); the run's prediction is used only at its own grid")
    p.add_argument("--correction-resolution", type=int, default=None,
                   help="grid the correction network trains at, applied at every size (default: each size its own)")
    p.add_argument("--darcy-run", help="a trained darcy run at --resolution (default: train the shipped config)")
    p.add_argument("--helmholtz-run", help="a trained helmholtz run at --resolution")
    p.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    p.add_argument("--sweeps", type=int, default=2, help="smoother sweeps relaxing the training errors (default 2)")
    p.add_argument("--loss", default=None, choices=["error", "energy", "residual"],
                   help="correction training loss (default: energy for Darcy, error for Helmholtz)")
    p.add_argument("--pairs", type=int, default=None,
                   help=f"correction training pairs (default {CorrectionSettings.pairs}; quick 64)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"correction training epochs (default {CorrectionSettings.epochs}; quick 8)")
    p.add_argument("--correction-seed", type=int, default=0, help="seed of the correction's pairs and weights (default 0)")
    p.add_argument("--width", type=int, default=24, help="correction FNO width (default 24)")
    p.add_argument("--cycle", default=CorrectionSettings.cycle, choices=CYCLES,
                   help="two-level cycle: multiplicative S, N, S (3 products per iteration), additive "
                        "S r + N(r) or additive-smoothed S r + N(S r) (1; the network learns A^-1 r - S r); "
                        f"default {CorrectionSettings.cycle}")
    p.add_argument("--helmholtz-smoother", default=None, choices=["ilu", SHIFTED_ILU],
                   help="relaxation of the Helmholtz cycle and of its cold baseline: an ILU of A or of the shifted "
                        "Laplacian (default: the family's, shifted-ilu)")
    p.add_argument("--helmholtz-ilu", type=float, nargs=2, metavar=("DROP_TOL", "FILL_FACTOR"), default=None,
                   help="that ILU's options (default: ilu 1e-5, 20, the family solver's; shifted-ilu 1e-3, 10)")
    args = p.parse_args()
    set_threads(args.threads)
    from operators.krylov import train_correction
    from pde_data.family import get_family

    n = args.systems or (4 if args.quick else 20)
    resolution = 25 if args.quick else args.resolution  # 25: six points per wavelength at k = 24
    sizes = [resolution] if args.quick or not args.resolutions else args.resolutions
    settings = CorrectionSettings(pairs=args.pairs or (64 if args.quick else CorrectionSettings.pairs),
                                  epochs=args.epochs or (8 if args.quick else CorrectionSettings.epochs),
                                  sweeps=args.sweeps, loss=args.loss, width=args.width, cycle=args.cycle,
                                  seed=args.correction_seed)
    rows, summary = [], {}
    for problem in args.problems:
        given = args.darcy_run if problem == "darcy" else args.helmholtz_run
        run = trained_run(PROBLEMS[problem][1], given, args.quick) if resolution in sizes else None
        options = None
        if problem == "helmholtz" and args.helmholtz_ilu:
            options = {"drop_tol": args.helmholtz_ilu[0], "fill_factor": args.helmholtz_ilu[1]}
        shared = None
        for size in sizes:
            train_size = args.correction_resolution or size
            family = get_family(problem)(problem_config(problem, train_size, 1).settings)
            smoother = (args.helmholtz_smoother if problem == "helmholtz" else None) or family.cycle_smoother()
            if shared is None or train_size != args.correction_resolution:
                shared = train_correction(family, smoother, settings, smoother_options=options)
            warm = warm_start_for(problem, size, run, shared, smoother, options)
            size_rows, size_summary = measure(problem, size, n, warm)
            size_summary["correction_resolution"] = train_size
            rows += size_rows
            summary[f"{problem}_{size}"] = size_summary
    print(format_table(rows, ["problem", "resolution", "method", "systems", "matvecs", "iterations", "seconds",
                              "inference_seconds", "worst_residual", "retries", "missed_rtol"]))
    for key, values in summary.items():
        print(key, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in values.items()})
    print(write_results("neural_krylov", rows, summary, args.out))


if __name__ == "__main__":
    main()
