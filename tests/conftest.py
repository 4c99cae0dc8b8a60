"""Shared fixtures: the one Ray instance of the test session.

`ray_session` starts Ray once (2 CPUs, no dashboard, small object store, loopback); executors
see it already initialised and leave it running. The fakes in `sweep_fakes` are pickled by
value to Ray workers, which cannot import the tests folder.

The test process computes with one torch thread, as every trial does (`run_trial` sets
`train.threads`, 1 by default, and leaves it set): the models the tests build are tiny, where
a second thread only adds synchronisation, and a thread that waits for a busy core (another
process on a 2-core machine) makes each step many times slower. Set once here, the count no
longer depends on whether a test that ran a trial came first.

The suite runs on two pytest-xdist workers (see "Parallel runs" below): each worker is a test
session of its own, and the tests on `ray_session` all run on one of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        return  # the xdist controller runs no test: no torch to import before the workers start
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


# -- Parallel runs (pytest-xdist) ----------------------------------------------------------------
# The suite runs on 2 workers (`-n 2 --dist loadgroup` in pyproject.toml). Each worker is its own
# pytest session: a session fixture (the Ray instance above, the PostgreSQL server of
# tests/scaleout/conftest.py) is built once in each worker that needs it, with its own temp dir
# and free port. Tests that share something costly run on one worker, as one unit of work:
# - every test of a module that uses `ray_session`: one Ray instance for the run, not one per
#   worker;
# - every test of a module with a module-scoped fixture: that fixture is built once.
# Everything else is handed out test by test. The units are chosen here, in the controller,
# from the test ids and the modules' source: xdist's own `xdist_group` marks are not used, as
# pytest-xdist 3.8 cannot attach them to test ids under pytest >= 9.1.


def _module_shares(path: Path) -> tuple[bool, bool]:
    """(uses the session's Ray, has a module-scoped fixture) for a test module."""
    try:
        source = path.read_text()
    except OSError:
        return False, False
    return "ray_session" in source, bool(re.search(r"scope\s*=\s*[\"']module[\"']", source))


def work_unit(nodeid: str, rootdir: Path, cache: dict[str, tuple[bool, bool]]) -> str:
    """The unit of work (run on one worker) of a test: `ray_session`, its module's path, or
    the test's own id."""
    module = nodeid.split("::", 1)[0]
    if not module.endswith(".py") or not module.startswith("tests/"):
        return nodeid  # a doctest of the package
    if module not in cache:
        cache[module] = _module_shares(rootdir / module)
    uses_ray, module_fixture = cache[module]
    if uses_ray:
        return "ray_session"
    return module if module_fixture else nodeid


@pytest.hookimpl(optionalhook=True)  # an xdist hook: no error when xdist is not installed
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadgroup` with the work units of `work_unit` (and `xdist_group` marks, should
    xdist attach them)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    rootdir = Path(config.rootpath)
    cache: dict[str, tuple[bool, bool]] = {}

    class SharedFixtureScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):
                return super()._split_scope(nodeid)
            return work_unit(nodeid, rootdir, cache)

    return SharedFixtureScheduling(config, log)
