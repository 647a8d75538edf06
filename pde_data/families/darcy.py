"""Darcy flow ``-div(a grad u) = f`` on the unit square, ``u = 0`` on the boundary (DESIGN.md §4).

Presets: ``fno`` — the classic FNO data: ``a`` from a Neumann GRF ``N(0, 3^2 (-Laplace + 9 I)^-2)``
thresholded to 12 where ``>= 0`` and 4 (setting ``low``) where ``< 0``, ``f = 1``; ``lognormal`` —
``a = exp(g)`` with the same GRF ``g``. Discretised by 5-point finite differences with face-averaged
coefficients on ``K = resolution`` vertices per side, ``h = 1 / (K - 1)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.sparse as sp

from pde_data.config import check, check_finite, check_nonzero_finite, check_positive_finite
from pde_data.elliptic import EllipticConfig, EllipticFamily
from pde_data.family import register_family
from pde_data.finite_differences import diffusion_matrix
from solvers.sequence import ProblemTraits


@dataclasses.dataclass(frozen=True)
class DarcyConfig(EllipticConfig):
    """Settings of the Darcy family (plus the common ones of :class:`~pde_data.elliptic.EllipticConfig`).

    Attributes
    ----------
    coefficient
        ``threshold`` (two values ``high`` / ``low``) or ``lognormal`` (``exp(log_scale * g)``).
    high, low
        Thresholded coefficient where ``g >= 0`` / ``g < 0``.
    log_scale
        Factor on ``g`` in the log-normal coefficient.
    forcing
        Constant right-hand side ``f``.
    """

    coefficient: str = "threshold"
    high: float = 12.0
    low: float = 4.0
    log_scale: float = 1.0
    forcing: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.coefficient in ("threshold", "lognormal"),
              f"coefficient must be 'threshold' or 'lognormal' (got {self.coefficient!r})")
        check_positive_finite(high=self.high, low=self.low)
        check_finite(log_scale=self.log_scale)
        check_nonzero_finite(forcing=self.forcing)


@register_family("darcy")
class Darcy(EllipticFamily):
    """-div(a grad u) = f on the unit square, u = 0 on the boundary."""

    config_class = DarcyConfig
    default_preset = "fno"
    physical_parameters = ("forcing",)
    inputs = {"a": "permeability (diffusion coefficient)"}
    positive = ("a",)
    nonfinite_remedy = "lower log_scale (exp(log_scale * g) overflows or underflows) or check high/low"

    def sample_inputs(self, index: int, seed: int) -> dict[str, np.ndarray]:
        """The coefficient ``a`` of sample ``index`` (stream 0)."""
        c = self.config
        if c.coefficient == "threshold":
            return {"a": np.where(self.random_field(index, seed, 0) >= 0, c.high, c.low)}
        return {"a": self.lognormal_field(index, seed, 0, c.log_scale)}

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """5-/7-point matrix with face-averaged ``a``; ``b = f`` at the interior nodes."""
        A = diffusion_matrix(inputs["a"], self.h)
        return A, np.full(A.shape[0], self.config.forcing)

    def traits(self) -> ProblemTraits:
        """Symmetric positive definite; the matrix changes with every sample."""
        return self.interior_traits(symmetric=True, definite=True)

    def attrs(self) -> dict[str, Any]:
        """The constant right-hand side, stored as the root attribute ``forcing``."""
        return {"forcing": self.config.forcing}
