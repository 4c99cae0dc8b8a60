"""The tests' own helpers: `ci_strict` (a missing oracle or service skips on a developer's
machine and fails in CI) and `cli_helpers` (the CLI in a child process)."""

from __future__ import annotations

import json
import os

import pytest
from ci_strict import in_ci, missing, require_module
from cli_helpers import REPO, cli, cli_env


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("yes", True), ("False", False), (" 0 ", False), ("", False)],
)
def test_ci_is_any_value_but_empty_false_or_0(value: str, expected: bool) -> None:
    assert in_ci({"CI": value}) is expected
    assert in_ci({}) is False


def test_missing_skips_without_ci_and_fails_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no server"):
        missing("no server")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no server .CI is set"):
        missing("no server")


def test_require_module_imports_or_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    assert require_module("json", "stdlib") is json
    with pytest.raises(pytest.fail.Exception, match="umup_no_such_module.*pip install it"):
        require_module("umup_no_such_module", "pip install it")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="umup_no_such_module.*pip install it"):
        require_module("umup_no_such_module", "pip install it")


def test_cli_env_drops_ray_address_puts_the_checkout_first_and_applies_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setenv("UMUP_TEST_KEEP", "kept")
    env = cli_env()
    assert "RAY_ADDRESS" not in env and env["UMUP_TEST_KEEP"] == "kept"
    assert env["PYTHONPATH"] == os.pathsep.join([str(REPO), "/elsewhere"])
    env = cli_env({"RAY_ADDRESS": "auto", "UMUP_TEST_KEEP": None, "EXTRA": "1"})
    assert env["RAY_ADDRESS"] == "auto" and env["EXTRA"] == "1" and "UMUP_TEST_KEEP" not in env


def test_cli_runs_the_command_line_of_this_checkout(tmp_path) -> None:
    out = cli("status", tmp_path / "nothing-here", cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and str(tmp_path / "nothing-here") in out.stderr
