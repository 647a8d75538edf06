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
The last axis is transformed first, then the others from the first on, each on the block the
previous ones narrowed. When few modes are kept along an axis (the usual case: 16 of 64, or 9 of 33
real-FFT columns), its transform and inverse are matrix products (:func:`use_dft_matrix`): for the
last axis with a real ``n x 2K`` or ``2n x 2K`` matrix acting on interleaved (real, imaginary) pairs
(:func:`_dft_arrays`), for the others with a complex ``m x n`` matrix from the left, the batch
before the axis and the columns after it (:func:`_axis_dft_arrays`). They give the FFTs' numbers to
float precision without the full-length spectra whose transposes, zero padding and transforms
dominate the FFTs' backward pass; their backward passes are products too. Elsewhere the FFT runs
and the modes are sliced out (and zero-padded back in per axis on the narrow block). A residual
can be accumulated by the last product.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from operators.layers import resolution_free

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
    """Whether transforming ``columns`` kept modes of an ``n``-point axis is cheaper as a matrix product.

    The product costs ``4 n K`` flops per row against ``~2.5 n log2 n`` for a real FFT, but runs at
    matrix product speed and has a cheap backward. Measured on the last axis (forward + backward of
    the pair, one CPU thread): the product is 1.1-4x faster for K = 9 and 17 at n = 64, 128, 256, the
    FFT 1.3-7x faster for K = 33 and 65 at n >= 128; the bound (20 columns at n = 64, 24 at n = 256)
    sits between. Complex data and the other axes cost both sides about twice as much (complex
    products against complex FFTs, which on the other axes also transpose), so the same bound serves.
    """
    return columns <= 2 * math.log2(max(n, 2)) + 8


def _matrix_path(n: Any, columns: int) -> bool:
    """:func:`use_dft_matrix`, never while exporting resolution-free (``n`` may then be symbolic: not read)."""
    return not resolution_free.active() and use_dft_matrix(int(n), int(columns))


def _plain_autograd() -> bool:
    """Whether to avoid this module's autograd.Functions (tracing, or exporting with symbolic sizes)."""
    return torch.jit.is_tracing() or resolution_free.active()


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


@functools.lru_cache(maxsize=64)
def _axis_dft_arrays(n: int, modes: int, norm: str) -> tuple[np.ndarray, ...]:
    """Complex matrices of the truncated DFT along a full-FFT axis of ``n`` points, for products from the left.

    Returns ``(forward, forward^H, inverse, inverse^H)``: ``forward`` is ``[modes, n]`` and
    ``forward @ x`` holds the kept modes (:func:`kept_frequencies`) of ``fft(x)`` along the rows of
    ``x``; ``inverse`` is ``[n, modes]`` and ``inverse @ X`` is ``ifft`` of the spectrum zero-padded
    onto ``n`` points. The adjoints (contiguous) serve the backward products.
    """
    frequencies = np.array(kept_frequencies(modes), dtype=np.float64)
    phase = 2j * np.pi * np.outer(frequencies, np.arange(n)) / n
    forward = np.exp(-phase) * _SCALES[norm][0](n)
    inverse = np.exp(phase.T) * _SCALES[norm][1](n)
    arrays = tuple(np.ascontiguousarray(a) for a in (forward, forward.conj().T, inverse, inverse.conj().T))
    for a in arrays:
        a.flags.writeable = False
    return arrays


_MATRICES: dict[tuple[Any, ...], tuple[torch.Tensor, ...]] = {}


def _cached(key: tuple[Any, ...], arrays: tuple[np.ndarray, ...], dtype: torch.dtype,
            device: torch.device) -> tuple[torch.Tensor, ...]:
    """``arrays`` as tensors of ``dtype`` on ``device``, cached under ``key`` (not while tracing)."""
    key = (*key, dtype, torch.device(device))
    cached = _MATRICES.get(key)
    if cached is not None:
        return cached
    tensors = tuple(torch.from_numpy(a.copy()).to(dtype=dtype, device=device) for a in arrays)
    if type(tensors[0]) is torch.Tensor and len(_MATRICES) < 128:
        _MATRICES[key] = tensors
    return tensors


def dft_matrices(n: int, columns: int, norm: str, dtype: torch.dtype, device: torch.device,
                 complex_data: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The matrices of :func:`_dft_arrays` as real tensors of ``dtype`` on ``device``.

    Cached per dtype and device; tensors made while tracing (``torch.export``'s fake tensors) are
    not cached, so tracing never leaks into later eager calls.
    """
    return _cached(("last", n, columns, norm, complex_data), _dft_arrays(n, columns, norm, complex_data), dtype, device)


def axis_dft_matrices(n: int, modes: int, norm: str, dtype: torch.dtype,
                      device: torch.device) -> tuple[torch.Tensor, ...]:
    """The complex matrices of :func:`_axis_dft_arrays` (``dtype`` complex), cached like :func:`dft_matrices`."""
    return _cached(("axis", n, modes, norm), _axis_dft_arrays(n, modes, norm), dtype, device)


def _gathered(x: torch.Tensor, axis: int, m: int) -> torch.Tensor:
    """:func:`gather_modes` by concatenation (differentiable by autograd's own rules)."""
    n = x.shape[axis]
    positive, negative = kept_split(m)
    if negative == 0:
        return x.narrow(axis, 0, positive)
    return torch.cat((x.narrow(axis, 0, positive), x.narrow(axis, n - negative, negative)), dim=axis)


def _scattered(x: torch.Tensor, axis: int, n: int) -> torch.Tensor:
    """:func:`scatter_modes` into one new tensor, each element written once (not differentiable)."""
    m = x.shape[axis]
    positive, negative = kept_split(m)
    shape = list(x.shape)
    shape[axis] = n
    out = x.new_empty(shape)
    out.narrow(axis, 0, positive).copy_(x.narrow(axis, 0, positive))
    out.narrow(axis, positive, n - m).zero_()
    if negative:
        out.narrow(axis, n - negative, negative).copy_(x.narrow(axis, positive, negative))
    return out


class _GatherModes(torch.autograd.Function):
    """:func:`gather_modes` whose backward is :func:`scatter_modes` (and the reverse, :class:`_ScatterModes`).

    Autograd's backward of the concatenated slices builds one zero-filled full-size gradient per slice
    and adds them, five passes over the full axis where one suffices; with long axes and few modes
    (1-D layers) those passes cost as much as the FFTs. Both are differentiable to any order.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, axis: int, m: int) -> torch.Tensor:  # noqa: D102
        ctx.axis, ctx.n = axis, x.shape[axis]
        return _gathered(x, axis, m)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: D102
        return _ScatterModes.apply(grad, ctx.axis, ctx.n), None, None


class _ScatterModes(torch.autograd.Function):
    """:func:`scatter_modes` whose backward is :func:`gather_modes` (see :class:`_GatherModes`)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, axis: int, n: int) -> torch.Tensor:  # noqa: D102
        ctx.axis, ctx.m = axis, x.shape[axis]
        return _scattered(x, axis, n)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: D102
        return _GatherModes.apply(grad, ctx.axis, ctx.m), None, None


def gather_modes(x: torch.Tensor, axis: int, m: int) -> torch.Tensor:
    """Select the ``m`` kept frequencies of a full FFT axis, in FFT order."""
    axis %= x.ndim
    if m == x.shape[axis]:
        return x
    if _plain_autograd():  # a traced program cannot hold a Python autograd.Function
        return _gathered(x, axis, m)
    return _GatherModes.apply(x, axis, m)


def scatter_modes(x: torch.Tensor, axis: int, n: int) -> torch.Tensor:
    """Inverse of :func:`gather_modes`: place ``m`` kept frequencies on a full axis of length ``n``."""
    axis %= x.ndim
    if x.shape[axis] == n:
        return x
    if _plain_autograd():  # concatenated with zeros, as autograd and the tracer know it
        positive, negative = kept_split(x.shape[axis])
        zeros_shape = list(x.shape)
        zeros_shape[axis] = n - x.shape[axis]
        pieces = [x.narrow(axis, 0, positive), x.new_zeros(zeros_shape), x.narrow(axis, positive, negative)]
        return torch.cat(pieces, dim=axis)
    return _ScatterModes.apply(x, axis, n)


def _pairs(z: torch.Tensor) -> torch.Tensor:
    """``[..., n]`` complex as ``[..., 2n]`` interleaved real pairs (a view when contiguous)."""
    return torch.view_as_real(z.contiguous()).flatten(-2)


def _as_complex(pairs: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(pairs.unflatten(-1, (-1, 2)))


def fft_last(x: torch.Tensor, columns: int, norm: str, complex_data: bool) -> torch.Tensor:
    """Kept modes of the last axis: ``rfft(x)[..., :columns]`` or the ``columns`` centred ``fft(x)`` modes."""
    if not _matrix_path(x.shape[-1], columns):
        if complex_data:
            return gather_modes(torch.fft.fft(x, dim=-1, norm=norm), -1, columns)
        if _plain_autograd():  # a traced program cannot hold a Python autograd.Function
            return torch.fft.rfft(x, dim=-1, norm=norm).narrow(-1, 0, columns)
        return _TruncatedRfft.apply(x, columns, norm)
    n = int(x.shape[-1])
    real_dtype = x.real.dtype if complex_data else x.dtype
    forward, _ = dft_matrices(n, columns, norm, real_dtype, x.device, complex_data)
    return _as_complex((_pairs(x) if complex_data else x) @ forward)


class _TruncatedRfft(torch.autograd.Function):
    """``rfft(x)[..., :columns]`` with the backward by one inverse real FFT.

    Autograd's backward of ``rfft`` zero-pads the gradient to the full complex spectrum and runs a
    complex FFT of the whole axis; the gradient ``Re(F^H G)`` is an inverse real FFT of ``G`` with the
    interior columns halved (they stand for a conjugate pair), half the work and no full-size complex
    buffer. The backward is made of differentiable torch operations, so it has a gradient itself.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, columns: int, norm: str) -> torch.Tensor:  # noqa: D102
        ctx.n, ctx.norm = int(x.shape[-1]), norm
        return torch.fft.rfft(x, dim=-1, norm=norm).narrow(-1, 0, columns)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: D102
        n, columns = ctx.n, int(grad.shape[-1])
        weight = torch.full((columns,), 0.5, dtype=grad.real.dtype, device=grad.device)
        weight[0] = 1.0
        if n % 2 == 0 and columns == n // 2 + 1:
            weight[-1] = 1.0
        # grad_x = scale * Re(sum_k G_k exp(2 pi i k j / n)): the unnormalised irfft of the halved interior columns
        scale = _SCALES[ctx.norm][0](n)
        return torch.fft.irfft(grad * (weight * scale), n=n, dim=-1, norm="forward"), None, None


def ifft_last(spectrum: torch.Tensor, n: int, norm: str, complex_data: bool,
              residual: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of :func:`fft_last` onto ``n`` points (missing modes zero), plus ``residual``.

    On the matrix-product path the residual is accumulated by the product itself (``addmm``),
    saving a pass over the full-size output.
    """
    if not _matrix_path(n, spectrum.shape[-1]):
        if complex_data:
            y = torch.fft.ifft(scatter_modes(spectrum, -1, n), dim=-1, norm=norm)
        else:
            y = torch.fft.irfft(spectrum, n=n, dim=-1, norm=norm)
        return y if residual is None else y + residual
    columns = int(spectrum.shape[-1])
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


# Below this many columns per batch entry, one product ``matrix @ [n, L*T]`` beats PyTorch's batched
# product, which on CPU runs a tiny GEMM (and a copy) per batch entry; above it, the transposing copy of
# ``x`` costs more than it saves (measured: 1.1-2x faster at T = 5-17, up to 2x slower at T = 64-144).
_FOLD_COLUMNS = 32


def _matrix_times_batch(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ x`` for ``x`` ``[L, n, T]``: one matrix product over all ``L * T`` columns when ``T`` is small.

    The folded result is a transposed view (``[L, m, T]`` with strides of ``[m, L, T]``).
    """
    batch, n, columns = x.shape
    if columns >= _FOLD_COLUMNS or batch == 1:
        return torch.matmul(matrix, x)
    folded = matrix @ x.transpose(0, 1).reshape(n, batch * columns)
    return folded.view(matrix.shape[0], batch, columns).transpose(0, 1)


class _LeftProduct(torch.autograd.Function):
    """``matrix @ x`` for a batch ``x`` ``[L, n, T]`` and a constant complex ``matrix`` ``[m, n]``.

    Autograd's own backward multiplies by the conjugate of the broadcast matrix, which PyTorch's CPU
    batched product materialises once per batch entry (an order of magnitude slower than the product
    itself); here the backward multiplies by the stored adjoint ``[n, m]``. It is itself differentiable.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, matrix: torch.Tensor, adjoint: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(matrix, adjoint)
        return _matrix_times_batch(matrix, x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: D102
        matrix, adjoint = ctx.saved_tensors
        return _LeftProduct.apply(grad, adjoint, matrix), None, None


def _left_product(x: torch.Tensor, dim: int, matrix: torch.Tensor, adjoint: torch.Tensor) -> torch.Tensor:
    """``matrix @ x`` along dimension ``dim`` of ``x`` (``matrix`` is ``[rows, x.shape[dim]]``, ``adjoint``
    its conjugate transpose).

    The dimensions before ``dim`` form the batch and those after it the columns of one batched
    matrix product, so nothing is transposed.
    """
    shape = x.shape
    x3 = x.reshape(math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:]))
    if torch.jit.is_tracing():  # a traced program cannot hold a Python autograd.Function
        out = _matrix_times_batch(matrix, x3)
    else:
        out = _LeftProduct.apply(x3, matrix, adjoint)
    return out.view(*shape[:dim], matrix.shape[0], *shape[dim + 1:])


def _full_axes(ndim: int, d: int) -> range:
    """The full-FFT axes among the last ``d`` of an ``ndim``-dimensional tensor: all but the last."""
    return range(ndim - d, ndim - 1)


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

    Notes
    -----
    The last axis goes first; then the others from the first on, so that their products (when few
    modes are kept, :func:`use_dft_matrix`) have the most columns.
    """
    d = len(kept)
    spectrum = fft_last(x, kept[-1], norm, complex_data)
    for dim in _full_axes(spectrum.ndim, d):
        m = kept[dim - spectrum.ndim + d]
        if _matrix_path(spectrum.shape[dim], m):
            n = int(spectrum.shape[dim])
            forward, forward_adjoint, _, _ = axis_dft_matrices(n, m, norm, spectrum.dtype, spectrum.device)
            spectrum = _left_product(spectrum, dim, forward, forward_adjoint)
        else:
            spectrum = gather_modes(torch.fft.fft(spectrum, dim=dim, norm=norm), dim, m)
    return spectrum


def truncated_ifftn(spectrum: torch.Tensor, out_sizes: Sequence[int], norm: str, complex_data: bool,
                    residual: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of :func:`truncated_fftn` onto the grid ``out_sizes`` (the other modes zero), plus ``residual``.

    Returns a real tensor for real data (``irfft`` along the last axis), else a complex one.
    """
    d = len(out_sizes)
    for dim in reversed(_full_axes(spectrum.ndim, d)):
        m, o = spectrum.shape[dim], out_sizes[dim - spectrum.ndim + d]
        if _matrix_path(o, m):
            m, o = int(m), int(o)
            _, _, inverse, inverse_adjoint = axis_dft_matrices(o, m, norm, spectrum.dtype, spectrum.device)
            spectrum = _left_product(spectrum, dim, inverse, inverse_adjoint)
        else:
            spectrum = torch.fft.ifft(scatter_modes(spectrum, dim, o), dim=dim, norm=norm)
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
