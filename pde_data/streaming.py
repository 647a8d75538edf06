"""Samples computed in background processes and handed out in order, never more than a bound ahead.

The generation pipeline writes samples to a file (:mod:`pde_data.pipeline`); a :class:`SampleStream`
hands them to a consumer instead (online training, see ``operators.training.online``). Both call the
family the same way — ``family.generate(indices, seed)`` on chunks of sample indices — so sample
``i`` of a stream is sample ``i`` of a file made from the same configuration.

* **Order.** Tasks (a key and a list of sample indices) are computed by ``workers`` processes (spawn
  start method: nothing of the consumer's state is shared) and yielded in the order they were given,
  whichever worker finishes first.
* **Back-pressure.** At most ``ahead`` tasks are handed to the workers and not yet taken by the
  consumer; the next task is handed out only when the consumer takes one. Memory and the work done
  ahead of the consumer are bounded by ``ahead`` tasks.
* **Failures.** An exception in a family (unstable step, failed solve) or a worker process that dies
  (killed, out of memory) raises :class:`GeneratorFailed` in the consumer, naming the samples; the
  other workers are stopped.
* **Backends.** :class:`SampleStream` computes in its own spawned processes; :class:`DaskSampleStream`
  on a Dask cluster (:class:`pde_data.distributed.Cluster`: ``--scheduler ADDRESS``, or a local
  cluster), one :func:`pde_data.distributed.compute_chunk` task per task, with the same order, bound
  and failure contract.

:func:`as_dataset` gives a computed chunk the in-memory layout of a dataset file (the same variables,
coordinates, static fields and attributes), so the loaders of :mod:`pde_data.loading` read it exactly
as they read a file.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import time
import uuid
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from solvers.errors import PdeopError

#: seconds between checks that the workers are alive while the consumer waits
_POLL = 0.2


class GeneratorFailed(PdeopError):
    """A background generator process failed or died; the message names the samples and the cause."""


class OrderedStream:
    """Tasks computed elsewhere and taken in order, at most ``ahead`` handed out and not taken.

    The order and the bound (see the module docstring) live here; a backend says how a task is
    handed out (:meth:`_submit`) and how its result is awaited (:meth:`_result`). Iterate over
    ``(key, indices, arrays)`` in task order; use as a context manager (or call :meth:`close`).

    Attributes
    ----------
    wait_seconds
        Time the consumer spent blocked waiting for a task's result.
    compute_seconds
        Time the workers spent in ``family.generate`` for the results taken so far.
    samples
        Samples taken by the consumer so far.
    """

    def __init__(self, tasks: Iterable[tuple[Hashable, Sequence[int]]], ahead: int) -> None:
        if ahead < 1:
            raise ValueError(f"ahead must be >= 1 (got {ahead})")
        self.ahead = int(ahead)
        self.wait_seconds = 0.0
        self.compute_seconds = 0.0
        self.samples = 0
        self._tasks = iter(tasks)
        self._pending: dict[int, tuple[Hashable, list[int]]] = {}
        self._next_id = 0
        self._next_out = 0
        self._exhausted = False

    def __enter__(self) -> OrderedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def outstanding(self) -> int:
        """Tasks handed to the workers and not yet taken by the consumer (never more than ``ahead``)."""
        return len(self._pending)

    def __iter__(self) -> Iterator[tuple[Hashable, list[int], dict[str, np.ndarray]]]:
        return self

    def __next__(self) -> tuple[Hashable, list[int], dict[str, np.ndarray]]:
        if self._next_out not in self._pending:
            raise StopIteration
        task = self._next_out
        start = time.perf_counter()
        arrays, seconds = self._result(task)
        self.wait_seconds += time.perf_counter() - start
        key, indices = self._pending.pop(task)
        self._next_out += 1
        self.compute_seconds += seconds
        self.samples += len(indices)
        self._fill()
        return key, indices, arrays

    def close(self) -> None:
        """Stop the workers (idempotent); results not taken are dropped."""

    def _fill(self) -> None:
        """Hand out tasks until ``ahead`` are outstanding or the tasks are exhausted."""
        while not self._exhausted and len(self._pending) < self.ahead:
            try:
                key, indices = next(self._tasks)
            except StopIteration:
                self._exhausted = True
                return
            indices = [int(i) for i in indices]
            self._pending[self._next_id] = (key, indices)
            self._submit(self._next_id, indices)
            self._next_id += 1

    def _submit(self, task: int, indices: list[int]) -> None:
        raise NotImplementedError

    def _result(self, task: int) -> tuple[dict[str, np.ndarray], float]:
        """The arrays of ``task`` and the seconds its worker computed, once it is done."""
        raise NotImplementedError

    def _fail(self, cause: str, task: int | None = None) -> None:
        """Stop, and raise :class:`GeneratorFailed` naming the samples of ``task`` (or of every task waiting)."""
        waiting = sorted(i for t, (_, indices) in self._pending.items() if (task is None or t == task)
                         and not self._done_already(t) for i in indices)
        self.close()
        shown = f"samples {waiting[0]}..{waiting[-1]}" if waiting else "no sample"
        raise GeneratorFailed(f"the sample generator failed while computing {shown}: {cause}")

    def _done_already(self, task: int) -> bool:
        return False


class SampleStream(OrderedStream):
    """Compute ``tasks`` in background processes; iterate over ``(key, indices, arrays)`` in task order.

    Parameters
    ----------
    config
        A :class:`~pde_data.pipeline.ResolvedConfig` (the family, its settings and the seed).
    tasks
        ``(key, indices)`` pairs, consumed lazily (the iterable may be endless).
    workers
        Background processes.
    ahead
        The most tasks handed out and not yet taken by the consumer (>= 1).

    The attributes are :class:`OrderedStream`'s.
    """

    def __init__(self, config: Any, tasks: Iterable[tuple[Hashable, Sequence[int]]], workers: int = 1,
                 ahead: int = 4) -> None:
        if workers < 1 or ahead < 1:
            raise ValueError(f"workers and ahead must be >= 1 (got {workers}, {ahead})")
        super().__init__(tasks, ahead)
        self._done: dict[int, tuple[dict[str, np.ndarray], float]] = {}
        from pde_data.family import get_family

        family = get_family(config.problem)  # handed over by reference: workers import its module
        context = multiprocessing.get_context("spawn")
        self._inbox = context.Queue()
        self._outbox = context.Queue()
        self._workers = [context.Process(target=_work, args=(family, config, self._inbox, self._outbox), daemon=True,
                                         name=f"pdeop-generator-{i}") for i in range(workers)]
        for process in self._workers:
            process.start()
        self._fill()

    def close(self) -> None:
        """Stop the workers (idempotent); results not taken are dropped."""
        for _ in self._workers:
            try:
                self._inbox.put_nowait(None)
            except (ValueError, OSError):  # queue already closed
                break
        for process in self._workers:
            process.join(timeout=1.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=1.0)
        self._workers = []
        for q in (self._inbox, self._outbox):
            q.close()
            q.cancel_join_thread()

    # ------------------------------------------------------------------ internals
    def _submit(self, task: int, indices: list[int]) -> None:
        self._inbox.put((task, indices))

    def _result(self, task: int) -> tuple[dict[str, np.ndarray], float]:
        while task not in self._done:
            self._receive()
        return self._done.pop(task)

    def _done_already(self, task: int) -> bool:
        return task in self._done

    def _receive(self) -> None:
        """Wait for one result; raise :class:`GeneratorFailed` for an error or a dead worker."""
        try:
            task, payload, seconds = self._outbox.get(timeout=_POLL)
        except queue.Empty:
            dead = [p for p in self._workers if not p.is_alive()]
            if dead:
                self._fail(f"generator process {dead[0].pid} {_death(dead[0].exitcode)}")
            return
        if isinstance(payload, str):
            self._fail(payload, task)
        self._done[task] = (payload, seconds)


class DaskSampleStream(OrderedStream):
    """:class:`SampleStream` on a Dask cluster: each task is one :func:`pde_data.distributed.compute_chunk`.

    The samples are those of the process backend and of a file (same ``family.generate`` call per
    task, checked by the pipeline's own check); the order and the bound are :class:`OrderedStream`'s:
    at most ``ahead`` tasks are submitted and not yet taken. A task that raises, or whose chunk killed
    :data:`~pde_data.distributed.ALLOWED_FAILURES` workers, or a lost scheduler raises
    :class:`GeneratorFailed` naming the samples; the other tasks are cancelled.

    Parameters
    ----------
    config
        A :class:`~pde_data.pipeline.ResolvedConfig`.
    tasks
        ``(key, indices)`` pairs, consumed lazily.
    cluster
        An open :class:`pde_data.distributed.Cluster` (the caller closes it); its workers' versions
        are checked here.
    ahead
        The most tasks submitted and not yet taken (>= 1).
    """

    def __init__(self, config: Any, tasks: Iterable[tuple[Hashable, Sequence[int]]], cluster: Any,
                 ahead: int = 4) -> None:
        super().__init__(tasks, ahead)
        from pde_data.family import get_family

        cluster.check_versions()
        self.config, self.client = config, cluster.client
        self._variables = get_family(config.problem)(config.settings).variables()
        self._threads = cluster.threads_by_host()
        self._run = uuid.uuid4().hex[:12]
        self._futures: dict[int, Any] = {}
        self._fill()

    def close(self) -> None:
        """Cancel the submitted tasks (idempotent)."""
        futures, self._futures = list(self._futures.values()), {}
        if futures and self.client is not None and self.client.status == "running":
            self.client.cancel(futures)

    def _submit(self, task: int, indices: list[int]) -> None:
        from pde_data.distributed import compute_chunk

        key = f"pdeop-stream-{self._run}-{task}"
        self._futures[task] = self.client.submit(compute_chunk, self.config, indices, "cpu", key, self._threads,
                                                 key=key, pure=False)

    def _result(self, task: int) -> tuple[dict[str, np.ndarray], float]:
        from distributed.scheduler import KilledWorker

        from pde_data.distributed import ALLOWED_FAILURES
        from pde_data.pipeline import _check_arrays as check_arrays  # the pipeline's own check of a family's output

        future = self._futures[task]
        try:
            result = future.result()
            check_arrays(self.config.problem, self._variables, result.indices, result.arrays)
        except KilledWorker:
            self._fail(f"the task killed {ALLOWED_FAILURES} Dask workers in a row (out of memory?)", task)
        except Exception as exc:  # noqa: BLE001  (a family's error, a lost scheduler: reported, the run stops)
            text = str(exc).splitlines()[0] if str(exc) else ""
            self._fail(f"{type(exc).__name__}: {text}", task)
        del self._futures[task]
        return result.arrays, result.timing.busy_seconds


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def _work(family_class: Any, config: Any, inbox: Any, outbox: Any) -> None:
    """A worker: compute the tasks of ``inbox`` until it holds None; report a failure and stop."""
    from pde_data.pipeline import _check_arrays as check_arrays  # the pipeline's own check of a family's output

    family = family_class(config.settings)
    variables = family.variables()
    while True:
        item = inbox.get()
        if item is None:
            return
        task, indices = item
        start = time.perf_counter()
        try:
            arrays = family.generate(indices, config.seed)
            check_arrays(config.problem, variables, indices, arrays)
        except Exception as exc:  # noqa: BLE001  (any failure is reported to the consumer, which stops)
            text = str(exc).splitlines()[0] if str(exc) else ""
            outbox.put((task, f"{type(exc).__name__}: {text}", 0.0))
            return
        outbox.put((task, {name: np.ascontiguousarray(values) for name, values in arrays.items()},
                    time.perf_counter() - start))


def as_dataset(config: Any, indices: Sequence[int], arrays: dict[str, np.ndarray]):
    """The samples ``indices`` (computed ``arrays``) as an in-memory ``xarray.Dataset`` laid out like a file.

    Parameters
    ----------
    config
        The :class:`~pde_data.pipeline.ResolvedConfig` they were computed with.
    indices
        Their global sample indices (the ``sample`` coordinate).
    arrays
        ``family.generate(indices, seed)``.

    Returns
    -------
    xarray.Dataset
        Variables, coordinates, static fields and root attributes as :func:`pde_data.storage.create`
        writes them (``complete`` = 1), readable by :func:`pde_data.loading.load_rows`.
    """
    import xarray as xr

    from pde_data.family import get_family
    from pde_data.storage import COMPLETE_MARKS

    layout = get_family(config.problem)(config.settings).layout()
    coords = {"sample": np.asarray(indices, dtype=np.int64)}
    coords.update({name: np.asarray(values) for name, values in layout.coords.items()})
    variables = {name: (layout.variables[name].dims, np.asarray(values, dtype=layout.variables[name].dtype))
                 for name, values in arrays.items()}
    variables.update({name: (tuple(dims), np.asarray(values)) for name, (dims, values) in layout.static.items()})
    variables[COMPLETE_MARKS] = (("sample",), np.ones(len(indices), dtype=np.uint8))
    attrs = {**dict(layout.attrs), "problem": config.problem, "preset": config.preset, "config": config.to_json(),
             "seed": config.seed, "complete": 1}
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def sample_file(path: Any, config: Any, log: Any = None):
    """A writer of ``config``'s samples into the dataset file ``path``, created (or reopened) for them.

    The file is an ordinary pdeop dataset of ``config.samples`` samples, exactly what
    ``generate_dataset(config, path)`` makes; samples written through the returned
    :class:`~pde_data.storage.DatasetWriter` are marked as they are stored, and the caller finishes
    the file once all are. An existing file made with the same configuration is reopened (resumed).

    Raises
    ------
    ConfigError
        If ``path`` cannot be written or holds another configuration's file.
    """
    from pathlib import Path

    from pde_data import storage
    from pde_data.family import get_family
    from pde_data.pipeline import _create_file, _plan_file  # the pipeline's own creation / resume check

    path = Path(path)
    storage.check_writable(path)
    family = get_family(config.problem)(config.settings)
    say = log or (lambda message: None)
    target, create, _ = _plan_file(path, config, family, False, None, None, say)
    if create:
        _create_file(target, path, config, family, say)
    return storage.DatasetWriter(target)
