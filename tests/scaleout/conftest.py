"""Fixtures of the scale-out tests: a throwaway PostgreSQL server for the session, and a fresh
database per test. Without the PostgreSQL binaries the tests that need the server skip (with
the reason) on a developer's machine and fail in CI (`CI` set), which installs them with
`.ci/services.sh`."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest
from ci_strict import missing
from scaleout_helpers import PostgresServer, postgres_bin_dir


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on a free loopback port, stopped and deleted after the session."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl) not found: run .ci/services.sh")
    # Not under pytest's tmp dir: the postgres user must be able to reach the folder.
    server = PostgresServer(bin_dir, Path(tempfile.mkdtemp(prefix="umup-pg-", dir="/tmp")))
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The SQLAlchemy URL of a fresh, empty database on the session's server."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
