"""Interoperation with neuraloperator (``neuralop``): weights copied into our modules, our layer as its default.

The state converters work on state dicts only, so neuralop need not be installed to convert a saved
state. Two layout differences are handled: neuralop stores the spectral weights' full-FFT mode axes
centred (``fftshift`` order; all but the last axis for real data, every axis for complex data) where
we store them in FFT order, and its 1x1 layers are ``Conv1d`` weights ``[C_out, C_in, 1]`` where
ours are ``[C_out, C_in]``. :func:`pdeop_conv_as_neuralop_default` makes our
:class:`~operators.layers.spectral_conv.SpectralConv` the ``conv_module`` neuralop's models use when
none is given, which reaches models that do not pass one on (UNO).
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn

from solvers.errors import ConfigError


def _to_fft_order(tensor: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Reorder centred frequency axes to FFT order (``ifftshift``: index ``m // 2`` moves to 0)."""
    return torch.fft.ifftshift(tensor, dim=axes) if axes else tensor


def spectral_conv_state_from_neuralop(state: Mapping[str, torch.Tensor], n_dim: int, complex_data: bool = False,
                                      separable: bool = False) -> dict[str, torch.Tensor]:
    """Convert the state of one neuralop ``SpectralConv`` into our :class:`SpectralConv`'s state.

    Parameters
    ----------
    state
        neuralop state with keys relative to the layer (``weight.tensor`` for dense weights,
        ``weight.core`` and ``weight.factors.factor_k`` for Tucker, ``weight.weights`` and
        ``weight.factors.factor_k`` for CP; ``bias`` when present).
    n_dim
        Number of spatial axes of the layer.
    complex_data
        The layer works on complex data (then, with two or more axes, its last mode axis is centred
        too; a 1-D layer stores its modes in FFT order).
    separable
        The layer is separable (its weight has one channel axis instead of two).

    Returns
    -------
    dict
        State for :meth:`SpectralConv.load_state_dict`.
    """
    out: dict[str, torch.Tensor] = {}
    # neuralop centres (fftshift) the full-FFT axes only when there are two or more spatial axes.
    first = 1 if separable else 2
    centred = tuple(range(first, first + (n_dim if complex_data else n_dim - 1))) if n_dim > 1 else ()
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


def _split_spectral_convs(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                                      dict[str, dict[str, torch.Tensor]]]:
    """A neuralop FNO state's tensors split into the spectral layers' (per block index, keys relative to
    the layer) and the others; neuralop's non-tensor ``_metadata`` (constructor arguments) is dropped."""
    others: dict[str, torch.Tensor] = {}
    convs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if (match := re.fullmatch(r"fno_blocks\.convs\.(\d+)\.(.+)", key)) is not None:
            convs.setdefault(match.group(1), {})[match.group(2)] = value
        else:
            others[key] = value
    return others, convs


def pdeop_state_for_neuralop_model(state: Mapping[str, torch.Tensor], n_dim: int,
                                   complex_data: bool = False) -> dict[str, torch.Tensor]:
    """A neuralop ``FNO`` state with its spectral weights converted for our layer as ``conv_module``.

    Everything but the ``fno_blocks.convs.*`` entries is kept as it is; the result loads into the same
    neuralop model built with ``conv_module=SpectralConv`` (or under :func:`pdeop_conv_as_neuralop_default`).
    """
    out, convs = _split_spectral_convs(state)
    for index, conv_state in convs.items():
        for key, value in spectral_conv_state_from_neuralop(conv_state, n_dim, complex_data).items():
            out[f"fno_blocks.convs.{index}.{key}"] = value
    return out


def _with_default(function: Callable[..., object], name: str, value: object) -> tuple[tuple | None, dict | None]:
    """``function``'s ``(__defaults__, __kwdefaults__)`` with the default of parameter ``name`` replaced."""
    defaults, kwdefaults = function.__defaults__, function.__kwdefaults__
    parameter = inspect.signature(function).parameters[name]
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
        return defaults, {**(kwdefaults or {}), name: value}
    positional = [p.name for p in inspect.signature(function).parameters.values()
                  if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    index = positional.index(name) - (len(positional) - len(defaults or ()))
    if index < 0:
        raise TypeError(f"{function.__qualname__}: parameter {name!r} has no default to replace")
    return (*defaults[:index], value, *defaults[index + 1:]), kwdefaults


@contextlib.contextmanager
def pdeop_conv_as_neuralop_default(conv_module: type[nn.Module] | None = None) -> Iterator[None]:
    """Inside the ``with`` block, neuralop's models default to our spectral convolution.

    Replaces the default of the ``conv_module`` argument of ``neuralop.models.FNO`` (and so TFNO and
    the other FNO variants) and ``neuralop.layers.fno_block.FNOBlocks`` (and so UNO, which builds
    its blocks without passing one), restoring neuralop's defaults on exit. Models built inside the
    block keep our layer after it.

    Parameters
    ----------
    conv_module
        The module class to make the default (default: :class:`~operators.layers.spectral_conv.SpectralConv`).
    """
    from neuralop.layers.fno_block import FNOBlocks
    from neuralop.models.fno import FNO

    from operators.layers.spectral_conv import SpectralConv

    module = SpectralConv if conv_module is None else conv_module
    functions = (FNOBlocks.__init__, FNO.__init__)
    saved = [(f.__defaults__, f.__kwdefaults__) for f in functions]
    try:
        for function in functions:
            function.__defaults__, function.__kwdefaults__ = _with_default(function, "conv_module", module)
        yield
    finally:
        for function, (defaults, kwdefaults) in zip(functions, saved):
            function.__defaults__, function.__kwdefaults__ = defaults, kwdefaults


#: (neuralop key pattern, our key, whether the value is a Conv1d(k=1) weight to squeeze); ``{c}`` is the
#: ``fr.``/``fi.`` of a complex model's ComplexValued pairs (empty for real models)
_PREFIXES = (
    (r"lifting\.{c}fcs\.(\d+)\.(weight|bias)", "lifting.{c}layers.{0}.{1}", True),
    (r"projection\.{c}fcs\.(\d+)\.(weight|bias)", "projection.{c}layers.{0}.{1}", True),
    (r"fno_blocks\.fno_skips\.(\d+)\.{c}conv\.weight", "blocks.{0}.skip.{c}weight", True),
    (r"fno_blocks\.fno_skips\.(\d+)\.{c}weight", "blocks.{0}.skip.{c}weight", False),
    (r"fno_blocks\.channel_mlp\.(\d+)\.{c}fcs\.(\d+)\.(weight|bias)", "blocks.{0}.mlp.{c}layers.{1}.{2}", True),
    (r"fno_blocks\.channel_mlp_skips\.(\d+)\.{c}conv\.weight", "blocks.{0}.mlp_skip.{c}weight", True),
    (r"fno_blocks\.channel_mlp_skips\.(\d+)\.{c}weight", "blocks.{0}.mlp_skip.{c}weight", False),
)
_COMPLEX_PAIR = r"(?P<pair>f[ri]\.)?"


def fno_state_from_neuralop(state: Mapping[str, torch.Tensor], n_dim: int,
                            complex_data: bool = False) -> dict[str, torch.Tensor]:
    """Convert a neuralop ``FNO`` state dict into the state of our :class:`~operators.models.fno.FNO`.

    The neuralop model must use options our FNO has (its defaults, possibly with another width,
    depth, lifting/projection ratio, padding, skips, Tucker/CP factorisation, ``complex_data``); the
    result is then loadable with ``load_state_dict(strict=True)`` into our FNO of the matching
    :class:`~operators.models.fno.FNOConfig` and computes the same function where the two spectral
    layers do (see :class:`~operators.layers.spectral_conv.SpectralConv`).
    """
    out: dict[str, torch.Tensor] = {}
    others, convs = _split_spectral_convs(state)
    for key, value in others.items():
        for pattern, target, conv1d in _PREFIXES:
            if (match := re.fullmatch(pattern.replace("{c}", _COMPLEX_PAIR), key)) is not None:
                squeeze = conv1d and key.endswith("weight")
                numbered = [g for name, g in zip(_group_names(match), match.groups()) if name != "pair"]
                out[target.format(*numbered, c=match.group("pair") or "")] = value[..., 0] if squeeze else value
                break
        else:
            raise ConfigError(f"neuralop FNO entry {key!r} has no counterpart in pdeop's FNO")
    for index, conv_state in convs.items():
        for key, value in spectral_conv_state_from_neuralop(conv_state, n_dim, complex_data).items():
            out[f"blocks.{index}.conv.{key}"] = value
    return out


def _group_names(match: re.Match[str]) -> list[str | None]:
    """The name of each group of ``match`` in order (None for unnamed groups)."""
    names: list[str | None] = [None] * len(match.groups())
    for name, index in match.re.groupindex.items():
        names[index - 1] = name
    return names
