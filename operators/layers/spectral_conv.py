"""The Fourier layer's spectral convolution on real fields in 1, 2 or 3 dimensions.

``y = irfft(W . rfft(x)) + b``: a real FFT over the last ``d`` axes, keep the lowest modes, mix channels
mode by mode with complex weights (:func:`operators.kernels.spectral_mix`), and transform back at the
input resolution (or any requested one).

Mode layout
-----------
``n_modes = (m_1, ..., m_d)`` counts modes as neuralop does: along every axis but the last, the
frequencies ``-(m//2) .. m - m//2 - 1`` are kept (positive and negative); along the last axis, the
real FFT's ``m_d // 2 + 1`` non-negative frequencies. The weight ``[C_in, C_out, m_1, ..., m_{d-1},
m_d // 2 + 1]`` stores the non-last axes in FFT order (frequencies ``0, 1, ..., -2, -1``), so
the kept modes are two slices of the FFT output and no shift is ever computed. neuralop stores the
same weights centred (``fftshift`` order); :func:`operators.layers.neuralop_interop` converts.

When a grid is too coarse for the modes (``n_i < m_i``), only the modes it resolves are used, with
the matching part of the weight, so the layer runs at any resolution.

Speed
-----
The mode mixing gets its operands in mode-major memory layout (see :func:`_mode_major`). Along the
last axis, when few columns are kept (the usual case: 9 of 33 on a 64-point axis), the truncated real
FFT and its inverse are products with the ``n x 2K`` real DFT matrix (:func:`_real_dft_matrices`):
the same numbers as ``rfft``/``irfft`` to float precision, without the full-length complex spectrum
whose zero padding and complex transform dominate the FFTs' backward pass. Only the kept modes are
transformed along the non-last axes: the last axis is transformed first and truncated, the others
are transformed on that narrow block; on the way back the zero padding is inserted per axis on the
narrow block instead of allocating a full-spectrum zero tensor. The bias is added at frequency zero
and a skip connection can be accumulated by the last product (``residual``), saving full-size passes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from operators.kernels import spectral_mix
from operators.layers import resolution_free
from operators.layers.factorized_weights import make_weight


#: real types the layer never computes in (see :meth:`SpectralConv.forward`)
_HALF_TYPES = (torch.float16, torch.bfloat16)


def _kept_split(m: int) -> tuple[int, int]:
    """Number of (non-negative, negative) frequencies kept out of ``m`` along a full FFT axis."""
    return m - m // 2, m // 2


def _use_dft_matrix(n: int, columns: int) -> bool:
    """Whether the last-axis transform of ``columns`` of ``n`` real-FFT columns is cheaper as a product.

    The product costs ``4 n K`` flops per row against ``~2.5 n log2 n`` for the FFT, but runs at matrix
    product speed and has a cheap backward. Measured (forward + backward of the pair, one CPU
    thread): the product is 1.1-4x faster for K = 9 and 17 at n = 64, 128, 256, the FFT 1.3-7x
    faster for K = 33 and 65 at n >= 128; the bound (20 columns at n = 64, 24 at n = 256) sits between.
    """
    return columns <= 2 * math.log2(max(n, 2)) + 8


@functools.lru_cache(maxsize=64)
def _real_dft_arrays(n: int, columns: int, norm: str) -> tuple[np.ndarray, np.ndarray]:
    """The matrices of :func:`_real_dft_matrices` in float64 NumPy (immune to tracing modes)."""
    angle = 2.0 * np.pi * np.outer(np.arange(n), np.arange(columns)) / n
    scale_forward = {"forward": 1.0 / n, "backward": 1.0, "ortho": 1.0 / math.sqrt(n)}[norm]
    scale_inverse = {"forward": 1.0, "backward": 1.0 / n, "ortho": 1.0 / math.sqrt(n)}[norm]
    forward = np.stack((np.cos(angle), -np.sin(angle)), axis=-1).reshape(n, 2 * columns) * scale_forward
    weight = np.full(columns, 2.0)
    weight[0] = 1.0
    if n % 2 == 0 and columns == n // 2 + 1:
        weight[-1] = 1.0
    inverse = np.stack((np.cos(angle.T), -np.sin(angle.T)), axis=1) * (weight * scale_inverse)[:, None, None]
    forward.flags.writeable = False
    inverse = inverse.reshape(2 * columns, n)
    inverse.flags.writeable = False
    return forward, inverse


_MATRICES: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = {}


def _real_dft_matrices(n: int, columns: int, norm: str, dtype: torch.dtype,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Real matrices of the truncated real DFT along an axis of ``n`` points and its inverse.

    Returns ``(forward, inverse)`` of shapes ``[n, 2K]`` and ``[2K, n]`` (``K = columns``) acting on
    interleaved (real, imaginary) pairs: ``x @ forward`` viewed as complex equals
    ``rfft(x, norm=norm)[..., :K]``, and ``view_as_real(X).flatten(-2) @ inverse`` equals
    ``irfft(X, n, norm=norm)``, which counts every column twice (its conjugate) except the zero and
    the Nyquist ones, whose imaginary parts it ignores.

    Built in float64 and cached per dtype and device; tensors made while tracing (``torch.export``'s
    fake tensors) are not cached, so tracing never leaks into later eager calls.
    """
    key = (n, columns, norm, dtype, torch.device(device))
    cached = _MATRICES.get(key)
    if cached is not None:
        return cached
    forward, inverse = (torch.from_numpy(a.copy()).to(dtype=dtype, device=device) for a in _real_dft_arrays(n, columns, norm))
    if type(forward) is torch.Tensor and len(_MATRICES) < 64:
        _MATRICES[key] = (forward, inverse)
    return forward, inverse


def _rfft_last(x: torch.Tensor, columns: int, norm: str) -> torch.Tensor:
    """``rfft(x, dim=-1, norm=norm)[..., :columns]``."""
    if resolution_free.active() or not _use_dft_matrix(int(x.shape[-1]), columns):
        return torch.fft.rfft(x, dim=-1, norm=norm).narrow(-1, 0, columns)
    forward, _ = _real_dft_matrices(int(x.shape[-1]), columns, norm, x.dtype, x.device)
    return torch.view_as_complex((x @ forward).unflatten(-1, (columns, 2)))


def _irfft_last(spectrum: torch.Tensor, n: int, norm: str, residual: torch.Tensor | None = None) -> torch.Tensor:
    """``irfft(spectrum, n=n, dim=-1, norm=norm) + residual`` for at most ``n // 2 + 1`` columns.

    On the matrix-product path the residual is accumulated by the product itself (``addmm``),
    saving a pass over the full-size output.
    """
    columns = int(spectrum.shape[-1])
    if resolution_free.active() or not _use_dft_matrix(n, columns):
        y = torch.fft.irfft(spectrum, n=n, dim=-1, norm=norm)
        return y if residual is None else y + residual
    _, inverse = _real_dft_matrices(n, columns, norm, spectrum.real.dtype, spectrum.device)
    pairs = torch.view_as_real(spectrum.contiguous()).flatten(-2)
    if residual is None:
        return pairs @ inverse
    shape = (*pairs.shape[:-1], n)
    out = torch.addmm(residual.expand(shape).reshape(-1, n), pairs.reshape(-1, pairs.shape[-1]), inverse)
    return out.view(shape)


def _gather_modes(x: torch.Tensor, axis: int, m: int) -> torch.Tensor:
    """Select the ``m`` kept frequencies of a full FFT axis, in FFT order."""
    n = x.shape[axis]
    if m == n:
        return x
    positive, negative = _kept_split(m)
    if negative == 0:
        return x.narrow(axis, 0, positive)
    return torch.cat((x.narrow(axis, 0, positive), x.narrow(axis, n - negative, negative)), dim=axis)


def _scatter_modes(x: torch.Tensor, axis: int, n: int) -> torch.Tensor:
    """Inverse of :func:`_gather_modes`: place ``m`` kept frequencies on a full axis of length ``n``."""
    m = x.shape[axis]
    if m == n:
        return x
    positive, negative = _kept_split(m)
    zeros_shape = list(x.shape)
    zeros_shape[axis] = n - m
    zeros = x.new_zeros(zeros_shape)
    pieces = [x.narrow(axis, 0, positive), zeros]
    if negative:
        pieces.append(x.narrow(axis, positive, negative))
    return torch.cat(pieces, dim=axis)


def _mode_major(x: torch.Tensor) -> torch.Tensor:
    """The same tensor ``[P, Q, m_1..m_d]``, stored mode-major (``[m_1..m_d, P, Q]`` in memory).

    Mixing channels mode by mode is a batched matrix product over the modes; with this layout each
    mode's ``[P, Q]`` block is contiguous, which makes PyTorch's complex batched products (forward
    and backward) an order of magnitude faster than on the FFT's channel-first layout. The copy is
    small: only the kept modes.
    """
    d = x.ndim - 2
    to_back = (*range(2, 2 + d), 0, 1)
    back = (d, d + 1, *range(d))
    return x.permute(to_back).contiguous().permute(back)


class _ModeMajorGrad(torch.autograd.Function):
    """Identity whose backward hands the gradient on in mode-major layout (see :func:`_mode_major`).

    The gradient reaching the mixed spectrum comes from the inverse FFTs in channel-first layout;
    the mixing's backward products are fast only on mode-major operands. Skipped under
    ``torch.jit.trace``: TorchScript cannot save a Python ``autograd.Function``, and the layout only
    matters for the backward pass, which an exported program does not need.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _mode_major(grad)


class SpectralConv(nn.Module):
    """Spectral convolution ``[B, C_in, n_1..n_d] -> [B, C_out, n_1..n_d]`` on real fields.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    n_modes
        Modes kept per axis (neuralop's convention, see the module docstring); ``d = len(n_modes)``.
    bias
        Add a learned per-channel bias after the inverse transform (as neuralop does).
    factorization
        ``"dense"`` (or None), ``"tucker"`` or ``"cp"``.
    rank
        For factorised weights: fraction of the dense parameter count, or explicit rank(s).
    init_std
        Standard deviation of the initial weight; ``"auto"`` is ``sqrt(2 / (C_in + C_out))``.
    fft_norm
        Normalisation of the transforms (``"forward"``: the forward transform divides by ``n``,
        so the weights do not depend on the grid size).
    max_n_modes
        Modes the weight is allocated for (default ``n_modes``); ``n_modes`` may later be lowered.
    **neuralop_options
        The remaining arguments ``neuralop.layers.fno_block.FNOBlocks`` passes to its ``conv_module``
        (``complex_data``, ``separable``, ``fno_block_precision``, ``resolution_scaling_factor``,
        ``fixed_rank_modes``, ``implementation``, ``decomposition_kwargs``); only their default
        values are supported, any other raises ``ValueError``. ``implementation`` is accepted
        with either value: it changes how neuralop evaluates the same function, not the function.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: int | Sequence[int],
        bias: bool = True,
        factorization: str | None = None,
        rank: float | Sequence[int] = 1.0,
        init_std: float | str = "auto",
        fft_norm: str = "forward",
        max_n_modes: int | Sequence[int] | None = None,
        **neuralop_options: Any,
    ) -> None:
        super().__init__()
        _check_neuralop_options(neuralop_options)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        modes = (int(n_modes),) if isinstance(n_modes, int) else tuple(int(m) for m in n_modes)
        if not 1 <= len(modes) <= 3 or min(modes) < 1:
            raise ValueError(f"n_modes must be 1 to 3 positive integers (got {n_modes!r})")
        self.order = len(modes)
        if max_n_modes is None:
            max_modes = modes
        else:
            max_modes = (int(max_n_modes),) if isinstance(max_n_modes, int) else tuple(int(m) for m in max_n_modes)
        if len(max_modes) != self.order or any(m < n for m, n in zip(max_modes, modes)):
            raise ValueError(f"max_n_modes {max_modes} must have one entry >= n_modes {modes} per axis")
        self.max_n_modes = max_modes
        self.n_modes = modes
        self.fft_norm = fft_norm
        self.factorization = (factorization or "dense").lower()
        std = (2.0 / (in_channels + out_channels)) ** 0.5 if init_std == "auto" else float(init_std)
        weight_shape = (self.in_channels, self.out_channels, *max_modes[:-1], max_modes[-1] // 2 + 1)
        self.weight = make_weight(weight_shape, std, self.factorization, rank)
        if bias:
            self.bias = nn.Parameter(std * torch.randn(self.out_channels, *(1,) * self.order))
        else:
            self.register_parameter("bias", None)

    @property
    def n_modes(self) -> tuple[int, ...]:
        """Modes in use per axis (neuralop's convention); may be set to at most ``max_n_modes``."""
        return self._n_modes

    @n_modes.setter
    def n_modes(self, n_modes: int | Sequence[int]) -> None:
        modes = (int(n_modes),) if isinstance(n_modes, int) else tuple(int(m) for m in n_modes)
        if len(modes) != self.order or any(m > big for m, big in zip(modes, self.max_n_modes)):
            raise ValueError(f"n_modes {modes} must have {self.order} entries <= max_n_modes {self.max_n_modes}")
        self._n_modes = modes

    def kept_modes(self, sizes: Sequence[int], out_sizes: Sequence[int] | None = None) -> tuple[int, ...]:
        """Mode counts actually used on a grid of ``sizes`` (output grid ``out_sizes``).

        Returns the number of kept frequencies per axis; the last entry counts real-FFT columns.
        """
        out_sizes = sizes if out_sizes is None else out_sizes
        kept = [min(m, n, o) for m, n, o in zip(self._n_modes[:-1], sizes[:-1], out_sizes[:-1])]
        kept.append(min(self._n_modes[-1] // 2 + 1, sizes[-1] // 2 + 1, out_sizes[-1] // 2 + 1))
        return tuple(kept)

    def dense_weight(self, kept: Sequence[int] | None = None) -> torch.Tensor:
        """The complex weight ``[C_in, C_out, *kept]`` for the kept mode counts (default: all)."""
        weight = self.weight()
        if kept is None:
            return weight
        for axis, m in enumerate(kept[:-1], start=2):
            if weight.shape[axis] != m:
                weight = _gather_modes(weight, axis, m)
        if weight.shape[-1] != kept[-1]:
            weight = weight.narrow(-1, 0, kept[-1])
        return weight

    def forward(self, x: torch.Tensor, output_shape: Sequence[int] | None = None,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the layer.

        Parameters
        ----------
        x
            Real tensor ``[B, C_in, n_1, ..., n_d]``, any grid size.
        output_shape
            Grid of the output (default: the input's). Larger grids evaluate the same band-limited
            output on finer points (Fourier interpolation).
        residual
            Optional tensor broadcastable to the output, added to it (a skip connection); fused into
            the inverse transform where possible.

        Returns
        -------
        torch.Tensor
            Real tensor ``[B, C_out, *output_shape]``.

        Notes
        -----
        The bias is added to the zero-frequency coefficient before the inverse transform, which
        adds it to every output point without a pass over the full-size output. Under autocast
        (mixed-precision training) the layer leaves the autocast region and computes in float32 /
        complex64 on float32 copies of ``x`` and ``residual``; its output is float32.
        """
        if x.dtype in _HALF_TYPES or torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.forward(x.float(), output_shape, None if residual is None else residual.float())
        d = self.order
        # traced / symbolic sizes stay symbolic when exporting (resolution_free); ints otherwise
        sizes = tuple(x.shape[-d:]) if resolution_free.active() else tuple(int(s) for s in x.shape[-d:])
        out_sizes = sizes if output_shape is None else tuple(int(s) for s in output_shape)
        kept = self.kept_modes(sizes, out_sizes)
        spectrum = _rfft_last(x, kept[-1], self.fft_norm)
        for axis in range(-2, -d - 1, -1):
            spectrum = _gather_modes(torch.fft.fft(spectrum, dim=axis, norm=self.fft_norm), axis, kept[axis])
        mixed = spectral_mix(_mode_major(spectrum), _mode_major(self.dense_weight(kept)))
        if not torch.jit.is_tracing():  # a traced program cannot hold a Python autograd.Function
            mixed = _ModeMajorGrad.apply(mixed)
        if self.bias is not None:
            mixed = mixed + self._bias_spectrum(kept, out_sizes, mixed.dtype)
        for axis in range(-2, -d - 1, -1):
            mixed = torch.fft.ifft(_scatter_modes(mixed, axis, out_sizes[axis]), dim=axis, norm=self.fft_norm)
        return _irfft_last(mixed, out_sizes[-1], self.fft_norm, residual)

    def _bias_spectrum(self, kept: Sequence[int], out_sizes: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """``[C_out, *kept]`` coefficients that are zero except the bias, scaled, at frequency zero."""
        scale = 1.0  # "forward": the grid size is not read (it stays symbolic when exporting)
        if self.fft_norm != "forward":
            points = math.prod(out_sizes)
            scale = float(points) if self.fft_norm == "backward" else math.sqrt(points)
        pad = []
        for m in reversed(tuple(kept)):
            pad += [0, m - 1]
        return torch.nn.functional.pad(self.bias * scale, pad).to(dtype)

    def transform(self, x: torch.Tensor, output_shape: Sequence[int] | None = None) -> torch.Tensor:
        """Bring a skip connection to the output grid (identity unless ``output_shape`` differs).

        Part of the ``conv_module`` interface of neuralop's ``FNOBlocks``; other grids are reached
        by Fourier interpolation of every mode the two grids share.
        """
        d = self.order
        sizes = tuple(int(s) for s in x.shape[-d:])
        if output_shape is None or tuple(output_shape) == sizes:
            return x
        if x.dtype in _HALF_TYPES or torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.transform(x.float(), output_shape)
        out_sizes = tuple(int(s) for s in output_shape)
        columns = min(sizes[-1], out_sizes[-1]) // 2 + 1
        spectrum = torch.fft.rfft(x, dim=-1, norm="forward").narrow(-1, 0, columns)
        for axis in range(-2, -d - 1, -1):
            m = min(sizes[axis], out_sizes[axis])
            spectrum = _gather_modes(torch.fft.fft(spectrum, dim=axis, norm="forward"), axis, m)
            spectrum = torch.fft.ifft(_scatter_modes(spectrum, axis, out_sizes[axis]), dim=axis, norm="forward")
        return torch.fft.irfft(spectrum, n=out_sizes[-1], dim=-1, norm="forward")

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, n_modes={self.n_modes}, "
                f"factorization={self.factorization!r}, bias={self.bias is not None}")


_NEURALOP_DEFAULTS: dict[str, Any] = {
    "complex_data": False,
    "separable": False,
    "fno_block_precision": "full",
    "resolution_scaling_factor": None,
    "fixed_rank_modes": False,
    "decomposition_kwargs": None,
    "implementation": None,
    "device": None,
}


def _check_neuralop_options(options: dict[str, Any]) -> None:
    for name, value in options.items():
        if name not in _NEURALOP_DEFAULTS:
            raise TypeError(f"SpectralConv got an unexpected argument {name!r}")
        if name == "implementation":
            if value not in (None, "factorized", "reconstructed"):
                raise ValueError(f"implementation must be 'factorized' or 'reconstructed' (got {value!r})")
        elif name == "decomposition_kwargs":
            if value:
                raise ValueError(f"decomposition_kwargs are not supported (got {value!r})")
        elif value != _NEURALOP_DEFAULTS[name]:
            raise ValueError(f"SpectralConv supports only {name}={_NEURALOP_DEFAULTS[name]!r} (got {value!r})")
