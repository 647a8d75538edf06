"""3D steady convection–diffusion ``-eps Laplace(u) + v(x) . grad u = f`` on the unit cube, ``u = 0`` on the boundary.

The velocity varies per sample: ``v = curl psi``, divergence-free, from a vector potential whose
three components are independent Neumann GRFs (streams 0, 1, 2), scaled so that every sample's
root-mean-square speed is ``velocity``. The 7-point matrices are non-symmetric (central or upwind
differences for the convection term, as in the 2D
:mod:`~pde_data.families.convection_diffusion` family). ``benchmarks/skr_crossover.py`` measures
the methods on them as ``n`` grows; :meth:`ConvectionDiffusion3D.traits` carries the measured
crossover to ``solver: auto``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from pde_data.families.convection_diffusion import ConvectionDiffusion, ConvectionDiffusionConfig
from pde_data.family import register_family
from pde_data.finite_differences import convection_matrix, diffusion_matrix
from solvers.traits import ProblemTraits

#: ``solver: auto``: the fastest method measured up to each size (see :meth:`ConvectionDiffusion3D.traits`)
CROSSOVER = ((2744, "direct"), (float("inf"), "amg"))


@dataclasses.dataclass(frozen=True)
class ConvectionDiffusion3DConfig(ConvectionDiffusionConfig):
    """:class:`~pde_data.families.convection_diffusion.ConvectionDiffusionConfig` on a 3D grid.

    The default diffusivity 0.05 keeps the cell Peclet number ``|v| h / (2 eps)`` near 1 from
    24^3 grids up, so central differences stay close to monotone.
    """

    resolution: int = 32
    diffusivity: float = 0.05


@register_family("convection-diffusion3d")
class ConvectionDiffusion3D(ConvectionDiffusion):
    """-eps Laplace(u) + v . grad u = f on the unit cube with a random divergence-free v, u = 0 on the boundary."""

    config_class = ConvectionDiffusion3DConfig
    dim = 3
    inputs = {"vx": "velocity along x", "vy": "velocity along y", "vz": "velocity along z"}

    def sample_inputs(self, index: int, seed: int) -> dict[str, np.ndarray]:
        """``v = curl psi`` with ``psi``'s components from streams 0, 1, 2, scaled to RMS speed ``velocity``."""
        psi = [self.random_field(index, seed, stream) for stream in range(3)]
        grads = [np.gradient(component, self.h) for component in psi]  # grads[i][j] = d psi_i / d x_j
        v = np.stack([grads[2][1] - grads[1][2], grads[0][2] - grads[2][0], grads[1][0] - grads[0][1]])
        speed = np.sqrt(np.mean(np.sum(v**2, axis=0)))
        v = v * (self.config.velocity / speed if speed > 0 else 0.0)
        return {"vx": v[0], "vy": v[1], "vz": v[2]}

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """``eps`` times the 7-point Laplacian plus the convection matrix; ``b = f``."""
        c = self.config
        velocity = np.stack([inputs["vx"], inputs["vy"], inputs["vz"]])
        A = c.diffusivity * diffusion_matrix(np.ones(velocity.shape[1:]), self.h)
        A = (A + convection_matrix(velocity, self.h, c.scheme)).tocsr()
        return A, np.full(A.shape[0], c.forcing)

    def traits(self) -> ProblemTraits:
        """Non-symmetric; the matrix changes with every sample; the crossover measured by ``benchmarks/skr_crossover.py``.

        CPU time per system over 4-system datasets, rtol 1e-8, one thread
        (``benchmarks/results/skr_crossover.md``): sparse LU fastest at ``K = 16`` (2,744 unknowns);
        GMRES with a smoothed-aggregation V-cycle fastest from ``K = 24`` (10,648) to ``K = 40``
        (54,872), 3-5x ahead of SKR and ILU-GMRES, while LU's fill grows to 28 s per system.
        """
        return self.interior_traits(symmetric=False, definite=False, crossover=CROSSOVER)
