"""Online training with the samples generated on a Dask cluster (``--scheduler``): the session's shared
2-worker LocalCluster (tests/conftest.py), used as an external scheduler, and the tiny Burgers recipe of
test_online.py."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("distributed")

from operators.cli import main  # noqa: E402
from operators.training import online, run_folder  # noqa: E402
from operators.training.config import run_config_from_mapping  # noqa: E402
from pde_data import distributed  # noqa: E402
from pde_data.streaming import DaskSampleStream  # noqa: E402
from tests.operators.test_online import _config, _epochs, _write  # noqa: E402
from tests.operators.tiny_data import one_thread  # noqa: E402,F401  (autouse: one torch thread)


def test_dask_stream_serves_the_process_streams_batches(dask_cluster, tmp_path):
    """Every batch of two epochs generated on the Dask cluster (two workers, queue bound 2) is bit-identical
    to the spawned-process backend's: the same samples from (seed, i), in the order the config fixes."""
    config = run_config_from_mapping(_config())
    processes = _epochs(config, tmp_path / "a", online.StreamOptions(workers=1, ahead=1))
    dask = _epochs(config, tmp_path / "b", online.StreamOptions(ahead=2, scheduler=dask_cluster.scheduler_address))
    assert [len(e) for e in dask] == [len(e) for e in processes]
    assert all(torch.equal(a, b) for batches_a, batches_b in zip(processes, dask) for a, b in zip(batches_a, batches_b))


def test_the_dask_stream_submits_at_most_ahead_tasks(dask_cluster):
    """With ahead = 2 two tasks are submitted, and a third only when the consumer takes the first; the
    results come in task order whichever worker finishes first."""
    config = online.resolve_recipe(run_config_from_mapping(_config()).data, 12)
    pulled = []

    def tasks():
        for k in range(4):
            pulled.append(k)
            yield k, [3 * k, 3 * k + 1, 3 * k + 2]

    with distributed.Cluster(scheduler=dask_cluster.scheduler_address) as cluster:
        with DaskSampleStream(config, tasks(), cluster, ahead=2) as stream:
            assert pulled == [0, 1] and stream.outstanding == 2 and len(stream._futures) == 2
            stream._futures[1].result()  # task 1 done: still nothing more is submitted
            assert pulled == [0, 1] and stream.outstanding == 2
            key, indices, _ = next(stream)
            assert (key, indices) == (0, [0, 1, 2]) and pulled == [0, 1, 2] and stream.outstanding == 2
            assert [key for key, _, _ in stream] == [1, 2, 3] and stream.samples == 12


@pytest.mark.slow
def test_a_failed_dask_task_stops_training_and_resume_continues(dask_cluster, tmp_path, monkeypatch, capsys):
    """A task failing on a Dask worker in epoch 2 stops training with one line naming the samples and the
    cause, after epoch 1's checkpoint; ``--resume`` on the cluster ends with the weights of an uninterrupted
    run whose samples came from spawned processes."""
    config_file = _write(tmp_path / "online.yaml", _config(epochs=3))
    args = ["train", str(config_file), "--quiet", "--threads", "1", "--ahead", "2"]
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0

    real = distributed.compute_chunk

    def failing(config, indices, *rest, real=real):  # travels by value to the workers (defined here)
        if min(indices) >= 10:  # epoch 2's samples: 4 held out + 6 per epoch
            raise RuntimeError("injected failure")
        return real(config, indices, *rest)

    monkeypatch.setattr(distributed, "compute_chunk", failing)
    run = tmp_path / "crashed"
    cluster = ["--scheduler", dask_cluster.scheduler_address]
    assert main([*args, *cluster, "--out", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert "samples 10..13: RuntimeError: injected failure" in err and "--resume" in err, err
    assert len(run_folder.read_history(run)) == 1
    monkeypatch.setattr(distributed, "compute_chunk", real)
    assert main([*args, *cluster, "--out", str(run), "--resume"]) == 0
    straight = load_file(str(tmp_path / "straight" / "last" / "weights.safetensors"))
    resumed = load_file(str(run / "last" / "weights.safetensors"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_scheduler_without_online_and_unreachable_scheduler_are_refused(tmp_path, capsys):
    """``--scheduler`` on a file run, and an address where no scheduler answers, exit 2 with one line."""
    mapping = _config()
    mapping["data"].update(source="file", path=str(tmp_path / "none.h5"))
    config_file = _write(tmp_path / "file.yaml", mapping)
    assert main(["train", str(config_file), "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "r")]) == 2
    assert "add --online" in capsys.readouterr().err
    online_file = _write(tmp_path / "online.yaml", _config())
    assert main(["train", str(online_file), "--quiet", "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1",
                 "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot reach a Dask scheduler at tcp://127.0.0.1:9" in err and err.count("\n") == 0, err
