"""pdeop simulate end to end on a tiny Burgers run: the file it writes, the report's numbers, exit-2 errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from operators.cli import main


@pytest.fixture(scope="module")
def burgers_run(tmp_path_factory):
    """A one-step FNO trained for a few epochs on 16 short Burgers trajectories at 32 points."""
    root = tmp_path_factory.mktemp("simulate")
    data = root / "burgers.h5"
    assert main(["generate", "burgers", "--preset", "fno", "--samples", "16", "--quiet", "--out", str(data),
                 "--set", "resolution=32", "--set", "internal_resolution=64", "--set", "dt=1e-3",
                 "--set", "T=0.2", "--set", "record_every=0.02", "--set", "viscosity=0.05"]) == 0
    config = {"seed": 0,
              "data": {"path": str(data), "protocol": "window", "windows": "all", "t_in": 1, "t_out": 1,
                       "n_train": 12, "n_val": 1, "n_test": 3, "normalization": "none"},
              "model": {"model": "fno", "n_modes": [8], "width": 8, "n_layers": 2, "lifting_ratio": 0,
                        "projection_ratio": 2, "channel_mlp": False},
              "training": {"epochs": 3, "batch_size": 20, "predict": "increment",
                           "optimizer": {"name": "adam", "lr": 3e-3}}}
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run = root / "run"
    assert main(["train", str(path), "--out", str(run), "--quiet"]) == 0
    return run, data


def test_simulate_writes_a_dataset_and_an_honest_report(burgers_run, tmp_path):
    from operators.simulate import couple_run
    from pde_data.loading import open_dataset

    run, data = burgers_run
    out = tmp_path / "traj.h5"
    assert main(["simulate", str(run), "--problem", "burgers", "--samples", "3", "--steps", "6", "--mode", "hybrid",
                 "--tolerance", "0.2", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert main(["plot", str(out.with_suffix(".report.json"))]) == 0  # error vs time and error vs cost
    assert (tmp_path / "traj_errors.png").stat().st_size > 0
    modes = report["modes"]
    assert modes["solver"]["error"] == [0.0] * 6  # the reference against itself
    counts = modes["hybrid"]
    assert counts["solver"] + counts["operator"] == 3 * 6
    # hybrid replaces steps by exact solver steps: it is never further from the solver than the
    # surrogate's rollout on the same samples, up to rounding (1e-12 relative)
    for hybrid, surrogate in zip(modes["hybrid"]["error"], modes["surrogate"]["error"]):
        assert hybrid <= surrogate + 1e-12
    ds = open_dataset(out)
    try:
        u = np.asarray(ds["u"].values)
        assert ds.attrs["problem"] == "burgers" and ds.attrs["simulate_mode"] == "hybrid"
        assert u.shape == (3, 7, 32)
    finally:
        ds.close()
    # the stored trajectory is what the hybrid simulation made: the first state is the stored initial one
    coupling = couple_run(run, 3)
    assert np.array_equal(u[:, 0], coupling.initial[:, 0].numpy().astype(np.float32))
    # the solver on the stored 32-point states, refined to the generator's 64 points, tracks the file:
    # only the initial state's modes above 16 are lost (spectrally small for this smooth data)
    solver_out = tmp_path / "solver.h5"
    assert main(["simulate", str(run), "--samples", "3", "--steps", "6", "--mode", "solver",
                 "--out", str(solver_out)]) == 0
    ds = open_dataset(solver_out)
    try:
        simulated = np.asarray(ds["u"].values)
    finally:
        ds.close()
    stored = coupling.stored[:, :7].numpy()
    assert np.linalg.norm(simulated - stored) <= 1e-3 * np.linalg.norm(stored)


@pytest.mark.parametrize("extra, message", [
    (["--tolerance", "0"], "--tolerance must be > 0"),
    (["--problem", "navier-stokes"], "does not match the run's data"),
    (["--resolution", "6"], "choose --resolution"),
])
def test_simulate_bad_input_is_one_line_exit_2(burgers_run, tmp_path, capsys, extra, message):
    run, _ = burgers_run
    out = tmp_path / "traj.h5"
    assert main(["simulate", str(run), "--steps", "2", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()
