"""A training split read on demand (what each rank of a data-parallel run uses) against the loaded split.

Tolerance of the normaliser statistics: the chunked fit merges per-chunk float64 means and squared
deviations (a few float64 roundings, ~1e-15 relative) and the normaliser stores float32, so the two fits
can differ by the float32 rounding of that: at most one float32 ulp (1.2e-7 relative). We allow two
ulps (2.4e-7), relative to the largest magnitude of the data for entries near zero.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from operators.training.dataset_identity import content_sha256
from operators.training.distributed import Distributed
from operators.training.surrogate import fit_increment_normalizer
from pde_data import DataConfig, make_datasets
from pde_data import lazy_split
from pde_data.normalization import ChunkedFit, concat_channels
from tests.operators import tiny_data
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

ULPS2 = 2.4e-7  # see the module docstring


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of one or two samples, so that every whole-split pass merges several chunks."""
    monkeypatch.setattr(lazy_split, "CHUNK_BYTES", 1)


def _configs(tmp_path):
    heat = tiny_data.heat(tmp_path / "heat.h5", n_samples=12, n=8, steps=6, dim=2)
    poisson = tiny_data.screened_poisson(tmp_path / "sp.h5", n_samples=10, n=8)
    return {
        "windows": DataConfig(path=str(heat), t_in=2, t_out=2, windows="all", time_subsample=1, subsample=2,
                              n_train=7, n_val=2, n_test=2, normalization="pointwise", periodic=True),
        "static": DataConfig(path=str(poisson), protocol="static", inputs=("a",), outputs=("u",),
                             conditioning=("sample",), n_train=6, n_test=2, normalization="global"),
    }


def _close(a: torch.Tensor, b: torch.Tensor, scale: float) -> None:
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=ULPS2, atol=ULPS2 * scale)


@pytest.mark.parametrize("protocol", ["windows", "static"])
def test_lazy_split_serves_the_loaded_split(tmp_path, small_chunks, protocol):
    """Every batch of a shuffled epoch is bit-identical to the loaded split's; the run identity's content
    checksum is the same; the normalisers agree to float32 rounding (chunked fit over several chunks)."""
    config = _configs(tmp_path)[protocol]
    loaded, lazy = make_datasets(config), make_datasets(config, lazy_train=True)
    assert isinstance(lazy.train, lazy_split.LazySplit) and len(lazy.train) == len(loaded.train)
    order = torch.randperm(len(loaded.train), generator=torch.Generator().manual_seed(1))
    for first in range(0, len(order), 3):
        for a, b in zip(loaded.train.batch(order[first:first + 3]), lazy.train.batch(order[first:first + 3])):
            assert torch.equal(a, b)
    assert torch.equal(lazy.train.item_sample, loaded.train.item_sample)
    np.testing.assert_array_equal(lazy.train.samples, loaded.train.samples)
    splits = lambda bundle: (bundle.train, bundle.val, bundle.test)  # noqa: E731
    assert content_sha256(splits(lazy)) == content_sha256(splits(loaded))
    name = "trajectories" if protocol == "windows" else "inputs"
    scale = max(float(getattr(loaded.train, name).abs().max()), float(loaded.train.cond.abs().numpy().max(initial=0.0)))
    for which in ("input", "output"):
        a, b = getattr(loaded.normalizers, which), getattr(lazy.normalizers, which)
        _close(a.mean, b.mean, scale)
        _close(a.std, b.std, scale)
    lazy.train.close()


def test_increment_normaliser_from_chunks(tmp_path, small_chunks):
    """The output normaliser of an increment model fitted chunk by chunk equals the one-array fit."""
    config = _configs(tmp_path)["windows"]
    loaded, lazy = make_datasets(config), make_datasets(config, lazy_train=True)
    a = fit_increment_normalizer(loaded.train.trajectories, 2, "pointwise", True)
    b = fit_increment_normalizer(lazy.train, 2, "pointwise", True)
    scale = 2 * float(loaded.train.trajectories.abs().max())
    _close(a.mean, b.mean, scale)
    _close(a.std, b.std, scale)
    lazy.train.close()


def _separate_pass_fit(split, name: str, kind: str, shared: bool, periodic: bool, transform=lambda c: c):
    """The fit as it was before one read served them all: a pass of its own over ``array_chunks``."""
    fit = ChunkedFit(kind, shared, periodic)
    for chunk in split.array_chunks(name):
        fit.add(transform(chunk))
    return fit.result()


@pytest.mark.parametrize("protocol", ["windows", "static", "windows-none"])
def test_one_read_serves_the_checksum_and_the_normalisers(tmp_path, small_chunks, protocol):
    """Start-up reads the split once (``passes``), however many statistics it feeds; the run's content
    checksum is the loaded split's, and each normaliser is bit-identical to one fitted in a pass of its own
    (same chunks, same float64 merges: the same numbers, not merely close ones)."""
    config = _configs(tmp_path)[protocol.split("-")[0]]
    if protocol.endswith("none"):
        config = config.replace(normalization="none")
    loaded, lazy = make_datasets(config), make_datasets(config, lazy_train=True)
    splits = lambda bundle: (bundle.train, bundle.val, bundle.test)  # noqa: E731
    assert lazy.train.passes == 1 and lazy.train.content_hash is not None
    assert content_sha256(splits(lazy)) == content_sha256(splits(loaded))
    assert lazy.train.passes == 1  # the checksum continued the start-up read's hash
    train, kind, periodic = lazy.train, config.normalization, bool(lazy.info["periodic"])
    if kind == "none":
        assert lazy.normalizers.input is None and lazy.normalizers.output is None
        return
    if train.time_dependent:
        output = _separate_pass_fit(train, "trajectories", kind, True, periodic)
        inputs = output
    else:
        output = _separate_pass_fit(train, "outputs", kind, False, periodic)
        inputs = _separate_pass_fit(train, "inputs", kind, False, periodic)
    parts = [(inputs, train.in_channels)]
    if train.cond_channels:
        parts.append((_separate_pass_fit(train, "cond", kind, False, periodic), train.cond_channels))
    expected = concat_channels(parts)
    for got, want in ((lazy.normalizers.output, output), (lazy.normalizers.input, expected)):
        assert torch.equal(got.mean, want.mean) and torch.equal(got.std, want.std)
    # the increment normaliser: every lead from one more read, each bit-identical to a pass of its own
    before = train.passes
    increments = fit_increment_normalizer(train, 2, kind, True) if train.time_dependent else None
    if increments is not None:
        assert train.passes == before + 1
        shape = train.array_shape("trajectories")
        for lead in (1, 2):
            want = _separate_pass_fit(train, "trajectories", kind, False, True, lambda c, lead=lead: (
                c[:, lead:] - c[:, :-lead]).reshape(-1, 1, *shape[2:]))
            assert torch.equal(increments.mean[lead - 1:lead], want.mean)
            assert torch.equal(increments.std[lead - 1:lead], want.std)
    train.close()


@pytest.mark.parametrize("cache_samples", [0, 2])
def test_each_rank_reads_only_the_samples_of_its_items(tmp_path, cache_samples):
    """Two ranks sharding every global batch of an epoch as the trainer does (``Distributed.shard``):
    each batch call reads exactly the samples of this rank's items that are not cached (none of the
    other rank's), and the cache never holds more than its bound."""
    config = _configs(tmp_path)["windows"]
    loaded = make_datasets(config).train
    order = torch.randperm(len(loaded), generator=torch.Generator().manual_seed(7))
    for rank in range(2):
        lazy = make_datasets(config, lazy_train=True).train
        lazy.cache_bytes = cache_samples * lazy.sample_bytes
        lazy.reads.clear()
        cached: set[int] = set()
        distributed = Distributed(rank=rank, world_size=2)
        for first in range(0, len(order), 4):
            items, _ = distributed.shard(order[first:first + 4])
            mine = {int(lazy.samples[p]) for p in loaded.item_sample[items].tolist()}
            lazy.batch(items)
            assert set(lazy.reads[-1]) == mine - cached
            assert len(lazy.reads[-1]) == len(set(lazy.reads[-1]))
            assert lazy.cached_samples <= cache_samples
            cached = {int(lazy.samples[p]) for p in lazy._cache}
        read = sum(len(r) for r in lazy.reads)
        if cache_samples == 0:  # every read is a sample of this rank's items of that step, each once per step
            assert read == sum(len({int(p) for p in loaded.item_sample[distributed.shard(order[f:f + 4])[0]]})
                               for f in range(0, len(order), 4))
        lazy.close()
