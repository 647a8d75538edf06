"""Tiny dataset files of the periodic families, written by the real generation pipeline (for tests)."""

from __future__ import annotations

from pathlib import Path

from pde_data.pipeline import generate_dataset, resolve_config


def tiny_ks(path: Path) -> Path:
    """6 LPSDA-style KS trajectories (L ~ U[57.6, 70.4] per sample) on 128 points, 11 snapshots every 0.2."""
    config = resolve_config("kuramoto-sivashinsky", "lpsda", samples=6, seed=1,
                            overrides=["resolution=128", "internal_resolution=128", "warmup_steps=40", "T=2.0"])
    generate_dataset(config, path, progress=False)
    return path


def tiny_ns(path: Path) -> Path:
    """5 FNO-forced Navier-Stokes trajectories on 16^2 (simulated on the stored grid), 5 snapshots every 0.05."""
    config = resolve_config("navier-stokes", "fno", samples=5, seed=1,
                            overrides=["resolution=16", "internal_resolution=16", "dt=2e-3", "T=0.2",
                                       "record_every=0.05"])
    generate_dataset(config, path, progress=False)
    return path
