"""Per-phase seconds of a training process (``PDEOP_PHASES``): what is counted, and that it changes nothing.

No timing is checked: the phases' calls per epoch follow from the run's shape (steps, batches), the
phases add up to the epoch by construction (``other`` is the rest), and a recorded run takes exactly the
steps of an unrecorded one.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from operators.training.phases import ENVIRONMENT, Phases
from operators.training.trainer import Trainer
from tests.operators import tiny_data
from tests.operators.test_training import heat_config
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)


def test_phases_count_every_step_and_change_nothing(tmp_path, monkeypatch):
    """With ``PDEOP_PHASES`` the run writes one record per epoch: ``data`` once per batch plus the end of
    the epoch, ``forward``/``combine``/``backward``/``step`` once per step, ``validation`` and ``save`` once;
    phase seconds sum to the epoch's; the weights equal those of the same run without recording."""
    data = tiny_data.heat(tmp_path / "heat.h5", n_samples=24, n=16, steps=3, dim=1, nu=0.005, dt=0.5)
    config = heat_config(data, mode="unrolled", epochs=2)
    plain = Trainer(config, tmp_path / "plain", progress=False)
    plain.fit()
    monkeypatch.setenv(ENVIRONMENT, str(tmp_path / "phases"))
    recorded = Trainer(config, tmp_path / "recorded", progress=False)
    recorded.fit()
    a, b = (load_file(str(tmp_path / name / "last" / "weights.safetensors")) for name in ("plain", "recorded"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    epochs = json.loads((tmp_path / "phases" / "phases_rank0.json").read_text())["epochs"]
    steps = math.ceil(len(recorded.data.train) / config.training.batch_size)
    assert [e["epoch"] for e in epochs] == [1, 2]
    for epoch in epochs:
        calls = {name: phase["calls"] for name, phase in epoch["phases"].items()}
        assert calls == {"data": steps + 1, "forward": steps, "combine": steps, "backward": steps, "step": steps,
                         "validation": 1, "save": 1, "other": 1}
        for key in ("wall_s", "cpu_s"):
            total = sum(phase[key] for phase in epoch["phases"].values())
            assert total == pytest.approx(epoch[f"epoch_{key}"], rel=1e-9, abs=1e-9)
        assert all(phase["wall_s"] >= 0 for name, phase in epoch["phases"].items() if name != "other")


def test_phases_off_without_the_variable(tmp_path, monkeypatch):
    """Without the variable nothing is recorded or written."""
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    phases = Phases()
    phases.start_epoch(1)
    with phases("forward"):
        pass
    phases.end_epoch()
    assert not phases.on and phases.epochs == [] and phases.write() is None
