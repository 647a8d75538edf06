"""The hot kernels (rational activation, spectral mode mixing) and the choice of their backend.

Callers use :func:`rational` and :func:`spectral_mix`; which implementation runs (the compiled
``pdeop`` custom ops on CUDA or CPU, or the pure-PyTorch reference) is decided here, per call, by
the tensors' device and dtype and by whether the extension is built (:mod:`operators.kernels.ops`).
All paths compute the same function with the same gradients; :func:`backend` says which one runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from operators.kernels import ops
from operators.kernels.spectral_reference import spectral_mix_reference

_REAL_DTYPES = (torch.float32, torch.float64)
_COMPLEX_DTYPES = (torch.complex64, torch.complex128)
_force_reference = False


def backend(device: str | torch.device | None = None) -> str:
    """Name of the kernel path in use: ``"cuda"``, ``"cpp"`` or ``"torch"``.

    Parameters
    ----------
    device
        The device the kernels would run on. By default: ``"cuda"`` when the extension has CUDA
        kernels and a GPU is present, else the CPU.

    Returns
    -------
    str
        ``"cuda"`` (compiled CUDA kernels), ``"cpp"`` (compiled CPU kernels) or ``"torch"``
        (the pure-PyTorch reference: extension missing, ``PDEOP_NO_EXT=1``, a device without
        compiled kernels, or inside :func:`reference_kernels`).
    """
    if _force_reference or not ops.load():
        return "torch"
    if device is None:
        return "cuda" if ops.has_cuda_kernels() and torch.cuda.is_available() else "cpp"
    kind = torch.device(device).type
    if kind == "cpu":
        return "cpp"
    if kind == "cuda" and ops.has_cuda_kernels():
        return "cuda"
    return "torch"


@contextlib.contextmanager
def reference_kernels() -> Iterator[None]:
    """Run the pure-PyTorch reference kernels inside the ``with`` block (tests, benchmarks)."""
    global _force_reference
    previous = _force_reference
    _force_reference = True
    try:
        yield
    finally:
        _force_reference = previous


def _compiled(tensors: tuple[torch.Tensor, ...], dtypes: tuple[torch.dtype, ...]) -> bool:
    """Whether the compiled ops can take these tensors (one device with kernels, one dtype)."""
    first = tensors[0]
    if first.dtype not in dtypes or any(t.dtype != first.dtype or t.device != first.device for t in tensors):
        return False
    return backend(first.device) != "torch"


def spectral_mix(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Channel mixing per Fourier mode: ``out[b, o, k] = sum_i x[b, i, k] * weight[i, o, k]``.

    Parameters
    ----------
    x
        Complex Fourier coefficients ``[B, C_in, m_1, ..., m_d]``, ``d >= 1``; any strides
        (slices of an FFT output are read in place by the compiled kernels, which take up to
        :func:`operators.kernels.ops.max_mode_axes` mode axes, 8; more run the reference).
    weight
        Complex weights ``[C_in, C_out, m_1, ..., m_d]``, same dtype as ``x``.

    Returns
    -------
    torch.Tensor
        ``[B, C_out, m_1, ..., m_d]``, contiguous. Differentiable in ``x`` and ``weight``.
    """
    if 3 <= x.dim() <= 2 + ops.max_mode_axes() and _compiled((x, weight), _COMPLEX_DTYPES):
        return torch.ops.pdeop.spectral_mix_forward(x, weight)
    return spectral_mix_reference(x, weight)


def rational(
    x: torch.Tensor,
    numerator: torch.Tensor,
    denominator: torch.Tensor,
    groups: int,
    channel_dim: int = -1,
) -> torch.Tensor:
    """Group-rational activation ``P(x)/Q(x)``, channel by channel.

    Parameters
    ----------
    x
        Input, channels-last ``[..., C]`` (``channel_dim=-1``) or channels-first
        ``[B, C, *spatial]`` (``channel_dim=1``); any dimension may hold the channels.
    numerator
        ``[6]`` (``a0..a5``, shared by all groups) or ``[G, 6]`` (one numerator per group).
    denominator
        ``[G, 4]`` (``b1..b4``); only ``|b_j|`` enters ``Q = 1 + sum_j |b_j| |x|^j``.
    groups
        Number of groups ``G``; must divide the number of channels ``C``; channel ``c`` is in
        group ``c // (C // G)``.
    channel_dim
        Dimension of ``x`` holding the channels.

    Returns
    -------
    torch.Tensor
        ``F(x)``, same shape and dtype as ``x``; differentiable in ``x`` and both coefficient
        tensors (twice, in ``x``, away from ``x = 0`` and ``b_j = 0``). A half-precision ``x``
        (bfloat16 / float16, as autocast hands it on) is evaluated in float32 and the result is
        float32: the polynomials' terms up to ``|x|^5`` would lose every digit in an 8-bit mantissa.

    Raises
    ------
    ValueError
        If the shapes of ``x``, ``numerator`` and ``denominator`` do not fit ``groups``.

    See Also
    --------
    operators.kernels.rational_reference : the formulas, the ``sign(0) = 0`` convention and the
        pure-PyTorch path.
    """
    from operators.kernels.rational_reference import check_rational_operands, rational_reference

    check_rational_operands(x, numerator, denominator, groups, channel_dim)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
        numerator, denominator = numerator.float(), denominator.float()
    if _compiled((x, numerator, denominator), _REAL_DTYPES):
        return torch.ops.pdeop.rational_forward(x, numerator, denominator, groups, channel_dim)
    return rational_reference(x, numerator, denominator, groups, channel_dim)
