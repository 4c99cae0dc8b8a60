"""Shared fixtures: the one Ray instance of the test session.

`ray_session` starts Ray once (2 CPUs, no dashboard, small object store, loopback); executors
see it already initialised and leave it running. The fakes in `sweep_fakes` are pickled by
value to Ray workers, which cannot import the tests folder.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray for the whole session (num_cpus=2, quiet, cleaned up at the end)."""
    import sweep_fakes
    from ray import cloudpickle

    from umup_sweep.execute._ray_cluster import RayConnection

    cloudpickle.register_pickle_by_value(sweep_fakes)
    conn = RayConnection(num_cpus=2)
    yield conn
    conn.close()
