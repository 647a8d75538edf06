"""Damaged, crafted and foreign checkpoints and run files: always one ConfigError (exit 2), never a traceback,
never an allocation the weights file does not justify.

Properties are fuzzed with hypothesis (derandomised, few examples each: every example loads a checkpoint
or runs a command).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save as safetensors_bytes

import operators
from operators import checkpoint
from operators.cli import main
from operators.training.runs import load_run
from solvers.errors import ConfigError
from tests.operators import multiplier_model, tiny_data  # noqa: F401  (registers test-multiplier)
from tests.operators.fuzzing import HOSTILE_ARGS, HOSTILE_JSON, fuzz
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

SMALL_FNO = {"model": "fno", "in_channels": 2, "out_channels": 1, "n_modes": [6, 6], "width": 8, "n_layers": 2}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A small FNO checkpoint with normalisers (copy it before changing it)."""
    from pde_data.normalization import UnitGaussianNormalizer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt") / "fno"
    stats = {"input": UnitGaussianNormalizer(torch.zeros(2, 1, 1), torch.ones(2, 1, 1), kind="global"),
             "output": UnitGaussianNormalizer(torch.zeros(1, 1, 1), torch.ones(1, 1, 1), kind="global")}
    operators.save(operators.build(SMALL_FNO), folder, normalizers=stats, grid={"shape": [16, 16]})
    return folder


def _copy(folder: Path, where: Path) -> Path:
    target = where / "ckpt"
    shutil.copytree(folder, target)
    return target


def _edit(folder: Path, change) -> None:
    path = folder / checkpoint.CONFIG
    header = json.loads(path.read_text())
    change(header)
    path.write_text(json.dumps(header))


def _loads_or_refuses(folder: Path) -> None:
    """The property: loading either works or raises ConfigError (a bug would raise anything else)."""
    try:
        operators.load(folder)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)


_FIELDS = ["format_version", "pdeop_version", "model", "config", "normalizers", "complex_tensors",
           "weights_sha256", "grid", "extra", "config.width", "config.n_modes", "config.n_layers",
           "config.in_channels", "config.factorization", "normalizers.input", "normalizers.input.mean",
           "normalizers.input.std", "normalizers.input.eps", "normalizers.input.shape", "normalizers.output.kind"]


@fuzz(60)
@given(field=st.sampled_from(_FIELDS), value=HOSTILE_JSON, delete=st.booleans())
def test_any_field_of_config_json_gives_a_model_or_a_config_error(saved, field, value, delete):
    """Each field of config.json replaced by a hostile value (wrong type, huge or negative number, deep
    nesting, NaN text) or deleted: load returns a model or raises one ConfigError."""
    with tempfile.TemporaryDirectory() as where:
        folder = _copy(saved, Path(where))

        def change(header):
            *parents, last = field.split(".")
            node = header
            for key in parents:
                node = node[key]
            if delete:
                node.pop(last, None)
            else:
                node[last] = value

        _edit(folder, change)
        _loads_or_refuses(folder)


@fuzz(40)
@given(target=st.sampled_from([checkpoint.WEIGHTS, checkpoint.CONFIG]), data=st.data())
def test_truncated_or_bit_flipped_files_are_refused(saved, target, data):
    """A weights file or config.json cut at any length or with any one bit flipped is refused with a
    ConfigError (the checksum, the header or the JSON catches it); a flip that leaves valid JSON with the
    same meaning may load."""
    with tempfile.TemporaryDirectory() as where:
        folder = _copy(saved, Path(where))
        path = folder / target
        blob = bytearray(path.read_bytes())
        if data.draw(st.booleans(), label="truncate"):
            blob = blob[:data.draw(st.integers(0, len(blob) - 1), label="length")]
        else:
            bit = data.draw(st.integers(0, 8 * len(blob) - 1), label="bit")
            blob[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(blob))
        if target == checkpoint.WEIGHTS:
            with pytest.raises(ConfigError):
                operators.load(folder)
        else:
            _loads_or_refuses(folder)


def test_a_config_claiming_a_huge_model_is_refused_before_building_it(saved, tmp_path, monkeypatch):
    """config.json edited to width = 10**6 (about 56e12 parameters, 400 TiB) over the few-KB weights is
    refused by the header comparison on the meta device, naming the parameter counts; the real model is never built."""
    folder = _copy(saved, tmp_path)
    _edit(folder, lambda h: h["config"].update(width=10**6))
    monkeypatch.setattr(checkpoint, "build", lambda *a, **k: pytest.fail("the model was built before the check"))
    with pytest.raises(ConfigError, match=r"describes a fno with 56,000,022,000,001 parameters .* "
                                          r"holds 6,833 values; they do not belong"):
        operators.load(folder)
    _edit(folder, lambda h: h["config"].update(width=8, n_layers=10**7))
    with pytest.raises(ConfigError, match="impossibly large model"):
        operators.load(folder)


def test_a_dtype_mismatch_is_named(saved, tmp_path):
    """Weights stored as float64 where the config builds float32 (checksum updated, so only the layout
    differs) are refused naming the tensor and both dtypes."""
    folder = _copy(saved, tmp_path)
    from safetensors.torch import load_file

    tensors = {k: v.double() for k, v in load_file(str(folder / checkpoint.WEIGHTS)).items()}
    blob = safetensors_bytes(tensors)
    (folder / checkpoint.WEIGHTS).write_bytes(blob)
    _edit(folder, lambda h: h.update(weights_sha256=hashlib.sha256(blob).hexdigest()))
    with pytest.raises(ConfigError, match=r"wrong dtype .* is F64 \(the config needs F32\)"):
        operators.load(folder)


@pytest.mark.parametrize("change, message", [
    (lambda n: n["input"].update(mean=[[[float("nan")]], [[0.0]]]), "non-finite"),
    (lambda n: n["input"].update(std=[[[-1.0]], [[1.0]]]), "must be >= 0"),
    (lambda n: n["output"].update(mean=[[[0.0]]] * 3, std=[[[1.0]]] * 3, shape=[3, 1, 1]), "statistics for 3 channels"),
    (lambda n: n["input"].update(shape=[5, 1, 1]), "recorded shape"),
])
def test_normaliser_statistics_are_checked(saved, tmp_path, change, message):
    """Normaliser statistics that are NaN, negative, of another channel count or of another shape than
    recorded are refused (written as plain JSON, NaN here because config.json was edited by hand)."""
    folder = _copy(saved, tmp_path)
    path = folder / checkpoint.CONFIG
    header = json.loads(path.read_text())
    change(header["normalizers"])
    path.write_text(json.dumps(header).replace("NaN", "1e999"))  # NaN as JSON text is refused earlier
    with pytest.raises(ConfigError, match=message if "non-finite" not in message else "beyond the float range"):
        operators.load(folder)


def test_save_never_replaces_a_folder_that_is_not_a_checkpoint(tmp_path, dead_pid):
    """operators.save into a folder holding the user's files is refused and changes nothing (it used to
    delete the folder); an empty folder is used. A dead writer's leftover holding only checkpoint files
    is cleaned; one holding anything else is kept."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match=r"is not a pdeop checkpoint \(it holds 1 entry: thesis.tex\)"):
        operators.save(operators.build(SMALL_FNO), mine)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    (tmp_path / "empty").mkdir()
    operators.save(operators.build(SMALL_FNO), tmp_path / "empty")
    ours, theirs = tmp_path / f".ckpt.tmp-{dead_pid}-aa", tmp_path / f".ckpt.old-{dead_pid}-bb"
    for folder, extra in ((ours, checkpoint.WEIGHTS), (theirs, "notes.txt")):
        folder.mkdir()
        (folder / extra).write_text("x")
    operators.save(operators.build(SMALL_FNO), tmp_path / "ckpt")
    assert not ours.exists() and (theirs / "notes.txt").read_text() == "x"


def test_every_registered_model_builds_on_the_meta_device_as_for_real():
    """The load-time header check rests on registry.layout: for every registered model (a new one must add
    an example here), the meta-device build gives exactly the state-dict names, shapes and dtypes of a
    real build."""
    from operators.registry import build, layout, model_names

    examples = {
        "fno": SMALL_FNO, "tfno": {**SMALL_FNO, "model": "tfno"},
        "deeponet": {"model": "deeponet", "sensor_shape": [8, 8], "in_channels": 2, "branch_width": 8,
                     "trunk_width": 8, "basis": 4},
        "mgno": {"model": "mgno", "in_channels": 2, "width": 4, "n_layers": 2, "levels": 3, "pre_smoothing": [1]},
        "kan-fno": {"model": "kan-fno", "in_channels": 2, "out_channels": 1, "n_modes": [4, 4], "width": 8},
        "kan-deeponet": {"model": "kan-deeponet", "sensor_shape": [8, 8], "in_channels": 2},
        "pinn": {"model": "pinn", "in_dim": 2, "out_dim": 1, "lower": [0, 0], "upper": [1, 1]},
        "lpinn": {"model": "lpinn", "lower": [0, 0], "upper": [1, 1]},
        "test-multiplier": {"model": "test-multiplier", "in_channels": 1, "out_channels": 1},
        "unet": {"model": "unet", "in_channels": 3, "out_channels": 1, "width": 8, "channel_multipliers": [1, 2],
                 "norm_groups": 2, "conditioning": 1},
        "resnet": {"model": "resnet", "in_channels": 3, "out_channels": 1, "width": 6, "n_blocks": 2,
                   "norm_groups": 2, "conditioning": 1},
        "mg_tfno": {**SMALL_FNO, "model": "mg_tfno", "levels": 1},
    }
    assert set(model_names()) <= set(examples), "add an example config of the new model"
    # complex-data variants: complex spectral weights and the real/imaginary parameter pairs
    variants = [(name, {**examples[name], "complex_data": True}) for name in ("fno", "tfno", "kan-fno")]
    for name, config in [(name, examples[name]) for name in model_names()] + variants:
        real = build(dict(config)).state_dict()
        meta = layout(dict(config))
        assert meta.tensors == {k: (tuple(v.shape), v.dtype) for k, v in real.items()}, name
        assert meta.elements == sum(v.numel() for v in real.values())


# ---------------------------------------------------------------------------- trainer run files
def _config(data: Path) -> dict:
    return {"seed": 0,
            "data": {"path": str(data), "protocol": "window", "t_in": 1, "t_out": 2, "windows": "all",
                     "n_train": 8, "n_val": 0, "n_test": 2, "periodic": True},
            "model": {"model": "test-multiplier", "modes": 6},
            "training": {"epochs": 1, "batch_size": 8, "mode": "teacher-forcing", "step": 1}}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A one-epoch run of the multiplier on tiny heat data (copy it before changing it)."""
    import yaml

    where = tmp_path_factory.mktemp("run")
    data = tiny_data.heat(where / "heat.h5", n_samples=10, n=16, steps=3, nu=0.005, dt=0.5)
    (where / "m.yaml").write_text(yaml.safe_dump(_config(data)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    assert main(["train", str(where / "m.yaml"), "--out", str(where / "run"), "--quiet"]) == 0
    torch.set_num_threads(threads)
    return where / "run"


_META = ["extra.surrogate.history", "extra.surrogate.step", "extra.protocol.t_in", "extra.protocol.variable",
         "extra.protocol.conditioning", "extra.protocol.subsample", "extra.protocol.periodic", "grid.shape",
         "grid.dims", "grid.periodic", "extra.surrogate", "extra.protocol", "grid", "extra.run_config.seed"]


@fuzz(40)
@given(field=st.sampled_from(_META), value=HOSTILE_JSON)
def test_hostile_trainer_metadata_gives_a_run_or_a_config_error(run, field, value):
    """The trainer's checkpoint metadata (history, step, protocol, grid shape, the recorded config) set to
    hostile values: load_run returns a consistent run or raises one ConfigError."""
    with tempfile.TemporaryDirectory() as where:
        folder = Path(where) / "run"
        shutil.copytree(run, folder)

        def change(header):
            *parents, last = field.split(".")
            node = header
            for key in parents:
                node = node[key]
            node[last] = value

        _edit(folder / "best", change)
        try:
            loaded = load_run(folder)
        except ConfigError as exc:
            assert "\n" not in str(exc)
        else:
            assert loaded.surrogate.history == 1 and tuple(loaded.metadata["grid"]["shape"]) == (16,)


_RUN_FILES = ["run_config.json", "training.json", "last/training_state.json", "metrics.json", "best/config.json"]


@fuzz(30)
@given(name=st.sampled_from(_RUN_FILES), value=HOSTILE_JSON,
       command=st.sampled_from(["evaluate", "plot", "export", "resume"]), raw=st.sampled_from(
           [None, "", "{", "[" * 5000 + "]" * 5000, '{"a": NaN}', "1e999", "9" * 5000, "\xff"]))
def test_hostile_run_files_end_in_one_line_and_exit_2(run, name, value, command, raw, capsys):
    """run_config.json, training.json, the training state, metrics.json or a checkpoint's config.json holding
    hostile JSON (or invalid text: deep nesting, NaN, huge numbers, bad bytes): evaluate / plot / export /
    train --resume exit 0 or 2 with one line, never a traceback."""
    import yaml

    with tempfile.TemporaryDirectory() as where:
        folder = Path(where) / "run"
        shutil.copytree(run, folder)
        path = folder / name
        content = {"history": value} if name == "training.json" else value
        path.write_text(raw if raw is not None else json.dumps(content))
        config = Path(where) / "m.yaml"
        config.write_text(yaml.safe_dump(_config(run.parent / "heat.h5")))
        argv = {"evaluate": ["evaluate", str(folder), "--out", str(Path(where) / "m.json")],
                "plot": ["plot", str(folder), "--samples", "0"],
                "export": ["export", str(folder), "--format", "torchscript", "--out", str(Path(where) / "m.pt")],
                "resume": ["train", str(config), "--out", str(folder), "--resume", "--quiet"]}[command]
        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert code in (0, 2) and "Traceback" not in err
        assert code == 0 or err.count("\n") == 0
        assert not [p for p in Path(where).rglob(".*") if ".tmp-" in p.name]


@fuzz(40)
@given(flags=st.lists(st.tuples(st.sampled_from(["--samples", "--horizon", "--threads", "--checkpoint", "--data",
                                                 "--device"]), HOSTILE_ARGS), max_size=3),
       out=st.sampled_from([None, "new.json", "existing.json", ".", "existing.json/x", "deep/er/m.json"]),
       overwrite=st.booleans())
def test_fuzzed_evaluate_arguments_exit_0_or_2_and_never_clobber(run, flags, out, overwrite, capsys):
    """`pdeop evaluate` with hostile flag values and output paths: exit 0 or 2 (argparse errors included),
    never a traceback; an existing file changes only with --overwrite; no temporary file remains."""
    with tempfile.TemporaryDirectory() as where:
        where = Path(where)
        (where / "existing.json").write_text("mine")
        argv = ["evaluate", str(run)] + [item for flag in flags for item in flag]
        if out is not None:
            argv += ["--out", str(where / out)]
        code = _exit_0_or_2(argv + ["--overwrite"] * overwrite, capsys)
        if not (code == 0 and out == "existing.json" and overwrite):
            assert (where / "existing.json").read_text() == "mine"
        assert not [p for p in where.rglob(".*") if ".tmp-" in p.name]
        assert not [p for p in run.rglob(".*") if ".tmp-" in p.name]


def _exit_0_or_2(argv: list[str], capsys) -> int:
    """Run ``pdeop ARGV`` in-process; the exit code (argparse's included) must be 0 or 2, with no traceback."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err, err
    return code


_SET_KEYS = ["training.epochs", "training.batch_size", "training.optimizer.lr", "training.optimizer.betas",
             "training.grad_clip", "training.step", "training.mode", "training.scheduler.name", "model.modes",
             "model.init_scale", "data.n_train", "data.t_in", "data.subsample", "data.normalization", "seed",
             "evaluation.horizon", "data.path"]
_SET_VALUES = st.one_of(HOSTILE_ARGS, st.sampled_from(["[1, 2]", "{a: 1}", "null", "true", "1e38", "-0.0", "4",
                                                      "[[[[[[[[1]]]]]]]]", "!!python/object:os.system x", "*a"]))


@fuzz(30)
@given(sets=st.lists(st.tuples(st.sampled_from(_SET_KEYS), _SET_VALUES), min_size=1, max_size=3))
def test_fuzzed_set_values_exit_0_or_2_and_leave_a_run_or_nothing(run, sets, capsys):
    """`pdeop train --set KEY=VALUE` with hostile values for real settings: exit 0 or 2, never a traceback;
    a refused config leaves no folder, a run that stopped leaves a resumable run folder, and no temporary
    file remains."""
    import yaml

    with tempfile.TemporaryDirectory() as where:
        where = Path(where)
        config = where / "m.yaml"
        config.write_text(yaml.safe_dump(_config(run.parent / "heat.h5")))
        out = where / "out"
        argv = ["train", str(config), "--out", str(out), "--quiet"]
        for key, value in sets:
            argv += ["--set", f"{key}={value}"]
        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert code in (0, 2) and "Traceback" not in err, err
        assert code == 0 or err.count("\n") == 0
        assert not out.exists() or (out / "run_config.json").is_file()
        assert not [p for p in where.rglob(".*") if ".tmp-" in p.name or ".partial-" in p.name]


@fuzz(12)
@given(fmt=st.sampled_from(["torchscript", "torch-export", "onnx", ""]),
       checkpoint_name=st.sampled_from(["best", "last", "worst"]),
       out=st.sampled_from(["m.pt", "existing.pt", ".", "existing.pt/x.pt", "deep/m.pt2", "x" * 300]),
       overwrite=st.booleans())
def test_fuzzed_export_arguments_exit_0_or_2_and_never_clobber(run, fmt, checkpoint_name, out, overwrite, capsys):
    """`pdeop export` with odd formats, checkpoints and output paths (a name too long for the file system
    included): exit 0 or 2, never a traceback; an existing file changes only with --overwrite."""
    with tempfile.TemporaryDirectory() as where:
        where = Path(where)
        (where / "existing.pt").write_text("mine")
        argv = ["export", str(run), "--format", fmt, "--checkpoint", checkpoint_name, "--out", str(where / out)]
        code = _exit_0_or_2(argv + ["--overwrite"] * overwrite, capsys)
        if not (code == 0 and out == "existing.pt"):
            assert (where / "existing.pt").read_text() == "mine"
        assert not [p for p in where.rglob(".*") if ".tmp-" in p.name]
