"""Which data a run trained on: recorded at the start, compared on ``--resume``.

The identity (``dataset.json`` of the run folder) holds the file's path, size and modification time
(for the reader), its generation fingerprint (:func:`pde_data.loading.fingerprint`: problem, preset,
seed, version, a hash of the generation config and the sample count) and ``content_sha256``, a
SHA-256 of exactly the arrays the run trains, validates and tests on (every split, after
subsampling, as float32).

Why this checksum: the trainer holds those arrays in memory anyway, so hashing them costs one pass
over memory (about 1 GB/s; under a second for typical sets) and no extra reading of the file, and it
covers every value that can change the run — a file regenerated with another seed, edited, or
replaced by one with the same config but different values is caught; a file that only differs
where the run does not look (unused variables, attributes) gives the same run and is accepted.
Size and time alone would refuse identical copies and accept same-size edits.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pde_data.content_hash import ARRAYS, add_array


def content_sha256(datasets: Iterable[Any]) -> str:
    """SHA-256 over the arrays of ``datasets`` (None entries skipped), with their shapes and dtypes
    (:mod:`pde_data.content_hash`).

    A split read on demand (:class:`pde_data.lazy_split.LazySplit`) is hashed chunk by chunk, same bytes;
    when it comes first and already hashed its arrays in its start-up read (``content_hash``, see
    :func:`pde_data.loading.make_datasets`), that hash is continued instead of reading it again.
    """
    digest = None
    for dataset in datasets:
        if dataset is None:
            continue
        if digest is None:
            hashed = getattr(dataset, "content_hash", None)
            digest = hashlib.sha256() if hashed is None else hashed.copy()
            if hashed is not None:
                continue
        for name in ARRAYS:
            if hasattr(dataset, "array_chunks"):
                shape = dataset.array_shape(name)
                chunks = dataset.array_chunks(name) if shape is not None else None
            else:
                value = getattr(dataset, name, None)
                shape = None if value is None else tuple(value.shape)
                chunks = [value]
            if shape is not None:
                add_array(digest, name, shape, chunks)
    return (digest or hashlib.sha256()).hexdigest()


def identify(path: str | os.PathLike, fingerprint: dict[str, Any], datasets: Iterable[Any]) -> dict[str, Any]:
    """The identity of the data of a run (see the module docstring).

    Parameters
    ----------
    path
        The dataset file.
    fingerprint
        :func:`pde_data.loading.fingerprint` of the file.
    datasets
        The loaded splits (train, val, test; None where a split is empty).
    """
    path = Path(path)
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime,
            "fingerprint": fingerprint, "content_sha256": content_sha256(datasets)}


def difference(recorded: Any, current: dict[str, Any]) -> str:
    """Why ``current`` is not the data of ``recorded`` (``""`` when it is).

    The content checksum and the generation fingerprint decide; the size is named in the reason.
    """
    if not isinstance(recorded, dict):
        return "the run's dataset.json is damaged (not a JSON object)"
    reasons = []
    if recorded.get("content_sha256") != current["content_sha256"]:
        reasons.append(f"the stored arrays differ (content sha256 {str(recorded.get('content_sha256'))[:12]} "
                       f"then, {current['content_sha256'][:12]} now)")
    old = recorded.get("fingerprint") if isinstance(recorded.get("fingerprint"), dict) else {}
    for key in ("problem", "preset", "seed", "samples", "config_sha256"):
        if old.get(key) != current["fingerprint"].get(key):
            what = "generation config" if key == "config_sha256" else key
            reasons.append(f"its {what} differs ({str(old.get(key))[:16]} then, "
                           f"{str(current['fingerprint'].get(key))[:16]} now)")
            break
    if not reasons:
        return ""
    if recorded.get("size") != current["size"]:
        reasons.append(f"size {recorded.get('size')} bytes then, {current['size']} now")
    return f"{current['path']} is not the dataset this run started with: {'; '.join(reasons)}"
