"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def dask_cluster():
    """One Dask LocalCluster for the whole session (start-up takes seconds): 2 worker processes, 1 thread each.

    Tests reach it as an external cluster (``scheduler=dask_cluster.scheduler_address``); a test may
    kill a worker, whose nanny then starts a fresh one.
    """
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    yield cluster
    cluster.close()


@pytest.fixture
def torch_single_thread():
    """torch on one intra-op thread for the test (small tensors; on a loaded machine extra OpenMP threads
    spin and can slow small ops a hundredfold), restored afterwards."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
