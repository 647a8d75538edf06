"""3D variable-coefficient Poisson ``-div(a grad u) = f`` on the unit cube, ``u = 0`` on the boundary.

The 2D :mod:`~pde_data.families.poisson` family on a ``K^3`` vertex grid with the 7-point stencil.
"""

from __future__ import annotations

import dataclasses

from pde_data.families.poisson import Poisson, PoissonConfig
from pde_data.family import register_family


@dataclasses.dataclass(frozen=True)
class Poisson3DConfig(PoissonConfig):
    """:class:`~pde_data.families.poisson.PoissonConfig` with a 3D default grid (32 vertices per side)."""

    resolution: int = 32


@register_family("poisson3d")
class Poisson3D(Poisson):
    """-div(a grad u) = f on the unit cube with random a > 0 and f, u = 0 on the boundary."""

    config_class = Poisson3DConfig
    dim = 3
