"""Generation across processes and machines with Dask: chunks of samples are tasks, one writer in the client.

:class:`Cluster` gives a Dask client: a ``LocalCluster`` of ``N`` single-threaded worker processes on
this machine (``pdeop generate --workers N``), or any running Dask deployment (``--scheduler
ADDRESS``: ``dask scheduler`` + ``dask worker`` by hand, dask-jobqueue on SLURM/PBS, Kubernetes).
Before any work it checks that the workers run the client's versions of pdeop and of the packages
the stored values depend on.

:func:`compute_chunks` submits one task per chunk (:func:`compute_chunk`: build the family from the
resolved configuration, ``generate`` the chunk's samples, return the arrays) and yields the results
as they complete, in any order, to the caller — the pipeline's single writer, the only code that
touches the file. Sample ``i`` depends only on ``(seed, i)`` and the configuration, and a family
whose solver carries state from sample to sample restarts it at fixed points of the solve order
(:meth:`~pde_data.family.Family.sequence_length`, whole sequences per chunk), so a chunk computes
the same values on any worker as in one process. A worker that dies mid-chunk (``kill -9``, out of
memory, a lost node) has its chunk recomputed elsewhere by the scheduler; a chunk that kills
:data:`ALLOWED_FAILURES` workers is reported. Families know nothing of Dask.

Progress: every task reports the fraction of its chunk done as a Dask event (topic
:data:`PROGRESS_TOPIC`, at most every :data:`PROGRESS_INTERVAL` seconds); the client adds them up
for one progress bar over the cluster. Another user of the pipeline (online training) can use
:class:`Cluster` and :func:`compute_chunks` directly to stream samples.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from pde_data.chunk_timeline import ChunkTiming
from pde_data.family import get_family, merge_summaries
from solvers.devices import check_device, uses_torch
from solvers.errors import ConfigError
from solvers.version import __version__

#: seconds to reach a scheduler and to wait for its first worker
DEFAULT_TIMEOUT = 10.0
#: Dask event topic of the tasks' progress reports
PROGRESS_TOPIC = "pdeop-generate-progress"
#: seconds between two progress reports of one task
PROGRESS_INTERVAL = 0.5
#: packages whose versions the stored values depend on: every worker must run the client's
VALUE_PACKAGES = ("numpy", "scipy")
#: worker deaths a chunk may cause before the run stops (Dask's ``allowed-failures``)
ALLOWED_FAILURES = 3


@dataclasses.dataclass(frozen=True)
class ChunkResult:
    """What a task returns: the chunk's samples, their arrays, the family's summary, where and when.

    ``timing`` holds the worker, the worker's ``time.time()`` around the chunk and the worker process's
    CPU seconds in between (a worker process running several tasks at once counts theirs too); its
    ``client_seconds`` are the client's, set by :func:`compute_chunks` (fetching the result) and
    added to by the caller (taking it in).
    """

    indices: list[int]
    arrays: dict[str, np.ndarray]
    summary: dict[str, Any]
    timing: ChunkTiming


def local_cluster(workers: int) -> Any:
    """A Dask ``LocalCluster`` of ``workers`` single-threaded worker processes on this machine.

    The workers' statistical profiler (a stack sample every 10 ms, for the dashboard) is switched off: on a
    machine with one core per worker it cost two workers on 2 cores 2-5 points of parallel efficiency (NS
    0.870 -> 0.921, Darcy 0.895 -> 0.916 side by side on the idle machine; ``benchmarks/generation_scale.py
    --scaling``).

    Parameters
    ----------
    workers
        Number of worker processes.

    Returns
    -------
    distributed.LocalCluster
        The started cluster; the caller closes it.
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.profile.enabled": False}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")


class Cluster:
    """A Dask client for generation: a local cluster of worker processes, or an existing scheduler.

    Use as a context manager. Exactly one of ``workers`` and ``scheduler`` is given.

    Parameters
    ----------
    workers
        Start a ``LocalCluster`` of this many worker processes with one thread each.
    scheduler
        Address of a running scheduler (``tcp://host:8786``; ``host:port`` means ``tcp://``), or the
        path of a scheduler file written by ``dask scheduler --scheduler-file``.
    timeout
        Seconds to reach the scheduler and to see its first worker.
    """

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if (workers is None) == (scheduler is None):
            raise ConfigError("give either --workers N or --scheduler ADDRESS, not both")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be an integer >= 1 (got {workers})")
        if not timeout > 0:
            raise ConfigError(f"the scheduler timeout must be a positive number of seconds (got {timeout})")
        self.workers, self.scheduler, self.timeout = workers, scheduler, float(timeout)
        self.client: Any = None
        self._local: Any = None

    def __enter__(self) -> Cluster:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Start the local cluster or connect to the scheduler, and wait for a worker.

        Raises
        ------
        ConfigError
            The scheduler cannot be reached within the timeout, or has no worker.
        """
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError("--workers and --scheduler need Dask: pip install 'pdeop[dask]' "
                              "(dask and distributed)") from None
        if self.workers is not None:
            self._local = local_cluster(self.workers)
            self.client = Client(self._local, timeout=self.timeout)
            self._fetch_directly()
            return
        address = scheduler_address(self.scheduler)
        try:
            self.client = Client(address, timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is the user's address or network
            raise ConfigError(f"cannot reach a Dask scheduler at {address} within {self.timeout:g} s "
                              f"({_reason(exc)}); start one with `dask scheduler` and workers with "
                              f"`dask worker {address}`, or check --scheduler") from None
        try:
            self.client.wait_for_workers(1, timeout=self.timeout)
        except TimeoutError:
            self.close()
            raise ConfigError(f"the Dask scheduler at {address} has no workers (waited {self.timeout:g} s); "
                              f"start some with `dask worker {address}`") from None
        self._fetch_directly()

    def _fetch_directly(self) -> None:
        """Fetch results from workers on this machine's loopback directly, not through the scheduler.

        Dask relays results through the scheduler unless told that the client reaches the workers
        (``distributed.client.direct-to-workers``); loopback workers always are reachable, and a
        direct fetch of a result of megabytes takes about half the time. Workers elsewhere follow
        Dask's setting (set it to true when the client can reach them).
        """
        import dask

        if dask.config.get("distributed.client.direct-to-workers", None) is not None:
            return  # the user chose
        hosts = {str(w.get("host", "")) for w in self.worker_info().values()}
        if hosts and all(h.startswith("127.") or h in ("localhost", "::1") for h in hosts):
            self.client.direct_to_workers = True

    def close(self) -> None:
        """Close the client, and the local cluster if this object started it (idempotent)."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._local is not None:
            self._local.close()
            self._local = None

    def worker_info(self) -> dict[str, dict[str, Any]]:
        """The scheduler's view of each worker (address → ``host``, ``nthreads``, ...)."""
        return dict(self.client.scheduler_info(n_workers=-1)["workers"])

    def provenance(self) -> dict[str, Any]:
        """How the cluster computes (for the file's provenance): scheduler kind, workers, threads each."""
        info = self.worker_info()
        threads = sorted({int(w.get("nthreads", 1)) for w in info.values()})
        return {"scheduler": "local" if self._local is not None else "external", "workers": len(info),
                "threads_per_worker": threads[0] if len(threads) == 1 else threads,
                "hosts": len({w.get("host") for w in info.values()})}

    def check_versions(self, torch_device: bool = False) -> None:
        """Refuse workers that lack pdeop or run other versions of the packages the values depend on.

        Parameters
        ----------
        torch_device
            The run uses torch's arithmetic (a torch device): torch's version must match too.

        Raises
        ------
        ConfigError
            Naming the first such worker, the versions on both sides and what to install.
        """
        wanted = {"pdeop": __version__, **_versions(VALUE_PACKAGES + (("torch",) if torch_device else ()))}
        found = self.client.run(_worker_versions(), tuple(wanted), on_error="return")
        for worker, versions in sorted(found.items()):
            if isinstance(versions, BaseException):
                raise ConfigError(f"worker {worker} could not report its package versions ({_reason(versions)}); "
                                  "check the workers' environment")
            if versions.get("pdeop") is None:
                raise ConfigError(f"worker {worker} cannot import pdeop ({versions.get('error', 'not installed')}); "
                                  f"install pdeop {__version__} in the workers' environment")
            different = [f"{name} {versions.get(name)} (here {version})" for name, version in wanted.items()
                         if versions.get(name) != version]
            if different:
                raise ConfigError(f"worker {worker} runs {', '.join(different)}; the stored values depend on these "
                                  "versions: install the client's versions on every worker")

    def check_device(self, device: str, precision: str) -> None:
        """Refuse workers on which ``device`` is absent (e.g. ``--device cuda`` on workers without a GPU).

        Raises
        ------
        ConfigError
            Naming the first such worker and why (from :func:`solvers.devices.check_device`).
        """
        found = self.client.run(check_device, device, precision, on_error="return")
        for worker, answer in sorted(found.items()):
            if isinstance(answer, BaseException):
                reason = answer if isinstance(answer, ConfigError) else _reason(answer)
                raise ConfigError(f"worker {worker}: {reason}")

    def threads_by_host(self) -> dict[str, int]:
        """Cores each task may use on each host: the host's cores shared among the worker threads there.

        A host whose workers set ``PDEOP_THREADS`` themselves is left out (their setting applies).
        """
        cores = self.client.run(_worker_cores(), on_error="return")
        info = self.worker_info()
        slots: dict[str, int] = {}
        host_cores: dict[str, int] = {}
        for address, worker in info.items():
            host = str(worker.get("host"))
            slots[host] = slots.get(host, 0) + int(worker.get("nthreads", 1))
            found = cores.get(address)
            if isinstance(found, int) and found > 0:
                host_cores[host] = found
        return {host: max(1, host_cores[host] // slots[host]) for host in host_cores}


def scheduler_address(address: str) -> str:
    """``address`` with ``tcp://`` added when no protocol is given (a scheduler file's path is kept)."""
    address = str(address).strip()
    if "://" in address or os.path.isfile(address):
        return address
    return f"tcp://{address}"


class DaskRunner:
    """Computes chunks on a :class:`Cluster` (a :class:`pde_data.chunking.ChunkRunner`).

    Parameters
    ----------
    cluster
        An open cluster.
    config
        The run's :class:`~pde_data.pipeline.ResolvedConfig`.
    device
        Where the workers integrate.
    """

    def __init__(self, cluster: Cluster, config: Any, device: str = "cpu") -> None:
        self.cluster, self.config, self.device = cluster, config, device
        self._summaries: list[dict[str, Any]] = []
        self._timings: list[ChunkTiming] = []

    def check_workers(self) -> None:
        """Refuse workers with other versions (:meth:`Cluster.check_versions`) or without the device."""
        self.cluster.check_versions(torch_device=uses_torch(self.device))
        if uses_torch(self.device):
            self.cluster.check_device(self.device, str(getattr(self.config.settings, "precision", "float64")))

    def run(self, chunks: Sequence[list[int]], advance: Callable[[float], None]) -> Iterator[tuple[list[int], dict]]:
        """Yield each chunk's indices and arrays as soon as a worker returns them (:func:`compute_chunks`)."""
        for result in compute_chunks(self.cluster, self.config, chunks, self.device, advance):
            if result.summary:
                self._summaries.append(result.summary)
            handed = time.perf_counter()
            yield result.indices, result.arrays  # the caller checks and writes them before asking for more
            self._timings.append(dataclasses.replace(
                result.timing, client_seconds=result.timing.client_seconds + time.perf_counter() - handed))

    def timings(self) -> list[ChunkTiming]:
        """One :class:`~pde_data.chunk_timeline.ChunkTiming` per chunk taken in so far."""
        return list(self._timings)

    def summary(self) -> dict[str, Any]:
        """The chunks' summaries combined (:func:`pde_data.family.merge_summaries`)."""
        return merge_summaries(self._summaries)

    def provenance(self) -> dict[str, Any]:
        """The cluster's description (:meth:`Cluster.provenance`)."""
        return self.cluster.provenance()


def compute_chunks(cluster: Cluster, config: Any, chunks: Sequence[Sequence[int]], device: str = "cpu",
                   progress: Callable[[float], None] | None = None) -> Iterator[ChunkResult]:
    """Compute ``chunks`` of samples on the cluster and yield each result as soon as it is done.

    Parameters
    ----------
    cluster
        An open :class:`Cluster`.
    config
        The run's resolved configuration (:class:`pde_data.pipeline.ResolvedConfig`).
    chunks
        Lists of global sample indices; a chunk is computed as one ``family.generate`` call.
    device
        Where the workers integrate (:func:`solvers.devices.check_device`).
    progress
        Called with the number of samples done so far (fractions of running chunks included; never
        decreasing), from the caller's thread or Dask's.

    Yields
    ------
    ChunkResult
        In order of completion. When a chunk fails (a numerical error, or the chunk killed
        :data:`ALLOWED_FAILURES` workers) the remaining chunks are cancelled and the error is raised:
        ``StabilityError`` / ``SolverError`` as in one process, ``ConfigError`` for killed workers.
    """
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    client = cluster.client
    run = uuid.uuid4().hex[:12]
    keys = [f"pdeop-chunk-{run}-{k}" for k in range(len(chunks))]
    sizes = dict(zip(keys, (len(c) for c in chunks)))
    tracker = _ProgressTracker(sizes, progress)
    client.subscribe_topic(PROGRESS_TOPIC, tracker.event)
    threads = cluster.threads_by_host()
    futures = [client.submit(compute_chunk, config, [int(i) for i in chunk], device, key, threads, key=key,
                             pure=False)
               for key, chunk in zip(keys, chunks)]
    try:
        for future in as_completed(futures):
            try:
                fetch = time.perf_counter()
                result = future.result()
                result = dataclasses.replace(result, timing=dataclasses.replace(
                    result.timing, client_seconds=time.perf_counter() - fetch))
            except KilledWorker:
                raise ConfigError(f"a chunk of {sizes[future.key]} samples killed {ALLOWED_FAILURES} workers in a row "
                                  "(out of memory?); the samples stored so far are kept — use a smaller "
                                  "--chunk-size or workers with more memory, and rerun the same command to resume") \
                    from None
            except FutureCancelledError:
                continue
            tracker.finished(future.key)
            yield result
    finally:
        client.unsubscribe_topic(PROGRESS_TOPIC)
        client.cancel([f for f in futures if not f.done()])


def compute_chunk(config: Any, indices: list[int], device: str, key: str,
                  threads_by_host: dict[str, int] | None = None) -> ChunkResult:
    """The task: compute samples ``indices`` of ``config`` on this worker (the family is built here).

    Parameters
    ----------
    config
        The run's :class:`~pde_data.pipeline.ResolvedConfig`.
    indices
        Global sample indices, whole sequences of the solve order.
    device
        Where to integrate.
    key
        The task's key, named in its progress reports.
    threads_by_host
        Cores this task may use, by host (:meth:`Cluster.threads_by_host`); ``PDEOP_THREADS`` wins.
    """
    from distributed import get_worker

    started, cpu = time.time(), time.process_time()
    worker = get_worker()
    host = worker.address.split("://")[-1].rsplit(":", 1)[0]
    family = get_family(config.problem)(config.settings)
    family.device = device
    last = [0.0]

    def report(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL:
            last[0] = now
            worker.log_event(PROGRESS_TOPIC, {"key": key, "fraction": float(fraction)})

    family.set_progress_callback(report)
    with _task_threads((threads_by_host or {}).get(host)):
        arrays = family.generate(indices, config.seed)
    timing = ChunkTiming(worker.address, len(indices), started, time.time(), time.process_time() - cpu)
    return ChunkResult(list(indices), arrays, family.summary(), timing)


_THREADS_LOCK = threading.Lock()
_THREADS_USERS = [0, None]  # running tasks that set PDEOP_THREADS, and the value it had before


@contextmanager
def _task_threads(threads: int | None) -> Iterator[None]:
    """``PDEOP_THREADS = threads`` while tasks of this worker run (the integrators read it); restored after."""
    if threads is None:
        yield
        return
    with _THREADS_LOCK:
        if _THREADS_USERS[0] == 0:
            _THREADS_USERS[1] = os.environ.get("PDEOP_THREADS")
            os.environ["PDEOP_THREADS"] = str(threads)
        _THREADS_USERS[0] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_USERS[0] -= 1
            if _THREADS_USERS[0] == 0:
                if _THREADS_USERS[1] is None:
                    os.environ.pop("PDEOP_THREADS", None)
                else:
                    os.environ["PDEOP_THREADS"] = _THREADS_USERS[1]


class _ProgressTracker:
    """Adds the running chunks' fractions (from progress events) to the finished chunks' samples."""

    def __init__(self, sizes: dict[str, int], progress: Callable[[float], None] | None) -> None:
        self.sizes, self.progress = sizes, progress
        self.fractions: dict[str, float] = {}
        self.lock = threading.Lock()

    def event(self, event: Any) -> None:
        message = event[1] if isinstance(event, tuple) else event
        key = message.get("key") if isinstance(message, dict) else None
        if key in self.sizes:
            self._set(key, float(message.get("fraction", 0.0)))

    def finished(self, key: str) -> None:
        self._set(key, 1.0)

    def _set(self, key: str, fraction: float) -> None:
        with self.lock:  # a recomputed chunk starts again at 0: the bar never goes back
            self.fractions[key] = max(self.fractions.get(key, 0.0), min(fraction, 1.0))
            if self.progress is not None:
                self.progress(sum(self.sizes[k] * f for k, f in self.fractions.items()))


def _versions(packages: Sequence[str]) -> dict[str, str | None]:
    import importlib

    found: dict[str, str | None] = {}
    for name in packages:
        try:
            found[name] = str(importlib.import_module(name).__version__)
        except ImportError:
            found[name] = None
    return found


def _worker_versions() -> Callable[[Sequence[str]], dict[str, Any]]:
    """A probe run on each worker, defined locally so that it travels by value: it needs no pdeop there."""

    def probe(packages: Sequence[str]) -> dict[str, Any]:
        import importlib

        found: dict[str, Any] = {}
        for name in packages:
            module = "solvers.version" if name == "pdeop" else name
            try:
                found[name] = str(importlib.import_module(module).__version__)
            except Exception as exc:  # noqa: BLE001 - reported back to the client as text
                found[name] = None
                if name == "pdeop":
                    found["error"] = f"{type(exc).__name__}: {exc}"
        return found

    return probe


def _worker_cores() -> Callable[[], int | None]:
    """A probe of the cores a worker process may use (None when the worker sets ``PDEOP_THREADS``)."""

    def probe() -> int | None:
        import os

        if os.environ.get("PDEOP_THREADS"):
            return None
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:
            return os.cpu_count()

    return probe


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "something that is not a Dask scheduler answered there"
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, OSError) else text

