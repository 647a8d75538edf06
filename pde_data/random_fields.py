"""Gaussian random fields for initial conditions and coefficients.

Both samplers draw a field with covariance ``sigma^2 (-Laplacian + tau^2 I)^(-alpha)``, restricted
to the modes the grid resolves and without the constant mode, and take one
:class:`numpy.random.Generator` so that a sample depends only on its own random stream.

* :func:`periodic_grf` — periodic box ``[0, L)^d``, any dimension, Fourier modes. Its pointwise
  variance is ``sigma^2 * sum_{k != 0} (4 pi^2 |k|^2 / L^2 + tau^2)^(-alpha)`` over the grid's
  modes (:func:`periodic_grf_variance`). The classic data sets, in this convention:

  ========================================  =========  ======  =====================  ==========
  data                                      alpha      tau     sigma                  std
  ========================================  =========  ======  =====================  ==========
  FNO Navier–Stokes ``w0`` (256^2 grid)     2.5        7       sqrt(2) * 7^1.5        ~ 0.262
  FNO Burgers, nu = 0.1                     2          5       25                     ~ 0.594
  Burgers, nu = 1e-3 variant                2.5        7       7^2                    ~ 0.274
  ========================================  =========  ======  =====================  ==========

* :func:`neumann_grf` — unit square with homogeneous Neumann conditions (cosine modes), the
  Darcy coefficient field of the classic FNO data, evaluated on the vertex grid including the
  boundary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.fft


def _periodic_mode_variances(shape: Sequence[int], alpha: float, tau: float, sigma: float,
                             length: float) -> np.ndarray:
    """``sigma^2 (4 pi^2 |k|^2 / L^2 + tau^2)^(-alpha)`` on the full FFT grid, 0 for ``k = 0``."""
    grids = np.meshgrid(*[np.fft.fftfreq(n, 1.0 / n) for n in shape], indexing="ij")
    k2 = sum(g**2 for g in grids)
    variances = sigma**2 * (4.0 * np.pi**2 * k2 / length**2 + tau**2) ** (-alpha)
    variances[(0,) * len(shape)] = 0.0
    return variances


def periodic_grf(rng: np.random.Generator, shape: Sequence[int], alpha: float, tau: float, sigma: float,
                 length: float = 1.0) -> np.ndarray:
    """Draw one zero-mean periodic Gaussian random field on a uniform grid.

    ``u(x) = Re sum_k sqrt(s_k) (a_k + i b_k) exp(2 pi i k.x / L)`` with ``a_k, b_k ~ N(0, 1)``
    independent and ``s_k = sigma^2 (4 pi^2 |k|^2 / L^2 + tau^2)^(-alpha)`` (``s_0 = 0``), summed over
    the grid's FFT modes: the construction of the classic FNO generators, whose covariance is
    ``sigma^2 (-Laplacian + tau^2)^(-alpha)`` on the resolved modes.

    Parameters
    ----------
    rng
        Source of the ``2 * prod(shape)`` standard normals (drawn as one ``[2, *shape]`` array).
    shape
        Grid points per axis; the grid is ``x_j = j L / n`` and the first axis is ``x``.
    alpha, tau, sigma
        Exponent, inverse length scale and amplitude of the covariance.
    length
        Period ``L`` of every axis.

    Returns
    -------
    numpy.ndarray
        float64 field of the given shape.
    """
    shape = tuple(int(n) for n in shape)
    noise = rng.standard_normal((2, *shape))
    coefficients = np.sqrt(_periodic_mode_variances(shape, alpha, tau, sigma, length)) * (noise[0] + 1j * noise[1])
    return np.real(np.fft.ifftn(coefficients)) * float(np.prod(shape))


def periodic_grf_variance(shape: Sequence[int], alpha: float, tau: float, sigma: float,
                          length: float = 1.0, weights: np.ndarray | None = None) -> float:
    """Pointwise variance of :func:`periodic_grf` (the same everywhere).

    ``weights`` (an array over the full FFT grid) multiplies each mode's variance, e.g.
    ``1 / (4 pi^2 |k|^2)`` for the variance of the velocity of a vorticity field.
    """
    variances = _periodic_mode_variances(tuple(int(n) for n in shape), alpha, tau, sigma, length)
    if weights is not None:
        variances = variances * weights
    return float(np.sum(variances))


def neumann_grf(rng: np.random.Generator, resolution: int, alpha: float = 2.0, tau: float = 3.0,
                sigma: float | None = None, dim: int = 2) -> np.ndarray:
    """Draw one Gaussian random field on the unit square (cube) with Neumann (cosine) modes, mean mode removed.

    ``u(x) = sum_{k != 0} sigma (pi^2 |k|^2 + tau^2)^(-alpha/2) xi_k phi_k1(x1) ... phi_kd(xd)`` with
    ``xi_k ~ N(0, 1)``, ``phi_0 = 1`` and ``phi_k = sqrt(2) cos(pi k x)``: the Karhunen–Loeve expansion of
    ``N(0, sigma^2 (-Laplacian_N + tau^2)^(-alpha))`` with eigenfunctions orthonormal in L2(0,1)^d and
    ``0 <= k_i < resolution``. In 2-D it is the construction of the classic FNO Darcy data (MATLAB
    ``GRF.m``: ``idct2`` of ``s * tau^(alpha-1) (pi^2 |k|^2 + tau^2)^(-alpha/2) xi``), evaluated here
    on the vertex grid. Without the mean mode the field's trapezoidal mean over the grid is zero.

    Parameters
    ----------
    rng
        Source of the ``resolution^dim`` standard normals (one ``[K] * dim`` draw, ``xi[k1, k2, ...]``).
    resolution
        ``K``: vertices per side including the boundary; ``x_i = i / (K - 1)``, first axis ``x``.
    alpha, tau
        Exponent and inverse length scale (the classic Darcy field: 2 and 3).
    sigma
        Amplitude; default ``tau^(alpha - 1)`` as in the classic generator (3 for alpha 2, tau 3),
        whatever ``dim``.
    dim
        Number of dimensions (2 or 3 in pdeop; any >= 1 works).

    Returns
    -------
    numpy.ndarray
        float64 ``[K] * dim`` values on the vertices.
    """
    K = int(resolution)
    if K < 2:
        raise ValueError(f"resolution must be at least 2 (got {resolution})")
    sigma = tau ** (alpha - 1.0) if sigma is None else float(sigma)
    k = np.arange(K)
    xi = rng.standard_normal((K,) * dim)
    axes = np.meshgrid(*([k] * dim), indexing="ij", sparse=True)
    amplitude = sigma * (np.pi**2 * sum(a**2 for a in axes) + tau**2) ** (-alpha / 2.0)
    amplitude[(0,) * dim] = 0.0
    # sqrt(2) normalises cos(pi k x) for k > 0; sum_k c_k cos(pi k i / (K-1)) is a DCT-I once the
    # interior coefficients are halved
    weight = np.where(k == 0, 1.0, np.sqrt(2.0)) * np.where((k == 0) | (k == K - 1), 1.0, 0.5)
    coefficients = amplitude * xi
    for axis in range(dim):
        shape = [1] * dim
        shape[axis] = K
        coefficients *= weight.reshape(shape)
    return scipy.fft.dctn(coefficients, type=1)
