"""A trained operator as simulations use it: model + normalisers, physical fields in and out.

:class:`Surrogate` wraps any registered model. Inputs ``x`` ``[B, C_in, *space]`` and
conditioning channels ``cond`` ``[B, C_cond, *space]`` are normalised, concatenated along the
channel axis and passed to the model; its output is de-normalised. For time-dependent data
``x`` holds ``history`` time steps and one call predicts the next ``step`` steps; :meth:`rollout`
feeds predictions back to go further. Every training mode of the trainer is one of the methods
here, so training, evaluation and export run the same code.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from pde_data.loading import Normalizers


class Surrogate(nn.Module):
    """A model with its normalisers.

    Parameters
    ----------
    model
        Any module mapping ``[B, C_in + C_cond, *space]`` to ``[B, C_out, *space]``.
    normalizers
        Input / output / conditioning normalisers (any may be None).
    history, step
        For time-dependent data: steps in the input window and steps predicted per call
        (None for static maps).
    """

    def __init__(self, model: nn.Module, normalizers: Normalizers | None = None,
                 history: Optional[int] = None, step: Optional[int] = None) -> None:
        super().__init__()
        normalizers = normalizers or Normalizers()
        self.model = model
        self.input_normalizer = normalizers.input
        self.output_normalizer = normalizers.output
        self.cond_normalizer = normalizers.cond
        self.history = history
        self.step = step

    @property
    def normalizers(self) -> Normalizers:
        """The normalisers as a :class:`~pde_data.loading.Normalizers`."""
        return Normalizers(self.input_normalizer, self.output_normalizer, self.cond_normalizer)

    def _encode_cond(self, cond: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        if cond is None or cond.shape[1] == 0:
            return None
        return self.cond_normalizer.encode(cond) if self.cond_normalizer is not None else cond

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_normalizer.encode(x) if self.input_normalizer is not None else x

    def _decode(self, y: torch.Tensor) -> torch.Tensor:
        return self.output_normalizer.decode(y) if self.output_normalizer is not None else y

    def _call(self, z: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        return self.model(z if c is None else torch.cat([z, c], dim=1))

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One model call on physical fields: ``[B, C_in, *space]`` -> ``[B, C_out, *space]``."""
        return self._decode(self._call(self._encode(x), self._encode_cond(cond)))

    def rollout(self, x: torch.Tensor, cond: Optional[torch.Tensor], n_calls: int,
                grad_calls: Optional[int] = None) -> torch.Tensor:
        """Autoregressive prediction of ``n_calls * step`` steps after the history ``x``.

        Each call sees the last ``history`` steps (true ones first, then its own predictions).
        For time-dependent models the input and output normalisers are the same, so the loop runs
        in normalised space and de-normalises once.

        Parameters
        ----------
        x
            ``[B, history, *space]`` physical history.
        cond
            ``[B, C_cond, *space]`` or None.
        n_calls
            Model calls.
        grad_calls
            Only the last ``grad_calls`` calls record gradients (None: all); the first ones run
            under ``torch.no_grad`` (pushforward training).

        Returns
        -------
        torch.Tensor
            ``[B, n_calls * step, *space]`` physical predictions.
        """
        if self.history is None:
            raise ValueError("rollout needs a time-dependent surrogate (history and step set)")
        c = self._encode_cond(cond)
        window = self._encode(x)
        outputs = []
        first_grad = 0 if grad_calls is None else n_calls - grad_calls
        for call in range(n_calls):
            with torch.set_grad_enabled(torch.is_grad_enabled() and call >= first_grad):
                out = self._call(window, c)
            outputs.append(out)
            window = torch.cat([window, out], dim=1)[:, -self.history:]
        return self._decode(torch.cat(outputs, dim=1))

    def teacher_forced(self, x: torch.Tensor, y: torch.Tensor, cond: Optional[torch.Tensor]) -> torch.Tensor:
        """Predict every ``step``-block of ``y`` from the true preceding ``history`` steps, in one batch.

        Returns ``[B, T_out, *space]`` like ``y``.
        """
        full = torch.cat([x, y], dim=1)
        n_calls = y.shape[1] // self.step
        starts = [x.shape[1] - self.history + j * self.step for j in range(n_calls)]
        windows = torch.cat([full[:, s:s + self.history] for s in starts], dim=0)
        cond_rep = None if cond is None else cond.repeat(n_calls, *([1] * (cond.ndim - 1)))
        out = self.forward(windows, cond_rep)
        return torch.cat(out.split(x.shape[0], dim=0), dim=1)

    def predict(self, x: torch.Tensor, cond: Optional[torch.Tensor], n_steps: int) -> torch.Tensor:
        """Physical prediction of ``n_steps`` target steps (time-dependent) or of the output (static).

        Autoregressive models are rolled out for ``ceil(n_steps / step)`` calls and cut to
        ``n_steps``; direct models produce their output in one call.
        """
        if self.history is None or self.step is None:
            return self.forward(x, cond)
        n_calls = -(-n_steps // self.step)
        return self.rollout(x, cond, n_calls)[:, :n_steps]

    def describe(self) -> dict[str, Any]:
        """What a checkpoint needs besides the model to rebuild this surrogate."""
        return {"history": self.history, "step": self.step}
