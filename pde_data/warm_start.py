"""Elliptic solves accelerated by a trained model (``pdeop generate ... --warm-start RUN``).

pde_data knows no model: the caller (``operators.krylov``) hands an elliptic family an object with
the :class:`WarmStart` protocol, which works on the family's stored fields (``u``, or ``u`` and
``u_imag``) and never sees a matrix. :func:`accelerated_solve` turns it into the two callables of
:func:`solvers.neural_krylov.neural_solve` — the prediction as ``x0`` and the learned error model
inside the two-level cycle — using the family's own vector/field conversions.

The generator's check stays the judge: a solve that misses ``rtol`` on the true residual (the model
is off for this sample, or returns non-finite values) continues with the family's own verified
solver from the best iterate, counted as a retry, so every stored solution meets ``rtol``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

import numpy as np
import scipy.sparse as sp

from solvers.errors import ConfigError
from solvers.neural_krylov import NeuralKrylovSettings, neural_solve
from solvers.preconditioners import build_preconditioner
from solvers.result import SolveResult
from solvers.sequence import default_preconditioner_options

if TYPE_CHECKING:
    from pde_data.elliptic import EllipticFamily

Fields = dict[str, np.ndarray]

#: method name recorded for accelerated solves (registered in :mod:`solvers.methods.neural`)
NEURAL_METHOD = "neural"
#: smoother name: an ILU of the family's shifted operator (the complex shifted Laplacian of Helmholtz)
SHIFTED_ILU = "shifted-ilu"
#: its defaults: shift 0.5 (Erlangga, Vuik, Oosterlee 2004) and a moderate ILU of the shifted matrix
SHIFTED_ILU_OPTIONS = {"shift": 0.5, "drop_tol": 1e-3, "fill_factor": 10.0}


class WarmStart(Protocol):
    """What a trained model offers each sample's solve; fields are full-grid float64 arrays by name.

    Attributes
    ----------
    smoother
        Relaxation of the two-level cycle: a preconditioner name of :mod:`solvers.preconditioners`
        (``"sor"`` = symmetric Gauss–Seidel for SPD families) or :data:`SHIFTED_ILU`.
    smoother_options
        Its options (:func:`build_smoother`); None: the family solver's.
    cycle
        ``multiplicative``, ``additive`` or ``additive-smoothed`` (:data:`solvers.neural_krylov.CYCLES`):
        the cycle the ``correct`` model was trained for.
    """

    smoother: str
    smoother_options: dict | None
    cycle: str

    def predict(self, inputs: Fields) -> Fields | None:
        """The solution fields predicted from the sample's input fields (None: start from zero)."""

    def correct(self, inputs: Fields, residual: Fields) -> Fields:
        """The error fields ``A^-1 r`` predicted from the input fields and the residual ``r`` as fields."""


def build_smoother(family: EllipticFamily, kind: str, A: sp.spmatrix, options: dict | None = None,
                   inputs: Fields | None = None) -> object:
    """The cycle's smoother ``kind`` for ``A`` with ``options``.

    Parameters
    ----------
    family
        The elliptic family of ``A``.
    kind
        A preconditioner name of :mod:`solvers.preconditioners`, or :data:`SHIFTED_ILU`: an ILU of the
        family's shifted operator (:meth:`~pde_data.elliptic.EllipticFamily.shifted_matrix`, e.g. the
        complex shifted Laplacian of Helmholtz) instead of ``A``'s.
    A
        The system's matrix.
    options
        ILU ``drop_tol``, ``fill_factor`` (and ``shift`` for :data:`SHIFTED_ILU`); None: the options the
        family's solver would use (:func:`~solvers.sequence.default_preconditioner_options`: a
        near-complete ILU for indefinite systems), or :data:`SHIFTED_ILU_OPTIONS`.
    inputs
        The sample's input fields (needed by :data:`SHIFTED_ILU` to assemble the shifted operator).

    Raises
    ------
    ConfigError
        :data:`SHIFTED_ILU` without ``inputs`` or for a family without a shifted operator.
    """
    traits = family.traits()
    if kind == SHIFTED_ILU:
        if inputs is None:
            raise ConfigError("the smoother 'shifted-ilu' needs the sample's input fields to assemble its operator")
        options = {**SHIFTED_ILU_OPTIONS, **(options or {})}
        shifted = family.shifted_matrix(inputs, options.pop("shift"))
        return build_preconditioner("ilu", shifted, symmetric=traits.symmetric, **options)
    if options is None:
        options = default_preconditioner_options(kind, traits)
    return build_preconditioner(kind, A, symmetric=traits.symmetric, **options)


def accelerated_solve(family: EllipticFamily, warm_start: WarmStart, index: int, inputs: Fields,
                      A: sp.spmatrix, b: np.ndarray) -> SolveResult:
    """Solve sample ``index``'s system with the warm start; fall back to the family's solver on a miss.

    Parameters
    ----------
    family
        The elliptic family (its ``solution_fields`` / ``solution_vector`` convert vectors and
        fields; its persistent solver is the fallback).
    warm_start
        The model's :class:`WarmStart`.
    index
        Global sample index (for messages).
    inputs
        The sample's input fields.
    A, b
        The assembled system (float64).

    Returns
    -------
    SolveResult
        ``method`` is ``"neural"`` when the accelerated solve met ``rtol``; otherwise the fallback's
        result, with the neural attempt's products and iterations added and ``retries`` + 1.
    """
    rtol = family.config.rtol
    predicted = warm_start.predict(inputs)
    complete = predicted is not None and set(family.solution_variables()) <= set(predicted)
    guess = family.solution_vector(predicted) if complete else None
    if guess is not None and not np.all(np.isfinite(guess)):
        guess = None

    def correction(r: np.ndarray) -> np.ndarray:
        return family.solution_vector(warm_start.correct(inputs, family.solution_fields(r)))

    smoother = build_smoother(family, warm_start.smoother, A, warm_start.smoother_options, inputs)
    result = neural_solve(A, b, smoother, correction, guess=guess, spd=family.traits().spd,
                          settings=NeuralKrylovSettings(rtol=rtol, cycle=warm_start.cycle))
    if result.converged and result.residual <= rtol:
        return dataclasses.replace(result, method=NEURAL_METHOD)
    start = result.x if np.all(np.isfinite(result.x)) else None
    fallback = family.solver.solve(A, b, x0=start, label=f"sample {index}")
    return dataclasses.replace(fallback, iterations=fallback.iterations + result.iterations,
                               matvecs=fallback.matvecs + result.matvecs, retries=fallback.retries + 1,
                               seconds=fallback.seconds + result.seconds)
