"""Unit-Gaussian normalisation of fields, fitted on the training split and stored as plain lists.

A :class:`UnitGaussianNormalizer` maps a channel-first batch ``[B, C, *space]`` to
``(v - mean) / (std + eps)``. Its statistics have shape ``[C_s, *space_s]`` where ``C_s`` is 1
(one statistic shared by every channel, e.g. the time steps of one variable) or ``C`` (one per
channel), and ``space_s`` is the grid (``pointwise``) or all ones (``global``). It is a
``torch.nn.Module`` with buffers so that it travels inside an exported model, and it serialises to
plain JSON lists (:meth:`to_dict` / :meth:`from_dict`) for checkpoints.

A pointwise normaliser applied on another grid (zero-shot super-resolution) resamples its
statistics: by Fourier interpolation on periodic grids, multilinearly on vertex grids that include
both boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from solvers.errors import ConfigError

NormalizationKind = Literal["none", "pointwise", "global"]

#: added to the standard deviation before dividing, as in the classic FNO code
DEFAULT_EPS = 1e-5


class UnitGaussianNormalizer(nn.Module):
    """Shift and scale a field to zero mean and unit variance (pointwise or global).

    Parameters
    ----------
    mean, std
        Statistics of shape ``[C_s, *space_s]`` (see the module docstring).
    kind
        ``"pointwise"`` or ``"global"``; informational, and decides whether statistics are
        resampled on another grid.
    periodic
        Whether the grid is periodic (``x_i = i/n``) rather than a vertex grid with both ends.
    eps
        Added to ``std`` before dividing.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, kind: str = "pointwise",
                 periodic: bool = True, eps: float = DEFAULT_EPS) -> None:
        super().__init__()
        if mean.shape != std.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and std {tuple(std.shape)} differ in shape")
        self.register_buffer("mean", mean.detach().to(torch.float32).clone())
        self.register_buffer("std", std.detach().to(torch.float32).clone())
        self.kind = kind
        self.periodic = periodic
        self.eps = float(eps)

    @classmethod
    def fit(cls, data: torch.Tensor | np.ndarray, kind: str, shared_channels: bool = False,
            periodic: bool = True, eps: float = DEFAULT_EPS) -> UnitGaussianNormalizer:
        """Fit statistics to training data.

        Parameters
        ----------
        data
            ``[N, C, *space]`` training fields.
        kind
            ``"pointwise"`` (one mean/std per grid point, averaged over samples) or ``"global"``
            (one scalar per channel).
        shared_channels
            Pool all channels into one statistic (for the time steps of one variable).
        """
        if kind not in ("pointwise", "global"):
            raise ConfigError(f"normalization must be 'none', 'pointwise' or 'global' (got {kind!r})")
        values = torch.as_tensor(np.asarray(data) if not isinstance(data, torch.Tensor) else data)
        values = values.to(torch.float64)
        n_space = values.ndim - 2
        axes = [0, 1] if shared_channels else [0]
        if kind == "global":
            axes += list(range(2, 2 + n_space))
        mean = values.mean(dim=axes, keepdim=True)
        std = values.std(dim=axes, keepdim=True, unbiased=False)
        return cls(mean[0], std[0], kind=kind, periodic=periodic, eps=eps)

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        space = tuple(like.shape[2:])
        mean, std = self.mean, self.std
        if self.kind == "pointwise" and tuple(mean.shape[1:]) != space:
            mean = resample(mean, space, self.periodic)
            std = resample(std, space, self.periodic)
        return mean.to(like.dtype), std.to(like.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(x - mean) / (std + eps)`` for ``x`` of shape ``[B, C, *space]``."""
        mean, std = self._stats(x)
        return (x - mean) / (std + self.eps)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`encode`."""
        mean, std = self._stats(x)
        return x * (std + self.eps) + mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`encode`."""
        return self.encode(x)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible description (statistics as nested lists)."""
        return {
            "kind": self.kind,
            "periodic": self.periodic,
            "eps": self.eps,
            "shape": list(self.mean.shape),
            "mean": self.mean.cpu().tolist(),
            "std": self.std.cpu().tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitGaussianNormalizer:
        """Rebuild a normaliser written by :meth:`to_dict`."""
        try:
            mean = torch.tensor(data["mean"], dtype=torch.float32)
            std = torch.tensor(data["std"], dtype=torch.float32)
            shape = tuple(int(s) for s in data["shape"])
            kind, periodic, eps = str(data["kind"]), bool(data["periodic"]), float(data["eps"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"normaliser statistics are malformed ({exc})") from None
        if tuple(mean.shape) != shape or tuple(std.shape) != shape:
            raise ConfigError(f"normaliser statistics do not have their recorded shape {list(shape)}")
        return cls(mean, std, kind=kind, periodic=periodic, eps=eps)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, shape={list(self.mean.shape)}, periodic={self.periodic}"


def fit_normalizer(data: torch.Tensor | np.ndarray, kind: NormalizationKind, shared_channels: bool = False,
                   periodic: bool = True) -> UnitGaussianNormalizer | None:
    """Fit a normaliser of ``kind`` to ``data`` ``[N, C, *space]``, or return None for ``"none"``."""
    if kind == "none":
        return None
    return UnitGaussianNormalizer.fit(data, kind, shared_channels=shared_channels, periodic=periodic)


class ChunkedFit:
    """:func:`fit_normalizer` of the concatenation of the chunks given to :meth:`add`, without holding it.

    Each chunk ``[n_i, C, *space]`` contributes its float64 mean and sum of squared deviations, which
    are merged pairwise (Chan, Golub and LeVeque's update: no cancellation of large sums); the result
    equals the one-array fit to float64 rounding. Fits fed chunk by chunk let one read of a split
    serve several statistics (:meth:`pde_data.lazy_split.LazySplit.scan`).

    Parameters
    ----------
    kind, shared_channels, periodic
        As in :func:`fit_normalizer` (``kind`` ``pointwise`` or ``global``).
    """

    def __init__(self, kind: NormalizationKind, shared_channels: bool = False, periodic: bool = True) -> None:
        if kind not in ("pointwise", "global"):
            raise ConfigError(f"normalization must be 'none', 'pointwise' or 'global' (got {kind!r})")
        self.kind, self.shared_channels, self.periodic = kind, shared_channels, periodic
        self.count, self.mean, self.m2 = 0, None, None

    def add(self, chunk: torch.Tensor) -> None:
        """Merge the statistics of ``chunk`` ``[n, C, *space]``."""
        values = torch.as_tensor(chunk).to(torch.float64)
        axes = [0, 1] if self.shared_channels else [0]
        if self.kind == "global":
            axes += list(range(2, values.ndim))
        n = int(np.prod([values.shape[a] for a in axes]))
        chunk_mean = values.mean(dim=axes, keepdim=True)
        chunk_m2 = ((values - chunk_mean) ** 2).sum(dim=axes, keepdim=True)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, chunk_mean, chunk_m2
            return
        delta = chunk_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + chunk_m2 + delta ** 2 * (self.count * n / total)
        self.count = total

    def result(self) -> UnitGaussianNormalizer:
        """The normaliser of everything added."""
        if self.mean is None:
            raise ValueError("no data to fit a normaliser on")
        return UnitGaussianNormalizer(self.mean[0], (self.m2[0] / self.count).sqrt(), kind=self.kind,
                                      periodic=self.periodic)


def concat_channels(parts: Sequence[tuple[UnitGaussianNormalizer, int]]) -> UnitGaussianNormalizer:
    """One normaliser for channel-concatenated fields, from ``(normaliser, channels)`` parts.

    A part whose statistics are shared by all its channels (``C_s = 1``) is repeated ``channels``
    times; pointwise and global parts are broadcast to a common grid shape.
    """
    means, stds = [], []
    space = torch.broadcast_shapes(*(tuple(n.mean.shape[1:]) for n, _ in parts))
    for normalizer, channels in parts:
        if normalizer.mean.shape[0] not in (1, channels):
            raise ValueError(f"a normaliser with {normalizer.mean.shape[0]} channels cannot cover {channels}")
        means.append(normalizer.mean.expand(channels, *space))
        stds.append(normalizer.std.expand(channels, *space))
    first = parts[0][0]
    return UnitGaussianNormalizer(torch.cat(means), torch.cat(stds), kind=first.kind, periodic=first.periodic,
                                  eps=first.eps)


def normalizer_from_dict(data: Mapping[str, Any] | None) -> UnitGaussianNormalizer | None:
    """Inverse of ``None if n is None else n.to_dict()``."""
    return None if data is None else UnitGaussianNormalizer.from_dict(data)


def resample(field: torch.Tensor, shape: Sequence[int], periodic: bool) -> torch.Tensor:
    """Resample ``field`` ``[C, *space]`` to the grid ``shape``.

    Periodic grids use Fourier interpolation (exact for band-limited fields; the Nyquist mode of
    an even grid is split symmetrically); vertex grids with both boundaries use multilinear
    interpolation with aligned corners, so nested grids (421 -> 85 points) keep shared values.
    """
    shape = tuple(int(s) for s in shape)
    if tuple(field.shape[1:]) == shape:
        return field
    if periodic:
        return _fourier_resample(field, shape)
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(shape)]
    return nn.functional.interpolate(field[None], size=shape, mode=mode, align_corners=True)[0]


def _fourier_resample(field: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    dims = tuple(range(1, field.ndim))
    spectrum = torch.fft.fftn(field.to(torch.float64), dim=dims)
    for axis, (n_old, n_new) in zip(dims, zip(field.shape[1:], shape)):
        spectrum = _resize_axis(spectrum, axis, n_old, n_new)
    scale = float(np.prod(shape)) / float(np.prod(field.shape[1:]))
    return (torch.fft.ifftn(spectrum, dim=dims).real * scale).to(field.dtype)


def _resize_axis(spectrum: torch.Tensor, axis: int, n_old: int, n_new: int) -> torch.Tensor:
    """Zero-pad or truncate one FFT axis of an unnormalised spectrum.

    Modes strictly below the smaller grid's Nyquist frequency are copied; when upsampling from an
    even grid its Nyquist mode is split evenly between +k and -k so real fields stay real.
    """
    if n_old == n_new:
        return spectrum
    half = (min(n_old, n_new) - 1) // 2
    out = spectrum.new_zeros(spectrum.shape[:axis] + (n_new,) + spectrum.shape[axis + 1:])
    out.narrow(axis, 0, half + 1).copy_(spectrum.narrow(axis, 0, half + 1))
    if half:
        out.narrow(axis, n_new - half, half).copy_(spectrum.narrow(axis, n_old - half, half))
    if n_old < n_new and n_old % 2 == 0:
        nyquist = spectrum.narrow(axis, n_old // 2, 1) / 2
        out.narrow(axis, n_old // 2, 1).add_(nyquist)
        out.narrow(axis, n_new - n_old // 2, 1).add_(nyquist)
    return out
