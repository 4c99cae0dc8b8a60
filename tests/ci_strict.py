"""Oracles and services the tests need: skipped where they are missing on a developer's
machine, a failure in CI.

CI is detected from the `CI` environment variable (set by every CI service): any non-empty
value other than `false`/`0` (any case). There a missing reference library or database server
would silently turn the strongest tests into skips, so `missing()` fails the test instead,
with the same message plus what to install. A plain module (not conftest) so test files can
import it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `CI` is set: non-empty and not `false`/`0` (case and spaces ignored)."""
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() not in ("", "false", "0")


def missing(what: str) -> NoReturn:
    """Skip the calling test (or module) because `what` is missing; fail it under CI."""
    if in_ci():
        pytest.fail(f"{what} (CI is set: a missing oracle or service is a failure)", pytrace=False)
    pytest.skip(what, allow_module_level=True)


def require_module(name: str, install: str) -> ModuleType:
    """`import name`, or `missing()` with the install hint (module level or in a test).

    Example:
        uu = require_module("unit_scaling", "pip install -e '.[dev]'")
    """
    try:
        return importlib.import_module(name)
    except ImportError as err:
        reason = f"{name} is not importable ({err}): {install}"
    missing(reason)  # outside the except block: no chained traceback in the report
