"""Training with ``data.augment``: the hook is used, and stopped-and-resumed runs replay it exactly."""

from __future__ import annotations

import pytest
import torch

from operators.training.config import run_config_from_mapping
from operators.training.trainer import Trainer
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)
from tests.pde_data.spectral_files import tiny_ks


@pytest.fixture(scope="module")
def ks_file(tmp_path_factory):
    return tiny_ks(tmp_path_factory.mktemp("augmented-training") / "ks.h5")


def _config(path, augment):
    return run_config_from_mapping({
        "data": {"path": str(path), "protocol": "window", "t_in": 1, "t_out": 2, "windows": "all",
                 "window_stride": 2, "conditioning": ["L"], "n_train": 4, "n_test": 2, "normalization": "global",
                 "augment": augment},
        "model": {"model": "resnet", "n_dim": 1, "width": 8, "n_blocks": 1, "dilations": [1, 2, 1], "conditioning": 1},
        "training": {"epochs": 2, "batch_size": 8, "mode": "unrolled", "step": 1},
        "seed": 5,
    })


def test_resumed_augmented_run_equals_the_uninterrupted_one(ks_file, tmp_path):
    """Stopping after the first epoch and resuming gives the uninterrupted run's losses and weights bit for
    bit: each item's transform depends only on (seed, epoch, item). The augmented run differs from
    the plain one from its first epoch on (the hook is in the training loop)."""
    augmented = _config(ks_file, {"translate": True, "boost": 0.5})
    straight = Trainer(augmented, tmp_path / "straight", progress=False)
    history = straight.fit().history
    Trainer(augmented, tmp_path / "pieces", progress=False).fit(max_minutes=0)
    last = Trainer(augmented, tmp_path / "pieces", progress=False)
    result = last.fit(resume=True)
    assert result.finished and [r["train_loss"] for r in result.history] == [r["train_loss"] for r in history]
    for ours, theirs in zip(last.surrogate.model.parameters(), straight.surrogate.model.parameters()):
        assert torch.equal(ours, theirs)
    plain = Trainer(_config(ks_file, None), tmp_path / "plain", progress=False).fit(max_minutes=0).history
    assert plain[0]["train_loss"] != history[0]["train_loss"]
