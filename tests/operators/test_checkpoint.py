"""Checkpoints: exact round trips, normalisers, refusal of pickles and of incompatible folders, atomicity."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

import operators
from operators import checkpoint
from pde_data.normalization import UnitGaussianNormalizer
from solvers.errors import ConfigError

MODELS = {
    "fno": {"model": "fno", "in_channels": 2, "out_channels": 1, "n_modes": [6, 6], "width": 8, "n_layers": 2},
    "tfno": {"model": "tfno", "in_channels": 2, "out_channels": 1, "n_modes": [6, 6], "width": 8, "n_layers": 2},
    "cp": {"model": "fno", "in_channels": 2, "out_channels": 1, "n_modes": [6, 6], "width": 8, "n_layers": 2,
           "factorization": "cp", "rank": 0.5, "domain_padding": [0.1]},
    "fno1d": {"model": "fno", "in_channels": 2, "out_channels": 1, "n_modes": [6], "width": 8, "n_layers": 2},
    "complex-tfno": {"model": "tfno", "in_channels": 2, "out_channels": 1, "n_modes": [6, 5], "width": 8,
                     "n_layers": 2, "complex_data": True},
    "deeponet": {"model": "deeponet", "sensor_shape": [16, 16], "in_channels": 2, "branch_width": 16,
                 "trunk_width": 16, "basis": 8},
    "mgno": {"model": "mgno", "in_channels": 2, "width": 4, "n_layers": 2, "levels": 3, "pre_smoothing": [1]},
}


def _input(name: str) -> torch.Tensor:
    if name == "complex-tfno":
        return torch.randn(3, 2, 16, 16, dtype=torch.cfloat)
    return torch.randn(3, 2, 16) if name == "fno1d" else torch.randn(3, 2, 16, 16)


def _small_fno() -> torch.nn.Module:
    return operators.build(MODELS["fno"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_gives_identical_outputs(name, tmp_path):
    """save -> load rebuilds the same config and bit-identical parameters (complex spectral weights
    included, stored as real pairs) and therefore bit-identical outputs, in eval mode."""
    torch.manual_seed(0)
    model = operators.build(MODELS[name])
    operators.save(model, tmp_path / "ckpt")
    loaded = operators.load(tmp_path / "ckpt")
    assert not loaded.training and loaded.model_name == type(model).model_name
    assert loaded.config == model.config
    for (key, ours), (key2, theirs) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert key == key2 and ours.dtype == theirs.dtype and torch.equal(ours, theirs), key
    x = _input(name)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_normalisers_wrap_the_model(tmp_path):
    """With normaliser statistics, the loaded operator computes decode(model(encode(x))) (1e-6) and
    the metadata (grid, dataset fingerprint, extra) comes back unchanged."""
    torch.manual_seed(1)
    model = _small_fno()
    data_in, data_out = torch.randn(10, 2, 16, 16) * 3 + 1, torch.randn(10, 1, 16, 16) * 0.1 - 2
    encoder = UnitGaussianNormalizer.fit(data_in, "pointwise")
    decoder = UnitGaussianNormalizer.fit(data_out, "global")
    grid = {"x": [i / 16 for i in range(16)], "periodic": True}
    operators.save(model, tmp_path / "ckpt", normalizers={"input": encoder, "output": decoder.to_dict()},
                   grid=grid, dataset="sha256:abc", extra={"epoch": 3})
    loaded = operators.load(tmp_path / "ckpt")
    x = data_in[:3]
    with torch.no_grad():
        expected = decoder.decode(model.eval()(encoder.encode(x)))
        torch.testing.assert_close(loaded(x), expected, atol=1e-6, rtol=1e-6)
    assert (loaded.grid, loaded.dataset, loaded.extra) == (grid, "sha256:abc", {"epoch": 3})
    meta = operators.checkpoint_metadata(tmp_path / "ckpt")
    assert meta["model"] == "fno" and meta["config"]["width"] == 8 and meta["normalizers"]["output"]["kind"] == "global"
    operators.save(loaded, tmp_path / "again")  # an Operator keeps its metadata when saved again
    again = operators.load(tmp_path / "again")
    assert again.normalizers == loaded.normalizers and again.grid == grid


class _Payload:
    """Unpickling this object would create the file named in ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_a_pickle_is_refused_and_never_executed(tmp_path):
    """A checkpoint whose weights file is a pickle with a code-running payload (and a config.json
    whose checksum matches it) raises ConfigError, and the payload never runs; so does a folder that
    only has a pickled ``model.pt``."""
    marker = tmp_path / "pwned"
    folder = tmp_path / "evil"
    operators.save(_small_fno(), folder)
    blob = pickle.dumps(_Payload(str(marker)))
    assert not marker.exists()
    (folder / checkpoint.WEIGHTS).write_bytes(blob)
    header = json.loads((folder / checkpoint.CONFIG).read_text())
    header["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / checkpoint.CONFIG).write_text(json.dumps(header))
    with pytest.raises(ConfigError, match="not a valid safetensors file"):
        operators.load(folder)
    assert not marker.exists()
    torch_pickle = tmp_path / "torch_style"
    torch_pickle.mkdir()
    torch.save({"weights": _Payload(str(marker))}, torch_pickle / "model.pt")
    with pytest.raises(ConfigError, match="no config.json"):
        operators.load(torch_pickle)
    assert not marker.exists()


def _edit_header(folder: Path, **changes) -> None:
    path = folder / checkpoint.CONFIG
    header = json.loads(path.read_text())
    header.update(changes)
    path.write_text(json.dumps(header))


@pytest.mark.parametrize("changes,message", [
    ({"pdeop_version": "7.0.0"}, "major versions differ"),
    ({"format_version": 99}, "format version 99"),
    ({"format": "something-else"}, "not a pdeop checkpoint"),
    ({"model": "transformer"}, "unknown model 'transformer'"),
    ({"weights_sha256": "0" * 64}, "does not match the checksum"),
])
def test_incompatible_checkpoints_are_config_errors(tmp_path, changes, message):
    """Another major version, format, model name or a weights file from another save: ConfigError."""
    operators.save(_small_fno(), tmp_path / "ckpt")
    _edit_header(tmp_path / "ckpt", **changes)
    with pytest.raises(ConfigError, match=message):
        operators.load(tmp_path / "ckpt")


def test_config_that_does_not_fit_the_weights_is_named(tmp_path):
    """A config.json edited to another width names the tensors whose shapes disagree."""
    operators.save(_small_fno(), tmp_path / "ckpt")
    header = json.loads((tmp_path / "ckpt" / checkpoint.CONFIG).read_text())
    _edit_header(tmp_path / "ckpt", config={**header["config"], "width": 12})
    with pytest.raises(ConfigError, match=r"wrong shape .*lifting\.layers\.0\.weight"):
        operators.load(tmp_path / "ckpt")
    _edit_header(tmp_path / "ckpt", config={**header["config"], "widht": 8})
    with pytest.raises(ConfigError, match="unknown setting model.'widht'"):
        operators.load(tmp_path / "ckpt")


def test_missing_folder_or_files_are_config_errors(tmp_path):
    """A missing folder, config.json or weights file is reported by name."""
    with pytest.raises(ConfigError, match="does not exist"):
        operators.load(tmp_path / "nowhere")
    operators.save(_small_fno(), tmp_path / "ckpt")
    (tmp_path / "ckpt" / checkpoint.WEIGHTS).unlink()
    with pytest.raises(ConfigError, match="has no weights.safetensors"):
        operators.load(tmp_path / "ckpt")
    (tmp_path / "ckpt" / checkpoint.CONFIG).unlink()
    with pytest.raises(ConfigError, match="has no config.json"):
        operators.load(tmp_path / "ckpt")


def _weights_of(folder: Path) -> bytes:
    return (folder / checkpoint.WEIGHTS).read_bytes()


def test_kill_between_the_two_renames_recovers_the_new_checkpoint(tmp_path):
    """The state a kill leaves between moving the old folder aside and moving the new one in (no
    folder, a complete hidden new one and the old one aside) loads as the new checkpoint; a later save
    cleans the leftovers."""
    torch.manual_seed(2)
    target = tmp_path / "best"
    operators.save(_small_fno(), tmp_path / "new")
    operators.save(_small_fno(), target)
    os.replace(target, tmp_path / ".best.old-1")
    os.replace(tmp_path / "new", tmp_path / ".best.tmp-1")
    expected = _weights_of(tmp_path / ".best.tmp-1")
    loaded = operators.load(target)
    assert _weights_of(target) == expected and loaded.model_name == "fno"
    operators.save(_small_fno(), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_kill_while_writing_keeps_the_previous_checkpoint(tmp_path):
    """A half-written hidden folder (weights but no config.json yet) never replaces the checkpoint."""
    target = tmp_path / "best"
    operators.save(_small_fno(), target)
    before = _weights_of(target)
    partial = tmp_path / ".best.tmp-2"
    partial.mkdir()
    (partial / checkpoint.WEIGHTS).write_bytes(b"half")
    operators.load(target)
    assert _weights_of(target) == before
    target_missing = tmp_path / "other"
    (tmp_path / ".other.tmp-3").mkdir()
    (tmp_path / ".other.tmp-3" / checkpoint.WEIGHTS).write_bytes(b"half")
    with pytest.raises(ConfigError, match="does not exist"):
        operators.load(target_missing)


def test_an_interrupted_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    """An exception (Ctrl-C) between the two renames puts the previous folder back, unchanged."""
    target = tmp_path / "best"
    operators.save(_small_fno(), target)
    before = _weights_of(target)
    real_replace = os.replace
    calls = []

    def interrupted(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        operators.save(_small_fno(), target)
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)
    assert _weights_of(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
