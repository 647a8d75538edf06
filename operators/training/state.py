"""Resumable training state without pickle: tensors in safetensors, everything else in JSON.

``training_state.safetensors`` holds the model's state dict (``model.*``), the optimiser's
per-parameter tensors (``optimizer.<param id>.<name>``) and the random generator states
(``rng.*``). ``training_state.json`` holds the optimiser's parameter groups, its non-tensor
per-parameter values, the run's progress (epoch, step, history, best score) and which tensors were
complex. Complex tensors are stored as their real views (``[..., 2]``) because older safetensors
releases have no complex dtype.

``training_state.json`` is strict JSON (:mod:`operators.strict_json`): an infinite best score (no
epoch improved yet) is stored as null and read back as infinity. Reading refuses damaged files
(truncated or bit-flipped tensors, malformed JSON, entries of the wrong type) with a ConfigError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from operators import strict_json
from operators.checkpoint_folder import TRAINING_STATE_FILES
from solvers.errors import ConfigError

TENSORS, META = TRAINING_STATE_FILES


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def save_training_state(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                        progress: dict[str, Any]) -> None:
    """Write the model, optimiser and RNG state plus ``progress`` into ``directory`` (which exists)."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, values in opt["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                tensors[f"optimizer.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = [_plain(value), isinstance(value, torch.Tensor)]
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    complex_keys = sorted(k for k, v in tensors.items() if v.is_complex())
    stored = {k: (torch.view_as_real(v) if v.is_complex() else v).detach().cpu().contiguous().clone()
              for k, v in tensors.items()}
    save_file(stored, str(directory / TENSORS))
    groups = [{k: _plain(v) for k, v in group.items()} for group in opt["param_groups"]]
    meta = {"progress": progress, "param_groups": groups, "optimizer_scalars": scalars, "complex": complex_keys}
    (directory / META).write_text(strict_json.dumps(meta), encoding="utf-8")


def load_training_state(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                        device: torch.device | str = "cpu") -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote; returns the saved ``progress``.

    Raises
    ------
    ConfigError
        If the files are missing or do not fit the model / optimiser (another config).
    """
    if not (directory / TENSORS).is_file() or not (directory / META).is_file():
        raise ConfigError(f"{directory} holds no training state to resume from")
    meta = strict_json.check_fields(strict_json.read(directory / META), {
        "progress": "mapping", "param_groups": "list", "optimizer_scalars": "mapping", "complex": "list"},
        str(directory / META))
    from safetensors import SafetensorError

    try:
        tensors = load_file(str(directory / TENSORS))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{directory / TENSORS} is not a valid safetensors file ({first})") from None
    try:
        return _restore(meta, tensors, model, optimizer, device, directory)
    except ConfigError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:  # entries of a damaged file
        raise ConfigError(f"the training state in {directory} is damaged or does not fit this run "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None


def _restore(meta: dict[str, Any], tensors: dict[str, torch.Tensor], model: nn.Module,
             optimizer: torch.optim.Optimizer, device: torch.device | str, directory: Path) -> dict[str, Any]:
    for key in meta["complex"]:
        tensors[key] = torch.view_as_complex(tensors[key])
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ConfigError(f"the training state in {directory} does not fit this model "
                          f"({str(exc).splitlines()[0]}); resume with the config the run started with") from None
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value.to(device)
    for pid, values in meta["optimizer_scalars"].items():
        for name, (value, was_tensor) in values.items():
            state.setdefault(int(pid), {})[name] = torch.tensor(value, dtype=torch.float32) if was_tensor else value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"the optimiser state in {directory} does not fit this run ({exc})") from None
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    progress = meta["progress"]
    if "best_score" in progress and progress["best_score"] is None:  # strict JSON stores infinity as null
        progress["best_score"] = float("inf")
    return progress
