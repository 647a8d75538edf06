"""Recording trajectories of a batch of samples with a stability guard, on all cores.

An integrator that advances a spectral state subclasses :class:`Rollout` and supplies three
pieces (start, step, observe); :meth:`Rollout.rollout` splits the batch into cache-sized blocks,
advances each block in its own thread, stores every ``steps_per_record``-th state as a
subsampled physical snapshot and checks each snapshot (finite values, CFL number, and the growth
of the integrator's :class:`~solvers.stability.Invariant` when it has one).
"""

from __future__ import annotations

import dataclasses
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

from solvers.batching import available_cores, blocks, fft_workers, run_blocks
from solvers.stability import Failure, Invariant, check_growth, check_rows, first_failure, unstable

#: steps advanced between two looks at the stop flag (set by a failure or an interruption)
_STEPS_PER_CHECK = 128


class Rollout(ABC):
    """Base class of the batched spectral integrators (see the module docstring).

    Subclasses set ``dt``, ``cfl_limit``, ``cutoff_wavenumber`` (largest resolved angular
    wavenumber, for the CFL number), ``grid_points`` (for error messages) and
    ``bytes_per_sample`` (working memory of one sample in a step), and may set ``invariant``
    (a quantity the equation never lets grow past its bound, checked at every snapshot).
    """

    dt: float
    cfl_limit: float
    cutoff_wavenumber: float
    grid_points: int
    bytes_per_sample: int
    invariant: Invariant | None = None

    @abstractmethod
    def start(self, initial: np.ndarray, rows: slice) -> np.ndarray:
        """Turn initial physical fields (the rows ``rows`` of the batch) into the state."""

    @abstractmethod
    def advance(self, state: np.ndarray, steps: int, rows: slice | None = None, workers: int = 1) -> None:
        """Advance ``state`` (rows ``rows`` of the batch) by ``steps`` steps in place."""

    @abstractmethod
    def observe(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Physical fields ``[b, *grid]`` and the largest advection speed ``[b]`` of each sample."""

    def rollout(self, initial: np.ndarray, steps_per_record: int, records: int, warmup_steps: int = 0,
                stride: int = 1, labels: Sequence[int] | None = None, out_dtype: type = np.float32,
                threads: int | None = None, progress: Callable[[float], None] | None = None) -> np.ndarray:
        """Integrate a batch of initial fields and return the recorded snapshots.

        Parameters
        ----------
        initial
            ``[batch, *grid]`` initial physical fields.
        steps_per_record
            Steps between two recorded snapshots.
        records
            Snapshots after the first one; the result holds ``records + 1``.
        warmup_steps
            Steps taken and discarded before the first snapshot.
        stride
            Keep every ``stride``-th grid point along each axis.
        labels
            Global sample indices for error messages (default: row numbers).
        out_dtype
            dtype of the snapshots (states are float64).
        threads
            Cores to use (default: all).
        progress
            Called with the fraction of the work done (0 to 1), from any thread (one at a time).

        Returns
        -------
        numpy.ndarray
            ``[batch, records + 1, *grid // stride]``; snapshot ``r`` is taken after
            ``warmup_steps + r * steps_per_record`` steps.

        Raises
        ------
        StabilityError
            When a snapshot is not finite, its CFL number ``dt * max speed * cutoff_wavenumber``
            exceeds ``cfl_limit``, or ``invariant`` grew past its limit; the message names the
            sample (``labels``; the lowest row among those found before the other blocks stopped),
            the time since the initial condition and the remedy. A failure or a Ctrl-C stops all blocks within ``_STEPS_PER_CHECK`` steps.
        """
        initial = np.asarray(initial, dtype=np.float64)
        batch, grid = initial.shape[0], initial.shape[1:]
        keep = (slice(None),) + tuple(slice(None, None, stride) for _ in grid)
        out = np.empty((batch, records + 1) + tuple(n // stride for n in grid), dtype=out_dtype)
        threads = threads or available_cores()
        parts = blocks(batch, self.bytes_per_sample, threads=threads)
        workers = fft_workers(parts, self.bytes_per_sample, threads)
        done = [0]
        lock = threading.Lock()
        stop = threading.Event()

        def report(samples: int) -> None:
            if progress is not None:
                with lock:
                    done[0] += samples
                    progress(done[0] / (batch * (records + 1)))

        def advance(state: np.ndarray, steps: int, rows: slice) -> bool:
            for start in range(0, steps, _STEPS_PER_CHECK):
                if stop.is_set():
                    return False
                self.advance(state, min(_STEPS_PER_CHECK, steps - start), rows, workers)
            return not stop.is_set()

        def run(rows: slice) -> Failure | None:
            state = self.start(initial[rows], rows)
            reference = self.invariant.measure(self.observe(state)[0]) if self.invariant is not None else None
            if not advance(state, warmup_steps, rows):
                return None
            for r in range(records + 1):
                if r and not advance(state, steps_per_record, rows):
                    return None
                fields, speeds = self.observe(state)
                time = (warmup_steps + r * steps_per_record) * self.dt
                failures = check_rows(fields, speeds, self.dt, self.cutoff_wavenumber, self.cfl_limit, time)
                if reference is not None and not failures:
                    failures = check_growth(self.invariant, self.invariant.measure(fields), reference, time)
                if failures:
                    stop.set()
                    return dataclasses.replace(failures[0], row=failures[0].row + rows.start)
                out[rows, r] = fields[keep]
                report(rows.stop - rows.start)
            return None

        def quiet_run(rows: slice) -> Failure | None:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported as a Failure
                return run(rows)

        tasks = [lambda p=p: quiet_run(p) for p in parts]
        failure = first_failure([f for f in run_blocks(tasks, threads, on_interrupt=stop.set) if f])
        if failure is not None:
            raise unstable(failure, labels, self.dt, self.grid_points)
        return out
