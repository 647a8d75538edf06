"""Fourier helpers of the spectral integrators: direct pocketfft calls and the 2/3 rule."""

from __future__ import annotations

import numpy as np

from solvers.spectral import (
    ConservativeAdvection1D,
    dealias_mask,
    forward_rfft2,
    inverse_rfft2,
    irfft_into,
    rfft_into,
    wavenumbers,
)


def test_direct_transforms_equal_numpy_fft() -> None:
    """rfft_into / irfft_into give numpy.fft's bits, and the 2-D helpers its values (all-core path too).

    The 1-D helpers call the gufunc behind numpy.fft directly, so the results must be identical.
    The 2-D forward helper skips the column transforms of modes the 2/3 rule removes: the kept
    columns must equal numpy's rfft2 exactly, and the threaded scipy path must give the same bits.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 96))
    spectrum = np.empty((3, 49), dtype=np.complex128)
    assert np.array_equal(rfft_into(x, spectrum), np.fft.rfft(x))
    back = np.empty((3, 96))
    assert np.array_equal(irfft_into(spectrum, back), np.fft.irfft(spectrum, 96))
    fields = rng.standard_normal((2, 32, 32))
    kept = int(np.count_nonzero(dealias_mask(32)[:17]))
    for workers in (1, 2):
        out = forward_rfft2(fields, np.empty((2, 32, 17), dtype=np.complex128), kept, workers)
        assert np.array_equal(out[..., :kept], np.fft.rfft2(fields)[..., :kept])
        spectra = np.fft.rfft2(fields)
        assert np.array_equal(inverse_rfft2(spectra.copy(), 32, np.empty((2, 32, 32)), workers),
                              np.fft.irfft2(spectra, s=(32, 32)))


def test_two_thirds_rule_and_wavenumbers() -> None:
    """The mask keeps |k| <= (2/3)(n/2): 0..21 of 64 (43 modes); wavenumbers are 2 pi k / L in FFT order."""
    mask = dealias_mask(64)
    k = np.fft.fftfreq(64, 1 / 64)
    assert np.array_equal(np.flatnonzero(mask), np.flatnonzero(np.abs(k) <= 21))
    assert mask.sum() == 43
    assert np.allclose(wavenumbers(8, 4.0), 2 * np.pi / 4.0 * np.array([0, 1, 2, 3, -4, -3, -2, -1]))


def test_conservative_advection_is_minus_u_u_x() -> None:
    """N(v) of ConservativeAdvection1D is -u u_x for a field whose square stays inside the 2/3 band.

    u = sin(2 pi x / L) + 0.5 cos(4 pi x / L) on L = 3, 32 points: u^2 has modes <= 4 < 10 (the
    cut-off), so the pseudo-spectral term equals the analytic -u u_x to rounding (1e-13).
    """
    n, length = 32, 3.0
    x = length * np.arange(n) / n
    kx = 2 * np.pi / length
    u = np.sin(kx * x) + 0.5 * np.cos(2 * kx * x)
    u_x = kx * np.cos(kx * x) - kx * np.sin(2 * kx * x)
    term = ConservativeAdvection1D(n, length)
    result = np.fft.irfft(term(np.fft.rfft(u)[None]), n)[0]
    assert np.max(np.abs(result + u * u_x)) < 1e-13
