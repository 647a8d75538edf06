"""Checkpoints: a folder with ``weights.safetensors`` and ``config.json``; loading runs no pickle.

``config.json`` holds::

    {"format": "pdeop-checkpoint", "format_version": 1, "pdeop_version": "0.1.0",
     "model": "fno", "config": {...the model's config dataclass, field by field...},
     "normalizers": {"input": {...}, "output": {...}} or null,
     "grid": ..., "dataset": ..., "extra": ...,
     "complex_tensors": ["blocks.0.conv.weight.weight", ...], "weights_sha256": "..."}

Normaliser statistics are plain JSON (``UnitGaussianNormalizer.to_dict()`` of
:mod:`pde_data.normalization`, under the keys ``input`` and ``output``); ``grid``, ``dataset`` (the
training data's fingerprint) and ``extra`` are whatever JSON-compatible values the caller gives.

Complex parameters (the spectral weights) are stored as real tensors with a trailing axis of 2
(``torch.view_as_real``) because safetensors has no complex dtype in every version we support; their
names are listed in ``complex_tensors`` and they are viewed back as complex on loading.

Loading checks before it allocates: ``config.json`` is read as strict JSON (:mod:`operators.strict_json`)
and its fields are type-checked; the model the config describes is built on the meta device
(:func:`operators.registry.layout`) and its tensors' names, shapes and dtypes are compared with the
safetensors header (read without materialising a tensor) — so a few-KB checkpoint whose config
claims ``width = 10**6`` is refused, naming the difference, instead of allocating terabytes. Only
then are the weights read, checked against ``weights_sha256`` and put into a model built for real.
Normaliser statistics must be finite, with non-negative spreads and channel counts that fit the model.

Saving is atomic and never destroys what it did not write (:mod:`operators.checkpoint_folder`): the
files are staged in a hidden folder named after this process and renamed into place; a target folder
that is not a pdeop checkpoint (or empty) is refused; a kill at any point leaves either the previous
checkpoint or the new one, and :func:`load` finishes a swap a kill interrupted.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from operators import strict_json
from operators.checkpoint_folder import CONFIG, FORMAT, WEIGHTS, recover, write_folder
from operators.registry import ModelLayout, build, describe, layout
from pde_data.config import to_mapping
from solvers.errors import ConfigError
from solvers.version import __version__

FORMAT_VERSION = 1


class Operator(nn.Module):
    """A loaded model with its normalisers and metadata: ``y = decode(model(encode(x), *args))``.

    Parameters
    ----------
    model
        A registered pdeop model.
    normalizers
        ``{"input": ..., "output": ...}`` statistics as plain JSON (either may be absent or None).
    grid, dataset, extra
        Metadata recorded at saving time.
    pdeop_version
        Version of pdeop that wrote the checkpoint.

    Attributes
    ----------
    model : nn.Module
        The bare model (to fine-tune or export it).
    input_normalizer, output_normalizer : UnitGaussianNormalizer or None
        Applied around the model in :meth:`forward`.
    """

    def __init__(self, model: nn.Module, normalizers: Mapping[str, Any] | None = None, grid: Any = None,
                 dataset: Any = None, extra: Any = None, pdeop_version: str = __version__) -> None:
        super().__init__()
        from pde_data.normalization import normalizer_from_dict

        self.model = model
        self.normalizers = _plain(normalizers) if normalizers is not None else None
        stats = self.normalizers or {}
        if not isinstance(stats, Mapping):
            raise ConfigError(f"normalizers must map 'input'/'output' to statistics (got {type(stats).__name__})")
        self.input_normalizer = normalizer_from_dict(stats.get("input"))
        self.output_normalizer = normalizer_from_dict(stats.get("output"))
        _check_normalizer(self.input_normalizer, "input")
        _check_normalizer(self.output_normalizer, "output")
        _check_normalizer_channels(self)
        self.grid = grid
        self.dataset = dataset
        self.extra = extra
        self.pdeop_version = pdeop_version

    @property
    def config(self) -> Any:
        """The model's config dataclass."""
        return self.model.config

    @property
    def model_name(self) -> str:
        """The registered name of the model."""
        return type(self.model).model_name

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Normalise ``x``, apply the model (extra arguments passed through), de-normalise the output."""
        if self.input_normalizer is not None:
            x = self.input_normalizer.encode(x)
        y = self.model(x, *args, **kwargs)
        if self.output_normalizer is not None:
            y = self.output_normalizer.decode(y)
        return y


def save(model: nn.Module, directory: str | os.PathLike, normalizers: Mapping[str, Any] | None = None,
         grid: Any = None, dataset: Any = None, extra: Any = None) -> Path:
    """Write a checkpoint folder atomically.

    Parameters
    ----------
    model
        A registered model, or an :class:`Operator` (its metadata is the default for the arguments
        left as None).
    directory
        The checkpoint folder; replaced if it holds a pdeop checkpoint, refused if it holds
        anything else (an empty folder is fine).
    normalizers
        ``{"input": stats, "output": stats}`` where ``stats`` is ``UnitGaussianNormalizer.to_dict()``
        (a normaliser module is converted), or None.
    grid, dataset, extra
        JSON-compatible metadata (tensors and arrays are converted to lists); every number must
        be finite.

    Returns
    -------
    Path
        The checkpoint folder.

    Raises
    ------
    ConfigError
        If the metadata holds a non-finite number or something not JSON-compatible, or
        ``directory`` is in the way (a file, or a folder that is not a pdeop checkpoint).
    """
    if isinstance(model, Operator):
        normalizers = model.normalizers if normalizers is None else normalizers
        grid = model.grid if grid is None else grid
        dataset = model.dataset if dataset is None else dataset
        extra = model.extra if extra is None else extra
        model = model.model
    description = describe(model)
    name = description.pop("model")
    tensors, complex_names = _real_tensors(model.state_dict())
    from safetensors.torch import save as safetensors_bytes

    weights = safetensors_bytes(tensors, metadata={"format": FORMAT})
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pdeop_version": __version__,
        "model": name,
        "config": description,
        "normalizers": _plain(normalizers),
        "grid": _plain(grid),
        "dataset": _plain(dataset),
        "extra": _plain(extra),
        "complex_tensors": complex_names,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    found: dict[str, str] = {}
    strict_json.sanitize(header, found=found)
    if found:
        where, what = next(iter(found.items()))
        raise ConfigError(f"checkpoint metadata {where} is {what}; a checkpoint stores finite numbers only")
    text = strict_json.dumps(header, indent=2) + "\n"
    directory = Path(directory)
    write_folder(directory, {WEIGHTS: weights, CONFIG: text.encode("utf-8")})
    return directory


def load(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Operator:
    """Load a checkpoint folder written by :func:`save`.

    Parameters
    ----------
    directory
        The checkpoint folder.
    device
        Where to put the weights.

    Returns
    -------
    Operator
        The model in eval mode, wrapped with its normalisers; metadata as attributes.

    Raises
    ------
    ConfigError
        If the folder or a file is missing, the files are not a pdeop checkpoint (a pickle, for
        instance, is refused without being read as one), damaged (truncated, bit flips: the
        checksum), the format or the major version is incompatible, the model is unknown, or the
        weights do not fit the config (checked on the header, before the model is allocated).
    """
    directory = Path(directory)
    header = checkpoint_metadata(directory)
    weights_path = directory / WEIGHTS
    if not weights_path.is_file():
        raise ConfigError(f"checkpoint {directory} has no {WEIGHTS}")
    stored = weights_layout(weights_path)
    expected = layout({"model": header["model"], **header["config"]})
    _compare_layouts(expected, stored, header["complex_tensors"], directory)
    blob = _read_bytes(weights_path)
    if hashlib.sha256(blob).hexdigest() != header["weights_sha256"]:
        raise ConfigError(f"{weights_path} does not match the checksum in {CONFIG} (the file is damaged, or the "
                          "files come from different saves)")
    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    try:
        tensors = safetensors_load(blob)
    except (SafetensorError, ValueError) as exc:
        raise ConfigError(f"{weights_path} is not a valid safetensors file ({exc})") from None
    del blob
    model = build({"model": header["model"], **header["config"]})
    state = _complex_tensors(tensors, header["complex_tensors"], weights_path)
    _load_state(model, state, directory)
    operator = Operator(model, header["normalizers"], grid=header.get("grid"), dataset=header.get("dataset"),
                        extra=header.get("extra"), pdeop_version=str(header["pdeop_version"]))
    return operator.to(device).eval()


def checkpoint_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked contents of a checkpoint's ``config.json`` (model, config, normalizers, grid, ...).

    Reads no weights; raises :class:`ConfigError` like :func:`load` for a missing, damaged or
    incompatible checkpoint (strict JSON, field types checked).
    """
    directory = Path(directory)
    recover(directory)
    if not directory.is_dir():
        raise ConfigError(f"checkpoint folder {directory} does not exist")
    return _read_header(directory)


#: safetensors dtype names of the torch dtypes a model may hold
SAFETENSORS_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                      torch.uint8: "U8", torch.bool: "BOOL"}
_COMPONENT = {torch.complex128: torch.float64, torch.complex64: torch.float32, torch.complex32: torch.float16}


def weights_layout(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, safetensors dtype)}`` from a safetensors file's header; no tensor is read.

    Raises
    ------
    ConfigError
        If the file is missing or its header is not a valid safetensors header (truncated files,
        offsets that do not cover the data exactly, and other damage are refused by safetensors).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: (tuple(handle.get_slice(key).get_shape()), str(handle.get_slice(key).get_dtype()))
                    for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path} is not a valid safetensors file ({first})") from None


def _compare_layouts(expected: ModelLayout, stored: dict[str, tuple[tuple[int, ...], str]],
                     complex_names: list[str], directory: Path) -> None:
    """ConfigError naming what differs between the config's tensors and the weights header."""
    wanted = {}
    for key, (shape, dtype) in expected.tensors.items():
        if dtype.is_complex:
            wanted[key] = ((*shape, 2), SAFETENSORS_DTYPES.get(_COMPONENT.get(dtype), str(dtype)))
        else:
            wanted[key] = (shape, SAFETENSORS_DTYPES.get(dtype, str(dtype)))
    stored_complex = sorted(k for k, (shape, dtype) in expected.tensors.items() if dtype.is_complex)
    problems = []
    missing = [k for k in wanted if k not in stored]
    unexpected = [k for k in stored if k not in wanted]
    wrong_shape = [f"{k} {list(stored[k][0])} (the config needs {list(v[0])})" for k, v in wanted.items()
                   if k in stored and stored[k][0] != v[0]]
    wrong_dtype = [f"{k} is {stored[k][1]} (the config needs {v[1]})" for k, v in wanted.items()
                   if k in stored and stored[k][0] == v[0] and stored[k][1] != v[1]]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape),
                         ("wrong dtype", wrong_dtype)):
        if items:
            problems.append(f"{label} {', '.join(items[:4])}{' ...' if len(items) > 4 else ''}")
    if not problems and sorted(complex_names) != stored_complex:
        problems.append(f"complex_tensors lists {sorted(complex_names)[:4]} but the config's complex tensors "
                        f"are {stored_complex[:4]}")
    if problems:
        stored_elements = sum(math.prod(shape) for shape, _ in stored.values())
        raise ConfigError(f"checkpoint {directory}: {CONFIG} describes a {expected.name} with "
                          f"{expected.elements:,} parameters ({expected.bytes / 2**20:.3g} MiB) but {WEIGHTS} holds "
                          f"{stored_elements:,} values; they do not belong together: {'; '.join(problems)}")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror or exc})") from None


#: the fields of config.json and their kinds (see strict_json.check_fields)
_HEADER_FIELDS = {"format": "string", "format_version": "int", "pdeop_version": "string", "model": "string",
                  "config": "mapping", "normalizers": "mapping?", "complex_tensors": "list",
                  "weights_sha256": "string"}


def _read_header(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG
    if not path.is_file():
        raise ConfigError(f"checkpoint {directory} has no {CONFIG}")
    header = strict_json.read(path)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a pdeop checkpoint description (no format {FORMAT!r})")
    if header.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{path} has checkpoint format version {str(header.get('format_version'))[:20]}; this "
                          f"pdeop ({__version__}) reads version {FORMAT_VERSION}")
    written = header.get("pdeop_version")
    if not isinstance(written, str) or _major(written) != _major(__version__):
        raise ConfigError(f"checkpoint {directory} was written by pdeop {str(written)[:20] or '(unknown)'}, "
                          f"incompatible with this pdeop {__version__} (major versions differ)")
    header.setdefault("normalizers", None)
    header.setdefault("complex_tensors", [])
    strict_json.check_fields(header, _HEADER_FIELDS, str(path))
    if not all(isinstance(name, str) for name in header["complex_tensors"]):
        raise ConfigError(f"{path}: 'complex_tensors' must be a list of tensor names")
    return header


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def _real_tensors(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Detached, contiguous, unshared CPU copies; complex tensors as real views ``[..., 2]``."""
    tensors: dict[str, torch.Tensor] = {}
    complex_names = []
    for key, value in state.items():
        value = value.detach().cpu()
        if value.is_complex():
            value = torch.view_as_real(value.resolve_conj().contiguous())
            complex_names.append(key)
        tensors[key] = value.contiguous().clone()
    return tensors, complex_names


def _complex_tensors(tensors: dict[str, torch.Tensor], names: list[str], path: Path) -> dict[str, torch.Tensor]:
    for name in names:
        value = tensors.get(name)
        if value is None or value.ndim == 0 or value.shape[-1] != 2 or not value.is_floating_point():
            raise ConfigError(f"{path}: complex tensor {name!r} is missing or not stored as [..., 2] real values")
        tensors[name] = torch.view_as_complex(value.contiguous())
    return tensors


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], directory: Path) -> None:
    expected = model.state_dict()
    wrong = [k for k, v in expected.items() if k not in state or state[k].shape != v.shape or state[k].dtype != v.dtype]
    if wrong or set(state) - set(expected):  # the header check makes this a bug, not a user error
        raise RuntimeError(f"checkpoint {directory}: weights passed the header check but do not fit ({wrong[:3]})")
    model.load_state_dict(state, strict=True)


def _check_normalizer(normalizer: Any, which: str) -> None:
    """Finite statistics with non-negative spreads (a damaged or crafted checkpoint otherwise)."""
    if normalizer is None:
        return
    if not (bool(torch.isfinite(normalizer.mean).all()) and bool(torch.isfinite(normalizer.std).all())):
        raise ConfigError(f"normalizers.{which}: the statistics hold non-finite values")
    if bool((normalizer.std < 0).any()) or not (math.isfinite(normalizer.eps) and normalizer.eps >= 0):
        raise ConfigError(f"normalizers.{which}: std and eps must be >= 0 (got a negative or non-finite value)")


def _check_normalizer_channels(operator: Operator) -> None:
    """Statistics with one channel or one per model channel, when the model config states its channels."""
    config = getattr(operator.model, "config", None)
    for which, field in (("input", "in_channels"), ("output", "out_channels")):
        normalizer = getattr(operator, f"{which}_normalizer")
        channels = getattr(config, field, None)
        if normalizer is None or not isinstance(channels, int) or normalizer.mean.ndim == 0:
            continue
        if normalizer.mean.shape[0] not in (1, channels):
            raise ConfigError(f"normalizers.{which} has statistics for {normalizer.mean.shape[0]} channels but the "
                              f"model has {field} = {channels}")


def _plain(value: Any) -> Any:
    """JSON-compatible copy: tensors/arrays to lists, normaliser modules to their ``to_dict()``."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return _plain(value.to_dict())
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    try:
        return to_mapping(value)
    except TypeError:
        raise ConfigError(f"checkpoint metadata must be JSON-compatible (got {type(value).__name__})") from None
