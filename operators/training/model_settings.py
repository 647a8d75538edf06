"""The model of a run as the data shape it: its settings completed from the data, and what its checkpoint records.

The trainer builds the model from :func:`model_settings` (a config that states channel counts other than
what the data protocol gives is refused with the story of where the data's count comes from) and saves
:func:`checkpoint_extra` with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from operators.training.config import RunConfig
from solvers.errors import ConfigError


def model_settings(config: RunConfig, in_channels: int, out_channels: int, grid: tuple[int, ...],
                   periodic: bool) -> dict[str, Any]:
    """The ``model`` section completed from the data where the model has such settings and the config
    leaves them out: ``in_channels``, ``out_channels``, ``sensor_shape`` (the training grid) and
    ``grid_endpoint`` (True on vertex grids).

    Raises
    ------
    ConfigError
        If the section states channel counts that differ from what the data protocol gives.
    """
    from operators.registry import MODELS, model_names

    settings = dict(config.model)
    name = settings.get("model")
    if name not in model_names():
        raise ConfigError(f"unknown model {name!r}; known models are: {', '.join(model_names())}")
    fields = {f.name for f in dataclasses.fields(MODELS[name][1])}
    for field, value, what in (("in_channels", in_channels, "input"), ("out_channels", out_channels, "output")):
        if field not in fields:
            continue
        given = settings.setdefault(field, value)
        if given != value:
            raise ConfigError(f"model.{field} is {given} but the data gives {value} {what} channels per call "
                              f"({_channel_story(config, field)}); remove model.{field} to use the data's value")
    for field, value in (("sensor_shape", list(grid)), ("grid_endpoint", not periodic)):
        if field in fields:
            settings.setdefault(field, value)
    return settings


def _channel_story(config: RunConfig, field: str) -> str:
    data = config.data
    if field == "in_channels":
        parts = [f"t_in = {data.t_in}" if data.time_dependent else f"inputs {list(data.inputs)}"]
        if data.conditioning:
            parts.append(f"conditioning {list(data.conditioning)}")
        return " + ".join(parts)
    if not data.time_dependent:
        return f"outputs {list(data.outputs)}"
    return f"training.mode {config.training.mode!r} with step {config.training.step or 'all'}"


def checkpoint_extra(config: RunConfig, info: dict[str, Any], history: int | None, step: int | None,
                     t_out: int | None) -> dict[str, Any]:
    """What a checkpoint carries besides model, normalisers, grid and dataset: the surrogate's settings
    (input ``history``, output ``step``, increments), the data protocol (with the file's ``info``) and the
    run config."""
    data = config.data
    return {
        "surrogate": {"history": history, "step": step, "increment": config.training.predict == "increment"},
        "protocol": {"protocol": data.protocol, "variable": info["variable"],
                     "inputs": list(data.inputs), "outputs": list(data.outputs),
                     "conditioning": list(data.conditioning), "t_in": data.t_in, "t_out": t_out,
                     "periodic": info["periodic"], "subsample": data.subsample},
        "run_config": config.to_dict(),
    }
