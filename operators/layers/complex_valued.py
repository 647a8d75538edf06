"""Real layers applied to complex fields, as neuralop's FNO does with ``complex_data=True``.

A complex FNO keeps its pointwise layers (lifting, channel MLPs, skips, projection) real and applies
each to complex fields through two copies, ``f_r`` and ``f_i``, combined like a complex product:
``(f_r(Re x) - f_i(Im x)) + i (f_r(Im x) + f_i(Re x))``; for a linear ``f`` that is the complex
linear map ``f_r + i f_i``. Activations act on the real and imaginary parts separately (``CGELU``,
Trabelsi et al. 2018). The copies start equal (neuralop deep-copies the module), so weights copied
from a neuralop model map one to one.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def complex_gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU of the real and of the imaginary part (plain GELU on real tensors)."""
    if not x.is_complex():
        return F.gelu(x)
    return torch.complex(F.gelu(x.real), F.gelu(x.imag))


class ComplexValued(nn.Module):
    """A real module ``f`` applied to complex inputs through two copies (see the module docstring).

    Parameters
    ----------
    module
        The real module; ``fr`` is it, ``fi`` a deep copy with the same initial weights.

    Notes
    -----
    Both copies run once on the real and imaginary parts stacked along the batch axis, which gives
    the four products of the formula in two calls.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.fr = module
        self.fi = copy.deepcopy(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a complex ``[B, ...]`` tensor (a real one is read as complex) to a complex one."""
        if not x.is_complex():
            x = x.to(torch.promote_types(x.dtype, torch.complex64))
        parts = torch.cat((x.real, x.imag))
        batch = x.shape[0]
        from_real, from_imag = self.fr(parts), self.fi(parts)
        real = from_real[:batch] - from_imag[batch:]
        imag = from_real[batch:] + from_imag[:batch]
        return torch.complex(real, imag)
