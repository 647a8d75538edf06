"""The run-folder files shared by the operator trainer and the physics-informed trainer."""

from __future__ import annotations

import json

import pytest

from operators.training import run_folder
from solvers.errors import ConfigError


def _writer(log):
    def save_model(folder, name):
        folder.mkdir()
        (folder / "weights").write_text(f"{name} {len(log)}")
        log.append(name)
    return save_model


def _save_state(folder):
    (folder / "state").write_text("state")


def test_best_is_replaced_only_when_improved_and_holds_no_training_state(tmp_path):
    """`save_checkpoints` always replaces last/ (model + state) and replaces best/ (model only) exactly when
    the score improved; no staging folder is left behind."""
    log: list[str] = []
    run_folder.save_checkpoints(tmp_path, _writer(log), _save_state, improved=True)
    run_folder.save_checkpoints(tmp_path, _writer(log), _save_state, improved=False)
    assert log == ["last", "best", "last"]
    assert (tmp_path / "last" / "weights").read_text() == "last 2" and (tmp_path / "last" / "state").is_file()
    assert (tmp_path / "best" / "weights").read_text() == "best 1" and not (tmp_path / "best" / "state").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "last"]


def test_resume_finds_last_old_after_a_kill_between_the_renames(tmp_path):
    """A kill between the two renames of `swap_in` leaves only last.old; resuming uses it, and a changed
    config is refused naming the first differing setting."""
    config = {"training": {"epochs": 3}, "seed": 0}
    run_folder.start(tmp_path, config)
    (tmp_path / "last.old").mkdir()
    assert run_folder.resume_checkpoint(tmp_path, config) == tmp_path / "last.old"
    with pytest.raises(ConfigError, match=r"training\.epochs: 3 then, 4 now"):
        run_folder.resume_checkpoint(tmp_path, {"training": {"epochs": 4}, "seed": 0})
    with pytest.raises(ConfigError, match="already holds a run"):
        run_folder.start(tmp_path, config)


def test_config_and_history_read_back_what_was_written(tmp_path):
    """`read_config` / `read_history` return what `start` / `write_history` wrote; a folder without a run is
    a ConfigError and a run without history has no rows."""
    with pytest.raises(ConfigError, match="is not a pdeop training run"):
        run_folder.read_config(tmp_path)
    run_folder.start(tmp_path, {"seed": 3, "model": {"model": "fno"}})
    assert run_folder.read_config(tmp_path) == {"seed": 3, "model": {"model": "fno"}}
    assert run_folder.read_history(tmp_path) == []
    rows = [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.25, "val_l2": 0.3}]
    run_folder.write_history(tmp_path, rows)
    assert run_folder.read_history(tmp_path) == rows
    assert json.loads((tmp_path / run_folder.HISTORY_JSON).read_text())["history"] == rows
    assert (tmp_path / run_folder.HISTORY_CSV).read_text().splitlines()[0] == "epoch,train_loss,val_l2"
