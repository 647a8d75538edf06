"""Gaussian random fields: the classic data sets' scales, the sampled covariance, the Neumann expansion."""

from __future__ import annotations

import numpy as np
import pytest

from pde_data.random_fields import neumann_grf, periodic_grf, periodic_grf_variance


@pytest.mark.parametrize("shape, alpha, tau, sigma, std", [
    ((256, 256), 2.5, 7.0, np.sqrt(2) * 7**1.5, 0.262),  # FNO Navier–Stokes w0 (DESIGN.md §4)
    ((1024,), 2.0, 5.0, 25.0, 0.594),                    # FNO Burgers, nu = 0.1
    ((1024,), 2.5, 7.0, 49.0, 0.274),                    # Burgers, nu = 1e-3 variant
])
def test_classic_scales(shape: tuple[int, ...], alpha: float, tau: float, sigma: float, std: float) -> None:
    """The pointwise std of the three classic initial fields is what DESIGN.md §4 quotes (to its 3 digits)."""
    assert abs(np.sqrt(periodic_grf_variance(shape, alpha, tau, sigma)) - std) < 1e-3


def _mode_variances(shape: tuple[int, ...], alpha: float, tau: float, sigma: float) -> np.ndarray:
    """Independent evaluation of s_k = sigma^2 (4 pi^2 |k|^2 + tau^2)^-alpha over the FFT grid (s_0 = 0)."""
    k2 = np.zeros(shape)
    for axis, n in enumerate(shape):
        k = np.fft.fftfreq(n, 1.0 / n)
        k2 += (k**2).reshape([n if a == axis else 1 for a in range(len(shape))])
    s = sigma**2 * (4 * np.pi**2 * k2 + tau**2) ** (-alpha)
    s.flat[0] = 0.0
    return s


def test_periodic_grf_has_the_stated_covariance() -> None:
    """Sampled fields have pointwise variance sum_k s_k and per-mode power s_k, within sampling error.

    400 samples on 32^2 with the NS spectrum. The sample variance (pooled over the grid) has a
    standard error we compute from the spectrum (var of a grid mean of u^2 = 2 sum s_k^2 / N); we
    allow 4 of them. The lowest modes' mean power |c_k|^2 = s_k must hold within 4 standard errors
    of an exponential distribution's mean (s_k / sqrt(N)).
    """
    shape, alpha, tau, sigma = (32, 32), 2.5, 7.0, np.sqrt(2) * 7**1.5
    rng = np.random.default_rng(0)
    count = 400
    fields = np.stack([periodic_grf(rng, shape, alpha, tau, sigma) for _ in range(count)])
    s = _mode_variances(shape, alpha, tau, sigma)
    assert np.allclose(fields.mean(axis=(1, 2)), 0.0, atol=1e-14)
    variance = np.mean(fields**2)
    standard_error = np.sqrt(2 * np.sum(s**2) / count)
    assert abs(variance - s.sum()) < 4 * standard_error
    # u = Re sum c_k e^{ikx} with E|c_k|^2 = 2 s_k: the e^{ikx} coefficient (c_k + conj c_-k) / 2 has mean power s_k
    power = np.mean(np.abs(np.fft.fft2(fields) / np.prod(shape)) ** 2, axis=0)
    for k in [(0, 1), (1, 0), (1, 1), (2, 1), (1, 31)]:
        assert abs(power[k] - s[k]) < 4 * s[k] / np.sqrt(count), k


def test_periodic_grf_depends_only_on_its_generator() -> None:
    """Two generators in the same state give bit-identical fields (the dataset's reproducibility rests on it)."""
    a = periodic_grf(np.random.default_rng(7), (16, 8), 2.0, 3.0, 1.0)
    b = periodic_grf(np.random.default_rng(7), (16, 8), 2.0, 3.0, 1.0)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("dim, K", [(2, 9), (3, 5)])
def test_neumann_grf_is_the_cosine_expansion(dim: int, K: int) -> None:
    """The DCT-I evaluation equals the Karhunen–Loeve sum written out with explicit cosines (to 1e-14).

    u = sum_{k != 0} sigma (pi^2 |k|^2 + tau^2)^(-alpha/2) xi_k prod_i phi_{k_i}(x_i), phi_0 = 1,
    phi_k = sqrt(2) cos(pi k x) on the vertices x = i / (K - 1); sigma defaults to tau^(alpha - 1).
    """
    field = neumann_grf(np.random.default_rng(3), K, dim=dim)
    xi = np.random.default_rng(3).standard_normal((K,) * dim)
    k = np.arange(K)
    grids = np.meshgrid(*([k] * dim), indexing="ij")
    amplitude = 3.0 * (np.pi**2 * sum(g**2 for g in grids) + 9.0) ** -1.0
    amplitude[(0,) * dim] = 0.0
    phi = np.cos(np.pi * np.outer(np.arange(K) / (K - 1), k)) * np.where(k == 0, 1.0, np.sqrt(2.0))
    letters = "abc"[:dim]
    expected = np.einsum(",".join(f"{'ijk'[d]}{letters[d]}" for d in range(dim)) + f",{letters}->{'ijk'[:dim]}",
                         *([phi] * dim), amplitude * xi)
    assert np.max(np.abs(field - expected)) < 1e-14
    weights = np.where((k == 0) | (k == K - 1), 0.5, 1.0)
    trapezoid_mean = field
    for _ in range(dim):
        trapezoid_mean = np.tensordot(trapezoid_mean, weights, axes=([0], [0]))
    assert abs(trapezoid_mean) < 1e-13  # the mean mode is removed


def test_neumann_grf_variance_follows_the_eigenfunctions() -> None:
    """Sampled Neumann fields have the pointwise variance sum_k s_k phi_k(x)^2 (larger at the boundary).

    1000 samples on 9^2; at the corner, the centre and an edge the sample variance must be within
    5 standard errors (sqrt(2 / N) of the variance for Gaussian values) of the exact value.
    """
    K, count = 9, 1000
    rng = np.random.default_rng(5)
    fields = np.stack([neumann_grf(rng, K, alpha=2.0, tau=3.0) for _ in range(count)])
    k = np.arange(K)
    s = 9.0 * (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + 9.0) ** -2.0
    s[0, 0] = 0.0
    phi = np.cos(np.pi * np.outer(np.arange(K) / (K - 1), k)) * np.where(k == 0, 1.0, np.sqrt(2.0))
    exact = np.einsum("ia,jb,ab->ij", phi**2, phi**2, s)
    for point in [(0, 0), (4, 4), (0, 4)]:
        sample = np.mean(fields[:, point[0], point[1]] ** 2)
        assert abs(sample - exact[point]) < 5 * exact[point] * np.sqrt(2 / count), point
    assert exact[0, 0] > 1.5 * exact[4, 4]  # the test distinguishes the Neumann variance from a flat one
