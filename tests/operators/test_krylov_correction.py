"""The correction network's training losses (operators.krylov.correction) against NumPy/SciPy arithmetic.

The ``energy`` and ``residual`` losses run the families' matrices inside torch (a shared sparsity
pattern, gather and scatter-add); here they are compared with the same quantities computed by
SciPy in float64 on random fields. Tolerances: the torch side is float32 (unit roundoff 6e-8)
with sums over ~10^3 terms of one sign pattern, so relative differences stay below ~1e-5;
1e-4 is the bound used.
"""

import numpy as np
import pytest
import torch

from operators.krylov.correction import JACOBI_DAMPING, CorrectionSettings, _loss_function, _unknown_positions
from pde_data.family import get_family
from pde_data.pipeline import resolve_config
from pde_data.warm_start import build_smoother
from solvers import ConfigError
from solvers.preconditioners import build_preconditioner


def family_at(problem, resolution):
    return get_family(problem)(resolve_config(problem, overrides=[f"resolution={resolution}"], samples=1).settings)


def pairs(family, count, rng):
    """Matrices of ``count`` coefficient draws and random (predicted, target) fields ``[count, C, *grid]``."""
    matrices = [family.assemble(family.sample_inputs(i, 0))[0] for i in range(count)]
    shape = (count, len(family.solution_variables())) + (family.config.resolution,) * family.dim
    return matrices, rng.standard_normal(shape), rng.standard_normal(shape)


@pytest.mark.parametrize("problem, resolution, loss", [("darcy", 13, "energy"), ("darcy", 13, "residual"),
                                                       ("helmholtz", 25, "residual")])
def test_operator_losses_match_scipy(problem, resolution, loss):
    family = family_at(problem, resolution)
    matrices, predicted, target = pairs(family, 3, np.random.default_rng(0))
    settings = CorrectionSettings(loss=loss, post_sweeps=2)
    measure = _loss_function(family, settings, matrices)
    batch = torch.tensor([2, 0])
    got = measure(torch.tensor(predicted[batch], dtype=torch.float32),
                  torch.tensor(target[batch], dtype=torch.float32), batch).item()
    index = _unknown_positions(family)
    expected = []
    for j in batch.tolist():
        A = matrices[j]
        d, e = (predicted[j] - target[j]).reshape(-1)[index], target[j].reshape(-1)[index]
        if loss == "residual":
            expected.append(np.linalg.norm(A @ d) / np.linalg.norm(A @ e))
            continue
        for _ in range(2):
            d = d - JACOBI_DAMPING * (A @ d) / A.diagonal()
        expected.append(np.sqrt((d @ (A @ d)) / (e @ (A @ e))))
    assert got == pytest.approx(np.mean(expected), rel=1e-4)
    exact = measure(torch.tensor(target[batch], dtype=torch.float32),
                    torch.tensor(target[batch], dtype=torch.float32), batch).item()
    assert exact == 0.0  # no remaining error, no loss


def test_unknown_positions_select_the_solution_vector():
    for family in (family_at("darcy", 9), family_at("helmholtz", 25)):
        names = list(family.solution_variables())
        fields = np.random.default_rng(1).standard_normal((len(names),) + (family.config.resolution,) * family.dim)
        vector = family.solution_vector({name: fields[i] for i, name in enumerate(names)})
        assert np.array_equal(vector, fields.reshape(-1)[_unknown_positions(family)])


def test_bad_loss_settings_are_refused():
    with pytest.raises(ConfigError, match="loss must be one of"):
        CorrectionSettings(loss="l1")
    with pytest.raises(ConfigError, match="post_sweeps"):
        CorrectionSettings(post_sweeps=-1)
    family = family_at("helmholtz", 25)
    from operators.krylov.correction import train_correction

    with pytest.raises(ConfigError, match="symmetric positive definite"):
        train_correction(family, "ilu", CorrectionSettings(loss="energy", pairs=1, epochs=1))


def test_smoother_options_reach_the_preconditioner():
    family = family_at("helmholtz", 25)
    A, b = family.assemble(family.sample_inputs(0, 0))
    loose = {"drop_tol": 3e-2, "fill_factor": 10.0}
    built = build_smoother(family, "ilu", A, loose) @ b
    assert np.array_equal(built, build_preconditioner("ilu", A, **loose) @ b)
    default = build_smoother(family, "ilu", A) @ b
    # the near-complete default ILU is nearly A^-1; the loose one is not (relative difference >> roundoff)
    assert np.linalg.norm(built - default) > 1e-3 * np.linalg.norm(default)


@pytest.mark.parametrize("problem, resolution, smoother", [("darcy", 13, "sor"), ("helmholtz", 25, "ilu")])
def test_additive_target_is_what_the_smoother_misses(problem, resolution, smoother):
    """Same draw for both cycles: the multiplicative target e has A e = r; the additive one is
    e - S r, so target + S r = A^-1 r. Float64 check: A (target + S r) = r up to roundoff of the
    products, ~ n_nz per row (<= 9) * 1e-16 * ||A|| ||e|| / ||r|| (kappa(A) <~ 1e4 here): 1e-9 leaves a margin of 100+."""
    from operators.krylov.correction import training_pair

    family = family_at(problem, resolution)
    options = {"drop_tol": 3e-2, "fill_factor": 10.0} if smoother == "ilu" else None
    pair = {cycle: training_pair(family, smoother, options, CorrectionSettings(cycle=cycle), 0,
                                 np.random.default_rng(3)) for cycle in ("multiplicative", "additive")}
    _, A, r, e = pair["multiplicative"]
    _, A2, r2, target = pair["additive"]
    assert np.array_equal(r, r2)
    S = build_smoother(family, smoother, A, options)
    assert np.linalg.norm(target - (e - S @ r)) <= 1e-12 * np.linalg.norm(e)
    assert np.linalg.norm(A @ (target + S @ r) - r) <= 1e-9 * np.linalg.norm(r)
    assert np.linalg.norm(target) > 1e-3 * np.linalg.norm(e)  # a real remainder, not zero
    with pytest.raises(ConfigError, match="cycle must be one of"):
        CorrectionSettings(cycle="both")


@pytest.mark.parametrize("problem, resolution, smoother", [("darcy", 13, "sor"), ("helmholtz", 25, "shifted-ilu")])
@pytest.mark.parametrize("index", [0, 1])  # even: a raw random residual; odd: a relaxed random error
def test_smoothed_pairs_give_the_smoothed_residual_and_what_it_misses(problem, resolution, smoother, index):
    """additive-smoothed: the network input is y = S r and the target e - y with A e = r, so
    S A (target + y) = y. Float64: target + y recovers e up to roundoff, e solves A e = r to a backward
    error ~ eps kappa(A) (sparse LU; kappa <~ 1e4 here), and S A amplifies that by at most kappa(S A)
    (<~ 1e2 with these smoothers): ~1e-10 of ||y|| at worst; 1e-8 is the bound."""
    from operators.krylov.correction import training_pair

    family = family_at(problem, resolution)
    inputs, A, y, target = training_pair(family, smoother, None, CorrectionSettings(cycle="additive-smoothed"), index,
                                         np.random.default_rng(4))
    S = build_smoother(family, smoother, A, None, inputs)
    assert np.linalg.norm(S @ (A @ (target + y)) - y) <= 1e-8 * np.linalg.norm(y)
    assert np.linalg.norm(target) > 1e-3 * np.linalg.norm(y)  # the smoother leaves a real remainder


def test_shifted_ilu_smoother_is_an_ilu_of_the_shifted_laplacian():
    """build_smoother('shifted-ilu') applies the ILU of family.shifted_matrix (default shift 0.5), not
    of A; it needs the sample's inputs and a family that has a shifted operator."""
    from pde_data.warm_start import SHIFTED_ILU_OPTIONS

    family = family_at("helmholtz", 25)
    inputs = family.sample_inputs(0, 0)
    A, b = family.assemble(inputs)
    options = {key: value for key, value in SHIFTED_ILU_OPTIONS.items() if key != "shift"}
    expected = build_preconditioner("ilu", family.shifted_matrix(inputs, SHIFTED_ILU_OPTIONS["shift"]),
                                    symmetric=False, **options) @ b
    assert np.array_equal(build_smoother(family, "shifted-ilu", A, None, inputs) @ b, expected)
    with pytest.raises(ConfigError, match="input fields"):
        build_smoother(family, "shifted-ilu", A)
    darcy = family_at("darcy", 13)
    darcy_inputs = darcy.sample_inputs(0, 0)
    with pytest.raises(ConfigError, match="no shifted operator"):
        build_smoother(darcy, "shifted-ilu", darcy.assemble(darcy_inputs)[0], None, darcy_inputs)
