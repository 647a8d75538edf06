"""examples/cpp_rollout: a libtorch program rolls an exported TorchScript operator out without Python and
gets the Python rollout's numbers. Built with CMake against the installed torch wheel when cmake and a C++
compiler are present and ``PDEOP_CPP_TESTS=1`` is set (the first libtorch build takes minutes, more than the
suite's budget allows on every run); skipped with the reason otherwise. The build folder is reused between runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import operators
from operators.checkpoint import Operator
from operators.training.export import PROTOCOL_TEXT, example_inputs, export_surrogate
from operators.training.surrogate import Surrogate

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "cpp_rollout"

pytestmark = pytest.mark.slow


def _build() -> Path:
    if os.environ.get("PDEOP_CPP_TESTS") != "1":
        pytest.skip("set PDEOP_CPP_TESTS=1 to build and test the C++ example (minutes for the first build)")
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no {' and no '.join(missing)} on this machine: the C++ example cannot be built")
    prefix = subprocess.run([sys.executable, "-c", "import torch.utils; print(torch.utils.cmake_prefix_path)"],
                            check=True, capture_output=True, text=True).stdout.strip()
    for command in (["cmake", "-S", str(ROOT / "examples" / "cpp_rollout"), "-B", str(BUILD),
                     f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"],
                    ["cmake", "--build", str(BUILD)]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command[:2])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return BUILD / "rollout"


def test_cpp_rollout_matches_the_python_rollout(tmp_path):
    """Tolerance 1e-5 (states of size ~1, 3 calls): the C++ program runs the same float32 graph as the reloaded
    TorchScript module; libtorch and the wheel share the kernels, so only rounding order can differ."""
    binary = _build()
    torch.manual_seed(0)
    model = operators.build({"model": "fno", "in_channels": 2, "out_channels": 1, "n_modes": [6, 6], "width": 8,
                             "n_layers": 2})
    surrogate = Surrogate(Operator(model), history=2, step=1).eval()
    program = tmp_path / "program.pt"
    extra = {PROTOCOL_TEXT: "history 2\nstep 1\nresolution_free 1\n"}
    export_surrogate(surrogate, example_inputs(2, 0, (16, 16)), "torchscript", program, True, extra)
    window = torch.randn(3, 2, 24, 24, generator=torch.Generator().manual_seed(2))  # another grid than traced
    window.numpy().astype(np.float32).tofile(tmp_path / "window.bin")
    out = tmp_path / "out.bin"
    done = subprocess.run([str(binary), str(program), str(tmp_path / "window.bin"), "3", str(out), "3", "24", "24"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = np.fromfile(out, dtype=np.float32).reshape(3, 3, 24, 24)
    with torch.no_grad():
        expected = surrogate.rollout(window, None, 3).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
