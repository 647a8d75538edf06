"""The Fourier layer's spectral convolution on real or complex fields in any number of dimensions.

``y = F^-1(W . F(x)) + b``: a Fourier transform over the last ``d`` axes (the real FFT for real fields,
the full one for complex fields), keep the lowest modes, mix channels mode by mode with complex weights
(:func:`operators.kernels.spectral_mix`), and transform back at the input resolution, a scaled one, or
any requested grid. This is neuralop's ``SpectralConv`` (and can stand in for it as ``conv_module``);
where that layer is not a Fourier multiplier on every grid, this one is (see :class:`SpectralConv`).

Mode layout
-----------
``n_modes = (m_1, ..., m_d)`` counts modes as neuralop does: along every full-FFT axis (all axes of
complex data; all but the last of real data) the frequencies ``-(m//2) .. m - m//2 - 1`` are kept;
along the last axis of real data, the real FFT's ``m_d // 2 + 1`` non-negative frequencies. The
weight ``[C_in, C_out, *mode shape]`` stores the full-FFT axes in FFT order (frequencies
``0, 1, ..., -2, -1``), so the kept modes are two slices of the FFT output and no shift is ever
computed (:mod:`operators.layers.truncated_dft`). neuralop stores the same weights centred
(``fftshift`` order); :func:`operators.layers.neuralop_interop` converts.

When a grid is too coarse for the modes (``n_i < m_i``), only the modes it resolves are used, with
the matching part of the weight, so the layer runs at any resolution.

Speed
-----
Only the kept modes are ever transformed (:mod:`operators.layers.truncated_dft`); the mode mixing gets
its operands in mode-major memory layout (see :func:`_mode_major`); the bias is added at frequency
zero and a skip connection can be accumulated by the last product (``residual``), saving full-size
passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from operators.kernels import spectral_mix
from operators.layers import resolution_free
from operators.layers.factorized_weights import make_weight


#: real types the layer never computes in (see :meth:`SpectralConv.forward`)
_HALF_TYPES = (torch.float16, torch.bfloat16)
from operators.layers.truncated_dft import fourier_resample, gather_modes, truncated_fftn, truncated_ifftn


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
    """Spectral convolution ``[B, C_in, n_1..n_d] -> [B, C_out, *output grid]`` on real or complex fields.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    n_modes
        Modes kept per axis (neuralop's convention, see the module docstring); ``d = len(n_modes)``,
        any ``d >= 1``.
    bias
        Add a learned per-channel (real) bias after the inverse transform (as neuralop does).
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
    complex_data
        The fields are complex: full FFTs on every axis, ``m_d`` modes kept along the last axis too,
        complex outputs. Real inputs are then read as complex.
    resolution_scaling_factor
        Output grid ``round(n_i * r_i)`` for an input grid ``n_i`` (one factor, or one per axis) when
        no ``output_shape`` is given; None keeps the input grid.
    separable
        Depthwise: one weight per channel and mode (``[C, *mode shape]``, ``C_in = C_out``), no
        channel mixing.
    **neuralop_options
        The remaining arguments ``neuralop.layers.fno_block.FNOBlocks`` passes to its ``conv_module``
        (``fno_block_precision``, ``fixed_rank_modes``, ``decomposition_kwargs``, ``implementation``,
        ``device``). Only their default values are supported, any other raises ``ValueError``, except
        ``implementation`` (either value: it changes how neuralop evaluates the same function, not
        the function) and ``device`` (where the parameters are made).

    Notes
    -----
    On even grids with real data, outputs equal neuralop 2.0's ``SpectralConv`` for equal weights,
    also with 4 or more axes and when only the last axis is rescaled. Elsewhere neuralop's layer is
    not the Fourier multiplier it describes, and this one is: on odd grids neuralop shifts twice with
    ``fftshift`` (the identity only on even grids); a rescaled output along a full-FFT axis is zero
    padded or truncated at the end of the FFT-ordered spectrum, so negative frequencies land on
    positive ones (aliasing) or are dropped; and with complex data in 2 or more dimensions the last
    axis keeps the modes at the far negative end of the spectrum (``-n/2 ..``) and writes them at
    ``0 ..`` (in 1-D, frequencies ``0 .. m - 1``). Here every axis keeps the centred modes and every
    output grid is reached by zero padding or truncation of the centred spectrum.
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
        complex_data: bool = False,
        resolution_scaling_factor: float | Sequence[float] | None = None,
        separable: bool = False,
        **neuralop_options: Any,
    ) -> None:
        super().__init__()
        device = _check_neuralop_options(neuralop_options)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        modes = _int_tuple(n_modes)
        if not modes or min(modes) < 1:
            raise ValueError(f"n_modes must be one or more positive integers (got {n_modes!r})")
        self.order = len(modes)
        self.complex_data = bool(complex_data)
        max_modes = modes if max_n_modes is None else _int_tuple(max_n_modes)
        if len(max_modes) != self.order or any(m < n for m, n in zip(max_modes, modes)):
            raise ValueError(f"max_n_modes {max_modes} must have one entry >= n_modes {modes} per axis")
        self.max_n_modes = max_modes
        self.n_modes = modes
        self.resolution_scaling_factor = _scaling_factors(resolution_scaling_factor, self.order)
        self.separable = bool(separable)
        if self.separable and self.in_channels != self.out_channels:
            raise ValueError(f"a separable SpectralConv needs in_channels == out_channels "
                             f"(got {in_channels} and {out_channels})")
        self.fft_norm = fft_norm
        self.factorization = (factorization or "dense").lower()
        std = (2.0 / (in_channels + out_channels)) ** 0.5 if init_std == "auto" else float(init_std)
        mode_shape = max_modes if self.complex_data else (*max_modes[:-1], max_modes[-1] // 2 + 1)
        channels = (self.in_channels,) if self.separable else (self.in_channels, self.out_channels)
        self.weight = make_weight((*channels, *mode_shape), std, self.factorization, rank)
        if bias:
            self.bias = nn.Parameter(std * torch.randn(self.out_channels, *(1,) * self.order))
        else:
            self.register_parameter("bias", None)
        if device is not None:
            self.to(device)

    @property
    def n_modes(self) -> tuple[int, ...]:
        """Modes in use per axis (neuralop's convention); may be set to at most ``max_n_modes``."""
        return self._n_modes

    @n_modes.setter
    def n_modes(self, n_modes: int | Sequence[int]) -> None:
        modes = _int_tuple(n_modes)
        if len(modes) != self.order or any(m > big for m, big in zip(modes, self.max_n_modes)):
            raise ValueError(f"n_modes {modes} must have {self.order} entries <= max_n_modes {self.max_n_modes}")
        self._n_modes = modes

    def output_sizes(self, sizes: Sequence[int], output_shape: Sequence[int] | None = None) -> tuple[int, ...]:
        """The output grid for an input grid ``sizes``: ``output_shape``, else the scaled or same grid."""
        if output_shape is not None:
            out = _int_tuple(output_shape)
            if len(out) != self.order:
                raise ValueError(f"output_shape must have {self.order} sizes (got {list(output_shape)})")
            return out
        factors = self.resolution_scaling_factor
        if resolution_free.active():  # exporting: sizes may be symbolic, keep them so
            return tuple(sizes) if factors is None else tuple(resolution_free.rounded_fraction(r, s)
                                                              for s, r in zip(sizes, factors))
        if factors is None:
            return tuple(int(s) for s in sizes)
        return tuple(int(round(s * r)) for s, r in zip(sizes, factors))

    def kept_modes(self, sizes: Sequence[int], out_sizes: Sequence[int] | None = None) -> tuple[int, ...]:
        """Mode counts actually used on a grid of ``sizes`` (output grid ``out_sizes``).

        Returns the number of kept frequencies per axis; for real data the last entry counts
        real-FFT columns.
        """
        out_sizes = sizes if out_sizes is None else out_sizes
        kept = [min(m, n, o) for m, n, o in zip(self._n_modes, sizes, out_sizes)]
        if not self.complex_data:
            kept[-1] = min(self._n_modes[-1] // 2 + 1, sizes[-1] // 2 + 1, out_sizes[-1] // 2 + 1)
        return tuple(kept)

    def dense_weight(self, kept: Sequence[int] | None = None) -> torch.Tensor:
        """The complex weight ``[C_in, C_out, *kept]`` (separable: ``[C, *kept]``) for the kept mode
        counts (default: all)."""
        weight = self.weight()
        if kept is None:
            return weight
        first = weight.ndim - self.order
        full_axes = self.order if self.complex_data else self.order - 1
        for axis in range(full_axes):
            if weight.shape[first + axis] != kept[axis]:
                weight = gather_modes(weight, first + axis, kept[axis])
        if not self.complex_data and weight.shape[-1] != kept[-1]:
            weight = weight.narrow(-1, 0, kept[-1])
        return weight

    def forward(self, x: torch.Tensor, output_shape: Sequence[int] | None = None,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the layer.

        Parameters
        ----------
        x
            ``[B, C_in, n_1, ..., n_d]``, any grid size; real, or complex with ``complex_data``.
        output_shape
            Grid of the output (default: the input's, scaled by ``resolution_scaling_factor``).
            Larger grids evaluate the same band-limited output on finer points (Fourier interpolation).
        residual
            Optional tensor broadcastable to the output, added to it (a skip connection); fused into
            the inverse transform where possible.

        Returns
        -------
        torch.Tensor
            ``[B, C_out, *output grid]``, real (complex with ``complex_data``).

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
        if x.is_complex() and not self.complex_data:
            raise ValueError("SpectralConv got a complex input: build it with complex_data=True")
        if self.complex_data and not x.is_complex():
            x = x.to(torch.promote_types(x.dtype, torch.complex64))
        # traced / symbolic sizes stay symbolic when exporting (resolution_free); ints otherwise
        sizes = tuple(x.shape[-d:]) if resolution_free.active() else tuple(int(s) for s in x.shape[-d:])
        out_sizes = self.output_sizes(sizes, output_shape)
        kept = self.kept_modes(sizes, out_sizes)
        spectrum = truncated_fftn(x, kept, self.fft_norm, self.complex_data)
        weight = self.dense_weight(kept)
        if self.separable:
            mixed = spectrum * weight
        else:
            mixed = spectral_mix(_mode_major(spectrum), _mode_major(weight))
            if not torch.jit.is_tracing():  # a traced program cannot hold a Python autograd.Function
                mixed = _ModeMajorGrad.apply(mixed)
        if self.bias is not None:
            mixed = mixed + self._bias_spectrum(kept, out_sizes, mixed.dtype)
        return truncated_ifftn(mixed, out_sizes, self.fft_norm, self.complex_data, residual)

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
        """Bring a skip connection to the layer's output grid (identity when it is the input grid).

        Part of the ``conv_module`` interface of neuralop's ``FNOBlocks``. Other grids are reached by
        Fourier resampling (:func:`~operators.layers.truncated_dft.fourier_resample`: the trigonometric
        interpolant, real or complex as ``x`` is, evaluated on the new grid), consistent with the
        layer's own output grids; neuralop interpolates linearly in 1-D and bicubically in 2-D, with
        the grid ends as corners of a non-periodic grid.
        """
        d = self.order
        sizes = tuple(int(s) for s in x.shape[-d:])
        out_sizes = self.output_sizes(sizes, output_shape)
        if out_sizes == sizes:
            return x
        if x.dtype in _HALF_TYPES or torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.transform(x.float(), output_shape)
        return fourier_resample(x, out_sizes)

    def extra_repr(self) -> str:
        extras = "".join(f", {name}=True" for name in ("complex_data", "separable") if getattr(self, name))
        if self.resolution_scaling_factor is not None:
            extras += f", resolution_scaling_factor={list(self.resolution_scaling_factor)}"
        return (f"{self.in_channels}, {self.out_channels}, n_modes={self.n_modes}, "
                f"factorization={self.factorization!r}, bias={self.bias is not None}{extras}")


def _int_tuple(value: int | Sequence[int]) -> tuple[int, ...]:
    return (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)


def _scaling_factors(factor: float | Sequence[float] | None, order: int) -> tuple[float, ...] | None:
    """``resolution_scaling_factor`` as one positive float per axis (None stays None)."""
    if factor is None:
        return None
    factors = (float(factor),) * order if isinstance(factor, (int, float)) else tuple(float(f) for f in factor)
    if len(factors) != order or not all(f > 0 for f in factors):
        raise ValueError(f"resolution_scaling_factor must be one positive number or {order} of them "
                         f"(got {factor!r})")
    return factors


_NEURALOP_DEFAULTS: dict[str, Any] = {
    "fno_block_precision": "full",
    "fixed_rank_modes": False,
    "decomposition_kwargs": None,
    "implementation": None,
    "device": None,
}


def _check_neuralop_options(options: dict[str, Any]) -> torch.device | None:
    """Refuse the neuralop options this layer does not implement; return the requested device."""
    for name, value in options.items():
        if name not in _NEURALOP_DEFAULTS:
            raise TypeError(f"SpectralConv got an unexpected argument {name!r}")
        if name == "implementation":
            if value not in (None, "factorized", "reconstructed"):
                raise ValueError(f"implementation must be 'factorized' or 'reconstructed' (got {value!r})")
        elif name == "decomposition_kwargs":
            if value:
                raise ValueError(f"decomposition_kwargs are not supported (got {value!r}): they are tensorly's "
                                 "decomposition settings, and pdeop's factorised weights do not use tensorly")
        elif name == "device":
            continue
        elif value != _NEURALOP_DEFAULTS[name]:
            raise ValueError(f"SpectralConv supports only {name}={_NEURALOP_DEFAULTS[name]!r} (got {value!r})")
    device = options.get("device")
    return None if device is None else torch.device(device)
