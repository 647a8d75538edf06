"""Initial coefficients of the group-rational activation, fitted by pdeop in its exact form.

For each named target (identity, GELU, SiLU, tanh) we fit ``F(x) = P(x)/Q(x)`` with
``P = sum_{i=0..5} a_i x^i`` and ``Q = 1 + sum_{j=1..4} |b_j| |x|^j`` on a fixed uniform grid of
``[-3, 3]``, in float64, deterministically:

1. *Linearised least squares*: ``P(x) - f(x) sum_j c_j |x|^j = f(x)`` is linear in ``(a, c)``;
   solved with the bounds ``c_j >= DENOMINATOR_FLOOR`` (bounded-variable least squares).
2. *Nonlinear least squares* on the true residual ``P/Q - f`` (trust-region reflective, same
   bounds), started from step 1. Residual and Jacobian are computed by the op's own reference
   (:mod:`operators.kernels.rational_reference`), so the fit is of exactly the function the layers
   evaluate.

Because the bounds keep ``b_j > 0``, ``|b_j| = b_j`` at the optimum. The floor is there because
``sign(0) = 0``: a denominator coefficient that starts at exactly 0 gets zero gradient and would
never train.

The fitted coefficients ship as ``rational_fits.json`` next to this file; :func:`load_fit` reads
them (no SciPy needed). Regenerate or verify them with::

    python -m operators.layers.rational_fit            # rewrite rational_fits.json
    python -m operators.layers.rational_fit --check    # refit and compare with the shipped file
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from operators.kernels.rational_reference import (
    DENOMINATOR_TERMS,
    NUMERATOR_TERMS,
    rational_backward_reference,
    rational_forward_reference,
)
from solvers.errors import ConfigError

FITS_PATH = Path(__file__).resolve().with_name("rational_fits.json")
INTERVAL = (-3.0, 3.0)
GRID_POINTS = 1201  # step 0.005; contains x = 0
DENOMINATOR_FLOOR = 1e-3
# Without a small ridge the identity fit is degenerate (P = x Q for any even Q) and the optimiser
# drifts to coefficients of order 1e6; 1e-8 * |theta|^2 is far below the squared errors of the fits.
RIDGE = 1e-8
FORM = "P(x)/Q(x), P = sum_{i=0..5} a_i x^i, Q = 1 + sum_{j=1..4} |b_j| |x|^j"


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _silu(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return x * expit(x)


#: name -> target function on float64 arrays (GELU is the exact, erf-based one).
TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda x: x.copy(),
    "gelu": _gelu,
    "silu": _silu,
    "tanh": np.tanh,
}


@dataclass(frozen=True)
class RationalFit:
    """Fitted coefficients of one target and their errors on the fitting grid.

    Attributes
    ----------
    name
        Target name (a key of :data:`TARGETS`).
    numerator
        ``(a0, ..., a5)``.
    denominator
        ``(b1, ..., b4)``; all ``>= DENOMINATOR_FLOOR``.
    max_error, rms_error
        Max and root-mean-square of ``|F - target|`` on the fitting grid.
    """

    name: str
    numerator: tuple[float, ...]
    denominator: tuple[float, ...]
    max_error: float
    rms_error: float


def fit_grid() -> np.ndarray:
    """The fixed float64 grid on which every target is fitted: uniform on ``INTERVAL``."""
    return np.linspace(*INTERVAL, GRID_POINTS)


def evaluate(numerator, denominator, x: np.ndarray) -> np.ndarray:  # noqa: ANN001 (array-likes)
    """``F(x)`` for one numerator ``[6]`` and one denominator ``[4]``, by the op's reference, in float64."""
    out = rational_forward_reference(
        torch.as_tensor(x, dtype=torch.float64),
        torch.as_tensor(numerator, dtype=torch.float64),
        torch.as_tensor(denominator, dtype=torch.float64).reshape(1, DENOMINATOR_TERMS),
        groups=1,
    )
    return out.numpy()


def fit_target(name: str) -> RationalFit:
    """Fit the rational to the target ``name`` on :func:`fit_grid` (deterministic).

    Raises
    ------
    ConfigError
        If ``name`` is not a known target.
    """
    from scipy.optimize import least_squares, lsq_linear

    target = _target(name)
    x = fit_grid()
    f = target(x)
    abs_x = np.abs(x)

    lower = np.r_[np.full(NUMERATOR_TERMS, -np.inf), np.full(DENOMINATOR_TERMS, DENOMINATOR_FLOOR)]
    bounds = (lower, np.full(NUMERATOR_TERMS + DENOMINATOR_TERMS, np.inf))
    # Objective mean(r^2) + RIDGE * |theta|^2, written as one stacked least-squares residual.
    scale = 1.0 / math.sqrt(x.shape[0])
    ridge = math.sqrt(RIDGE) * np.eye(NUMERATOR_TERMS + DENOMINATOR_TERMS)
    linear = np.column_stack(
        [x**i for i in range(NUMERATOR_TERMS)] + [-f * abs_x**j for j in range(1, DENOMINATOR_TERMS + 1)]
    )
    stacked = np.vstack([scale * linear, ridge])
    stacked_rhs = np.r_[scale * f, np.zeros(len(ridge))]
    start = lsq_linear(stacked, stacked_rhs, bounds=bounds, method="bvls", tol=1e-14).x

    def residual(theta: np.ndarray) -> np.ndarray:
        return evaluate(theta[:NUMERATOR_TERMS], theta[NUMERATOR_TERMS:], x) - f

    result = least_squares(
        lambda theta: np.r_[scale * residual(theta), ridge @ theta],
        start,
        jac=lambda theta: np.vstack([scale * _jacobian(theta, x), ridge]),
        bounds=bounds,
        method="trf",
        x_scale="jac",
        ftol=1e-15,
        xtol=1e-15,
        gtol=1e-15,
        max_nfev=5000,
    )
    theta = result.x
    error = np.abs(residual(theta))
    return RationalFit(
        name=name,
        numerator=tuple(float(v) for v in theta[:NUMERATOR_TERMS]),
        denominator=tuple(float(v) for v in theta[NUMERATOR_TERMS:]),
        max_error=float(error.max()),
        rms_error=float(np.sqrt(np.mean(error**2))),
    )


def _jacobian(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Rows ``dF(x_n)/d(a, b)`` from the op's explicit backward.

    Each grid point is made its own channel *and* its own group (with identical coefficients), so
    the per-group coefficient gradients for ``grad_out = 1`` are exactly the per-point Jacobian rows.
    """
    n = x.shape[0]
    xt = torch.as_tensor(x, dtype=torch.float64)
    num = torch.as_tensor(theta[:NUMERATOR_TERMS], dtype=torch.float64).expand(n, NUMERATOR_TERMS)
    den = torch.as_tensor(theta[NUMERATOR_TERMS:], dtype=torch.float64).expand(n, DENOMINATOR_TERMS)
    _, grad_num, grad_den = rational_backward_reference(torch.ones_like(xt), xt, num, den, groups=n)
    return torch.cat([grad_num, grad_den], dim=1).numpy()


def _target(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name not in TARGETS:
        raise ConfigError(f"rational init must be one of {', '.join(sorted(TARGETS))} (got {name!r})")
    return TARGETS[name]


def fits_document(fits: list[RationalFit]) -> dict:
    """The JSON document written to ``rational_fits.json``."""
    return {
        "form": FORM,
        "interval": list(INTERVAL),
        "grid_points": GRID_POINTS,
        "denominator_floor": DENOMINATOR_FLOOR,
        "regenerate": "python -m operators.layers.rational_fit",
        "fits": {
            fit.name: {
                "numerator": list(fit.numerator),
                "denominator": list(fit.denominator),
                "max_error": fit.max_error,
                "rms_error": fit.rms_error,
            }
            for fit in fits
        },
    }


@lru_cache(maxsize=1)
def _shipped_fits() -> dict:
    return json.loads(FITS_PATH.read_text(encoding="utf-8"))["fits"]


def fit_names() -> list[str]:
    """Names of the shipped fits (valid ``init`` values of the rational layers)."""
    return sorted(_shipped_fits())


def load_fit(name: str) -> tuple[list[float], list[float]]:
    """Shipped coefficients of the fit ``name``: ``(numerator [6], denominator [4])``.

    Raises
    ------
    ConfigError
        If there is no fit named ``name``.
    """
    fits = _shipped_fits()
    if name not in fits:
        raise ConfigError(f"rational init must be one of {', '.join(sorted(fits))} (got {name!r})")
    return list(fits[name]["numerator"]), list(fits[name]["denominator"])


def main(argv: list[str] | None = None) -> int:
    """Refit every target; write ``rational_fits.json`` or, with ``--check``, compare with it."""
    parser = argparse.ArgumentParser(
        prog="python -m operators.layers.rational_fit", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=FITS_PATH, help="where to write the JSON (default: the shipped file)"
    )
    parser.add_argument(
        "--check", action="store_true", help="refit and compare with the shipped file; write nothing"
    )
    args = parser.parse_args(argv)

    fits = [fit_target(name) for name in TARGETS]
    for fit in fits:
        print(f"{fit.name:>8}: max |F - f| = {fit.max_error:.3e}, rms = {fit.rms_error:.3e} on {INTERVAL}")
    if args.check:
        x = fit_grid()
        worst = 0.0
        for fit in fits:
            shipped = evaluate(*load_fit(fit.name), x)
            worst = max(worst, float(np.abs(evaluate(fit.numerator, fit.denominator, x) - shipped).max()))
        print(f"largest difference from the shipped fits on the grid: {worst:.3e}")
        return 0 if worst < 1e-8 else 1
    args.out.write_text(json.dumps(fits_document(fits), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
