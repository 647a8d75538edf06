"""The 3D families where recycling should win: helmholtz3d (damping layer) and convection-diffusion3d.

Manufactured solutions check the assembled operators converge at their design order (2: central
differences, Helmholtz with the layer); the families' own solves are verified and agree with LU.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import sympy

from pde_data import finite_differences as fd
from pde_data.family import get_family
from pde_data.families.helmholtz3d import damping_layer
from pde_data.pipeline import resolve_config
from solvers.errors import ConfigError

X = sympy.symbols("x0:3", real=True)
SEED = 3


def _family(problem: str, overrides: list[str], samples: int = 4):
    config = resolve_config(problem, None, overrides=overrides, samples=samples, seed=SEED)
    return get_family(problem)(config.settings)


def _grid_values(expr: sympy.Expr, resolution: int) -> np.ndarray:
    line = np.linspace(0.0, 1.0, resolution)
    grid = np.meshgrid(line, line, line, indexing="ij")
    values = sympy.lambdify(X, expr, "numpy")(*grid)
    return np.broadcast_to(np.asarray(values, dtype=np.result_type(values, np.float64)), (resolution,) * 3)


def _order(errors: list[float], resolutions: list[int]) -> float:
    assert all(fine < coarse for coarse, fine in zip(errors, errors[1:])), errors
    h = [fd.grid_spacing(k) for k in resolutions[-2:]]
    return float(np.log(errors[-2] / errors[-1]) / np.log(h[0] / h[1]))


def _helmholtz3d_error(resolution: int) -> float:
    """Max error of the family's assembled system against a plane wave times an envelope.

    The right-hand side carries the source f = -Laplace u - k^2 (1 + i sigma) u, with sigma the
    family's damping profile evaluated at the nodes (where it enters the scheme pointwise), and
    the impedance data g = du/dn - i k u on the faces."""
    family = _family("helmholtz3d", [f"resolution={resolution}", "wavenumber=5", "contrast=0", "layer_width=0.3",
                                     "layer_strength=3"])
    k = 6 + 2 * X[0] * X[1]
    u = sympy.exp(sympy.I * (5 * X[0] + 3 * X[1] - 2 * X[2])) * (1 + X[0] * X[2] / 2)
    laplace = sum(sympy.diff(u, X[j], 2) for j in range(3))
    sigma = damping_layer(resolution, 3, 0.3, 3.0)
    k2 = _grid_values(k**2, resolution)
    f = -_grid_values(laplace, resolution) - k2 * (1 + 1j * sigma) * _grid_values(u, resolution)
    g = np.zeros((resolution,) * 3, dtype=np.complex128)
    for j in range(3):
        for side, sign in ((0, -1), (-1, 1)):
            data = _grid_values(sign * sympy.diff(u, X[j]) - sympy.I * k * u, resolution)
            face = tuple(side if ax == j else slice(None) for ax in range(3))
            g[face] += data[face]
    A, _ = family.assemble({"k": np.sqrt(k2), "f": np.zeros((resolution,) * 3)})
    numeric = spla.spsolve(A.tocsc(), fd.impedance_rhs(f, g, family.h))
    return float(np.abs(numeric - _grid_values(u, resolution).ravel()).max())


@pytest.mark.slow
def test_helmholtz3d_with_damping_layer_is_second_order() -> None:
    """The family's operator (impedance boundary, damping layer of depth 0.3, sigma up to 3 on a face
    and more at edges) converges at order 2 on a manufactured wave: observed slope within 0.15 of 2
    (the finite-difference module's Helmholtz tolerance) between 13^3 and 17^3 nodes."""
    resolutions = [9, 13, 17]
    errors = [_helmholtz3d_error(k) for k in resolutions]
    assert abs(_order(errors, resolutions) - 2.0) < 0.15, errors


def _convection3d_error(resolution: int) -> float:
    """Max error of the family's assembled system for u = exp(x - y/2) sin(pi x) sin(pi y) sin(pi z)
    with the divergence-free velocity v = curl(psi), psi = (sin(pi y z), cos(pi x z), x y^2)."""
    family = _family("convection-diffusion3d", [f"resolution={resolution}", "diffusivity=0.5"])
    u = sympy.exp(X[0] - X[1] / 2) * sympy.sin(sympy.pi * X[0]) * sympy.sin(sympy.pi * X[1]) * sympy.sin(sympy.pi * X[2])
    psi = [sympy.sin(sympy.pi * X[1] * X[2]), sympy.cos(sympy.pi * X[0] * X[2]), X[0] * X[1] ** 2]
    v = [sympy.diff(psi[2], X[1]) - sympy.diff(psi[1], X[2]), sympy.diff(psi[0], X[2]) - sympy.diff(psi[2], X[0]),
         sympy.diff(psi[1], X[0]) - sympy.diff(psi[0], X[1])]
    f = sum(-sympy.Rational(1, 2) * sympy.diff(u, X[j], 2) + v[j] * sympy.diff(u, X[j]) for j in range(3))
    inputs = {name: np.ascontiguousarray(_grid_values(c, resolution)) for name, c in zip(("vx", "vy", "vz"), v)}
    A, _ = family.assemble(inputs)
    numeric = spla.spsolve(A.tocsc(), fd.interior(_grid_values(f, resolution)).ravel())
    return float(np.abs(numeric - fd.interior(_grid_values(u, resolution)).ravel()).max())


def test_convection_diffusion3d_is_second_order() -> None:
    """The family's 7-point operator (central convection) converges at order 2 on a manufactured
    solution with a divergence-free velocity: slope within 0.15 of 2 between 13^3 and 17^3 nodes."""
    resolutions = [9, 13, 17]
    errors = [_convection3d_error(k) for k in resolutions]
    assert abs(_order(errors, resolutions) - 2.0) < 0.15, errors


def test_convection_diffusion3d_velocity_is_divergence_free_with_the_set_speed() -> None:
    """v = curl(psi) by central differences has zero discrete divergence (by the same differences) to
    rounding, relative to |v|/h, and its root-mean-square speed is exactly the configured one."""
    family = _family("convection-diffusion3d", ["resolution=12", "velocity=2.5"])
    inputs = family.sample_inputs(1, SEED)
    v = np.stack([inputs["vx"], inputs["vy"], inputs["vz"]])
    divergence = sum(np.gradient(v[j], family.h, axis=j) for j in range(3))
    assert np.abs(divergence).max() <= 1e-12 * np.abs(v).max() / family.h
    assert np.sqrt(np.mean(np.sum(v**2, axis=0))) == pytest.approx(2.5, rel=1e-12)


def test_damping_layer_profile() -> None:
    """sigma is 0 deeper than the layer, the strength on a face's interior, twice that on an edge and
    three times at a corner (the faces' profiles add)."""
    sigma = damping_layer(21, 3, 0.2, 1.5)
    assert sigma[10, 10, 10] == 0.0 and sigma[5:16, 5:16, 5:16].max() == 0.0
    assert sigma[0, 10, 10] == pytest.approx(1.5)
    assert sigma[0, 0, 10] == pytest.approx(3.0)
    assert sigma[0, 0, 0] == pytest.approx(4.5)


@pytest.mark.parametrize("problem, overrides", [
    ("helmholtz3d", ["resolution=10", "wavenumber=5"]),
    ("convection-diffusion3d", ["resolution=9"]),
])
def test_3d_family_solutions_are_verified_and_agree_with_splu(problem: str, overrides: list[str]) -> None:
    """An skr run stores solutions whose recomputed true residual is the stored one and <= rtol, and
    which match a sparse LU solution to 1e-5 relative (rtol 1e-8 times condition numbers < 1e3)."""
    family = _family(problem, overrides + ["solver=skr"])
    indices = [int(i) for i in family.solve_order(4, SEED)]
    out = family.generate(indices, SEED)
    assert np.all(out["residual"] <= family.config.rtol)
    for row, index in enumerate(indices):
        inputs = family.sample_inputs(index, SEED)
        A, b = family.assemble(inputs)
        x = family.solution_vector({name: out[name][row] for name in family.solution_variables()})
        np.testing.assert_allclose(out["residual"][row], np.linalg.norm(b - A @ x) / np.linalg.norm(b), rtol=1e-3)
        reference = spla.splu(A.tocsc()).solve(b)
        assert np.linalg.norm(x - reference) < 1e-5 * np.linalg.norm(reference)


def test_helmholtz3d_refuses_a_dirichlet_boundary_and_a_bad_layer() -> None:
    with pytest.raises(ConfigError, match="impedance"):
        resolve_config("helmholtz3d", None, overrides=["boundary=dirichlet"])
    with pytest.raises(ConfigError, match="layer_width"):
        resolve_config("helmholtz3d", None, overrides=["layer_width=0.6"])


def test_auto_is_within_10_percent_of_the_fastest_at_every_measured_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """``solver: auto``, resolved by the current rule (the families' crossovers), runs a configuration whose
    whole-dataset time was within 10% of the fastest competitor's at every size ``benchmarks/skr_crossover.py``
    measured (the runs merged into ``results/skr_crossover.json``, and the quick run)."""
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    monkeypatch.syspath_prepend(str(results.parent))
    crossover = importlib.import_module("skr_crossover")
    merged = json.loads((results / "skr_crossover.json").read_text(encoding="utf-8"))
    runs = [results / name for name in merged["settings"]] + [results / "skr_crossover_quick.json"]
    cases = 0
    for run in runs:
        rows, _ = crossover.rows_under_current_rule([run])
        for case, entry in crossover.summarise(rows).items():
            cases += 1
            assert entry["auto_over_best"] is not None and entry["auto_over_best"] <= 1.1, (run.name, case, entry)
    assert cases >= 6


def test_crossover_caps_stop_a_method_before_the_size_it_would_overrun(monkeypatch: pytest.MonkeyPatch) -> None:
    """``skr_crossover.update_caps`` extrapolates the growth between the last two sizes to the next one:
    time 1 s -> 4 s from n = 1,000 to 2,000 is ``~n^2``, so 16 s at 4,000; factors 10 -> 30 MB is
    ``~n^{log2 3}``, so 90 MB there. A cap below a prediction stops the method, one above lets it run."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    crossover = importlib.import_module("skr_crossover")

    def caps(cap_seconds: float, cap_mb: float) -> dict[str, str]:
        skip: dict[str, str] = {}
        growth: dict[str, tuple[int, float, float]] = {}
        for n, seconds, mb in ((1000, 1.0, 10.0), (2000, 4.0, 30.0)):
            crossover.update_caps([{"method": "splu", "n_unknowns": n, "per_dataset": seconds, "factor_mb": mb}],
                                  skip, cap_seconds, cap_mb, growth, 2 * n)
        return skip

    assert caps(17.0, 91.0) == {}
    assert "predicted 16 s at n = 4000" in caps(15.0, 91.0)["splu"]
    assert "predicted 0.1 GB" in caps(17.0, 89.0)["splu"]
    assert "time cap: 4 s per system" in caps(3.0, 1000.0)["splu"]
