"""Where the spectral integrators run: the NumPy path on the CPU, or their PyTorch ports on a torch device.

A device is named by a string:

* ``"cpu"`` (default) — the NumPy integrators (:mod:`solvers.navier_stokes`, :mod:`solvers.etdrk4`):
  pocketfft transforms whose results do not depend on the batch, the fastest CPU path measured;
* ``"cuda"``, ``"cuda:N"`` (or any other torch device, e.g. ``"mps"``) — the PyTorch ports of
  :mod:`solvers.torch_steppers`: the same schemes with the same coefficients, moved to the device;
* ``"torch-cpu"`` — the PyTorch ports on the CPU (to check them against the NumPy path; slower).

Which implementation runs is decided here, by the device, never by the caller: a family builds its
NumPy integrator and calls :func:`on_device`. This module imports torch only for a torch device, so
``import solvers`` stays light.
"""

from __future__ import annotations

from typing import Any

from solvers.errors import ConfigError

#: the NumPy path (the default)
NUMPY_DEVICE = "cpu"
#: the PyTorch ports on the CPU
TORCH_CPU_DEVICE = "torch-cpu"


def uses_torch(device: str) -> bool:
    """Whether ``device`` runs the PyTorch ports (everything but ``"cpu"``)."""
    return device != NUMPY_DEVICE


def device_kind(device: str) -> str:
    """What decides the last bits of the results: ``cpu`` (NumPy), ``torch-cpu``, or the torch device type
    (``cuda`` for every ``cuda:N``)."""
    if device in (NUMPY_DEVICE, TORCH_CPU_DEVICE):
        return device
    try:
        return torch_device(device).type
    except RuntimeError:
        return device


def torch_device(device: str) -> Any:
    """The :class:`torch.device` of a torch device name (``"torch-cpu"`` is torch's ``"cpu"``)."""
    import torch

    return torch.device("cpu" if device == TORCH_CPU_DEVICE else device)


def check_device(device: str, precision: str = "float64") -> str:
    """Validate a device name before any work and return it in canonical form.

    Parameters
    ----------
    device
        ``"cpu"``, ``"torch-cpu"`` or a torch device such as ``"cuda"`` / ``"cuda:1"``.
    precision
        Real precision the run needs on the device (``"float64"`` or ``"float32"``).

    Raises
    ------
    ConfigError
        The name is not a device, the device is absent (no GPU, a CPU-only torch, an index beyond
        the GPUs present) or cannot hold ``precision`` numbers; the message says what to use instead.
    """
    device = str(device).strip()
    if not uses_torch(device):
        return NUMPY_DEVICE
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a runtime requirement
        raise ConfigError(f"--device {device} needs PyTorch, which is not installed; use --device cpu") from None
    try:
        target = torch_device(device)
    except RuntimeError:
        raise ConfigError(f"--device must be cpu, torch-cpu, cuda or cuda:N (got {device!r})") from None
    if target.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ConfigError(f"--device {device}: {build} (torch {torch.__version__}); use --device cpu or run "
                              "on a machine with a GPU and a CUDA build of torch")
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible "
                              f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    dtype = getattr(torch, precision)
    try:
        torch.zeros(1, dtype=dtype, device=target)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"--device {device} cannot run {precision} arithmetic ({str(exc).splitlines()[0]}); "
                          "use --set precision=float32 or another device") from None
    return TORCH_CPU_DEVICE if device == TORCH_CPU_DEVICE else str(target)


def on_device(stepper: Any, device: str = NUMPY_DEVICE) -> Any:
    """The integrator ``stepper`` on ``device``: itself for ``"cpu"``, else its PyTorch port.

    Parameters
    ----------
    stepper
        A NumPy integrator (:class:`~solvers.navier_stokes.VorticityCN` or
        :class:`~solvers.etdrk4.ETDRK4` with a Navier–Stokes or 1-D advection term).
    device
        A name accepted by :func:`check_device`.

    Returns
    -------
    object
        Something with the same ``rollout(initial, steps_per_record, records, ...)`` as ``stepper``.
    """
    if not uses_torch(device):
        return stepper
    from solvers.torch_steppers import port

    return port(stepper, torch_device(device))
