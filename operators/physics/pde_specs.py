"""PDE specifications used by every physics-informed model (PINN, causal PINN, LPINN).

A specification is a frozen dataclass holding the equation's parameters and domain. It knows the
initial condition, the PDE residual computed by autograd from a network's output, and (when the
equation allows it) its Lagrangian form for LPINN. It knows nothing about networks or training.

Coordinates are always a tensor ``[N, 1 + d]``: column 0 is time ``t``, then ``x`` (and ``y`` in
2D). Every spatial axis is periodic on ``[0, length)`` (``[-1, 1)`` for Burgers); periodicity is
imposed either softly (a boundary loss) or exactly (a Fourier-feature embedding of ``x`` in the
model, see :mod:`operators.models.pinn`).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import torch

from pde_data.config import check, from_mapping, to_mapping
from solvers.errors import ConfigError

#: registered name -> specification class
PDES: dict[str, type[PDESpec]] = {}


def register_pde(name: str) -> Callable[[type[PDESpec]], type[PDESpec]]:
    """Class decorator registering a PDE specification under ``name`` (a class may have several)."""

    def decorate(cls: type[PDESpec]) -> type[PDESpec]:
        if name in PDES and PDES[name] is not cls:
            raise ValueError(f"PDE {name!r} is registered twice")
        PDES[name] = cls
        return cls

    return decorate


def build_pde(settings: Mapping[str, Any]) -> PDESpec:
    """Build a specification from ``{"name": registered name, **parameters}``.

    Raises
    ------
    ConfigError
        For a missing or unknown name or invalid parameters (the message names the field).
    """
    settings = dict(settings)
    name = settings.pop("name", None)
    if name is None:
        raise ConfigError(f"pde needs a 'name' entry; known PDEs are: {', '.join(sorted(PDES))}")
    if name not in PDES:
        raise ConfigError(f"unknown pde.name {name!r}; known PDEs are: {', '.join(sorted(PDES))}")
    spec = from_mapping(PDES[name], settings, where="pde.")
    object.__setattr__(spec, "name", name)
    return spec


def describe_pde(spec: PDESpec) -> dict[str, Any]:
    """Return the mapping that :func:`build_pde` turns back into ``spec``."""
    return {"name": spec.name, **to_mapping(spec)}


def gradient(u: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """All first partial derivatives of ``u`` (shape ``[N]``) with respect to ``coords`` ``[N, D]``.

    The graph is kept, so the result can be differentiated again and trained through. Points
    that ``u`` does not depend on get zeros.
    """
    (grad,) = torch.autograd.grad(u, coords, torch.ones_like(u), create_graph=True, allow_unused=True)
    return torch.zeros_like(coords) if grad is None else grad


def partial(u: torch.Tensor, coords: torch.Tensor, axis: int, order: int = 1) -> torch.Tensor:
    """``order``-th partial derivative of ``u`` along column ``axis`` of ``coords`` (shape ``[N]``)."""
    for _ in range(order):
        u = gradient(u, coords)[:, axis]
    return u


@dataclasses.dataclass(frozen=True)
class LagrangianForm:
    """A 1-D PDE written along characteristics: dx/dt = speed(u), du/dt = source(u) + nu u_xx."""

    speed: Callable[[torch.Tensor], torch.Tensor]
    source: Callable[[torch.Tensor], torch.Tensor]
    nu: float
    #: bound on |speed| over the solution, used to scale the characteristic network's output
    max_speed: float


@dataclasses.dataclass(frozen=True)
class PDESpec(ABC):
    """Base class of the PDE specifications (a frozen dataclass of parameters).

    Subclasses define the spatial domain through :attr:`lower` / :attr:`upper`, the network's
    output fields, the initial condition and the residual.
    """

    t_end: float = 1.0
    name: str = dataclasses.field(default="", init=False, compare=False)

    def __post_init__(self) -> None:
        check(self.t_end > 0, f"pde.t_end must be > 0 (got {self.t_end})")

    # -- domain ------------------------------------------------------------------------------
    @property
    @abstractmethod
    def lower(self) -> tuple[float, ...]:
        """Lower corner of the spatial domain, one value per spatial axis."""

    @property
    @abstractmethod
    def upper(self) -> tuple[float, ...]:
        """Upper corner of the spatial domain (the periodic images of ``lower``)."""

    @property
    def space_dim(self) -> int:
        """Number of spatial axes."""
        return len(self.lower)

    @property
    def fields(self) -> tuple[str, ...]:
        """Names of the network's output columns."""
        return ("u",)

    @property
    def observable_names(self) -> tuple[str, ...]:
        """Names of the fields compared with the reference solution (see :meth:`observable`)."""
        return self.fields

    # -- equations -------------------------------------------------------------------------------
    @abstractmethod
    def initial(self, x: torch.Tensor) -> torch.Tensor:
        """Initial condition of the network's outputs: ``x [N, d]`` -> ``[N, len(fields)]``."""

    @abstractmethod
    def residual(self, output: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """PDE residuals ``[N, n_equations]`` of ``output = net(coords)``; zero for an exact solution.

        ``coords`` must require grad and ``output`` must have been computed from it.
        """

    def observable(self, output: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Fields compared with the reference, ``[N, len(observable_names)]`` (default: the output)."""
        return output

    def lagrangian(self) -> LagrangianForm:
        """The equation along characteristics, for LPINN.

        Raises
        ------
        ConfigError
            When the equation has no first-order characteristic form handled by LPINN.
        """
        raise ConfigError(f"LPINN needs a 1-D advection/reaction/diffusion PDE; pde.name {self.name!r} "
                          "has no Lagrangian form (use method pinn or causal_pinn)")


def _u(output: torch.Tensor) -> torch.Tensor:
    return output[:, 0]


@dataclasses.dataclass(frozen=True)
class PeriodicInterval(PDESpec):
    """A 1-D equation on the periodic interval [0, length)."""

    length: float = 2 * math.pi

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.length > 0, f"pde.length must be > 0 (got {self.length})")

    @property
    def lower(self) -> tuple[float, ...]:
        return (0.0,)

    @property
    def upper(self) -> tuple[float, ...]:
        return (self.length,)


@register_pde("convection")
@dataclasses.dataclass(frozen=True)
class Convection(PeriodicInterval):
    """u_t + c u_x = nu u_xx on [0, length), periodic; u0 = sin(2 pi k x / length).

    With the defaults this is the failure-mode benchmark of Krishnapriyan et al. (2021):
    x in [0, 2 pi), t in [0, 1], u0 = sin x.
    """

    c: float = 1.0
    nu: float = 0.0
    wavenumber: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.nu >= 0, f"pde.nu must be >= 0 (got {self.nu})")

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(2 * math.pi * self.wavenumber / self.length * x[:, :1])

    def residual(self, output: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        u = _u(output)
        du = gradient(u, coords)
        res = du[:, 0] + self.c * du[:, 1]
        if self.nu:
            res = res - self.nu * partial(du[:, 1], coords, 1)
        return res[:, None]

    def lagrangian(self) -> LagrangianForm:
        c = self.c
        return LagrangianForm(speed=lambda u: torch.full_like(u, c), source=torch.zeros_like, nu=self.nu,
                              max_speed=abs(c))


@dataclasses.dataclass(frozen=True)
class SymmetricInterval(PDESpec):
    """A 1-D equation on the periodic interval [-1, 1)."""

    @property
    def lower(self) -> tuple[float, ...]:
        return (-1.0,)

    @property
    def upper(self) -> tuple[float, ...]:
        return (1.0,)


@register_pde("burgers")
@dataclasses.dataclass(frozen=True)
class Burgers(SymmetricInterval):
    """Viscous Burgers u_t + u u_x = nu u_xx on [-1, 1), periodic; u0 = shift - sin(pi x).

    ``shift = 0`` is the classic PINN test (a standing front at x = 0 by t ~ 0.3); ``shift != 0``
    moves the front with speed ``shift`` (Galilean invariance).
    """

    nu: float = 0.01 / math.pi
    shift: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.nu > 0, f"pde.nu must be > 0 for viscous Burgers (got {self.nu})")

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        return self.shift - torch.sin(math.pi * x[:, :1])

    def residual(self, output: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        u = _u(output)
        du = gradient(u, coords)
        u_xx = partial(du[:, 1], coords, 1)
        return (du[:, 0] + u * du[:, 1] - self.nu * u_xx)[:, None]

    def lagrangian(self) -> LagrangianForm:
        return LagrangianForm(speed=lambda u: u, source=torch.zeros_like, nu=self.nu,
                              max_speed=abs(self.shift) + 1.0)


@register_pde("reaction")
@register_pde("reaction-diffusion")
@dataclasses.dataclass(frozen=True)
class ReactionDiffusion(PeriodicInterval):
    """Fisher reaction-diffusion u_t = nu u_xx + rho u (1 - u) on [0, length), periodic.

    u0 = exp(-(x - length/2)^2 / (2 width^2)), as in Krishnapriyan et al. (2021); ``nu = 0`` is the
    pure reaction problem.
    """

    rho: float = 5.0
    nu: float = 0.0
    width: float = math.pi / 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.nu >= 0, f"pde.nu must be >= 0 (got {self.nu})")
        check(self.width > 0, f"pde.width must be > 0 (got {self.width})")

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((x[:, :1] - self.length / 2) ** 2) / (2 * self.width**2))

    def reaction(self, u: torch.Tensor) -> torch.Tensor:
        """The reaction law rho u (1 - u)."""
        return self.rho * u * (1 - u)

    def residual(self, output: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        u = _u(output)
        du = gradient(u, coords)
        res = du[:, 0] - self.reaction(u)
        if self.nu:
            res = res - self.nu * partial(du[:, 1], coords, 1)
        return res[:, None]

    def lagrangian(self) -> LagrangianForm:
        return LagrangianForm(speed=torch.zeros_like, source=self.reaction, nu=self.nu, max_speed=0.0)


@register_pde("allen-cahn")
@dataclasses.dataclass(frozen=True)
class AllenCahn(SymmetricInterval):
    """Allen-Cahn u_t - d u_xx + rho (u^3 - u) = 0 on [-1, 1), periodic; u0 = x^2 cos(pi x).

    The defaults (d = 1e-4, rho = 5, t in [0, 1]) are the benchmark of Wang, Sankaran and
    Perdikaris (2022) and of the "expert's guide" (Wang et al. 2023): the solution sharpens into
    interfaces of width ~ sqrt(2 d / rho) ~ 6e-3 that a plain PINN fails to reach.
    """

    d: float = 1e-4
    rho: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.d >= 0, f"pde.d must be >= 0 (got {self.d})")

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] ** 2 * torch.cos(math.pi * x[:, :1])

    def reaction(self, u: torch.Tensor) -> torch.Tensor:
        """The reaction law rho (u - u^3)."""
        return self.rho * (u - u**3)

    def residual(self, output: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        u = _u(output)
        du = gradient(u, coords)
        return (du[:, 0] - self.d * partial(du[:, 1], coords, 1) - self.reaction(u))[:, None]

    def lagrangian(self) -> LagrangianForm:
        return LagrangianForm(speed=torch.zeros_like, source=self.reaction, nu=self.d, max_speed=0.0)


@register_pde("kuramoto-sivashinsky")
@dataclasses.dataclass(frozen=True)
class KuramotoSivashinsky(PeriodicInterval):
    """u_t + alpha u u_x + beta u_xx + gamma u_xxxx = 0 on [0, length), periodic.

    u0 = cos(k x)(1 + sin(k x)) with k = 2 pi / length. The defaults are the regular regime of Wang,
    Sankaran and Perdikaris (2022): alpha = 100/16, beta = 100/16^2, gamma = 100/16^4, length 2 pi.
    """

    alpha: float = 100 / 16
    beta: float = 100 / 16**2
    gamma: float = 100 / 16**4

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.gamma > 0, f"pde.gamma must be > 0 (got {self.gamma})")

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        kx = 2 * math.pi / self.length * x[:, :1]
        return torch.cos(kx) * (1 + torch.sin(kx))

    def residual(self, output: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        u = _u(output)
        du = gradient(u, coords)
        u_xx = partial(du[:, 1], coords, 1)
        u_xxxx = partial(u_xx, coords, 1, order=2)
        return (du[:, 0] + self.alpha * u * du[:, 1] + self.beta * u_xx + self.gamma * u_xxxx)[:, None]


@register_pde("navier-stokes")
@dataclasses.dataclass(frozen=True)
class NavierStokes2D(PDESpec):
    """2-D incompressible Navier-Stokes in vorticity form on the torus [0, length)^2.

    w_t + u . grad w = nu lap w + f with w = v_x - u_y. The network outputs the velocity (u, v);
    the residuals are the vorticity equation and the continuity equation u_x + v_y = 0.

    ``initial = "taylor-green"``: u0 = A cos(kx) sin(ky), v0 = -A sin(kx) cos(ky), k = 2 pi / length.
    ``forcing = "fno"``: f = 0.1 (sin k(x + y) + cos k(x + y)) (the FNO data's forcing on the unit torus).
    """

    nu: float = 0.01
    length: float = 2 * math.pi
    amplitude: float = 1.0
    initial_condition: str = "taylor-green"
    forcing: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.nu > 0, f"pde.nu must be > 0 (got {self.nu})")
        check(self.initial_condition == "taylor-green",
              f"pde.initial_condition must be 'taylor-green' (got {self.initial_condition!r})")
        check(self.forcing in ("none", "fno"), f"pde.forcing must be 'none' or 'fno' (got {self.forcing!r})")

    @property
    def lower(self) -> tuple[float, ...]:
        return (0.0, 0.0)

    @property
    def upper(self) -> tuple[float, ...]:
        return (self.length, self.length)

    @property
    def fields(self) -> tuple[str, ...]:
        return ("u", "v")

    @property
    def observable_names(self) -> tuple[str, ...]:
        return ("w",)

    @property
    def wavenumber(self) -> float:
        """k = 2 pi / length."""
        return 2 * math.pi / self.length

    def initial(self, x: torch.Tensor) -> torch.Tensor:
        k = self.wavenumber
        kx, ky = k * x[:, 0], k * x[:, 1]
        return self.amplitude * torch.stack((torch.cos(kx) * torch.sin(ky), -torch.sin(kx) * torch.cos(ky)), dim=1)

    def force(self, x: torch.Tensor) -> torch.Tensor:
        """Forcing f at spatial points ``x [N, 2]`` (shape ``[N]``)."""
        if self.forcing == "none":
            return torch.zeros_like(x[:, 0])
        s = self.wavenumber * (x[:, 0] + x[:, 1])
        return 0.1 * (torch.sin(s) + torch.cos(s))

    def observable(self, output: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        du, dv = gradient(output[:, 0], coords), gradient(output[:, 1], coords)
        return (dv[:, 1] - du[:, 2])[:, None]

    def residual(self, output: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        u, v = output[:, 0], output[:, 1]
        du, dv = gradient(u, coords), gradient(v, coords)
        w = dv[:, 1] - du[:, 2]
        dw = gradient(w, coords)
        lap_w = partial(dw[:, 1], coords, 1) + partial(dw[:, 2], coords, 2)
        vorticity = dw[:, 0] + u * dw[:, 1] + v * dw[:, 2] - self.nu * lap_w - self.force(coords[:, 1:])
        continuity = du[:, 1] + dv[:, 2]
        return torch.stack((vorticity, continuity), dim=1)
