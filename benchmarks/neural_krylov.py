"""Neural-accelerated Krylov solves (``pdeop generate ... --warm-start RUN``) against the same method cold and ``auto``.

For each problem (Darcy, and Helmholtz with the absorbing boundary of the ``fno`` preset) at rtol 1e-8,
N unseen samples (seed 12345; the runs trained on seed-0 data) are solved in the family's similarity
order, side by side in this process, every answer's true relative residual checked:

* ``cold``     the warm start's Krylov method without the model: flexible CG preconditioned by
               symmetric Gauss–Seidel (Darcy, SPD) / FGMRES(30) with the family's ILU (Helmholtz), from zero;
* ``guess``    the same, started from the run's prediction (``x0`` only);
* ``neural``   the warm-start path of the generator (``EllipticFamily.solve`` with a
               :class:`~operators.krylov.NeuralWarmStart`): the prediction as ``x0`` and the
               two-level cycle (smoother, correction network, smoother) as the flexible preconditioner;
* ``skr``      GCRO-DR(40, 20) with ILU and recycling (pdeop's recycled Krylov method), cold;
* ``auto``     what ``solver: auto`` picks (the measured-fastest cold method: sparse LU at these sizes).

Reported per competitor: matvecs per system (every product with ``A``, the cycle's included),
seconds per system **including inference** (prediction and correction calls), the worst residual and
fallbacks. The correction network's one-off training (pairs and epochs) is reported separately, with
the number of systems after which the warm start would pay it back against ``auto`` (none when the
warm start is slower per system). The a -> u runs are trained once with ``pdeop train`` on the
shipped ``configs/train/fno_*_krylov_quick.yaml`` (or given with ``--darcy-run`` / ``--helmholtz-run``);
``--quick`` skips them (no prediction: ``guess`` = ``cold``) and trains a smaller correction network.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import format_table, parser, set_threads, write_results

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
        subprocess.run([sys.executable, "-m", "operators.cli", "train", str(config), "--out", str(folder),
                        "--threads", "1", "--overwrite"], check=True, cwd=ROOT)
    return folder


def solve_all(family: Any, systems: list, solve: Any) -> dict[str, Any]:
    """Solve every system with ``solve(system) -> SolveResult``; totals and the worst true residual."""
    start = time.perf_counter()
    matvecs, worst, retries, missed = 0, 0.0, 0, 0
    for system in systems:
        result = solve(system)
        residual = float(np.linalg.norm(system.b - system.A @ result.x) / np.linalg.norm(system.b))
        missed += int(not residual <= RTOL)  # only a bare method can miss: the generator's paths fall back
        matvecs += result.matvecs
        worst = max(worst, residual)
        retries += result.retries
    n = len(systems)
    return {"matvecs": matvecs / n, "seconds": (time.perf_counter() - start) / n, "worst_residual": worst,
            "retries": retries, "missed_rtol": missed}


def measure(problem: str, resolution: int, n: int, run: Path | None, correction: Any) -> tuple[list, dict]:
    from operators.krylov import NeuralWarmStart, warm_start_from_run
    from pde_data.family import get_family
    from pde_data.pipeline import resolve_config
    from pde_data.warm_start import build_smoother
    from solvers.neural_krylov import NeuralKrylovSettings, neural_solve
    from solvers.sequence import SequenceSolver

    preset, _ = PROBLEMS[problem]
    config = resolve_config(problem, preset=preset, overrides=[f"resolution={resolution}", f"rtol={RTOL}"],
                            samples=n, seed=SEED)
    family = get_family(problem)(config.settings)
    systems = list(family.systems(family.solve_order(n, SEED), SEED))
    inputs = {s.index: family.sample_inputs(s.index, SEED) for s in systems}
    if run is not None:
        warm = warm_start_from_run(run, problem, config.settings, correction=correction)
    else:
        from operators.krylov import train_correction
        from operators.krylov.warm_start import smoother_for

        smoother = smoother_for(family)
        warm = NeuralWarmStart(None, (), (), train_correction(family, smoother, correction), smoother)
    spd, settings = family.traits().spd, NeuralKrylovSettings(rtol=RTOL)

    def same_method(with_guess: bool) -> Any:
        def solve(system: Any) -> Any:
            guess = None
            if with_guess and warm.surrogate is not None:
                guess = family.solution_vector(warm.predict(inputs[system.index]))
            smoother = build_smoother(family, warm.smoother, system.A)
            return neural_solve(system.A, system.b, smoother, None, guess=guess, spd=spd, settings=settings)
        return solve

    def sequence(method: str) -> Any:
        solver = SequenceSolver(method, family.traits(), rtol=RTOL)
        return lambda system: solver.solve(system.A, system.b)

    def neural(system: Any) -> Any:
        return family.solve(system.index, system.A, system.b, inputs=inputs[system.index])

    family.warm_start = warm
    auto = family.method()
    rows, results = [], {}
    for name, solve in (("cold", same_method(False)), ("guess", same_method(True)), ("neural", neural),
                        ("skr", sequence("skr")), (f"auto ({auto})", sequence("auto"))):
        warm.predict_seconds = warm.correct_seconds = 0.0
        outcome = solve_all(family, systems, solve)
        outcome["inference_seconds"] = (warm.predict_seconds + warm.correct_seconds) / n if name != "cold" else 0.0
        results[name] = outcome
        rows.append({"problem": problem, "resolution": resolution, "method": name, "systems": n, **outcome})
    best_cold = min(value["seconds"] for key, value in results.items() if key not in ("guess", "neural"))
    gain = best_cold - results["neural"]["seconds"]
    summary = {
        "matvec_ratio_cold_over_neural": results["cold"]["matvecs"] / results["neural"]["matvecs"],
        "matvec_ratio_guess_over_neural": results["guess"]["matvecs"] / results["neural"]["matvecs"],
        "matvec_ratio_cold_over_guess": results["cold"]["matvecs"] / results["guess"]["matvecs"],
        "time_ratio_cold_over_neural": results["cold"]["seconds"] / results["neural"]["seconds"],
        "time_ratio_neural_over_fastest_cold": results["neural"]["seconds"] / best_cold,
        "correction_training_seconds": warm.correction.seconds,
        "correction_final_loss": warm.correction.final_loss,
        "break_even_systems": warm.correction.seconds / gain if gain > 0 else None,
        "auto_method": auto,
    }
    return rows, summary


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--systems", type=int, default=None, help="systems per problem (default 20; quick 4)")
    p.add_argument("--resolution", type=int, default=33, help="vertices per side (the runs' grid; default 33)")
    p.add_argument("--darcy-run", help="a trained darcy run at --resolution (default: train the shipped config)")
    p.add_argument("--helmholtz-run", help="a trained helmholtz run at --resolution")
    p.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    p.add_argument("--sweeps", type=int, default=2, help="smoother sweeps relaxing the training errors (default 2)")
    args = p.parse_args()
    set_threads(args.threads)
    from operators.krylov import CorrectionSettings

    n = args.systems or (4 if args.quick else 20)
    resolution = 25 if args.quick else args.resolution  # 25: six points per wavelength at k = 24
    correction = (CorrectionSettings(pairs=64, epochs=8, sweeps=args.sweeps) if args.quick
                  else CorrectionSettings(sweeps=args.sweeps))
    rows, summary = [], {}
    for problem in args.problems:
        given = args.darcy_run if problem == "darcy" else args.helmholtz_run
        run = trained_run(PROBLEMS[problem][1], given, args.quick)
        problem_rows, problem_summary = measure(problem, resolution, n, run, correction)
        rows += problem_rows
        summary[problem] = problem_summary
    print(format_table(rows, ["problem", "method", "systems", "matvecs", "seconds", "inference_seconds",
                              "worst_residual", "retries", "missed_rtol"]))
    for problem, values in summary.items():
        print(problem, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in values.items()})
    print(write_results("neural_krylov", rows, summary, args.out))


if __name__ == "__main__":
    main()
