"""PINN networks: coordinate embedding, MLP and "modified MLP" backbones, optional hard initial
condition and time-marching windows.

The network maps coordinates ``[N, in_dim]`` (column 0 is time, then space) to fields
``[N, out_dim]``. Non-periodic inputs are scaled to [-1, 1]; periodic inputs go through the exactly
periodic Fourier features cos(2 pi m (x - lo) / L), sin(2 pi m (x - lo) / L), m = 1..modes, so the
network is periodic in them to the last bit (the hard form of a periodic boundary condition).
Optionally the embedded coordinates then pass through random Fourier features
[cos(h B), sin(h B)], B ~ N(0, s^2) (Tancik et al. 2020), which the "expert's guide" of Wang et al.
(2023) recommends against the spectral bias of MLPs on fast-varying solutions.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import torch
from torch import nn

from operators.registry import register_model
from pde_data.config import check

_ACTIVATIONS = {"tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


class _Sine(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)


def _activation(name: str) -> nn.Module:
    return _Sine() if name == "sin" else _ACTIVATIONS[name]()


@dataclasses.dataclass(frozen=True)
class PINNConfig:
    """Settings of a PINN network.

    Parameters
    ----------
    in_dim, out_dim
        Number of input coordinates (time first) and output fields.
    width, depth
        Hidden width and number of hidden layers.
    backbone
        ``"mlp"`` or ``"modified_mlp"`` (Wang, Teng & Perdikaris 2021: two encoders U, V and
        gates H <- (1 - Z) * U + Z * V after each hidden layer Z).
    activation
        ``"tanh"``, ``"sin"``, ``"gelu"`` or ``"silu"``.
    lower, upper
        Bounds of each input coordinate (used for scaling, or as the period of periodic inputs).
    periodic
        Per input: embed it with exactly periodic Fourier features of period ``upper - lower``.
    fourier_modes
        Harmonics per periodic input.
    hard_initial
        When set, the PDE specification mapping (``{"name": ..., ...}``) whose initial condition is
        imposed exactly: u = u0(x) + (t - t0) / (t1 - t0) * net(t, x) (first window only).
    windows
        Number of time-marching windows; window k has its own network on
        [t0 + k T / windows, t0 + (k + 1) T / windows] and time is rescaled per window.
    random_features
        Number of random Fourier features after the coordinate embedding (even; 0: none).
    random_feature_scale
        Standard deviation ``s`` of the random frequencies ``B``.
    """

    in_dim: int = 2
    out_dim: int = 1
    width: int = 64
    depth: int = 4
    backbone: Literal["mlp", "modified_mlp"] = "mlp"
    activation: Literal["tanh", "sin", "gelu", "silu"] = "tanh"
    lower: tuple[float, ...] = (0.0, 0.0)
    upper: tuple[float, ...] = (1.0, 1.0)
    periodic: tuple[bool, ...] = (False, False)
    fourier_modes: int = 1
    hard_initial: dict[str, Any] | None = None
    windows: int = 1
    random_features: int = 0
    random_feature_scale: float = 1.0

    def __post_init__(self) -> None:
        check(self.in_dim >= 1, f"model.in_dim must be >= 1 (got {self.in_dim})")
        check(self.out_dim >= 1, f"model.out_dim must be >= 1 (got {self.out_dim})")
        check(self.width >= 1, f"model.width must be >= 1 (got {self.width})")
        check(self.depth >= 1, f"model.depth must be >= 1 (got {self.depth})")
        check(self.fourier_modes >= 1, f"model.fourier_modes must be >= 1 (got {self.fourier_modes})")
        check(self.windows >= 1, f"model.windows must be >= 1 (got {self.windows})")
        check(self.random_features >= 0 and self.random_features % 2 == 0,
              f"model.random_features must be an even integer >= 0 (got {self.random_features})")
        check(self.random_feature_scale > 0,
              f"model.random_feature_scale must be > 0 (got {self.random_feature_scale})")
        for name in ("lower", "upper", "periodic"):
            check(len(getattr(self, name)) == self.in_dim,
                  f"model.{name} needs one entry per input ({self.in_dim}; got {list(getattr(self, name))})")
        check(all(hi > lo for lo, hi in zip(self.lower, self.upper)),
              f"model.upper must exceed model.lower in every coordinate (got {self.lower} and {self.upper})")
        check(not self.periodic[0] or self.windows == 1, "model.periodic[0] (time) cannot be periodic with windows")


class CoordinateEmbedding(nn.Module):
    """Scale non-periodic coordinates to [-1, 1]; map periodic ones to exact Fourier features."""

    def __init__(self, lower: tuple[float, ...], upper: tuple[float, ...], periodic: tuple[bool, ...],
                 modes: int) -> None:
        super().__init__()
        self.register_buffer("lower", torch.tensor(lower, dtype=torch.float64), persistent=False)
        self.register_buffer("upper", torch.tensor(upper, dtype=torch.float64), persistent=False)
        self.periodic = tuple(periodic)
        self.register_buffer("harmonics", torch.arange(1, modes + 1, dtype=torch.float64), persistent=False)
        self.out_dim = sum(2 * modes if p else 1 for p in periodic)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        lower, upper = self.lower.to(coords.dtype), self.upper.to(coords.dtype)
        parts = []
        for i, periodic in enumerate(self.periodic):
            c = coords[:, i : i + 1]
            if periodic:
                phase = (2 * math.pi / (upper[i] - lower[i])) * (c - lower[i]) * self.harmonics.to(coords.dtype)
                parts += [torch.cos(phase), torch.sin(phase)]
            else:
                parts.append(2 * (c - lower[i]) / (upper[i] - lower[i]) - 1)
        return torch.cat(parts, dim=1)


class RandomFourierFeatures(nn.Module):
    """``[cos(h B), sin(h B)]`` with fixed frequencies ``B ~ N(0, scale^2)`` of shape ``[in_dim, features / 2]``.

    ``B`` is drawn from torch's global generator when the module is made and is a (saved) buffer,
    not a parameter: the features stay what they were drawn as.
    """

    def __init__(self, in_dim: int, features: int, scale: float) -> None:
        super().__init__()
        self.register_buffer("frequencies", scale * torch.randn(in_dim, features // 2))
        self.out_dim = features

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        phase = h @ self.frequencies.to(h.dtype)
        return torch.cat((torch.cos(phase), torch.sin(phase)), dim=1)


class MLP(nn.Module):
    """Fully connected network: ``depth`` hidden layers of ``width`` units, linear output."""

    def __init__(self, in_dim: int, out_dim: int, width: int, depth: int, activation: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(in_dim if i == 0 else width, width), _activation(activation)]
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        _xavier(self)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class ModifiedMLP(nn.Module):
    """Gated two-encoder MLP: U = s(W_u h), V = s(W_v h); H <- (1 - Z) U + Z V after each layer."""

    def __init__(self, in_dim: int, out_dim: int, width: int, depth: int, activation: str) -> None:
        super().__init__()
        self.encode_u = nn.Linear(in_dim, width)
        self.encode_v = nn.Linear(in_dim, width)
        self.hidden = nn.ModuleList(nn.Linear(in_dim if i == 0 else width, width) for i in range(depth))
        self.out = nn.Linear(width, out_dim)
        self.act = _activation(activation)
        _xavier(self)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        u, v = self.act(self.encode_u(h)), self.act(self.encode_v(h))
        for layer in self.hidden:
            z = self.act(layer(h))
            h = (1 - z) * u + z * v
        return self.out(h)


def _xavier(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)


@register_model("pinn", PINNConfig)
class PINN(nn.Module):
    """Physics-informed network u(t, x): embedding, backbone, optional hard initial condition.

    ``forward(coords [N, in_dim]) -> [N, out_dim]``.
    """

    def __init__(self, config: PINNConfig) -> None:
        super().__init__()
        self.config = config
        backbone = MLP if config.backbone == "mlp" else ModifiedMLP
        t0, t1 = config.lower[0], config.upper[0]
        self.edges = [t0 + (t1 - t0) * k / config.windows for k in range(config.windows + 1)]
        # a buffer rather than a tensor made in forward, so traced and exported programs see no constant
        self.register_buffer("inner_edges", torch.tensor(self.edges[1:-1], dtype=torch.float64), persistent=False)
        self.embeddings = nn.ModuleList()
        self.nets = nn.ModuleList()
        for k in range(config.windows):
            lower = (self.edges[k], *config.lower[1:])
            upper = (self.edges[k + 1], *config.upper[1:])
            embedding = CoordinateEmbedding(lower, upper, config.periodic, config.fourier_modes)
            width_in = embedding.out_dim
            if config.random_features:
                features = RandomFourierFeatures(embedding.out_dim, config.random_features,
                                                 config.random_feature_scale)
                embedding, width_in = nn.Sequential(embedding, features), features.out_dim
            self.embeddings.append(embedding)
            self.nets.append(backbone(width_in, config.out_dim, config.width, config.depth, config.activation))
        self.initial = None
        if config.hard_initial is not None:
            from operators.physics.pde_specs import build_pde

            self.initial = build_pde(config.hard_initial).initial

    def window_of(self, t: torch.Tensor) -> torch.Tensor:
        """Index of the time window holding each time in ``t`` (``[N]`` integers)."""
        return torch.bucketize(t.detach().contiguous(), self.inner_edges.to(t.dtype), right=True)

    def window_forward(self, k: int, coords: torch.Tensor) -> torch.Tensor:
        """Output of window ``k``'s network at ``coords`` (whatever their time)."""
        out = self.nets[k](self.embeddings[k](coords))
        if k == 0 and self.initial is not None:
            t = coords[:, :1]
            out = self.initial(coords[:, 1:]) + (t - self.edges[0]) / (self.edges[1] - self.edges[0]) * out
        return out

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        if len(self.nets) == 1:
            return self.window_forward(0, coords)
        window = self.window_of(coords[:, 0])
        out = coords.new_zeros(coords.shape[0], self.config.out_dim)
        for k in range(len(self.nets)):
            index = torch.nonzero(window == k).squeeze(1)
            if index.numel():
                out = out.index_copy(0, index, self.window_forward(k, coords.index_select(0, index)))
        return out
