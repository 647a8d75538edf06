"""MG-TFNO: a Tucker-factorised FNO applied patch by patch with multigrid context (Kossaifi et al. 2023,
"Multi-Grid Tensorized Fourier Neural Operator for High-Resolution PDEs").

The input on a periodic grid is cut into ``2^levels`` patches per axis; each patch is given its
neighbourhood at ``levels`` coarser resolutions as extra channels (windows ``2, 4, .., 2^levels``
times wider, averaged down to the patch's size, wrapping around the torus:
:mod:`operators.layers.multigrid_patching`), all patches of all samples go through one TFNO as a
batch, and the interiors of its outputs are stitched back into the full field. A patch is processed
at ``2^-levels`` of the grid per axis, so memory per model call shrinks by ``2^(levels d)`` at equal
batch; the weights are shared by all patches, so the model has the parameter count of a TFNO with
``C (levels + 1)`` input channels (``C`` plus ``2 d`` with ``global_grid``).

Where each patch lies on the torus is given by ``global_grid``: the periodic coordinates
``sin 2 pi x_k, cos 2 pi x_k`` of the whole grid, appended as channels before patching (needed when
the dynamics is not translation invariant, such as the Navier-Stokes forcing of the FNO data); the
TFNO's own ``positional_grid`` channels are coordinates within the patch.

The grid must be divisible by ``2^(2 levels + 1)`` per axis; the overlap of neighbouring patches
(``patch_margin``, a fraction of the patch size per side) gives the TFNO, whose FFT wraps each
window, room for its edge effects, which are cut away when stitching.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from operators.layers.multigrid_patching import check_patch_grid, multigrid_patches, stitch_patches
from operators.models.fno import TFNO, TFNOConfig
from operators.registry import register_model
from pde_data.config import check
from solvers.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class MGTFNOConfig(TFNOConfig):
    """Settings of an MG-TFNO: those of :class:`~operators.models.fno.TFNOConfig` (for the TFNO that
    processes the patches; ``in_channels`` counts the fields of the whole grid) plus the patching.

    Parameters
    ----------
    levels
        ``2^levels`` patches per axis and ``levels`` coarser context windows.
    patch_margin
        Overlap on each side of a patch as a fraction of the patch size (rounded to whole cells).
    global_grid
        Append the periodic coordinates of the whole grid before patching.
    """

    levels: int = 1
    patch_margin: float = 0.25
    global_grid: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.levels >= 0, f"levels must be >= 0 (got {self.levels})")
        check(0 <= self.patch_margin <= 1, f"patch_margin must be a fraction in [0, 1] of the patch (got "
                                           f"{self.patch_margin})")

    def patch_config(self) -> TFNOConfig:
        """The config of the TFNO that processes one patch (its channels: every level of every field)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(TFNOConfig)}
        fields["in_channels"] = self.patch_channels
        return TFNOConfig(**fields)

    @property
    def patch_channels(self) -> int:
        """Channels of one patch: ``(in_channels [+ 2 d]) (levels + 1)``."""
        return (self.in_channels + (2 * self.n_dim if self.global_grid else 0)) * (self.levels + 1)

    def margins(self, sizes: tuple[int, ...]) -> tuple[int, ...]:
        """Overlap cells per axis on a grid of ``sizes``."""
        return tuple(int(round(self.patch_margin * n / 2 ** self.levels)) for n in sizes)


def periodic_coordinates(x: torch.Tensor, n_dim: int) -> torch.Tensor:
    """``[B, C, *space]`` -> ``[B, C + 2 d, *space]`` with ``sin 2 pi x_k, cos 2 pi x_k`` appended (``x_k = i / n_k``)."""
    channels = []
    sizes = x.shape[2:]
    for axis, n in enumerate(sizes):
        angle = 2 * math.pi * torch.arange(n, dtype=torch.float64, device=x.device) / n
        shape = [1] * n_dim
        shape[axis] = n
        for wave in (torch.sin(angle), torch.cos(angle)):
            channels.append(wave.reshape(shape).expand(sizes))
    grid = torch.stack(channels).to(x.dtype)
    return torch.cat((x, grid.unsqueeze(0).expand(x.shape[0], *grid.shape)), dim=1)


@register_model("mg_tfno", MGTFNOConfig)
class MGTFNO(nn.Module):
    """Multigrid-patched TFNO (see the module docstring).

    Parameters
    ----------
    config
        An :class:`MGTFNOConfig`.

    Notes
    -----
    ``forward(x)`` maps ``[B, in_channels, *space]`` to ``[B, out_channels, *space]`` on periodic grids
    divisible by ``2^(2 levels + 1)`` per axis.
    """

    def __init__(self, config: MGTFNOConfig) -> None:
        super().__init__()
        self.config = config
        self.tfno = TFNO(config.patch_config())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[B, in_channels, *space]`` to ``[B, out_channels, *space]``."""
        c = self.config
        if x.ndim != c.n_dim + 2 or x.shape[1] != c.in_channels:
            raise ConfigError(f"MG-TFNO expects [B, {c.in_channels}, {c.n_dim} spatial axes], got {list(x.shape)}")
        sizes = tuple(int(n) for n in x.shape[2:])
        margins = c.margins(sizes)
        check_patch_grid(sizes, c.levels, margins)
        if c.global_grid:
            x = periodic_coordinates(x, c.n_dim)
        return stitch_patches(self.tfno(multigrid_patches(x, c.levels, margins)), c.levels, margins, x.shape[0])
