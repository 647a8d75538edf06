"""Mixed-precision training: ``training.precision`` as autocast regions and, for float16, loss scaling.

``float32`` changes nothing. ``bfloat16`` and ``float16`` run the model's forward pass under
``torch.autocast``: matrix products and convolutions (lifting, projection, channel MLPs, skip
connections, MgNO's and DeepONet's convolutions and linear layers) compute in the half type, while
everything autocast keeps in float32 stays there. Three parts are excluded on purpose and cast
explicitly, because half precision would be wrong there:

* the spectral convolution (:class:`operators.layers.spectral_conv.SpectralConv`) runs with autocast
  off on float32 input: its transforms (FFTs and the truncated real-DFT products) and the mode mixing
  stay in float32 / complex64 (there is no complex half type on CPU, and an 8-bit mantissa in the
  DFT products would cost the low modes their accuracy);
* the group-rational activation (:func:`operators.kernels.rational`) evaluates its degree-5 / degree-4
  polynomials in float32 (Horner sums of terms up to ``|x|^5`` lose all digits in bfloat16);
* the loss, the physics residual, validation and everything after the forward pass are float32
  (the trainer casts the predictions back).

Parameters, gradients and optimiser state stay float32 in every mode (so checkpoints do not depend on
the precision). float16 multiplies the loss by a dynamic scale (:class:`LossScaler`, torch's
GradScaler policy) so that small gradients do not underflow; a step whose scaled gradients overflow
is skipped and the scale halved, which is how float16 training is meant to run, and training stops as
diverged only when the gradients are not finite even at a scale below 1. The scaler's state is part of
the training state, so a resume replays the same steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import torch

from operators.training.divergence import optimizer_step
from solvers.errors import ConfigError

Name = Literal["float32", "bfloat16", "float16"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: below this loss scale a non-finite float16 gradient is the gradient's own, not an overflow of the scale
MIN_SCALE = 1.0


class LossScaler:
    """Dynamic loss scaling for float16 (the policy of ``torch.amp.GradScaler``, for complex parameters too).

    The objective is multiplied by ``scale`` before the backward pass and the gradients divided by it
    after; a step whose gradients are not finite is skipped and the scale multiplied by ``backoff``;
    after ``interval`` good steps in a row it is multiplied by ``growth``. torch's own GradScaler
    cannot unscale complex gradients (the spectral weights), hence this class; its defaults are
    GradScaler's.
    """

    def __init__(self, scale: float = 2.0 ** 16, growth: float = 2.0, backoff: float = 0.5,
                 interval: int = 2000) -> None:
        self.scale = float(scale)
        self.growth, self.backoff, self.interval = float(growth), float(backoff), int(interval)
        self.good_steps = 0
        self.found_non_finite = False

    def unscale(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Divide the gradients by the scale and note whether any is not finite."""
        grads = [p.grad for p in parameters if p.grad is not None]
        for grad in grads:
            grad.mul_(1.0 / self.scale)
        self.found_non_finite = bool(grads) and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())

    def step(self, take_step: Callable[[], None]) -> None:
        """``take_step()`` unless the gradients were not finite; then update the scale."""
        if self.found_non_finite:
            self.scale *= self.backoff
            self.good_steps = 0
            return
        take_step()
        self.good_steps += 1
        if self.good_steps == self.interval:
            self.scale *= self.growth
            self.good_steps = 0

    def state(self) -> dict[str, Any]:
        """The scale and the count of good steps (plain numbers)."""
        return {"scale": self.scale, "good_steps": self.good_steps}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`."""
        self.scale = float(state["scale"])
        self.good_steps = int(state["good_steps"])


class Precision:
    """The autocast region and the loss scaling of one ``training.precision`` on one device.

    Parameters
    ----------
    name
        ``float32``, ``bfloat16`` or ``float16``.
    device
        The training device.

    Raises
    ------
    ConfigError
        If the device cannot compute in that precision (:func:`check_supported`).
    """

    def __init__(self, name: Name, device: torch.device | str) -> None:
        self.name = name
        self.device = torch.device(device)
        self.dtype = DTYPES[name]
        check_supported(name, self.device)
        self.scaler = LossScaler() if name == "float16" else None

    @property
    def mixed(self) -> bool:
        """Whether the forward pass runs under autocast."""
        return self.name != "float32"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of the forward pass (a no-op for float32)."""
        if not self.mixed:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, objective: torch.Tensor) -> None:
        """``objective.backward()``, of the scaled objective for float16."""
        (objective if self.scaler is None else objective * self.scaler.scale).backward()

    def unscale(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Divide the gradients by the loss scale (before they are checked or clipped)."""
        if self.scaler is not None:
            self.scaler.unscale(parameters)

    def skips_overflow(self) -> bool:
        """Whether this float16 step will be skipped for non-finite gradients (then they are not checked).

        False for float32 / bfloat16, and for float16 once the scale is below :data:`MIN_SCALE`: then a
        non-finite gradient is the model's and :func:`~operators.training.divergence.check_gradients`
        stops the run.
        """
        return self.scaler is not None and self.scaler.found_non_finite and self.scaler.scale >= MIN_SCALE

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Take the optimiser step (float16: unless the gradients overflowed, see :class:`LossScaler`).

        Raises
        ------
        NonFiniteStep
            If the update overflows the parameters' range (:func:`.divergence.optimizer_step`).
        """
        if self.scaler is None:
            optimizer_step(optimizer)
        else:
            self.scaler.step(lambda: optimizer_step(optimizer))

    def state(self) -> dict[str, Any] | None:
        """The loss scaler's state to save with the training state, None without a scaler."""
        return None if self.scaler is None else self.scaler.state()

    def load_state(self, state: Any) -> None:
        """Restore :meth:`state` (ignored without a scaler or without a saved state)."""
        if self.scaler is not None and isinstance(state, dict):
            self.scaler.load_state(state)


@contextlib.contextmanager
def full_precision(device_type: str) -> Iterator[None]:
    """Leave any enclosing autocast region (for code that casts to float32 itself)."""
    if torch.is_autocast_enabled(device_type):
        with torch.autocast(device_type, enabled=False):
            yield
    else:
        yield


def check_supported(name: str, device: torch.device) -> None:
    """Refuse a precision the device cannot train in, naming ``training.precision``.

    A float32 run is always possible. For the half types a tiny autocast product and its backward
    pass are computed on the device: that is the test that matters (CUDA devices before compute
    capability 8.0 have no bfloat16 products; some CPU builds lack float16 kernels).

    Raises
    ------
    ConfigError
        If ``name`` is unknown or the device fails the probe.
    """
    if name not in DTYPES:
        raise ConfigError(f"training.precision must be one of {', '.join(DTYPES)} (got {name!r})")
    if name == "float32":
        return
    dtype = DTYPES[name]
    reason = ""
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        reason = f"{torch.cuda.get_device_name(device)} has no bfloat16 arithmetic"
    elif not torch.amp.autocast_mode.is_autocast_available(device.type):
        reason = f"torch has no autocast for {device.type}"
    else:
        try:
            weight = torch.ones(4, 4, device=device, requires_grad=True)
            with torch.autocast(device.type, dtype=dtype):
                out = torch.ones(2, 4, device=device) @ weight
            if out.dtype != dtype:
                reason = f"autocast on {device.type} computes products in {out.dtype}, not {name}"
            else:
                out.float().sum().backward()
        except RuntimeError as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    if reason:
        raise ConfigError(f"training.precision {name!r} cannot run on {device.type}: {reason}; "
                          f"use training.precision: float32 (or bfloat16 where supported)")
