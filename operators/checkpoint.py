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

Saving is atomic: the files are written and flushed in a hidden sibling folder, which is then renamed
into place (an existing checkpoint is first renamed aside and deleted afterwards). A kill at any point
leaves either the previous checkpoint or the new one; if it strikes between the two renames,
:func:`load` finds the complete new folder and moves it into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from operators.registry import build, describe
from pde_data.config import to_mapping
from solvers.errors import ConfigError
from solvers.version import __version__

FORMAT = "pdeop-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
CONFIG = "config.json"


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
        The checkpoint folder; replaced if it exists.
    normalizers
        ``{"input": stats, "output": stats}`` where ``stats`` is ``UnitGaussianNormalizer.to_dict()``
        (a normaliser module is converted), or None.
    grid, dataset, extra
        JSON-compatible metadata (tensors and arrays are converted to lists).

    Returns
    -------
    Path
        The checkpoint folder.
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
    text = json.dumps(header, indent=2, allow_nan=False) + "\n"
    directory = Path(directory)
    _write_folder(directory, {WEIGHTS: weights, CONFIG: text.encode("utf-8")})
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
        instance, is refused without being read as one), the format or the major version is
        incompatible, the model is unknown, or the weights do not fit the config.
    """
    directory = Path(directory)
    _recover(directory)
    if not directory.is_dir():
        raise ConfigError(f"checkpoint folder {directory} does not exist")
    header = _read_header(directory)
    weights_path = directory / WEIGHTS
    if not weights_path.is_file():
        raise ConfigError(f"checkpoint {directory} has no {WEIGHTS}")
    blob = weights_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != header.get("weights_sha256"):
        raise ConfigError(f"{weights_path} does not match the checksum in {CONFIG} (the files come from "
                          "different saves or were modified)")
    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    try:
        tensors = safetensors_load(blob)
    except (SafetensorError, ValueError) as exc:
        raise ConfigError(f"{weights_path} is not a valid safetensors file ({exc})") from None
    model = build({"model": header["model"], **header["config"]})
    state = _complex_tensors(tensors, header.get("complex_tensors", []), weights_path)
    _load_state(model, state, directory)
    operator = Operator(model, header.get("normalizers"), grid=header.get("grid"), dataset=header.get("dataset"),
                        extra=header.get("extra"), pdeop_version=str(header["pdeop_version"]))
    return operator.to(device).eval()


def checkpoint_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked contents of a checkpoint's ``config.json`` (model, config, normalizers, grid, ...).

    Reads no weights; raises :class:`ConfigError` like :func:`load` for a missing or incompatible
    checkpoint.
    """
    directory = Path(directory)
    _recover(directory)
    if not directory.is_dir():
        raise ConfigError(f"checkpoint folder {directory} does not exist")
    return _read_header(directory)


def _read_header(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG
    if not path.is_file():
        raise ConfigError(f"checkpoint {directory} has no {CONFIG}")
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a pdeop checkpoint description (no format {FORMAT!r})")
    if header.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{path} has checkpoint format version {header.get('format_version')!r}; this pdeop "
                          f"({__version__}) reads version {FORMAT_VERSION}")
    written = str(header.get("pdeop_version", ""))
    if _major(written) != _major(__version__):
        raise ConfigError(f"checkpoint {directory} was written by pdeop {written or '(unknown)'}, incompatible "
                          f"with this pdeop {__version__} (major versions differ)")
    for key in ("model", "config"):
        if key not in header:
            raise ConfigError(f"{path} lacks the entry {key!r}")
    if not isinstance(header["config"], dict):
        raise ConfigError(f"{path}: 'config' must be a mapping of the model's settings")
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
        if value is None or value.ndim == 0 or value.shape[-1] != 2:
            raise ConfigError(f"{path}: complex tensor {name!r} is missing or not stored as [..., 2] real values")
        tensors[name] = torch.view_as_complex(value.contiguous())
    return tensors


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], directory: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {list(state[k].shape)} (config needs {list(v.shape)})"
             for k, v in expected.items() if k in state and (state[k].shape != v.shape or state[k].dtype != v.dtype)]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
    if wrong:
        problems.append(f"wrong shape or dtype {', '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''}")
    if problems:
        raise ConfigError(f"checkpoint {directory}: the weights do not fit the model config: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


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


def _siblings(directory: Path, kind: str) -> list[Path]:
    """Hidden work folders of ``directory`` (``kind`` is ``tmp`` or ``old``), newest first."""
    parent = directory.parent
    if not parent.is_dir():
        return []
    found = [p for p in parent.glob(f".{directory.name}.{kind}-*") if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _complete(folder: Path) -> bool:
    # config.json is written last, after the weights were flushed.
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def _recover(directory: Path) -> None:
    """Finish a save that was killed between moving the old folder aside and moving the new one in."""
    if directory.exists():
        return
    for kind in ("tmp", "old"):
        for candidate in _siblings(directory, kind):
            if _complete(candidate):
                os.replace(candidate, directory)
                return


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_folder(directory: Path, files: Mapping[str, bytes]) -> None:
    """Create ``directory`` with ``files`` (written in order, each flushed) so that it appears whole."""
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    _recover(directory)
    for kind in ("tmp", "old"):  # leftovers of saves killed earlier; the folder itself is intact
        for stale in _siblings(directory, kind):
            shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=parent))
    aside = parent / f".{directory.name}.old-{uuid.uuid4().hex}"
    try:
        for name, data in files.items():
            with open(work / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        _fsync(work)
        if directory.exists():
            if not directory.is_dir():
                raise ConfigError(f"checkpoint path {directory} exists and is not a folder")
            os.replace(directory, aside)
            os.replace(work, directory)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(work, directory)
        _fsync(parent)
    except BaseException:
        # An exception (not a kill) between the two renames: put the previous checkpoint back.
        if not directory.exists() and aside.exists():
            os.replace(aside, directory)
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
        raise
