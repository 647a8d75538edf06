"""The generation pipeline: reproducibility, resume, refusal of foreign files, bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr

from operators.cli import main
from pde_data.pipeline import generate_dataset, resolve_config
from pde_data.storage import COMPLETE_MARKS
from tests.pde_data.toy_family import ToyFamily


def _arrays(path):
    with h5py.File(path, "r") as f:
        return {name: f[name][:] for name in ("u", "amplitude")}


def test_file_is_netcdf_with_coords_attrs_and_exact_values(toy):
    """xarray reads the file with named dims and coordinates; values equal the analytic formula."""
    out = toy / "toy.h5"
    generate_dataset(resolve_config("toy", samples=5, seed=3), out, progress=False)
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds["u"].dims == ("sample", "t", "x")
    assert ds.attrs["problem"] == "toy" and ds.attrs["seed"] == 3 and ds.attrs["complete"] == 1
    assert ds.attrs["rate"] == 1.0
    expected = ToyFamily(resolve_config("toy", samples=5, seed=3).settings).generate(range(5), 3)["u"]
    np.testing.assert_array_equal(ds["u"].values, expected.astype(np.float32))
    np.testing.assert_array_equal(ds["x"].values, np.arange(16) / 16)
    ds.close()


@pytest.mark.parametrize("chunk", [1, 2, 7])
def test_chunk_size_never_changes_the_arrays(toy, chunk):
    """Sample i depends only on (seed, i): any chunking gives bit-identical arrays."""
    config = resolve_config("toy", seed=11)
    generate_dataset(config, toy / "ref.h5", chunk_size=4, progress=False)
    generate_dataset(config, toy / "other.h5", chunk_size=chunk, progress=False)
    ref, other = _arrays(toy / "ref.h5"), _arrays(toy / "other.h5")
    for name in ref:
        assert np.array_equal(ref[name], other[name])


def test_resume_after_interruption_equals_uninterrupted_run(toy, monkeypatch):
    """A run killed after its first chunk resumes where it stopped and ends bit-identical."""
    config = resolve_config("toy", seed=5)
    generate_dataset(config, toy / "ref.h5", chunk_size=2, progress=False)

    calls = {"n": 0}
    original = ToyFamily.generate

    def interrupted(self, indices, seed):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, indices, seed)

    monkeypatch.setattr(ToyFamily, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(config, toy / "run.h5", chunk_size=2, progress=False)
    with h5py.File(toy / "run.h5", "r") as f:
        assert f.attrs["complete"] == 0
        assert f[COMPLETE_MARKS][:].sum() == 2
    monkeypatch.setattr(ToyFamily, "generate", original)
    result = generate_dataset(config, toy / "run.h5", chunk_size=3, progress=False)
    assert result["computed"] == 5
    ref, run = _arrays(toy / "ref.h5"), _arrays(toy / "run.h5")
    for name in ref:
        assert np.array_equal(ref[name], run[name])
    with h5py.File(toy / "run.h5", "r") as f:
        assert f.attrs["complete"] == 1


def test_complete_file_is_left_alone(toy):
    """Rerunning a finished command computes nothing."""
    config = resolve_config("toy")
    generate_dataset(config, toy / "a.h5", progress=False)
    assert generate_dataset(config, toy / "a.h5", progress=False)["computed"] == 0


def test_different_config_is_refused_and_file_kept(toy, capsys):
    """Another configuration aimed at an existing file exits 2 and leaves the file untouched."""
    out = toy / "a.h5"
    assert main(["generate", "toy", "--out", str(out), "--quiet"]) == 0
    before = out.read_bytes()
    assert main(["generate", "toy", "--set", "rate=2", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "different configuration" in err and "rate" in err and "--overwrite" in err
    assert len(err.splitlines()) == 1
    assert out.read_bytes() == before
    assert main(["generate", "toy", "--set", "rate=2", "--out", str(out), "--quiet", "--overwrite"]) == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["rate"] == 2.0


def test_foreign_file_is_refused(toy, capsys):
    """A file that is not a pdeop dataset is never overwritten without --overwrite."""
    out = toy / "notes.h5"
    out.write_text("my notes")
    assert main(["generate", "toy", "--out", str(out), "--quiet"]) == 2
    assert out.read_text() == "my notes"
    err = capsys.readouterr().err
    assert "is not an HDF5 file" in err and "--overwrite" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "nosuch"], "unknown problem 'nosuch'"),
        (["generate", "toy", "--preset", "nosuch"], "unknown preset 'nosuch'"),
        (["generate", "toy", "--set", "colour=red"], "unknown setting 'colour'"),
        (["generate", "toy", "--set", "rate=fast"], "rate must be a number"),
        (["generate", "toy", "--set", "steps=2.5"], "steps must be an integer"),
        (["generate", "toy", "--resolution", "0"], "resolution must be an integer >= 2"),
        (["generate", "toy", "--samples", "0"], "samples must be an integer >= 1"),
        (["generate", "toy", "--seed", "-1"], "seed must be an integer >= 0"),
        (["generate", "toy", "--set", "novalue"], "must look like key=value"),
        (["generate", "toy", "--config", "missing.yaml"], "config file missing.yaml does not exist"),
        (["generate", "toy", "--chunk-size", "0"], "chunk size must be an integer >= 1"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_file(toy, capsys, argv, message, monkeypatch):
    """Each user mistake gives exit code 2, one line naming the problem, and no output file."""
    monkeypatch.chdir(toy)
    out = toy / "bad.h5"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not [p.name for p in toy.iterdir() if "bad.h5" in p.name]  # no file, temporary, lock or partial


def test_unwritable_output_exits_2(toy, capsys):
    """An output path under a plain file cannot be created: exit 2, nothing written."""
    blocker = toy / "file"
    blocker.write_text("x")
    assert main(["generate", "toy", "--out", str(blocker / "sub" / "d.h5")]) == 2
    assert "--out" in capsys.readouterr().err
    assert blocker.read_text() == "x"


def test_instability_stores_nothing_of_the_bad_chunk(toy, capsys):
    """A failing sample stops generation with its message; a fresh file with nothing stored is removed."""
    out = toy / "u.h5"
    assert main(["generate", "toy", "--set", "unstable_sample=0", "--out", str(out), "--quiet"]) == 1
    assert "sample 0" in capsys.readouterr().err
    assert not out.exists()
    # failing later: earlier chunks stay stored, the file stays incomplete
    assert main(["generate", "toy", "--set", "unstable_sample=4", "--chunk-size", "2", "--out", str(out),
                 "--quiet"]) == 1
    with h5py.File(out, "r") as f:
        marks = f[COMPLETE_MARKS][:]
        assert f.attrs["complete"] == 0 and marks[:4].all() and not marks[4:].any()


def test_info_reports_shapes_and_completeness(toy, capsys):
    """pdeop info prints problem, sample count, completeness and variable shapes."""
    out = toy / "a.h5"
    main(["generate", "toy", "--samples", "3", "--out", str(out), "--quiet"])
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "toy" in text and "3, complete" in text and "u(sample, t, x)  shape (3, 5, 16)" in text
    assert main(["info", str(toy / "missing.h5")]) == 2
