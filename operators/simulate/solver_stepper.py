"""The pdeop solver of a time-dependent family as a stepper on physical states.

:class:`SolverStepper` advances states ``[B, *grid]`` (torch, any device) by ``interval`` time
units with the family's own integrator in float64 (what the family's
:meth:`~pde_data.grid_settings.RecordedGridFamily.stepper` builds: :mod:`solvers.navier_stokes`,
:mod:`solvers.etdrk4`), so user code can call it exactly like an
:class:`~operators.simulate.operator_stepper.OperatorStepper`. The integrator runs on the state's
grid refined ``refine`` times (spectral interpolation up, every ``refine``-th point back):
``refine`` equal to the dataset's ``internal_resolution / resolution`` repeats the data generation
except for the high modes the stored initial state no longer holds.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from pde_data.family import get_family
from pde_data.grid_settings import time_stepping_problems
from solvers.errors import ConfigError


@dataclasses.dataclass
class SolverStepper:
    """Advance physical states by ``interval`` with a family's pdeop integrator.

    Parameters
    ----------
    problem
        A family that steps in time (:func:`~pde_data.grid_settings.time_stepping_problems`).
    settings
        The family's config dataclass (viscosity, forcing amplitude, ``dt``, scheme, lengths).
    interval
        Physical time between two states (a whole multiple of ``settings.dt``).
    lengths
        Per-sample domain lengths ``[B]`` (Kuramoto-Sivashinsky with varying ``L``), else None.
    refine
        Integration grid = state grid times ``refine`` along each axis.
    """

    problem: str
    settings: Any
    interval: float
    lengths: np.ndarray | None = None
    refine: int = 1
    history: int = dataclasses.field(default=1, init=False)
    step: int = dataclasses.field(default=1, init=False)

    def __post_init__(self) -> None:
        problems = time_stepping_problems()
        if self.problem not in problems:
            raise ConfigError(f"no pdeop time stepper for problem '{self.problem}' (expected one of "
                              f"{', '.join(problems)})")
        self.family = get_family(self.problem)(self.settings)
        substeps = self.interval / self.settings.dt
        if not (self.interval > 0 and abs(substeps - round(substeps)) <= 1e-9 * max(1.0, substeps)):
            raise ConfigError(f"the interval {self.interval:g} must be a positive whole multiple of the solver's "
                              f"dt = {self.settings.dt:g}")
        if not (isinstance(self.refine, int) and self.refine >= 1):
            raise ConfigError(f"refine must be an integer >= 1 (got {self.refine!r})")
        self.substeps = int(round(substeps))
        self._cache: dict[int, Any] = {}

    def accepts(self, grid: tuple[int, ...]) -> str | None:
        """Why states on ``grid`` cannot be integrated, or None (spectral: even sizes, right axes)."""
        axes = len(self.family.space_dims)
        if len(grid) != axes or any(n % 2 or n < 4 for n in grid) or len(set(grid)) != 1:
            return f"the {self.problem} solver needs {axes} equal even spatial sizes >= 4 (got {'x'.join(map(str, grid))})"
        return None

    def advance(self, window: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The state ``interval`` after the last one of ``window``.

        Parameters
        ----------
        window
            ``[b, history >= 1, *grid]`` physical states (only the last one is read).
        rows
            Rows of the simulated batch that ``window`` holds (selects per-sample lengths); None: all.

        Returns
        -------
        torch.Tensor
            ``[b, 1, *grid]`` on ``window``'s device and dtype.
        """
        last = window[:, -1].detach().to("cpu", torch.float64).numpy()
        grid = last.shape[1:]
        problem = self.accepts(grid)
        if problem:
            raise ConfigError(problem)
        fine = _resample(last, grid[0] * self.refine)
        integrator = self._integrator(grid[0] * self.refine, rows)
        state = integrator.start(fine)
        integrator.advance(state, self.substeps, None, 1)
        fields, _ = integrator.observe(state)
        coarse = fields[(slice(None),) + (slice(None, None, self.refine),) * len(grid)]
        return torch.as_tensor(np.ascontiguousarray(coarse)).to(window.device, window.dtype).unsqueeze(1)

    def _integrator(self, n: int, rows: torch.Tensor | None) -> Any:
        """The family's float64 integrator on ``n`` points (cached unless per-sample lengths are in use)."""
        if self.lengths is not None:  # per-sample coefficients: not cached
            lengths = self.lengths if rows is None else self.lengths[np.asarray(rows.cpu())]
            return self.family.stepper(n, lengths)
        if n not in self._cache:
            self._cache[n] = self.family.stepper(n)
        return self._cache[n]


def _resample(fields: np.ndarray, n: int) -> np.ndarray:
    """Periodic ``[b, m(, m)]`` fields on ``n`` points per axis by zero-padding their spectrum (``n >= m``)."""
    m = fields.shape[-1]
    if n == m:
        return fields
    axes = tuple(range(1, fields.ndim))
    spectrum = np.fft.fftshift(np.fft.fftn(fields, axes=axes), axes=axes)
    pad = [(0, 0)] + [((n - m) // 2, (n - m) - (n - m) // 2)] * len(axes)
    if m % 2 == 0:  # split the Nyquist coefficient between +m/2 and -m/2 so the field stays real
        for axis in axes:
            index = [slice(None)] * fields.ndim
            index[axis] = 0
            spectrum[tuple(index)] *= 0.5
            spectrum = np.concatenate([spectrum, spectrum[tuple(index)][(slice(None),) * axis + (None,)]], axis=axis)
        pad = [(0, 0)] + [((n - m) // 2, (n - m) - (n - m) // 2 - 1)] * len(axes)
    padded = np.pad(spectrum, pad)
    return np.fft.ifftn(np.fft.ifftshift(padded, axes=axes), axes=axes).real * (n / m) ** len(axes)


def solver_from_dataset(attrs: Mapping[str, Any], time_subsample: int = 1, lengths: np.ndarray | None = None,
                        refine: int | None = None) -> SolverStepper:
    """The :class:`SolverStepper` of the family that wrote a dataset (its root attributes ``attrs``).

    ``interval`` is the stored spacing ``record_every * time_subsample``; ``refine`` defaults to the
    file's ``internal_resolution / resolution``.
    """
    from pde_data.config import from_mapping

    problem = str(attrs.get("problem", ""))
    if problem not in time_stepping_problems():
        raise ConfigError(f"the dataset holds '{problem}' data; simulation needs a time-dependent family "
                          f"({', '.join(time_stepping_problems())})")
    payload = json.loads(str(attrs["config"]))
    settings = from_mapping(get_family(problem).config_class, payload["settings"], where="dataset config.settings.")
    if refine is None:
        refine = settings.internal_resolution // settings.resolution
    return SolverStepper(problem, settings, settings.record_every * time_subsample, lengths, refine)
