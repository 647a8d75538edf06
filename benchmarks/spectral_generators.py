"""Spectral dataset generators: Navier–Stokes step vs its FFTs and vs the classic FNO code; KS step vs exponax.

Navier–Stokes (DESIGN.md §10: step <= 1.5x the time of the FFTs it needs, and faster than the
classic Crank–Nicolson + Euler float32 torch scheme), at 64^2 and 256^2 with batches 1 and 16:

* ``pdeop`` — :class:`solvers.navier_stokes.VorticityCN` (float64), timed through ``rollout`` as the
  generator runs it (threaded blocks); per step = (time of K steps - time of 0 steps) / K, so the
  initial FFT and the two snapshots are not counted as steps;
* ``fft_only`` — the FFTs one step needs on the same batch and grid, one ``irfft2`` of the four
  fields and one ``rfft2`` (float64), the fastest of numpy.fft, scipy.fft (all cores) and torch.fft;
* ``classic_fno`` — the classic FNO generator's loop written plainly below (torch, float32).

Kuramoto–Sivashinsky (target: at least exponax's throughput), time per step per sample at
L = 60, N = 160, dt = 0.1 and L = 64, N = 256, dt = 0.05 with batches 1, 16, 256:

* ``pdeop`` — :func:`solvers.kuramoto_sivashinsky.kuramoto_sivashinsky_stepper` (ETDRK4, float64),
  timed through ``rollout`` like the Navier–Stokes solver (0-step overhead subtracted);
* ``exponax`` — ``KuramotoSivashinskyConservative(order=4)`` in float64, vmapped over the batch and
  run as one jitted ``lax.scan`` (compiled before timing). Skipped with a note if not installed.

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
from solvers.navier_stokes import VorticityCN


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


def _fft_contenders(n: int, batch: int, threads: int) -> dict[str, Callable[[], Any]]:
    """The FFTs of one step (4 inverse + 1 forward real 2-D transforms) with each library.

    numpy and torch write into preallocated outputs (scipy cannot), so that allocation is not
    counted against the libraries.
    """
    import scipy.fft
    import torch

    m = n // 2 + 1
    rng = np.random.default_rng(0)
    spectra = rng.standard_normal((batch, 4, n, m)) + 1j * rng.standard_normal((batch, 4, n, m))
    field = rng.standard_normal((batch, n, n))
    fields_out, spectrum_out = np.empty((batch, 4, n, n)), np.empty((batch, n, m), dtype=np.complex128)
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
    """Time per step of pdeop, of the FFTs it needs, and of the classic FNO loop."""
    import torch

    rows = []
    for n, batch in ((64, 1), (64, 16), (256, 1), (256, 16)):
        steps = (30 if quick else 400) if n == 64 else (2 if quick else 16)
        classic_steps = min(steps, 100)  # the classic loop is slow; its per-step time needs fewer steps
        w0, f = _ns_initial(n, batch)
        solver = VorticityCN(n, 1e-3, 1e-4, f)
        w0_t, f_t = torch.from_numpy(w0).float(), torch.from_numpy(f).float()
        contenders = {
            "pdeop": lambda: solver.rollout(w0, steps, 1, out_dtype=np.float64, threads=threads),
            "pdeop_overhead": lambda: solver.rollout(w0, 0, 1, out_dtype=np.float64, threads=threads),
            "classic_fno": lambda: classic_fno_navier_stokes(w0_t, f_t, 1e-3, 1e-4, classic_steps),
        }
        contenders.update(_fft_contenders(n, batch, threads))
        times, medians = _timings(contenders, quick)

        def per_step(t: dict[str, float]) -> dict[str, float]:
            out = {name: value for name, value in t.items() if name.startswith("fft_")}
            out["pdeop"] = (t["pdeop"] - t["pdeop_overhead"]) / steps
            out["classic_fno"] = t["classic_fno"] / classic_steps
            return out

        step, step_median = per_step(times), per_step(medians)
        fft_best = min(step[k] for k in step if k.startswith("fft_"))
        fft_best_median = min(step_median[k] for k in step_median if k.startswith("fft_"))
        ours = solver.rollout(w0, steps, 1, out_dtype=np.float64, threads=threads)[:, -1]
        theirs = classic_fno_navier_stokes(w0_t, f_t, 1e-3, 1e-4, steps).double().numpy()
        rows.append({
            "problem": "navier-stokes", "grid": f"{n}^2", "batch": batch, "steps_timed": steps,
            "pdeop_step_ms": 1e3 * step["pdeop"], "pdeop_overhead_ms": 1e3 * times["pdeop_overhead"],
            "fft_only_ms": 1e3 * fft_best,
            "fft_numpy_ms": 1e3 * step["fft_numpy"], "fft_scipy_ms": 1e3 * step["fft_scipy"],
            "fft_torch_ms": 1e3 * step["fft_torch"], "classic_fno_f32_step_ms": 1e3 * step["classic_fno"],
            "step_over_fft": step["pdeop"] / fft_best, "classic_over_pdeop": step["classic_fno"] / step["pdeop"],
            "step_over_fft_median": step_median["pdeop"] / fft_best_median,
            "classic_over_pdeop_median": step_median["classic_fno"] / step_median["pdeop"],
            "max_rel_diff_vs_classic_f32": float(np.max(np.abs(ours - theirs)) / np.max(np.abs(ours))),
        })
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


def _exponax_contender(length: float, n: int, dt: float, u0: np.ndarray, steps: int) -> Callable[[], Any]:
    """exponax's order-4 conservative KS, vmapped and scanned under one jit, float64; returns a jax array."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import exponax
    import jax.numpy as jnp

    stepper = jax.vmap(exponax.stepper.KuramotoSivashinskyConservative(1, length, n, dt, order=4))
    roll = jax.jit(lambda u: jax.lax.scan(lambda c, _: (stepper(c), None), u, None, length=steps)[0])
    state = jnp.asarray(u0[:, None, :], dtype=jnp.float64)
    roll(state).block_until_ready()  # compile outside the timing
    return lambda: roll(state).block_until_ready()


def kuramoto_sivashinsky_rows(quick: bool, threads: int) -> tuple[list[dict[str, Any]], str | None]:
    """Time per step per sample of pdeop's ETDRK4 and exponax's."""
    try:
        import exponax  # noqa: F401
    except ImportError as exc:
        note = f"exponax rows skipped: {exc} (pip install exponax)"
    else:
        note = None
    rows = []
    for length, n, dt in ((60.0, 160, 0.1), (64.0, 256, 0.05)):
        stepper = kuramoto_sivashinsky_stepper(n, length, dt)
        for batch in (1, 16, 256):
            steps = (20 if batch == 256 else 30) if quick else (200 if batch == 256 else 500)
            u0 = _ks_initial(n, batch)
            contenders = {
                "pdeop": lambda: stepper.rollout(u0, steps, 1, out_dtype=np.float64, threads=threads),
                "pdeop_overhead": lambda: stepper.rollout(u0, 0, 1, out_dtype=np.float64, threads=threads),
            }
            if note is None:
                contenders["exponax"] = _exponax_contender(length, n, dt, u0, steps)
            times, medians = _timings(contenders, quick)
            ours_s = (times["pdeop"] - times["pdeop_overhead"]) / (steps * batch)
            ours_median = (medians["pdeop"] - medians["pdeop_overhead"]) / (steps * batch)
            row = {"problem": "kuramoto-sivashinsky", "L": length, "N": n, "dt": dt, "batch": batch,
                   "steps_timed": steps, "pdeop_us_per_step_sample": 1e6 * ours_s}
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
    ks, note = kuramoto_sivashinsky_rows(args.quick, threads)
    summary: dict[str, Any] = {
        "threads": threads,
        "quick": args.quick,
        "clock": "process CPU time" if CPU_CLOCK else "wall",
        # other work on the machine distorts timings; the 1-minute load average brackets the run
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "ns_step_over_fft": {f"{r['grid']} b{r['batch']}": round(r["step_over_fft"], 3) for r in ns},
        "ns_step_over_fft_worst": max(r["step_over_fft"] for r in ns),
        "ns_speedup_vs_classic_f32": {f"{r['grid']} b{r['batch']}": round(r["classic_over_pdeop"], 3) for r in ns},
        "ns_targets_met": all(r["step_over_fft"] <= 1.5 and r["classic_over_pdeop"] > 1.0 for r in ns),
    }
    if note is None:
        summary["ks_throughput_vs_exponax"] = {
            f"L{r['L']:g} N{r['N']} b{r['batch']}": round(r["throughput_vs_exponax"], 3) for r in ks}
        summary["ks_target_met"] = {f"b{r['batch']} N{r['N']}": r["throughput_vs_exponax"] >= 1.0 for r in ks}
    else:
        summary["note"] = note
    print()
    print(format_table(ns))
    print()
    print(format_table(ks))
    path = write_results("spectral_generators", ns + ks, summary, args.out)
    print(f"\nsummary: {summary}\nwrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
