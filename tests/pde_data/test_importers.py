"""``pdeop import``: each published layout, built here in miniature, converts value for value (axis order
included), with provenance; blocks of any size give the same file; unknown layouts and failures leave
nothing behind; `pdeop train` runs the shipped FNO Navier-Stokes config on an imported FNO file."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest

from operators.cli import main
from pde_data.config import configs_root
from pde_data.family import stored_description
from pde_data.importers.convert import import_dataset
from pde_data.loading import open_dataset
from pde_data.storage import read_attrs
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)
from tests.pde_data import published_layouts as layouts


def _read(path) -> tuple[dict[str, np.ndarray], dict]:
    with h5py.File(path, "r") as f:
        arrays = {name: f[name][()] for name in f if isinstance(f[name], h5py.Dataset)}
    return arrays, read_attrs(path)


def _import(source, out, *args: str) -> tuple[dict[str, np.ndarray], dict]:
    assert main(["import", str(source), "--out", str(out), "--quiet", *args]) == 0
    ds = open_dataset(out)  # a complete pdeop dataset for the loaders
    ds.close()
    return _read(out)


def test_fno_navier_stokes_v73_reverses_the_axes_and_prepends_a(tmp_path):
    """MATLAB a(N, X, Y) and u(N, X, Y, T), stored reversed in HDF5, become w(sample, t, x, y) with
    w[:, 0] = a and w[:, k + 1] = u[..., k] exactly; periodic grid i / n, FNO forcing f, the family's
    description, the viscosity from --set and the source's checksum."""
    source = tmp_path / "ns_V1e-3_N3_T4.mat"
    ref = layouts.fno_navier_stokes(source)
    arrays, attrs = _import(source, tmp_path / "ns.h5", "--set", "viscosity=1e-3")
    np.testing.assert_array_equal(arrays["w"][:, 0], ref["a"])
    np.testing.assert_array_equal(arrays["w"][:, 1:], np.moveaxis(ref["u"], 3, 1))
    assert arrays["w"].dtype == np.float32 and arrays["w"].shape == (3, 5, 8, 6)
    np.testing.assert_array_equal(arrays["t"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(arrays["x"], np.arange(8) / 8)
    np.testing.assert_array_equal(arrays["y"], np.arange(6) / 6)
    s = 2 * np.pi * (arrays["x"][:, None] + arrays["y"][None, :])
    np.testing.assert_allclose(arrays["f"], 0.1 * (np.sin(s) + np.cos(s)), rtol=0, atol=1e-15)
    assert attrs["problem"] == "navier-stokes" and attrs["viscosity"] == 1e-3 and attrs["complete"] == 1
    assert attrs["source"] == str(source.resolve()) and attrs["source_format"] == "fno-navier-stokes"
    assert attrs["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert stored_description(attrs) == {"periodic": True, "physical_parameters": ["viscosity", "f"],
                                         "equation": "navier-stokes"}


def test_fno_darcy_v5_and_burgers_v73(tmp_path):
    """Darcy coeff/sol (scipy's MATLAB v5) -> a, u on the vertex grid linspace(0, 1, K), forcing 1; Burgers
    a, u, visc (v7.3) -> u(sample, t = [0, 1], x) with the viscosity from the file."""
    ref = layouts.fno_darcy(tmp_path / "piececonst_r7_N3.mat")
    arrays, attrs = _import(tmp_path / "piececonst_r7_N3.mat", tmp_path / "darcy.h5")
    np.testing.assert_array_equal(arrays["a"], ref["coeff"])
    np.testing.assert_array_equal(arrays["u"], ref["sol"])
    np.testing.assert_array_equal(arrays["x"], np.linspace(0, 1, 7))
    np.testing.assert_array_equal(arrays["y"], np.linspace(0, 1, 5))
    assert attrs["problem"] == "darcy" and attrs["forcing"] == 1.0 and attrs["periodic"] == 0
    ref = layouts.fno_burgers(tmp_path / "burgers_data_R10.mat")
    arrays, attrs = _import(tmp_path / "burgers_data_R10.mat", tmp_path / "burgers.h5")
    np.testing.assert_array_equal(arrays["u"][:, 0], ref["a"])
    np.testing.assert_array_equal(arrays["u"][:, 1], ref["u"])
    np.testing.assert_array_equal(arrays["t"], [0.0, 1.0])
    assert attrs["problem"] == "burgers" and attrs["viscosity"] == 0.1 and attrs["equation"] == "burgers"


def test_pdebench_layouts(tmp_path):
    """1-D tensor (N, T, X) with T + 1 times, 2-D Darcy nu / tensor(N, 1, X, Y), incompressible NS with
    velocity components and forcing split per channel, and the seed-grouped files, value for value; the
    file name's parameters become attributes."""
    path, ref = layouts.pdebench_1d(tmp_path)
    arrays, attrs = _import(path, tmp_path / "b1d.h5")
    np.testing.assert_array_equal(arrays["u"], ref["tensor"])
    np.testing.assert_array_equal(arrays["x"], ref["x-coordinate"].astype(np.float64))
    np.testing.assert_array_equal(arrays["t"], ref["t-coordinate"][:5].astype(np.float64))
    assert attrs["problem"] == "pdebench-burgers" and attrs["Nu"] == 0.001 and attrs["periodic"] == 1
    path, ref = layouts.pdebench_darcy(tmp_path)
    arrays, attrs = _import(path, tmp_path / "d2d.h5")
    np.testing.assert_array_equal(arrays["a"], ref["nu"])
    np.testing.assert_array_equal(arrays["u"], ref["tensor"][:, 0])
    assert attrs["problem"] == "darcy" and attrs["forcing"] == 0.5
    ref = layouts.pdebench_ns(tmp_path / "ns_incom_inhom_2d_512-0.h5")
    arrays, attrs = _import(tmp_path / "ns_incom_inhom_2d_512-0.h5", tmp_path / "ns.h5", "--set", "viscosity=0.01")
    for name, values in (("vx", ref["velocity"][..., 0]), ("vy", ref["velocity"][..., 1]),
                         ("particles", ref["particles"][..., 0]), ("fx", ref["force"][..., 0]),
                         ("fy", ref["force"][..., 1])):
        np.testing.assert_array_equal(arrays[name], values)
    np.testing.assert_array_equal(arrays["t"], ref["t"][0].astype(np.float64))
    assert attrs["physical_parameters"] == '["viscosity"]' and attrs["viscosity"] == 0.01
    path, data, grid = layouts.pdebench_seeds(tmp_path)
    arrays, attrs = _import(path, tmp_path / "dr.h5")
    for c in range(2):
        np.testing.assert_array_equal(arrays[f"u{c}"], np.stack(data)[..., c])
    for name in ("x", "y", "t"):
        np.testing.assert_array_equal(arrays[name], grid[name])
    assert attrs["problem"] == "pdebench-diff-react"


def test_pdearena_concatenates_the_splits_in_order(tmp_path):
    """train, valid, test groups become samples 0-1, 2, 3-4 (sizes kept in source_splits), fields and
    per-sample buoyancy value for value, also with blocks that straddle the groups (one, two samples)."""
    groups = layouts.pdearena(tmp_path / "NavierStokes2D_smoke.h5")
    outputs = []
    for block in (1, 2, 1 << 30):
        out = tmp_path / f"arena_{block}.h5"
        per_sample = 3 * 3 * 6 * 5 * 4 + 8
        import_dataset(tmp_path / "NavierStokes2D_smoke.h5", out, block_bytes=block * per_sample)
        outputs.append(_read(out))
    arrays, attrs = outputs[0]
    for name in ("u", "vx", "vy", "buo_y"):
        np.testing.assert_array_equal(arrays[name], np.concatenate([groups[s][name] for s in ("train", "valid", "test")]))
    np.testing.assert_array_equal(arrays["x"], groups["train"]["x"][0])
    assert json.loads(attrs["source_splits"]) == {"train": 2, "valid": 1, "test": 2}
    assert attrs["problem"] == "pdearena-navier-stokes"
    for other, _ in outputs[1:]:
        assert all(np.array_equal(other[name], arrays[name]) for name in arrays)


def test_exponax_channels_and_coordinates(tmp_path):
    """[sample, time, channel, x, y] -> u0, u1 (sample, t, x, y); --set length and dt give x = i L / N and
    t = k dt; the same file whether copied one sample at a time or at once."""
    ref = layouts.exponax(tmp_path / "traj.npy")
    arrays, attrs = _import(tmp_path / "traj.npy", tmp_path / "ex.h5", "--set", "length=2.0", "--set", "dt=0.5")
    np.testing.assert_array_equal(arrays["u0"], ref[:, :, 0])
    np.testing.assert_array_equal(arrays["u1"], ref[:, :, 1])
    np.testing.assert_array_equal(arrays["x"], np.arange(8) * 0.25)
    np.testing.assert_array_equal(arrays["t"], [0.0, 0.5, 1.0, 1.5])
    import_dataset(tmp_path / "traj.npy", tmp_path / "ex1.h5", overrides=["length=2.0", "dt=0.5"], block_bytes=1)
    one, _ = _read(tmp_path / "ex1.h5")
    assert all(np.array_equal(one[name], arrays[name]) for name in arrays)
    assert attrs["periodic"] == 1 and attrs["problem"] == "exponax"


def test_unknown_layout_exits_2_naming_what_it_found(tmp_path, capsys):
    """An HDF5 file in no known layout: exit 2, one line listing its datasets and shapes; no output file.
    A named --format the file does not have is refused the same way."""
    source = tmp_path / "mystery.h5"
    with h5py.File(source, "w") as f:
        f.create_dataset("pressure", data=np.zeros((3, 4)))
        f.create_dataset("grid/xc", data=np.zeros(4))
    out = tmp_path / "out.h5"
    assert main(["import", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "matches no known layout" in err and "grid/xc (4,)" in err and "pressure (3, 4)" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert main(["import", str(source), "--out", str(out), "--format", "pdearena"]) == 2
    assert "does not have the pdearena layout" in capsys.readouterr().err


def test_an_interrupted_import_leaves_nothing_and_outputs_are_not_clobbered(tmp_path, monkeypatch, capsys):
    """A failure in the middle of the copy removes the temporary file and leaves --out absent; an existing
    --out is refused (exit 2, file unchanged) unless --overwrite."""
    from pde_data.importers import exponax

    layouts.exponax(tmp_path / "traj.npy")
    original = exponax.Exponax.plan

    def failing(source, settings):
        plan = original(source, settings)
        read = plan.read

        def broken(start, stop):
            if start > 0:
                raise KeyboardInterrupt
            return read(start, stop)

        plan.read = broken
        return plan

    monkeypatch.setattr(exponax.Exponax, "plan", staticmethod(failing))
    with pytest.raises(KeyboardInterrupt):
        import_dataset(tmp_path / "traj.npy", tmp_path / "ex.h5", block_bytes=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traj.npy"]
    monkeypatch.setattr(exponax.Exponax, "plan", staticmethod(original))
    (tmp_path / "ex.h5").write_text("mine")
    assert main(["import", str(tmp_path / "traj.npy"), "--out", str(tmp_path / "ex.h5")]) == 2
    assert "exists; use --overwrite" in capsys.readouterr().err and (tmp_path / "ex.h5").read_text() == "mine"
    assert main(["import", str(tmp_path / "traj.npy"), "--out", str(tmp_path / "ex.h5"), "--overwrite", "--quiet"]) == 0


def test_train_runs_the_fno_ns_config_on_an_imported_fno_file(tmp_path, capsys):
    """The shipped fno_ns_quick config (10 steps in, 10 out, from t = 1) trains on an imported FNO-NS file
    with only the path changed (and one epoch): periodic grid and forcing come from the file."""
    source = tmp_path / "ns_V1e-3_N72_T20.mat"
    layouts.fno_navier_stokes(source, n=72, nx=16, ny=16, nt=20)
    out = tmp_path / "ns.h5"
    assert main(["import", str(source), "--out", str(out), "--quiet", "--set", "viscosity=1e-3"]) == 0
    run = tmp_path / "run"
    config = configs_root() / "train" / "fno_ns_quick.yaml"
    assert main(["train", str(config), "--out", str(run), "--quiet", "--set", f"data.path={out}",
                 "--set", "training.epochs=1"]) == 0
    assert "finished after 1/1 epochs" in capsys.readouterr().out
    history = json.loads((run / "training.json").read_text())["history"]
    assert np.isfinite(history[0]["train_loss"]) and np.isfinite(history[0]["val_l2"])


def test_import_help_lists_the_formats(capsys):
    """`pdeop import --help` ends with every registered format and its summary."""
    from pde_data.importers.plan import formats

    with pytest.raises(SystemExit):
        main(["import", "--help"])
    text = capsys.readouterr().out
    assert all(f"  {name}" in text and cls.summary in text for name, cls in formats().items())
    assert len(formats()) == 9
