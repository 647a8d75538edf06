"""Where a generation run's time went: when each chunk ran on which worker, and what the client did.

A runner (:mod:`pde_data.chunking`, :mod:`pde_data.distributed`) records one :class:`ChunkTiming` per
chunk: the wall-clock interval during which the chunk computed on its worker, the CPU seconds the
worker spent in it, and the client's seconds spent taking the result in (fetching it, checking and
writing it: the pipeline's one writer). :func:`account` turns them into the numbers that tell a
run that scales from one that does not:

* ``concurrency`` — the busy workers' average count while any worker is busy (1 … N);
* ``overlap`` — the fraction of that time during which at least two workers are busy;
* ``utilisation`` — the workers' busy seconds over N × the run's wall-clock time;
* ``serial_s`` — the run's wall-clock seconds during which no worker computes: setting up (cluster
  connection, version checks, planning), gaps where every worker waits for the client, and the tail
  after the last chunk (the last write, marking the file complete);
* ``cpu_share`` — CPU seconds over busy seconds: the fraction of a core a running chunk got (below 1:
  the worker waited for a core — other processes on the machine, or threads oversubscribing it);
* ``cores_used`` — CPU seconds over the run's wall-clock seconds: the cores the run got in all. When
  N workers get no more than one worker did, the machine, not the run, is the limit (on Linux with
  ``sched_autogroup`` every session shares the cores equally, however many processes it runs).

Clocks are ``time.time()`` of each process: comparable on one machine; across machines only up to
their clocks' offset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class ChunkTiming:
    """One chunk's run: on which worker, when (``time.time()`` seconds), and the client's share."""

    worker: str
    samples: int
    started: float
    finished: float
    cpu_seconds: float
    client_seconds: float = 0.0

    @property
    def busy_seconds(self) -> float:
        """Wall-clock seconds the chunk computed on its worker."""
        return max(0.0, self.finished - self.started)


def account(timings: Sequence[ChunkTiming], wall_start: float, wall_end: float,
            workers: int | None = None) -> dict[str, Any]:
    """Summarise a run's chunk timings (see the module docstring for each number).

    Parameters
    ----------
    timings
        One per chunk computed (any order).
    wall_start, wall_end
        The run's start and end, ``time.time()`` of the client.
    workers
        Workers available to the run (default: those that computed a chunk).

    Returns
    -------
    dict
        ``wall_s``, ``workers``, ``chunks``, ``samples``, ``busy_s`` (all workers' busy seconds), ``busy_by_worker_s``,
        ``any_busy_s`` (the union of busy intervals), ``concurrency``, ``overlap``, ``utilisation``,
        ``serial_s`` (of which ``setup_s`` before the first chunk starts and ``tail_s`` after the last
        one ends), ``client_s`` (the client's seconds taking results in, all of them; part of it
        overlaps the workers' work), ``cpu_s``, ``cpu_by_worker_s``, ``cpu_share``, ``cores_used``.
    """
    wall = max(0.0, wall_end - wall_start)
    by_worker: dict[str, float] = {}
    cpu_by_worker: dict[str, float] = {}
    for t in timings:
        by_worker[t.worker] = by_worker.get(t.worker, 0.0) + t.busy_seconds
        cpu_by_worker[t.worker] = cpu_by_worker.get(t.worker, 0.0) + t.cpu_seconds
    count = workers if workers is not None else len(by_worker)
    busy = sum(by_worker.values())
    first = min((t.started for t in timings), default=wall_end)
    last = max((t.finished for t in timings), default=wall_end)
    levels = _busy_levels([(max(t.started, wall_start), min(t.finished, wall_end)) for t in timings])
    any_busy = sum(length for level, length in levels if level >= 1)
    two_busy = sum(length for level, length in levels if level >= 2)
    cpu = sum(t.cpu_seconds for t in timings)
    return {
        "wall_s": wall, "workers": count, "chunks": len(timings), "samples": sum(t.samples for t in timings),
        "busy_s": busy,
        "busy_by_worker_s": dict(sorted(by_worker.items())), "any_busy_s": any_busy,
        "concurrency": busy / any_busy if any_busy > 0 else 0.0,
        "overlap": two_busy / any_busy if any_busy > 0 else 0.0,
        "utilisation": busy / (count * wall) if count and wall > 0 else 0.0,
        "serial_s": wall - any_busy, "setup_s": max(0.0, first - wall_start), "tail_s": max(0.0, wall_end - last),
        "client_s": sum(t.client_seconds for t in timings),
        "cpu_s": cpu, "cpu_by_worker_s": dict(sorted(cpu_by_worker.items())),
        "cpu_share": cpu / busy if busy > 0 else 0.0, "cores_used": cpu / wall if wall > 0 else 0.0,
    }


def full_core_seconds(summary: dict[str, Any]) -> float:
    """The run's wall-clock seconds had every worker had a core to itself: a MODEL, not a measurement.

    The serial seconds plus the busiest worker's CPU seconds (:func:`account`'s ``serial_s`` and
    ``cpu_by_worker_s``). It removes the time the workers waited for a core (other processes on a
    shared machine) and keeps everything else, including any slowdown of the arithmetic itself when
    workers share caches or memory bandwidth (it shows in their CPU seconds). It assumes the chunks
    compute without waiting on anything but a core, as the generation families do.
    """
    return float(summary["serial_s"]) + max(summary["cpu_by_worker_s"].values(), default=0.0)


def _busy_levels(intervals: Sequence[tuple[float, float]]) -> list[tuple[int, float]]:
    """(number of intervals covering a stretch, its length) for each stretch between interval ends."""
    events = sorted([(a, 1) for a, b in intervals if b > a] + [(b, -1) for a, b in intervals if b > a])
    levels: list[tuple[int, float]] = []
    level, previous = 0, None
    for at, step in events:
        if previous is not None and at > previous:
            levels.append((level, at - previous))
        level, previous = level + step, at
    return levels
