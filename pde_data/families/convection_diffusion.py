"""Steady convection–diffusion ``-eps Laplace(u) + v(x) . grad u = f`` on the unit square, ``u = 0`` on the boundary.

The velocity varies per sample: ``v = (d psi/dy, -d psi/dx)``, divergence-free, from a Neumann GRF
stream function ``psi`` (stream 0), scaled so that every sample's root-mean-square speed is
``velocity``. The matrices are non-symmetric: central differences (second order; oscillation-free
while the cell Péclet number ``|v| h / (2 eps)`` stays below 1) or upwind (first order, always an
M-matrix).

Resolution (:meth:`ConvectionDiffusion.check_settings`): with central differences a cell Péclet
number ``velocity h / (2 eps)`` above 1 at the root-mean-square speed means oscillating solutions over
much of the domain (the matrix loses its M-matrix sign pattern wherever the local speed is above
the mean), so such settings are refused naming the smallest ``resolution``; upwind differences are
oscillation-free on any grid.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from pde_data.config import check, check_nonzero_finite, check_positive_finite
from pde_data.elliptic import EllipticConfig, EllipticFamily
from pde_data.family import register_family
from pde_data.finite_differences import convection_matrix, diffusion_matrix, grid_spacing
from pde_data.grid_settings import safe_bound
from solvers.sequence import ProblemTraits


@dataclasses.dataclass(frozen=True)
class ConvectionDiffusionConfig(EllipticConfig):
    """Settings of the convection–diffusion family (plus those of :class:`~pde_data.elliptic.EllipticConfig`).

    Attributes
    ----------
    diffusivity
        ``eps``.
    velocity
        Root-mean-square speed of each sample's velocity field.
    scheme
        ``central`` or ``upwind`` differences for the convection term.
    alpha
        Smoothness of the stream function's GRF (default 3: one order smoother than the
        coefficient fields, so the velocity is continuous).
    forcing
        Constant right-hand side ``f``.
    """

    diffusivity: float = 0.02
    velocity: float = 1.0
    scheme: str = "central"
    alpha: float = 3.0
    forcing: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_finite(diffusivity=self.diffusivity)
        check(self.velocity >= 0 and math.isfinite(self.velocity),
              f"velocity must be a number >= 0 (got {self.velocity})")
        check(self.scheme in ("central", "upwind"), f"scheme must be 'central' or 'upwind' (got {self.scheme!r})")
        check(self.alpha > 2.0, f"alpha must be a number > 2 so the velocity field is continuous (got {self.alpha})")
        check_nonzero_finite(forcing=self.forcing)


@register_family("convection-diffusion")
class ConvectionDiffusion(EllipticFamily):
    """-eps Laplace(u) + v . grad u = f on the unit square with a random divergence-free v, u = 0 on the boundary."""

    config_class = ConvectionDiffusionConfig
    default_preset = "default"
    inputs = {"vx": "velocity along x", "vy": "velocity along y"}

    def sample_inputs(self, index: int, seed: int) -> dict[str, np.ndarray]:
        """Velocity components ``vx``, ``vy`` of sample ``index`` from its stream function (stream 0)."""
        c = self.config
        psi = self.random_field(index, seed, 0)
        d_dx, d_dy = np.gradient(psi, self.h)
        speed = np.sqrt(np.mean(d_dx**2 + d_dy**2))
        scale = c.velocity / speed if speed > 0 else 0.0
        return {"vx": scale * d_dy, "vy": -scale * d_dx}

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """``eps`` times the Laplacian plus the convection matrix; ``b = f``."""
        c = self.config
        shape = inputs["vx"].shape
        A = c.diffusivity * diffusion_matrix(np.ones(shape), self.h)
        A = (A + convection_matrix(np.stack([inputs["vx"], inputs["vy"]]), self.h, c.scheme)).tocsr()
        return A, np.full(A.shape[0], c.forcing)

    def check_settings(self) -> None:
        """Central differences need a cell Péclet number ``velocity h / (2 eps) <= 1`` (module docstring)."""
        c = self.config
        h = grid_spacing(c.resolution)
        peclet = c.velocity * h / (2.0 * c.diffusivity)
        if c.scheme != "central" or peclet <= 1.0:
            return
        needed = math.ceil(c.velocity / (2.0 * c.diffusivity)) + 1  # h = 1 / (resolution - 1) <= 2 eps / velocity
        check(False, f"resolution = {c.resolution} is too coarse for central differences: the cell Peclet number "
                     f"velocity*h/(2*diffusivity) is {peclet:.3g} (above 1 the solution oscillates); use resolution "
                     f">= {needed}, scheme=upwind or diffusivity >= {safe_bound(c.velocity * h / 2.0, up=True)}")

    def traits(self) -> ProblemTraits:
        """Non-symmetric; the matrix changes with every sample."""
        return self.interior_traits(symmetric=False, definite=False)

    def attrs(self) -> dict[str, Any]:
        """Diffusivity, scheme and the constant right-hand side."""
        c = self.config
        return {"diffusivity": c.diffusivity, "scheme": c.scheme, "forcing": c.forcing}
