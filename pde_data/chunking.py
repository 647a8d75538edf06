"""How the samples still to compute are cut into chunks, and where the chunks run.

:func:`plan_chunks` cuts the family's solve order into chunks of whole sequences
(:meth:`~pde_data.family.Family.sequence_length`), leaving out what the file already holds. A runner
computes the chunks and yields their arrays to the pipeline's writer: :class:`LocalRunner` in this
process, one chunk after another (the path without ``--workers`` / ``--scheduler``), or
:class:`pde_data.distributed.DaskRunner` on a Dask cluster, chunks in parallel and results in order
of completion. Both give the same arrays for the same chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from pde_data.chunk_timeline import ChunkTiming
from pde_data.family import Family

#: a chunk's global sample indices and the arrays ``family.generate`` returned for them
ChunkArrays = tuple[list[int], dict[str, np.ndarray]]


def plan_chunks(order: np.ndarray, done: np.ndarray, chunk: int, sequence: int = 1) -> list[list[int]]:
    """The chunks still to compute: whole sequences of the solve order, about ``chunk`` samples each.

    Parameters
    ----------
    order
        The solve order (a permutation of the sample indices).
    done
        Boolean mask of the samples already stored.
    chunk
        Samples per chunk wanted; rounded to a whole number of sequences (at least one).
    sequence
        Sequence length: ``order[k * sequence : (k + 1) * sequence]`` is computed from a fresh solver
        state, so it is never split between chunks.

    Returns
    -------
    list of list of int
        In solve order. A sequence with every sample stored is left out; one with any sample missing
        is computed whole (the pipeline writes whole sequences, so a stored sample of a missing
        sequence occurs only in a file written by other code; rewriting it stores the same values).
    """
    order = np.asarray(order, dtype=np.int64)
    sequence = max(1, int(sequence))
    per_chunk = max(1, int(chunk) // sequence)
    pending = [order[k:k + sequence] for k in range(0, order.size, sequence)]
    pending = [s for s in pending if not done[s].all()]
    return [[int(i) for s in pending[k:k + per_chunk] for i in s] for k in range(0, len(pending), per_chunk)]


class ChunkRunner(Protocol):
    """Computes chunks of samples somewhere and yields their arrays (in any order)."""

    def run(self, chunks: Sequence[list[int]], advance: Callable[[float], None]) -> Iterator[ChunkArrays]:
        """Compute ``chunks``; ``advance(samples)`` reports the samples done so far (fractions included)."""
        ...

    def summary(self) -> dict[str, Any]:
        """The family's statistics over the chunks computed (for the run summary)."""
        ...

    def provenance(self) -> dict[str, Any]:
        """How the chunks are computed (stored in the file; never anything that changes values)."""
        ...

    def timings(self) -> list[ChunkTiming]:
        """When each chunk ran where, and the client's seconds taking it in (:mod:`pde_data.chunk_timeline`)."""
        ...


class LocalRunner:
    """Computes chunks one after another in this process with the pipeline's family object."""

    def __init__(self, family: Family, seed: int) -> None:
        self.family, self.seed = family, seed
        self._timings: list[ChunkTiming] = []

    def run(self, chunks: Sequence[list[int]], advance: Callable[[float], None]) -> Iterator[ChunkArrays]:
        """Yield each chunk's arrays after computing it; the family reports progress within a chunk."""
        finished = 0
        try:
            for indices in chunks:
                self.family.set_progress_callback(lambda f, b=finished, n=len(indices): advance(b + f * n))
                started, cpu = time.time(), time.process_time()
                arrays = self.family.generate(indices, self.seed)
                ended, cpu = time.time(), time.process_time() - cpu
                finished += len(indices)
                advance(finished)
                handed = time.perf_counter()
                yield indices, arrays
                self._timings.append(ChunkTiming("local", len(indices), started, ended, cpu,
                                                 time.perf_counter() - handed))
        finally:
            self.family.set_progress_callback(None)

    def timings(self) -> list[ChunkTiming]:
        """One :class:`~pde_data.chunk_timeline.ChunkTiming` per chunk computed and taken in so far."""
        return list(self._timings)

    def summary(self) -> dict[str, Any]:
        """The family's own summary."""
        return self.family.summary()

    def provenance(self) -> dict[str, Any]:
        """One process, no scheduler."""
        return {"scheduler": "none", "workers": 1}


@contextmanager
def open_runner(family: Family, config: Any, device: str = "cpu", workers: int | None = None,
                scheduler: str | None = None, timeout: float | None = None) -> Iterator[ChunkRunner]:
    """The runner of a generation run: :class:`LocalRunner`, or a Dask runner with ``workers`` / ``scheduler``.

    Raises
    ------
    ConfigError
        From :class:`pde_data.distributed.Cluster`: no scheduler at the address, no workers,
        workers with other versions or without the device.
    """
    if workers is None and scheduler is None:
        yield LocalRunner(family, config.seed)
        return
    from pde_data.distributed import DEFAULT_TIMEOUT, Cluster, DaskRunner

    with Cluster(workers, scheduler, DEFAULT_TIMEOUT if timeout is None else timeout) as cluster:
        runner = DaskRunner(cluster, config, device)
        runner.check_workers()
        yield runner
