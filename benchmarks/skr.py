"""SKR benchmark: sorted GCRO-DR against GMRES, gcrotmk, CG, pyamg and sparse LU on pdeop's families.

For each family and size, the sequence of linear systems of N samples is assembled once by the
family itself (``family.systems``) and then solved by every competitor, side by side in this
process, with the same relative tolerance and — for the Krylov methods — the same preconditioner
kind and reuse rule (:class:`solvers.PreconditionerReuse`: an ILU is built on one system and
rebuilt when iterations double; Jacobi is rebuilt for each new matrix):

* ``splu``           SuperLU via ``SequenceSolver("direct")`` (factor once while the matrix repeats);
* ``scipy_gmres``    ``scipy.sparse.linalg.gmres(restart=40)`` (left preconditioned);
* ``pdeop_gmres``    GCRO-DR with k = 0, i.e. GMRES(40), right preconditioned;
* ``gcrotmk``        ``scipy.sparse.linalg.gcrotmk(m=20, k=20)``, fresh per system;
* ``gcrotmk_cu``     the same with one ``CU`` list shared along the sequence (``discard_C=True``);
* ``cg``             CG (SPD families only) with the symmetric preconditioner (Jacobi when ILU is the kind);
* ``pyamg_rebuilt``  pyamg smoothed aggregation built per system, ``solve(accel="cg"/"gmres")``;
* ``pyamg_reused``   ``SequenceSolver("amg", preconditioner_reuse=True)``: CG/GMRES with a reused
                     multigrid V-cycle, rebuilt when iterations double (``"amg"`` itself
                     rebuilds per matrix by default, which this benchmark measured faster);
* ``gcrodr``         GCRO-DR(40, 20) in generation (random) order;
* ``skr``            GCRO-DR(40, 20) in similarity-sorted order (sorting time included);
* ``auto``           ``SequenceSolver("auto")``, as ``pdeop generate`` runs it. When it resolves to a
                     configuration one of the competitors above runs exactly (``direct`` = ``splu``,
                     ``cg`` with Jacobi = ``cg``, ``skr`` with its defaults = ``skr``), that row's
                     measurement is reused (``auto_is`` names it): a second run of the same solver only
                     adds timing noise to the comparison with the best. Otherwise it is run.

Metrics per system: CPU time (the compared one; wall time is listed too), matrix-vector products (recycling overhead and residual checks
included; for pyamg only the outer Krylov products, each V-cycle costs several more), iterations,
worst true relative residual (recomputed here), max relative error against the ``splu`` solution,
and peak memory (tracemalloc peak of a short separate pass over the first systems, plus the
SuperLU factor storage that tracemalloc cannot see). The SKR paper's own comparison (its Table 1
on systems built as its code builds them) is ``benchmarks/skr_paper.py``.

BLAS runs single-threaded (``--blas-threads``, default 1): the Krylov methods' small dense
products are slower, not faster, with several threads on a small shared machine.
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla

from harness import RESULTS, format_table, parser, write_results

RTOL = 1e-8
#: ILU close to a full LU: what the indefinite Helmholtz systems need to converge at all
STRONG_ILU = (("drop_tol", 1e-5), ("fill_factor", 20))


@dataclasses.dataclass(frozen=True)
class Case:
    """One family at one size: the systems of ``samples`` samples, solved by ``methods``."""

    family: str
    resolution: int
    samples: int
    preconditioner: str = "ilu"
    preset: str | None = None  # None: the family's default preset
    overrides: tuple[str, ...] = ()  # "key=value", as on the pdeop generate command line
    methods: tuple[str, ...] | None = None  # None: every competitor that applies
    options: tuple[tuple[str, Any], ...] = ()  # preconditioner options (ILU drop_tol, fill_factor)
    maxiter: int = 3000  # inner iterations per system for every iterative competitor

    @property
    def name(self) -> str:
        preset = f"/{self.preset}" if self.preset else ""
        return f"{self.family}{preset}-{self.resolution}"


ALL_METHODS = ("splu", "scipy_gmres", "pdeop_gmres", "gcrotmk", "gcrotmk_cu", "cg", "pyamg_rebuilt",
               "pyamg_reused", "gcrodr", "skr", "auto")

QUICK = [
    Case("darcy", 33, 12),
    Case("poisson", 33, 12),
    Case("helmholtz", 33, 12, options=STRONG_ILU),
    Case("helmholtz", 33, 12, preset="dirichlet", options=STRONG_ILU),
    Case("convection-diffusion", 33, 12),
    Case("heat", 33, 3, overrides=("steps=5",)),
    Case("darcy3d", 12, 8),
    Case("poisson3d", 12, 8),
]
FULL = [
    Case("darcy", 101, 32),
    Case("darcy", 201, 12),
    Case("poisson", 101, 32),
    Case("helmholtz", 101, 24, options=STRONG_ILU),
    Case("helmholtz", 101, 24, preset="dirichlet", options=STRONG_ILU),
    Case("convection-diffusion", 101, 32),
    Case("heat", 101, 4),
    Case("darcy3d", 26, 16),
    Case("poisson3d", 34, 12),
]
class _Clock:
    """CPU and wall time since creation. CPU time is what the tables compare: with single-threaded
    BLAS it equals wall time on an idle machine, and unlike wall time it does not count the time
    other processes on a shared machine take the core away."""

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def seconds(self) -> tuple[float, float]:
        return time.process_time() - self.cpu, time.perf_counter() - self.wall


# ---------------------------------------------------------------------------------------------- systems
@dataclasses.dataclass
class Problem:
    """The assembled sequence of one case, in generation order, and what the solvers need to know."""

    case: Case
    systems: list  # pde_data.elliptic.System
    traits: Any  # solvers.ProblemTraits
    sort_seconds: float  # CPU seconds of the similarity sort
    sorted_positions: np.ndarray  # positions into `systems`, samples in similarity order, steps kept in order


def load_problem(case: Case, seed: int = 0) -> Problem:
    """Assemble the case's systems with the family's own code (nothing is re-implemented here)."""
    from pde_data.family import get_family
    from pde_data.pipeline import resolve_config
    from solvers.sorting import similarity_order

    resolved = resolve_config(case.family, case.preset, overrides=[f"resolution={case.resolution}", *case.overrides],
                              samples=case.samples, seed=seed)
    family = get_family(case.family)(resolved.settings)
    systems = list(family.systems(range(case.samples), seed))
    clock = _Clock()
    first: dict[int, int] = {}
    for pos, s in enumerate(systems):
        first.setdefault(s.index, pos)
    samples = list(first)
    order = similarity_order(np.stack([systems[first[i]].features for i in samples]))
    by_sample: dict[int, list[int]] = {}
    for pos, s in enumerate(systems):
        by_sample.setdefault(s.index, []).append(pos)
    positions = np.concatenate([by_sample[samples[j]] for j in order])
    return Problem(case, systems, family.traits(), clock.seconds()[0], positions)


# ---------------------------------------------------------------------------------------------- competitors
@dataclasses.dataclass
class Outcome:
    """What one competitor did on one sequence."""

    x: dict[tuple[int, int], np.ndarray]
    seconds: float  # CPU
    wall_seconds: float
    matvecs: int
    iterations: int
    retries: int = 0
    builds: int = 0
    holders: tuple = ()  # solver objects, searched for SuperLU factors by the memory pass


class _CountedMatrix(spla.LinearOperator):
    """Counts products with A for SciPy's solvers (which call ``matvec`` on a LinearOperator anyway)."""

    def __init__(self, A: Any) -> None:
        self.A, self.calls = A, 0
        super().__init__(np.float64, A.shape)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.A @ x.reshape(-1)


def _sequence_solver(method: str, preconditioner: str, order: str,
                     reuse: bool | None = None) -> Callable[[Problem], Outcome]:
    def run(problem: Problem) -> Outcome:
        from solvers import SequenceSolver

        case = problem.case
        solver = SequenceSolver(method, problem.traits, rtol=RTOL, m=40, k=20, preconditioner=preconditioner,
                                maxiter=case.maxiter,
                                preconditioner_options=dict(case.options) if preconditioner != "amg" else None,
                                preconditioner_reuse=reuse)
        clock = _Clock()
        positions = problem.sorted_positions if order == "sorted" else range(len(problem.systems))
        x = {}
        for pos in positions:
            s = problem.systems[pos]
            x[(s.index, s.step)] = solver.solve(s.A, s.b, label=f"sample {s.index}").x
        cpu, wall = clock.seconds()
        sort = problem.sort_seconds if order == "sorted" else 0.0
        st = solver.summary()
        return Outcome(x, cpu + sort, wall + sort, st["matvecs"], st["iterations"], st["retries"],
                       st["preconditioner_builds"], (solver,))

    return run


def _scipy_krylov(kind: str, preconditioner: str) -> Callable[[Problem], Outcome]:
    def run(problem: Problem) -> Outcome:
        from solvers import PreconditionerReuse

        maxiter = problem.case.maxiter
        policy = PreconditionerReuse(preconditioner, symmetric=problem.traits.symmetric, **dict(problem.case.options))
        CU: list = []
        x, matvecs, iterations = {}, 0, 0
        clock = _Clock()
        for s in problem.systems:
            A = _CountedMatrix(s.A)
            M = policy.get(s.A)
            steps = [0]

            def count(_: Any) -> None:
                steps[0] += 1

            if kind == "gmres":  # noqa: SIM108
                xi, _info = spla.gmres(A, s.b, rtol=RTOL, restart=40, maxiter=maxiter // 40, M=M, callback=count,
                                       callback_type="pr_norm")
            else:
                xi, _info = spla.gcrotmk(A, s.b, rtol=RTOL, m=20, k=20, maxiter=maxiter // 20, M=M, callback=count,
                                         CU=CU if kind == "gcrotmk_cu" else None, discard_C=True)
            policy.record(steps[0])
            x[(s.index, s.step)] = xi
            matvecs += A.calls
            iterations += steps[0]
        return Outcome(x, *clock.seconds(), matvecs, iterations, builds=policy.builds, holders=(policy,))

    return run


def _pyamg_rebuilt(problem: Problem) -> Outcome:
    import pyamg

    spd = problem.traits.spd
    x, matvecs, iterations = {}, 0, 0
    clock = _Clock()
    for s in problem.systems:
        ml = pyamg.smoothed_aggregation_solver(s.A, symmetry="symmetric" if problem.traits.symmetric else "nonsymmetric",
                                               max_coarse=500)
        residuals: list[float] = []
        maxiter = problem.case.maxiter
        x[(s.index, s.step)] = ml.solve(s.b, tol=RTOL, maxiter=maxiter // 40 if not spd else maxiter,
                                        accel="cg" if spd else "gmres", residuals=residuals)
        iterations += max(len(residuals) - 1, 0)
        matvecs += len(residuals)
    return Outcome(x, *clock.seconds(), matvecs, iterations, builds=len(problem.systems))


def competitors(case: Case, traits: Any) -> dict[str, Callable[[Problem], Outcome]]:
    """The runners that apply to this case, by name."""
    P = case.preconditioner
    symmetric_p = P if P in ("none", "jacobi", "amg") else "jacobi"
    table: dict[str, Callable[[Problem], Outcome]] = {
        "splu": _sequence_solver("direct", "none", "generation"),
        "scipy_gmres": _scipy_krylov("gmres", P),
        "pdeop_gmres": _sequence_solver("gmres", P, "generation"),
        "gcrotmk": _scipy_krylov("gcrotmk", P),
        "gcrotmk_cu": _scipy_krylov("gcrotmk_cu", P),
        "cg": _sequence_solver("cg", symmetric_p, "generation"),
        "pyamg_rebuilt": _pyamg_rebuilt,
        "pyamg_reused": _sequence_solver("amg", "amg", "generation", reuse=True),
        "gcrodr": _sequence_solver("gcrodr", P, "generation"),
        "skr": _sequence_solver("skr", P, "sorted"),
        "auto": _sequence_solver("auto", "auto", "sorted"),
    }
    if not traits.spd:
        table.pop("cg")
    if not traits.definite and traits.n_unknowns > 5000:
        # smoothed aggregation diverges on indefinite Helmholtz (the quick sizes keep the evidence:
        # pyamg_rebuilt unconverged, pyamg_reused only through its retries); at full size each such
        # system would burn the whole iteration budget twice before the direct retry
        table.pop("pyamg_rebuilt")
        table.pop("pyamg_reused")
    names = case.methods or ALL_METHODS
    return {name: table[name] for name in names if name in table}


def auto_twin(case: Case, traits: Any, runners: dict) -> str | None:
    """The competitor that runs exactly what ``SequenceSolver("auto")`` runs for this case, if any."""
    from solvers import choose_method
    from solvers.sequence import default_preconditioner_options

    method = choose_method(traits)
    if method == "direct":
        twin = "splu"
    elif method == "cg":
        twin = "cg" if preconditioner_of("cg", case) == "jacobi" else None
    elif method in ("skr", "gmres") and case.preconditioner == "ilu" and \
            dict(case.options) == default_preconditioner_options("ilu", traits):
        twin = "skr" if method == "skr" else "pdeop_gmres"
    else:
        twin = None
    return twin if twin in runners else None


def preconditioner_of(name: str, case: Case) -> str:
    """Preconditioner a competitor uses, for the table."""
    if name in ("splu",):
        return "-"
    if name in ("pyamg_rebuilt", "pyamg_reused"):
        return "amg"
    if name == "cg":
        return case.preconditioner if case.preconditioner in ("none", "jacobi", "amg") else "jacobi"
    if name == "auto":
        return "auto"
    return case.preconditioner


# ---------------------------------------------------------------------------------------------- measuring
def _superlu_bytes(obj: Any, depth: int = 4) -> int:
    """Storage of SuperLU factors reachable from a solver object (invisible to tracemalloc)."""
    if hasattr(obj, "L") and hasattr(obj, "U") and hasattr(obj, "perm_r"):
        return (obj.L.nnz + obj.U.nnz) * 12  # float64 value + int32 index per nonzero
    if depth == 0 or not hasattr(obj, "__dict__"):
        return 0
    return sum(_superlu_bytes(value, depth - 1) for value in vars(obj).values())


def peak_memory_mb(runner: Callable[[Problem], Outcome], problem: Problem, count: int = 3) -> float:
    """Peak MB of a pass over the first ``count`` systems: NumPy/Python allocations plus SuperLU factors."""
    head = dataclasses.replace(problem, systems=problem.systems[:count],
                               sorted_positions=np.arange(min(count, len(problem.systems))))
    tracemalloc.start()
    try:
        outcome = runner(head)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak + sum(_superlu_bytes(h) for h in outcome.holders)) / 2**20


def measure(case: Case, seed: int, rounds: int, memory: bool, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run every competitor of ``case`` and return one table row per competitor."""
    problem = load_problem(case, seed)
    n = problem.systems[0].A.shape[0]
    runners = competitors(case, problem.traits)
    twin = auto_twin(case, problem.traits, runners) if "auto" in runners else None
    if twin is not None:
        runners.pop("auto")
    log(f"{case.name}: {len(problem.systems)} systems of {n} unknowns ({problem.traits}), "
        f"sorting {problem.sort_seconds:.3f} s, auto {'= ' + twin if twin else 'run separately'}")
    reference = None
    if "splu" in runners or case.methods is None:
        reference = _sequence_solver("direct", "none", "generation")(problem).x
    outcomes: dict[str, Outcome] = {}
    times: dict[str, list[float]] = {name: [] for name in runners}
    walls: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            outcome = runner(problem)
            times[name].append(outcome.seconds)
            walls[name].append(outcome.wall_seconds)
            outcomes[name] = outcome
    rows = []
    for name, outcome in outcomes.items():
        residuals = [np.linalg.norm(s.b - s.A @ outcome.x[(s.index, s.step)]) / np.linalg.norm(s.b)
                     for s in problem.systems]
        errors = [np.linalg.norm(outcome.x[k] - reference[k]) / np.linalg.norm(reference[k])
                  for k in reference] if reference is not None else [float("nan")]
        count = len(problem.systems)
        seconds = float(np.median(times[name]))
        row = {
            "case": case.name, "family": case.family, "n_unknowns": n, "systems": count, "method": name,
            "preconditioner": preconditioner_of(name, case), "seconds": seconds,
            "ms_per_system": 1e3 * seconds / count,
            "wall_ms_per_system": 1e3 * float(np.median(walls[name])) / count,
            "matvecs_per_system": outcome.matvecs / count,
            "iterations_per_system": outcome.iterations / count, "worst_residual": float(max(residuals)),
            "max_error_vs_splu": float(max(errors)), "unconverged": int(sum(r > RTOL * (1 + 1e-6) for r in residuals)),
            "retries": outcome.retries, "precond_builds": outcome.builds,
        }
        if memory:
            row["peak_mb"] = peak_memory_mb(runners[name], problem)
        rows.append(row)
        log(f"  {name:14s} {row['ms_per_system']:9.2f} ms/system  {row['matvecs_per_system']:8.1f} matvecs/system  "
            f"worst residual {row['worst_residual']:.2e}")
    if twin is not None:
        twin_row = next(r for r in rows if r["method"] == twin)
        rows.append({**twin_row, "method": "auto", "preconditioner": "auto", "auto_is": twin})
    return rows


# ---------------------------------------------------------------------------------------------- summary
def _pick(rows: Sequence[dict], case: str, method: str) -> dict | None:
    return next((r for r in rows if r["case"] == case and r["method"] == method), None)


def summarise(rows: Sequence[dict]) -> dict[str, Any]:
    """Ratios per case: the targets of DESIGN.md §10 (a ratio > 1 means SKR is better)."""
    out: dict[str, Any] = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        skr = _pick(rows, case, "skr")
        entry: dict[str, Any] = {}
        case_rows = [r for r in rows if r["case"] == case]
        best = min(case_rows, key=lambda r: r["seconds"])
        entry["fastest"] = best["method"]

        def ratio(method: str, key: str) -> float | None:
            other = _pick(rows, case, method)
            if other is None or skr is None or skr[key] == 0:
                return None
            return other[key] / skr[key]

        entry["scipy_gmres_over_skr_matvecs"] = ratio("scipy_gmres", "matvecs_per_system")
        entry["scipy_gmres_over_skr_time"] = ratio("scipy_gmres", "seconds")
        entry["gcrotmk_cu_over_skr_time"] = ratio("gcrotmk_cu", "seconds")
        entry["splu_over_skr_time"] = ratio("splu", "seconds")
        amg = [r for r in case_rows if r["method"].startswith("pyamg")]
        if amg and skr is not None:
            entry["best_pyamg_over_skr_time"] = min(r["seconds"] for r in amg) / skr["seconds"]
        entry["random_order_over_sorted_time"] = ratio("gcrodr", "seconds")
        auto = _pick(rows, case, "auto")
        if auto is not None:
            entry["auto_over_best_time"] = auto["seconds"] / best["seconds"]
        entry["unconverged_stored_by_pdeop"] = sum(r["unconverged"] for r in case_rows
                                                   if r["method"] in ("splu", "pdeop_gmres", "cg", "pyamg_reused",
                                                                      "gcrodr", "skr", "auto"))
        out[case] = entry
    return out


COLUMNS = ("case", "n_unknowns", "systems", "method", "preconditioner", "ms_per_system", "wall_ms_per_system",
           "matvecs_per_system",
           "iterations_per_system", "worst_residual", "max_error_vs_splu", "unconverged", "retries",
           "precond_builds", "peak_mb", "auto_is")


def write_markdown(path: Path, rows: Sequence[dict], summary: dict[str, Any], settings: dict[str, Any]) -> None:
    """Write the side-by-side tables and the ratios as Markdown."""
    lines = ["# SKR benchmark", "", f"Settings: `{settings}`", "", "## Side by side", "",
             format_table(rows, [c for c in COLUMNS if any(c in r for r in rows)]), ""]
    lines += ["## Ratios (> 1: SKR better)", ""]
    flat = [{"case": case, **{k: v for k, v in entry.items()}} for case, entry in summary.items()]
    lines += [format_table(flat), ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def plot(path: Path, rows: Sequence[dict]) -> None:
    """Time per system of every competitor, one group of bars per case (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(r["case"] for r in rows))
    methods = [m for m in ALL_METHODS if any(r["method"] == m for r in rows)]
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(cases)), 4.5))
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        values = [(_pick(rows, c, method) or {}).get("ms_per_system", np.nan) for c in cases]
        ax.bar(np.arange(len(cases)) + j * width, values, width, label=method)
    ax.set_xticks(np.arange(len(cases)) + 0.4 - width / 2)
    ax.set_xticklabels(cases, rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("CPU ms per system")
    ax.set_title(f"Sequences of sparse systems, rtol {RTOL:g}")
    ax.legend(ncol=4, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--rounds", type=int, default=1, help="runs of each competitor; the median time is reported")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", default=None, help="run only these cases (e.g. darcy-101)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory passes")
    p.add_argument("--samples", type=int, default=None, help="override every case's number of samples")
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    cases = QUICK if args.quick else FULL
    if args.samples:
        cases = [dataclasses.replace(c, samples=args.samples) for c in cases]
    if args.only:
        cases = [c for c in cases if c.name in args.only]
    settings = {"rtol": RTOL, "maxiter": "per case (3000)", "m": 40, "k": 20, "blas_threads": args.blas_threads,
                "rounds": args.rounds, "seed": args.seed, "quick": args.quick}
    with threadpool_limits(limits=args.blas_threads):
        rows = [row for case in cases for row in measure(case, args.seed, args.rounds, not args.no_memory, print)]
    summary = summarise(rows)
    print()
    print(format_table(rows, [c for c in COLUMNS if any(c in r for r in rows)]))
    print()
    for case, entry in summary.items():
        print(case, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in entry.items()})
    out = args.out or RESULTS / ("skr_quick.json" if args.quick else "skr.json")
    write_results("skr", rows, summary, out=out, extra={"settings": settings})
    stem = Path(out).with_suffix("")
    write_markdown(stem.with_suffix(".md"), rows, summary, settings)
    plot(stem.with_suffix(".png"), rows)
    print(f"wrote {out}, {stem.with_suffix('.md')}, {stem.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
