"""3D Darcy flow ``-div(a grad u) = f`` on the unit cube, ``u = 0`` on the boundary.

The 2D :mod:`~pde_data.families.darcy` family on a ``K^3`` vertex grid with the 7-point stencil;
presets for 24^3 to 48^3 grids, where sparse LU's fill grows fast and iterative solvers compete.
"""

from __future__ import annotations

import dataclasses

from pde_data.families.darcy import Darcy, DarcyConfig
from pde_data.family import register_family


@dataclasses.dataclass(frozen=True)
class Darcy3DConfig(DarcyConfig):
    """:class:`~pde_data.families.darcy.DarcyConfig` with a 3D default grid (32 vertices per side)."""

    resolution: int = 32


@register_family("darcy3d")
class Darcy3D(Darcy):
    """-div(a grad u) = f on the unit cube, u = 0 on the boundary."""

    config_class = Darcy3DConfig
    dim = 3
