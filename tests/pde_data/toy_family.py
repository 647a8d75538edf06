"""A tiny analytic problem family used to test the generation pipeline without any PDE solver."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from pde_data.config import check
from pde_data.family import FAMILIES, Family, Layout, Variable, register_family, sample_rng
from solvers.errors import StabilityError


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """u(t, x) = A exp(-rate t) sin(2 pi x) with a random amplitude A per sample."""

    resolution: int = 16
    steps: int = 4
    rate: float = 1.0
    unstable_sample: int = -1  # a sample index whose generation fails (to test the guard)

    def __post_init__(self) -> None:
        check(self.resolution >= 2, f"resolution must be an integer >= 2 (got {self.resolution})")
        check(self.steps >= 1, f"steps must be an integer >= 1 (got {self.steps})")


class ToyFamily(Family):
    """Analytic decaying sine: every sample is exactly known from (seed, i)."""

    config_class = ToyConfig
    default_preset = "default"
    default_chunk_size = 3

    def layout(self) -> Layout:
        c = self.config
        return Layout(
            coords={"t": np.arange(c.steps + 1, dtype=np.float64), "x": np.arange(c.resolution) / c.resolution},
            variables=self.variables(), attrs={"rate": c.rate},
        )

    # sizes from the settings, without building the layout: the pipeline checks them before allocating
    def dimension_sizes(self) -> dict[str, int]:
        return {"t": self.config.steps + 1, "x": self.config.resolution}

    def variables(self) -> dict[str, Variable]:
        return {"u": Variable(("sample", "t", "x"), "float32"), "amplitude": Variable(("sample",), "float64")}

    def static_bytes(self) -> int:
        return 0

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, np.ndarray]:
        c = self.config
        amplitude = np.array([sample_rng(seed, i).standard_normal() for i in indices])
        for i in indices:
            if i == c.unstable_sample:
                raise StabilityError(f"sample {i}: non-finite values at t = 1; use a smaller dt")
        t = np.arange(c.steps + 1)[:, None]
        x = np.arange(c.resolution)[None, :] / c.resolution
        u = amplitude[:, None, None] * (np.exp(-c.rate * t) * np.sin(2 * np.pi * x))[None]
        return {"u": u, "amplitude": amplitude}


def install(monkeypatch, tmp_path) -> None:
    """Register the toy family as problem ``toy`` with a preset folder under ``tmp_path``."""
    if "toy" not in FAMILIES:
        register_family("toy")(ToyFamily)
    (tmp_path / "configs" / "data" / "toy").mkdir(parents=True, exist_ok=True)
    (tmp_path / "configs" / "data" / "toy" / "default.yaml").write_text("resolution: 16\nsamples: 7\n")
    monkeypatch.setattr("pde_data.pipeline.configs_root", lambda: tmp_path / "configs")
