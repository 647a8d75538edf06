"""A training split read from its file on demand: each batch reads the samples it needs, through a bounded cache.

With several training processes (``operators.training.distributed``) every rank computes its own part
of each global batch. Loading the whole split on every rank would hold it N times per node; a
:class:`LazySplit` instead keeps the file open and, for each ``batch(items)``, reads the samples of
those items that are not cached (one h5py read of their rows, through the same code as the in-memory
loader, :func:`pde_data.loading.load_rows`: same subsampling, float32 conversion and finiteness check;
the file is opened with h5py for each read and closed after it),
so a rank reads only the samples of its own items and holds at most ``cache_bytes`` of samples
(least recently used first out) plus the batch being served.

It serves exactly what :class:`~pde_data.samples.TrajectoryWindows` or
:class:`~pde_data.samples.StaticPairs` of the same rows serve (same items, same values) and carries
their metadata (``item_sample``, ``item_start``, ``samples``, channel counts, grid and times), which is
all the trainer, the physics term and the augmenter read. Whole-split quantities (the content checksum
of the run's identity and the normaliser statistics) are computed from one read of consecutive rows,
at most :data:`CHUNK_BYTES` at a time, never the whole split at once (:meth:`LazySplit.scan`, which
feeds several statistics from the same read).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

#: what a chunk of :meth:`LazySplit.array_chunks` holds at most (one sample when a sample is larger)
CHUNK_BYTES = 64 * 2**20
#: default bound of the sample cache of a :class:`LazySplit`
CACHE_BYTES = 256 * 2**20


class LazySplit:
    """The protocol's dataset of ``rows`` of a file, read on demand.

    Parameters
    ----------
    config
        The ``data`` section (:class:`pde_data.loading.DataConfig`); ``config.path`` is opened.
    rows
        Increasing file rows (sample indices) of the split.
    cache_bytes
        At most this many bytes of samples stay cached between batches (0: none).

    Attributes
    ----------
    reads
        The file rows read by each :meth:`batch` call (cache misses), in call order.
    passes
        Whole-split reads so far (:meth:`scan`, :meth:`array_chunks`).
    content_hash
        The ``hashlib`` state after this split's arrays (:mod:`pde_data.content_hash`), once
        :meth:`start_up` computed it (:func:`pde_data.loading.make_datasets` calls it), else None.
    """

    def __init__(self, config, rows: np.ndarray, cache_bytes: int = CACHE_BYTES) -> None:
        from pde_data.loading import load_rows, open_dataset

        self.config = config
        self.samples = np.asarray(rows)
        self.cache_bytes = int(cache_bytes)
        self.reads: list[list[int]] = []
        self.passes = 0
        self.content_hash = None
        ds = open_dataset(config.path, allow_incomplete=config.allow_incomplete)  # checks the file once
        try:
            template = load_rows(ds, config, self.samples[:1])
            self._layout = _Layout.of(ds, config)
        finally:
            ds.close()
        self.time_dependent = template.time_dependent
        self._names = ("trajectories", "cond") if self.time_dependent else ("inputs", "outputs", "cond")
        self._shapes = {name: tuple(getattr(template, name).shape[1:]) for name in self._names}
        self.sample_bytes = sum(4 * int(np.prod(shape)) for shape in self._shapes.values())
        n = len(self.samples)
        if self.time_dependent:
            self.times, self.starts = template.times, template.starts
            self.t_in, self.t_out = template.t_in, template.t_out
            self.item_sample = torch.arange(n).repeat_interleave(len(self.starts))
            self.item_start = torch.as_tensor(self.starts).repeat(n)
        else:
            self.item_sample = torch.arange(n)
        self.in_channels, self.out_channels = template.in_channels, template.out_channels
        self.cond_channels, self.space_shape = template.cond_channels, template.space_shape
        self._cache: OrderedDict[int, tuple[torch.Tensor, ...]] = OrderedDict()

    def __len__(self) -> int:
        return int(self.item_sample.shape[0])

    def target_times(self, start: int | None = None) -> np.ndarray:
        """Times of the target steps of the window starting at ``start`` (default: the first)."""
        first = int(self.starts[0] if start is None else start) + self.t_in
        return self.times[first:first + self.t_out]

    def batch(self, items: torch.Tensor | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x, y, cond)`` of the item indices ``items``, as the in-memory dataset gives them.

        Reads the samples of ``items`` that are not cached (recorded in :attr:`reads`).
        """
        from pde_data.samples import StaticPairs, TrajectoryWindows

        items = torch.as_tensor(items, dtype=torch.long)
        positions = self.item_sample[items]
        needed = sorted(set(positions.tolist()))
        missing = [p for p in needed if p not in self._cache]
        self.reads.append([int(self.samples[p]) for p in missing])
        if missing:
            part = self._layout.load(self.config, self.samples[np.asarray(missing)])
            for i, p in enumerate(missing):
                self._cache[p] = tuple(getattr(part, name)[i].clone() for name in self._names)
        for p in needed:
            self._cache.move_to_end(p)
        local = torch.as_tensor(np.searchsorted(needed, positions.numpy()))
        arrays = [torch.stack([self._cache[p][k] for p in needed]) for k in range(len(self._names))]
        rows = self.samples[needed]
        if self.time_dependent:
            part = TrajectoryWindows(arrays[0], self.times, self.t_in, self.t_out, self.starts, arrays[1], rows)
            out = part.batch(local * len(self.starts) + items % len(self.starts))
        else:
            out = StaticPairs(*arrays, rows).batch(local)
        while self._cache and len(self._cache) * self.sample_bytes > self.cache_bytes:
            self._cache.popitem(last=False)
        return out

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y, cond = self.batch(torch.tensor([index]))
        return x[0], y[0], cond[0]

    @property
    def cached_samples(self) -> int:
        """How many samples the cache holds now."""
        return len(self._cache)

    # ------------------------------------------------------------------ whole-split passes
    def array_shape(self, name: str) -> tuple[int, ...] | None:
        """Shape of the split's array ``name`` (``trajectories``, ``inputs``, ``outputs``, ``cond``) as the
        in-memory dataset holds it, or None if this protocol has none."""
        shape = self._shapes.get(name)
        return None if shape is None else (len(self.samples), *shape)

    def array_chunks(self, name: str) -> Iterator[torch.Tensor]:
        """The array ``name`` of the whole split in consecutive row chunks of at most :data:`CHUNK_BYTES`
        (float32, as the in-memory dataset holds it; not cached, not recorded in :attr:`reads`)."""
        for part in self._chunks():
            yield getattr(part, name)

    def scan(self, feeds: Sequence[tuple[str, Callable[[torch.Tensor], None]]]) -> None:
        """One read of the whole split, chunk by chunk (as :meth:`array_chunks`): each chunk's array ``name``
        goes to every ``(name, consumer)`` of ``feeds``, in order. Several whole-split statistics (the
        normalisers, the content hash) thus cost one read of the file (counted in :attr:`passes`)."""
        for part in self._chunks():
            for name, consume in feeds:
                consume(getattr(part, name))

    def start_up(self, fits: Sequence[tuple[str, bool]], kind: str, periodic: bool) -> dict:
        """The start-up read: one :meth:`scan` fits a normaliser for each ``(array name, shared_channels)``
        of ``fits`` (:class:`pde_data.normalization.ChunkedFit` of ``kind``) and hashes the split's arrays
        (:attr:`content_hash`, which the run's identity continues); returns the normalisers by name."""
        from pde_data.content_hash import SplitHash
        from pde_data.normalization import ChunkedFit

        fitted = {name: ChunkedFit(kind, shared, periodic) for name, shared in fits}
        split_hash = SplitHash(self)
        self.scan([*((name, fit.add) for name, fit in fitted.items()), *split_hash.feeds()])
        self.content_hash = split_hash.finish()
        return {name: fit.result() for name, fit in fitted.items()}

    def _chunks(self) -> Iterator:
        """The in-memory datasets of consecutive row chunks of the split (one whole-split read)."""
        self.passes += 1
        per_chunk = max(1, CHUNK_BYTES // max(self.sample_bytes, 1))
        for first in range(0, len(self.samples), per_chunk):
            yield self._load(np.arange(first, min(first + per_chunk, len(self.samples))))

    def close(self) -> None:
        """Drop the cache."""
        self._cache.clear()

    def _load(self, positions: np.ndarray):
        """The in-memory dataset of the split's ``positions``, read through a handle opened for this read.

        No handle stays open between reads: HDF5 refuses to open a file twice in one process with
        different locking flags, and other readers (:func:`pde_data.loading.open_dataset`) open it with
        their own.
        """
        import xarray as xr

        from pde_data.loading import load_rows

        with xr.open_dataset(self.config.path, engine="h5netcdf", phony_dims="sort") as ds:
            return load_rows(ds, self.config, self.samples[positions])


class _Layout:
    """What a batch read needs of the file, noted once: the variables the protocol reads (dims; the
    values of those without a sample axis), the coordinates and the attributes.

    :meth:`load` then reads only the rows' values of the per-sample variables with h5py (a plain open:
    parsing the whole file's metadata through xarray costs ~0.1 s per open) and serves them to
    :func:`pde_data.loading.load_rows` as an in-memory dataset laid out like the file, so subsampling,
    the float32 conversion and the finiteness check are the loader's own.
    """

    def __init__(self, dims: dict[str, tuple[str, ...]], static: dict[str, tuple], coords: dict[str, np.ndarray],
                 attrs: dict) -> None:
        self.dims, self.static, self.coords, self.attrs = dims, static, coords, attrs

    @classmethod
    def of(cls, ds, config) -> _Layout:
        from pde_data.loading import _time_variable  # the loader's choice of the time variable

        names = [_time_variable(ds, config)] if config.time_dependent else [*config.inputs, *config.outputs]
        names += [name for name in config.conditioning if name != "sample"]
        names += ["sample"] if "sample" in ds.variables else []  # its values (a coordinate, or conditioning)
        dims = {name: tuple(ds[name].dims) for name in names if "sample" in ds[name].dims}
        static = {name: (tuple(ds[name].dims), np.asarray(ds[name].values)) for name in names if name not in dims}
        coords = {name: np.asarray(ds[name].values) for name in ds.coords if name != "sample"}
        return cls(dims, static, coords, dict(ds.attrs))

    def load(self, config, rows: np.ndarray):
        """The protocol's dataset of the file rows ``rows`` (increasing)."""
        import h5py
        import xarray as xr

        from pde_data.loading import load_rows

        with h5py.File(config.path, "r") as f:
            variables = {name: (dims, f[name][rows]) for name, dims in self.dims.items()}
        sample = variables.pop("sample", (("sample",), rows))  # the file's sample numbers, else its rows
        ds = xr.Dataset({**variables, **self.static}, coords={**self.coords, "sample": sample}, attrs=self.attrs)
        ds.encoding["source"] = config.path
        return load_rows(ds, config, np.arange(len(rows)))
