"""Indefinite Helmholtz ``-Laplace(u) - k(x)^2 u = f`` on the unit square with a wavenumber field per sample.

``k(x) = wavenumber * (1 + contrast * tanh(g_1))`` and ``f = source_scale * g_2`` with independent
Neumann GRFs (``g_1`` scaled to unit RMS; streams 0 and 1). With the default ``wavenumber = 20`` about
30 eigenvalues of ``-Laplace`` lie below ``k^2``: the systems are truly indefinite.

Boundaries: ``impedance`` (preset ``absorbing``) — the first-order absorbing condition
``du/dn - i k u = 0`` on every side; the complex symmetric system is solved in its real form
(:func:`~pde_data.finite_differences.realify`, twice the unknowns, non-symmetric) and ``u`` / ``u_imag``
are stored. ``dirichlet`` (preset ``dirichlet``) — ``u = 0``, a real symmetric indefinite matrix that
is singular when ``k^2`` hits an eigenvalue of the discrete Laplacian: a constant wavenumber at a
resonance is refused before solving, and any numerically singular sample after its solve, with
an error naming the sample.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.sparse as sp

from pde_data.config import check, check_nonzero_finite, check_positive_finite
from pde_data.elliptic import SINGULAR_CONDITION, EllipticConfig, EllipticFamily
from pde_data.family import Variable, register_family
from pde_data.finite_differences import (complexify_vector, dirichlet_laplacian_eigenvalues,
                                         first_dirichlet_eigenvalue, grid_spacing,
                                         helmholtz_matrix, impedance_rhs, interior, realify, realify_vector)
from pde_data.warm_start import SHIFTED_ILU
from solvers.errors import ConfigError, SolverError
from solvers.sequence import ProblemTraits


@dataclasses.dataclass(frozen=True)
class HelmholtzConfig(EllipticConfig):
    """Settings of the Helmholtz family (plus the common ones of :class:`~pde_data.elliptic.EllipticConfig`).

    Attributes
    ----------
    boundary
        ``impedance`` (absorbing) or ``dirichlet``.
    wavenumber
        Mean wavenumber ``k0``.
    contrast
        ``k`` ranges in ``k0 * (1 -+ contrast)``; 0 gives a constant wavenumber.
    source_scale
        ``f = source_scale * g_2``.
    points_per_wavelength
        Least grid points per wavelength at the largest wavenumber; finer waves are refused
        (second-order differences lose phase accuracy fast below about 6).
    """

    boundary: str = "impedance"
    wavenumber: float = 20.0
    contrast: float = 0.2
    source_scale: float = 100.0
    points_per_wavelength: float = 6.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.boundary in ("impedance", "dirichlet"),
              f"boundary must be 'impedance' or 'dirichlet' (got {self.boundary!r})")
        check_positive_finite(wavenumber=self.wavenumber)
        check(0 <= self.contrast < 1, f"contrast must be a number in [0, 1) (got {self.contrast})")
        check_nonzero_finite(source_scale=self.source_scale)
        k_max = self.wavenumber * (1 + self.contrast)
        points = 2 * math.pi / (k_max * grid_spacing(self.resolution))
        check(points >= self.points_per_wavelength,
              f"resolution {self.resolution} gives {points:.2f} points per wavelength at the largest wavenumber "
              f"{k_max:.4g}; points_per_wavelength asks for >= {self.points_per_wavelength}: raise resolution "
              "or lower wavenumber/contrast")


@register_family("helmholtz")
class Helmholtz(EllipticFamily):
    """-Laplace(u) - k(x)^2 u = f on the unit square, impedance (absorbing) or Dirichlet boundary."""

    config_class = HelmholtzConfig
    default_preset = "absorbing"
    inputs = {"k": "wavenumber", "f": "source"}

    def sample_inputs(self, index: int, seed: int) -> dict[str, np.ndarray]:
        """Wavenumber ``k`` (stream 0) and source ``f`` (stream 1) of sample ``index``."""
        c = self.config
        if c.contrast > 0:
            k = c.wavenumber * (1 + c.contrast * np.tanh(self.unit_field(index, seed, 0)))
        else:
            k = np.full((c.resolution,) * self.dim, c.wavenumber)
        return {"k": k, "f": c.source_scale * self.random_field(index, seed, 1)}

    def check_sample(self, index: int, inputs: dict[str, np.ndarray]) -> None:
        """Refuse a constant wavenumber at a Dirichlet resonance (its condition number is known exactly)."""
        k2 = inputs["k"] ** 2
        if self.config.boundary != "dirichlet" or np.ptp(k2) > 0:
            return
        shifted = dirichlet_laplacian_eigenvalues(self.config.resolution, self.dim) - k2.flat[0]
        nearest = int(np.argmin(np.abs(shifted)))
        gap, spread = abs(shifted[nearest]), float(np.abs(shifted).max())
        if gap == 0 or spread / gap > SINGULAR_CONDITION:
            raise SolverError(
                f"sample {index}: k^2 = {k2.flat[0]:.10g} is a Dirichlet resonance (eigenvalue "
                f"{shifted[nearest] + k2.flat[0]:.10g} of the discrete Laplacian): the system is singular; "
                "change wavenumber, set contrast > 0 or use boundary: impedance")

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """Dirichlet: the real indefinite matrix. Impedance: the real form of the complex symmetric system."""
        k2 = inputs["k"] ** 2
        if self.config.boundary == "dirichlet":
            return helmholtz_matrix(k2, self.h, "dirichlet"), interior(inputs["f"]).ravel()
        A = helmholtz_matrix(k2, self.h, "impedance")
        return realify(A), realify_vector(impedance_rhs(inputs["f"], None, self.h))

    def cycle_smoother(self) -> str:
        """Impedance: an ILU of the shifted Laplacian (:meth:`shifted_matrix`). With the ILU of the matrix
        itself the cycle must either be near-complete (3–4 FGMRES products cold: nothing left to cut)
        or loose enough to stagnate at 65²; the shifted one costs the same iterations at every grid.
        Dirichlet: the family solver's ILU."""
        return SHIFTED_ILU if self.config.boundary == "impedance" else super().cycle_smoother()

    def shifted_matrix(self, inputs: dict[str, np.ndarray], shift: float) -> sp.csr_matrix:
        """The complex shifted Laplacian ``-Laplace - k^2 (1 + i shift)`` of the sample, in real form.

        A preconditioner for the impedance systems whose incomplete factorisation stays accurate where
        the factors of the indefinite matrix itself do not, and whose exact inverse keeps Krylov
        iterations bounded as the grid is refined (Erlangga, Vuik and Oosterlee, "On a class of
        preconditioners for solving the Helmholtz equation", Appl. Numer. Math. 50, 2004; ``shift``
        0.5 is their choice). Same boundary rows as :meth:`assemble`.

        Raises
        ------
        ConfigError
            For the Dirichlet boundary (use ``ilu``) or ``shift <= 0``.
        """
        if self.config.boundary != "impedance":
            raise ConfigError("the shifted-Laplacian smoother needs boundary: impedance; "
                              "use the smoother 'ilu' for the Dirichlet Helmholtz family")
        if not (math.isfinite(shift) and shift > 0):
            raise ConfigError(f"shifted-Laplacian shift must be a positive number (got {shift!r})")
        k2 = inputs["k"] ** 2
        return realify(helmholtz_matrix(k2, self.h, "impedance", absorption=np.full_like(k2, shift)))

    def solution_fields(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Dirichlet: ``u`` with zero boundary. Impedance: real and imaginary parts on every node."""
        if self.config.boundary == "dirichlet":
            return super().solution_fields(x)
        shape = (self.config.resolution,) * self.dim
        z = complexify_vector(x).reshape(shape)
        return {"u": z.real, "u_imag": z.imag}

    def solution_vector(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        """Unknowns from stored ``u`` (and ``u_imag``), in the order of :meth:`assemble`."""
        if self.config.boundary == "dirichlet":
            return super().solution_vector(fields)
        return realify_vector((np.asarray(fields["u"]) + 1j * np.asarray(fields["u_imag"])).ravel())

    def solution_variables(self) -> dict[str, Variable]:
        """``u`` and, for the impedance boundary, ``u_imag``."""
        variables = super().solution_variables()
        if self.config.boundary == "impedance":
            variables["u"] = Variable(("sample",) + self.grid_dims, self.config.dtype,
                                      {"long_name": "real part of the solution"})
            variables["u_imag"] = Variable(("sample",) + self.grid_dims, self.config.dtype,
                                           {"long_name": "imaginary part of the solution"})
        return variables

    def unknowns(self) -> int:
        """Interior nodes (Dirichlet) or real and imaginary parts at every node (impedance)."""
        c = self.config
        return 2 * c.resolution**self.dim if c.boundary == "impedance" else super().unknowns()

    def traits(self) -> ProblemTraits:
        """Dirichlet: symmetric, indefinite once k exceeds the first eigenvalue. Impedance: non-symmetric."""
        c = self.config
        if c.boundary == "impedance":
            return ProblemTraits(dim=self.dim, n_unknowns=self.unknowns(), symmetric=False, definite=False)
        first = first_dirichlet_eigenvalue(c.resolution, self.dim)
        definite = (c.wavenumber * (1 + c.contrast)) ** 2 < first
        return self.interior_traits(symmetric=True, definite=definite)

    def attrs(self) -> dict[str, object]:
        """The boundary condition, as the root attribute ``boundary``."""
        return {"boundary": self.config.boundary}
