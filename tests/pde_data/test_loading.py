"""Loading: file checks, protocols serving exactly the stored values, splits, normalisers fitted on train."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from pde_data import DataConfig, UnitGaussianNormalizer, make_dataset, make_datasets, open_dataset
from pde_data.normalization import resample
from solvers.errors import ConfigError
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)
from tests.operators import tiny_data


@pytest.fixture
def heat2d(tmp_path):
    return tiny_data.heat(tmp_path / "heat.h5", n_samples=12, n=8, steps=5, dim=2)


def _stored(path, name):
    with h5py.File(path, "r") as f:
        return f[name][:]


def test_open_dataset_reads_layout(heat2d):
    """xarray sees the named dims, coordinates and root attributes of the DESIGN.md §3 layout."""
    ds = open_dataset(heat2d)
    assert ds["u"].dims == ("sample", "t", "x", "y")
    assert ds.attrs["problem"] == "heat" and int(ds.attrs["complete"]) == 1
    np.testing.assert_array_equal(ds["t"].values, np.arange(6) * 0.5)
    ds.close()


def test_missing_foreign_and_incomplete_files_are_config_errors(tmp_path):
    """Each unusable file gives a ConfigError whose message says what is wrong with which file."""
    with pytest.raises(ConfigError, match="does not exist"):
        open_dataset(tmp_path / "nothing.h5")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["u"] = np.zeros(3)
    with pytest.raises(ConfigError, match="not a pdeop dataset"):
        open_dataset(foreign)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(ConfigError, match="is not an HDF5 file"):
        open_dataset(text)
    partial = tiny_data.heat(tmp_path / "partial.h5", n_samples=6, n=8, steps=2, n_written=4)
    with pytest.raises(ConfigError, match="incomplete"):
        open_dataset(partial)
    open_dataset(partial, allow_incomplete=True).close()


def test_incomplete_file_serves_only_finished_samples(tmp_path):
    """With allow_incomplete the splits are drawn from the samples marked complete, never the others."""
    partial = tiny_data.heat(tmp_path / "partial.h5", n_samples=6, n=8, steps=2, n_written=4)
    config = DataConfig(path=str(partial), protocol="window", t_in=1, n_train=2, n_test=2, allow_incomplete=True)
    bundle = make_datasets(config)
    assert list(bundle.train.samples) == [0, 1] and list(bundle.test.samples) == [2, 3]
    with pytest.raises(ConfigError, match="has only 4"):
        make_datasets(config.replace(n_train=3))


def test_fno_window_protocol_serves_exact_slices(heat2d):
    """t_in steps in and the rest out, from `start`, equal the stored array slices bit for bit."""
    config = DataConfig(path=str(heat2d), protocol="window", start=1, t_in=2, n_train=8, n_val=1, n_test=3)
    bundle = make_datasets(config)
    u = _stored(heat2d, "u")
    x, y, cond = bundle.test.batch([0, 2])
    np.testing.assert_array_equal(x.numpy(), u[[9, 11], 1:3])
    np.testing.assert_array_equal(y.numpy(), u[[9, 11], 3:])
    assert cond.shape == (2, 0, 8, 8)
    np.testing.assert_allclose(bundle.test.target_times(), [1.5, 2.0, 2.5])


def test_splits_are_disjoint_and_by_index(heat2d):
    """Train takes the first samples, test the last, validation the ones just before test."""
    bundle = make_datasets(DataConfig(path=str(heat2d), n_train=5, n_val=3, n_test=2))
    assert list(bundle.train.samples) == [0, 1, 2, 3, 4]
    assert list(bundle.val.samples) == [7, 8, 9]
    assert list(bundle.test.samples) == [10, 11]
    alone = make_dataset(DataConfig(path=str(heat2d), n_train=5, n_val=3, n_test=2), "test", n_samples=4)
    assert list(alone.samples) == [8, 9, 10, 11]


def test_one_step_and_all_windows_enumerate_every_start(heat2d):
    """one-step pairs are (u_t, u_t+1) for every t and sample; 'all' windows honour the stride."""
    u = _stored(heat2d, "u")
    pairs = make_dataset(DataConfig(path=str(heat2d), protocol="one-step", n_train=2, n_test=1), "train")
    assert len(pairs) == 2 * 5
    x, y, _ = pairs.batch(range(len(pairs)))
    expected_x = np.concatenate([u[i, 0:5] for i in range(2)])[:, None]
    expected_y = np.concatenate([u[i, 1:6] for i in range(2)])[:, None]
    np.testing.assert_array_equal(x.numpy(), expected_x)
    np.testing.assert_array_equal(y.numpy(), expected_y)
    strided = make_dataset(DataConfig(path=str(heat2d), t_in=2, t_out=2, windows="all", window_stride=2,
                                      n_train=1, n_test=1), "train")
    assert list(strided.starts) == [0, 2]


def test_time_subsample_keeps_every_kth_step(heat2d):
    """time_subsample=5 turns the 6 stored steps into (t=0, t=2.5): a window 1 -> 1 is the pair u(0) -> u(2.5)."""
    u = _stored(heat2d, "u")
    pairs = make_dataset(DataConfig(path=str(heat2d), t_in=1, t_out=1, time_subsample=5, n_train=2, n_test=1),
                         "train")
    x, y, _ = pairs.batch([1])
    np.testing.assert_array_equal(x.numpy()[0, 0], u[1, 0])
    np.testing.assert_array_equal(y.numpy()[0, 0], u[1, 5])
    np.testing.assert_allclose(pairs.target_times(), [2.5])


def test_torch_dataloader_gives_the_same_items(heat2d):
    """The datasets are ordinary torch Datasets: a DataLoader batch equals the fast batch() path."""
    dataset = make_dataset(DataConfig(path=str(heat2d), t_in=2, t_out=3, n_train=4, n_test=1), "train")
    loaded = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3, shuffle=False)))
    for a, b in zip(loaded, dataset.batch([0, 1, 2])):
        assert torch.equal(a, b)


def test_static_protocol_with_subsample_and_conditioning(tmp_path):
    """Static pairs with every second grid point equal the stored arrays' strided slices; a per-sample
    scalar used as conditioning becomes a constant channel of that value."""
    path = tiny_data.screened_poisson(tmp_path / "sp.h5", n_samples=6, n=8)
    config = DataConfig(path=str(path), protocol="static", inputs=("a",), outputs=("u",), n_train=4,
                        n_test=2, subsample=2, conditioning=("sample",))
    bundle = make_datasets(config)
    a, u = _stored(path, "a"), _stored(path, "u")
    x, y, cond = bundle.test.batch([1])
    np.testing.assert_array_equal(x.numpy()[0, 0], a[5, ::2, ::2])
    np.testing.assert_array_equal(y.numpy()[0, 0], u[5, ::2, ::2])
    assert torch.all(cond == 5.0) and cond.shape == (1, 1, 4, 4)


def test_normalizers_are_fitted_on_train_only(heat2d):
    """Pointwise statistics equal NumPy's over the training samples and times only (not val/test); the
    input normaliser repeats them for each of the t_in input channels (same variable)."""
    bundle = make_datasets(DataConfig(path=str(heat2d), t_in=2, n_train=6, n_val=2, n_test=2,
                                      normalization="pointwise", periodic=True))
    u = _stored(heat2d, "u").astype(np.float64)[:6]
    out = bundle.normalizers.output
    np.testing.assert_allclose(out.mean[0].numpy(), u.mean(axis=(0, 1)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out.std[0].numpy(), u.std(axis=(0, 1)), rtol=1e-6)
    inp = bundle.normalizers.input
    assert inp.mean.shape == (2, 8, 8)
    assert torch.equal(inp.mean[1], out.mean[0]) and torch.equal(inp.std[0], out.std[0])
    x = bundle.train.batch([0])[0]
    np.testing.assert_allclose(inp.decode(inp.encode(x)).numpy(), x.numpy(), atol=1e-6)


def test_conditioning_channels_get_their_own_statistics(tmp_path):
    """Static protocol: the input normaliser covers the input fields, then the conditioning channels,
    each with statistics of its own training values (global kind: one mean/std per channel)."""
    path = tiny_data.screened_poisson(tmp_path / "sp.h5", n_samples=6, n=8)
    bundle = make_datasets(DataConfig(path=str(path), protocol="static", inputs=("a",), outputs=("u",),
                                      conditioning=("sample",), n_train=4, n_test=2, normalization="global"))
    inp = bundle.normalizers.input
    a = _stored(path, "a").astype(np.float64)[:4]
    assert inp.mean.shape == (2, 1, 1)
    np.testing.assert_allclose(inp.mean[:, 0, 0].numpy(), [a.mean(), 1.5], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(inp.std[:, 0, 0].numpy(), [a.std(), np.std([0, 1, 2, 3])], rtol=1e-6)


def test_normalizer_round_trips_through_plain_lists(heat2d):
    """to_dict -> JSON-able lists -> from_dict rebuilds identical statistics and behaviour."""
    import json

    bundle = make_datasets(DataConfig(path=str(heat2d), n_train=6, n_test=2, normalization="global"))
    norm = bundle.normalizers.input
    again = UnitGaussianNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(again.encode(x), norm.encode(x))
    with pytest.raises(ConfigError, match="malformed"):
        UnitGaussianNormalizer.from_dict({"mean": [1.0]})


def test_fourier_resample_is_exact_for_band_limited_fields():
    """A trigonometric polynomial below both grids' Nyquist limits is resampled to rounding error."""
    def field(n):
        x = torch.arange(n, dtype=torch.float64) / n
        return (1 + torch.sin(2 * math.pi * 3 * x)[:, None] * torch.cos(2 * math.pi * 2 * x)[None, :])[None]

    np.testing.assert_allclose(resample(field(16), (40, 40), periodic=True), field(40), atol=1e-13)
    np.testing.assert_allclose(resample(field(40), (16, 16), periodic=True), field(16), atol=1e-13)


def test_vertex_grid_resample_keeps_nested_values():
    """On grids with both boundaries, 5 -> 9 points keeps the shared vertices and is linear between."""
    coarse = torch.tensor([[0.0, 1.0, 4.0, 9.0, 16.0]])
    fine = resample(coarse, (9,), periodic=False)
    np.testing.assert_allclose(fine[0, ::2], coarse[0])
    np.testing.assert_allclose(fine[0, 1::2], (coarse[0, :-1] + coarse[0, 1:]) / 2)


def test_bad_data_settings_name_the_field(heat2d):
    """Unknown variable, window longer than the trajectory, too many samples: one ConfigError each."""
    with pytest.raises(ConfigError, match="data.variable"):
        make_datasets(DataConfig(path=str(heat2d), variable="w"))
    with pytest.raises(ConfigError, match="exceeds the 6 stored time steps"):
        make_datasets(DataConfig(path=str(heat2d), t_in=4, t_out=3))
    with pytest.raises(ConfigError, match="n_train \\+ n_val \\+ n_test"):
        make_datasets(DataConfig(path=str(heat2d), n_train=12))
    with pytest.raises(ConfigError, match="protocol 'one-step'"):
        DataConfig(path=str(heat2d), protocol="one-step", t_in=2)
