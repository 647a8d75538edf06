"""Pure-PyTorch reference of the spectral convolution's mode mixing."""

from __future__ import annotations

import torch


def spectral_mix_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mix channels mode by mode: ``out[b, o, k] = sum_i x[b, i, k] * weight[i, o, k]``.

    Parameters
    ----------
    x
        Complex Fourier coefficients, shape ``[B, C_in, m_1, ..., m_d]`` (any ``d >= 1``).
    weight
        Complex weights, shape ``[C_in, C_out, m_1, ..., m_d]``.

    Returns
    -------
    torch.Tensor
        Complex tensor of shape ``[B, C_out, m_1, ..., m_d]``.
    """
    return torch.einsum("bi...,io...->bo...", x, weight)
