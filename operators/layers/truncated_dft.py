"""Truncated Fourier transforms over the last ``d`` axes: only the kept low modes, in FFT order.

The spectral convolution (:mod:`operators.layers.spectral_conv`) needs ``X[k]`` for the ``m``
lowest frequencies per axis, and the inverse of a spectrum that is zero elsewhere, possibly on
another grid. :func:`truncated_fftn` and :func:`truncated_ifftn` compute exactly that.

Mode layout
-----------
Along a full-FFT axis (every axis of complex data, every axis but the last of real data), ``m`` kept
modes are the frequencies ``-(m//2) .. m - m//2 - 1`` stored in FFT order
(``0, 1, .., m - m//2 - 1, -(m//2), .., -1``): two slices of the FFT output, no shift. Along the last
axis of real data they are the first ``K`` real-FFT columns ``0 .. K - 1``.

Speed
-----
The last axis is transformed first and truncated; the others are transformed on that narrow block.
When few modes are kept on the last axis (the usual case: 9 of 33 columns on a 64-point axis), its
transform and inverse are products with a real ``2n x 2K`` or ``n x 2K`` matrix (:func:`_dft_arrays`)
acting on interleaved (real, imaginary) pairs: the same numbers as ``rfft``/``fft`` to float
precision, without the full-length spectrum whose zero padding and transform dominate the FFTs'
backward pass. On the way back the zero padding is inserted per axis on the narrow block instead of
allocating a full-spectrum zero tensor, and a residual can be accumulated by the last product.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

_SCALES = {  # (forward, inverse) factor of each normalisation, as a function of the length n
    "forward": (lambda n: 1.0 / n, lambda n: 1.0),
    "backward": (lambda n: 1.0, lambda n: 1.0 / n),
    "ortho": (lambda n: 1.0 / math.sqrt(n), lambda n: 1.0 / math.sqrt(n)),
}


def kept_split(m: int) -> tuple[int, int]:
    """Number of (non-negative, negative) frequencies among ``m`` kept along a full-FFT axis."""
    return m - m // 2, m // 2


def kept_frequencies(m: int) -> list[int]:
    """The ``m`` kept frequencies of a full-FFT axis in FFT order: ``0 .. m - m//2 - 1, -(m//2) .. -1``."""
    positive, negative = kept_split(m)
    return list(range(positive)) + list(range(-negative, 0))


def use_dft_matrix(n: int, columns: int) -> bool:
    """Whether the last-axis transform of ``columns`` kept modes of ``n`` points is cheaper as a product.

    The product costs ``4 n K`` flops per row against ``~2.5 n log2 n`` for a real FFT, but runs at
    matrix product speed and has a cheap backward. Measured (forward + backward of the pair, one CPU
    thread): the product is 1.1-4x faster for K = 9 and 17 at n = 64, 128, 256, the FFT 1.3-7x
    faster for K = 33 and 65 at n >= 128; the bound (20 columns at n = 64, 24 at n = 256) sits
    between. Complex data costs both sides twice as much, so the same bound holds.
    """
    return columns <= 2 * math.log2(max(n, 2)) + 8


@functools.lru_cache(maxsize=64)
def _dft_arrays(n: int, columns: int, norm: str, complex_data: bool) -> tuple[np.ndarray, np.ndarray]:
    """Real matrices of the truncated DFT of ``n`` points and of its inverse, in float64.

    Real data: ``forward`` is ``[n, 2K]`` and ``x @ forward`` holds the (real, imaginary) pairs of
    ``rfft(x)[:K]``; ``inverse`` is ``[2K, n]`` and maps pairs to ``irfft(X, n)``, which counts every
    column twice (its conjugate) except the zero and the Nyquist ones, whose imaginary parts it ignores.

    Complex data: both act on interleaved pairs, ``forward`` ``[2n, 2K]`` for the ``K`` kept
    frequencies of :func:`kept_frequencies`, ``inverse`` ``[2K, 2n]``.
    """
    scale_forward, scale_inverse = (f(n) for f in _SCALES[norm])
    frequencies = np.array(kept_frequencies(columns) if complex_data else range(columns), dtype=np.float64)
    angle = 2.0 * np.pi * np.outer(np.arange(n), frequencies) / n  # [n, K]
    cos, sin = np.cos(angle), np.sin(angle)
    if complex_data:
        # X = sum_j (xr + i xi)(cos - i sin); x = sum_q (Xr + i Xi)(cos + i sin)
        forward = np.stack((np.stack((cos, -sin), -1), np.stack((sin, cos), -1)), 1)  # [n, 2, K, 2]
        forward = forward.reshape(2 * n, 2 * columns) * scale_forward
        inverse = np.stack((np.stack((cos.T, sin.T), -1), np.stack((-sin.T, cos.T), -1)), 1)  # [K, 2, n, 2]
        inverse = inverse.reshape(2 * columns, 2 * n) * scale_inverse
    else:
        forward = np.stack((cos, -sin), axis=-1).reshape(n, 2 * columns) * scale_forward
        weight = np.full(columns, 2.0)
        weight[0] = 1.0
        if n % 2 == 0 and columns == n // 2 + 1:
            weight[-1] = 1.0
        inverse = np.stack((cos.T, -sin.T), axis=1) * (weight * scale_inverse)[:, None, None]
        inverse = inverse.reshape(2 * columns, n)
    forward.flags.writeable = False
    inverse.flags.writeable = False
    return forward, inverse


_MATRICES: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = {}


def dft_matrices(n: int, columns: int, norm: str, dtype: torch.dtype, device: torch.device,
                 complex_data: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The matrices of :func:`_dft_arrays` as real tensors of ``dtype`` on ``device``.

    Cached per dtype and device; tensors made while tracing (``torch.export``'s fake tensors) are
    not cached, so tracing never leaks into later eager calls.
    """
    key = (n, columns, norm, complex_data, dtype, torch.device(device))
    cached = _MATRICES.get(key)
    if cached is not None:
        return cached
    arrays = _dft_arrays(n, columns, norm, complex_data)
    forward, inverse = (torch.from_numpy(a.copy()).to(dtype=dtype, device=device) for a in arrays)
    if type(forward) is torch.Tensor and len(_MATRICES) < 64:
        _MATRICES[key] = (forward, inverse)
    return forward, inverse


def gather_modes(x: torch.Tensor, axis: int, m: int) -> torch.Tensor:
    """Select the ``m`` kept frequencies of a full FFT axis, in FFT order."""
    n = x.shape[axis]
    if m == n:
        return x
    positive, negative = kept_split(m)
    if negative == 0:
        return x.narrow(axis, 0, positive)
    return torch.cat((x.narrow(axis, 0, positive), x.narrow(axis, n - negative, negative)), dim=axis)


def scatter_modes(x: torch.Tensor, axis: int, n: int) -> torch.Tensor:
    """Inverse of :func:`gather_modes`: place ``m`` kept frequencies on a full axis of length ``n``."""
    m = x.shape[axis]
    if m == n:
        return x
    positive, negative = kept_split(m)
    zeros_shape = list(x.shape)
    zeros_shape[axis] = n - m
    pieces = [x.narrow(axis, 0, positive), x.new_zeros(zeros_shape)]
    if negative:
        pieces.append(x.narrow(axis, positive, negative))
    return torch.cat(pieces, dim=axis)


def _pairs(z: torch.Tensor) -> torch.Tensor:
    """``[..., n]`` complex as ``[..., 2n]`` interleaved real pairs (a view when contiguous)."""
    return torch.view_as_real(z.contiguous()).flatten(-2)


def _as_complex(pairs: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(pairs.unflatten(-1, (-1, 2)))


def fft_last(x: torch.Tensor, columns: int, norm: str, complex_data: bool) -> torch.Tensor:
    """Kept modes of the last axis: ``rfft(x)[..., :columns]`` or the ``columns`` centred ``fft(x)`` modes."""
    n = int(x.shape[-1])
    if not use_dft_matrix(n, columns):
        if complex_data:
            return gather_modes(torch.fft.fft(x, dim=-1, norm=norm), -1, columns)
        return torch.fft.rfft(x, dim=-1, norm=norm).narrow(-1, 0, columns)
    real_dtype = x.real.dtype if complex_data else x.dtype
    forward, _ = dft_matrices(n, columns, norm, real_dtype, x.device, complex_data)
    return _as_complex((_pairs(x) if complex_data else x) @ forward)


def ifft_last(spectrum: torch.Tensor, n: int, norm: str, complex_data: bool,
              residual: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of :func:`fft_last` onto ``n`` points (missing modes zero), plus ``residual``.

    On the matrix-product path the residual is accumulated by the product itself (``addmm``),
    saving a pass over the full-size output.
    """
    columns = int(spectrum.shape[-1])
    if not use_dft_matrix(n, columns):
        if complex_data:
            y = torch.fft.ifft(scatter_modes(spectrum, -1, n), dim=-1, norm=norm)
        else:
            y = torch.fft.irfft(spectrum, n=n, dim=-1, norm=norm)
        return y if residual is None else y + residual
    _, inverse = dft_matrices(n, columns, norm, spectrum.real.dtype, spectrum.device, complex_data)
    pairs = _pairs(spectrum)
    if residual is None:
        out = pairs @ inverse
    else:
        width = inverse.shape[-1]
        shape = (*pairs.shape[:-1], width)
        if complex_data:
            residual = _pairs(residual.to(spectrum.dtype).expand(*pairs.shape[:-1], n))
        base = residual.expand(shape).reshape(-1, width)
        out = torch.addmm(base, pairs.reshape(-1, pairs.shape[-1]), inverse).view(shape)
    return _as_complex(out) if complex_data else out


def truncated_fftn(x: torch.Tensor, kept: Sequence[int], norm: str, complex_data: bool) -> torch.Tensor:
    """The kept modes of the FFT over the last ``len(kept)`` axes of ``x`` (see the module docstring).

    Parameters
    ----------
    x
        ``[..., n_1, ..., n_d]``, real (``complex_data=False``) or complex.
    kept
        Modes per axis; for real data the last entry counts real-FFT columns.
    norm
        ``"forward"``, ``"backward"`` or ``"ortho"``, as in ``torch.fft``.

    Returns
    -------
    torch.Tensor
        Complex ``[..., *kept]``.
    """
    spectrum = fft_last(x, kept[-1], norm, complex_data)
    for axis in range(-2, -len(kept) - 1, -1):
        spectrum = gather_modes(torch.fft.fft(spectrum, dim=axis, norm=norm), axis, kept[axis])
    return spectrum


def truncated_ifftn(spectrum: torch.Tensor, out_sizes: Sequence[int], norm: str, complex_data: bool,
                    residual: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of :func:`truncated_fftn` onto the grid ``out_sizes`` (the other modes zero), plus ``residual``.

    Returns a real tensor for real data (``irfft`` along the last axis), else a complex one.
    """
    for axis in range(-2, -len(out_sizes) - 1, -1):
        spectrum = torch.fft.ifft(scatter_modes(spectrum, axis, out_sizes[axis]), dim=axis, norm=norm)
    return ifft_last(spectrum, out_sizes[-1], norm, complex_data, residual)


def fourier_resample(x: torch.Tensor, out_sizes: Sequence[int]) -> torch.Tensor:
    """The trigonometric interpolant of ``x`` over its last ``len(out_sizes)`` axes, sampled on ``out_sizes``.

    On a finer grid every input point keeps its value; on a coarser one the modes beyond the new
    Nyquist limit are dropped. Where an even grid has a Nyquist frequency, the two frequencies
    ``+n/2`` and ``-n/2`` that coincide on it are told apart: refining, the coefficient is shared
    between them (so a real field stays real and the coarse points keep their values); coarsening,
    ``+n/2`` and ``-n/2`` of the input are added into the new grid's one (exact samples of every mode
    up to it). Real or complex as ``x`` is.

    Parameters
    ----------
    x
        ``[..., n_1, ..., n_d]``.
    out_sizes
        ``(o_1, ..., o_d)``.

    Returns
    -------
    torch.Tensor
        ``[..., o_1, ..., o_d]``, ``x``'s dtype.
    """
    d = len(out_sizes)
    sizes = tuple(int(n) for n in x.shape[-d:])
    complex_data = x.is_complex()
    full_axes = d if complex_data else d - 1
    # full-FFT axes coarsened to an even o keep +o/2 as well, to fold it into -o/2 below
    kept = [min(n, o) + (1 if o < n and o % 2 == 0 else 0) for n, o in zip(sizes, out_sizes)]
    if not complex_data:
        kept[-1] = min(sizes[-1], out_sizes[-1]) // 2 + 1
    spectrum = truncated_fftn(x, kept, "forward", complex_data)
    for axis, (n, o) in enumerate(zip(sizes, out_sizes)):
        dim = spectrum.ndim - d + axis
        if o > n and n % 2 == 0:  # split the Nyquist coefficient
            half = n // 2
            if axis < full_axes:  # n modes -> n + 1: +n/2 and -n/2 get half each
                nyquist = 0.5 * spectrum.narrow(dim, half, 1)
                spectrum = torch.cat((spectrum.narrow(dim, 0, half), nyquist, nyquist,
                                      spectrum.narrow(dim, half + 1, n - half - 1)), dim=dim)
            else:  # the inverse real FFT counts an interior column twice
                spectrum = torch.cat((spectrum.narrow(dim, 0, half), 0.5 * spectrum.narrow(dim, half, 1)), dim=dim)
        elif o < n and o % 2 == 0:  # fold +o/2 into the new Nyquist coefficient
            half = o // 2
            if axis < full_axes:  # o + 1 modes -> o
                folded = spectrum.narrow(dim, half, 1) + spectrum.narrow(dim, half + 1, 1)
                spectrum = torch.cat((spectrum.narrow(dim, 0, half), folded,
                                      spectrum.narrow(dim, half + 2, half - 1)), dim=dim)
            else:  # the inverse real FFT counts the Nyquist column once
                spectrum = torch.cat((spectrum.narrow(dim, 0, half), 2.0 * spectrum.narrow(dim, half, 1)), dim=dim)
    return truncated_ifftn(spectrum, out_sizes, "forward", complex_data)
