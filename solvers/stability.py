"""Stability guard of the time integrators: non-finite values and the advective CFL number.

An integrator calls :func:`check_rows` at every recorded snapshot (cheap: one pass over the
snapshot) and raises the :class:`~solvers.errors.StabilityError` built by :func:`unstable` for the
first failing sample, naming the sample, the time and the remedy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from solvers.errors import StabilityError

#: Largest |dt * lambda| on the imaginary axis inside the stability region of classical RK4,
#: 2*sqrt(2); the ETDRK4 integrators of :mod:`solvers.etdrk4` use it as their advective limit.
RK4_IMAGINARY_LIMIT = 2.0 * np.sqrt(2.0)


@dataclass(frozen=True)
class Failure:
    """Why and when one sample became unstable."""

    row: int
    time: float
    reason: str


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


def unstable(failure: Failure, labels: Sequence[int] | None, dt: float, resolution: int) -> StabilityError:
    """Build the error for ``failure``; ``labels[row]`` is the sample's global index."""
    label = labels[failure.row] if labels is not None else failure.row
    return StabilityError(
        f"sample {label} became unstable by t = {failure.time:g}: {failure.reason}; "
        f"use a smaller dt (now {dt:g}) or a finer internal_resolution (now {resolution})"
    )


def first_failure(failures: Sequence[Failure]) -> Failure | None:
    """The failure of the lowest row, earliest time first (a deterministic choice to report)."""
    return min(failures, key=lambda f: (f.row, f.time)) if failures else None
