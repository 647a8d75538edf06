"""Heat equation ``u_t = div(a grad u) + f`` on the unit square, ``u = 0`` on the boundary, implicit steps.

Each sample is a trajectory: a log-normal conductivity ``a = exp(log_scale * g_1)`` (stream 0) and an
initial condition ``u0 = ic_scale * g_2 * sin(pi x) sin(pi y)`` (stream 1, zero on the boundary).
Every step solves ``(I + theta dt A) u^{n+1} = (I - (1 - theta) dt A) u^n + dt f`` with ``A`` the
face-averaged diffusion matrix: ``theta = 1`` (backward Euler, first order, L-stable) or
``theta = 1/2`` (Crank–Nicolson, second order). One trajectory is a sequence of systems with one
matrix and changing right-hand sides; the previous step is each solve's initial guess. Stored:
``a(sample, x, y)`` and ``u(sample, t, x, y)`` with ``t[0] = 0`` the initial condition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pde_data.config import check, check_finite, check_nonzero_finite, check_positive_finite
from pde_data.elliptic import EllipticConfig, EllipticFamily, System, SampleStats
from pde_data.family import Layout, Variable, register_family
from pde_data.finite_differences import diffusion_matrix, embed_interior, interior
from solvers.sequence import ProblemTraits

THETA = {"euler": 1.0, "crank-nicolson": 0.5}


@dataclasses.dataclass(frozen=True)
class HeatConfig(EllipticConfig):
    """Settings of the heat family (plus the common ones of :class:`~pde_data.elliptic.EllipticConfig`).

    Attributes
    ----------
    steps
        Implicit steps per trajectory (``steps + 1`` stored times).
    dt
        Time step.
    scheme
        ``euler`` (backward Euler) or ``crank-nicolson``.
    log_scale
        ``a = exp(log_scale * g_1)``.
    ic_scale
        Amplitude of the initial condition.
    forcing
        Constant source ``f``.
    """

    steps: int = 20
    dt: float = 0.005
    scheme: str = "euler"
    log_scale: float = 0.5
    ic_scale: float = 1.0
    forcing: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.steps >= 1, f"steps must be an integer >= 1 (got {self.steps})")
        check_positive_finite(dt=self.dt)
        check(self.scheme in THETA, f"scheme must be one of {', '.join(THETA)} (got {self.scheme!r})")
        check_finite(log_scale=self.log_scale)
        check_nonzero_finite(ic_scale=self.ic_scale)
        check_finite(forcing=self.forcing)


@register_family("heat")
class Heat(EllipticFamily):
    """u_t = div(a grad u) + f on the unit square, u = 0 on the boundary, implicit time steps."""

    config_class = HeatConfig
    default_preset = "default"
    inputs = {"a": "conductivity"}
    parameters = ("a", "u0")
    positive = ("a",)
    nonfinite_remedy = "lower log_scale (exp(log_scale * g) overflows or underflows)"

    def sample_inputs(self, index: int, seed: int) -> dict[str, np.ndarray]:
        """Conductivity ``a`` (stream 0) and initial condition ``u0`` (stream 1, not stored separately)."""
        c = self.config
        a = self.lognormal_field(index, seed, 0, c.log_scale)
        line = np.sin(np.pi * np.linspace(0.0, 1.0, c.resolution))
        window = np.multiply.outer(line, line)
        window[[0, -1], :] = window[:, [0, -1]] = 0.0  # exactly zero on the boundary
        return {"a": a, "u0": c.ic_scale * window * self.random_field(index, seed, 1)}

    def step_matrices(self, a: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """``(I + theta dt A, I - (1 - theta) dt A)``: left and right operators of one step."""
        c = self.config
        theta = THETA[c.scheme]
        A = diffusion_matrix(a, self.h)
        eye = sp.identity(A.shape[0], format="csr")
        return (eye + theta * c.dt * A).tocsr(), (eye - (1 - theta) * c.dt * A).tocsr()

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The first step's system (later right-hand sides depend on the solution)."""
        lhs, rhs = self.step_matrices(inputs["a"])
        u0 = interior(inputs["u0"]).ravel()
        return lhs, rhs @ u0 + self.config.dt * self.config.forcing

    def trajectory(self, index: int, a: np.ndarray, u0: np.ndarray, stats: SampleStats) -> np.ndarray:
        """Interior states ``(steps + 1, n)`` from ``u0`` (full grid) under conductivity ``a`` (full grid)."""
        c = self.config
        lhs, rhs = self.step_matrices(a)
        states = [interior(u0).ravel()]
        for step in range(1, c.steps + 1):
            b = rhs @ states[-1] + c.dt * c.forcing
            result = self.solve(index, lhs, b, x0=states[-1], step=step)
            stats.add(result)
            states.append(result.x)
        return np.asarray(states)

    def solve_sample(self, index: int, inputs: dict[str, np.ndarray], stats: SampleStats) -> dict[str, np.ndarray]:
        """The trajectory of sample ``index``, initial condition first."""
        states = self.trajectory(index, inputs["a"], inputs["u0"], stats)
        return {"u": embed_interior(states, self.config.resolution, self.dim)}

    def solution_vector(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        """Interior states ``(steps + 1, n)`` of a stored trajectory ``u(t, x, y)``."""
        u = np.asarray(fields["u"], dtype=np.float64)
        return u[(slice(None),) + (slice(1, -1),) * self.dim].reshape(u.shape[0], -1)

    def systems(self, indices: Sequence[int], seed: int) -> Iterator[System]:
        """One :class:`System` per time step of each trajectory in ``indices``.

        The right-hand side of step ``n`` depends on the state of step ``n - 1``; here those states
        come from a sparse LU of the trajectory's matrix, so the systems are those of a
        ``solver: direct`` run (an iterative run's right-hand sides differ at the tolerance level).
        """
        c = self.config
        for i in indices:
            inputs = self._checked_inputs(int(i), seed)
            features = np.concatenate(list(self.features(inputs).values()))
            lhs, rhs = self.step_matrices(inputs["a"])
            lu = spla.splu(lhs.tocsc())
            u = interior(inputs["u0"]).ravel()
            for step in range(1, c.steps + 1):
                b = rhs @ u + c.dt * c.forcing
                yield System(int(i), step, lhs, b, features)
                u = lu.solve(b)

    def layout(self) -> Layout:
        """As the base layout, with ``u`` over ``(sample, t, x, y)`` and the time coordinate ``t``."""
        base = super().layout()
        coords = {"t": self.config.dt * np.arange(self.config.steps + 1), **base.coords}
        return dataclasses.replace(base, coords=coords)

    def dimension_sizes(self) -> dict[str, int]:
        """The grid and ``steps + 1`` times."""
        return {"t": self.config.steps + 1, **super().dimension_sizes()}

    def working_memory(self, n_samples: int) -> tuple[int, int]:
        """The base estimate plus one trajectory's interior states and their embedding in the grid."""
        per_sample, fixed = super().working_memory(n_samples)
        c = self.config
        return per_sample, fixed + 2 * 8 * (c.steps + 1) * c.resolution**self.dim

    def solution_variables(self) -> dict[str, Variable]:
        """``u(sample, t, x, y)``, the initial condition at ``t[0]``."""
        return {"u": Variable(("sample", "t") + self.grid_dims, self.config.dtype,
                              {"long_name": "temperature; t[0] is the initial condition"})}

    def traits(self) -> ProblemTraits:
        """SPD; the matrix stays the same along a trajectory (only the right-hand side changes)."""
        return self.interior_traits(symmetric=True, definite=True, same_matrix=True)

    def attrs(self) -> dict[str, Any]:
        """Scheme, time step and source."""
        c = self.config
        return {"scheme": c.scheme, "dt": c.dt, "forcing": c.forcing}
