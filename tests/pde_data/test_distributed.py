"""Generation on a Dask cluster: bit-identical to one process, resumable, robust to killed workers, clear errors.

The cluster is the session's shared 2-worker LocalCluster (tests/conftest.py), used as an external
scheduler; the `--workers N` path (a LocalCluster of its own) is tested once through the CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest

pytest.importorskip("distributed")

from operators.cli import main  # noqa: E402
from pde_data import distributed  # noqa: E402
from pde_data.chunking import plan_chunks  # noqa: E402
from pde_data.pipeline import generate_dataset, resolve_config  # noqa: E402
from pde_data.storage import COMPLETE_MARKS  # noqa: E402
from solvers.errors import ConfigError  # noqa: E402

#: (problem, preset, overrides, samples) at test sizes
CASES = [
    ("navier-stokes", "fno", ["internal_resolution=16", "resolution=8", "dt=4e-3", "T=1"], 5),
    ("kuramoto-sivashinsky", "lpsda", ["internal_resolution=64", "resolution=32", "T=2", "warmup_steps=10",
                                       "L=[20, 24]"], 5),
    ("burgers", "fno", ["internal_resolution=128", "resolution=64", "T=0.1", "dt=1e-3", "record_every=0.05"], 5),
    ("darcy", "fno", ["resolution=17"], 5),
    ("helmholtz", "absorbing", ["resolution=25", "wavenumber=12"], 5),
    ("heat", "default", ["resolution=17", "steps=3"], 5),
]
#: measurements, not values: differ between any two runs
MEASURED = ("solve_seconds",)
#: a Navier-Stokes run long enough (6000 steps of 16^2 per sample, ~0.3 s) to be killed mid-way
KILL_SETTINGS = ["internal_resolution=16", "resolution=8", "dt=1e-3", "T=6"]
KILL_SAMPLES = 6


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory):
    """The single-process file of the runs that get killed."""
    path = tmp_path_factory.mktemp("reference") / "one.h5"
    generate_dataset(_config("navier-stokes", "fno", KILL_SETTINGS, KILL_SAMPLES), path, progress=False)
    return path


def _config(problem: str, preset: str, overrides: list[str], samples: int):
    return resolve_config(problem, preset, overrides=overrides, samples=samples, seed=3)


def _arrays(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        assert f.attrs["complete"] == 1
        return {name: f[name][()] for name in f if name not in MEASURED}


def _assert_same_file(expected, actual) -> None:
    a, b = _arrays(expected), _arrays(actual)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("problem, preset, overrides, samples", CASES, ids=[c[0] for c in CASES])
def test_two_workers_write_the_single_process_file(dask_cluster, tmp_path, problem, preset, overrides, samples):
    """Chunks of one sample each, spread over two worker processes and written in order of completion,
    give a file equal bit for bit to the single-process one (all variables but measured seconds)."""
    config = _config(problem, preset, overrides, samples)
    generate_dataset(config, tmp_path / "one.h5", progress=False)
    generate_dataset(config, tmp_path / "dask.h5", progress=False, chunk_size=1,
                     scheduler=dask_cluster.scheduler_address)
    _assert_same_file(tmp_path / "one.h5", tmp_path / "dask.h5")


def test_recycling_sequences_make_iterative_solves_identical(dask_cluster, tmp_path):
    """An SKR Darcy run (recycled Krylov space and reused ILU carried from sample to sample) cut into
    sequences of 3: one process with 6-sample chunks and two workers with 3-sample chunks store the same
    solutions, iteration counts and residuals — the solver restarts at the same points of the order."""
    config = _config("darcy", "fno", ["resolution=17", "solver=skr", "samples_per_sequence=3"], 8)
    one = generate_dataset(config, tmp_path / "one.h5", progress=False, chunk_size=6)
    dask = generate_dataset(config, tmp_path / "dask.h5", progress=False, chunk_size=1,
                            scheduler=dask_cluster.scheduler_address)
    _assert_same_file(tmp_path / "one.h5", tmp_path / "dask.h5")
    iterations = _arrays(tmp_path / "one.h5")["iterations"]
    assert iterations.max() > 0  # the solves were iterative, so the state mattered
    # the workers' summaries add up to the single process's (three solvers in both runs)
    for key in ("solves", "iterations", "matvecs", "retries"):
        assert dask["summary"][key] == one["summary"][key] == (8 if key == "solves" else one["summary"][key])
    assert dask["summary"]["method"] == "skr" and dask["summary"]["worst_residual"] == one["summary"]["worst_residual"]


def test_numerical_failure_on_a_worker_is_reported_as_in_one_process(dask_cluster, tmp_path):
    """A log-normal coefficient that overflows fails on the worker: the client raises the same SolverError
    naming the sample, and no file is left when nothing was stored."""
    from solvers.errors import SolverError

    config = _config("darcy", "lognormal", ["resolution=17", "log_scale=1e4"], 1)  # one sample: one error to compare
    with pytest.raises(SolverError) as local:
        generate_dataset(config, tmp_path / "one.h5", progress=False, chunk_size=1)
    with pytest.raises(SolverError) as remote:
        generate_dataset(config, tmp_path / "dask.h5", progress=False, chunk_size=1,
                         scheduler=dask_cluster.scheduler_address)
    assert str(remote.value) == str(local.value) and "sample " in str(local.value)
    assert not (tmp_path / "dask.h5").exists()


def test_resuming_an_iterative_run_is_exact(tmp_path):
    """Unmarking the last sequence of an SKR file (as a crash before its write leaves it) and rerunning
    recomputes that sequence from a fresh solver: the file equals the uninterrupted one bit for bit."""
    config = _config("poisson", "default", ["resolution=17", "solver=skr", "samples_per_sequence=2"], 5)
    reference, resumed = tmp_path / "ref.h5", tmp_path / "resumed.h5"
    generate_dataset(config, reference, progress=False)
    generate_dataset(config, resumed, progress=False)
    order = np.asarray(_order(config))
    with h5py.File(resumed, "r+") as f:
        marks = f[COMPLETE_MARKS][()]
        marks[order[2:4]] = 0  # the second sequence of the solve order
        f[COMPLETE_MARKS][...] = marks
        for index in order[2:4]:
            f["u"][index] = 0.0
        f.attrs["complete"] = np.int8(0)
    result = generate_dataset(config, resumed, progress=False)
    assert result["computed"] == 2
    _assert_same_file(reference, resumed)


def _order(config):
    from pde_data.family import get_family

    return get_family(config.problem)(config.settings).solve_order(config.samples, config.seed)


def test_killed_worker_chunk_is_recomputed(dask_cluster, kill_reference, tmp_path):
    """kill -9 of a worker while it computes a chunk: the scheduler recomputes the chunk elsewhere and
    the file is complete and equal to the single-process one. While the Dask run computes, a second
    writer of the same file is refused (the client holds the one-writer lock, as in one process)."""
    from distributed import Client

    config = _config("navier-stokes", "fno", KILL_SETTINGS, KILL_SAMPLES)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            generate_dataset(config, tmp_path / "dask.h5", progress=False, chunk_size=2,
                             scheduler=dask_cluster.scheduler_address)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    with Client(dask_cluster.scheduler_address, timeout=30) as monitor:
        thread = threading.Thread(target=run)
        thread.start()
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and thread.is_alive() and time.monotonic() < deadline:
            busy = [w for w, keys in monitor.processing().items() if any("pdeop-chunk" in str(k) for k in keys)]
            if busy:
                with pytest.raises(ConfigError, match=f"is being written by process {os.getpid()}"):
                    generate_dataset(config, tmp_path / "dask.h5", progress=False, overwrite=True)
                victim = monitor.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(victim, signal.SIGKILL)
            else:
                time.sleep(0.02)
        thread.join(timeout=300)
    assert victim is not None, "no worker was seen computing a chunk"
    assert not errors, errors
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    _assert_same_file(kill_reference, tmp_path / "dask.h5")


@pytest.mark.slow
def test_killed_client_resumes_from_the_file(dask_cluster, kill_reference, tmp_path):
    """kill -9 of `pdeop generate --scheduler` after its first stored chunk; rerunning the command completes
    the file, equal to the single-process one."""
    args = ["generate", "navier-stokes", "--samples", str(KILL_SAMPLES), "--seed", "3", "--chunk-size", "1", "--quiet",
            *(a for setting in KILL_SETTINGS for a in ("--set", setting)),
            "--scheduler", dask_cluster.scheduler_address, "--out", str(tmp_path / "dask.h5")]
    env = {**os.environ, "HDF5_USE_FILE_LOCKING": "FALSE"}
    proc = subprocess.Popen([sys.executable, "-m", "operators.cli", *args], env=env)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and _stored(tmp_path / "dask.h5") < 1:
        time.sleep(0.01)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    stored = _stored(tmp_path / "dask.h5")
    assert killed and 1 <= stored < KILL_SAMPLES, (killed, stored)
    assert subprocess.run([sys.executable, "-m", "operators.cli", *args], env=env, timeout=300).returncode == 0
    _assert_same_file(kill_reference, tmp_path / "dask.h5")


def _wait_for_both_workers(cluster) -> None:
    """Wait until the shared cluster has its 2 workers again (a nanny restarts a killed one, slowly on a
    loaded machine); the provenance counts the workers present when the run starts."""
    from distributed import Client

    with Client(cluster.scheduler_address, timeout=30) as client:
        client.wait_for_workers(2, timeout=300)


def _stored(path) -> int:
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f[COMPLETE_MARKS][()].sum())
    except (OSError, KeyError):
        return 0


def test_unreachable_scheduler_exits_2_naming_the_address(tmp_path, capsys):
    """Nothing listens on port 1: exit 2 within the timeout, one line naming the address; no file is made."""
    start = time.monotonic()
    code = main(["generate", "burgers", "--samples", "2", "--out", str(tmp_path / "b.h5"), "--quiet",
                 "--scheduler", "127.0.0.1:1", "--scheduler-timeout", "1"])
    assert code == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach a Dask scheduler at tcp://127.0.0.1:1 within 1 s" in err[0]
    assert not (tmp_path / "b.h5").exists()


def test_workers_with_another_pdeop_version_are_refused(dask_cluster, monkeypatch):
    """The workers report their own pdeop version; a client of another version refuses them by name."""
    monkeypatch.setattr(distributed, "__version__", "0.0-other")
    with distributed.Cluster(scheduler=dask_cluster.scheduler_address) as cluster:
        with pytest.raises(ConfigError, match=r"worker tcp://.* runs pdeop .* \(here 0\.0-other\).*install"):
            cluster.check_versions()


def test_workers_without_pdeop_are_refused(dask_cluster):
    """A worker on which pdeop cannot be imported is named, with what to install (the probe travels by value)."""
    def hide() -> None:
        sys.modules["solvers.version"] = None  # makes `import solvers.version` fail, as without pdeop

    def restore() -> None:
        sys.modules.pop("solvers.version", None)

    with distributed.Cluster(scheduler=dask_cluster.scheduler_address) as cluster:
        cluster.client.run(hide)
        try:
            with pytest.raises(ConfigError, match=r"worker tcp://.* cannot import pdeop .*install pdeop"):
                cluster.check_versions()
        finally:
            cluster.client.run(restore)
        cluster.check_versions()


def test_progress_and_provenance_over_the_cluster(dask_cluster, tmp_path, capsys):
    """compute_chunks reports never-decreasing sample counts ending at the total; the file records the
    cluster (scheduler kind, worker count) and `pdeop info` shows it; the run's timeline counts its
    chunks, samples and workers, each chunk on one of the cluster's workers."""
    config = _config("burgers", "fno", ["internal_resolution=128", "resolution=64", "T=0.2", "dt=1e-3"], 4)
    seen: list[float] = []
    with distributed.Cluster(scheduler=dask_cluster.scheduler_address) as cluster:
        assert cluster.client.direct_to_workers  # loopback workers: results fetched from them, not the scheduler
        results = list(distributed.compute_chunks(cluster, config, [[0, 1], [2], [3]], progress=seen.append))
    assert sorted(i for r in results for i in r.indices) == [0, 1, 2, 3]
    assert seen and seen[-1] == pytest.approx(4.0) and all(b >= a for a, b in zip(seen, seen[1:]))
    path = tmp_path / "b.h5"
    _wait_for_both_workers(dask_cluster)
    timing = generate_dataset(config, path, progress=False, chunk_size=1,
                              scheduler=dask_cluster.scheduler_address)["timing"]
    assert (timing["chunks"], timing["samples"], timing["workers"]) == (4, 4, 2)
    assert set(timing["busy_by_worker_s"]) <= set(dask_cluster.scheduler_info["workers"])
    assert 0.0 <= timing["any_busy_s"] <= timing["wall_s"] and 1.0 <= timing["concurrency"] <= 2.0 + 1e-9
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "run 1: 2 Dask workers (external scheduler, 1 thread each), device cpu, 4 samples" in out


@pytest.mark.slow
def test_cli_workers_starts_a_local_cluster(tmp_path, capsys):
    """`--workers 1` starts its own LocalCluster (one worker process: the cheapest to start; two workers are
    tested above); the file equals the single-process one and records the cluster."""
    args = ["generate", "burgers", "--samples", "3", "--set", "internal_resolution=128", "--set", "resolution=64",
            "--set", "T=0.1", "--set", "dt=1e-3", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one.h5")]) == 0
    assert main([*args, "--workers", "1", "--chunk-size", "1", "--out", str(tmp_path / "two.h5")]) == 0
    _assert_same_file(tmp_path / "one.h5", tmp_path / "two.h5")
    assert main(["info", str(tmp_path / "two.h5")]) == 0
    assert "1 Dask worker (local cluster, 1 thread each)" in capsys.readouterr().out


def test_plan_chunks_keeps_sequences_whole() -> None:
    """Chunks hold whole sequences of the solve order (at least one), skip stored sequences, keep the order."""
    order = np.array([4, 0, 3, 1, 2, 6, 5])
    done = np.zeros(7, bool)
    assert plan_chunks(order, done, 2) == [[4, 0], [3, 1], [2, 6], [5]]
    assert plan_chunks(order, done, 2, sequence=3) == [[4, 0, 3], [1, 2, 6], [5]]
    assert plan_chunks(order, done, 7, sequence=3) == [[4, 0, 3, 1, 2, 6], [5]]
    done[[1, 2, 6]] = True  # the second sequence is stored
    assert plan_chunks(order, done, 3, sequence=3) == [[4, 0, 3], [5]]
    done[4] = True  # part of a sequence stored: the whole sequence is computed again
    assert plan_chunks(order, done, 3, sequence=3) == [[4, 0, 3], [5]]
