"""Fixtures for the analysis tests."""

from __future__ import annotations

import pytest

from .fabricate import write_run


@pytest.fixture
def run_factory(tmp_path):
    """Call with a trials frame (and write_run kwargs) to get a run directory."""
    counter = iter(range(1000))

    def factory(trials, name=None, **kw):
        return write_run(tmp_path, name or f"run{next(counter)}", trials, **kw)

    return factory
