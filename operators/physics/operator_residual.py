"""PDE-residual loss for neural operators (FNO, DeepONet) trained on time-dependent data.

A predicted trajectory ``u^0, ..., u^{T-1}`` on a uniform periodic grid, spaced ``dt`` in time,
should satisfy the PDE u_t = F(u). The loss measures the Crank-Nicolson (trapezoidal) residual

    r^n = (u^{n+1} - u^n) / dt - (F(u^{n+1}) + F(u^n)) / 2,        n = 0 .. T-2,

with F evaluated pseudo-spectrally in torch (differentiable, 2/3 dealiasing of the products, the
wavenumber conventions of :mod:`solvers.spectral`). The residual of the exact solution is O(dt^2),
so the term is meaningful when the stored step resolves the dynamics (KS with dt = 0.2, Burgers
with small dt); for the FNO Navier-Stokes data stored once per time unit it mostly measures the
time discretisation and should be weighted accordingly or used on finer predicted sequences.

Supported equations (:data:`EQUATIONS`, with their ``params``); a problem family names the one it
solves (``equation`` in its file, see :func:`pde_data.family.stored_description`):

* ``burgers``: u_t + u u_x = nu u_xx (``viscosity``);
* ``kuramoto-sivashinsky``: u_t + alpha u u_x + beta u_xx + gamma u_xxxx = 0 (``alpha``, ``beta``,
  ``gamma``, default 1);
* ``convection``: u_t + c u_x = nu u_xx (``c``, ``viscosity`` default 0);
* ``navier-stokes``: vorticity w_t + u . grad w = nu lap w + f, u = (psi_y, -psi_x), -lap psi = w
  (``viscosity``, optional ``forcing`` tensor ``[X, Y]``).

How a trainer uses it: with ``pred`` the de-normalised prediction ``[B, T, X(, Y)]`` of T consecutive
states (prepend the last input state to a one-step prediction to get T >= 2), the domain periods
``lengths`` (``[L]`` or ``[Lx, Ly]``; a per-sample ``[B]`` tensor for KS with varying L) and the stored
step ``dt``: ``loss = data_loss + weight * physics_loss(problem, pred, lengths, dt, params)``. The
operator trainer does exactly this when a run config has a ``training.physics`` section (see
:mod:`operators.training.physics_term`, which reads ``dt``, the periods and the parameters from the
dataset).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from solvers.errors import ConfigError
from solvers.spectral import dealias_mask

@dataclasses.dataclass(frozen=True)
class Equation:
    """A time-dependent equation u_t = F(u) whose residual :func:`physics_loss` evaluates.

    Attributes
    ----------
    parameters
        Names of the parameters ``F`` reads (``params`` of :func:`physics_loss`).
    space
        Number of spatial axes of a state.
    tendency
        ``tendency(prediction, grid, params)`` returns F as a function of states ``[B, T, *space]``.
    """

    parameters: tuple[str, ...]
    space: int
    tendency: Callable[[torch.Tensor, Sequence[Any], Mapping[str, Any]], Callable[[torch.Tensor], torch.Tensor]]


def physics_loss(problem: str, prediction: torch.Tensor, grid: Sequence[float | torch.Tensor], dt: float,
                 params: Mapping[str, Any] | None = None, relative: bool = True) -> torch.Tensor:
    """Mean squared Crank-Nicolson residual of a predicted trajectory.

    Parameters
    ----------
    problem
        One of :data:`PROBLEMS`.
    prediction
        ``[B, T, X]`` (1-D) or ``[B, T, X, Y]`` (Navier-Stokes), physical (de-normalised) values,
        T >= 2 consecutive states on the periodic grid ``x_j = j L / X``.
    grid
        Domain period of each spatial axis: floats, or (1-D) a ``[B]`` tensor of per-sample periods.
    dt
        Time between consecutive states.
    params
        Equation parameters (see the module docstring).
    relative
        Divide by the mean square of (u^{n+1} - u^n) / dt, so the loss is scale-free (like the
        relative L2 data loss) and a trivial constant prediction cannot score well.

    Returns
    -------
    torch.Tensor
        A scalar, differentiable with respect to ``prediction``.

    Raises
    ------
    ConfigError
        For an unknown problem, a missing parameter, fewer than two states or a wrong shape.
    """
    params = dict(params or {})
    if problem not in EQUATIONS:
        raise ConfigError(f"physics loss: unknown problem {problem!r}; supported: {', '.join(PROBLEMS)}")
    space = EQUATIONS[problem].space
    if prediction.ndim != 2 + space or prediction.shape[1] < 2:
        raise ConfigError(f"physics loss for {problem} needs a prediction [batch, time >= 2, {'X, Y' if space == 2 else 'X'}] "
                          f"(got shape {list(prediction.shape)})")
    if len(grid) != space:
        raise ConfigError(f"physics loss for {problem} needs {space} domain period(s) (got {len(grid)})")
    tendency = tendency_function(problem, prediction, grid, params)
    rate = (prediction[:, 1:] - prediction[:, :-1]) / dt
    forcing = tendency(prediction)
    residual = rate - 0.5 * (forcing[:, 1:] + forcing[:, :-1])
    loss = residual.square().mean()
    if relative:
        loss = loss / rate.detach().square().mean().clamp_min(1e-30)
    return loss


def tendency_function(problem: str, prediction: torch.Tensor, grid: Sequence[float | torch.Tensor],
                      params: Mapping[str, Any]):
    """F such that u_t = F(u), as a function of states ``[B, T, X(, Y)]`` (pseudo-spectral)."""
    return EQUATIONS[problem].tendency(prediction, grid, params)


def _navier_stokes(prediction: torch.Tensor, grid: Sequence[float | torch.Tensor], params: Mapping[str, Any]):
    device = prediction.device
    nu = _required(params, "viscosity", "navier-stokes")
    kx = _wavenumbers(prediction.shape[-2], grid[0], prediction.dtype, device, half=False)[:, None]
    ky = _wavenumbers(prediction.shape[-1], grid[1], prediction.dtype, device, half=True)[None, :]
    keep = _mask(prediction.shape[-2], device, half=False)[:, None] & _mask(prediction.shape[-1], device, half=True)[None, :]
    forcing = params.get("forcing")
    return lambda w: _vorticity_tendency(w, kx, ky, keep, nu, forcing)


def _spectral_1d(prediction: torch.Tensor, grid: Sequence[float | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Wavenumbers (``[B, 1, K]`` for per-sample periods) and the dealiasing mask of a 1-D state."""
    lengths = grid[0]
    k = _wavenumbers(prediction.shape[-1], lengths, prediction.dtype, prediction.device, half=True)
    if isinstance(lengths, torch.Tensor):
        k = k[:, None, :]  # per-sample periods: [B, 1, K]
    return k, _mask(prediction.shape[-1], prediction.device, half=True)


def _burgers(prediction: torch.Tensor, grid: Sequence[float | torch.Tensor], params: Mapping[str, Any]):
    k, keep = _spectral_1d(prediction, grid)
    nu = _required(params, "viscosity", "burgers")
    return lambda u: _one_d(u, k, keep, alpha=1.0, linear=-nu * k**2)


def _kuramoto_sivashinsky(prediction: torch.Tensor, grid: Sequence[float | torch.Tensor], params: Mapping[str, Any]):
    k, keep = _spectral_1d(prediction, grid)
    alpha, beta, gamma = (float(params.get(name, 1.0)) for name in ("alpha", "beta", "gamma"))
    return lambda u: _one_d(u, k, keep, alpha=alpha, linear=beta * k**2 - gamma * k**4)


def _convection(prediction: torch.Tensor, grid: Sequence[float | torch.Tensor], params: Mapping[str, Any]):
    k, keep = _spectral_1d(prediction, grid)
    c = _required(params, "c", "convection")
    nu = float(params.get("viscosity", 0.0))
    return lambda u: _one_d(u, k, keep, alpha=0.0, linear=-1j * c * k - nu * k**2)


#: the equations with a residual, by the name a family declares as its ``equation``
EQUATIONS: dict[str, Equation] = {
    "burgers": Equation(("viscosity",), 1, _burgers),
    "kuramoto-sivashinsky": Equation(("alpha", "beta", "gamma"), 1, _kuramoto_sivashinsky),
    "convection": Equation(("c", "viscosity"), 1, _convection),
    "navier-stokes": Equation(("viscosity", "forcing"), 2, _navier_stokes),
}
#: the parameters each equation's tendency reads
PARAMETERS: dict[str, tuple[str, ...]] = {name: equation.parameters for name, equation in EQUATIONS.items()}
PROBLEMS = tuple(EQUATIONS)


def _required(params: Mapping[str, Any], name: str, problem: str) -> float:
    if name not in params:
        raise ConfigError(f"physics loss for {problem} needs the parameter {name!r}")
    return float(params[name])


def _wavenumbers(n: int, length: float | torch.Tensor, dtype: torch.dtype, device, half: bool) -> torch.Tensor:
    """2 pi k / L in FFT order (half spectrum when ``half``); ``[B, K]`` for per-sample periods."""
    index = torch.fft.rfftfreq(n, 1.0 / n) if half else torch.fft.fftfreq(n, 1.0 / n)
    index = index.to(dtype=dtype, device=device)
    if isinstance(length, torch.Tensor):
        return 2 * math.pi * index[None, :] / length.to(dtype=dtype, device=device)[:, None]
    return 2 * math.pi / float(length) * index


def _mask(n: int, device, half: bool) -> torch.Tensor:
    mask = torch.as_tensor(dealias_mask(n), device=device)
    return mask[: n // 2 + 1] if half else mask


def _one_d(u: torch.Tensor, k: torch.Tensor, keep: torch.Tensor, alpha: float, linear: torch.Tensor) -> torch.Tensor:
    """F(u) = -alpha (u^2 / 2)_x + L u for 1-D problems, with the product dealiased."""
    n = u.shape[-1]
    u_hat = torch.fft.rfft(u, dim=-1)
    out = linear * u_hat
    if alpha:
        smooth = torch.fft.irfft(u_hat * keep, n=n, dim=-1)
        out = out - alpha * 0.5j * k * torch.fft.rfft(smooth * smooth, dim=-1) * keep
    return torch.fft.irfft(out, n=n, dim=-1)


def _vorticity_tendency(w: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor, keep: torch.Tensor, nu: float,
                        forcing: torch.Tensor | None) -> torch.Tensor:
    """F(w) = -(u w_x + v w_y) + nu lap w + f with u = psi_y, v = -psi_x, -lap psi = w."""
    shape = w.shape[-2:]
    w_hat = torch.fft.rfft2(w, dim=(-2, -1))
    k2 = kx**2 + ky**2
    psi_hat = w_hat / torch.where(k2 == 0, torch.ones_like(k2), k2)
    psi_hat = torch.where(k2 == 0, torch.zeros_like(psi_hat), psi_hat)

    def field(spectrum: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(spectrum * keep, s=shape, dim=(-2, -1))

    u, v = field(1j * ky * psi_hat), field(-1j * kx * psi_hat)
    w_x, w_y = field(1j * kx * w_hat), field(1j * ky * w_hat)
    advection = torch.fft.rfft2(u * w_x + v * w_y, dim=(-2, -1)) * keep
    out = torch.fft.irfft2(-advection - nu * k2 * w_hat, s=shape, dim=(-2, -1))
    if forcing is not None:
        out = out + torch.as_tensor(forcing, dtype=w.dtype, device=w.device)
    return out
