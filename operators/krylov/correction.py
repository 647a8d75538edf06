"""The residual-to-error network of the two-level neural cycle (:mod:`solvers.neural_krylov`).

A trained ``a -> u`` operator predicts one solution; a Krylov preconditioner must map *any*
residual ``r`` to the error ``A^-1 r``. :func:`train_correction` fits an FNO to that map on pairs
the family's own matrices produce at no solve cost: a coefficient draw of the family, a random
smooth error ``e`` (a Neumann Gaussian random field of smoothness ``alpha`` 1.5–2.5 per solution
field) relaxed by ``sweeps`` sweeps of the cycle's smoother (``e <- e - S A e``, exactly what the
cycle's pre-smoothing leaves of an error), and ``r = A e``. So the network is trained on the part
of the error the smoother cannot remove, where it sees it (HINTS, Zhang et al. 2022).

Scaling: each input field is standardised over the training set (positive fields as logarithms),
the residual is divided by its root-mean-square ``s`` and the predicted error multiplied by ``s``
(the map is positively homogeneous in ``r``, as ``A^-1`` is).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from operators.models.fno import FNO, FNOConfig
from pde_data.elliptic import EllipticFamily
from pde_data.random_fields import neumann_grf
from pde_data.warm_start import build_smoother
from solvers.errors import ConfigError

#: smoothness exponents of the random errors before relaxation (one drawn per pair and field)
ERROR_ALPHAS = (1.0, 1.5, 2.0, 2.5)
#: sample indices of the coefficient draws used for training start here (disjoint from a dataset's)
TRAINING_INDEX_OFFSET = 10**9


@dataclasses.dataclass(frozen=True)
class CorrectionSettings:
    """Size of the correction network and of its training.

    Attributes
    ----------
    pairs
        Training pairs ``(inputs, r) -> e``.
    epochs, batch_size, lr
        Adam with a one-cycle schedule peaking at ``lr``.
    width, modes, layers
        FNO hidden channels, Fourier modes per axis (capped at half the grid), Fourier layers.
    seed
        Seeds the pairs and the initial weights.
    sweeps
        Smoother sweeps applied to each random error before its residual is formed.
    """

    pairs: int = 400
    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-3
    width: int = 24
    modes: int = 12
    layers: int = 4
    seed: int = 0
    sweeps: int = 2

    def __post_init__(self) -> None:
        for name in ("pairs", "epochs", "batch_size", "width", "modes", "layers"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"correction {name} must be an integer >= 1 (got {value!r})")
        if not self.lr > 0:
            raise ConfigError(f"correction lr must be a positive number (got {self.lr!r})")


class CorrectionModel:
    """The trained network with its scaling; ``model(inputs, residual)`` works on fields.

    Attributes
    ----------
    seconds
        Wall time of pair generation and training (the cost to report beside the solves).
    final_loss
        Mean relative L2 error of the last training epoch.
    """

    def __init__(self, net: FNO, family: EllipticFamily, shift: np.ndarray, scale: np.ndarray, out_scale: float,
                 seconds: float, final_loss: float) -> None:
        self.net, self.family = net.eval(), family
        self.shift, self.scale, self.out_scale = shift, scale, out_scale
        self.seconds, self.final_loss = seconds, final_loss

    def features(self, inputs: dict[str, np.ndarray], residual: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
        """``(C_in, *grid)`` network input and the residual's RMS ``s``."""
        return _features(self.family, inputs, residual, self.shift, self.scale)

    def __call__(self, inputs: dict[str, np.ndarray], residual: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The predicted error fields ``A^-1 r`` (float64, full grid) for residual fields ``r``."""
        x, s = self.features(inputs, residual)
        names = _solution_names(self.family)
        if s == 0:
            return {name: np.zeros_like(residual[name]) for name in names}
        with torch.no_grad():
            out = self.net(torch.from_numpy(x[None]).float())[0].double().numpy()
        return {name: out[i] * (self.out_scale * s) for i, name in enumerate(names)}


def _solution_names(family: EllipticFamily) -> list[str]:
    return list(family.solution_variables())


def _log_inputs(family: EllipticFamily, inputs: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([np.log(inputs[name]) if name in family.positive else inputs[name] for name in family.inputs])


def _features(family: EllipticFamily, inputs: dict[str, np.ndarray], residual: dict[str, np.ndarray],
              shift: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, float]:
    fields = (_log_inputs(family, inputs) - shift) / scale
    r = np.stack([residual[name] for name in _solution_names(family)])
    s = float(np.sqrt(np.mean(r**2)))
    return np.concatenate([fields, r / s if s > 0 else r]), s


def train_correction(family: EllipticFamily, smoother: str, settings: CorrectionSettings = CorrectionSettings(),
                     log: object = None) -> CorrectionModel:
    """Train the residual-to-error network for ``family``'s systems at its configured resolution.

    Parameters
    ----------
    family
        The elliptic family (its config fixes resolution and coefficient distribution).
    smoother
        The cycle's smoother (a :mod:`solvers.preconditioners` name) that relaxes the random errors.
    settings
        Network and training size.
    log
        Optional callable receiving one line per few epochs.

    Returns
    -------
    CorrectionModel
        With ``seconds`` (pairs and training) and ``final_loss``.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    names = _solution_names(family)
    K, dim = family.config.resolution, family.dim
    samples_in, samples_r, samples_e = [], [], []
    for i in range(settings.pairs):
        inputs = family.sample_inputs(TRAINING_INDEX_OFFSET + i, settings.seed)
        A, _ = family.assemble(inputs)
        errors = {name: neumann_grf(rng, K, alpha=float(rng.choice(ERROR_ALPHAS)), tau=family.config.tau, dim=dim)
                  for name in names}
        e = family.solution_vector(errors)
        S = build_smoother(family, smoother, A)
        for _ in range(settings.sweeps):
            e = e - S @ (A @ e)
        samples_in.append(_log_inputs(family, inputs))
        samples_r.append(family.solution_fields(A @ e))
        samples_e.append(family.solution_fields(e))
    fields = np.asarray(samples_in)
    axes = (0,) + tuple(range(2, fields.ndim))
    shift = fields.mean(axis=axes, keepdims=True)[0]
    scale = np.maximum(fields.std(axis=axes, keepdims=True)[0], 1e-12)
    X, Y = [], []
    for inputs_log, r, e in zip(fields, samples_r, samples_e):
        raw = {name: np.exp(inputs_log[j]) if name in family.positive else inputs_log[j]
               for j, name in enumerate(family.inputs)}
        x, s = _features(family, raw, r, shift, scale)
        X.append(x)
        Y.append(np.stack([e[name] for name in names]) / s)
    X_t = torch.tensor(np.asarray(X), dtype=torch.float32)
    Y_np = np.asarray(Y)
    out_scale = float(Y_np.std())
    Y_t = torch.tensor(Y_np / out_scale, dtype=torch.float32)
    modes = min(settings.modes, K // 2)
    net = FNO(FNOConfig(in_channels=X_t.shape[1], out_channels=len(names), n_modes=(modes,) * dim,
                        width=settings.width, n_layers=settings.layers, lifting_ratio=0, projection_ratio=2,
                        channel_mlp=False, domain_padding=(0.1,)))
    steps = settings.epochs * -(-settings.pairs // settings.batch_size)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=steps)
    loss_value = float("nan")
    for epoch in range(settings.epochs):
        order = torch.randperm(settings.pairs)
        total = 0.0
        for j in range(0, settings.pairs, settings.batch_size):
            batch = order[j:j + settings.batch_size]
            difference = (net(X_t[batch]) - Y_t[batch]).flatten(1)
            loss = (difference.norm(dim=1) / Y_t[batch].flatten(1).norm(dim=1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        loss_value = total / settings.pairs
        if callable(log) and (epoch % 10 == 9 or epoch == settings.epochs - 1):
            log(f"correction network: epoch {epoch + 1}/{settings.epochs}, relative L2 {loss_value:.3f}")
    return CorrectionModel(net, family, shift, scale, out_scale, time.perf_counter() - start, loss_value)
