"""Typed settings: YAML presets, ``key=value`` overrides and their coercion into dataclasses.

Every configurable object in pdeop (a problem family, a model, a training run) is a frozen
dataclass. This module turns plain mappings (from YAML files and command-line overrides) into such
dataclasses, with one clear :class:`~solvers.errors.ConfigError` naming the field for every mistake.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from solvers.errors import ConfigError

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def configs_root() -> Path:
    """Return the folder holding the shipped YAML configurations (``data/`` and ``train/``).

    In an installed distribution the YAML ships as ``pde_data/configs``; in a source checkout or an
    editable install it is the repository's ``configs/`` folder.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "data").is_dir():
            return candidate
    raise ConfigError("pdeop's configs folder is missing from this installation; reinstall pdeop")


def load_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Raises
    ------
    ConfigError
        If the file does not exist, is not valid YAML, or does not hold a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{what} {path} is not valid YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of settings (got {type(data).__name__})")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b=value"`` into the key path ``["a", "b"]`` and the YAML-parsed value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(mapping: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``mapping`` with each ``key=value`` override applied (dotted keys nest)."""
    result = json.loads(json.dumps(mapping, default=_jsonable))
    for text in overrides:
        path, value = parse_override(text)
        target = result
        for part in path[:-1]:
            node = target.get(part)
            if node is None:
                node = target[part] = {}
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a group of settings")
            target = node
        target[path[-1]] = value
    return result


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base`` (nested mappings merge, others replace)."""
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build the dataclass ``cls`` from a mapping, coercing and checking every field.

    Parameters
    ----------
    cls
        A dataclass type. Fields may be ``int``, ``float``, ``bool``, ``str``, ``Literal``,
        ``Optional``, ``tuple[...]``, ``list[...]``, ``dict`` or nested dataclasses.
    data
        Settings by field name; missing fields take their defaults.
    where
        Prefix for error messages (``"model."``), so users see the full dotted key.

    Raises
    ------
    ConfigError
        For an unknown key, a missing required key or a value of the wrong type. Checks in the
        dataclass's ``__post_init__`` may raise further ``ConfigError``\\ s.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        names = ", ".join(sorted(fields))
        raise ConfigError(f"unknown setting {where}{unknown[0]!r}; valid settings are: {names}")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = coerce(data[name], hints[name], f"{where}{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"setting {where}{name} is required")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid settings for {where or cls.__name__}: {exc}") from None


def to_mapping(obj: Any) -> Any:
    """Turn a (nested) dataclass into plain JSON-compatible values (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_mapping(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    return _jsonable(obj) if not isinstance(obj, (str, int, float, bool, type(None))) else obj


def coerce(value: Any, annotation: Any, name: str) -> Any:
    """Convert ``value`` to the type ``annotation`` or raise a ConfigError naming ``name``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{name} has an invalid value {value!r}")
    if origin is Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(f"{name} must be one of {choices} (got {value!r})")
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            if origin is tuple and args and args[-1] is not Ellipsis and len(args) > 1:
                raise ConfigError(f"{name} must be a list of {len(args)} values (got {value!r})")
            value = [value]
        items = list(value)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ConfigError(f"{name} must be a list of {len(args)} values (got {value!r})")
            return tuple(coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(items, args)))
        inner = args[0] if args else Any
        converted = [coerce(v, inner, f"{name}[{i}]") for i, v in enumerate(items)]
        return tuple(converted) if origin is tuple else converted
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping of settings (got {value!r})")
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping of settings (got {value!r})")
        return from_mapping(annotation, value, where=f"{name}.")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{name} must be true or false (got {value!r})")
    if annotation is int:
        number = _number(value, name, "an integer")
        if not float(number).is_integer():
            raise ConfigError(f"{name} must be an integer (got {value!r})")
        return int(number)
    if annotation is float:
        number = float(_number(value, name, "a number"))
        if math.isnan(number):
            raise ConfigError(f"{name} must be a number (got {value!r})")
        return number
    if annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{name} must be a string (got {value!r})")
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise ConfigError(f"{name} has an unsupported value {value!r}")


def _number(value: Any, name: str, expected: str) -> float | int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be {expected} (got {value!r})")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{name} must be {expected} (got {value!r})")


def _jsonable(obj: Any) -> Any:
    """JSON fallback for NumPy scalars and paths."""
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition`` holds; for ``__post_init__`` checks."""
    if not condition:
        raise ConfigError(message)


def check_finite(**settings: float) -> None:
    """Every given setting must be a finite number (``ConfigError`` naming the first that is not)."""
    for name, value in settings.items():
        check(math.isfinite(value), f"{name} must be a finite number (got {value})")


def check_positive_finite(**settings: float) -> None:
    """Every given setting must be a finite number > 0 (``ConfigError`` naming the first that is not)."""
    for name, value in settings.items():
        check(value > 0 and math.isfinite(value), f"{name} must be a positive number (got {value})")


def check_nonzero_finite(**settings: float) -> None:
    """Every given setting must be a finite non-zero number (``ConfigError`` naming the first that is not)."""
    for name, value in settings.items():
        check(math.isfinite(value) and value != 0, f"{name} must be a finite non-zero number (got {value})")
