"""The run-folder files shared by the operator trainer and the physics-informed trainer."""

from __future__ import annotations

import json

import pytest

from operators.training import run_folder
from solvers.errors import ConfigError


def _writer(log):
    def save_model(folder, name):
        folder.mkdir()
        (folder / "weights.safetensors").write_text(f"{name} {len(log)}")
        (folder / "config.json").write_text("{}")
        log.append(name)
    return save_model


def _save_state(folder):
    for name in ("training_state.safetensors", "training_state.json"):
        (folder / name).write_text("state")


def test_best_is_replaced_only_when_improved_and_holds_no_training_state(tmp_path):
    """`save_checkpoints` always replaces last/ (model + state) and replaces best/ (model only) exactly when
    the score improved; no staging or set-aside folder is left behind."""
    log: list[str] = []
    run_folder.save_checkpoints(tmp_path, _writer(log), _save_state, improved=True)
    run_folder.save_checkpoints(tmp_path, _writer(log), _save_state, improved=False)
    assert log == ["last", "best", "last"]
    last, best = tmp_path / "last", tmp_path / "best"
    assert (last / "weights.safetensors").read_text() == "last 2" and (last / "training_state.json").is_file()
    assert (best / "weights.safetensors").read_text() == "best 1" and not (best / "training_state.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "last"]


def test_a_replaced_folder_holding_foreign_files_is_kept_aside_untouched(tmp_path):
    """A `last/` that somebody filled with their own file is moved aside by the swap but not deleted: only
    folders holding nothing but checkpoint files are removed."""
    log: list[str] = []
    run_folder.save_checkpoints(tmp_path, _writer(log), _save_state, improved=False)
    (tmp_path / "last" / "notes.txt").write_text("mine")
    run_folder.save_checkpoints(tmp_path, _writer(log), _save_state, improved=False)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(".last.old-")]
    assert len(kept) == 1 and (kept[0] / "notes.txt").read_text() == "mine"
    assert (kept[0] / "weights.safetensors").read_text() == "last 0"


def test_resume_finds_the_checkpoint_a_kill_left_aside(tmp_path, dead_pid):
    """A kill between the two renames of `swap_in` leaves no last/ but its previous copy aside (named after
    the dead writer); claiming the folder puts it back, and a changed config is refused naming the first
    differing setting."""
    config = {"training": {"epochs": 3}, "seed": 0}
    run_folder.start(tmp_path, config)
    aside = tmp_path / f".last.old-{dead_pid}-abc123"
    _writer([])(aside, "last")
    _save_state(aside)
    with run_folder.claim(tmp_path, resume=True):
        assert run_folder.resume_checkpoint(tmp_path, config) == tmp_path / "last"
    assert (tmp_path / "last" / "weights.safetensors").read_text() == "last 0" and not aside.exists()
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
