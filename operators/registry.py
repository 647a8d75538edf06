"""The model registry: every model is a config dataclass plus an ``nn.Module`` built from it.

A model's ``__init__`` must also run on the meta device (``with torch.device("meta")``: shapes only,
no data): :func:`layout` builds it there to learn its tensors' shapes, dtypes and size from the
config alone, so a checkpoint or a training config describing an impossible model is refused before
anything is allocated. Data-dependent initialisation skips itself on meta tensors
(``tests/operators/test_model_layout.py`` holds every registered model to this).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from pde_data.config import from_mapping, to_mapping
from solvers.errors import ConfigError

#: model name -> (module class, config dataclass)
MODELS: dict[str, tuple[type[nn.Module], type]] = {}


def register_model(name: str, config_class: type) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering a model under ``name`` with its config dataclass.

    The module's ``__init__`` takes the config instance as its only argument and keeps it as
    ``self.config``; ``model_name`` is set on the class.
    """

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in MODELS and MODELS[name][0] is not cls:
            raise ValueError(f"model {name!r} is registered twice")
        cls.model_name = name
        MODELS[name] = (cls, config_class)
        return cls

    return decorate


def _ensure_registered() -> None:
    import operators.models  # noqa: F401  (registers the built-in models)


def model_names() -> list[str]:
    """Names of every registered model."""
    _ensure_registered()
    return sorted(MODELS)


def build(config: Mapping[str, Any] | Any, name: str | None = None) -> nn.Module:
    """Build a model from its config.

    Parameters
    ----------
    config
        Either a registered config dataclass instance, or a mapping with key ``"model"`` (the
        registered name) and the config's fields.
    name
        Model name, when ``config`` is a mapping without ``"model"``.

    Raises
    ------
    ConfigError
        For an unknown model name or invalid settings.
    """
    _ensure_registered()
    if not isinstance(config, Mapping):
        for cls, config_class in MODELS.values():
            if type(config) is config_class:
                return cls(config)
        raise ConfigError(f"{type(config).__name__} is not the config of any registered model")
    settings = dict(config)
    name = settings.pop("model", name)
    if name is None:
        raise ConfigError("model config needs a 'model' entry naming the model")
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known models are: {', '.join(sorted(MODELS))}")
    cls, config_class = MODELS[name]
    config = from_mapping(config_class, settings, where="model.")
    try:
        return cls(config)
    except ConfigError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:  # settings the module itself cannot use
        raise ConfigError(f"model {name!r} cannot be built from these settings: {str(exc).splitlines()[0]}") from None


def describe(model: nn.Module) -> dict[str, Any]:
    """Return ``{"model": name, **config fields}`` for a registered model instance."""
    name = getattr(type(model), "model_name", None)
    if name is None or not hasattr(model, "config"):
        raise ConfigError(f"{type(model).__name__} is not a registered pdeop model")
    return {"model": name, **to_mapping(model.config)}


#: torch calls allowed while building a model on the meta device before it is called impossible
MAX_BUILD_CALLS = 20_000


class _CallBudget(TorchFunctionMode):
    """Raise ConfigError once more than ``limit`` torch functions were called (a runaway build)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        if self.calls > self.limit:
            raise ConfigError(f"the model config describes an impossibly large model (its construction "
                              f"needs more than {self.limit} tensor operations)")
        return func(*args, **(kwargs or {}))


@dataclasses.dataclass(frozen=True)
class ModelLayout:
    """What a model config builds, learnt on the meta device without allocating.

    Attributes
    ----------
    name
        The registered model name.
    tensors
        ``{state-dict key: (shape, dtype)}`` in state-dict order.
    """

    name: str
    tensors: dict[str, tuple[tuple[int, ...], torch.dtype]]

    @property
    def elements(self) -> int:
        """Number of scalar entries of the state dict (complex entries count once)."""
        return sum(math.prod(shape) for shape, _ in self.tensors.values())

    @property
    def bytes(self) -> int:
        """Memory of the state dict in bytes."""
        return sum(math.prod(shape) * _itemsize(dtype) for shape, dtype in self.tensors.values())


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype, device="meta").element_size()


def layout(config: Mapping[str, Any] | Any, name: str | None = None,
           max_calls: int = MAX_BUILD_CALLS) -> ModelLayout:
    """The tensors a config builds, from a build on the meta device (nothing is allocated).

    Parameters
    ----------
    config, name
        As in :func:`build`.
    max_calls
        Torch operations the construction may take before the config is refused as impossibly
        large (a million layers, say).

    Raises
    ------
    ConfigError
        For an unknown model, invalid settings, or a runaway construction.
    """
    with torch.device("meta"), _CallBudget(max_calls):
        model = build(config, name)
    tensors = {key: (tuple(value.shape), value.dtype) for key, value in model.state_dict().items()}
    return ModelLayout(type(model).model_name, tensors)


def check_fits_memory(model_layout: ModelLayout, copies: int = 1, what: str = "the model") -> None:
    """Refuse a model whose ``copies`` of the state (weights, gradients, optimiser moments) exceed free memory.

    Free memory is ``MemAvailable`` of ``/proc/meminfo``; where that cannot be read nothing is checked.
    """
    available = available_memory()
    needed = model_layout.bytes * copies
    if available is not None and needed > available:
        raise ConfigError(f"{what} ({model_layout.name}) has {model_layout.elements:,} parameters: "
                          f"{_gib(needed)} for {copies} cop{'y' if copies == 1 else 'ies'} of its state, but only "
                          f"{_gib(available)} of memory is available; reduce its width, modes or layers")


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"
