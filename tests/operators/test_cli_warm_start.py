"""`pdeop generate ... --warm-start RUN`: a trained Darcy run accelerates the solves; bad runs exit 2, no file.

The run is tiny (2 epochs, 17-point grid), and so is its correction network: the checks are that
every stored solution meets rtol on the true residual (recomputed here from the stored fields), that
the file records which samples the neural path produced, and that mismatched runs are refused.
Fewer products than cold with a trained network is measured by benchmarks/neural_krylov.py; the
tests in tests/solvers/test_neural_krylov.py and tests/pde_data/test_warm_start.py check it with
stand-in corrections.
"""

import numpy as np
import pytest
import yaml

from operators.cli import main
from solvers.registry import method_class


@pytest.fixture(scope="module")
def darcy_run(tmp_path_factory):
    """A static FNO trained for two epochs on 24 Darcy samples at 17 points."""
    root = tmp_path_factory.mktemp("warm_start")
    data = root / "darcy.h5"
    assert main(["generate", "darcy", "--samples", "24", "--resolution", "17", "--quiet", "--out", str(data)]) == 0
    config = {"seed": 0,
              "data": {"path": str(data), "protocol": "static", "inputs": ["a"], "outputs": ["u"],
                       "n_train": 20, "n_val": 2, "n_test": 2, "normalization": "pointwise"},
              "model": {"model": "fno", "n_modes": [6, 6], "width": 8, "n_layers": 2, "lifting_ratio": 0,
                        "projection_ratio": 2, "channel_mlp": False},
              "training": {"epochs": 2, "batch_size": 10, "optimizer": {"name": "adam", "lr": 3e-3}}}
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run = root / "run"
    assert main(["train", str(path), "--out", str(run), "--quiet"]) == 0
    return run


def test_warm_started_file_meets_rtol(darcy_run, tmp_path):
    import h5py

    from pde_data.family import get_family
    from pde_data.pipeline import resolve_config

    out = tmp_path / "d.h5"
    assert main(["generate", "darcy", "--resolution", "17", "--samples", "3", "--warm-start", str(darcy_run),
                 "--warm-start-epochs", "3", "--quiet", "--out", str(out)]) == 0
    family = get_family("darcy")(resolve_config("darcy", overrides=["resolution=17"], samples=3).settings)
    with h5py.File(out) as f:
        a, u, codes = f["a"][:], f["u"][:], f["solver"][:]
        stored = f["residual"][:]
    for i in range(3):
        A, b = family.assemble({"a": a[i]})
        residual = np.linalg.norm(b - A @ family.solution_vector({"u": u[i]})) / np.linalg.norm(b)
        assert residual <= 1e-8
        assert residual == pytest.approx(stored[i], rel=1e-6, abs=1e-15)
    # each sample comes from the neural path or, if the tiny network failed it, the verified fallback
    assert set(codes.tolist()) <= {method_class("neural").code, method_class("direct").code}


@pytest.mark.parametrize("args, message", [
    (["poisson", "--resolution", "17"], "trained on 'darcy', not 'poisson'"),
    (["darcy", "--resolution", "21"], "trained at resolution 17"),
])
def test_mismatched_run_exits_2_without_a_file(darcy_run, tmp_path, capsys, args, message):
    out = tmp_path / "x.h5"
    assert main(["generate", *args, "--samples", "2", "--warm-start", str(darcy_run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag, value, message", [("--warm-start-cycle", "both", "invalid choice"),
                                                  ("--warm-start-epochs", "0", "epochs must be an integer >= 1")])
def test_bad_warm_start_setting_exits_2_without_a_file(darcy_run, tmp_path, capsys, flag, value, message):
    out = tmp_path / "x.h5"
    args = ["generate", "darcy", "--resolution", "17", "--samples", "2", "--warm-start", str(darcy_run),
            flag, value, "--out", str(out)]
    try:
        code = main(args)
    except SystemExit as stop:  # argparse refuses a bad choice itself
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_missing_run_folder_exits_2_without_a_file(tmp_path, capsys):
    out = tmp_path / "x.h5"
    assert main(["generate", "darcy", "--resolution", "17", "--samples", "2", "--warm-start",
                 str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert not out.exists()


def test_run_problem_reads_the_file_then_the_generate_recipe(darcy_run, tmp_path):
    """One lookup serves --warm-start and pdeop simulate: the data file's attribute, else data.generate.problem."""
    import dataclasses

    from operators.training.runs import load_run, run_problem
    from solvers.errors import ConfigError

    loaded = load_run(darcy_run)
    assert run_problem(loaded) == "darcy"
    other = tmp_path / "poisson.h5"
    assert main(["generate", "poisson", "--samples", "1", "--resolution", "9", "--quiet", "--out", str(other)]) == 0
    assert run_problem(loaded, other) == "poisson"  # an explicit file wins over the run's own

    def moved(generate):
        data = loaded.config.data.replace(path=str(tmp_path / "gone.h5"), generate=generate)
        return dataclasses.replace(loaded, config=dataclasses.replace(loaded.config, data=data))

    assert run_problem(moved({"problem": "helmholtz"})) == "helmholtz"
    with pytest.raises(ConfigError, match="cannot tell which problem"):
        run_problem(moved(None))
