"""The model registry: every model is a config dataclass plus an ``nn.Module`` built from it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

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
    return cls(from_mapping(config_class, settings, where="model."))


def describe(model: nn.Module) -> dict[str, Any]:
    """Return ``{"model": name, **config fields}`` for a registered model instance."""
    name = getattr(type(model), "model_name", None)
    if name is None or not hasattr(model, "config"):
        raise ConfigError(f"{type(model).__name__} is not a registered pdeop model")
    return {"model": name, **to_mapping(model.config)}
