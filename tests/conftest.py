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
