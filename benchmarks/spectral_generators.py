"""Spectral dataset generators: NS step vs its FFTs and the classic FNO code; KS and Burgers vs exponax.

Navier–Stokes (DESIGN.md §10: step <= 1.5x the time of the FFTs it needs, and, issue 15, >= 1.3x
faster than the classic Crank–Nicolson + Euler torch generator), at 64^2 and 256^2 with batches 1 and
16, like for like in float32 (the classic data's precision) and in float64:

* ``pdeop`` — :class:`solvers.navier_stokes.VorticityCN` (the classic scheme) with ``dtype`` float32
  or float64, timed through ``rollout`` as the generator runs it (threaded blocks); per step =
  (time of K steps - time of 0 steps) / K, so the initial FFT and the two snapshots are not counted;
* ``fft_only`` — the FFTs one step needs on the same batch, grid and precision, one ``irfft2`` of the
  four fields and one ``rfft2``, the fastest of numpy.fft, scipy.fft (all cores) and torch.fft;
* ``classic_fno`` — the classic FNO generator's loop written plainly below (torch), in float32 (as
  the classic data) and float64;
* ``etdrk4`` (information) — the fourth-order scheme's step (four evaluations of the advection),
  float64: its cost per step relative to the classic one, which ``ns_time_to_dataset`` turns into
  time per dataset.

Kuramoto–Sivashinsky (target: at least exponax's throughput), time per step per sample at
L = 60, N = 160, dt = 0.1 and L = 64, N = 256, dt = 0.05 with batches 1, 16, 256, and Burgers at the
``fno`` presets' grids and steps (nu = 0.1, N = 1024 and nu = 1e-3, N = 2048, dt = 2e-4):

* ``pdeop`` — :func:`solvers.kuramoto_sivashinsky.kuramoto_sivashinsky_stepper` /
  :func:`solvers.burgers.burgers_stepper` (ETDRK4, float64), timed through ``rollout`` like the
  Navier–Stokes solver (0-step overhead subtracted);
* ``exponax`` — ``KuramotoSivashinskyConservative(order=4)`` / ``Burgers(conservative=True,
  order=4)`` in float64, vmapped over the batch and run as one jitted ``lax.scan`` (compiled before
  timing). Skipped with a note if not installed.

Both sides also report how far their states are apart after the timed steps (same scheme,
same initial condition), so that like is compared with like.

Timing: contenders run round-robin (``harness.interleaved``), each sample repeating a call for at
least ``min_seconds``. Times and ratios use the fastest round (the least disturbed on a shared
machine, the same rule for every contender); the ``*_median`` columns give the median-based
ratios as well, and the summary records the load average around the run. ``--cpu-time`` times
with the process's CPU clock instead of the wall clock: with ``--threads 1`` (which also limits
XLA to one thread) that is the single-core cost, insensitive to other work on a shared machine.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from harness import format_table, interleaved, parser, set_threads, write_results

#: the exponax competitor (JAX) is skipped when absent (harness rule 2); pip install 'pdeop[bench]'
OPTIONAL_IMPORTS = ("exponax", "jax")

from solvers.batching import available_cores
from solvers.kuramoto_sivashinsky import kuramoto_sivashinsky_stepper
from solvers.burgers import burgers_stepper
from solvers.navier_stokes import VorticityCN, navier_stokes_stepper


#: set by ``--cpu-time``: time with the process CPU clock instead of the wall clock
CPU_CLOCK = False


def _timings(contenders: dict[str, Callable[[], Any]], quick: bool) -> tuple[dict[str, float], dict[str, float]]:
    """Fastest and median seconds per call of each contender, interleaved."""
    rounds, min_seconds = (3, 0.03) if quick else (11, 0.2)
    if not CPU_CLOCK:
        result = interleaved(contenders, rounds=rounds, min_seconds=min_seconds)
        return ({k: t["min_s"] for k, t in result.items()}, {k: t["median_s"] for k, t in result.items()})
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            calls, start = 0, time.process_time()
            while calls == 0 or time.process_time() - start < min_seconds:
                fn()
                calls += 1
            samples[name].append((time.process_time() - start) / calls)
    return ({k: min(v) for k, v in samples.items()}, {k: statistics.median(v) for k, v in samples.items()})


def classic_fno_navier_stokes(w0: Any, f: Any, visc: float, delta_t: float, steps: int) -> Any:
    """The classic FNO data generator's time loop (torch.fft form), returning the final vorticity.

    A plain transcription of ``navier_stokes_2d`` from the FNO repository's data generation
    script: full recomputation of every spectral field each step, dealiasing on the advection,
    Crank–Nicolson on the viscosity. Runs in the dtype of ``w0`` (float32 for the classic data).
    """
    import torch

    N = w0.size()[-1]
    k_max = math.floor(N / 2.0)
    w_h = torch.fft.rfft2(w0)
    f_h = torch.fft.rfft2(f)
    if len(f_h.size()) < len(w_h.size()):
        f_h = torch.unsqueeze(f_h, 0)
    k_y = torch.cat((torch.arange(start=0, end=k_max, step=1),
                     torch.arange(start=-k_max, end=0, step=1)), 0).repeat(N, 1)
    k_x = k_y.transpose(0, 1)
    k_x = k_x[..., : k_max + 1].to(w0.dtype)
    k_y = k_y[..., : k_max + 1].to(w0.dtype)
    lap = 4 * (math.pi**2) * (k_x**2 + k_y**2)
    lap[0, 0] = 1.0
    dealias = torch.unsqueeze(
        torch.logical_and(torch.abs(k_y) <= (2.0 / 3.0) * k_max, torch.abs(k_x) <= (2.0 / 3.0) * k_max).to(w0.dtype), 0)
    for _ in range(steps):
        psi_h = w_h / lap
        q = torch.fft.irfft2(2.0 * math.pi * k_y * 1j * psi_h, s=(N, N))
        v = torch.fft.irfft2(-2.0 * math.pi * k_x * 1j * psi_h, s=(N, N))
        w_x = torch.fft.irfft2(2.0 * math.pi * k_x * 1j * w_h, s=(N, N))
        w_y = torch.fft.irfft2(2.0 * math.pi * k_y * 1j * w_h, s=(N, N))
        F_h = torch.fft.rfft2(q * w_x + v * w_y)
        F_h = dealias * F_h
        w_h = (-delta_t * F_h + delta_t * f_h + (1.0 - 0.5 * delta_t * visc * lap) * w_h) / (
            1.0 + 0.5 * delta_t * visc * lap)
    return torch.fft.irfft2(w_h, s=(N, N))


def _ns_initial(n: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """FNO-like initial vorticity (GRF, std ~ 0.26) and forcing on an n^2 grid."""
    from pde_data.family import sample_rng
    from pde_data.random_fields import periodic_grf

    w0 = np.stack([periodic_grf(sample_rng(0, i), (n, n), 2.5, 7.0, math.sqrt(2) * 7**1.5) for i in range(batch)])
    x = np.arange(n) / n
    phase = 2 * np.pi * (x[:, None] + x[None, :])
    return w0, 0.1 * (np.sin(phase) + np.cos(phase))


def _fft_contenders(n: int, batch: int, threads: int, dtype: type) -> dict[str, Callable[[], Any]]:
    """The FFTs of one step (4 inverse + 1 forward real 2-D transforms) with each library, in ``dtype``.

    numpy and torch write into preallocated outputs (scipy cannot), so that allocation is not
    counted against the libraries.
    """
    import scipy.fft
    import torch

    m = n // 2 + 1
    complex_dtype = np.result_type(dtype, np.complex64)
    rng = np.random.default_rng(0)
    spectra = (rng.standard_normal((batch, 4, n, m)) + 1j * rng.standard_normal((batch, 4, n, m))).astype(complex_dtype)
    field = rng.standard_normal((batch, n, n)).astype(dtype)
    fields_out, spectrum_out = np.empty((batch, 4, n, n), dtype), np.empty((batch, n, m), dtype=complex_dtype)
    spectra_t, field_t = torch.from_numpy(spectra), torch.from_numpy(field)
    fields_t, spectrum_t = torch.from_numpy(fields_out.copy()), torch.from_numpy(spectrum_out.copy())
    return {
        "fft_numpy": lambda: (np.fft.irfft2(spectra, s=(n, n), out=fields_out), np.fft.rfft2(field, out=spectrum_out)),
        "fft_scipy": lambda: (scipy.fft.irfft2(spectra, s=(n, n), workers=threads),
                              scipy.fft.rfft2(field, workers=threads)),
        "fft_torch": lambda: (torch.fft.irfft2(spectra_t, s=(n, n), out=fields_t),
                              torch.fft.rfft2(field_t, out=spectrum_t)),
    }


def navier_stokes_rows(quick: bool, threads: int) -> list[dict[str, Any]]:
    """Time per step of pdeop (float32, float64), of the FFTs it needs, and of the classic FNO loop."""
    import torch

    rows = []
    for n, batch in ((64, 1), (64, 16), (256, 1), (256, 16)):
        steps = (30 if quick else 400) if n == 64 else (2 if quick else 16)
        classic_steps = min(steps, 100)  # the classic loop is slow; its per-step time needs fewer steps
        w0, f = _ns_initial(n, batch)
        solvers = {"f32": VorticityCN(n, 1e-3, 1e-4, f, np.float32), "f64": VorticityCN(n, 1e-3, 1e-4, f)}
        etdrk4 = navier_stokes_stepper(n, 1e-3, 1e-2, f, "etdrk4")
        etdrk4_steps = max(1, steps // 4)
        torch_inputs = {p: (torch.from_numpy(w0).to(t), torch.from_numpy(f).to(t))
                        for p, t in (("f32", torch.float32), ("f64", torch.float64))}
        contenders: dict[str, Callable[[], Any]] = {}
        for p, solver in solvers.items():
            contenders[f"pdeop_{p}"] = lambda s=solver: s.rollout(w0, steps, 1, out_dtype=np.float64, threads=threads)
            contenders[f"pdeop_{p}_overhead"] = lambda s=solver: s.rollout(w0, 0, 1, out_dtype=np.float64,
                                                                           threads=threads)
            contenders[f"classic_fno_{p}"] = lambda a=torch_inputs[p]: classic_fno_navier_stokes(
                a[0], a[1], 1e-3, 1e-4, classic_steps)
            for name, fn in _fft_contenders(n, batch, threads, np.float32 if p == "f32" else np.float64).items():
                contenders[f"{name}_{p}"] = fn
        contenders["etdrk4"] = lambda: etdrk4.rollout(w0, etdrk4_steps, 1, out_dtype=np.float64, threads=threads)
        contenders["etdrk4_overhead"] = lambda: etdrk4.rollout(w0, 0, 1, out_dtype=np.float64, threads=threads)
        times, medians = _timings(contenders, quick)

        def per_step(t: dict[str, float], p: str) -> dict[str, float]:
            out = {"fft": min(v for k, v in t.items() if k.startswith("fft_") and k.endswith(p)),
                   "pdeop": (t[f"pdeop_{p}"] - t[f"pdeop_{p}_overhead"]) / steps,
                   "classic_fno": t[f"classic_fno_{p}"] / classic_steps}
            return out

        row: dict[str, Any] = {"problem": "navier-stokes", "grid": f"{n}^2", "batch": batch, "steps_timed": steps}
        for p in ("f32", "f64"):
            step, step_median = per_step(times, p), per_step(medians, p)
            ours = solvers[p].rollout(w0, steps, 1, out_dtype=np.float64, threads=threads)[:, -1]
            theirs = classic_fno_navier_stokes(*torch_inputs[p], 1e-3, 1e-4, steps).double().numpy()
            row.update({
                f"pdeop_{p}_step_ms": 1e3 * step["pdeop"], f"fft_only_{p}_ms": 1e3 * step["fft"],
                f"classic_fno_{p}_step_ms": 1e3 * step["classic_fno"],
                f"step_over_fft_{p}": step["pdeop"] / step["fft"],
                f"classic_over_pdeop_{p}": step["classic_fno"] / step["pdeop"],
                f"step_over_fft_{p}_median": step_median["pdeop"] / step_median["fft"],
                f"classic_over_pdeop_{p}_median": step_median["classic_fno"] / step_median["pdeop"],
                f"max_rel_diff_vs_classic_{p}": float(np.max(np.abs(ours - theirs)) / np.max(np.abs(ours))),
            })
        etdrk4_step = (times["etdrk4"] - times["etdrk4_overhead"]) / etdrk4_steps
        row["etdrk4_f64_step_ms"] = 1e3 * etdrk4_step
        row["etdrk4_over_classic_step_f64"] = etdrk4_step / row["pdeop_f64_step_ms"] * 1e3
        rows.append(row)
        print(format_table(rows[-1:]), flush=True)
    return rows


def _ks_initial(n: int, batch: int) -> np.ndarray:
    """Truncated Fourier initial conditions (modes 1..5, max |u0| = 1), as in APEBench."""
    rng = np.random.default_rng(1)
    phase = 2 * np.pi * np.arange(n) / n
    modes = np.arange(1, 6)[:, None] * phase[None, :]
    c = rng.standard_normal((batch, 2, 5))
    u = c[:, 0] @ np.cos(modes) + c[:, 1] @ np.sin(modes)
    return u / np.max(np.abs(u), axis=1, keepdims=True)


def _burgers_initial(n: int, batch: int, alpha: float, tau: float, sigma: float) -> np.ndarray:
    """GRF initial conditions of the Burgers presets, projected on the 2/3-dealiased modes."""
    from pde_data.family import sample_rng
    from pde_data.random_fields import periodic_grf
    from solvers.spectral import dealias_mask

    u = np.stack([periodic_grf(sample_rng(0, i), (n,), alpha, tau, sigma) for i in range(batch)])
    return np.fft.irfft(np.fft.rfft(u) * dealias_mask(n)[: n // 2 + 1], n=n)


def _exponax_contender(stepper: Any, u0: np.ndarray, steps: int) -> Callable[[], Any]:
    """An exponax stepper vmapped over the batch and scanned under one jit, float64; returns a jax array."""
    import jax
    import jax.numpy as jnp

    batched = jax.vmap(stepper)
    roll = jax.jit(lambda u: jax.lax.scan(lambda c, _: (batched(c), None), u, None, length=steps)[0])
    state = jnp.asarray(u0[:, None, :], dtype=jnp.float64)
    roll(state).block_until_ready()  # compile outside the timing
    return lambda: roll(state).block_until_ready()


def one_dimensional_rows(quick: bool, threads: int) -> tuple[list[dict[str, Any]], str | None]:
    """Time per step per sample of pdeop's ETDRK4 and exponax's, for KS and Burgers."""
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        import exponax
    except ImportError as exc:
        note, exponax = f"exponax rows skipped: {exc} (pip install exponax)", None
    else:
        note = None
    cases = [("kuramoto-sivashinsky", {"L": 60.0, "N": 160, "dt": 0.1}),
             ("kuramoto-sivashinsky", {"L": 64.0, "N": 256, "dt": 0.05}),
             ("burgers", {"nu": 0.1, "N": 1024, "dt": 2e-4}),
             ("burgers", {"nu": 1e-3, "N": 2048, "dt": 2e-4})]
    rows = []
    for problem, case in cases:
        n, dt = case["N"], case["dt"]
        if problem == "kuramoto-sivashinsky":
            stepper = kuramoto_sivashinsky_stepper(n, case["L"], dt)
            theirs_stepper = exponax and exponax.stepper.KuramotoSivashinskyConservative(1, case["L"], n, dt, order=4)
        else:
            stepper = burgers_stepper(n, case["nu"], dt)
            theirs_stepper = exponax and exponax.stepper.Burgers(1, 1.0, n, dt, diffusivity=case["nu"],
                                                                 conservative=True, order=4)
        for batch in (1, 16, 256):
            steps = (20 if batch == 256 else 30) if quick else (200 if batch == 256 else 500)
            if problem == "burgers":
                steps = max(4, steps // 4)  # longer grids
                u0 = _burgers_initial(n, batch, *((2.0, 5.0, 25.0) if case["nu"] == 0.1 else (2.5, 7.0, 49.0)))
            else:
                u0 = _ks_initial(n, batch)
            contenders = {
                "pdeop": lambda: stepper.rollout(u0, steps, 1, out_dtype=np.float64, threads=threads),
                "pdeop_overhead": lambda: stepper.rollout(u0, 0, 1, out_dtype=np.float64, threads=threads),
            }
            if note is None:
                contenders["exponax"] = _exponax_contender(theirs_stepper, u0, steps)
            times, medians = _timings(contenders, quick)
            ours_s = (times["pdeop"] - times["pdeop_overhead"]) / (steps * batch)
            ours_median = (medians["pdeop"] - medians["pdeop_overhead"]) / (steps * batch)
            row = {"problem": problem, **case, "batch": batch, "steps_timed": steps,
                   "pdeop_us_per_step_sample": 1e6 * ours_s}
            if note is None:
                theirs_s = times["exponax"] / (steps * batch)
                ours = stepper.rollout(u0, steps, 1, out_dtype=np.float64, threads=threads)[:, -1]
                theirs = np.asarray(contenders["exponax"]())[:, 0]
                row["exponax_us_per_step_sample"] = 1e6 * theirs_s
                row["throughput_vs_exponax"] = theirs_s / ours_s
                row["throughput_vs_exponax_median"] = medians["exponax"] / (steps * batch) / ours_median
                row["max_abs_diff_vs_exponax"] = float(np.max(np.abs(ours - theirs)))
            rows.append(row)
            print(format_table(rows[-1:]), flush=True)
    return rows, note


def _case_label(row: dict[str, Any]) -> str:
    size = f"L{row['L']:g} N{row['N']}" if "L" in row else f"nu{row['nu']:g} N{row['N']}"
    return f"{row['problem']} {size} b{row['batch']}"


def main() -> None:
    """Run both parts, print the tables and write benchmarks/results/spectral_generators.json."""
    global CPU_CLOCK
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--cpu-time", action="store_true", help="time with the process CPU clock (use with --threads 1)")
    args = cli.parse_args()
    CPU_CLOCK = args.cpu_time
    if args.threads:
        os.environ["PDEOP_THREADS"] = str(args.threads)
        if args.threads == 1:  # exponax (XLA) on one core too; read when jax is first imported
            os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    set_threads(args.threads)
    threads = available_cores()
    load_before = os.getloadavg()[0]
    ns = navier_stokes_rows(args.quick, threads)
    one_d, note = one_dimensional_rows(args.quick, threads)
    summary: dict[str, Any] = {
        "threads": threads,
        "quick": args.quick,
        "clock": "process CPU time" if CPU_CLOCK else "wall",
        # other work on the machine distorts timings; the 1-minute load average brackets the run
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    for p in ("f32", "f64"):
        summary[f"ns_step_over_fft_{p}"] = {f"{r['grid']} b{r['batch']}": round(r[f"step_over_fft_{p}"], 3) for r in ns}
        summary[f"ns_speedup_vs_classic_{p}"] = {f"{r['grid']} b{r['batch']}": round(r[f"classic_over_pdeop_{p}"], 3)
                                                 for r in ns}
    summary["ns_etdrk4_step_over_classic_step_f64"] = {f"{r['grid']} b{r['batch']}":
                                                       round(r["etdrk4_over_classic_step_f64"], 3) for r in ns}
    summary["ns_targets_met"] = {
        "step <= 1.5x FFT (f32, f64)": all(r[f"step_over_fft_{p}"] <= 1.5 for r in ns for p in ("f32", "f64")),
        ">= 1.3x classic (f32 vs f32)": all(r["classic_over_pdeop_f32"] >= 1.3 for r in ns),
        ">= 1.3x classic (f64 vs f64)": all(r["classic_over_pdeop_f64"] >= 1.3 for r in ns),
    }
    if note is None:
        summary["throughput_vs_exponax"] = {_case_label(r): round(r["throughput_vs_exponax"], 3) for r in one_d}
        summary["ks_target_met"] = all(r["throughput_vs_exponax"] >= 1.0 for r in one_d
                                       if r["problem"] == "kuramoto-sivashinsky")
        summary["burgers_at_least_exponax"] = all(r["throughput_vs_exponax"] >= 1.0 for r in one_d
                                                  if r["problem"] == "burgers")
    else:
        summary["note"] = note
    print()
    print(format_table(ns))
    print()
    print(format_table(one_d))
    path = write_results("spectral_generators", ns + one_d, summary, args.out)
    print(f"\nsummary: {summary}\nwrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
