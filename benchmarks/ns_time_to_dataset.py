"""Navier–Stokes time-to-dataset: classic Crank–Nicolson/Euler at dt = 1e-4 vs ETDRK4 at CFL-limited steps.

DESIGN.md §10 target: at least 10x less time than the classic scheme at dt = 1e-4 for equal or smaller
error against a converged reference. Cases (the ``fno`` presets' physics: forcing 0.1 (sin + cos)
2pi(x+y), GRF initial vorticity with std ~ 0.262, 256^2 internal grid, 64^2 stored, one snapshot per
unit time):

* ``nu=1e-3`` to T = 50 (the ``fno`` / ``fno-fast`` data set): the flow is not chaotic. The ETDRK4
  runs go to T = 50 (their errors over the whole horizon are reported too); the classic scheme's
  500,000 steps would take ~20 CPU-minutes per sample here, so by default it runs to t = 3 and the
  trajectories are compared over t = 0..3, its cost to T projected as below;
* ``nu=1e-4`` and ``nu=1e-5`` over a short horizon (``--short-T``, default 10 of the presets' 30
  and 20): chaotic. Trajectories are compared up to the
  *divergence time* (the first stored time at which a contender is 10% away from the reference, or
  where the reference's own error estimate passes 1e-3); statistics (enstrophy, energy, shell energy
  spectrum, time-averaged over the snapshots after the comparison window) are compared after it.
  The classic scheme is run over a shorter horizon (``--classic-horizon``): its cost to T is
  *projected* from the measured cost per step (it is the same loop for every step), its trajectory
  error is measured over the horizon it ran.

Contenders, all pdeop (the classic scheme is pdeop's fast implementation of the FNO generator's
loop, faster than the original, see ``spectral_generators``), one thread, the same samples:

* ``reference`` — ETDRK4 at ``dt_ref`` (5e-3), checked by halving: the contender at ``2 dt_ref``
  differs from it by ~15x its error (fourth order), so ``|w(2 dt_ref) - w(dt_ref)| / 15`` estimates
  the reference's error, reported per case;
* ``classic`` — Crank–Nicolson / Euler at dt = 1e-4 (the released data's scheme), float64;
* ``etdrk4`` at several dt (and one float32 run); a dt past the CFL limit is reported as unstable.

Errors are relative L2 norms of the stored 64^2 vorticity against the reference, the maximum over
samples and stored times of the comparison window. Times are process CPU seconds of the whole
rollout (one thread: the single-core cost, much less sensitive to other work on a shared machine than
wall time, though caches shared with other processes still move it by tens of percent under heavy
load) and wall seconds beside them. ``spectral_generators`` times the two steps interleaved.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import format_table, parser, set_threads, write_results

from pde_data.config import from_mapping
from pde_data.families.navier_stokes import NavierStokes, NavierStokesConfig, forcing_field
from solvers.errors import StabilityError
from solvers.navier_stokes import navier_stokes_stepper

#: relative L2 error at which a chaotic trajectory counts as diverged from the reference
DIVERGED = 0.1
#: the reference's estimated relative error above which it no longer counts as converged
REFERENCE_TRUSTED = 1e-3


@dataclass(frozen=True)
class Case:
    """One viscosity: grids, horizon, and the steps of the contenders."""

    name: str
    viscosity: float
    T: int
    classic_horizon: int
    internal: int = 256
    stored: int = 64
    dt_ref: float = 5e-3
    etdrk4_dts: tuple[float, ...] = (1 / 64, 0.0125, 0.01)
    float32_dt: float = 0.01


def _cases(quick: bool, classic_horizon: int | None, short_T: int = 10) -> list[Case]:
    if quick:  # 64^2 internal, short horizons: a smoke test of the whole pipeline
        return [Case("nu=1e-3", 1e-3, 6, classic_horizon or 6, internal=64, stored=16, dt_ref=1 / 160,
                     etdrk4_dts=(0.04, 0.02, 0.0125), float32_dt=0.02),
                Case("nu=1e-5", 1e-5, 6, classic_horizon or 2, internal=64, stored=16, dt_ref=1 / 160,
                     etdrk4_dts=(0.04, 0.02, 0.0125), float32_dt=0.02)]
    return [Case("nu=1e-3", 1e-3, 50, classic_horizon or 3, etdrk4_dts=(1 / 64, 0.01)),
            Case("nu=1e-4", 1e-4, short_T, classic_horizon or 2),
            Case("nu=1e-5", 1e-5, short_T, classic_horizon or 2)]


def _run(case: Case, w0: np.ndarray, scheme: str, dt: float, horizon: int, precision: str = "float64") -> dict[str, Any]:
    """Integrate the samples to ``horizon`` and return stored snapshots with CPU and wall seconds."""
    forcing = forcing_field(case.internal, 0.1)
    stepper = navier_stokes_stepper(case.internal, case.viscosity, dt, forcing, scheme, np.dtype(precision))
    per_record = round(1.0 / dt)
    cpu, wall = time.process_time(), time.perf_counter()
    w = stepper.rollout(w0, per_record, horizon, stride=case.internal // case.stored, out_dtype=np.float64,
                        threads=1)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"w": w, "cpu_s": cpu, "wall_s": wall, "steps": per_record * horizon, "horizon": horizon}


def relative_errors(w: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Relative L2 error ``[sample, t]`` of stored snapshots against the reference."""
    t = min(w.shape[1], reference.shape[1])
    diff = np.linalg.norm((w[:, :t] - reference[:, :t]).reshape(w.shape[0], t, -1), axis=-1)
    return diff / np.linalg.norm(reference[:, :t].reshape(w.shape[0], t, -1), axis=-1)


def flow_statistics(w: np.ndarray) -> dict[str, np.ndarray]:
    """Enstrophy ``mean(w^2)/2``, energy ``mean|u|^2/2`` ``[sample, t]`` and shell energy spectrum ``[sample, t, k]``."""
    n = w.shape[-1]
    w_hat = np.fft.fft2(w) / n**2
    k = np.fft.fftfreq(n, 1.0 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    energy_density = 0.5 * np.abs(w_hat) ** 2 / np.where(k2 == 0, np.inf, 4 * np.pi**2 * k2)
    shells = np.rint(np.sqrt(k2)).astype(int)
    spectrum = np.stack([energy_density[..., shells == s].sum(axis=-1) for s in range(1, n // 3)], axis=-1)
    return {"enstrophy": 0.5 * np.mean(w**2, axis=(-2, -1)), "energy": energy_density.sum(axis=(-2, -1)),
            "spectrum": spectrum}


def _statistics_difference(w: np.ndarray, reference: np.ndarray, start: int) -> dict[str, float]:
    """Relative differences of the statistics time-averaged over snapshots ``start:`` (all samples)."""
    ours, theirs = flow_statistics(w[:, start:]), flow_statistics(reference[:, start:w.shape[1]])
    out = {}
    for name in ("enstrophy", "energy"):
        out[f"{name}_rel_diff"] = float(abs(ours[name].mean() - theirs[name].mean()) / theirs[name].mean())
    spectrum, spectrum_ref = ours["spectrum"].mean(axis=(0, 1)), theirs["spectrum"].mean(axis=(0, 1))
    out["spectrum_max_rel_diff"] = float(np.max(np.abs(spectrum - spectrum_ref) / spectrum_ref))
    return out


def run_case(case: Case, samples: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All contenders of one case; rows per contender and the case summary."""
    family = NavierStokes(from_mapping(NavierStokesConfig, {
        "viscosity": case.viscosity, "T": float(case.T), "internal_resolution": case.internal,
        "resolution": case.stored, "dt": case.dt_ref, "scheme": "etdrk4"}))
    w0 = np.stack([family.initial_vorticity(i, seed=0) for i in range(samples)])
    runs: dict[str, dict[str, Any]] = {}
    check = 2 * case.dt_ref  # the reference's halving check is also an ETDRK4 contender
    specs = [("reference", "etdrk4", case.dt_ref, "float64")]
    specs += [(f"etdrk4 dt={dt:g}", "etdrk4", dt, "float64") for dt in sorted({*case.etdrk4_dts, check})]
    specs += [(f"etdrk4 dt={case.float32_dt:g} float32", "etdrk4", case.float32_dt, "float32"),
              ("classic dt=1e-4", "classic", 1e-4, "float64")]
    for name, scheme, dt, precision in specs:
        horizon = case.classic_horizon if scheme == "classic" else case.T
        try:
            runs[name] = {"scheme": scheme, "dt": dt, "precision": precision,
                          **_run(case, w0, scheme, dt, horizon, precision)}
        except StabilityError as exc:  # a step past the CFL limit is a result too
            print(f"  {case.name} {name}: {exc}", file=sys.stderr, flush=True)
            runs[name] = {"scheme": scheme, "dt": dt, "precision": precision, "unstable": str(exc)}
            continue
        print(f"  {case.name} {name}: {runs[name]['cpu_s']:.1f} s CPU", file=sys.stderr, flush=True)
    reference = runs["reference"]["w"]
    # fourth order: w(2h) - w(h) = (16 - 1) err(h)
    reference_error = relative_errors(runs[f"etdrk4 dt={check:g}"]["w"], reference).max(axis=0) / 15.0
    trusted = int(np.argmax(reference_error > REFERENCE_TRUSTED)) if np.any(reference_error > REFERENCE_TRUSTED) \
        else len(reference_error)
    classic = runs["classic dt=1e-4"]
    errors = {name: relative_errors(run["w"], reference).max(axis=0) for name, run in runs.items() if "w" in run}
    diverged = {name: int(np.argmax(e > DIVERGED)) for name, e in errors.items() if np.any(e > DIVERGED)}
    window = min([trusted, *diverged.values(), classic["horizon"] + 1])  # stored times compared: 0 .. window - 1
    rows = []
    for name, run in runs.items():
        if name == "reference":
            continue
        row = {"case": case.name, "contender": name, "scheme": run["scheme"], "dt": run["dt"],
               "precision": run["precision"], "samples": samples}
        if "unstable" in run:
            rows.append({**row, "unstable": run["unstable"], "max_rel_l2_error": float("inf")})
            continue
        steps_to_T = round(case.T / run["dt"])
        row.update({
            "horizon_run": run["horizon"], "cpu_s_run": run["cpu_s"], "wall_s_run": run["wall_s"],
            "cpu_s_to_T": run["cpu_s"] * steps_to_T / run["steps"], "cpu_to_T_projected": run["horizon"] < case.T,
            "max_rel_l2_error": float(errors[name][:window].max()),
            # over every stored time it ran where the reference is trusted and it has not diverged
            "max_rel_l2_error_own_horizon": float(errors[name][:min(trusted, diverged.get(name, trusted))].max()),
            "divergence_time": diverged.get(name),
            "rel_l2_error_by_time": [float(f"{e:.3g}") for e in errors[name]]})
        if window < run["w"].shape[1] - 1:
            row.update(_statistics_difference(run["w"], reference, window))
        rows.append(row)
    classic_row = next(r for r in rows if r["scheme"] == "classic")
    candidates = [r for r in rows if r["scheme"] == "etdrk4" and r["max_rel_l2_error"] <= classic_row["max_rel_l2_error"]]
    best = min(candidates, key=lambda r: r["cpu_s_to_T"]) if candidates else None
    summary = {
        "reference_dt": case.dt_ref, "reference_error_estimate_max": float(reference_error[:window].max()),
        "reference_trusted_until": int(trusted - 1),
        "compared_times": f"0..{window - 1}", "classic_cpu_s_to_T": classic_row["cpu_s_to_T"],
        "classic_cpu_projected": classic_row["cpu_to_T_projected"],
        "classic_max_rel_l2_error": classic_row["max_rel_l2_error"],
        "best_etdrk4_at_equal_or_smaller_error": best and best["contender"],
        "speedup_at_equal_or_smaller_error": best and classic_row["cpu_s_to_T"] / best["cpu_s_to_T"],
    }
    if best is not None:
        summary["best_max_rel_l2_error"] = best["max_rel_l2_error"]
    return rows, summary


def main() -> None:
    """Run the cases, print the table, write benchmarks/results/ns_time_to_dataset.json."""
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--samples", type=int, default=1, help="initial conditions per case (default 1)")
    cli.add_argument("--classic-horizon", type=int, default=None,
                     help="time the classic scheme runs in every case (default 3 for nu=1e-3, 2 for the others)")
    cli.add_argument("--cases", default=None, help="comma-separated case names (default all)")
    cli.add_argument("--short-T", type=int, default=10, help="horizon of the chaotic cases nu=1e-4, 1e-5 (default 10)")
    args = cli.parse_args()
    os.environ["PDEOP_THREADS"] = "1"  # one core per run: the numbers are single-core costs
    set_threads(args.threads or 1)
    load_before = os.getloadavg()[0]
    rows, summary = [], {"threads": 1, "quick": args.quick, "samples": args.samples, "clock": "process CPU time"}
    for case in _cases(args.quick, args.classic_horizon, args.short_T):
        if args.cases and case.name not in args.cases.split(","):
            continue
        case_rows, summary[case.name] = run_case(case, args.samples)
        rows += case_rows
        print(format_table([{k: v for k, v in r.items() if k != "rel_l2_error_by_time"} for r in case_rows]), flush=True)
        print(summary[case.name], flush=True)
        summary["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        met = [s["speedup_at_equal_or_smaller_error"] for s in summary.values() if isinstance(s, dict)]
        summary["target_10x_met"] = bool(met) and all(m is not None and m >= 10 for m in met)
        # written after every case, so that a long run's finished cases survive an interruption
        path = write_results("ns_time_to_dataset" + ("_quick" if args.quick else ""), rows, summary, args.out)
    print(f"\nwrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
