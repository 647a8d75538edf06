"""Optional TensorBoard scalars of a training run: the same numbers as the history, no duplicates on resume."""

from __future__ import annotations

import json

import pytest

from operators.training.trainer import Trainer
from solvers.errors import ConfigError
from tests.operators.test_training import heat1d, heat_config  # noqa: F401  (fixture)
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files of ``folder`` as ``{tag: [(step, value), ...]}``, read by TensorBoard itself."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_stopped_and_resumed_run_logs_its_history_once(heat1d, tmp_path):  # noqa: F811
    """A 3-epoch run stopped after each epoch and resumed has one scalar per epoch and column, equal
    to training.json's value to float32 rounding (TensorBoard stores float32: rtol 1e-6)."""
    pytest.importorskip("tensorboard")
    config = heat_config(heat1d, mode="teacher-forcing", epochs=3, tensorboard=True)
    run = tmp_path / "run"
    Trainer(config, run, progress=False).fit(max_minutes=0)
    for _ in range(2):
        result = Trainer(config, run, progress=False).fit(resume=True, max_minutes=0)
    assert result.finished
    history = json.loads((run / "training.json").read_text())["history"]
    scalars = _scalars(run / "tensorboard")
    assert set(scalars) == {"train_loss", "lr", "val_l2", "seconds"}
    for tag, points in scalars.items():
        assert [step for step, _ in points] == [1, 2, 3]
        assert [value for _, value in points] == pytest.approx([row[tag] for row in history], rel=1e-6)


def test_missing_tensorboard_package_is_a_config_error(heat1d, monkeypatch):  # noqa: F811
    """Without the package, training.tensorboard=true fails at configuration time, naming the field."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConfigError, match="training.tensorboard is true .*pip install tensorboard"):
        heat_config(heat1d, tensorboard=True)
