"""Ordering a sequence of systems by similarity, so each solve starts near the previous one.

Sorting changes only the order in which samples are solved, never which sample gets which index:
every function here returns a permutation ``perm`` of ``range(N)`` and the caller solves sample
``perm[0]``, then ``perm[1]``, ...

* :func:`greedy_order` — nearest-neighbour chain on the Euclidean distance between feature
  vectors, ``O(N^2 F)`` time and ``O(N)`` memory (the SKR paper's greedy sort).
* :func:`scalable_order` — for ``N >= 10^4``: principal-component features, a coarse order along
  the leading component, and the greedy chain inside consecutive chunks, ``O(N c F)``.
* :func:`low_mode_features` — maps parameter fields on a grid (any dimension) to their lowest
  cosine-transform modes, the distance between which approximates the L2 distance between the
  smoothed fields.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from solvers.errors import ConfigError

#: above this many samples :func:`similarity_order` switches from the greedy chain to the scalable one
SCALABLE_THRESHOLD = 5000


def _as_features(features: np.ndarray) -> np.ndarray:
    F = np.asarray(features, dtype=np.float64)
    if F.ndim == 1:
        F = F[:, None]
    if F.ndim != 2:
        raise ConfigError(f"features must be an (N, F) array (got shape {F.shape})")
    if not np.all(np.isfinite(F)):
        raise ConfigError("features for sorting hold non-finite values")
    return F


def greedy_order(features: np.ndarray, start: int | None = None) -> np.ndarray:
    """Nearest-neighbour chain through the rows of ``features``.

    Starts at ``start`` (default: the row farthest from the mean, an end of the point cloud, so
    the chain does not have to come back across it) and repeatedly moves to the nearest row not
    yet visited. Ties go to the lowest index, so the order is deterministic.

    Parameters
    ----------
    features
        ``(N, F)`` feature vectors, one row per sample.
    start
        Index of the first sample.

    Returns
    -------
    ndarray
        ``(N,)`` int64 permutation of ``range(N)``.
    """
    F = _as_features(features)
    n = F.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sq = np.einsum("ij,ij->i", F, F)
    if start is None:
        center = F.mean(axis=0)
        start = int(np.argmax(np.einsum("ij,ij->i", F - center, F - center)))
    if not 0 <= start < n:
        raise ConfigError(f"start must be a sample index in [0, {n}) (got {start})")
    order = np.empty(n, dtype=np.int64)
    visited = np.zeros(n, dtype=bool)
    current = start
    for step in range(n):
        order[step] = current
        visited[current] = True
        if step == n - 1:
            break
        dist = sq - 2.0 * (F @ F[current])  # + sq[current], the same for every candidate
        dist[visited] = np.inf
        current = int(np.argmin(dist))
    return order


def scalable_order(features: np.ndarray, chunk: int = 256, n_components: int = 16) -> np.ndarray:
    """Similarity order for large ``N``: coarse order by the leading principal component, greedy within chunks.

    The features are reduced to their ``n_components`` leading principal components; samples are
    sorted along the first one and cut into consecutive chunks of ``chunk`` samples; inside each
    chunk a greedy nearest-neighbour chain starts from the sample nearest to the end of the
    previous chunk, so the chain crosses from one chunk to the next without a jump back.

    Parameters
    ----------
    features
        ``(N, F)`` feature vectors.
    chunk
        Samples per chunk (cost ``O(N * chunk * n_components)``).
    n_components
        Principal components kept.

    Returns
    -------
    ndarray
        ``(N,)`` int64 permutation of ``range(N)``.
    """
    F = _as_features(features)
    if chunk < 2:
        raise ConfigError(f"chunk must be >= 2 (got {chunk})")
    n = F.shape[0]
    if n <= chunk:
        return greedy_order(F)
    centered = F - F.mean(axis=0)
    # principal directions from the small F x F covariance (N may be huge, F is modest)
    cov = centered.T @ centered
    evals, evecs = np.linalg.eigh(cov)
    keep = evecs[:, np.argsort(evals)[::-1][: max(1, min(n_components, F.shape[1]))]]
    P = centered @ keep
    coarse = np.argsort(P[:, 0], kind="stable")
    order = np.empty(n, dtype=np.int64)
    filled = 0
    previous: np.ndarray | None = None
    for lo in range(0, n, chunk):
        members = coarse[lo: lo + chunk]
        local = P[members]
        if previous is None:
            start = int(np.argmin(local[:, 0]))
        else:
            start = int(np.argmin(np.einsum("ij,ij->i", local - previous, local - previous)))
        sub = greedy_order(local, start=start)
        order[filled: filled + sub.size] = members[sub]
        filled += sub.size
        previous = local[sub[-1]]
    return order


def similarity_order(features: np.ndarray) -> np.ndarray:
    """Greedy chain for ``N <= SCALABLE_THRESHOLD`` samples, :func:`scalable_order` above."""
    F = _as_features(features)
    return greedy_order(F) if F.shape[0] <= SCALABLE_THRESHOLD else scalable_order(F)


def low_mode_features(fields: np.ndarray, modes: int = 8) -> np.ndarray:
    """Lowest cosine-transform modes of each sample's field, flattened to one feature row.

    Parameters
    ----------
    fields
        ``(N, n_1, ..., n_d)`` values of one parameter field (coefficient, wavenumber, source)
        on a grid in ``d`` dimensions.
    modes
        Modes kept per axis (``modes**d`` features per sample).

    Returns
    -------
    ndarray
        ``(N, min(modes, n_1) * ... * min(modes, n_d))`` features. With the orthonormal DCT-II,
        the Euclidean distance between rows equals the grid L2 distance (divided by
        ``sqrt(n_1 ... n_d)``) between the fields projected onto these modes.
    """
    X = np.asarray(fields, dtype=np.float64)
    if X.ndim < 2:
        raise ConfigError(f"fields must be an (N, n_1, ..., n_d) array (got shape {X.shape})")
    if modes < 1:
        raise ConfigError(f"modes must be >= 1 (got {modes})")
    axes = tuple(range(1, X.ndim))
    coeffs = scipy.fft.dctn(X, type=2, axes=axes, norm="ortho")
    low = coeffs[(slice(None),) + tuple(slice(0, min(modes, s)) for s in X.shape[1:])]
    scale = 1.0 / np.sqrt(np.prod(X.shape[1:]))
    return low.reshape(X.shape[0], -1) * scale
