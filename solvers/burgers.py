"""The viscous Burgers equation ``u_t + u u_x = nu u_xx`` on ``[0, L)``, periodic.

Written as ``u_t = L u - (u^2 / 2)_x`` with ``L = -nu k^2``: the viscous part is integrated exactly
in Fourier space and the advection by the four stages of :class:`~solvers.etdrk4.ETDRK4`
(float64 or float32, 2/3-dealiased).
"""

from __future__ import annotations

import numpy as np

from solvers.etdrk4 import ETDRK4
from solvers.spectral import ConservativeAdvection1D, wavenumbers


def burgers_linear(n: int, viscosity: float, length: float = 1.0) -> np.ndarray:
    """Fourier symbol ``-nu k^2`` of ``nu u_xx`` on the half spectrum (``[n // 2 + 1]`` float64)."""
    k = wavenumbers(n, length)[: n // 2 + 1]
    return -viscosity * k**2


def burgers_stepper(n: int, viscosity: float, dt: float, length: float = 1.0, dtype: type = np.float64) -> ETDRK4:
    """ETDRK4 integrator of viscous Burgers on ``n`` points with time step ``dt`` (``dtype``: state precision)."""
    return ETDRK4(burgers_linear(n, viscosity, length), dt, ConservativeAdvection1D(n, length, dtype))
