"""Complex spectral weights ``[C_in, C_out, m_1, ..., m_d]``: dense, Tucker or CP factorised.

Every weight module returns the dense complex tensor from :meth:`~DenseWeight.forward`; the spectral
convolution then mixes modes with it. Reconstructing the dense tensor costs ``C_in * C_out * prod(m)``
multiply-adds per call, which is small next to the FFTs of a training step, and keeps one mixing path
for all three parametrisations.

The fractional ``rank`` follows tensorly's conventions (so that a TFNO has the parameter count of
neuralop's TFNO at the same ``rank``): for Tucker a fraction ``c`` with ranks ``round(c * I_k)``
such that ``c^N prod(I) + c sum(I_k^2) = rank * prod(I)``; for CP the rank
``round(rank * prod(I) / sum(I))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from solvers.errors import ConfigError


def _complex_normal(shape: Sequence[int], std: float) -> torch.Tensor:
    """Complex Gaussian with ``E|w|^2 = std^2`` (real and imaginary parts each ``std / sqrt 2``)."""
    return torch.randn(*shape, dtype=torch.cfloat) * std


def _factor_matrices(shape: Sequence[int], ranks: Sequence[int], std: float) -> nn.ParameterList:
    """Complex Gaussian factor matrices ``U_k`` of shape ``[shape[k], ranks[k]]``, drawn in axis order."""
    return nn.ParameterList([nn.Parameter(_complex_normal((s, r), std)) for s, r in zip(shape, ranks)])


def _rank_fraction(rank: float) -> float:
    """``rank`` as a fraction of the dense parameter count, checked to be > 0."""
    fraction = float(rank)
    if not fraction > 0:
        raise ConfigError(f"rank must be a positive fraction of the dense parameters (got {rank})")
    return fraction


def tucker_ranks(shape: Sequence[int], rank: float | Sequence[int]) -> tuple[int, ...]:
    """Tucker ranks for a tensor of ``shape``.

    Parameters
    ----------
    shape
        Dense tensor shape.
    rank
        A fraction of the dense parameter count (float in (0, 1]), or explicit ranks per axis.

    Returns
    -------
    tuple[int, ...]
        One rank per axis, each at least 1.
    """
    if not isinstance(rank, (int, float)):
        ranks = tuple(int(r) for r in rank)
        if len(ranks) != len(shape) or min(ranks) < 1:
            raise ConfigError(f"Tucker ranks must be {len(shape)} positive integers (got {list(rank)})")
        return ranks
    fraction = _rank_fraction(rank)
    n_dense = math.prod(shape)
    squares = sum(s * s for s in shape)

    def excess(c: float) -> float:
        return n_dense * c ** len(shape) + squares * c - fraction * n_dense

    low, high = 0.0, max(fraction, 1.0)
    for _ in range(200):  # bisection to machine precision; excess is increasing in c
        mid = 0.5 * (low + high)
        if excess(mid) > 0:
            high = mid
        else:
            low = mid
    c = 0.5 * (low + high)
    return tuple(max(int(round(s * c)), 1) for s in shape)


def cp_rank(shape: Sequence[int], rank: float | int) -> int:
    """CP rank for a tensor of ``shape``: a fraction of the dense parameters, or an integer."""
    if isinstance(rank, int) and not isinstance(rank, bool):
        if rank < 1:
            raise ConfigError(f"CP rank must be a positive integer (got {rank})")
        return rank
    return max(int(round(math.prod(shape) * _rank_fraction(rank) / sum(shape))), 1)


class ComplexWeight(nn.Module):
    """Base of the weight modules: dtype conversions keep complex parameters complex.

    ``Module.double()`` leaves complex parameters untouched and ``Module.to(torch.float64)`` casts them
    to real, dropping the imaginary part. Here every conversion is applied to the parameter's real
    view (``view_as_real``), so ``.double()`` or ``.to(torch.float64)`` gives complex128 weights,
    ``.float()`` complex64, and device moves work as usual.

    Parameters
    ----------
    shape
        The dense weight shape ``[C_in, C_out, m_1, ..., m_d]``, kept as :attr:`shape`.
    """

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> ComplexWeight:
        def complex_aware(tensor: torch.Tensor) -> torch.Tensor:
            if not tensor.is_complex():
                return fn(tensor)
            return torch.view_as_complex(fn(torch.view_as_real(tensor)).contiguous())

        return super()._apply(complex_aware, recurse)


class DenseWeight(ComplexWeight):
    """A dense complex weight ``[C_in, C_out, m_1, ..., m_d]``.

    Parameters
    ----------
    shape
        The weight shape.
    std
        Standard deviation of the initial values (``E|w|^2 = std^2``).
    """

    def __init__(self, shape: Sequence[int], std: float) -> None:
        super().__init__(shape)
        self.weight = nn.Parameter(_complex_normal(self.shape, std))

    def forward(self) -> torch.Tensor:
        """Return the dense complex weight."""
        return self.weight


class TuckerWeight(ComplexWeight):
    """A Tucker-factorised complex weight: ``W = core x_1 U_1 x_2 U_2 ... x_N U_N``.

    Parameters
    ----------
    shape
        The dense weight shape.
    std
        Standard deviation of the reconstructed weight at initialisation (approximately).
    rank
        Fraction of the dense parameter count, or explicit ranks per axis (see :func:`tucker_ranks`).

    Notes
    -----
    ``core`` has shape ``ranks``; ``factors[k]`` has shape ``[shape[k], ranks[k]]``.
    """

    def __init__(self, shape: Sequence[int], std: float, rank: float | Sequence[int] = 1.0) -> None:
        super().__init__(shape)
        self.ranks = tucker_ranks(self.shape, rank)
        # Each entry of W is a sum of prod(ranks) products of N+1 factors: spread the variance so
        # that Var(W) = prod(ranks) * s^(2(N+1)) = std^2.
        per_factor = (std / math.sqrt(math.prod(self.ranks))) ** (1.0 / (len(self.shape) + 1))
        self.core = nn.Parameter(_complex_normal(self.ranks, per_factor))
        self.factors = _factor_matrices(self.shape, self.ranks, per_factor)

    def forward(self) -> torch.Tensor:
        """Return the reconstructed dense complex weight."""
        weight = self.core
        # Multiply one mode at a time: contract axis 0 with U_k and move the new axis to the back;
        # after N steps the axes are back in order.
        for factor in self.factors:
            weight = torch.tensordot(weight, factor, dims=([0], [1]))
        return weight


class CPWeight(ComplexWeight):
    """A CP-factorised complex weight: ``W[i_1..i_N] = sum_r lambda_r prod_k U_k[i_k, r]``.

    Parameters
    ----------
    shape, std
        As in :class:`TuckerWeight`.
    rank
        Fraction of the dense parameter count, or an integer rank (see :func:`cp_rank`).
    """

    def __init__(self, shape: Sequence[int], std: float, rank: float | int = 1.0) -> None:
        super().__init__(shape)
        self.rank = cp_rank(self.shape, rank)
        self.weights = nn.Parameter(torch.ones(self.rank, dtype=torch.cfloat))
        per_factor = (std / math.sqrt(self.rank)) ** (1.0 / len(self.shape))
        self.factors = _factor_matrices(self.shape, [self.rank] * len(self.shape), per_factor)

    def forward(self) -> torch.Tensor:
        """Return the reconstructed dense complex weight."""
        letters = "abcdefghijklmnopqrstuvwxy"[: len(self.shape)]
        equation = "z," + ",".join(f"{c}z" for c in letters) + "->" + letters
        return torch.einsum(equation, self.weights, *self.factors)


def make_weight(shape: Sequence[int], std: float, factorization: str, rank: float | Sequence[int]) -> nn.Module:
    """Build the weight module for ``factorization`` in ``{"dense", "tucker", "cp"}``."""
    kind = (factorization or "dense").lower()
    if kind == "dense":
        return DenseWeight(shape, std)
    if kind == "tucker":
        return TuckerWeight(shape, std, rank)
    if kind == "cp":
        return CPWeight(shape, std, rank)
    raise ConfigError(f"factorization must be one of 'dense', 'tucker', 'cp' (got {factorization!r})")
