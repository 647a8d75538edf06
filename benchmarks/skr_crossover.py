"""Where recycling should win: 3D non-symmetric and indefinite families as n grows, SKR against LU, AMG and ILU-GMRES.

For each family and grid size, the sequence of N systems is assembled by the family itself and
solved by each competitor through ``solvers.SequenceSolver`` (every answer verified to rtol 1e-8,
misses retried — retries are counted and their time included), side by side in this process:

* ``splu``       sparse LU (SuperLU, COLAMD ordering), one factorization per system;
* ``amg``        pyamg smoothed aggregation (rebuilt per system) as the preconditioner of GMRES(40);
* ``ilu_gmres``  GMRES(40) with an ILU, built on the first system and reused until iterations
                 double (pdeop's default reuse);
* ``skr``        GCRO-DR(40, 20) with the same ILU and reuse, systems in similarity order
                 (sorting time included).

``auto`` is not run again: ``SequenceSolver("auto")`` resolves to one of these configurations
exactly (same method, preconditioner and order; ``tests/pde_data/test_families_3d.py`` checks the
resolution at every measured size), so its time is that competitor's, and a second run would
only add timing noise to the comparison with the best.

Reported per size: CPU seconds **per system** in steady state (median over the systems after the
first, so set-up that a long dataset amortises is excluded) and **for the whole dataset** (total
over the N-system sequence, set-up and the first system included, divided by N), iterations,
retries and peak factor memory (LU and ILU factors). A competitor that exceeds the time cap
(``--cap-seconds`` per system), or whose time or LU/ILU factor memory predicted at the next size
(from the growth between the last two sizes) would exceed ``--cap-seconds`` or ``--cap-gb``, is
not run at larger sizes, and the table says so; the process runs under an address-space limit so
that an unexpectedly large factorization fails as a MemoryError instead of taking the machine.

The winner per size is what ``solver: auto`` must pick (the crossover is copied into the families'
``traits``); the summary lists auto's time over the best. Plot: ``results/skr_crossover.png``.
Single-threaded BLAS (``--threads`` does not apply).
"""

from __future__ import annotations

import dataclasses
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness import RESULTS, format_table, parser, write_results

RTOL = 1e-8
COMPETITORS = ("splu", "amg", "ilu_gmres", "skr")
#: competitor measuring each method ``solver: auto`` can resolve to
COMPETITOR_OF = {"direct": "splu", "amg": "amg", "gmres": "ilu_gmres", "skr": "skr"}
FULL = {"helmholtz3d": (24, 32, 40, 48, 64, 80, 100), "convection-diffusion3d": (16, 20, 24, 32, 48, 64, 80, 102)}
QUICK = {"helmholtz3d": (10, 14), "convection-diffusion3d": (12, 16)}
#: settings of the quick mode (the preset's k = 20 needs >= 24^3 grids for 6 points per wavelength)
QUICK_OVERRIDES = {"helmholtz3d": ["wavenumber=5"]}


@dataclasses.dataclass
class Outcome:
    per_system: float  # median CPU seconds of the systems after the first
    per_dataset: float  # total CPU seconds / N, set-up and first system included
    iterations: float
    retries: int
    factor_mb: float
    worst_residual: float


def factor_megabytes(solver: Any) -> float:
    """Storage of the LU / ILU factors a SequenceSolver holds (value plus a 4-byte index per stored entry)."""
    total = 0
    for holder in (getattr(solver, "_method", None), getattr(solver, "_fallback", None),
                   getattr(getattr(solver, "_precond", None), "_M", None)):
        for name in ("_lu", "factor"):
            f = getattr(holder, name, None)
            if f is not None and hasattr(f, "L"):
                total += (4 + f.L.dtype.itemsize) * (f.L.nnz + f.U.nnz)
    return total / 2**20


def run(name: str, systems: list, order: np.ndarray, sort_seconds: float, traits: Any) -> Outcome:
    """Solve the sequence with one competitor (``order``: the similarity order, used by skr)."""
    from solvers import SequenceSolver

    method = {competitor: method for method, competitor in COMPETITOR_OF.items()}[name]
    solver = SequenceSolver(method, traits, rtol=RTOL, m=40, k=20, maxiter=3000)
    sequence = order if name == "skr" else np.arange(len(systems))
    seconds, factor = [], 0.0
    for i in sequence:
        start = time.process_time()
        solver.solve(systems[i].A, systems[i].b, label=f"sample {systems[i].index}")
        seconds.append(time.process_time() - start)
        factor = max(factor, factor_megabytes(solver))
    st = solver.summary()
    setup = sort_seconds if name == "skr" else 0.0
    count = len(systems)
    return Outcome(per_system=float(np.median(seconds[1:] if count > 1 else seconds)),
                   per_dataset=(sum(seconds) + setup) / count, iterations=st["iterations"] / count,
                   retries=st["retries"], factor_mb=factor, worst_residual=st["worst_residual"])


def measure(family: str, resolution: int, samples: int, seed: int, skip: dict[str, str],
            log: Callable[[str], None], overrides: Sequence[str] = (),
            competitors: Sequence[str] = COMPETITORS) -> list[dict[str, Any]]:
    from pde_data.family import get_family
    from pde_data.pipeline import resolve_config
    from solvers.sorting import similarity_order

    config = resolve_config(family, None, overrides=[f"resolution={resolution}", *overrides], samples=samples, seed=seed)
    fam = get_family(family)(config.settings)
    systems = list(fam.systems(range(samples), seed))
    start = time.process_time()
    order = similarity_order(np.stack([s.features for s in systems]))
    sort_seconds = time.process_time() - start
    traits = fam.traits()
    n = systems[0].A.shape[0]
    log(f"{family} K={resolution}: {samples} systems of {n} unknowns, auto -> {fam.method()}")
    rows = []
    for name in competitors:
        row: dict[str, Any] = {"family": family, "resolution": resolution, "n_unknowns": n, "systems": samples,
                               "method": name, "auto_picks": COMPETITOR_OF.get(fam.method()) == name}
        if name in skip:
            row["skipped"] = skip[name]
            rows.append(row)
            log(f"  {name:10s} skipped: {skip[name]}")
            continue
        try:
            out = run(name, systems, order, sort_seconds, traits)
        except (MemoryError, SystemError):  # SuperLU reports a failed allocation as SystemError
            skip[name] = (f"out of memory at n = {n}" if name == "splu" else
                          f"no convergence to rtol within maxiter at n = {n}; then its LU fallback ran out of memory")
            row["skipped"] = skip[name]
            rows.append(row)
            log(f"  {name:10s} {skip[name]}")
            continue
        row.update(dataclasses.asdict(out))
        rows.append(row)
        log(f"  {name:10s} {out.per_system:9.3f} s/system  {out.per_dataset:9.3f} s/system over the dataset  "
            f"{out.iterations:7.1f} it  {out.retries} retries  factors {out.factor_mb:8.1f} MB")
    return rows


def update_caps(rows: Sequence[dict], skip: dict[str, str], cap_seconds: float, cap_mb: float,
                growth: dict[str, tuple[int, float, float]], next_n: int | None) -> None:
    """Stop competitors that passed a cap, or whose time or factor memory will pass it at the next size.

    The prediction extrapolates the last two sizes' growth (time at least ``~n``, factors at least
    ``~n^{4/3}``, 3D nested-dissection fill) to ``next_n`` unknowns; with one size measured it assumes
    those minimum exponents.
    """
    for r in rows:
        name = r["method"]
        if "skipped" in r:
            continue
        n, seconds, mb = r["n_unknowns"], r["per_dataset"], r["factor_mb"]
        previous = growth.get(name)
        growth[name] = (n, seconds, mb)
        if seconds > cap_seconds:
            skip[name] = f"time cap: {seconds:.0f} s per system at n = {n} > {cap_seconds:.0f} s"
            continue
        if next_n is None:
            continue
        ratio = next_n / n

        def exponent(now: float, before: float, least: float) -> float:
            if previous is None or before <= 0 or previous[0] >= n:
                return least
            return max(least, np.log(now / before) / np.log(n / previous[0]))

        t_next = seconds * ratio ** exponent(seconds, previous[1] if previous else 0.0, 1.0)
        mb_next = mb * ratio ** exponent(mb, previous[2] if previous else 0.0, 4.0 / 3.0) if mb > 0 else 0.0
        if t_next > cap_seconds:
            skip[name] = (f"time cap: {seconds:.1f} s per system at n = {n}, predicted {t_next:.0f} s at "
                          f"n = {next_n} > {cap_seconds:.0f} s")
        elif mb_next > cap_mb:
            skip[name] = (f"memory cap: factors {mb:.0f} MB at n = {n}, predicted {mb_next / 1024:.1f} GB at "
                          f"n = {next_n} > {cap_mb / 1024:.1f} GB")


def auto_choice(family: str, resolution: int, overrides: Sequence[str] = ()) -> str:
    """The competitor measuring what ``solver: auto`` runs for this family and size (the current rule)."""
    from pde_data.family import get_family
    from pde_data.pipeline import resolve_config

    config = resolve_config(family, None, overrides=[f"resolution={resolution}", *overrides], samples=1, seed=0)
    return COMPETITOR_OF[get_family(family)(config.settings).method()]


def summarise(rows: Sequence[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in dict.fromkeys((r["family"], r["resolution"]) for r in rows):
        ranked = [r for r in rows if (r["family"], r["resolution"]) == key and "per_dataset" in r]
        if not ranked:
            continue
        best = min(ranked, key=lambda r: r["per_dataset"])
        auto = next((r for r in rows if (r["family"], r["resolution"]) == key and r["auto_picks"]), None)
        entry = {"n_unknowns": best["n_unknowns"], "fastest": best["method"], "fastest_s": best["per_dataset"],
                 "fastest_per_system": min(ranked, key=lambda r: r["per_system"])["method"]}
        skr = next((r for r in ranked if r["method"] == "skr"), None)
        for r in ranked:
            if skr is not None and r["method"] != "skr":
                entry[f"{r['method']}_over_skr"] = r["per_dataset"] / skr["per_dataset"]
        if auto is not None:
            entry["auto_choice"] = auto["method"]
            entry["auto_over_best"] = auto["per_dataset"] / best["per_dataset"] if "per_dataset" in auto else None
        out[f"{key[0]}-{key[1]}"] = entry
    return out


def plot(path: Path, rows: Sequence[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(r["family"] for r in rows))
    fig, axes = plt.subplots(1, len(families), figsize=(6 * len(families), 4.5), squeeze=False)
    for ax, family in zip(axes[0], families):
        for name in COMPETITORS:
            pts = [(r["n_unknowns"], r["per_dataset"]) for r in rows
                   if r["family"] == family and r["method"] == name and "per_dataset" in r]
            stopped = next((r["skipped"].split(":")[0].split(";")[0].split(" at n")[0] for r in rows
                            if r["family"] == family and r["method"] == name and "skipped" in r), None)
            if pts:
                x, y = zip(*pts)
                ax.loglog(x, y, "o-", label=name if stopped is None else f"{name} (then stopped: {stopped})")
        picks = [(r["n_unknowns"], r["per_dataset"]) for r in rows
                 if r["family"] == family and r["auto_picks"] and "per_dataset" in r]
        if picks:
            x, y = zip(*picks)
            ax.loglog(x, y, "ks", fillstyle="none", markersize=11, label="auto's pick")
        ax.set_xlabel("unknowns")
        ax.set_ylabel("CPU s per system (whole dataset)")
        ax.set_title(f"{family}, rtol {RTOL:g}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


COLUMNS = ("family", "resolution", "n_unknowns", "systems", "method", "per_system", "per_dataset", "iterations",
           "retries", "factor_mb", "worst_residual", "auto_picks", "skipped")


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=4, help="systems per size")
    p.add_argument("--families", nargs="*", default=list(FULL))
    p.add_argument("--competitors", nargs="*", default=list(COMPETITORS), choices=COMPETITORS)
    p.add_argument("--resolutions", type=int, nargs="*", default=None)
    p.add_argument("--cap-seconds", type=float, default=60.0, help="CPU seconds per system before a method stops")
    p.add_argument("--cap-gb", type=float, default=8.0, help="predicted factor memory before a method stops")
    p.add_argument("--address-space-gb", type=float, default=12.0, help="hard limit of this process's memory")
    p.add_argument("--set", nargs="*", default=[], help="family settings key=value (as pdeop generate --set)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resummarise", type=Path, nargs="*", default=None,
                   help="merge earlier runs' JSON files into --out and mark auto's pick by the current rule (no solves)")
    args = p.parse_args(argv)
    if args.resummarise:
        return resummarise(args.resummarise, Path(args.out) if args.out else RESULTS / "skr_crossover.json")
    from threadpoolctl import threadpool_limits

    limit = int(args.address_space_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sizes = QUICK if args.quick else FULL
    samples = 3 if args.quick else args.samples
    settings = {"rtol": RTOL, "samples": samples, "competitors": args.competitors, "set": args.set, "cap_seconds": args.cap_seconds,
                "cap_gb": args.cap_gb, "address_space_gb": args.address_space_gb, "blas_threads": 1, "seed": args.seed,
                "quick": args.quick}
    out = Path(args.out) if args.out else RESULTS / ("skr_crossover_quick.json" if args.quick else "skr_crossover.json")
    rows: list[dict] = []
    with threadpool_limits(limits=1):
        for family in args.families:
            skip: dict[str, str] = {}
            growth: dict[str, tuple[int, float, float]] = {}
            resolutions = list(args.resolutions or sizes[family])
            for resolution, following in zip(resolutions, [*resolutions[1:], None]):
                overrides = [*(QUICK_OVERRIDES.get(family, []) if args.quick else []), *args.set]
                new = measure(family, resolution, samples, args.seed, skip, print, overrides, args.competitors)
                n = new[0]["n_unknowns"]  # the next size's unknowns scale as the grid's cube
                update_caps(new, skip, args.cap_seconds, args.cap_gb * 1024, growth,
                            None if following is None else round(n * (following / resolution) ** 3))
                rows += new
                write_outputs(out, rows, settings)  # after every size: a long run keeps what it measured
    return 0


def write_outputs(out: Path, rows: list[dict], settings: dict) -> None:
    summary = summarise(rows)
    print(format_table(rows, COLUMNS))
    for key, entry in summary.items():
        print(key, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in entry.items()})
    write_results("skr_crossover", rows, summary, out=out, extra={"settings": settings})
    md = ["# SKR crossover on 3D non-symmetric / indefinite families", "", f"Settings: `{settings}`", "",
          format_table(rows, COLUMNS), "", "## Fastest per size (whole dataset) and auto", "",
          format_table([{"case": k, **v} for k, v in summary.items()]), ""]
    out.with_suffix(".md").write_text("\n".join(md), encoding="utf-8")
    plot(out.with_suffix(".png"), rows)
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")


def rows_under_current_rule(paths: Sequence[Path]) -> tuple[list[dict], dict[str, dict]]:
    """Rows of finished runs with ``auto_picks`` re-marked by the current rule, and each run's settings.

    A method measured again at a size in a later file replaces the earlier file's row.
    """
    import json

    rows, settings = [], {}
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        again = {(r["family"], r["resolution"], r["method"]) for r in data["rows"]}
        rows = [r for r in rows if (r["family"], r["resolution"], r["method"]) not in again]
        for key in dict.fromkeys((r["family"], r["resolution"]) for r in data["rows"]):
            quick = QUICK_OVERRIDES.get(key[0], []) if data["settings"]["quick"] else []
            pick = auto_choice(*key, [*quick, *data["settings"].get("set", [])])
            for r in data["rows"]:
                if (r["family"], r["resolution"]) == key:
                    r["auto_picks"] = r["method"] == pick
        rows += data["rows"]
        settings[str(Path(path).name)] = data["settings"]
    return rows, settings


def resummarise(paths: Sequence[Path], out: Path) -> int:
    """Merge finished runs, mark auto's pick by the current rule, and write one summary, table and plot."""
    rows, settings = rows_under_current_rule(paths)
    write_outputs(out, rows, next(iter(settings.values())) if len(settings) == 1 else settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
