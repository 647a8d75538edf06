"""The accounting of a run's chunk timeline: busy intervals, their overlap, serial seconds, CPU share.

Hand-made timelines with known answers (no timing), and the timeline a real run returns counted
against the run's chunks and samples.
"""

from __future__ import annotations

import pytest

from pde_data.chunk_timeline import ChunkTiming, account, full_core_seconds
from pde_data.pipeline import generate_dataset, resolve_config

#: worker a busy on [0, 4] and [5, 9], worker b on [1, 6], run from 0 to 10 (seconds)
TIMELINE = [ChunkTiming("a", 2, 0.0, 4.0, 2.0, 0.25), ChunkTiming("b", 3, 1.0, 6.0, 4.0, 0.5),
            ChunkTiming("a", 2, 5.0, 9.0, 3.0, 0.25)]
#: every number below is a sum or ratio of the few exact binary fractions above: exact up to one
#: rounding per operation (a few 1e-16 relative); 1e-12 leaves a wide margin
TOL = 1e-12


def test_account_of_a_hand_made_timeline():
    """Union [0, 9] (9 s), both busy on [1, 4] and [5, 6] (4 s), 13 busy seconds, 9 CPU seconds."""
    got = account(TIMELINE, 0.0, 10.0, workers=2)
    expected = {"wall_s": 10.0, "workers": 2, "chunks": 3, "samples": 7, "busy_s": 13.0, "any_busy_s": 9.0,
                "concurrency": 13 / 9, "overlap": 4 / 9, "utilisation": 13 / 20, "serial_s": 1.0, "setup_s": 0.0,
                "tail_s": 1.0, "client_s": 1.0, "cpu_s": 9.0, "cpu_share": 9 / 13, "cores_used": 0.9}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=TOL, abs=TOL), key
    assert got["busy_by_worker_s"] == {"a": 8.0, "b": 5.0}
    assert got["cpu_by_worker_s"] == {"a": 5.0, "b": 4.0}
    # with a core each: 1 serial second plus the busiest worker's 5 CPU seconds
    assert full_core_seconds(got) == pytest.approx(6.0, rel=TOL)


def test_account_of_back_to_back_chunks_and_a_late_start():
    """One worker, chunks touching end to start: no overlap; the 2 s before the first chunk are setup.
    A second, idle worker halves the utilisation; chunks sticking out of the run are clipped to it."""
    timeline = [ChunkTiming("w", 1, 2.0, 3.0, 1.0), ChunkTiming("w", 1, 3.0, 5.0, 2.0)]
    one = account(timeline, 0.0, 5.0)
    assert (one["workers"], one["any_busy_s"], one["overlap"], one["concurrency"]) == (1, 3.0, 0.0, 1.0)
    assert (one["serial_s"], one["setup_s"], one["tail_s"], one["utilisation"]) == (2.0, 2.0, 0.0, 0.6)
    assert account(timeline, 0.0, 5.0, workers=2)["utilisation"] == pytest.approx(0.3, rel=TOL)
    clipped = account(timeline, 2.5, 4.0)
    assert clipped["any_busy_s"] == pytest.approx(1.5, rel=TOL) and clipped["serial_s"] == pytest.approx(0.0, abs=TOL)


def test_account_of_no_chunks():
    """A run with nothing to compute (a complete file) is all serial time."""
    got = account([], 1.0, 3.0)
    assert (got["chunks"], got["busy_s"], got["serial_s"], got["overlap"], got["cpu_share"]) == (0, 0.0, 2.0, 0.0, 0.0)
    assert full_core_seconds(got) == 2.0


def test_a_run_returns_the_timeline_of_its_chunks(tmp_path):
    """generate_dataset's timing counts the chunks and samples it computed, and a resumed complete
    file none; every busy interval lies inside the run."""
    config = resolve_config("darcy", "fno", overrides=["resolution=17"], samples=5, seed=1)
    result = generate_dataset(config, tmp_path / "d.h5", progress=False, chunk_size=2)
    timing = result["timing"]
    assert (timing["chunks"], timing["samples"], timing["workers"]) == (3, 5, 1)
    assert list(timing["busy_by_worker_s"]) == ["local"]
    assert 0.0 <= timing["any_busy_s"] <= timing["wall_s"]
    assert timing["overlap"] == 0.0 and timing["concurrency"] == pytest.approx(1.0, rel=TOL)
    again = generate_dataset(config, tmp_path / "d.h5", progress=False)["timing"]
    assert (again["chunks"], again["samples"], again["busy_s"]) == (0, 0, 0.0)
