"""The residual-to-error network of the two-level neural cycle (:mod:`solvers.neural_krylov`).

A trained ``a -> u`` operator predicts one solution; a Krylov preconditioner must map *any*
residual ``r`` to the error ``A^-1 r``. :func:`train_correction` fits an FNO to that map on pairs
the family's own matrices produce at no solve cost: a coefficient draw of the family, a random
smooth error ``e`` (a Neumann Gaussian random field of smoothness ``alpha`` 1–2.5 per solution
field) relaxed by ``sweeps`` sweeps of the cycle's smoother (``e <- e - S A e``, exactly what the
cycle's pre-smoothing leaves of an error), and ``r = A e``. So the network is trained on the part
of the error the smoother cannot remove, where it sees it (HINTS, Zhang et al. 2022). For the
additive cycle ``z = S r + N(r)`` the target is ``e - S r`` instead: what one smoother application
misses of ``A^-1 r``. For the additive-smoothed cycle ``z = S r + N(S r)`` the network's input is the
smoothed residual ``y = S r`` and the target ``e - y``; half of its pairs start from a raw random
residual (rough, as in the first Krylov iterations) instead of a relaxed error (:func:`training_pair`).

Loss: ``error`` — the relative L2 error of the predicted error field; ``energy`` (SPD families) — the
relative energy norm ``||d||_A / ||e||_A`` of what is left, ``d = e - N(r)``, after ``post_sweeps``
damped-Jacobi sweeps ``d <- d - (2/3) D^-1 A d`` (a differentiable stand-in for the cycle's
post-smoothing: the network is not charged for oscillatory error the smoother removes, and the
energy norm is what conjugate gradients minimise); ``residual`` (any family) — ``||A d|| / ||r||``.

Scaling: each input field is standardised over the training set (positive fields as logarithms),
the residual is divided by its root-mean-square ``s`` and the predicted error multiplied by ``s``
(the map is positively homogeneous in ``r``, as ``A^-1`` is).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from operators.models.fno import FNO, FNOConfig
from pde_data.elliptic import EllipticFamily
from pde_data.random_fields import neumann_grf
from pde_data.warm_start import build_smoother
from solvers.errors import ConfigError
from solvers.neural_krylov import CYCLES

#: smoothness exponents of the random errors before relaxation (one drawn per pair and field)
ERROR_ALPHAS = (1.0, 1.5, 2.0, 2.5)
#: ``additive-smoothed``: smoothness of the raw random residuals (0: white up to the grid's modes) ...
RESIDUAL_ALPHAS = (0.0, 0.5, 1.0, 2.0)
#: ... and of the random errors relaxed before their residual is formed
SMOOTHED_ERROR_ALPHAS = (0.5, 1.0, 1.5, 2.0)
#: sample indices of the coefficient draws used for training start here (disjoint from a dataset's)
TRAINING_INDEX_OFFSET = 10**9
#: training losses of the correction network (see the module docstring)
LOSSES = ("error", "energy", "residual")
#: damping of the Jacobi sweeps standing in for the post-smoothing in the ``energy`` loss
JACOBI_DAMPING = 2.0 / 3.0


@dataclasses.dataclass(frozen=True)
class CorrectionSettings:
    """Size of the correction network and of its training.

    Attributes
    ----------
    pairs
        Training pairs ``(inputs, r) -> e``. The defaults (800 pairs, 40 epochs) give 2.37× fewer
        products than the smoother alone on Helmholtz 33² and 3.11× on Darcy; 400 pairs and 30 epochs
        gave 1.96× and 2.80× (``benchmarks/neural_krylov.py``).
    epochs, batch_size, lr
        Adam with a one-cycle schedule peaking at ``lr``.
    width, modes, layers
        FNO hidden channels, Fourier modes per axis (capped at half the grid; None: three eighths of
        the grid intervals, 12 at 33² and 24 at 65², so the network covers the error the smoother
        leaves at every size), Fourier layers.
    seed
        Seeds the pairs and the initial weights.
    sweeps
        Smoother sweeps applied to each random error before its residual is formed.
    loss
        ``error``, ``energy`` (SPD families only) or ``residual`` (see the module docstring); None:
        ``energy`` for SPD families, ``error`` otherwise (the measured better choices).
    post_sweeps
        Damped-Jacobi sweeps applied to the remaining error before its energy norm (``energy`` only).
    cycle
        The cycle the network serves (:data:`solvers.neural_krylov.CYCLES`): ``multiplicative`` learns
        ``r -> e``, ``additive`` learns ``r -> e - S r``, ``additive-smoothed`` (default: the fewest
        products measured on Darcy and Helmholtz) ``S r -> e - S r``.
    """

    pairs: int = 800
    epochs: int = 40
    batch_size: int = 16
    lr: float = 3e-3
    width: int = 24
    modes: int | None = None
    layers: int = 4
    seed: int = 0
    sweeps: int = 2
    loss: str | None = None
    post_sweeps: int = 2
    cycle: str = "additive-smoothed"

    def __post_init__(self) -> None:
        if self.cycle not in CYCLES:
            raise ConfigError(f"correction cycle must be one of {', '.join(CYCLES)} (got {self.cycle!r})")
        if self.loss is not None and self.loss not in LOSSES:
            raise ConfigError(f"correction loss must be one of {', '.join(LOSSES)} (got {self.loss!r})")
        for name in ("sweeps", "post_sweeps"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 0):
                raise ConfigError(f"correction {name} must be an integer >= 0 (got {value!r})")
        for name in ("pairs", "epochs", "batch_size", "width", "modes", "layers"):
            value = getattr(self, name)
            if name == "modes" and value is None:
                continue
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
        Mean training loss (the chosen ``loss``, relative) of the last epoch.
    cycle
        The cycle it was trained for (``multiplicative``: predicts ``A^-1 r``; ``additive``: ``A^-1 r - S r``;
        ``additive-smoothed``: ``A^-1 r - S r`` from ``S r``).
    """

    def __init__(self, net: FNO, family: EllipticFamily, shift: np.ndarray, scale: np.ndarray, out_scale: float,
                 seconds: float, final_loss: float, cycle: str = "multiplicative") -> None:
        self.net, self.family, self.cycle = net.eval(), family, cycle
        self.shift, self.scale, self.out_scale = shift, scale, out_scale
        self.seconds, self.final_loss = seconds, final_loss

    def features(self, inputs: dict[str, np.ndarray], residual: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
        """``(C_in, *grid)`` network input and the residual's RMS ``s``."""
        return _features(self.family, inputs, residual, self.shift, self.scale)

    def __call__(self, inputs: dict[str, np.ndarray], residual: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The predicted error fields (float64, full grid) for the cycle's input fields (see ``cycle``)."""
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
                     log: object = None, smoother_options: dict | None = None) -> CorrectionModel:
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
    smoother_options
        The smoother's options (:func:`~pde_data.warm_start.build_smoother`); None: the family solver's.

    Returns
    -------
    CorrectionModel
        With ``seconds`` (pairs and training) and ``final_loss``.
    """
    start = time.perf_counter()
    if settings.loss is None:
        settings = dataclasses.replace(settings, loss="energy" if family.traits().spd else "error")
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    names = _solution_names(family)
    K, dim = family.config.resolution, family.dim
    if settings.loss == "energy" and not family.traits().spd:
        raise ConfigError(f"correction loss 'energy' needs a symmetric positive definite family; {family.name} is not "
                          "(use 'residual' or 'error')")
    samples_in, samples_r, samples_e, matrices = [], [], [], []
    for i in range(settings.pairs):
        inputs, A, r, target = training_pair(family, smoother, smoother_options, settings, i, rng)
        samples_in.append(_log_inputs(family, inputs))
        samples_r.append(family.solution_fields(r))
        samples_e.append(family.solution_fields(target))
        matrices.append(A)
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
    modes = min(settings.modes or 3 * (K - 1) // 8, K // 2)
    net = FNO(FNOConfig(in_channels=X_t.shape[1], out_channels=len(names), n_modes=(modes,) * dim,
                        width=settings.width, n_layers=settings.layers, lifting_ratio=0, projection_ratio=2,
                        channel_mlp=False, domain_padding=(0.1,)))
    steps = settings.epochs * -(-settings.pairs // settings.batch_size)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=steps)
    measure = _loss_function(family, settings, matrices)
    loss_value = float("nan")
    for epoch in range(settings.epochs):
        order = torch.randperm(settings.pairs)
        total = 0.0
        for j in range(0, settings.pairs, settings.batch_size):
            batch = order[j:j + settings.batch_size]
            loss = measure(net(X_t[batch]), Y_t[batch], batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        loss_value = total / settings.pairs
        if callable(log) and (epoch % 10 == 9 or epoch == settings.epochs - 1):
            log(f"correction network: epoch {epoch + 1}/{settings.epochs}, {settings.loss} loss {loss_value:.3f}")
    return CorrectionModel(net, family, shift, scale, out_scale, time.perf_counter() - start, loss_value,
                           settings.cycle)


def training_pair(family: EllipticFamily, smoother: str, smoother_options: dict | None, settings: CorrectionSettings,
                  i: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], sp.spmatrix, np.ndarray, np.ndarray]:
    """Training pair ``i``: the coefficient draw's input fields, its matrix ``A`` ``(n, n)``, the network's
    input ``(n,)`` and its target ``(n,)``.

    ``multiplicative``: input the residual ``r = A e`` of a random relaxed error ``e``, target ``e``.
    ``additive``: the same ``r``, target ``e - S r``. ``additive-smoothed``: input ``y = S r``, target
    ``e - y``; even ``i`` take a raw random residual ``r`` (a Neumann GRF of smoothness
    :data:`RESIDUAL_ALPHAS`, ``e = A^-1 r`` by a sparse LU), odd ``i`` a relaxed random error (smoothness
    :data:`SMOOTHED_ERROR_ALPHAS`), so the network sees both the rough residuals of the first Krylov
    iterations and the smooth ones of the later.
    """
    K, dim = family.config.resolution, family.dim
    inputs = family.sample_inputs(TRAINING_INDEX_OFFSET + i, settings.seed)
    A, _ = family.assemble(inputs)
    S = build_smoother(family, smoother, A, smoother_options, inputs)

    def random_vector(alphas: tuple[float, ...]) -> np.ndarray:
        return family.solution_vector({name: neumann_grf(rng, K, alpha=float(rng.choice(alphas)),
                                                         tau=family.config.tau, dim=dim)
                                       for name in _solution_names(family)})

    if settings.cycle == "additive-smoothed" and i % 2 == 0:
        r = random_vector(RESIDUAL_ALPHAS)
        e = spla.splu(sp.csc_matrix(A)).solve(r)
    else:
        e = random_vector(SMOOTHED_ERROR_ALPHAS if settings.cycle == "additive-smoothed" else ERROR_ALPHAS)
        for _ in range(settings.sweeps):
            e = e - S @ (A @ e)
        r = A @ e
    if settings.cycle == "multiplicative":
        return inputs, A, r, e
    y = np.asarray(S @ r, dtype=np.float64)
    return inputs, A, (y if settings.cycle == "additive-smoothed" else r), e - y


def _unknown_positions(family: EllipticFamily) -> np.ndarray:
    """Positions in the flattened ``(C, *grid)`` solution fields of the solution vector's entries.

    The families' ``solution_vector`` selects grid values (interior points; real then imaginary
    part); this is checked on a random field, so a family that also scales them is refused.
    """
    names = _solution_names(family)
    shape = (len(names),) + (family.config.resolution,) * family.dim
    numbered = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    positions = family.solution_vector({name: numbered[i] for i, name in enumerate(names)})
    probe = np.random.default_rng(0).standard_normal(shape)
    index = np.rint(positions).astype(np.int64)
    if not np.array_equal(family.solution_vector({name: probe[i] for i, name in enumerate(names)}),
                          probe.reshape(-1)[index]):
        raise ConfigError(f"{family.name}: its solution vector is not a selection of grid values; "
                          "train the correction with loss 'error'")
    return index


class _BatchedMatrices:
    """The training matrices on one shared sparsity pattern (their union), so that a batch's products
    ``A_j d_j`` are one differentiable gather, multiply and scatter-add."""

    def __init__(self, matrices: list) -> None:
        pattern = sum(abs(sp.csr_matrix(A)) for A in matrices).tocoo()
        self.rows = torch.from_numpy(pattern.row.astype(np.int64))
        self.cols = torch.from_numpy(pattern.col.astype(np.int64))
        self.values = torch.tensor(np.stack([np.asarray(sp.csr_matrix(A)[pattern.row, pattern.col]).ravel()
                                             for A in matrices]), dtype=torch.float32)
        self.inverse_diagonal = torch.tensor(np.stack([1.0 / A.diagonal() for A in matrices]), dtype=torch.float32)

    def apply(self, batch: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` products of the pairs ``batch``'s matrices with ``vectors`` ``[B, n]``."""
        terms = self.values[batch] * vectors[:, self.cols]
        return vectors.new_zeros(vectors.shape).index_add(1, self.rows, terms)


def _loss_function(family: EllipticFamily, settings: CorrectionSettings,
                   matrices: list) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(predicted, target, batch)``: mean over the batch of the chosen relative measure of the
    remaining error ``predicted - target`` (fields ``[B, C, *grid]``; ``batch`` the pairs' indices)."""
    if settings.loss == "error":
        def relative_error(predicted: torch.Tensor, target: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
            return ((predicted - target).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1)).mean()
        return relative_error
    index = torch.from_numpy(_unknown_positions(family))
    A = _BatchedMatrices(matrices)

    def relative_norm(predicted: torch.Tensor, target: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        d = (predicted - target).flatten(1)[:, index]
        e = target.flatten(1)[:, index]
        if settings.loss == "residual":
            return (A.apply(batch, d).norm(dim=1) / A.apply(batch, e).norm(dim=1)).mean()
        for _ in range(settings.post_sweeps):
            d = d - JACOBI_DAMPING * A.inverse_diagonal[batch] * A.apply(batch, d)
        energy = (d * A.apply(batch, d)).sum(dim=1) / (e * A.apply(batch, e)).sum(dim=1)
        return torch.sqrt(energy).mean()
    return relative_norm
