"""Shared fixtures: the one Ray instance of the test session.

`ray_session` starts Ray once (2 CPUs, no dashboard, small object store, loopback); executors
see it already initialised and leave it running. The fakes in `sweep_fakes` are pickled by
value to Ray workers, which cannot import the tests folder.

The test process computes with one torch thread, as every trial does (`run_trial` sets
`train.threads`, 1 by default, and leaves it set): the models the tests build are tiny, where
a second thread only adds synchronisation, and a thread that waits for a busy core (another
process on a 2-core machine) makes each step many times slower. Set once here, the count no
longer depends on whether a test that ran a trial came first.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)


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
