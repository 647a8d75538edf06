"""Exports that travel: resolution-agnostic models export once and run at 32, 64 and 128 points per side;
the program carries its protocol and normalisers."""

from __future__ import annotations

import json

import pytest
import torch

import operators
from operators.checkpoint import Operator
from operators.models.grid_rule import grid_rule
from operators.training.export import example_inputs, export_surrogate
from operators.training.surrogate import Surrogate
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

#: FNO (padded, 2-D), FNO 1-D, TFNO, KAN-FNO and a three-level MgNO, each traced at 32 points per side
MODELS = {
    "fno-2d-padded": {"model": "fno", "in_channels": 1, "out_channels": 1, "n_modes": [6, 6], "width": 8,
                      "n_layers": 2, "domain_padding": [0.1]},
    "fno-1d": {"model": "fno", "in_channels": 2, "out_channels": 1, "n_modes": [8], "width": 8, "n_layers": 2},
    "tfno-2d": {"model": "tfno", "in_channels": 1, "out_channels": 1, "n_modes": [6, 6], "width": 8, "n_layers": 2},
    "kan-fno-2d": {"model": "kan-fno", "in_channels": 1, "out_channels": 1, "n_modes": [6, 6], "width": 8,
                   "n_layers": 2},
    "mgno-2d": {"model": "mgno", "in_channels": 1, "out_channels": 1, "width": 8, "n_layers": 2, "levels": 3,
                "pre_smoothing": [1]},
}
LOADERS = {"torchscript": lambda path: torch.jit.load(str(path)),
           "torch-export": lambda path: torch.export.load(str(path)).module()}


#: every model as TorchScript; torch.export (slower to trace) for the padded FNO and the MgNO
CASES = [(name, "torchscript") for name in sorted(MODELS)] + [
    pytest.param(name, "torch-export", marks=pytest.mark.slow) for name in ("fno-2d-padded", "mgno-2d")]


@pytest.mark.parametrize("name, fmt", CASES)
def test_program_matches_the_model_at_32_64_and_128(name, fmt, tmp_path):
    """Tolerance 1e-5 (absolute, outputs of size ~0.1-1): the program runs the same float32 FFT path as the
    eager reference kernels; only the eager DFT-matrix path on short axes sums in another order (~1e-7)."""
    torch.manual_seed(0)
    spec = MODELS[name]
    model = operators.build(spec)
    dims = len(spec.get("n_modes", [0, 0]))
    surrogate = Surrogate(Operator(model)).eval()
    assert grid_rule(model, (32,) * dims).resolution_free
    path = tmp_path / "program.pt"
    extra = {"pdeop_protocol.txt": "history 1\nstep 1\n"}
    inputs = example_inputs(spec["in_channels"], 0, (32,) * dims)
    assert export_surrogate(surrogate, inputs, fmt, path, dynamic_grid=True, extra_files=extra) <= 1e-5
    program = LOADERS[fmt](path)
    for n in (32, 64, 128):
        x = torch.randn(3, spec["in_channels"], *(n,) * dims, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            expected = surrogate(x)
            assert expected.abs().max() > 1e-2  # a vanishing output would make the comparison empty
            torch.testing.assert_close(program(x), expected, rtol=1e-5, atol=1e-5)


def test_fixed_grid_export_is_the_default_for_grid_bound_models():
    class Dense(torch.nn.Module):  # no grid_rule method: tied to its training grid
        pass

    rule = grid_rule(Dense(), (32, 32))
    assert not rule.resolution_free and rule.problem((64, 64)) == "the model runs only on its training grid 32x32"
    assert rule.problem((32, 32)) is None


def test_run_export_carries_protocol_and_normalisers(tmp_path):
    """`export_run` on a loaded run: the text protocol the C++ example parses and the JSON with normalisers."""
    from types import SimpleNamespace

    from operators.training.export import PROTOCOL_JSON, PROTOCOL_TEXT, export_run

    torch.manual_seed(0)
    model = operators.build({"model": "fno", "in_channels": 3, "out_channels": 2, "n_modes": [6, 6], "width": 8,
                             "n_layers": 1})
    from pde_data.normalization import fit_normalizer

    data = 0.5 + 2.0 * torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    normalizers = {"input": fit_normalizer(data, "global", periodic=True).to_dict(), "output": None}
    operator = Operator(model, normalizers=normalizers)
    loaded = SimpleNamespace(
        surrogate=Surrogate(operator, history=3, step=2).eval(), checkpoint=tmp_path / "best",
        metadata={"surrogate": {"history": 3, "step": 2, "increment": False},
                  "protocol": {"protocol": "window", "variable": "w", "inputs": [], "outputs": [], "conditioning": [],
                               "t_in": 3, "t_out": 2, "periodic": True, "subsample": 1},
                  "grid": {"dims": ["x", "y"], "shape": [16, 16], "periodic": True, "coords": {}},
                  "run_config": {}})
    path = tmp_path / "p.pt"
    result = export_run(loaded, "torchscript", path)
    assert result.error <= 1e-5 and "any size >= 6" in result.shape
    files = {PROTOCOL_TEXT: "", PROTOCOL_JSON: ""}
    program = torch.jit.load(str(path), _extra_files=files)
    text = {key: value.decode() if isinstance(value, bytes) else value for key, value in files.items()}
    lines = dict(line.split(" ", 1) for line in text[PROTOCOL_TEXT].strip().splitlines())
    assert lines["history"] == "3" and lines["step"] == "2" and lines["train_grid"] == "16 16"
    assert lines["resolution_free"] == "1" and lines["min_grid"] == "6 6"
    payload = json.loads(text[PROTOCOL_JSON])
    assert payload["normalizers"] == json.loads(json.dumps(operator.normalizers))
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(program(x), loaded.surrogate(x), rtol=1e-5, atol=1e-5)
