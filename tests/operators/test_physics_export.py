"""pdeop export of physics-informed runs: PINN, causal PINN and LPINN programs equal the Python model
at point counts other than the traced one, carry their protocol, and bad input leaves no file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import operators
from operators.cli import main
from operators.physics.evaluation import load_physics_run
from operators.physics.export import particles_of
from operators.physics.lagrangian import lagrangian_state, to_eulerian
from operators.physics.pde_specs import describe_pde
from operators.training.export import PROTOCOL_JSON, PROTOCOL_TEXT
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

#: tiny runs: 4 Adam steps are enough, the test compares programs with the model, not with the PDE
RUNS = {
    "pinn": {"method": "pinn", "training": {"windows": 2}},
    "causal_pinn": {"method": "causal_pinn", "training": {"initial_condition": "hard"}},
    "lpinn": {"method": "lpinn", "training": {"boundary_condition": "hard"}},
    "lpinn-monotone": {"method": "lpinn", "training": {"boundary_condition": "hard"},
                       "model": {"characteristics": "monotone"}},
}
LOADERS = {"torchscript": lambda path, files: torch.jit.load(str(path), _extra_files=files),
           "torch-export": lambda path, files: torch.export.load(str(path), extra_files=files).module()}
#: torch.export traces take seconds each: one PINN and one LPINN form in the default run
CASES = [(name, "torchscript") for name in RUNS] + [("pinn", "torch-export"), ("lpinn-monotone", "torch-export")] + [
    pytest.param(name, "torch-export", marks=pytest.mark.slow) for name in ("causal_pinn", "lpinn")]


def _config(name: str) -> dict:
    extra = RUNS[name]
    return {"method": extra["method"], "pde": {"name": "convection", "c": 2.0},
            "model": {"width": 12, "depth": 2, **extra.get("model", {})},
            "training": {"steps": 4, "n_residual": 64, "n_initial": 16, "n_boundary": 8, "log_every": 2,
                         "eval_every": 4, "threads": 1, "boundary_condition": "soft", **extra["training"]},
            "causal": {"n_slices": 4}, "evaluation": {"n_t": 11, "n_space": 16}, "seed": 3}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from operators.physics.training import run

    root = tmp_path_factory.mktemp("physics_runs")
    for name in RUNS:
        run(_config(name), root / name, quiet=True)
    return root


def _mlp_error_bound(network) -> float:
    """Largest difference between two float32 evaluations of a tanh-MLP PINN that sum in different orders.

    A dot product of length m computed in any order is within gamma_m = m u / (1 - m u) of the
    exact value relative to sum |w_i h_i| (Higham, Accuracy and Stability, §3.1), so two orders
    differ by at most twice that: layer l adds 2 gamma_(m+1) (||W||_inf a + ||b||_inf), with
    ``a`` a bound on its inputs (1: scaled coordinates, Fourier features and tanh all lie in
    [-1, 1]); an earlier difference passes through the 1-Lipschitz tanh times ||W||_inf. The inputs
    and each tanh may round differently too (4 u, 2 u). Maximum over the time windows.
    """
    u = float(torch.finfo(torch.float32).eps) / 2
    worst = 0.0
    for net in network.nets:
        linears = [m for m in net.net if isinstance(m, torch.nn.Linear)]
        delta = 4 * u
        for index, layer in enumerate(linears):
            m = layer.weight.shape[1] + 1
            gamma = m * u / (1 - m * u)
            row_sum = float(layer.weight.detach().abs().sum(dim=1).max())
            delta = row_sum * delta + 2 * gamma * (row_sum + float(layer.bias.detach().abs().max()))
            if index < len(linears) - 1:
                delta += 2 * u
        worst = max(worst, delta)
    return worst


def _export(run_dir, fmt, path):
    assert main(["export", str(run_dir), "--format", fmt, "--out", str(path)]) == 0
    files = {PROTOCOL_TEXT: "", PROTOCOL_JSON: ""}
    program = LOADERS[fmt](path, files)
    return program, {name: value.decode() if isinstance(value, bytes) else value for name, value in files.items()}


@pytest.mark.parametrize("name, fmt", CASES)
def test_program_equals_the_model_on_random_points(runs, name, fmt, tmp_path):
    """The program, traced at 7 points, equals the model at 5 and 333 random points (and times / grid
    points for LPINN) within the derived rounding bound (_mlp_error_bound; for LPINN carried through
    the linear interpolation: du + 2 max|slope| dx_L)."""
    config, spec, model = load_physics_run(runs / name)
    program, _ = _export(runs / name, fmt, tmp_path / "program.pt")
    generator = torch.Generator().manual_seed(7)
    for points in (5, 333):
        if config.method != "lpinn":
            coords = torch.rand(points, 2, generator=generator) * torch.tensor([spec.t_end, spec.upper[0]])
            with torch.no_grad():
                expected = model(coords)
            # the network's bound, plus the rounding of u0 + (t / T) net (hard initial condition): 4 u (|u0| + |out|)
            u32 = float(torch.finfo(torch.float32).eps) / 2
            bound = _mlp_error_bound(model) + 4 * u32 * (1 + 2 * float(expected.abs().max()))
            assert float(expected.abs().max()) > 1e-2
            with torch.no_grad():
                assert float((program(coords) - expected).abs().max()) <= bound
            continue
        t = np.sort(np.random.default_rng(points).uniform(0, spec.t_end, points))
        x = np.random.default_rng(points + 1).uniform(spec.lower[0], spec.upper[0], points + 3)
        n0 = particles_of(config)
        expected, _ = to_eulerian(model, spec, t, x, n0)
        with torch.no_grad():
            got = program(torch.from_numpy(t), torch.from_numpy(x)).numpy()
        x_l, u = lagrangian_state(model, t, spec.lower[0] + (spec.upper[0] - spec.lower[0]) * np.arange(n0) / n0)
        order = np.argsort(np.mod(x_l, spec.upper[0]), axis=1)
        xs, us = np.take_along_axis(np.mod(x_l, spec.upper[0]), order, 1), np.take_along_axis(u, order, 1)
        u32 = float(torch.finfo(torch.float32).eps) / 2
        dx = (model.config.displacement_scale * _mlp_error_bound(model.position)
              + 4 * u32 * (float(np.abs(x_l).max()) + 1.0))
        if model.config.characteristics == "monotone":
            # x_L = x0_0 + scale h + cumsum(J) dx0 with J = n0 softmax(g): an error dg moves each J by at
            # most 2 dg relative (x_L by 2 L dg), and the sum of n0 terms rounds by n0 u (L + |x_L|)
            length = spec.upper[0] - spec.lower[0]
            dx += 2 * length * _mlp_error_bound(model.position) + n0 * u32 * (length + float(np.abs(x_l).max()))
        # periodic extension as np.interp builds it; interval j is [xs_j, xs_(j+1)]
        length = spec.upper[0] - spec.lower[0]
        xs = np.concatenate((xs[:, -1:] - length, xs, xs[:, :1] + length), axis=1)
        us = np.concatenate((us[:, -1:], us, us[:, :1]), axis=1)
        gaps = np.diff(xs, axis=1)
        # free characteristics may bring two particles within rounding of each other, where their order
        # (and the interpolant next to them) can flip: query points in an interval touching a gap below
        # 10 dx are left out of the bound (the rest must be nearly all of them)
        wide = gaps > 10 * dx
        interval = np.stack([np.searchsorted(xs[i], np.mod(x, length), side="right") - 1 for i in range(points)])
        last = wide.shape[1] - 1
        kept = np.ones_like(interval, dtype=bool)
        for shift in (-1, 0, 1):
            kept &= np.take_along_axis(wide, np.clip(interval + shift, 0, last), 1)
        assert kept.mean() > 0.9
        slope = float(np.abs(np.diff(us, axis=1)[wide] / gaps[wide]).max())
        bound = _mlp_error_bound(model.state) + 2 * slope * dx + 1e-12
        assert got.shape == (points, points + 3) and float(np.abs(expected).max()) > 1e-2
        assert float(np.abs(got - expected)[kept].max()) <= bound


@pytest.mark.parametrize("name, fmt", [("causal_pinn", "torchscript"), ("lpinn-monotone", "torch-export")])
def test_metadata_is_read_back(runs, name, fmt, tmp_path):
    """pdeop_protocol.json holds the PDE specification, bounds, coordinates, outputs and signature;
    pdeop_protocol.txt the same as key / value lines."""
    config, spec, _ = load_physics_run(runs / name)
    _, files = _export(runs / name, fmt, tmp_path / "program.pt")
    meta = json.loads(files[PROTOCOL_JSON])
    assert meta["pde"] == describe_pde(spec) and meta["method"] == config.method
    assert meta["coordinates"] == ["t", "x"] and meta["lower"] == [0.0, 0.0]
    assert meta["upper"] == [spec.t_end, spec.upper[0]] and meta["periodic"] == [False, True]
    assert meta["run_config"] == config.to_dict()
    lines = dict(line.split(" ", 1) for line in files[PROTOCOL_TEXT].splitlines())
    assert [float(v) for v in lines["upper"].split()] == meta["upper"]
    if config.method == "lpinn":
        assert meta["signature"] == "forward(t, x)" and meta["outputs"] == ["u"] and meta["dtype"] == "float64"
        assert int(lines["particles"]) == 4 * config.evaluation.n_space
    else:
        assert meta["signature"] == "forward(coords)" and meta["outputs"] == list(spec.fields)
        assert lines["kind"] == "pointwise" and lines["dtype"] == "float32"


def test_bad_input_exits_2_and_leaves_no_file(runs, tmp_path, capsys):
    """A missing checkpoint, diverged (NaN) weights, a damaged pde section and an existing --out file
    are one-line errors with exit 2; nothing is written and the existing file is kept."""
    run_dir = tmp_path / "run"
    shutil.copytree(runs / "pinn", run_dir)
    out = tmp_path / "out" / "program.pt"
    out.parent.mkdir()

    def refused(*extra: str, match: str) -> None:
        capsys.readouterr()
        assert main(["export", str(run_dir), "--format", "torchscript", "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err

    diverged = operators.load(run_dir / "best")
    with torch.no_grad():
        for parameter in diverged.model.parameters():
            parameter.fill_(float("nan"))
    operators.save(diverged, run_dir / "best")  # a well-formed checkpoint of NaN weights
    refused(match="non-finite outputs")
    shutil.rmtree(run_dir / "best")
    refused(match="no 'best' checkpoint")
    config = json.loads((run_dir / "run_config.json").read_text())
    config["pde"]["name"] = "no-such-pde"
    (run_dir / "run_config.json").write_text(json.dumps(config))
    refused("--checkpoint", "last", match="unknown pde.name")
    assert list(out.parent.iterdir()) == []
    out.write_text("mine")
    refused("--checkpoint", "last", match="exists")
    assert out.read_text() == "mine" and list(out.parent.iterdir()) == [out]
