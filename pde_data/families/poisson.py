"""Variable-coefficient Poisson ``-div(a grad u) = f`` with ``u = 0`` on the boundary of the unit square.

Both the coefficient and the source vary per sample: ``a = exp(log_scale * g_1)`` and
``f = source_scale * g_2`` with independent Neumann GRFs ``g_1, g_2`` (streams 0 and 1), so the
sequence changes matrix *and* right-hand side from one sample to the next.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from pde_data.config import check_finite, check_nonzero_finite
from pde_data.elliptic import EllipticConfig, EllipticFamily
from pde_data.family import register_family
from pde_data.finite_differences import diffusion_matrix, interior
from solvers.sequence import ProblemTraits


@dataclasses.dataclass(frozen=True)
class PoissonConfig(EllipticConfig):
    """Settings of the Poisson family (plus the common ones of :class:`~pde_data.elliptic.EllipticConfig`).

    Attributes
    ----------
    log_scale
        ``a = exp(log_scale * g_1)``; 0 gives the constant-coefficient Laplacian.
    source_scale
        ``f = source_scale * g_2``.
    """

    log_scale: float = 0.5
    source_scale: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_finite(log_scale=self.log_scale)
        check_nonzero_finite(source_scale=self.source_scale)


@register_family("poisson")
class Poisson(EllipticFamily):
    """-div(a grad u) = f on the unit square with random a > 0 and f, u = 0 on the boundary."""

    config_class = PoissonConfig
    default_preset = "default"
    inputs = {"a": "diffusion coefficient", "f": "source"}
    positive = ("a",)
    nonfinite_remedy = "lower log_scale (exp(log_scale * g) overflows or underflows)"

    def sample_inputs(self, index: int, seed: int) -> dict[str, np.ndarray]:
        """Coefficient ``a`` (stream 0) and source ``f`` (stream 1) of sample ``index``."""
        c = self.config
        return {"a": self.lognormal_field(index, seed, 0, c.log_scale),
                "f": c.source_scale * self.random_field(index, seed, 1)}

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """Face-averaged diffusion matrix; ``b = f`` at the interior nodes."""
        return diffusion_matrix(inputs["a"], self.h), interior(inputs["f"]).ravel()

    def traits(self) -> ProblemTraits:
        """Symmetric positive definite; matrix and right-hand side change with every sample."""
        return self.interior_traits(symmetric=True, definite=True)
