"""Copy weights from neuraloperator (``neuralop``) modules into ours.

Works on state dicts only, so neuralop need not be installed to convert a saved state. Two layout
differences are handled: neuralop stores the spectral weights' non-last mode axes centred
(``fftshift`` order) where we store them in FFT order, and its 1x1 layers are ``Conv1d`` weights
``[C_out, C_in, 1]`` where ours are ``[C_out, C_in]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from solvers.errors import ConfigError


def _to_fft_order(tensor: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Reorder centred frequency axes to FFT order (``ifftshift``: index ``m // 2`` moves to 0)."""
    return torch.fft.ifftshift(tensor, dim=axes) if axes else tensor


def spectral_conv_state_from_neuralop(state: Mapping[str, torch.Tensor], n_dim: int) -> dict[str, torch.Tensor]:
    """Convert the state of one neuralop ``SpectralConv`` into our :class:`SpectralConv`'s state.

    Parameters
    ----------
    state
        neuralop state with keys relative to the layer (``weight.tensor`` for dense weights,
        ``weight.core`` and ``weight.factors.factor_k`` for Tucker, ``weight.weights`` and
        ``weight.factors.factor_k`` for CP; ``bias`` when present).
    n_dim
        Number of spatial axes of the layer.

    Returns
    -------
    dict
        State for :meth:`SpectralConv.load_state_dict`.
    """
    out: dict[str, torch.Tensor] = {}
    # Mode axes that are centred in neuralop: the weight's axes 2 .. 2 + n_dim - 2.
    centred = tuple(range(2, 2 + n_dim - 1))
    for key, value in state.items():
        if key == "bias":
            out["bias"] = value
        elif key == "weight.tensor":
            out["weight.weight"] = _to_fft_order(value, centred)
        elif key in ("weight.core", "weight.weights"):
            out[key] = value
        elif (match := re.fullmatch(r"weight\.factors\.factor_(\d+)", key)) is not None:
            axis = int(match.group(1))
            out[f"weight.factors.{axis}"] = _to_fft_order(value, (0,)) if axis in centred else value
        else:
            raise ConfigError(f"unexpected entry {key!r} in a neuralop SpectralConv state")
    return out


#: (neuralop key pattern, our key, whether the value is a Conv1d(k=1) weight to squeeze)
_PREFIXES = (
    (r"lifting\.fcs\.(\d+)\.(weight|bias)", "lifting.layers.{0}.{1}", True),
    (r"projection\.fcs\.(\d+)\.(weight|bias)", "projection.layers.{0}.{1}", True),
    (r"fno_blocks\.fno_skips\.(\d+)\.conv\.weight", "blocks.{0}.skip.weight", True),
    (r"fno_blocks\.fno_skips\.(\d+)\.weight", "blocks.{0}.skip.weight", False),
    (r"fno_blocks\.channel_mlp\.(\d+)\.fcs\.(\d+)\.(weight|bias)", "blocks.{0}.mlp.layers.{1}.{2}", True),
    (r"fno_blocks\.channel_mlp_skips\.(\d+)\.conv\.weight", "blocks.{0}.mlp_skip.weight", True),
    (r"fno_blocks\.channel_mlp_skips\.(\d+)\.weight", "blocks.{0}.mlp_skip.weight", False),
)


def fno_state_from_neuralop(state: Mapping[str, torch.Tensor], n_dim: int) -> dict[str, torch.Tensor]:
    """Convert a neuralop ``FNO`` state dict into the state of our :class:`~operators.models.fno.FNO`.

    The neuralop model must use options our FNO has (its defaults, possibly with another width,
    depth, lifting/projection ratio, padding, skips, Tucker/CP factorisation); the result is then
    loadable with ``load_state_dict(strict=True)`` into our FNO of the matching
    :class:`~operators.models.fno.FNOConfig` and computes the same function.
    """
    out: dict[str, torch.Tensor] = {}
    convs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):  # neuralop keeps its constructor arguments as "_metadata"
            continue
        if (match := re.fullmatch(r"fno_blocks\.convs\.(\d+)\.(.+)", key)) is not None:
            convs.setdefault(match.group(1), {})[match.group(2)] = value
            continue
        for pattern, target, conv1d in _PREFIXES:
            if (match := re.fullmatch(pattern, key)) is not None:
                squeeze = conv1d and key.endswith("weight")
                out[target.format(*match.groups())] = value[..., 0] if squeeze else value
                break
        else:
            raise ConfigError(f"neuralop FNO entry {key!r} has no counterpart in pdeop's FNO")
    for index, conv_state in convs.items():
        for key, value in spectral_conv_state_from_neuralop(conv_state, n_dim).items():
            out[f"blocks.{index}.conv.{key}"] = value
    return out
