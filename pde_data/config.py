"""Typed settings: YAML presets, ``key=value`` overrides and their coercion into dataclasses.

Every configurable object in pdeop (a problem family, a model, a training run) is a frozen
dataclass. This module turns plain mappings (from YAML files and command-line overrides) into such
dataclasses, with one clear :class:`~solvers.errors.ConfigError` naming the field for every mistake.

Rules every setting follows, whatever dataclass it belongs to:

* a ``float`` setting is finite: NaN is always refused, and so is ``inf`` unless the field declares
  that infinity means something there (``field(metadata=INFINITY_MEANINGFUL)``, see
  :func:`meaningful_infinity`);
* an ``int`` setting fits in a signed 64-bit integer (what the files and NumPy store);
* YAML text (files and ``--set`` values) is parsed by :func:`parse_yaml`, which refuses what no
  settings file needs and a hostile one uses: nesting deeper than :data:`MAX_YAML_DEPTH`, more than
  :data:`MAX_YAML_VALUES` values once aliases are expanded (alias bombs), non-name keys, and values
  that are not plain data (dates, binary, sets).
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

from pde_data.output_files import shown
from solvers.errors import ConfigError

T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}

#: field metadata of a float setting for which +-inf has a meaning (e.g. "no limit")
INFINITY_MEANINGFUL: Mapping[str, bool] = types.MappingProxyType({"infinity_meaningful": True})
#: YAML limits, far above any real settings file (the shipped ones nest 3 deep and hold < 100 values)
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
MAX_YAML_VALUES = 100_000
#: range of an ``int`` setting (signed 64-bit, what HDF5 attributes and NumPy hold)
_INT_LIMIT = 2**63 - 1
#: longest rendering of a value inside an error message
_SHOWN_CHARS = 60


def meaningful_infinity(default: float, **kwargs: Any) -> Any:
    """A dataclass field for a float setting that accepts ``inf`` / ``-inf`` (never NaN).

    Use it where infinity means something, e.g. ``max_minutes: float = meaningful_infinity(math.inf)``
    for "no time limit"; every other float setting refuses infinity.
    """
    return dataclasses.field(default=default, metadata=INFINITY_MEANINGFUL, **kwargs)


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
    """Read a YAML mapping of settings from ``path`` (parsed by :func:`parse_yaml`).

    Raises
    ------
    ConfigError
        If the file does not exist or cannot be read, is larger than :data:`MAX_YAML_BYTES`, is not
        valid YAML, breaks a limit of :func:`parse_yaml`, or does not hold a mapping.
    """
    path = Path(path)
    source = f"{what} {shown(path)}"
    if not path.is_file():
        raise ConfigError(f"{source} does not exist")
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_YAML_BYTES >> 20} MiB; a settings file is a few lines")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source} is not valid YAML: it is not UTF-8 text") from None
    data = parse_yaml(text, source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a mapping of settings (got {type(data).__name__})")
    return data


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` into plain data: dicts with string keys, lists, strings, numbers, booleans, None.

    Parameters
    ----------
    text
        The YAML document.
    source
        What the text is, for messages (``"config file run.yaml"``).

    Raises
    ------
    ConfigError
        Invalid YAML (the parser's first line); nesting deeper than :data:`MAX_YAML_DEPTH`; more
        than :data:`MAX_YAML_VALUES` values with aliases expanded (or an alias that contains
        itself); a key that is not a name; a value that is not plain data (a date, binary, a set).
    """
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ConfigError(f"{source} nests deeper than {MAX_YAML_DEPTH} levels; settings files "
                                      "are a few levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an int beyond Python's digit limit, a bad date
        if isinstance(exc, ConfigError):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split("; use sys.")[0]
        raise ConfigError(f"{source} is not valid YAML: {first}") from None
    _check_plain(data, source)
    return data


def _check_plain(data: Any, source: str) -> None:
    """Walk parsed YAML (aliases expanded) and refuse what :func:`parse_yaml` documents."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    seen = 0
    while stack:
        value, where, depth = stack.pop()
        seen += 1
        if seen > MAX_YAML_VALUES:
            raise ConfigError(f"{source} holds more than {MAX_YAML_VALUES} values (counting every use of an "
                              "alias); a settings file is a few lines")
        if depth > MAX_YAML_DEPTH:  # only an alias that contains itself gets here: the parse was shallow
            root = where.split(".")[0].split("[")[0] or "the document"
            raise ConfigError(f"{source}: {root} contains itself through an alias")
        at = f" at {where}" if where else ""
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ConfigError(f"{source}: key {_shown(key)}{at} must be a name (quote it if it is one)")
                stack.append((item, f"{where}.{shown(key)}" if where else shown(key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{source}: {where or 'the document'} holds a {type(value).__name__} "
                              f"({_shown(value)}); settings are numbers, strings, lists or mappings (quote it)")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b=value"`` into the key path ``["a", "b"]`` and the YAML-parsed value.

    A value that is not valid YAML is kept as the plain string; one that breaks a limit of
    :func:`parse_yaml` (deep nesting, alias bombs, dates...) raises ConfigError.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {_shown(text)} must look like key=value")
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"override {shown(key)}: the value is longer than {MAX_YAML_BYTES >> 20} MiB")
    try:
        value = parse_yaml(raw, f"override {shown(key)}") if raw.strip() else ""
    except ConfigError as exc:
        if "is not valid YAML" not in str(exc):
            raise
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
                raise ConfigError(f"override {_shown(text)}: {part!r} is not a group of settings")
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
        For an unknown key, a missing required key or a value of the wrong type (including a
        float setting that is NaN, or infinite where the field's metadata is not
        :data:`INFINITY_MEANINGFUL`). Checks in the dataclass's ``__post_init__`` may raise further
        ``ConfigError``\\ s.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{where.rstrip('.') or 'settings'} must be a mapping of settings (got {_shown(data)})")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in set(data) - set(fields))
    if unknown:
        names = ", ".join(sorted(fields))
        raise ConfigError(f"unknown setting {where}{_shown(unknown[0])}; valid settings are: {names}")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            infinite = bool(field.metadata.get("infinity_meaningful", False))
            kwargs[name] = coerce(data[name], hints[name], f"{where}{name}", allow_infinity=infinite)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"setting {where}{name} is required")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:
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


def coerce(value: Any, annotation: Any, name: str, allow_infinity: bool = False) -> Any:
    """Convert ``value`` to the type ``annotation`` or raise a ConfigError naming ``name``.

    A ``float`` (also inside ``Optional``, ``tuple`` or ``list``) must be finite unless
    ``allow_infinity``; NaN is always refused. An ``int`` must fit in a signed 64-bit integer.
    """
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
                return coerce(value, option, name, allow_infinity)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{name} has an invalid value {_shown(value)}")
    if origin is Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(f"{name} must be one of {choices} (got {_shown(value)})")
    if origin in (tuple, list):
        if isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a list (got {_shown(value)})")
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            if origin is tuple and args and args[-1] is not Ellipsis and len(args) > 1:
                raise ConfigError(f"{name} must be a list of {len(args)} values (got {_shown(value)})")
            value = [value]
        items = list(value)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ConfigError(f"{name} must be a list of {len(args)} values (got {_shown(value)})")
            return tuple(coerce(v, a, f"{name}[{i}]", allow_infinity) for i, (v, a) in enumerate(zip(items, args)))
        inner = args[0] if args else Any
        converted = [coerce(v, inner, f"{name}[{i}]", allow_infinity) for i, v in enumerate(items)]
        return tuple(converted) if origin is tuple else converted
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping of settings (got {_shown(value)})")
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping of settings (got {_shown(value)})")
        return from_mapping(annotation, value, where=f"{name}.")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{name} must be true or false (got {_shown(value)})")
    if annotation is int:
        number = _number(value, name, "an integer")
        if isinstance(number, float):
            if not number.is_integer():
                raise ConfigError(f"{name} must be an integer (got {_shown(value)})")
            number = int(number)
        if abs(number) > _INT_LIMIT:
            raise ConfigError(f"{name} must be an integer of magnitude below 2**63 (got {_shown(value)})")
        return number
    if annotation is float:
        number = _number(value, name, "a number")
        try:
            number = float(number)
        except OverflowError:  # an integer beyond the float range
            number = math.inf if number > 0 else -math.inf
        if math.isnan(number):
            raise ConfigError(f"{name} must be a number (got {_shown(value)})")
        if math.isinf(number) and not allow_infinity:
            raise ConfigError(f"{name} must be a finite number (got {_shown(value)})")
        return number
    if annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{name} must be a string (got {_shown(value)})")
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise ConfigError(f"{name} has an unsupported value {_shown(value)}")


def _number(value: Any, name: str, expected: str) -> float | int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be {expected} (got {_shown(value)})")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:  # not an integer, or more digits than Python converts
            pass
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{name} must be {expected} (got {_shown(value)})")


def _shown(value: Any) -> str:
    """``repr(value)`` cut to :data:`_SHOWN_CHARS` characters, for one-line messages."""
    if isinstance(value, int) and value.bit_length() > 3 * _SHOWN_CHARS:  # repr of a huge int is slow or refused
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


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


def check_power(name: str, base: float, exponent: float) -> float:
    """``base ** exponent`` of settings, refused with a ConfigError naming ``name`` when it leaves the float range.

    For amplitudes such as ``tau^(alpha - 1)``, where two finite settings can still overflow (or
    underflow to 0) together.
    """
    try:
        value = float(base) ** float(exponent)
    except (OverflowError, ZeroDivisionError):
        value = math.inf
    check(isinstance(value, float) and math.isfinite(value) and value > 0,
          f"{name} = {base:g}^{exponent:g} is outside the floating-point range; choose settings that keep it "
          "between 1e-308 and 1e308")
    return value


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
