"""The linear-solve problem families: verified solutions, sorting, reproducibility, errors naming the sample."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pde_data.elliptic import SampleStats, condition_lower_bound
from solvers.registry import method_codes
from pde_data.family import get_family
from pde_data.finite_differences import dirichlet_laplacian_eigenvalues, grid_spacing, helmholtz_matrix
from pde_data.pipeline import generate_dataset, resolve_config
from solvers.errors import ConfigError, SolverError

SEED = 7

#: (problem, preset, overrides) of every family at a test size
CASES = [
    ("darcy", "fno", ["resolution=17"]),
    ("darcy", "lognormal", ["resolution=17"]),
    ("poisson", "default", ["resolution=17"]),
    ("helmholtz", "absorbing", ["resolution=25", "wavenumber=12"]),
    ("helmholtz", "dirichlet", ["resolution=25", "wavenumber=12"]),
    ("convection-diffusion", "default", ["resolution=17", "diffusivity=0.05"]),
    ("heat", "default", ["resolution=17", "steps=3"]),
    ("darcy3d", "fno", ["resolution=9"]),
    ("poisson3d", "default", ["resolution=9"]),
]
IDS = [f"{problem}-{preset}" for problem, preset, _ in CASES]


def _family(problem: str, preset: str, overrides: list[str], samples: int = 5):
    config = resolve_config(problem, preset, overrides=overrides, samples=samples, seed=SEED)
    return get_family(problem)(config.settings)


def _lu_states(family, index: int) -> np.ndarray:
    """Unknowns of sample ``index`` from a sparse LU per system: ``(n,)``, or ``(steps + 1, n)`` for heat."""
    inputs = family.sample_inputs(index, SEED)
    if family.name == "heat":
        lhs, rhs = family.step_matrices(inputs["a"])
        lu = spla.splu(lhs.tocsc())
        states = [family.solution_vector({"u": inputs["u0"][None]})[0]]
        for _ in range(family.config.steps):
            states.append(lu.solve(rhs @ states[-1] + family.config.dt * family.config.forcing))
        return np.asarray(states)
    A, b = family.assemble(inputs)
    return spla.splu(A.tocsc()).solve(b)


@pytest.mark.parametrize("problem, preset, overrides", CASES, ids=IDS)
def test_family_solutions_are_verified_and_agree_with_splu(problem: str, preset: str, overrides: list[str]) -> None:
    """An iterative (skr) run stores, for every sample, the exact inputs of ``(seed, i)``, a solution whose
    true residual — recomputed here from the stored fields — is the stored ``residual`` and <= rtol, and
    which matches a sparse-LU solution to 1e-5 relative (rtol 1e-8 times condition numbers < 1e3 here).
    """
    family = _family(problem, preset, overrides + ["solver=skr"])
    indices = [int(i) for i in family.solve_order(5, SEED)]
    out = family.generate(indices, SEED)
    assert np.all(out["solver"] == 0)  # the code of skr
    assert np.all(out["iterations"] > 0) and np.all(out["matvecs"] >= out["iterations"])
    assert np.all(out["residual"] <= family.config.rtol)
    for row, index in enumerate(indices):
        inputs = family.sample_inputs(index, SEED)
        for name in family.inputs:
            np.testing.assert_array_equal(out[name][row], inputs[name])
        stored = {name: out[name][row] for name in family.solution_variables()}
        x = family.solution_vector(stored)
        if problem == "heat":
            lhs, rhs = family.step_matrices(inputs["a"])
            b = [rhs @ x[n - 1] + family.config.dt * family.config.forcing for n in range(1, len(x))]
            residuals = [np.linalg.norm(b[n - 1] - lhs @ x[n]) / np.linalg.norm(b[n - 1]) for n in range(1, len(x))]
            np.testing.assert_allclose(out["residual"][row], max(residuals), rtol=1e-3)
        else:
            A, b = family.assemble(inputs)
            np.testing.assert_allclose(out["residual"][row], np.linalg.norm(b - A @ x) / np.linalg.norm(b), rtol=1e-3)
        reference = _lu_states(family, index)
        assert np.linalg.norm(x - reference) < 1e-5 * np.linalg.norm(reference)


@pytest.mark.parametrize("problem, preset, overrides", CASES, ids=IDS)
def test_solve_order_is_a_permutation_that_shortens_the_chain(problem: str, preset: str, overrides: list[str]) -> None:
    """solve_order is a permutation of the samples; the sorted chain's total feature distance is shorter
    than the index order's (the point of sorting); sort=false and solver=direct give the index order."""
    family = _family(problem, preset, overrides + ["solver=skr"], samples=12)
    order = family.solve_order(12, SEED)
    assert sorted(order.tolist()) == list(range(12))
    features = family._feature_matrix(range(12), SEED)

    def length(perm: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(features[perm], axis=0), axis=1).sum())

    assert length(order) < length(np.arange(12))
    for setting in ("sort=false", "solver=direct"):  # a direct solve does not depend on the order
        unsorted = _family(problem, preset, overrides + [setting], samples=12)
        np.testing.assert_array_equal(unsorted.solve_order(12, SEED), np.arange(12))


def _generate(tmp_path, name: str, problem: str, preset: str, overrides: list[str], chunk: int = 4) -> dict:
    config = resolve_config(problem, preset, overrides=overrides, samples=6, seed=SEED)
    path = tmp_path / f"{name}.h5"
    generate_dataset(config, path, chunk_size=chunk, progress=False)
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in f if key not in ("x", "y", "z", "t", "sample")}


SORT_CASES = [CASES[0], CASES[3], CASES[6]]


@pytest.mark.parametrize("problem, preset, overrides", SORT_CASES, ids=[f"{p}-{q}" for p, q, _ in SORT_CASES])
def test_sorted_and_unsorted_files(tmp_path, problem: str, preset: str, overrides: list[str]) -> None:
    """Sorting changes only the solve order. Files from sorted and unsorted skr runs hold bit-identical
    inputs; their solutions differ only at the verified-tolerance level (< 1e-6 of the largest value,
    rtol 1e-8 times condition numbers < 1e2 here), the exception documented in pde_data.elliptic."""
    files = [_generate(tmp_path, f"sort-{sort}", problem, preset, overrides + ["solver=skr", f"sort={sort}"])
             for sort in ("true", "false")]
    family = _family(problem, preset, overrides)
    for name in family.inputs:
        np.testing.assert_array_equal(files[0][name], files[1][name])
    for name in family.solution_variables():
        scale = np.abs(files[1][name]).max()
        np.testing.assert_allclose(files[0][name], files[1][name], rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("problem, preset, overrides", SORT_CASES, ids=[f"{p}-{q}" for p, q, _ in SORT_CASES])
def test_direct_solutions_do_not_depend_on_the_order(problem: str, preset: str, overrides: list[str]) -> None:
    """With solver: direct every stored value except the measured solve_seconds is bit-identical
    whatever the solve order (here: reversed vs. index order)."""
    forward = _family(problem, preset, overrides + ["solver=direct"]).generate([0, 1, 2, 3, 4], SEED)
    backward = _family(problem, preset, overrides + ["solver=direct"]).generate([4, 3, 2, 1, 0], SEED)
    for name, values in forward.items():
        if name != "solve_seconds":
            np.testing.assert_array_equal(values, backward[name][::-1], err_msg=name)


def test_chunking_never_changes_a_stored_value(tmp_path) -> None:
    """The family's solver persists across generate() calls, so chunks of 1, 4 or 6 samples see the
    same sequence of solves: an iterative run gives bit-identical solutions and statistics."""
    overrides = ["resolution=17", "solver=skr"]
    files = [_generate(tmp_path, f"chunk{c}", "poisson", "default", overrides, chunk=c) for c in (1, 4, 6)]
    for other in files[1:]:
        for name in ("a", "f", "u", "residual", "iterations", "matvecs"):
            np.testing.assert_array_equal(files[0][name], other[name])


def test_statistics_variables_carry_cf_flags(tmp_path) -> None:
    """solver(sample) is an integer code whose CF flag_values/flag_meanings record the code -> name table
    of the registry; a direct run stores the direct code (5), zero iterations and zero retries."""
    config = resolve_config("darcy", "fno", overrides=["resolution=17", "solver=direct"], samples=3, seed=SEED)
    path = tmp_path / "d.h5"
    generate_dataset(config, path, progress=False)
    with h5py.File(path, "r") as f:
        meanings = f["solver"].attrs["flag_meanings"]
        meanings = meanings.decode() if isinstance(meanings, bytes) else meanings
        table = dict(zip(f["solver"].attrs["flag_values"].tolist(), meanings.split()))
        assert table == method_codes()
        assert table[5] == "direct" and np.all(f["solver"][()] == 5)
        assert np.all(f["iterations"][()] == 0) and np.all(f["retries"][()] == 0)
        assert np.all(f["residual"][()] < 1e-12)


def test_darcy_fno_coefficient_takes_exactly_the_two_values() -> None:
    """Preset fno thresholds the GRF to exactly {4, 12} (``low`` is a setting); since the field is
    symmetric about 0, the fraction at 12 over 40 samples is 1/2 to within 0.05 (its sample std is ~0.05/sqrt(40))."""
    family = _family("darcy", "fno", ["resolution=33"])
    coefficients = np.asarray([family.sample_inputs(i, SEED)["a"] for i in range(40)])
    assert set(np.unique(coefficients)) == {4.0, 12.0}
    assert abs(np.mean(coefficients == 12.0) - 0.5) < 0.05
    low3 = _family("darcy", "fno", ["resolution=33", "low=3"])
    assert set(np.unique(low3.sample_inputs(0, SEED)["a"])) == {3.0, 12.0}


def test_nonfinite_coefficient_names_the_sample() -> None:
    """A log-normal coefficient that overflows float64 is refused before solving, naming the sample."""
    family = _family("darcy", "lognormal", ["resolution=17", "log_scale=1e4"])
    with pytest.raises(SolverError, match=r"sample 3: input a holds \d+ non-finite values"):
        family.generate([3], SEED)


def test_resonant_dirichlet_helmholtz_names_the_sample() -> None:
    """A constant wavenumber with k^2 on a discrete Dirichlet eigenvalue is a singular system: refused
    before solving, with the sample's index; a wavenumber between eigenvalues solves normally."""
    resolution = 17
    eigenvalues = dirichlet_laplacian_eigenvalues(resolution, 2)
    resonant = float(np.sqrt(eigenvalues[3]))
    family = _family("helmholtz", "dirichlet", [f"resolution={resolution}", "contrast=0", f"wavenumber={resonant}"])
    with pytest.raises(SolverError, match="sample 5: .* Dirichlet resonance"):
        family.generate([5], SEED)
    below = eigenvalues[eigenvalues < eigenvalues[3] * (1 - 1e-9)].max()
    between = float(np.sqrt((below + eigenvalues[3]) / 2))
    fine = _family("helmholtz", "dirichlet", [f"resolution={resolution}", "contrast=0", f"wavenumber={between}"])
    assert fine.generate([5], SEED)["residual"][0] <= fine.config.rtol


def test_singular_variable_wavenumber_names_the_sample(monkeypatch) -> None:
    """A variable wavenumber shifted onto an eigenvalue of the Helmholtz matrix makes it singular; the
    solve (or its condition check) fails with an error naming the sample, whatever the solver."""
    resolution = 13
    family = _family("helmholtz", "dirichlet", [f"resolution={resolution}", "wavenumber=10", "solver=direct"])
    inputs = family.sample_inputs(2, SEED)
    A = helmholtz_matrix(inputs["k"] ** 2, grid_spacing(resolution), "dirichlet").toarray()
    shift = np.linalg.eigvalsh(A)[np.argmin(np.abs(np.linalg.eigvalsh(A)))]
    singular = {"k": np.sqrt(inputs["k"] ** 2 + shift), "f": inputs["f"]}
    monkeypatch.setattr(family, "sample_inputs", lambda index, seed: singular)
    with pytest.raises(SolverError, match="sample 2"):
        family.generate([2], SEED)


def test_condition_lower_bound_is_a_lower_bound() -> None:
    """max column norm * ||x|| / ||b|| never exceeds cond_2(A) (checked on random right-hand sides)."""
    family = _family("helmholtz", "dirichlet", ["resolution=9", "wavenumber=6"])
    A, _ = family.assemble(family.sample_inputs(0, SEED))
    cond = np.linalg.cond(A.toarray())
    rng = np.random.default_rng(0)
    for _ in range(5):
        b = rng.standard_normal(A.shape[0])
        bound = condition_lower_bound(A, b, spla.spsolve(A.tocsc(), b))
        assert 1.0 <= bound <= cond * (1 + 1e-10)


@pytest.mark.parametrize("scheme, order", [("euler", 1.0), ("crank-nicolson", 2.0)])
def test_heat_time_stepping_order(scheme: str, order: float) -> None:
    """With a = 1 and u0 = sin(pi x) sin(pi y), an eigenvector of the discrete Laplacian (eigenvalue lam),
    the exact semi-discrete solution is exp(-lam t) u0: the implicit steps converge at order 1 (Euler)
    and 2 (Crank-Nicolson) in dt, observed within 0.1 between dt = T/8 and T/16."""
    errors = []
    for steps in (4, 8, 16):
        family = _family("heat", "default", ["resolution=9", f"scheme={scheme}", f"steps={steps}",
                                             f"dt={0.05 / steps}", "solver=direct", "rtol=1e-12"])
        line = np.sin(np.pi * np.linspace(0, 1, 9))
        u0 = np.multiply.outer(line, line)
        lam = dirichlet_laplacian_eigenvalues(9, 2)[0]
        states = family.trajectory(0, np.ones((9, 9)), u0, SampleStats())
        exact = np.exp(-lam * 0.05) * family.solution_vector({"u": u0[None]})[0]
        errors.append(np.abs(states[-1] - exact).max())
    observed = np.log2(errors[1] / errors[2])
    assert abs(observed - order) < 0.1, errors


def test_heat_systems_match_the_generated_trajectory() -> None:
    """family.systems() (for benchmarks) yields exactly the step systems the generator solves: the stored
    trajectory satisfies each yielded system to the verified tolerance."""
    family = _family("heat", "default", ["resolution=17", "steps=4", "solver=skr"])
    out = family.generate([1], SEED)
    states = family.solution_vector({"u": out["u"][0]})
    systems = list(family.systems([1], SEED))
    assert [s.step for s in systems] == [1, 2, 3, 4]
    for s in systems:
        assert np.linalg.norm(s.b - s.A @ states[s.step]) <= 1.01 * family.config.rtol * np.linalg.norm(s.b)


@pytest.mark.parametrize(
    "problem, setting, message",
    [
        ("darcy", "resolution=2", r"resolution must be an integer >= 5 \(got 2\)"),
        ("darcy", "solver=fast", "solver must be one of"),
        ("darcy", "coefficient=uniform", "coefficient must be 'threshold' or 'lognormal'"),
        ("helmholtz", "wavenumber=200", "points per wavelength"),
        ("darcy", "recycle=40", r"recycle must be an integer in \[0, restart\)"),
    ],
)
def test_settings_errors_name_the_setting(problem: str, setting: str, message: str) -> None:
    """Invalid settings raise ConfigError naming the setting, what is expected and what was given."""
    with pytest.raises(ConfigError, match=message):
        resolve_config(problem, None, overrides=[setting])


def test_helmholtz_shifted_matrix_is_the_damped_operator() -> None:
    """The complex shifted Laplacian differs from the impedance matrix only by -i shift k^2 on the
    diagonal (rows scaled by the boundary weights w like the rest of the matrix): for any complex z,
    (M - A) z = -i shift w k^2 z, compared in real form. Both sides are a few float64 products of
    O(k^2) numbers: a relative 1e-12 is far above their roundoff (~1e-15)."""
    from pde_data.finite_differences import boundary_weights, complexify_vector, realify_vector

    config = resolve_config("helmholtz", "fno", overrides=["resolution=17", "wavenumber=8"], samples=1, seed=0)
    family = get_family("helmholtz")(config.settings)
    inputs = family.sample_inputs(0, 0)
    A, _ = family.assemble(inputs)
    M = family.shifted_matrix(inputs, 0.5)
    rng = np.random.default_rng(0)
    z = rng.standard_normal(A.shape[0] // 2) + 1j * rng.standard_normal(A.shape[0] // 2)
    k2w = (inputs["k"] ** 2 * boundary_weights(17, 2)).ravel()
    expected = -0.5j * k2w * z
    got = complexify_vector((M - A) @ realify_vector(z))
    assert np.linalg.norm(got - expected) <= 1e-12 * np.linalg.norm(expected)
    assert family.cycle_smoother() == "shifted-ilu"


@pytest.mark.parametrize("problem, preset, shift, message", [
    ("darcy", "fno", 0.5, "no shifted operator"),
    ("helmholtz", "dirichlet", 0.5, "boundary: impedance"),
    ("helmholtz", "fno", 0.0, "shift must be a positive number"),
])
def test_shifted_matrix_refusals(problem: str, preset: str, shift: float, message: str) -> None:
    config = resolve_config(problem, preset, overrides=["resolution=17"] + (["wavenumber=8"] if problem == "helmholtz" else []),
                            samples=1, seed=0)
    family = get_family(problem)(config.settings)
    with pytest.raises(ConfigError, match=message):
        family.shifted_matrix(family.sample_inputs(0, 0), shift)
