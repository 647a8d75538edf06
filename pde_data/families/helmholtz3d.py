"""3D Helmholtz ``-Laplace(u) - k(x)^2 (1 + i sigma(x)) u = f`` on the unit cube with an absorbing layer.

The 2D :mod:`~pde_data.families.helmholtz` family's absorbing (impedance) problem on a ``K^3``
vertex grid, with a damping (sponge) layer added inside the boundary: ``sigma`` rises
quadratically from 0 at depth ``layer_width`` to ``layer_strength`` on each face (summed over
the faces near an edge or corner), so outgoing waves decay before they meet the first-order
impedance condition ``du/dn - i k u = 0``, which alone reflects oblique waves. The wavenumber
field ``k = k0 (1 + contrast tanh(g_1))`` and the source ``f = source_scale g_2`` vary per sample.
The complex symmetric system (``K^3`` unknowns, indefinite) is solved in complex arithmetic — in
its real form (as the 2D family solves it) ILU-preconditioned GMRES stagnates at ``k = 8 .. 16``
on 20^3 grids, while the complex iteration converges in 70-170 steps; ``u`` and ``u_imag`` are
stored.

These are the systems where sparse LU's fill (``O(n^{4/3})`` memory in 3D) and multigrid's
weakness on indefinite operators bite: ``benchmarks/skr_crossover.py`` measures the methods as
``n`` grows, and :meth:`Helmholtz3D.traits` carries the measured crossover to ``solver: auto``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from pde_data.config import check, check_positive_finite
from pde_data.families.helmholtz import Helmholtz, HelmholtzConfig
from pde_data.family import Variable, register_family
from pde_data.finite_differences import helmholtz_matrix, impedance_rhs
from solvers.traits import ProblemTraits

#: ``solver: auto``: the fastest method measured up to each size (see :meth:`Helmholtz3D.traits`)
CROSSOVER = ((2744, "direct"), (110_592, "amg"), (float("inf"), "gmres"))


@dataclasses.dataclass(frozen=True)
class Helmholtz3DConfig(HelmholtzConfig):
    """:class:`~pde_data.families.helmholtz.HelmholtzConfig` on a 3D grid, with the damping layer.

    Attributes
    ----------
    layer_width
        Depth of the damping layer, as a fraction of the side (0: no layer).
    layer_strength
        ``sigma`` on a face (the layer's largest damping ``k^2 -> k^2 (1 + i sigma)``).
    """

    resolution: int = 32
    layer_width: float = 0.15
    layer_strength: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.boundary == "impedance", f"helmholtz3d has an absorbing (impedance) boundary; boundary must be "
                                            f"'impedance' (got {self.boundary!r})")
        check(0.0 <= self.layer_width < 0.5, f"layer_width must be a number in [0, 0.5) (got {self.layer_width})")
        check_positive_finite(layer_strength=self.layer_strength)


def damping_layer(resolution: int, dim: int, width: float, strength: float) -> np.ndarray:
    """``sigma`` on the full vertex grid: ``strength * sum_j (max(0, width - dist_j) / width)^2``.

    ``dist_j`` is a node's distance to the nearer face normal to axis ``j``; zero inside the
    layer's inner boundary, ``strength`` on a face (more at edges and corners).
    """
    line = np.linspace(0.0, 1.0, resolution)
    depth = np.maximum(0.0, width - np.minimum(line, 1.0 - line)) / width if width > 0 else np.zeros(resolution)
    sigma = np.zeros((resolution,) * dim)
    for axis in range(dim):
        shape = [1] * dim
        shape[axis] = resolution
        sigma = sigma + (strength * depth**2).reshape(shape)
    return sigma


@register_family("helmholtz3d")
class Helmholtz3D(Helmholtz):
    """-Laplace(u) - k(x)^2 (1 + i sigma) u = f on the unit cube, damping layer and impedance boundary."""

    config_class = Helmholtz3DConfig
    default_preset = "absorbing"
    dim = 3

    def absorption(self) -> np.ndarray:
        """The damping profile ``sigma`` on the full grid (the same for every sample)."""
        c = self.config
        return damping_layer(c.resolution, self.dim, c.layer_width, c.layer_strength)

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The complex symmetric impedance system with the damping layer, every node an unknown."""
        A = helmholtz_matrix(inputs["k"] ** 2, self.h, "impedance", absorption=self.absorption())
        return A, impedance_rhs(inputs["f"], None, self.h)

    def solution_fields(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Real and imaginary parts of the complex solution on every node."""
        z = np.asarray(x).reshape((self.config.resolution,) * self.dim)
        return {"u": z.real.copy(), "u_imag": z.imag.copy()}

    def solution_vector(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        """The complex unknowns from stored ``u`` and ``u_imag``, in the order of :meth:`assemble`."""
        return (np.asarray(fields["u"], dtype=np.float64) + 1j * np.asarray(fields["u_imag"], dtype=np.float64)).ravel()

    def solution_variables(self) -> dict[str, Variable]:
        """``u`` (real part) and ``u_imag`` on every node."""
        dims = ("sample",) + self.grid_dims
        return {"u": Variable(dims, self.config.dtype, {"long_name": "real part of the solution"}),
                "u_imag": Variable(dims, self.config.dtype, {"long_name": "imaginary part of the solution"})}

    def traits(self) -> ProblemTraits:
        """Complex symmetric (not Hermitian), indefinite; ``K^3`` complex unknowns; the measured crossover.

        From ``benchmarks/skr_crossover.py`` (CPU time per system over 2-4-system datasets, rtol 1e-8,
        one thread; ``benchmarks/results/skr_crossover.md``): sparse LU fastest up to ``K = 14`` (2,744
        unknowns, quick run at ``wavenumber=5``), GMRES with a smoothed-aggregation V-cycle fastest from
        ``K = 24`` to ``K = 48`` (110,592 unknowns; the preset ``k = 20``). At ``K = 64`` that V-cycle
        stops being a reliable preconditioner for the indefinite operator (GMRES stagnated at a relative
        residual of 1e-2 on one of three systems, and LU, the fallback, does not fit in 6 GB), while
        ILU-preconditioned GMRES converged on every system, so larger grids get ``gmres``.
        """
        return ProblemTraits(dim=self.dim, n_unknowns=self.config.resolution**self.dim, symmetric=False,
                             definite=False, crossover=CROSSOVER)

    def attrs(self) -> dict[str, object]:
        """Boundary and damping layer, as root attributes."""
        c = self.config
        return {"boundary": c.boundary, "layer_width": c.layer_width, "layer_strength": c.layer_strength}
