"""Online training: fresh samples generated in background processes, in an order fixed by the config.

The generator is the real Burgers family at a tiny size (a few milliseconds per sample), so the
streamed samples can be checked against the family computed here, and the toy family of
tests/pde_data (exact, and able to fail on request) for the stream's bound and its failures.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from operators.cli import main
from operators.training import online, run_folder
from operators.training.config import run_config_from_mapping
from operators.training.trainer import Trainer
from pde_data.family import get_family
from pde_data.pipeline import generate_dataset, resolve_config
from pde_data.streaming import GeneratorFailed, SampleStream
from solvers.errors import ConfigError
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)
from tests.pde_data import toy_family

RECIPE = {"problem": "burgers", "preset": "fno", "seed": 7,
          "set": {"internal_resolution": 64, "resolution": 32, "T": 0.2, "dt": 1.0e-3}}


def _config(n_train: int = 6, epochs: int = 2, block: int = 4, **data) -> dict:
    """Burgers windows (5 stored times: 3 windows of 1 in, 2 out per sample), generated while training."""
    return {"seed": 0,
            "data": {"path": "unused.h5", "source": "online", "generate": RECIPE, "online": {"block": block},
                     "protocol": "window", "t_in": 1, "t_out": 2, "windows": "all", "n_train": n_train, "n_val": 2,
                     "n_test": 2, **data},
            "model": {"model": "fno", "n_modes": [6], "width": 8, "n_layers": 2},
            "training": {"epochs": epochs, "batch_size": 5, "mode": "teacher-forcing", "step": 1,
                         "optimizer": {"lr": 0.01}}}


def _epochs(config, run_dir: Path, options: online.StreamOptions) -> list[list[torch.Tensor]]:
    """Every batch ``x, y`` of every epoch as the trainer would get them."""
    online.prepare_heldout(config, run_dir, progress=False)
    source = online.load_bundle(config, run_dir, options=options).train
    try:
        epochs = []
        for epoch in range(config.training.epochs):
            source.set_epoch(epoch)
            epochs.append([torch.cat([x, y], dim=1) for x, y, c, items, count in source])
        return epochs
    finally:
        source.close()


def test_the_stream_is_fixed_by_the_config_and_every_sample_is_fresh(tmp_path):
    """The batches do not depend on the number of generator processes or the queue bound, and epoch e
    trains on every window of samples 4 + 6e .. 9 + 6e exactly once (the samples after the 4 held-out
    ones, as the family computes them from (seed, i)), in blocks of 4 and 2 samples."""
    config = run_config_from_mapping(_config())
    one = _epochs(config, tmp_path / "a", online.StreamOptions(workers=1, ahead=1))
    two = _epochs(config, tmp_path / "b", online.StreamOptions(workers=2, ahead=3))
    assert all(torch.equal(a, b) for batches_a, batches_b in zip(one, two) for a, b in zip(batches_a, batches_b))
    resolved = online.resolve_recipe(config.data, online.stream_length(config))
    family = get_family("burgers")(resolved.settings)
    for epoch, batches in enumerate(one):
        samples = list(range(4 + 6 * epoch, 10 + 6 * epoch))
        truth = torch.from_numpy(family.generate(samples, resolved.seed)["u"]).float()  # [6, 5, 32]
        windows = torch.cat(batches)  # [18, 3, 32]: every window of the epoch, in training order
        assert windows.shape[0] == 3 * len(samples)
        used = []
        for window in windows:
            # the closest window of the truth: sample s, start j (float32 copies of the same numbers)
            errors = torch.stack([(truth[:, j:j + 3] - window).abs().amax(dim=(1, 2)) for j in range(3)], 1)
            s, j = divmod(int(errors.argmin()), 3)
            assert float(errors[s, j]) <= 1e-6 * float(truth.abs().max())
            used.append((s, j))
        assert sorted(used) == [(s, j) for s in range(6) for j in range(3)]


@pytest.fixture
def toy(monkeypatch, tmp_path):
    toy_family.install(monkeypatch, tmp_path)
    return lambda **settings: resolve_config("toy", overrides=[f"{k}={v}" for k, v in settings.items()], seed=5)


def test_the_generator_never_runs_more_than_ahead_of_the_consumer(toy):
    """With ahead = 2 the worker is given two tasks and, however long the consumer waits, no third one
    until the consumer takes the first; results come in task order and are the family's own numbers."""
    config = toy()
    pulled = []

    def tasks():
        for k in range(5):
            pulled.append(k)
            yield k, [2 * k, 2 * k + 1]

    family = get_family("toy")(config.settings)
    with SampleStream(config, tasks(), workers=2, ahead=2) as stream:
        assert pulled == [0, 1] and stream.outstanding == 2
        key, indices, arrays = next(stream)  # waits for task 0 (task 1 may be done by now as well)
        assert (key, indices) == (0, [0, 1]) and pulled == [0, 1, 2]
        np.testing.assert_array_equal(arrays["u"], family.generate([0, 1], 5)["u"])
        while 1 not in stream._done or 2 not in stream._done:  # both workers idle: everything given is done
            stream._receive()
        assert pulled == [0, 1, 2] and stream.outstanding == 2
        keys = [key for key, _, _ in stream]
        assert keys == [1, 2, 3, 4] and pulled == [0, 1, 2, 3, 4] and stream.samples == 10


def test_a_failing_family_stops_the_stream_naming_the_samples(toy):
    """A StabilityError in a worker ends the stream with GeneratorFailed naming the task's samples and
    the family's message; the samples before it were delivered."""
    config = toy(unstable_sample=3)
    with SampleStream(config, [(k, [2 * k, 2 * k + 1]) for k in range(4)], workers=1, ahead=2) as stream:
        assert next(stream)[0] == 0
        with pytest.raises(GeneratorFailed, match=r"samples 2\.\.3: StabilityError: sample 3"):
            next(stream)


def _write(path: Path, mapping: dict) -> Path:
    path.write_text(yaml.safe_dump(mapping))
    return path


@pytest.mark.slow
def test_a_killed_generator_stops_training_and_resume_continues_the_stream(tmp_path, monkeypatch, capsys):
    """Killing the generator process (SIGKILL) in epoch 2 stops training with one line naming the signal
    and the samples, after epoch 1's checkpoint; `--resume` restarts the stream at epoch 2's first sample
    and ends with the weights of the uninterrupted run. The uninterrupted run's --keep-samples file is the
    file `pdeop generate` writes for the same recipe and sample count."""
    config_file = _write(tmp_path / "online.yaml", _config(epochs=3))
    keep = tmp_path / "kept.h5"
    args = ["train", str(config_file), "--quiet", "--threads", "1", "--ahead", "1"]
    assert main([*args, "--out", str(tmp_path / "straight"), "--keep-samples", str(keep)]) == 0
    recipe = run_config_from_mapping(_config(epochs=3))
    reference = generate_dataset(online.resolve_recipe(recipe.data, online.stream_length(recipe)),
                                 tmp_path / "generated.h5", progress=False)["path"]
    with h5py.File(keep) as kept, h5py.File(reference) as made:
        assert kept.attrs["complete"] == 1 and kept.attrs["config"] == made.attrs["config"]
        np.testing.assert_array_equal(kept["u"][:], made["u"][:])

    original = online.OnlineSource._load
    killed = []

    def load(self, epoch, b, blocks):
        if epoch == 1 and not killed:
            worker = self.stream._workers[0]
            os.kill(worker.pid, signal.SIGKILL)
            worker.join()
            killed.append(worker.pid)
        return original(self, epoch, b, blocks)

    monkeypatch.setattr(online.OnlineSource, "_load", load)
    run = tmp_path / "crashed"
    assert main([*args, "--out", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert f"generator process {killed[0]} was killed by SIGKILL" in err and "samples" in err
    assert len(run_folder.read_history(run)) == 1
    monkeypatch.setattr(online.OnlineSource, "_load", original)
    assert main([*args, "--out", str(run), "--resume"]) == 0
    straight = load_file(str(tmp_path / "straight" / "last" / "weights.safetensors"))
    resumed = load_file(str(run / "last" / "weights.safetensors"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert (run_folder.read_history(run)[-1]["train_loss"]
            == run_folder.read_history(tmp_path / "straight")[-1]["train_loss"])
    assert main(["evaluate", str(run)]) == 0  # the test samples are the run's held-out file


def test_settings_online_training_cannot_serve_are_refused(tmp_path):
    """Online data needs a generation recipe, and fitted normalisers need validation samples."""
    mapping = _config()
    del mapping["data"]["generate"]
    with pytest.raises(ConfigError, match="data.generate"):
        run_config_from_mapping(mapping)
    config = run_config_from_mapping(_config(n_val=0, normalization="global"))
    with pytest.raises(ConfigError, match="n_val >= 1"):
        Trainer(config, tmp_path / "run", progress=False)


def test_an_online_increment_model_normalises_its_changes_like_the_validation_set(tmp_path):
    """``training.predict: increment`` online: the output normaliser holds the statistics of the one-step
    changes of the held-out validation samples (the set online normalisers are fitted on), exactly as
    :func:`fit_increment_normalizer` computes them from those trajectories."""
    from operators.training.surrogate import fit_increment_normalizer

    mapping = _config()
    mapping["data"]["normalization"] = "global"
    mapping["training"]["predict"] = "increment"
    trainer = Trainer(run_config_from_mapping(mapping), tmp_path / "run", progress=False)
    expected = fit_increment_normalizer(trainer.data.val.trajectories, 1, "global", True)
    got = trainer.surrogate.operator.normalizers["output"]
    assert got == expected.to_dict()  # the same numbers: fitted from the same float32 arrays
