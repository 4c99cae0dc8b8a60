"""Ray token settings that need no running cluster: where the token comes from (Ray's order),
one-line errors for a broken token file, and the embedded cluster's per-run token, which is
never written to disk and is removed from the environment afterwards."""

from __future__ import annotations

import os
import re

import pytest

from umup_sweep.errors import UserError
from umup_sweep.execute import _ray_auth

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A HOME without ~/.ray and no Ray auth variables from the developer's shell."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in AUTH_VARS:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_token_source_follows_rays_order(home, monkeypatch):
    assert _ray_auth.token_source() is None
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("from-default-file\n")
    assert _ray_auth.token_source() == "~/.ray/auth_token"
    token_file = home / "cluster_token"
    token_file.write_text("from-path")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    assert _ray_auth.token_source() == f"RAY_AUTH_TOKEN_PATH ({token_file})"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert _ray_auth.token_source() == "RAY_AUTH_TOKEN"


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_broken_token_path_is_one_line(home, monkeypatch, damage):
    token_file = home / "cluster_token"
    if damage == "empty":
        token_file.write_text("\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    with pytest.raises(UserError) as err:
        _ray_auth.token_source()
    expected = "cannot be read (No such file or directory)" if damage == "missing" else "is empty"
    assert str(err.value).startswith(f"RAY_AUTH_TOKEN_PATH={token_file} {expected}")
    assert "\n" not in str(err.value)


def test_token_mode_without_a_token_is_refused_before_connecting(home, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    with pytest.raises(UserError) as err:
        _ray_auth.attach_auth("127.0.0.1:1")  # nothing is contacted
    assert str(err.value).startswith(
        "RAY_AUTH_MODE=token but no Ray token was found: set RAY_AUTH_TOKEN or "
        "RAY_AUTH_TOKEN_PATH (or put it in ~/.ray/auth_token;"
    )


def test_embedded_cluster_gets_a_fresh_token_kept_in_the_environment_only(home, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "the user's cluster token")
    tokens = set()
    for _ in range(2):
        env = _ray_auth.embedded_auth()
        assert os.environ["RAY_AUTH_MODE"] == "token"
        assert re.fullmatch(r"[0-9a-f]{64}", os.environ["RAY_AUTH_TOKEN"])
        tokens.add(os.environ["RAY_AUTH_TOKEN"])
        env.restore()
        assert os.environ["RAY_AUTH_TOKEN"] == "the user's cluster token"
        assert "RAY_AUTH_MODE" not in os.environ
    assert len(tokens) == 2  # a new token per run
    assert list(home.iterdir()) == []  # nothing written (Ray would write ~/.ray/auth_token)


def test_auth_disabled_by_the_user_is_respected(home, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    env = _ray_auth.embedded_auth()
    assert os.environ["RAY_AUTH_MODE"] == "disabled" and "RAY_AUTH_TOKEN" not in os.environ
    env.restore()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"
