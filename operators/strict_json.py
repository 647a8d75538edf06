"""Strict JSON in and out: no ``NaN``/``Infinity`` written, hostile files refused with one clear line.

Every JSON file pdeop writes from :mod:`operators` (``run_config.json``, ``training.json``,
``metrics.json``, a checkpoint's ``config.json``, the training state, benchmark results) goes through
:func:`dumps`: a non-finite float is written as ``null`` and, for a mapping at the top, listed under
``"non_finite"`` with what it was (``{"values": {"rel_l2": "NaN"}, "note": ...}``), so the file stays
standard JSON that any reader accepts and nobody mistakes a missing number for a measured one.

Every JSON file pdeop reads back goes through :func:`read` / :func:`loads`, which turn everything a
damaged or crafted file can do into a :class:`~solvers.errors.ConfigError` naming the file: invalid
text, ``NaN``/``Infinity`` literals, numbers beyond float range (``1e999``), integers with thousands of
digits, nesting deeper than :data:`MAX_DEPTH`, files larger than the caller's limit. Field types are
then checked by the reader (dataclasses via :func:`pde_data.config.from_mapping`, or
:func:`check_fields`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from solvers.errors import ConfigError

#: deepest nesting accepted when reading (pdeop's own files nest a few levels)
MAX_DEPTH = 64
#: default size limit of a JSON file read back (pointwise normaliser statistics of a 3D grid fit)
MAX_BYTES = 256 * 2**20
NON_FINITE = "non_finite"
_NOTE = "these values were not finite numbers; they are written as null"


def sanitize(value: Any, path: str = "", found: dict[str, str] | None = None) -> Any:
    """Copy of ``value`` with non-finite floats replaced by None; ``found`` collects ``{path: repr}``.

    Tuples become lists; mapping keys become strings. Paths read like ``rollout.rel_l2[3]``.
    """
    if isinstance(value, float) and not math.isfinite(value):
        if found is not None:
            found[path or "(value)"] = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return None
    if isinstance(value, Mapping):
        return {str(k): sanitize(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def dumps(value: Any, indent: int | None = 1, flag: bool = True, **kwargs: Any) -> str:
    """Strict JSON text of ``value`` (``allow_nan=False``) with non-finite floats as null.

    Parameters
    ----------
    value
        JSON-compatible data (mappings, sequences, str, int, float, bool, None).
    indent
        As in :func:`json.dumps`.
    flag
        When ``value`` is a mapping and held non-finite floats, add ``"non_finite": {"values":
        {path: "NaN" | "Infinity" | "-Infinity"}, "note": ...}``.
    kwargs
        Passed to :func:`json.dumps` (``sort_keys``, ``default``).
    """
    found: dict[str, str] = {}
    clean = sanitize(value, found=found)
    if flag and found and isinstance(clean, dict):
        clean[NON_FINITE] = {"values": found, "note": _NOTE}
    return json.dumps(clean, indent=indent, allow_nan=False, **kwargs)


def loads(text: str | bytes, what: str) -> Any:
    """Parse strict JSON; every defect is a ConfigError naming ``what`` (e.g. the file path).

    Refused: invalid JSON or UTF-8, ``NaN``/``Infinity`` literals, floats that overflow to infinity,
    integers too long to convert, nesting deeper than :data:`MAX_DEPTH`.
    """
    def constant(name: str) -> Any:
        raise ConfigError(f"{what} holds {name}, which is not a JSON number")

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ConfigError(f"{what} holds the number {text[:40]}, beyond the float range")
        return value

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    depth = _max_depth(text)
    if depth > MAX_DEPTH:
        raise ConfigError(f"{what} nests {depth} levels deep (at most {MAX_DEPTH} are accepted)")
    try:
        return json.loads(text, parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # int('9' * 5000) exceeds Python's digit limit
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{what} is not usable JSON ({str(exc).splitlines()[0][:120]})") from None


def read(path: str | Path, what: str | None = None, max_bytes: int = MAX_BYTES) -> Any:
    """Read and parse the strict JSON file ``path`` (see :func:`loads`); refuses files over ``max_bytes``.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable, too large or not strict JSON.
    """
    path = Path(path)
    what = what or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(f"{what} is {size} bytes, more than the {max_bytes} a pdeop JSON file may have")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} is a folder, not a JSON file") from None
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read ({exc.strerror or exc})") from None
    return loads(data, what)


def _max_depth(text: str) -> int:
    """Deepest bracket nesting of JSON text (brackets inside strings ignored), without recursion."""
    import numpy as np

    data = _STRINGS.sub(b'""', text.encode("utf-8"))
    codes = np.frombuffer(data, dtype=np.uint8)
    steps = np.isin(codes, _OPEN).astype(np.int64) - np.isin(codes, _CLOSE)
    return int(np.cumsum(steps).max()) if steps.size else 0


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_OPEN, _CLOSE = (ord("["), ord("{")), (ord("]"), ord("}"))


#: type names of :func:`check_fields`
_KINDS: dict[str, tuple[type, ...]] = {
    "mapping": (dict,), "list": (list,), "string": (str,), "bool": (bool,), "int": (int,), "number": (int, float),
}


def check_fields(value: Any, spec: Mapping[str, str], what: str, required: bool = True) -> dict[str, Any]:
    """Check that ``value`` is a mapping whose entries named in ``spec`` have the stated kinds.

    Parameters
    ----------
    value
        Parsed JSON.
    spec
        ``{key: kind}`` with kind one of ``mapping``, ``list``, ``string``, ``bool``, ``int``,
        ``number``, ``numbers`` (a list of numbers or nulls), a trailing ``?`` allowing null.
    what
        Name of the value in messages (``"metrics.json"``).
    required
        Whether every key of ``spec`` must be present.

    Returns
    -------
    dict
        ``value`` itself.
    """
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a JSON object (got {type(value).__name__})")
    for key, kind in spec.items():
        if key not in value:
            if required:
                raise ConfigError(f"{what} lacks the entry {key!r}")
            continue
        item, optional = value[key], kind.endswith("?")
        kind = kind.rstrip("?")
        if item is None and optional:
            continue
        if kind == "numbers":
            good = isinstance(item, list) and all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in item)
        else:
            good = isinstance(item, _KINDS[kind]) and not (kind in ("int", "number") and isinstance(item, bool))
        if not good:
            raise ConfigError(f"{what}: entry {key!r} must be {_article(kind)} (got {_short(item)})")
    return value


def _article(kind: str) -> str:
    return {"numbers": "a list of numbers", "int": "an integer", "mapping": "an object", "list": "a list"}.get(
        kind, f"a {kind}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
