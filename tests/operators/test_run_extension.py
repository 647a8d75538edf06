"""Runs that grow: ``--resume`` with a larger ``training.epochs`` extends a finished run (schedule rules of
:mod:`operators.training.schedules`), anything else changed is still refused; early stopping on val_l2."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from operators.cli import main
from operators.training.config import EarlyStoppingConfig, run_config_from_mapping
from operators.training.schedules import extended_lr_factor, lr_factor, stalled_epochs
from operators.training.trainer import Trainer
from solvers.errors import ConfigError
from tests.operators import multiplier_model, tiny_data  # noqa: F401  (registers test-multiplier)
from tests.operators.test_training import heat1d, heat_config  # noqa: F401  (heat1d: the fixture)
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)


def _config(path, **training):
    """The trainer tests' heat run, 2 epochs, a step schedule halving the rate every epoch unless given."""
    return heat_config(path, **{"epochs": 2, "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5}, **training})


def test_extending_a_step_schedule_equals_the_longer_run(heat1d, tmp_path):
    """A finished 2-epoch run with a step schedule (its rate does not depend on the length), extended to 4
    epochs, is bit-identical to a run planned with 4 epochs: same losses, rates and weights."""
    Trainer(_config(heat1d), tmp_path / "grown", progress=False).fit()
    grown = Trainer(_config(heat1d, epochs=4), tmp_path / "grown", progress=False)
    result = grown.fit(resume=True)
    straight = Trainer(_config(heat1d, epochs=4), tmp_path / "straight", progress=False)
    reference = straight.fit()
    assert result.finished and result.epochs_done == 4
    assert [(r["train_loss"], r["lr"]) for r in result.history] == [(r["train_loss"], r["lr"]) for r in reference.history]
    assert torch.equal(grown.surrogate.model.weight, straight.surrogate.model.weight)
    recorded = json.loads((tmp_path / "grown" / "run_config.json").read_text())
    assert recorded["training"]["epochs"] == 4


def test_extending_a_cosine_schedule_restarts_it_over_the_added_epochs(heat1d, tmp_path):
    """Cosine depends on the run's length: the first 2 epochs keep the 2-epoch run's rates and the 3 added
    epochs get those of a fresh 3-epoch cosine run (warm restart), exactly; the formula agrees."""
    cosine = {"scheduler": {"name": "cosine", "min_lr_ratio": 0.1}}
    first = Trainer(_config(heat1d, **cosine), tmp_path / "run", progress=False).fit()
    grown = Trainer(_config(heat1d, epochs=5, **cosine), tmp_path / "run", progress=False).fit(resume=True)
    fresh = Trainer(_config(heat1d, epochs=3, **cosine), tmp_path / "fresh", progress=False).fit()
    rates = [r["lr"] for r in grown.history]
    assert rates[:2] == [r["lr"] for r in first.history]
    assert rates[2:] == [r["lr"] for r in fresh.history]
    schedule = _config(heat1d, **cosine).training.scheduler
    steps = len(Trainer(_config(heat1d, **cosine), tmp_path / "probe", progress=False).data.train) // 8
    for step in range(5 * steps):
        start = 0 if step < 2 * steps else 2 * steps
        expected = lr_factor(schedule, step - start, steps, 2 if step < 2 * steps else 3)
        assert extended_lr_factor(schedule, step, steps, [2, 5]) == expected


def test_other_changes_and_shrinking_are_still_refused(heat1d, tmp_path, capsys):
    """After extending to 4 epochs, a resume that also changes the learning rate, or asks for fewer epochs
    than the run has, is a one-line exit-2 error naming the setting; the run folder is left as it was."""
    run = tmp_path / "run"
    mapping = {"seed": 3, "data": {"path": str(heat1d), "protocol": "window", "t_in": 1, "t_out": 2,
                                   "n_train": 16, "n_val": 4, "n_test": 4},
               "model": {"model": "test-multiplier", "modes": 6},
               "training": {"epochs": 2, "batch_size": 8, "optimizer": {"lr": 0.05}}}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(mapping))
    base = ["train", str(config), "--out", str(run), "--quiet"]
    assert main(base) == 0
    assert main([*base, "--resume", "--set", "training.epochs=4"]) == 0
    assert "after 4/4 epochs" in capsys.readouterr().out
    assert main([*base, "--resume", "--set", "training.epochs=5", "--set", "training.optimizer.lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "training.optimizer.lr: 0.05 then, 0.1 now" in err and len(err.strip().splitlines()) == 1
    assert main([*base, "--resume", "--set", "training.epochs=3"]) == 2
    assert "training.epochs can only grow (the run has 4, got 3)" in capsys.readouterr().err
    assert json.loads((run / "run_config.json").read_text())["training"]["epochs"] == 4
    assert main([*base, "--resume", "--set", "training.epochs=4"]) == 0  # nothing left to do


@pytest.mark.parametrize(("scores", "patience", "min_delta", "extended_at", "stops"), [
    ([1.0, 0.9, 0.8], 2, 0.0, 0, False),        # improving
    ([1.0, 0.9, 0.95, 0.91], 2, 0.0, 0, True),  # the last 2 epochs never beat 0.9
    ([1.0, 0.9, 0.95, 0.89], 2, 0.0, 0, False),  # 0.89 < 0.9
    ([1.0, 0.9, 0.95, 0.89], 2, 0.05, 0, True),  # 0.89 is not below 0.9 * 0.95 = 0.855
    ([1.0, 1.0], 2, 0.0, 0, False),             # nothing before the window: no reference yet
    ([1.0, 0.9, 0.95, 0.91], 2, 0.0, 3, False),  # only 1 epoch since the extension
])
def test_stalled_epochs_follows_its_definition(scores, patience, min_delta, extended_at, stops):
    """Early stopping fires exactly when none of the last `patience` scores beats best-before * (1 - min_delta)."""
    progress = {"history": [{"val_l2": s} for s in scores], "extended_at": extended_at}
    settings = EarlyStoppingConfig(patience=patience, min_delta=min_delta)
    assert (stalled_epochs(progress, settings) == patience) is stops
    assert stalled_epochs(progress, None) is None


def test_early_stopping_ends_a_stalled_run_and_an_extension_trains_on(heat1d, tmp_path):
    """With a learning rate of 1e-12 Adam cannot move float32 weights, so val_l2 is constant: patience 2
    stops the 10-epoch run after epoch 3 (the first with a reference before the window) as finished; a
    plain resume does nothing more; an extension to 12 trains exactly `patience` more epochs before
    stopping again. Early stopping without a validation split is a ConfigError."""
    stall = {"epochs": 10, "optimizer": {"lr": 1e-12}, "early_stopping": {"patience": 2}}
    result = Trainer(_config(heat1d, **stall), tmp_path / "run", progress=False).fit()
    assert result.finished and result.epochs_done == 3
    assert len({r["val_l2"] for r in result.history}) == 1
    again = Trainer(_config(heat1d, **stall), tmp_path / "run", progress=False).fit(resume=True)
    assert again.epochs_done == 3
    grown = Trainer(_config(heat1d, **{**stall, "epochs": 12}), tmp_path / "run", progress=False).fit(resume=True)
    assert grown.finished and grown.epochs_done == 5
    with pytest.raises(ConfigError, match="set data.n_val >= 1"):
        run_config_from_mapping({"data": {"path": "x.h5", "n_val": 0}, "model": {"model": "fno"},
                                 "training": {"early_stopping": {"patience": 3}}})
