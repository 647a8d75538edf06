"""SHA-256 over the arrays of a dataset, as a run's identity records them (``content_sha256``).

The byte stream is fixed: for each dataset, for each array of :data:`ARRAYS` it has, the text
``f"{name}{shape}{dtype}"`` then the array's bytes (C order). :func:`add_array` feeds one array,
whole or in consecutive row chunks; :class:`SplitHash` feeds every array of a split read on demand
from one pass over its chunks (:meth:`pde_data.lazy_split.LazySplit.scan`), where the arrays arrive
interleaved chunk by chunk: the first goes into the hash at once, the others are kept in spooled
temporary files (memory up to :data:`SPOOL_BYTES` each, then disk) and appended in order after the pass.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

#: array attributes of the datasets of :mod:`pde_data.samples`, in hashing order
ARRAYS = ("trajectories", "inputs", "outputs", "cond")
#: what a spooled array keeps in memory before it moves to a temporary file
SPOOL_BYTES = 64 * 2**20


def _bytes(chunk: Any) -> np.ndarray:
    array = chunk.detach().cpu().numpy() if hasattr(chunk, "detach") else np.asarray(chunk)
    return np.ascontiguousarray(array)


def add_array(digest: Any, name: str, shape: tuple[int, ...], chunks: Iterable[Any]) -> None:
    """Feed array ``name`` of ``shape`` to ``digest``, given as consecutive row ``chunks`` (or ``[array]``)."""
    for i, chunk in enumerate(chunks):
        array = _bytes(chunk)
        if i == 0:
            digest.update(f"{name}{shape}{array.dtype.str}".encode())
        digest.update(array.reshape(-1).view(np.uint8))


class SplitHash:
    """The hash of one split's arrays, fed chunk by chunk with the arrays interleaved.

    Parameters
    ----------
    split
        A split with ``array_shape(name)`` (:class:`pde_data.lazy_split.LazySplit`).
    """

    def __init__(self, split: Any) -> None:
        self.names = [name for name in ARRAYS if split.array_shape(name) is not None]
        self.shapes = {name: split.array_shape(name) for name in self.names}
        self.digest = hashlib.sha256()
        self._spools = {name: tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) for name in self.names[1:]}
        self._headers: dict[str, bytes] = {}

    def feeds(self) -> list[tuple[str, Callable[[Any], None]]]:
        """``(array name, consumer of its next chunk)`` for every array, for ``LazySplit.scan``."""
        return [(name, lambda chunk, name=name: self._add(name, chunk)) for name in self.names]

    def _add(self, name: str, chunk: Any) -> None:
        array = _bytes(chunk)
        if name not in self._headers:
            self._headers[name] = f"{name}{self.shapes[name]}{array.dtype.str}".encode()
            if name == self.names[0]:
                self.digest.update(self._headers[name])
        target = self._spools.get(name)
        if target is None:
            self.digest.update(array.reshape(-1).view(np.uint8))
        else:
            target.write(array.reshape(-1).view(np.uint8).tobytes())

    def finish(self) -> Any:
        """The ``hashlib`` object after the whole split (the spooled arrays appended in order)."""
        for name, spool in self._spools.items():
            self.digest.update(self._headers[name])
            spool.seek(0)
            while block := spool.read(2**20):
                self.digest.update(block)
            spool.close()
        self._spools = {}
        return self.digest
