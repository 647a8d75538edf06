"""Periodic 2-D vorticity fields shared by the Navier–Stokes solver tests (grid, smooth random fields, forcing)."""

from __future__ import annotations

import numpy as np


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``x, y`` of the ``n x n`` grid ``x_i = i / n`` (first axis x)."""
    x = np.arange(n) / n
    return np.meshgrid(x, x, indexing="ij")


def smooth_field(rng: np.random.Generator, n: int, count: int, amplitude: float = 1.0) -> np.ndarray:
    """Random zero-mean fields ``[count, n, n]`` with exponentially decaying spectrum (resolved on the grid)."""
    k = np.abs(np.fft.fftfreq(n, 1.0 / n))
    decay = np.exp(-0.4 * (k[:, None] + k[None, : n // 2 + 1]))
    w = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((count, n, n))) * decay, s=(n, n))
    w -= w.mean(axis=(1, 2), keepdims=True)
    return amplitude * w / w.std()


def kolmogorov_forcing(n: int, amplitude: float = 0.1) -> np.ndarray:
    """The FNO data's forcing ``A (sin 2 pi (x + y) + cos 2 pi (x + y))`` on the grid."""
    x, y = grid(n)
    return amplitude * (np.sin(2 * np.pi * (x + y)) + np.cos(2 * np.pi * (x + y)))
