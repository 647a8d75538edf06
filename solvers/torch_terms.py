"""PyTorch ports of the nonlinear terms of the spectral integrators (torch is an array library here).

Each port is built from the NumPy term (:class:`~solvers.navier_stokes.VorticityAdvection`,
:class:`~solvers.spectral.ConservativeAdvection1D`) and copies its precomputed operators to the
device, so the operators have one implementation. The arithmetic follows the NumPy term step for
step (the same products with purely imaginary multipliers, the same FFTs); the transforms are
torch's (cuFFT on a GPU, pocketfft or MKL on the CPU), so results agree with the NumPy path to
rounding, not bit for bit. The state is a batch of half spectra on the device; :meth:`start` takes
NumPy fields (drawn on the CPU exactly as for the NumPy path) and :meth:`observe` returns tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from solvers.navier_stokes import VorticityAdvection
from solvers.spectral import ConservativeAdvection1D


def real_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype of a NumPy real precision (float64 or float32)."""
    return {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[np.dtype(dtype)]


def to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A contiguous copy of ``array`` on ``device`` with the same dtype (and therefore the same numbers)."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


@dataclass
class _VorticityWorkspace:
    spectra: torch.Tensor  # [b, 4, n, n // 2 + 1]: psi_y, -psi_x, w_x, w_y
    fields: torch.Tensor  # [b, 4, n, n]


class TorchVorticityAdvection:
    """:class:`~solvers.navier_stokes.VorticityAdvection` on a torch device: ``F(w_hat) = rfft2(u . grad w)``.

    Parameters
    ----------
    term
        The NumPy term whose operators (derivative multipliers, sizes, precision) are copied.
    device
        Where the state lives.
    """

    def __init__(self, term: VorticityAdvection, device: torch.device) -> None:
        self.n = term.n
        self.device = device
        self.dtype = real_dtype(term.dtype)
        self.derivatives = to_tensor(term.derivatives, device)  # [4, n, m], purely imaginary
        self.velocity = self.derivatives[:2]

    def workspace(self, batch: int) -> _VorticityWorkspace:
        """Scratch tensors for :meth:`evaluate` on ``batch`` samples."""
        n, m = self.n, self.n // 2 + 1
        return _VorticityWorkspace(torch.empty((batch, 4, n, m), dtype=self.derivatives.dtype, device=self.device),
                                   torch.empty((batch, 4, n, n), dtype=self.dtype, device=self.device))

    def evaluate(self, w_hat: torch.Tensor, out: torch.Tensor, work: _VorticityWorkspace) -> None:
        """Write ``F(w_hat) = rfft2(u w_x + v w_y)`` into ``out`` (``[b, n, n // 2 + 1]`` spectra)."""
        torch.mul(w_hat.unsqueeze(1), self.derivatives, out=work.spectra)
        physical = torch.fft.irfft2(work.spectra, s=(self.n, self.n), out=work.fields)  # u, v, w_x, w_y
        advect = physical[:, 0]
        advect.mul_(physical[:, 2])
        physical[:, 1].mul_(physical[:, 3])
        advect.add_(physical[:, 1])
        torch.fft.rfft2(advect, out=out)

    def start(self, initial: np.ndarray) -> torch.Tensor:
        """Real 2-D FFT of ``[b, n, n]`` NumPy vorticity, on the device in the state's precision."""
        return torch.fft.rfft2(torch.from_numpy(np.asarray(initial)).to(self.device, self.dtype))

    def observe(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Vorticity ``[b, n, n]`` and ``max(|u| + |v|)`` per sample (tensors on the device)."""
        size = (self.n, self.n)
        w = torch.fft.irfft2(state, s=size)
        uv = torch.fft.irfft2(state.unsqueeze(1) * self.velocity, s=size)
        return w, (uv[:, 0].abs() + uv[:, 1].abs()).amax(dim=(1, 2))


class TorchAdvection1D:
    """:class:`~solvers.spectral.ConservativeAdvection1D` on a torch device: ``F(v) = rfft(irfft(v) ** 2)``.

    Parameters
    ----------
    term
        The NumPy term (grid size, precision; its factor ``-i k / 2`` is folded into the
        integrator's coefficients, which the integrator's port copies).
    device
        Where the state lives.
    """

    def __init__(self, term: ConservativeAdvection1D, device: torch.device) -> None:
        self.n = term.n
        self.device = device
        self.dtype = real_dtype(term.dtype)

    def workspace(self, batch: int) -> torch.Tensor:
        """Scratch physical values for :meth:`evaluate` on ``batch`` samples."""
        return torch.empty((batch, self.n), dtype=self.dtype, device=self.device)

    def evaluate(self, v: torch.Tensor, out: torch.Tensor, workspace: torch.Tensor) -> None:
        """Write ``F(v) = rfft(irfft(v) ** 2)`` into ``out`` (complex ``[b, n // 2 + 1]``)."""
        torch.fft.irfft(v, n=self.n, out=workspace)
        workspace.square_()
        torch.fft.rfft(workspace, out=out)

    def start(self, initial: np.ndarray) -> torch.Tensor:
        """Real FFT of ``[b, n]`` NumPy fields, on the device in the state's precision."""
        return torch.fft.rfft(torch.from_numpy(np.asarray(initial)).to(self.device, self.dtype))

    def observe(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fields ``[b, n]`` and ``max |u|`` per sample (tensors on the device)."""
        u = torch.fft.irfft(state, n=self.n)
        return u, u.abs().amax(dim=1)


#: the port of each NumPy term class
TERM_PORTS: dict[type, type] = {VorticityAdvection: TorchVorticityAdvection,
                                ConservativeAdvection1D: TorchAdvection1D}


def port_term(term: Any, device: torch.device) -> Any:
    """The PyTorch port of a NumPy nonlinear term (see :data:`TERM_PORTS`)."""
    for cls, port in TERM_PORTS.items():
        if isinstance(term, cls):
            return port(term, device)
    raise TypeError(f"no PyTorch port of the nonlinear term {type(term).__name__}")
