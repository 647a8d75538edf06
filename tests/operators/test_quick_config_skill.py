"""The shipped quick Navier-Stokes protocol trains a model that beats persistence (issue 20).

The demo's config (``configs/train/fno_ns_quick.yaml``) is trained as shipped except for its size: a
small set at 16^2 (32^2 internal, dt 1e-2) instead of 72 samples at 32^2, fewer samples and epochs, so
that the check fits the CI budget. Persistence is scored by the same evaluation code on the same test
items.
"""

from __future__ import annotations

import pytest

from operators.training.baselines import time_baselines
from operators.training.config import load_run_config, run_config_from_mapping
from operators.training.evaluation import evaluate_with_baselines
from operators.training.trainer import Trainer
from pde_data.config import configs_root
from pde_data.pipeline import generate_dataset, resolve_config
from tests.operators.tiny_data import one_thread  # noqa: F401  (autouse: one torch thread)

#: the demo's data recipe, shrunk (same viscosity, forcing, record times; coarser grid and step)
SMALL_NS = ["internal_resolution=32", "resolution=16", "dt=1e-2", "T=20"]
SIZES = ["data.n_train=24", "data.n_val=0", "data.n_test=8", "training.epochs=20"]


@pytest.fixture(scope="module")
def small_ns(tmp_path_factory):
    path = tmp_path_factory.mktemp("ns") / "ns16.h5"
    generate_dataset(resolve_config("navier-stokes", "fno", overrides=SMALL_NS, samples=32), path, progress=False)
    return path


@pytest.mark.slow
def test_quick_ns_config_beats_persistence_at_the_first_step(small_ns, tmp_path):
    """Skill against persistence at step 1 (1 - error_model / error_persistence) goes from negative at
    initialisation to clearly positive after training, and stays positive at every rollout step.

    Margin: with these sizes, seeds 0-5 gave step-1 skill 0.51-0.60 (mean 0.55, standard deviation 0.03;
    persistence error 0.074, model 0.030-0.036) and initial skill -0.12 (seed 0) to -1.97; the bound 0.3
    is seven standard deviations below the lowest seed, room for other seeds and BLAS/FFT rounding. The
    state-predicting protocol the demo used before scores far below 0 on this data (-5 after 30
    epochs at n_train 30), so the check separates the two.
    """
    mapping = load_run_config(configs_root() / "train" / "fno_ns_quick.yaml", [f"data.path={small_ns}", *SIZES])
    trainer = Trainer(run_config_from_mapping(mapping), tmp_path / "run", progress=False)
    test = trainer.data.test
    baselines, unavailable = time_baselines(test)
    score = lambda: evaluate_with_baselines(trainer.surrogate, test, baselines, unavailable,  # noqa: E731
                                            periodic=True)["skill"]["persistence"]["rollout"]["rel_l2"]
    before = score()
    trainer.fit()
    after = score()
    assert before[0] < 0, before
    assert after[0] > 0.3, after
    assert min(after) > 0, after
