"""Datasets at real size: Dask parallel efficiency, Dask's overhead per chunk, the torch path, the GPU, a projection.

Rows (DESIGN.md §10: Dask generation >= 90% parallel efficiency at 2 workers; issue 12: the GPU >= 50x
one CPU core for Navier–Stokes 256^2 batched):

* ``scaling`` — ``generate_dataset`` of the same data set in one process (no Dask), on a LocalCluster
  of 1 worker and of 2 workers (``--workers 1`` / ``--workers 2``; both clusters started and warmed up
  before timing, each worker on one core: ``PDEOP_THREADS=1``), for Navier–Stokes (ETDRK4, 128^2 in
  the full run) and Darcy (direct solves, 241^2); 8 chunks of 1-2 CPU seconds each in the full run.
  Rounds are interleaved; the fastest round of each counts.
  ``efficiency = time(1 worker) / (2 time(2 workers))``; ``dask_overhead_per_chunk_s = (time(1 worker)
  - time(one process)) / chunks``. Where the time went, from each run's chunk timeline
  (:mod:`pde_data.chunk_timeline`, the fastest round): ``overlap_2`` (fraction of the time some worker
  computes during which both do), ``utilisation_2``, ``serial_2_s`` (seconds no worker computes:
  setup, waiting for the client, the last write), ``client_2_s`` (the client fetching, checking and
  writing results), ``cpu_share_*`` (fraction of a core a running chunk got), ``cores_used_*`` (CPU
  seconds / wall seconds: the cores the run got in all), ``cpu_2_over_cpu_1`` (the arithmetic's CPU
  seconds with 2 workers over 1: above 1 when the workers slow each other down) and
  ``efficiency_full_cores_model`` (a MODEL: the efficiency had each worker had a core of its own,
  :func:`pde_data.chunk_timeline.full_core_seconds`). On a shared machine ``cores_used_2`` ≈
  ``cores_used_1`` means the machine gave the run no second core (Linux's ``sched_autogroup`` shares
  the cores equally among sessions, however many processes each runs); ``summary`` records the
  machine's CPU use during the rows, all of it and other users' (``machine_busy_cores_during_scaling``,
  ``other_users_busy_cores_during_scaling``: the efficiency target can be judged only when the latter
  is near 0).
* ``dask_latency`` — Dask's fixed cost per chunk: tiny chunks (a few milliseconds of work each)
  through :func:`pde_data.distributed.compute_chunks` on one worker against the same chunks in this
  process (:class:`pde_data.chunking.LocalRunner`).
* ``torch_cpu`` — the PyTorch integrators (``--device torch-cpu``) against the NumPy integrators on
  one CPU thread, interleaved: time per step per sample of Navier–Stokes (classic and ETDRK4), KS
  and Burgers; ``numpy_over_torch`` > 1 means the torch path is faster.
* ``gpu`` (only when CUDA is available) — samples per second on the GPU (``--device cuda``, batches
  sized from free memory) against one CPU core (NumPy): Navier–Stokes 256^2 (ETDRK4 and classic,
  float64 and float32) and KS; ``gpu_over_cpu_core`` is the ratio of throughputs.
* ``summary.projection`` — a PROJECTION, not a measurement: hours to generate the full ``fno`` preset
  (5,000 samples, 256^2, classic dt = 1e-4, T = 50) and ``fno-fast`` (ETDRK4, dt = 0.01) on N
  single-core workers, from the measured 256^2 step time on one core, the measured overhead per
  chunk and the measured 2-worker efficiency (assumed to hold for N workers); and on one GPU when
  the GPU rows ran.

The machine's load average is recorded before and after: parallel efficiency on a shared machine
measures the other users as much as pdeop. ``--gpu`` runs only the GPU rows and their CPU reference
(``benchmarks/gpu_generation.sh`` runs it on a lent GPU machine); ``--scaling`` only the scaling rows at
the full size (about 4 minutes on an idle 2-core machine; ``generation_scale_scaling.json``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import format_table, interleaved, parser, set_threads, write_results

#: Navier–Stokes and Darcy data sets of the scaling rows: (overrides, samples, chunk) by size. The full
#: size has 8 chunks of 1-2 CPU seconds each (idle core), so Dask's fixed costs are amortised as at a
#: preset's size
SCALING = {
    "navier-stokes": {
        "quick": (["internal_resolution=64", "resolution=32", "scheme=etdrk4", "dt=0.01", "T=1.5",
                   "record_every=0.5"], 8, 2),
        "full": (["internal_resolution=128", "resolution=32", "scheme=etdrk4", "dt=0.01", "T=5"], 16, 2),
    },
    "darcy": {
        "quick": (["resolution=81", "solver=direct"], 16, 4),
        "full": (["resolution=241", "solver=direct"], 32, 4),
    },
}
#: columns of the scaling table printed (the JSON has every field, with each run's timeline)
SCALING_COLUMNS = ("problem", "one_process_s", "workers_1_s", "workers_2_s", "efficiency", "overlap_2",
                   "utilisation_2", "serial_2_s", "client_2_s", "cpu_share_1", "cpu_share_2", "cores_used_1",
                   "cores_used_2", "cpu_2_over_cpu_1", "efficiency_full_cores_model", "dask_overhead_per_chunk_s")
#: the full fno preset: samples, steps per sample (T / dt) of the classic scheme and of fno-fast
FNO_SAMPLES, FNO_CLASSIC_STEPS, FNO_FAST_STEPS = 5000, 500_000, 5_000


def _generate(problem: str, overrides: list[str], samples: int, chunk: int, folder: Path, tag: str,
              scheduler: str | None) -> tuple[float, dict[str, Any]]:
    """Wall-clock seconds of one ``generate_dataset`` run and its timeline (:mod:`pde_data.chunk_timeline`)."""
    from pde_data.pipeline import generate_dataset, resolve_config

    config = resolve_config(problem, overrides=overrides, samples=samples, seed=0)
    path = folder / f"{problem}-{tag}-{time.monotonic_ns()}.h5"
    start = time.perf_counter()
    result = generate_dataset(config, path, progress=False, chunk_size=chunk, scheduler=scheduler)
    seconds = time.perf_counter() - start
    path.unlink()
    return seconds, result["timing"]


def scaling_rows(size: str, rounds: int, folder: Path, clusters: dict[int, Any]) -> list[dict[str, Any]]:
    """One process vs 1 and 2 Dask workers on the same data sets, interleaved, with where the time went."""
    from pde_data.chunk_timeline import full_core_seconds

    rows = []
    for problem, sizes in SCALING.items():
        overrides, samples, chunk = sizes[size]
        runs = {"one_process": None, **{f"workers_{n}": c.scheduler_address for n, c in clusters.items()}}
        for tag, address in runs.items():  # warm-up: workers import the family's modules, the solvers their code
            _generate(problem, overrides, 2, 1, folder, tag, address)
        times: dict[str, list[float]] = {tag: [] for tag in runs}
        timing: dict[str, dict[str, Any]] = {}
        for _ in range(rounds):
            for tag, address in runs.items():
                seconds, account = _generate(problem, overrides, samples, chunk, folder, tag, address)
                if not times[tag] or seconds < min(times[tag]):
                    timing[tag] = account  # the fastest round's timeline
                times[tag].append(seconds)
        best = {tag: min(t) for tag, t in times.items()}
        full = {tag: full_core_seconds(timing[tag]) for tag in runs}
        one, two = timing["workers_1"], timing["workers_2"]
        chunks = -(-samples // chunk)
        rows.append({
            "row": "scaling", "problem": problem, "settings": " ".join(overrides), "samples": samples, "chunk": chunk,
            "one_process_s": best["one_process"], "workers_1_s": best["workers_1"], "workers_2_s": best["workers_2"],
            "efficiency": best["workers_1"] / (2 * best["workers_2"]),
            "efficiency_median": float(np.median(times["workers_1"]) / (2 * np.median(times["workers_2"]))),
            "speedup_2_vs_one_process": best["one_process"] / best["workers_2"],
            "dask_overhead_per_chunk_s": (best["workers_1"] - best["one_process"]) / chunks,
            "seconds_per_sample_one_process": best["one_process"] / samples, "rounds": rounds,
            "chunk_cpu_s": timing["one_process"]["cpu_s"] / chunks,
            "overlap_2": two["overlap"], "concurrency_2": two["concurrency"], "utilisation_2": two["utilisation"],
            "utilisation_1": one["utilisation"], "serial_1_s": one["serial_s"], "serial_2_s": two["serial_s"],
            "client_2_s": two["client_s"], "cpu_share_1": one["cpu_share"], "cpu_share_2": two["cpu_share"],
            "cores_used_1": one["cores_used"], "cores_used_2": two["cores_used"],
            "cpu_2_over_cpu_1": two["cpu_s"] / one["cpu_s"],
            "efficiency_full_cores_model": full["workers_1"] / (2 * full["workers_2"]),
            "timelines": timing,
        })
    return rows


def latency_row(cluster: Any, chunks: int) -> dict[str, Any]:
    """Dask's fixed cost per chunk: tiny Burgers chunks through compute_chunks vs in this process."""
    from pde_data.chunking import LocalRunner
    from pde_data.distributed import Cluster, compute_chunks
    from pde_data.family import get_family
    from pde_data.pipeline import resolve_config

    config = resolve_config("burgers", overrides=["internal_resolution=64", "resolution=64", "T=0.01", "dt=1e-3",
                                                  "record_every=0.01"], samples=chunks, seed=0)
    plan = [[i] for i in range(chunks)]
    local = LocalRunner(get_family("burgers")(config.settings), config.seed)
    with Cluster(scheduler=cluster.scheduler_address) as client:
        list(compute_chunks(client, config, plan[:2]))  # warm-up
        result = interleaved({"local": lambda: list(local.run(plan, lambda s: None)),
                              "dask": lambda: list(compute_chunks(client, config, plan))}, rounds=3)
    local_s, dask_s = result["local"]["min_s"], result["dask"]["min_s"]
    return {"row": "dask_latency", "chunks": chunks, "local_s": local_s, "dask_s": dask_s,
            "overhead_per_chunk_s": (dask_s - local_s) / chunks}


def _steppers() -> dict[str, tuple[Any, np.ndarray, int]]:
    """Integrators of the torch-vs-NumPy rows with their initial fields and steps to time."""
    from solvers.burgers import burgers_stepper
    from solvers.kuramoto_sivashinsky import kuramoto_sivashinsky_stepper
    from solvers.navier_stokes import navier_stokes_stepper

    w0, f = _ns_fields(64, 4)
    x = np.arange(256) / 256
    u_ks = np.stack([np.sin(2 * np.pi * (k + 1) * x) for k in range(16)])
    x = np.arange(1024) / 1024
    u_b = np.stack([0.5 * np.sin(2 * np.pi * (k + 1) * x) for k in range(16)])
    return {
        "navier-stokes classic 64^2 b4": (navier_stokes_stepper(64, 1e-3, 1e-3, f, "classic"), w0, 40),
        "navier-stokes etdrk4 64^2 b4": (navier_stokes_stepper(64, 1e-3, 1e-2, f, "etdrk4"), w0, 10),
        "kuramoto-sivashinsky N=256 b16": (kuramoto_sivashinsky_stepper(256, 64.0, 0.05), u_ks, 40),
        "burgers N=1024 b16": (burgers_stepper(1024, 0.1, 2e-4), u_b, 40),
    }


def _ns_fields(n: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The fno preset's initial vorticity (GRF) and forcing on an n^2 grid."""
    from pde_data.families.navier_stokes import forcing_field
    from pde_data.family import sample_rng
    from pde_data.random_fields import periodic_grf

    w0 = np.stack([periodic_grf(sample_rng(0, i), (n, n), 2.5, 7.0, np.sqrt(2) * 7**1.5) for i in range(batch)])
    return w0, forcing_field(n, 0.1)


def _step_seconds(stepper: Any, initial: np.ndarray, steps: int, rounds: int) -> dict[str, float]:
    """Seconds per step per sample of a rollout (a 0-step rollout's start and snapshots subtracted)."""
    result = interleaved({"run": lambda: stepper.rollout(initial, steps, 1),
                          "base": lambda: stepper.rollout(initial, 0, 1)}, rounds=rounds)
    return {k: (result["run"][k] - result["base"][k]) / (steps * len(initial)) for k in ("min_s", "median_s")}


def torch_cpu_rows(quick: bool) -> list[dict[str, Any]]:
    """The torch path against the NumPy path, one thread, per step per sample, interleaved."""
    import torch

    from solvers.devices import on_device

    torch.set_num_threads(1)
    rows = []
    for name, (stepper, initial, steps) in _steppers().items():
        steps = max(2, steps // 4) if quick else steps
        ported = on_device(stepper, "torch-cpu")
        contenders = {"numpy": lambda: stepper.rollout(initial, steps, 1),
                      "numpy_base": lambda: stepper.rollout(initial, 0, 1),
                      "torch": lambda: ported.rollout(initial, steps, 1),
                      "torch_base": lambda: ported.rollout(initial, 0, 1)}
        t = interleaved(contenders, rounds=3 if quick else 7)
        per = {k: (t[k]["min_s"] - t[f"{k}_base"]["min_s"]) / (steps * len(initial)) for k in ("numpy", "torch")}
        gap = np.max(np.abs(stepper.rollout(initial, steps, 1, out_dtype=np.float64)
                            - ported.rollout(initial, steps, 1, out_dtype=np.float64)))
        rows.append({"row": "torch_cpu", "case": name, "numpy_step_us": 1e6 * per["numpy"],
                     "torch_step_us": 1e6 * per["torch"], "numpy_over_torch": per["numpy"] / per["torch"],
                     "max_abs_difference": float(gap)})
    return rows


def gpu_rows(quick: bool) -> list[dict[str, Any]]:
    """Samples/s on the GPU against one CPU core (NumPy), Navier–Stokes 256^2 and KS (skipped without CUDA)."""
    import torch

    from solvers.devices import on_device
    from solvers.kuramoto_sivashinsky import kuramoto_sivashinsky_stepper
    from solvers.navier_stokes import navier_stokes_stepper

    if not torch.cuda.is_available():
        return []
    rows = []
    w_cpu, f = _ns_fields(256, 1)
    w_gpu = np.repeat(_ns_fields(256, 8)[0], 16 if quick else 64, axis=0)  # 128 / 512 samples
    x = np.arange(256) / 256
    u = np.stack([np.sin(2 * np.pi * (k % 7 + 1) * x) for k in range(16)])
    cases = [(f"navier-stokes {scheme} 256^2 {precision}", navier_stokes_stepper(256, 1e-3, dt, f, scheme, dtype),
              w_cpu, w_gpu, steps)
             for scheme, dt, steps in (("etdrk4", 1e-2, 10), ("classic", 1e-4, 40))
             for precision, dtype in (("float64", np.float64), ("float32", np.float32))]
    cases.append(("kuramoto-sivashinsky N=256 float64", kuramoto_sivashinsky_stepper(256, 64.0, 0.05), u,
                  np.repeat(u, 256, axis=0), 200))
    for name, stepper, cpu_initial, gpu_initial, steps in cases:
        cpu = _step_seconds(stepper, cpu_initial, max(2, steps // 4), rounds=3)["min_s"]
        gpu = _step_seconds(on_device(stepper, "cuda"), gpu_initial, steps, rounds=3)["min_s"]
        rows.append({"row": "gpu", "case": name, "gpu_batch": len(gpu_initial), "device": torch.cuda.get_device_name(0),
                     "cpu_core_step_us_per_sample": 1e6 * cpu, "gpu_step_us_per_sample": 1e6 * gpu,
                     "gpu_over_cpu_core": cpu / gpu})
    return rows


def projection(rows: list[dict[str, Any]], step_classic_s: float, step_fast_s: float) -> dict[str, Any]:
    """Hours for the full fno / fno-fast presets on N single-core workers (and one GPU): a PROJECTION."""
    scaling = [r for r in rows if r["row"] == "scaling" and r["problem"] == "navier-stokes"]
    efficiency = scaling[0]["efficiency"] if scaling else 1.0
    overhead = next((r["overhead_per_chunk_s"] for r in rows if r["row"] == "dask_latency"), 0.0)
    chunk = 8  # the Navier-Stokes family's default chunk
    out: dict[str, Any] = {"label": "PROJECTION from measured per-step cost, per-chunk overhead and 2-worker "
                                    "efficiency (assumed to hold at N workers); not a measured run",
                           "assumed_efficiency": efficiency, "overhead_per_chunk_s": overhead}
    for preset, step, steps in (("fno", step_classic_s, FNO_CLASSIC_STEPS), ("fno-fast", step_fast_s, FNO_FAST_STEPS)):
        per_sample = step * steps + overhead / chunk
        out[preset] = {"cpu_core_seconds_per_sample": per_sample,
                       **{f"hours_on_{n}_workers": FNO_SAMPLES * per_sample / (n * (efficiency if n > 1 else 1.0))
                          / 3600 for n in (1, 2, 16, 64, 256)}}
        gpu = [r for r in rows if r["row"] == "gpu" and r["case"].startswith(
            f"navier-stokes {'classic' if preset == 'fno' else 'etdrk4'} 256^2 float64")]
        if gpu:
            out[preset]["hours_on_1_gpu"] = FNO_SAMPLES * steps * gpu[0]["gpu_step_us_per_sample"] * 1e-6 / 3600
    return out


def _machine_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far (every user's processes), from /proc/stat."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _own_cpu_seconds() -> float | None:
    """CPU seconds of this process and its live descendants (the Dask nannies and workers) so far."""
    try:
        import psutil
    except ImportError:
        return None
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:  # exited meanwhile
            continue
    return total


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--gpu", action="store_true", help="only the GPU rows and their CPU reference")
    p.add_argument("--scaling", action="store_true",
                   help="only the scaling rows, at the full size (about 4 minutes on an idle 2-core machine)")
    args = p.parse_args()
    if args.gpu and args.scaling:
        p.error("--gpu and --scaling select different rows; give one of them")
    threads = args.threads or 1
    os.environ["PDEOP_THREADS"] = str(threads)  # one core per worker process (inherited) and in this process
    set_threads(threads)
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    if not args.gpu:
        from pde_data.distributed import local_cluster

        clusters = {n: local_cluster(n) for n in (1, 2)}
        try:
            busy_before, own_before = _machine_busy(), _own_cpu_seconds()
            with tempfile.TemporaryDirectory(prefix="pdeop-scale-") as folder:
                rows += scaling_rows("quick" if args.quick else "full", 1 if args.quick else 3, Path(folder), clusters)
            busy_after, own_after = _machine_busy(), _own_cpu_seconds()
            if busy_before and busy_after:  # every process's CPU use on the machine, this benchmark's included
                wall = (busy_after[1] - busy_before[1]) / (os.cpu_count() or 1)
                summary["machine_busy_cores_during_scaling"] = (busy_after[0] - busy_before[0]) / wall
                if own_before is not None and own_after is not None:
                    summary["other_users_busy_cores_during_scaling"] = (
                        busy_after[0] - busy_before[0] - (own_after - own_before)) / wall
            if not args.scaling:
                rows.append(latency_row(clusters[1], 10 if args.quick else 40))
        finally:
            for cluster in clusters.values():
                cluster.close()
        if not args.scaling:
            rows += torch_cpu_rows(args.quick)
    if not args.scaling:
        rows += gpu_rows(args.quick)
        from solvers.navier_stokes import navier_stokes_stepper

        w0, f = _ns_fields(256, 1)
        classic = _step_seconds(navier_stokes_stepper(256, 1e-3, 1e-4, f, "classic"), w0, 4 if args.quick else 20, 3)
        fast = _step_seconds(navier_stokes_stepper(256, 1e-3, 1e-2, f, "etdrk4"), w0, 2 if args.quick else 8, 3)
        summary["cpu_core_step_ms_256"] = {"classic": 1e3 * classic["min_s"], "etdrk4": 1e3 * fast["min_s"]}
        summary["projection"] = projection(rows, classic["min_s"], fast["min_s"])
    summary = {"load_average_before": list(load_before), "load_average_after": list(os.getloadavg()), **summary}
    for r in rows:
        if r["row"] == "scaling":
            for key in ("efficiency", "dask_overhead_per_chunk_s", "overlap_2", "serial_2_s", "cores_used_1",
                        "cores_used_2", "efficiency_full_cores_model"):
                summary[f"{key}_{r['problem']}"] = r[key]
        elif r["row"] == "dask_latency":
            summary["dask_latency_per_chunk_s"] = r["overhead_per_chunk_s"]
        elif r["row"] in ("torch_cpu", "gpu"):
            key = "numpy_over_torch" if r["row"] == "torch_cpu" else "gpu_over_cpu_core"
            summary[f"{r['row']}: {r['case']}"] = r[key]
    for kind in ("scaling", "dask_latency", "torch_cpu", "gpu"):
        part = [r for r in rows if r["row"] == kind]
        if part:
            print(f"\n{kind}\n" + format_table(part, SCALING_COLUMNS if kind == "scaling" else None))
    print(f"\nload average before {load_before}, after {summary['load_average_after']}")
    if "machine_busy_cores_during_scaling" in summary:
        print(f"machine busy during the scaling rows: {summary['machine_busy_cores_during_scaling']:.2f} of "
              f"{os.cpu_count()} cores, other users' processes "
              f"{summary.get('other_users_busy_cores_during_scaling', float('nan')):.2f} of them")
    name = "generation_scale_gpu" if args.gpu else "generation_scale_scaling" if args.scaling else \
        "generation_scale_quick" if args.quick else "generation_scale"
    out = args.out or Path(__file__).parent / "results" / f"{name}.json"
    print(f"wrote {write_results('generation_scale', rows, summary, out)}")


if __name__ == "__main__":
    main()
