"""Splitting a batch of independent samples into cache-sized blocks advanced on all cores.

The spectral integrators advance every block of samples in its own thread. NumPy's element-wise
loops and FFTs release the GIL, so blocks run in parallel; each block is small enough that its
working arrays stay in cache. Which block a sample lands in never changes its result (see
:mod:`solvers.spectral`), so the split is free to depend on the batch size and the core count.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def available_cores() -> int:
    """Number of CPU cores this process may run on (``PDEOP_THREADS`` overrides it)."""
    override = os.environ.get("PDEOP_THREADS", "").strip()
    if override.isdigit() and int(override) > 0:
        return int(override)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: a block smaller than this keeps NumPy's small-array calls (which hold the GIL) busy and gains
#: nothing from a thread of its own
MIN_BLOCK_BYTES = 256 << 10
#: a lone block at least this large gets the spare cores inside its FFTs
MIN_THREADED_FFT_BYTES = 2 << 20


def blocks(batch: int, bytes_per_sample: int, threads: int | None = None,
           cache_bytes: int = 2 << 20, min_bytes: int = MIN_BLOCK_BYTES) -> list[slice]:
    """Split ``range(batch)`` into contiguous blocks for :func:`run_blocks`.

    Parameters
    ----------
    batch
        Number of samples.
    bytes_per_sample
        Working memory one sample needs inside a step (all buffers together).
    threads
        Cores to use (default :func:`available_cores`).
    cache_bytes
        Target working set of one block; blocks are not made larger than this unless a single
        sample needs more.
    min_bytes
        Blocks are not made smaller than this (when the batch allows) so that each thread has
        enough work per NumPy call.

    Returns
    -------
    list of slice
        Up to ``threads`` blocks (more when they would not fit ``cache_bytes``; then a multiple
        of ``threads``) of nearly equal size.
    """
    threads = threads or available_cores()
    if batch <= 0:
        return []
    bytes_per_sample = max(1, bytes_per_sample)
    per_cache = max(1, cache_bytes // bytes_per_sample)
    by_work = max(1, batch * bytes_per_sample // max(1, min_bytes))
    count = max(min(batch, threads, by_work), -(-batch // per_cache))
    if count > threads:  # round up to a multiple of the thread count so all cores finish together
        count = min(batch, -(-count // threads) * threads)
    edges = [round(i * batch / count) for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def fft_workers(parts: list[slice], bytes_per_sample: int, threads: int | None = None) -> int:
    """Threads each block may use inside its FFTs: the cores the blocks leave idle, for large blocks only."""
    threads = threads or available_cores()
    largest = max((p.stop - p.start for p in parts), default=0)
    if len(parts) >= threads or largest * bytes_per_sample < MIN_THREADED_FFT_BYTES:
        return 1
    return max(1, threads // len(parts))


def run_blocks(tasks: Sequence[Callable[[], T]], threads: int | None = None,
               on_interrupt: Callable[[], None] | None = None) -> list[T]:
    """Run the callables on up to ``threads`` cores and return their results in order.

    Exceptions raised by a task propagate (the first one in task order) after all tasks ended.
    If the waiting thread is interrupted (Ctrl-C), ``on_interrupt`` is called so that the tasks
    can stop early, and the interruption propagates.
    """
    threads = min(threads or available_cores(), len(tasks))
    if threads <= 1:
        return [task() for task in tasks]
    futures = [_pool(threads).submit(task) for task in tasks]
    try:
        errors = [f.exception() for f in futures]
    except BaseException:
        if on_interrupt is not None:
            on_interrupt()
        raise
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


def _pool(threads: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < threads:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pdeop-block")
            _POOL_SIZE = threads
        return _POOL
