"""SKR paper replica: Table 1 of Wang et al. (ICLR 2024) on their own systems, and GCRO-DR's cost per iteration.

Part 1 — **Table 1 replica.** The systems are built as the paper's public code builds them
(github.com/wanghong1700/NO-DataGen-SKR, ``code_dracy`` and ``code_hmh``):

* Darcy: a coefficient ``a = exp(g)`` with ``g`` a periodic Gaussian random field on an
  ``m x m`` grid, spectrum ``sqrt(2) tau^(alpha - 1) (4 pi^2 |k|^2 + tau^2)^(-alpha / 2)``,
  ``alpha = 2.5, tau = 7`` (zero mean); the ``(m - 2)^2`` interior nodes are the unknowns, with the
  non-symmetric 5-point matrix ``A[p, p] = 4 a_p`` and ``A[p, q] = -a_q`` for the neighbours ``q``
  (the neighbour's coefficient, not a face average) — including a quirk of their diagonal layout:
  the coefficient on the ``p - s`` coupling is the "up" neighbour field read two positions early
  in flat order. Right-hand side ``h^2 f`` with ``f = 1``, ``h = 1 / (m - 3)``. The paper labels a
  size by ``m^2`` (2,500 / 6,400 / 10,000: 2,304 / 6,084 / 9,604 unknowns).
* Helmholtz: the same matrix with ``-h^2 k^2`` added on the diagonal, ``k ~ U(0, 1)`` per system.

N = 100 systems per cell, sorted by the paper's greedy nearest-neighbour chain on the Frobenius
distance of the coefficient fields (plus ``k``), starting at system 0. Competitors, both with the
same preconditioner built for every system (as PETSc rebuilds it when the operator changes):
SciPy's ``gmres(restart=40)`` (left-preconditioned, capped at 10^4 iterations like the paper's
runs — a capped run counts 10^4) and pdeop's ``skr`` (``SequenceSolver``: GCRO-DR(40, 20),
right-preconditioned, answers verified; sorting time included). Preconditioners: none, Jacobi,
SOR (symmetric Gauss-Seidel, PETSc's default ``PCSOR``, within 72 contiguous row blocks: the
paper ran SOR on 72 MPI ranks, where PETSc sweeps locally) and ILU (ILU(0), run sequentially in
the paper: on these 5-point matrices the diagonal ILU, ``solvers.preconditioners.DiagonalILU``). Tolerances as Table 1
prints them (Darcy 1e-2 / 1e-5 / 1e-8, Helmholtz 1e-2 / 1e-5 / 1e-7). A cell is "time ratio /
iteration ratio" (GMRES over SKR, mean CPU seconds and mean iterations per system), as in the
paper. The baseline's per-system cost does not depend on the order, so it is measured on every
``--baseline-every``-th system (default 10: 10 of the 100) — its mean's standard error is in the
JSON; SKR runs the whole sorted sequence.

Part 2 — **overhead per iteration** (``overhead`` rows): CPU time per iteration minus the cost of
the operator (``A @ x``, plus the Jacobi sweep where used) for SciPy GMRES(40), pdeop GMRES(40)
and GCRO-DR(40, 20) over a sequence of the n = 10,000 Darcy systems, interleaved rounds, medians.
Run with ``--overhead-only`` against an older checkout (``PYTHONPATH``) for a before/after.

Paper numbers: Table 1 where it prints the cell, otherwise the ratios of the appendix tables'
means (Tables 3, 4, 6, 9 for Darcy; 24, 25, 27, 30 for Helmholtz). Single-threaded BLAS.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from harness import RESULTS, format_table, parser, write_results

SIZES = (2500, 6400, 10000)  # the paper's labels: m^2 for an m x m grid
#: paper name -> pdeop kind and options; SOR as the paper ran it (PETSc PCSOR on 72 MPI ranks, Tables 6 and 27)
PRECONDITIONERS = {"none": ("none", {}), "jacobi": ("jacobi", {}), "sor": ("sor", {"blocks": 72}), "ilu": ("ilu0", {})}
TOLERANCES = {"darcy": (1e-2, 1e-5, 1e-8), "helmholtz": (1e-2, 1e-5, 1e-7)}
MAXITER = 10_000

#: Table 1 of the paper: (time ratio, iteration ratio) of the cells it prints
TABLE1 = {
    ("darcy", 6400): {"none": ((2.62, 19.2), (2.92, 21.1), (2.70, 19.1)), "jacobi": ((2.88, 22.6), (3.42, 24.5), (3.09, 22.9)),
                      "sor": ((2.69, 23.3), (3.45, 27.9), (3.54, 27.5)), "ilu": ((1.93, 9.44), (3.08, 14.4), (3.70, 17.2))},
    ("helmholtz", 10000): {"none": ((7.74, 17.3), (7.61, 16.5), (6.47, 13.68)),
                           "jacobi": ((8.44, 20.3), (8.62, 20.0), (7.96, 18.1)),
                           "sor": ((8.37, 22.3), (10.5, 26.2), (10.6, 25.9)),
                           "ilu": ((3.88, 17.6), (6.13, 27.2), (6.34, 28.0))},
}
#: appendix tables: mean GMRES seconds, SKR seconds, GMRES iterations, SKR iterations at the three tolerances
APPENDIX = {
    ("darcy", 2500, "none"): ((0.20, 0.29, 0.36), (0.09, 0.11, 0.13), (2575, 3983, 4963), (131, 183, 227)),
    ("darcy", 10000, "none"): ((0.70, 0.88, 0.91), (0.28, 0.41, 0.52), (7457, 9375, 9775), (446, 682, 881)),
    ("darcy", 2500, "jacobi"): ((0.19, 0.26, 0.31), (0.09, 0.10, 0.12), (2357, 3407, 4192), (110, 152, 187)),
    ("darcy", 10000, "jacobi"): ((0.64, 0.85, 0.91), (0.23, 0.31, 0.38), (6642, 8987, 9610), (347, 477, 613)),
    ("darcy", 2500, "sor"): ((0.13, 0.19, 0.23), (0.08, 0.09, 0.10), (1393, 2271, 2852), (76, 105, 129)),
    ("darcy", 10000, "sor"): ((0.53, 0.74, 0.85), (0.16, 0.20, 0.24), (5120, 7246, 8467), (206, 281, 341)),
    ("darcy", 2500, "ilu"): ((0.03, 0.04, 0.05), (0.03, 0.04, 0.05), (141, 199, 261), (30, 42, 51)),
    ("darcy", 10000, "ilu"): ((1.19, 2.13, 2.75), (0.30, 0.39, 0.47), (1670, 2995, 3836), (94, 123, 148)),
    ("helmholtz", 2500, "none"): ((1.37, 2.36, 2.87), (0.21, 0.25, 0.29), (2279, 3999, 4882), (130, 185, 214)),
    ("helmholtz", 6400, "none"): ((3.09, 4.49, 4.93), (0.36, 0.48, 0.54), (5436, 7978, 8749), (277, 388, 441)),
    ("helmholtz", 2500, "jacobi"): ((1.20, 1.87, 2.28), (0.19, 0.24, 0.27), (1988, 3136, 3849), (110, 153, 176)),
    ("helmholtz", 6400, "jacobi"): ((2.64, 4.08, 4.54), (0.33, 0.42, 0.47), (4597, 7220, 8028), (228, 315, 356)),
    ("helmholtz", 2500, "sor"): ((0.77, 1.19, 1.38), (0.16, 0.19, 0.21), (1231, 1966, 2290), (76, 105, 122)),
    ("helmholtz", 6400, "sor"): ((1.98, 3.04, 3.59), (0.25, 0.31, 0.34), (3414, 5339, 6262), (156, 210, 239)),
    ("helmholtz", 2500, "ilu"): ((0.01, 0.01, 0.01), (0.02, 0.03, 0.04), (28, 40, 56), (21, 30, 34)),
    ("helmholtz", 6400, "ilu"): ((0.64, 1.15, 1.37), (0.16, 0.21, 0.23), (1420, 2548, 3056), (77, 100, 114)),
}


def paper_cell(family: str, n: int, precond: str, column: int) -> tuple[float, float] | None:
    """The paper's (time ratio, iteration ratio) of a cell: Table 1, else the appendix means."""
    printed = TABLE1.get((family, n), {}).get(precond)
    if printed:
        return printed[column]
    means = APPENDIX.get((family, n, precond))
    if means is None:
        return None
    gt, st, gi, si = (values[column] for values in means)
    return gt / st, gi / si


# ---------------------------------------------------------------------------------------------- replica
def periodic_grf(rng: np.random.Generator, m: int, alpha: float = 2.5, tau: float = 7.0) -> np.ndarray:
    """A periodic Gaussian random field on an ``m x m`` grid as the paper's generator draws it."""
    k = np.fft.fftfreq(m, 1.0 / m)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    amplitude = m * m * np.sqrt(2.0) * tau ** (alpha - 1.0) * (4 * np.pi**2 * k2 + tau**2) ** (-alpha / 2.0)
    amplitude[0, 0] = 0.0
    xi = (rng.standard_normal((m, m)) + 1j * rng.standard_normal((m, m))) / np.sqrt(2.0)
    return np.fft.ifft2(amplitude * xi).real


def replica_system(a: np.ndarray, shift: float = 0.0) -> tuple[sp.csr_matrix, np.ndarray]:
    """The paper's 5-point system for a coefficient ``a`` on the full ``m x m`` grid (``shift``: ``h^2 k^2``)."""
    m = a.shape[0]
    s = m - 2
    n = s * s
    p = np.arange(n)
    col = p % s
    rows, cols, vals = [p], [p], [4.0 * a[1:-1, 1:-1].ravel() - shift]
    couplings = [(col < s - 1, 1, a[1:-1, 2:].ravel()), (col > 0, -1, a[1:-1, :-2].ravel()),
                 (p + s < n, s, a[2:, 1:-1].ravel())]
    for mask, offset, field in couplings:
        rows.append(p[mask])
        cols.append(p[mask] + offset)
        vals.append(-field[p[mask]])
    up = p >= s  # their offset -s diagonal starts two entries into the flattened field
    rows.append(p[up])
    cols.append(p[up] - s)
    vals.append(-a[:-2, 1:-1].ravel()[p[up] - 2])
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    h = 1.0 / (s - 1)
    return A, np.full(n, h * h)


@dataclasses.dataclass
class Sequence100:
    """The systems of one (family, size) and the paper's solve order."""

    systems: list[tuple[sp.csr_matrix, np.ndarray]]
    order: np.ndarray
    sort_seconds: float


def build_sequence(family: str, size: int, samples: int, seed: int) -> Sequence100:
    from solvers.sorting import greedy_order

    rng = np.random.default_rng([seed, size, family == "helmholtz"])
    m = int(round(np.sqrt(size)))
    fields = [np.exp(periodic_grf(rng, m)) for _ in range(samples)]
    k = rng.uniform(0.0, 1.0, samples) if family == "helmholtz" else np.zeros(samples)
    h = 1.0 / (m - 3)
    systems = [replica_system(a, (h * kk) ** 2) for a, kk in zip(fields, k)]
    start = time.process_time()
    order = greedy_order(np.column_stack([np.stack([f.ravel() for f in fields]), k]), start=0)
    return Sequence100(systems, order, time.process_time() - start)


# ---------------------------------------------------------------------------------------------- competitors
def run_gmres(seq: Sequence100, kind: str, options: dict, rtol: float, every: int) -> dict[str, Any]:
    """SciPy GMRES(40) on every ``every``-th system: mean CPU seconds and iterations, capped runs."""
    from solvers import build_preconditioner

    seconds, iterations, capped = [], [], 0
    for A, b in seq.systems[::every]:
        count = [0]
        start = time.process_time()
        M = build_preconditioner(kind, A, **options)
        _, info = spla.gmres(A, b, rtol=rtol, atol=0.0, restart=40, maxiter=MAXITER // 40, M=M,
                             callback=lambda _: count.__setitem__(0, count[0] + 1), callback_type="pr_norm")
        seconds.append(time.process_time() - start)
        iterations.append(count[0])
        capped += info != 0
    return {"seconds": float(np.mean(seconds)), "seconds_sem": float(np.std(seconds, ddof=1) / np.sqrt(len(seconds))),
            "iterations": float(np.mean(iterations)), "capped": capped, "measured": len(seconds)}


def run_skr(seq: Sequence100, kind: str, options: dict, rtol: float) -> dict[str, Any]:
    """pdeop's ``skr`` over the sorted sequence, preconditioner rebuilt per system, sorting included."""
    from solvers import ProblemTraits, SequenceSolver

    n = seq.systems[0][0].shape[0]
    solver = SequenceSolver("skr", ProblemTraits(2, n, False, False), rtol=rtol, m=40, k=20, preconditioner=kind,
                            maxiter=MAXITER, preconditioner_options=options, preconditioner_reuse=False)
    start = time.process_time()
    for i in seq.order:
        A, b = seq.systems[i]
        solver.solve(A, b, label=f"system {i}")
    total = time.process_time() - start + seq.sort_seconds
    st = solver.summary()
    count = len(seq.systems)
    return {"seconds": total / count, "iterations": st["iterations"] / count, "retries": st["retries"],
            "worst_residual": st["worst_residual"]}


def table1(sizes: Sequence[int], families: Sequence[str], preconds: Sequence[str], samples: int, every: int,
           seed: int, log: Callable[[str], None],
           save: Callable[[list[dict[str, Any]]], None] | None = None,
           columns: Sequence[int] = (0, 1, 2)) -> list[dict[str, Any]]:
    """The Table 1 cells, in order; ``save(rows)`` after each one (a long run keeps what it measured).

    ``columns`` selects the tolerance columns (0: 1e-2, 1: 1e-5, 2: the tightest).
    """
    rows = []
    for family in families:
        for size in sizes:
            seq = build_sequence(family, size, samples, seed)
            log(f"{family} {size}: {seq.systems[0][0].shape[0]} unknowns, {samples} systems, sort {seq.sort_seconds:.2f} s")
            for pname in preconds:
                for column in columns:
                    rtol = TOLERANCES[family][column]
                    gm = run_gmres(seq, *PRECONDITIONERS[pname], rtol, every)
                    skr = run_skr(seq, *PRECONDITIONERS[pname], rtol)
                    paper = paper_cell(family, size, pname, column)
                    row = {"family": family, "n": size, "unknowns": seq.systems[0][0].shape[0],
                           "preconditioner": pname, "rtol": rtol, "time_ratio": gm["seconds"] / skr["seconds"],
                           "iteration_ratio": gm["iterations"] / skr["iterations"],
                           "paper_time_ratio": paper[0] if paper else None,
                           "paper_iteration_ratio": paper[1] if paper else None,
                           "in_table1": (family, size) in TABLE1,
                           **{f"gmres_{k}": v for k, v in gm.items()}, **{f"skr_{k}": v for k, v in skr.items()}}
                    rows.append(row)
                    said = f"(paper {paper[0]:.2f}/{paper[1]:.1f})" if paper else "(paper: none)"
                    log(f"  {pname:6s} {rtol:.0e}: {row['time_ratio']:.2f}/{row['iteration_ratio']:.1f} {said}  GMRES {gm['seconds']:.3f} s {gm['iterations']:.0f} it "
                        f"({gm['capped']}/{gm['measured']} capped), SKR {skr['seconds']:.3f} s {skr['iterations']:.0f} it")
                    if save is not None:
                        save(rows)
    return rows


# ---------------------------------------------------------------------------------------------- overhead
def overhead(size: int, systems: int, rounds: int, seed: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Per-iteration CPU cost minus the operator's, side by side, for none and Jacobi."""
    from solvers import GCRODR, build_preconditioner

    seq = build_sequence("darcy", size, systems, seed)
    mats = [seq.systems[i] for i in seq.order]
    x = np.ones(mats[0][0].shape[0])
    rows = []
    for kind in ("none", "jacobi"):
        Ms = [build_preconditioner(kind, A) for A, _ in mats]

        def operator() -> None:
            for (A, _), M in zip(mats, Ms):
                A @ x
                if M is not None:
                    M @ x

        def scipy_gmres() -> int:
            total = 0
            for (A, b), M in zip(mats, Ms):
                count = [0]
                spla.gmres(A, b, rtol=1e-14, restart=40, maxiter=6, M=M,
                           callback=lambda _: count.__setitem__(0, count[0] + 1), callback_type="pr_norm")
                total += count[0]
            return total

        def ours(k: int) -> Callable[[], int]:
            def run() -> int:
                solver = GCRODR(m=40, k=k, rtol=1e-8, maxiter=MAXITER)
                return sum(solver.solve(A, b, M=M).iterations for (A, b), M in zip(mats, Ms))
            return run

        contenders = {"scipy_gmres": scipy_gmres, "pdeop_gmres": ours(0), "gcrodr": ours(20)}
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        op: list[float] = []
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(20):
                operator()
            op.append((time.process_time() - start) / (20 * len(mats)))
            for name, fn in contenders.items():
                start = time.process_time()
                its = fn()
                samples[name].append((time.process_time() - start) / its)
        op_ms = 1e3 * statistics.median(op)
        base = 1e3 * statistics.median(samples["scipy_gmres"]) - op_ms
        for name, values in samples.items():
            per_it = 1e3 * statistics.median(values)
            rows.append({"n": size, "unknowns": mats[0][0].shape[0], "preconditioner": kind, "method": name,
                         "ms_per_iteration": per_it, "operator_ms": op_ms, "overhead_ms": per_it - op_ms,
                         "overhead_over_scipy_gmres": (per_it - op_ms) / base})
            log(f"  {kind:6s} {name:12s} {per_it:.4f} ms/it, operator {op_ms:.4f} ms, overhead ratio "
                f"{(per_it - op_ms) / base:.2f}")
    return rows


# ---------------------------------------------------------------------------------------------- output
def summarise(rows: Sequence[dict], over: Sequence[dict]) -> dict[str, Any]:
    cells = [r for r in rows if r["paper_time_ratio"] is not None]
    out: dict[str, Any] = {
        "cells": len(rows),
        "cells_time_ratio_at_least_paper": sum(r["time_ratio"] >= r["paper_time_ratio"] for r in cells),
        "cells_iteration_ratio_at_least_10": sum(r["iteration_ratio"] >= 10 for r in rows),
        "table1_cells_time_ratio_at_least_paper": sum(r["time_ratio"] >= r["paper_time_ratio"] for r in cells
                                                      if r["in_table1"]),
        "table1_cells": sum(r["in_table1"] for r in rows),
        "skr_retries": sum(r["skr_retries"] for r in rows),
    }
    for r in over:  # merged runs are told apart by their file's name
        run = f"_{r['run']}" if "run" in r else ""
        out[f"overhead_{r['preconditioner']}_{r['method']}_over_scipy_gmres{run}"] = r["overhead_over_scipy_gmres"]
    return out


def markdown(rows: Sequence[dict], over: Sequence[dict], summary: dict, settings: dict) -> str:
    lines = ["# SKR paper replica (Wang et al., ICLR 2024, Table 1)", "", f"Settings: `{settings}`", "",
             "Cells: time ratio / iteration ratio, GMRES(40) over SKR (> 1: SKR better); paper's in parentheses "
             "(Table 1 where printed, else its appendix means).", ""]
    preconds = [p for p in PRECONDITIONERS if any(r["preconditioner"] == p for r in rows)]
    table = []
    for key in sorted(set((r["family"], r["n"], r["rtol"]) for r in rows), key=lambda k: (k[0], k[1], -k[2])):
        line = {"dataset": f"{key[0]} {key[1]}", "rtol": f"{key[2]:.0e}"}
        for p in preconds:
            r = next((r for r in rows if (r["family"], r["n"], r["rtol"]) == key and r["preconditioner"] == p), None)
            if r is not None:
                paper = (f" ({r['paper_time_ratio']:.2f}/{r['paper_iteration_ratio']:.3g})"
                         if r["paper_time_ratio"] is not None else "")
                line[p] = f"{r['time_ratio']:.2f}/{r['iteration_ratio']:.3g}{paper}"
        table.append(line)
    lines += [format_table(table), "", "## Per-iteration overhead (CPU ms per iteration minus the operator)", "",
              format_table(over), "", "## Summary", "", format_table([summary]), ""]
    return "\n".join(lines)


def merge(paths: Sequence[Path], out: Path) -> int:
    """Combine finished runs (e.g. one per family, run side by side) into one table, summary and Markdown."""
    import json

    rows, over, settings = [], [], {}
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows += data["rows"]
        over += [{"run": path.stem, **r} for r in data.get("overhead", [])]
        settings[path.name] = data["settings"]
    summary = summarise(rows, over)
    write_results("skr_paper", rows, summary, out=out, extra={"overhead": over, "settings": settings})
    out.with_suffix(".md").write_text(markdown(rows, over, summary, settings), encoding="utf-8")
    print(f"merged {len(rows)} cells into {out} and {out.with_suffix('.md')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=100, help="systems per cell (paper: 100)")
    p.add_argument("--baseline-every", type=int, default=10, help="time SciPy GMRES on every k-th system")
    p.add_argument("--sizes", type=int, nargs="*", default=None, help="paper sizes (2500 6400 10000)")
    p.add_argument("--families", nargs="*", default=["darcy", "helmholtz"])
    p.add_argument("--preconditioners", nargs="*", default=list(PRECONDITIONERS))
    p.add_argument("--overhead-only", action="store_true", help="only the per-iteration overhead rows")
    p.add_argument("--overhead-rounds", type=int, default=3)
    p.add_argument("--no-overhead", action="store_true", help="only the Table 1 cells")
    p.add_argument("--columns", type=int, nargs="*", default=[0, 1, 2], choices=[0, 1, 2],
                   help="tolerance columns to run (0: 1e-2, 1: 1e-5, 2: 1e-8 Darcy / 1e-7 Helmholtz)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--merge", type=Path, nargs="*", default=None,
                   help="combine earlier runs' JSON files (cells and overhead rows) into --out (no solves)")
    args = p.parse_args(argv)
    if args.merge:
        return merge(args.merge, Path(args.out) if args.out else RESULTS / "skr_paper.json")
    from threadpoolctl import threadpool_limits

    sizes = args.sizes or ([2500] if args.quick else list(SIZES))
    samples = 12 if args.quick else args.samples
    preconds = ["none", "jacobi"] if args.quick else args.preconditioners
    every = 4 if args.quick else args.baseline_every
    settings = {"samples": samples, "baseline_every": every, "maxiter": MAXITER, "m": 40, "k": 20,
                "blas_threads": 1, "seed": args.seed, "quick": args.quick,
                "columns": args.columns}
    name = "skr_paper_overhead" if args.overhead_only else ("skr_paper_quick" if args.quick else "skr_paper")
    out = Path(args.out) if args.out else RESULTS / f"{name}.json"

    def save(rows: list[dict[str, Any]], over: list[dict[str, Any]]) -> dict[str, Any]:
        summary = summarise(rows, over)
        write_results("skr_paper", rows, summary, out=out, extra={"overhead": over, "settings": settings})
        out.with_suffix(".md").write_text(markdown(rows, over, summary, settings), encoding="utf-8")
        return summary

    with threadpool_limits(limits=1):
        over = [] if args.no_overhead else overhead(2500 if args.quick else 10000, 3 if args.quick else 6,
                                                    args.overhead_rounds, args.seed, print)
        rows = [] if args.overhead_only else table1(sizes, args.families, preconds, samples, every, args.seed, print,
                                                    lambda done: save(done, over), args.columns)
    print(save(rows, over))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
