"""The Kuramoto–Sivashinsky equation ``u_t + u u_x + u_xx + u_xxxx = 0`` on ``[0, L)``, periodic.

Written as ``u_t = L u - (u^2 / 2)_x`` with the diagonal ``L = k^2 - k^4`` in Fourier space and
integrated by :class:`~solvers.etdrk4.ETDRK4` (float64 or float32, 2/3-dealiased nonlinear term).
The domain length may differ per sample.
"""

from __future__ import annotations

import numpy as np

from solvers.etdrk4 import ETDRK4
from solvers.spectral import ConservativeAdvection1D, wavenumbers


def kuramoto_sivashinsky_linear(n: int, length: float | np.ndarray) -> np.ndarray:
    """Fourier symbol ``k^2 - k^4`` of ``-u_xx - u_xxxx`` on the half spectrum.

    Parameters
    ----------
    n
        Grid points (even).
    length
        Domain length ``L``: a number, or ``[batch]`` lengths for per-sample operators.

    Returns
    -------
    numpy.ndarray
        ``[n // 2 + 1]`` or ``[batch, n // 2 + 1]`` float64.
    """
    lengths = np.asarray(length, dtype=np.float64)
    k = wavenumbers(n, 1.0)[: n // 2 + 1]
    k = k / lengths[..., None] if lengths.ndim else k / float(lengths)
    return k**2 - k**4


def kuramoto_sivashinsky_stepper(n: int, length: float | np.ndarray, dt: float, dtype: type = np.float64) -> ETDRK4:
    """ETDRK4 integrator of the KS equation on ``n`` points with time step ``dt``.

    ``length`` is ``L``, scalar or one per sample (shape ``[batch]``); ``dtype`` the real
    precision of the state (``numpy.float64`` or ``numpy.float32``).
    """
    return ETDRK4(kuramoto_sivashinsky_linear(n, length), dt, ConservativeAdvection1D(n, length, dtype))
