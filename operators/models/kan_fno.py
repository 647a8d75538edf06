"""KAN-FNO: a Fourier neural operator whose pointwise MLPs are GR-KAN stacks.

Everything but the pointwise MLPs is :class:`~operators.models.fno.FNO` (spectral convolutions,
skips, the GELUs between blocks, padding, grid channels). The lifting MLP, the channel MLP of every
Fourier block and the projection MLP become :class:`~operators.layers.kan_mlp.KANMLP` stacks with
the same channel counts: a learnable group-rational activation before each linear map, the first
starting as the identity and the others as GELU, so a fresh KAN-FNO computes what an FNO with the
same linear weights computes, up to the rational fits' errors.

Known limitation (measured on Navier–Stokes, 32^2, 5-step rollouts): training with the gradient
through a whole autoregressive rollout (``training.mode: unrolled``) fails from a fresh KAN-FNO,
while teacher forcing trains it as well as FNO. The variance-preserving GR-KAN init gives outputs of
order one where FNO's default init gives almost zero, so the first rollouts are amplified (initial
loss 3.5-9 against FNO's 1.0) and the model then stalls near relative error 1; with the output layer
scaled down instead, a hidden value reached 1.6e9 after two Adam steps. Rationals have no fixed
tails: once ``a_5`` and the small ``b_j`` of the GELU fit move by a step size, ``F`` grows like
``x^3`` on inputs of a few units, and composing that over blocks and rollout steps explodes. The
training configs therefore use teacher forcing.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from operators.layers.kan_mlp import KANMLP, RationalSettings
from operators.models.fno import FNO, FNOConfig
from operators.registry import register_model


@dataclasses.dataclass(frozen=True)
class KANFNOConfig(FNOConfig, RationalSettings):
    """Settings of a KAN-FNO: those of :class:`FNOConfig` plus the rational activations'
    (:class:`~operators.layers.kan_mlp.RationalSettings`: ``groups``, ``first_init``,
    ``hidden_init``, ``shared_numerator``, ``linear_init``, ``rational_lr_scale``).

    ``rational_lr_scale`` stays 1 here (0.1 in KAN-DeepONet). Issue 18's third session measured 0.3:
    on Burgers with a validation split (``benchmarks/kan_diagnosis.py``, seeds 100-107) it gave
    0.94x the validation error of 1, but on the benchmark's seeds (``kan_operators``, seeds 0-4 and
    0-2, paired) it was worse than 1 on Burgers and Darcy; see the issue 18 notes.
    """

    def __post_init__(self) -> None:
        FNOConfig.__post_init__(self)
        RationalSettings.__post_init__(self)


@register_model("kan-fno", KANFNOConfig)
class KANFNO(FNO):
    """FNO with GR-KAN lifting, block and projection MLPs (see the module docstring).

    Parameters
    ----------
    config
        A :class:`KANFNOConfig`.

    Notes
    -----
    ``forward(x)`` maps ``[B, in_channels, n_1..n_d]`` to ``[B, out_channels, n_1..n_d]`` at any
    resolution, like :class:`FNO`.
    """

    def make_pointwise(self, in_channels: int, out_channels: int, hidden_channels: int, n_layers: int) -> nn.Module:
        """A channel-first GR-KAN stack ``in -> hidden (n_layers - 1 times) -> out``."""
        sizes = [in_channels] + [hidden_channels] * (n_layers - 1) + [out_channels]
        return KANMLP(sizes, self.config.rational_settings(), channel_dim=1)
