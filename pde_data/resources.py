"""Memory and disk a generation run needs, estimated from its settings and checked before anything is allocated.

Each family estimates its own needs (:meth:`pde_data.family.Family.estimate`): it knows what it
stores and which working arrays its solver holds. :func:`check_resources` compares the estimate with
what the machine has — ``MemAvailable`` of ``/proc/meminfo`` (and the cgroup limit, in a container)
and the free space of the output folder — and refuses with a :class:`~solvers.errors.ConfigError`
giving the estimate, what is available and what to change. Dataset files are allocated in full when
they are created (``ALLOC_TIME_EARLY``, and their blocks reserved, see
:func:`pde_data.storage.create`), so the whole file must fit on disk from the start.
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import shutil
from pathlib import Path

import numpy as np

from pde_data.output_files import shown
from solvers.errors import ConfigError

#: bookkeeping of the pipeline per sample of the run: solve order, completion marks, the ``sample``
#: coordinate and the index arrays built from them (int64 and uint8 arrays, a few copies each)
PIPELINE_BYTES_PER_SAMPLE = 48
#: HDF5 / netCDF metadata of a dataset file (superblock, object headers, dimension scales, attributes)
FILE_OVERHEAD_BYTES = 64 << 10


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What generating a dataset needs, from its settings alone (bytes).

    Attributes
    ----------
    file_bytes
        Size of the finished file.
    sample_bytes
        Working memory that grows with the chunk: per sample computed together.
    fixed_bytes
        Working memory independent of the chunk (operators, factorizations, the work of one
        sample at a time, sorting features, the pipeline's bookkeeping).
    size_settings
        The settings that drive the size, for the remedy in messages (e.g. ``"internal_resolution"``).
    """

    file_bytes: int
    sample_bytes: int
    fixed_bytes: int
    size_settings: str = "resolution"

    def memory(self, chunk: int) -> int:
        """Peak working memory when ``chunk`` samples are computed together."""
        return int(self.fixed_bytes + chunk * self.sample_bytes)

    def largest_chunk(self, memory: int) -> int:
        """The largest chunk whose :meth:`memory` fits in ``memory`` bytes (0 if not even one)."""
        spare = memory - self.fixed_bytes
        return int(spare // max(1, self.sample_bytes)) if spare > 0 else 0


def stored_bytes(shape: tuple[int, ...] | list[int], dtype: str | np.dtype) -> int:
    """Bytes of an array of ``shape`` and ``dtype`` (Python integers: no overflow for huge shapes)."""
    return math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize


def available_memory() -> int:
    """Memory this process may still allocate: ``MemAvailable``, capped by the cgroup's limit if any."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 1 << 62  # unknown: do not refuse
    limit = _cgroup_headroom()
    return min(available, limit) if limit is not None else available


def _cgroup_headroom() -> int | None:
    """``memory.max - memory.current`` of this process's cgroup (v2), or None without a limit."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as stream:
            relative = next((line.strip().split("::", 1)[1] for line in stream if line.startswith("0::")), None)
        if relative is None:
            return None
        folder = Path("/sys/fs/cgroup") / relative.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((folder / "memory.current").read_text().strip())
    except (OSError, ValueError, StopIteration):
        return None


def free_disk(path: Path) -> int:
    """Free bytes on the file system that holds (or will hold) ``path``."""
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62  # unknown: do not refuse


def file_size_limit() -> int | None:
    """The largest file this process may write (``ulimit -f``, ``RLIMIT_FSIZE``), or None without a limit."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if limit == resource.RLIM_INFINITY else int(limit)


def allocated_bytes(path: Path) -> int:
    """Disk blocks already used by ``path`` (0 if it does not exist)."""
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


def size(n: float) -> str:
    """Bytes as a short human-readable string (``1.5 GiB``)."""
    n = float(n) if abs(n) < 2.0**1000 else math.inf
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def check_resources(estimate: Estimate, *, samples: int, chunk: int | None, default_chunk: int,
                    out: Path, new_disk_bytes: int, memory: int | None = None,
                    disk: int | None = None) -> int:
    """Refuse a run that cannot fit; return the chunk size to use.

    Parameters
    ----------
    estimate
        The family's :class:`Estimate`.
    samples
        Samples of the run (for the remedy).
    chunk
        The chunk size the user asked for, or None for the family's default (which is lowered to
        what fits in memory; the stored values never depend on it).
    default_chunk
        The family's default chunk size.
    out
        The output file (for messages and the free-space look-up).
    new_disk_bytes
        Disk space the run still has to take (the whole file for a new one, what is not yet
        allocated for a resumed one).
    memory, disk
        Available memory and free disk in bytes (default: measured now).

    Raises
    ------
    ConfigError
        Naming the estimate, what is available and what to change.
    """
    memory = available_memory() if memory is None else memory
    disk = free_disk(out) if disk is None else disk
    largest = file_size_limit()
    if largest is not None and estimate.file_bytes > largest:
        raise ConfigError(
            f"the dataset file would be about {size(estimate.file_bytes)} but this process may not write files "
            f"larger than {size(largest)} (ulimit -f); lower samples or {estimate.size_settings}, or raise the "
            "limit")
    if new_disk_bytes > disk:
        per_sample = max(1, (estimate.file_bytes - FILE_OVERHEAD_BYTES) // max(1, samples))
        fitting = max(0, int((disk - (new_disk_bytes - estimate.file_bytes) - FILE_OVERHEAD_BYTES) // per_sample))
        lower = f"lower samples (at most about {fitting} fit) or {estimate.size_settings}" if fitting else \
            f"one sample alone takes about {size(per_sample)}: lower {estimate.size_settings}"
        raise ConfigError(
            f"the dataset needs about {size(new_disk_bytes)} of disk for {shown(out)} but only {size(disk)} are "
            f"free there; {lower}, or choose an --out on a disk with more space")
    fits = estimate.largest_chunk(memory)
    if fits < 1:
        raise ConfigError(
            f"computing one sample needs about {size(estimate.memory(1))} of memory but only {size(memory)} is "
            f"available; lower {estimate.size_settings}" +
            (" or samples" if estimate.fixed_bytes > memory // 2 else ""))
    if chunk is not None:
        if chunk > fits:
            raise ConfigError(
                f"a chunk of {chunk} samples needs about {size(estimate.memory(chunk))} of memory but only "
                f"{size(memory)} is available; use --chunk-size {fits} or less (it never changes the results)")
        return chunk
    return max(1, min(default_chunk, fits))
