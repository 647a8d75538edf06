"""Stability guard of the time integrators: non-finite values, the advective CFL number, and
quantities that the equation never lets grow.

An integrator calls :func:`check_rows` at every recorded snapshot (cheap: one pass over the
snapshot), and :func:`check_growth` when its equation has a quantity that must not grow (an
:class:`Invariant`, e.g. the total variation of viscous Burgers), and raises the
:class:`~solvers.errors.StabilityError` built by :func:`unstable` for the first failing sample,
naming the sample, the time and the remedy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from solvers.errors import StabilityError

#: Largest |dt * lambda| on the imaginary axis inside the stability region of classical RK4,
#: 2*sqrt(2); the ETDRK4 integrators of :mod:`solvers.etdrk4` use it as their advective limit.
RK4_IMAGINARY_LIMIT = 2.0 * np.sqrt(2.0)


@dataclass(frozen=True)
class Failure:
    """Why and when one sample became unstable; ``remedy`` replaces the default advice (dt, grid)."""

    row: int
    time: float
    reason: str
    remedy: str | None = None


class Invariant(ABC):
    """A quantity of each sample that the exact equation never lets grow beyond a known bound.

    Growth past :meth:`limit` means the discretisation no longer represents the equation (an
    unresolved shock or cascade feeding grid-scale oscillations), so the data would be garbage
    even though it stays finite and within the CFL bound.
    """

    #: what is measured, for messages (e.g. ``"the total variation"``)
    name: str
    #: what to change when the bound is broken
    remedy: str

    @abstractmethod
    def measure(self, fields: np.ndarray) -> np.ndarray:
        """The quantity of each sample of ``[batch, *grid]`` physical fields, shape ``[batch]``."""

    @abstractmethod
    def limit(self, initial: np.ndarray, time: float) -> np.ndarray:
        """Largest value allowed at ``time`` for samples whose quantity was ``initial`` at ``t = 0``."""


def check_rows(fields: np.ndarray, speeds: np.ndarray | None, dt: float, wavenumber: float,
               limit: float, time: float) -> list[Failure]:
    """Return a :class:`Failure` for every sample (first axis) that is not finite or breaks the CFL bound.

    Parameters
    ----------
    fields
        ``[batch, ...]`` values to test for NaN / inf.
    speeds
        ``[batch]`` largest advection speed of each sample (``max |u|``), or None to skip the CFL test.
    dt, wavenumber, limit
        The CFL number is ``dt * speed * wavenumber`` (``wavenumber`` is the largest resolved
        angular wavenumber, so this is the explicit scheme's ``|dt lambda|``); above ``limit`` fails.
    time
        Simulation time of the snapshot, for the message.
    """
    finite = np.isfinite(fields.reshape(fields.shape[0], -1)).all(axis=1)
    failures = []
    for row in np.flatnonzero(~finite):
        failures.append(Failure(int(row), time, "the solution is no longer finite"))
    if speeds is not None:
        cfl = dt * np.asarray(speeds) * wavenumber
        for row in np.flatnonzero(finite & ~(cfl <= limit)):
            failures.append(Failure(int(row), time,
                                    f"the CFL number dt*max|u|*k_max reached {cfl[row]:.3g} (limit {limit:.3g})"))
    return sorted(failures, key=lambda f: f.row)


def check_growth(invariant: Invariant, values: np.ndarray, initial: np.ndarray, time: float) -> list[Failure]:
    """Return a :class:`Failure` for every sample whose ``invariant`` exceeds its limit at ``time``.

    Parameters
    ----------
    invariant
        The quantity and its bound.
    values, initial
        ``[batch]`` values now and at ``t = 0``.
    time
        Time since the initial condition.
    """
    limit = invariant.limit(initial, time)
    return [Failure(int(row), time, f"{invariant.name} grew from {initial[row]:.4g} to {values[row]:.4g} "
                                    f"(at most {limit[row]:.4g} for the exact equation)", invariant.remedy)
            for row in np.flatnonzero(~(values <= limit))]


def unstable(failure: Failure, labels: Sequence[int] | None, dt: float, resolution: int) -> StabilityError:
    """Build the error for ``failure``; ``labels[row]`` is the sample's global index."""
    label = labels[failure.row] if labels is not None else failure.row
    remedy = failure.remedy or f"use a smaller dt (now {dt:g}) or a finer internal_resolution (now {resolution})"
    return StabilityError(f"sample {label} became unstable by t = {failure.time:g}: {failure.reason}; {remedy}")


def first_failure(failures: Sequence[Failure]) -> Failure | None:
    """The failure of the lowest row, earliest time first (a deterministic choice to report)."""
    return min(failures, key=lambda f: (f.row, f.time)) if failures else None
