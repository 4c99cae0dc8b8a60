"""A storage URL without secrets on disk or screen: `${VAR}` takes any part of it from the
environment when the sweep loads (an unset variable is a one-line error naming the file,
storage.url and the variable); the validated sweep, its written form and every message keep
the reference as written and show a literal password as ***, while connecting still uses the
real one. The sweep's identity does not depend on the password.

On a real PostgreSQL server that checks the password: tests/scaleout/test_scaleout_secrets.py.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
import yaml

from umup_sweep.config import load_sweep, sweep_hash, sweep_to_dict
from umup_sweep.config._secrets import connect_url, printable_url, scrub
from umup_sweep.errors import ConfigError, StoreError, UnsetVariableError
from umup_sweep.store import changed_keys, read_sweep, storage_label
from umup_sweep.store._study import unreadable
from umup_sweep.store._sweep import write_sweep

SWEEP = {
    "name": "env",
    "proxy": {"base": {"head_dim": 16}, "widths": [32], "depths": [1]},
    "hyperparameters": {"lr": {"values": [0.5, 1.0]}},
}
SECRET = "s3cr@t/pw"  # characters a URL must percent-encode
VAR = "UMUP_TEST_DB_PASSWORD"


def _host() -> str:
    """A host name no other test loads (what connect_url remembers is per printable URL)."""
    return f"db-{uuid.uuid4().hex[:8]}.example"


def _load(tmp_path: Path, storage: object, name: str = "env.yaml", **kw: object):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**SWEEP, "storage": storage}))
    return load_sweep(path, **kw)


def test_variable_is_expanded_for_connecting_and_kept_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv(VAR, SECRET)
    host = _host()
    url = f"postgresql://sweeper:${{{VAR}}}@{host}:5432/sweeps"
    sweep = _load(tmp_path, url)
    assert sweep.storage.url == url
    assert sweep_to_dict(sweep)["storage"]["url"] == url
    # In the user:password part the value is percent-encoded (SQLAlchemy decodes it).
    assert (
        connect_url(sweep.storage.url) == f"postgresql://sweeper:s3cr%40t%2Fpw@{host}:5432/sweeps"
    )
    from sqlalchemy.engine import make_url

    assert make_url(connect_url(sweep.storage.url)).password == SECRET


def test_any_part_may_come_from_the_environment_and_dollar_dollar_is_a_dollar(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("UMUP_TEST_DB_USER", "me")
    monkeypatch.setenv("UMUP_TEST_DB_HOST", "db.example")
    url = "postgresql://${UMUP_TEST_DB_USER}@${UMUP_TEST_DB_HOST}/run$$s"
    sweep = _load(tmp_path, {"url": url})
    assert sweep.storage.url == url
    assert connect_url(url) == "postgresql://me@db.example/run$s"


def test_whole_url_from_one_variable(tmp_path, monkeypatch):
    host = _host()
    monkeypatch.setenv("UMUP_TEST_DB_URL", f"postgresql://me:{SECRET}@{host}/s")
    sweep = _load(tmp_path, {"url": "${UMUP_TEST_DB_URL}"})
    assert sweep.storage.url == "${UMUP_TEST_DB_URL}"
    assert connect_url(sweep.storage.url) == f"postgresql://me:{SECRET}@{host}/s"
    assert storage_label(sweep.storage.url) == "${UMUP_TEST_DB_URL}"
    assert SECRET not in unreadable(tmp_path, RuntimeError(SECRET), sweep.storage.url)


@pytest.mark.parametrize("bare", [True, False])
def test_unset_variable_is_one_line_naming_file_key_and_variable(tmp_path, monkeypatch, bare):
    monkeypatch.delenv(VAR, raising=False)
    url = f"postgresql://sweeper:${{{VAR}}}@db/sweeps"
    with pytest.raises(UnsetVariableError) as err:
        _load(tmp_path, url if bare else {"url": url})
    assert isinstance(err.value, ConfigError) and err.value.key == "storage.url"
    assert str(err.value) == (
        f"{tmp_path / 'env.yaml'}: storage.url: environment variable {VAR} is not set (the URL "
        f"reads ${{{VAR}}} from it): export {VAR}=... before running, or leave the password out "
        "of the URL and give it in PGPASSWORD or ~/.pgpass"
    )


def test_malformed_reference_is_an_error_that_shows_no_part_of_the_url(tmp_path):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "postgresql://me:pw${not a name}@db/s")
    assert err.value.key == "storage.url" and "pw" not in str(err.value).split(": ", 2)[2]
    assert "expected ${NAME} references to environment variables" in str(err.value)


def test_literal_password_is_masked_in_the_sweep_and_its_written_form(tmp_path):
    host = _host()
    literal = f"postgresql://me:{SECRET}@{host}/sweeps?sslmode=require&password={SECRET}"
    sweep = _load(tmp_path, literal)
    masked = f"postgresql://me:***@{host}/sweeps?sslmode=require&password=***"
    assert sweep.storage.url == masked
    assert sweep_to_dict(sweep)["storage"]["url"] == masked
    assert SECRET not in repr(sweep) and SECRET not in str(sweep_to_dict(sweep))
    assert connect_url(sweep.storage.url) == literal  # this process still connects with it
    # What the run directory holds reads back as the same sweep.
    written = tmp_path / "written.yaml"
    written.write_text(yaml.safe_dump(sweep_to_dict(sweep), sort_keys=False))
    assert load_sweep(written) == sweep


def test_masked_url_not_loaded_here_leaves_the_password_to_libpq():
    host = _host()
    assert connect_url(f"postgresql://me:***@{host}/s") == f"postgresql://me@{host}/s"
    assert connect_url(f"postgresql://{host}/s?password=***&a=1") == f"postgresql://{host}/s?a=1"


def test_hash_and_changed_keys_ignore_the_password_but_not_the_database(tmp_path, monkeypatch):
    monkeypatch.setenv(VAR, "x")
    a = _load(tmp_path, "postgresql://me:old@db.example/sweeps", "a.yaml")
    b = _load(tmp_path, "postgresql://me:rotated@db.example/sweeps", "b.yaml")
    c = _load(tmp_path, f"postgresql://me:${{{VAR}}}@db.example/sweeps", "c.yaml")
    assert sweep_hash(a) == sweep_hash(b) == sweep_hash(c)
    assert changed_keys(sweep_to_dict(a), sweep_to_dict(b)) == []  # a rotated password
    for other in ("postgresql://you:old@db.example/sweeps", "postgresql://me:old@db2/sweeps"):
        d = _load(tmp_path, other, "d.yaml")
        assert changed_keys(sweep_to_dict(a), sweep_to_dict(d)) == ["storage.url"]


@pytest.mark.parametrize("bad", [[f"postgresql://me:{SECRET}@db/s"], {"url": [SECRET]}])
def test_malformed_storage_values_are_not_echoed(tmp_path, bad):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, bad)
    assert SECRET not in str(err.value) and err.value.key.startswith("storage")


def test_written_sweep_yaml_never_holds_a_password_even_from_a_built_spec(tmp_path):
    sweep = _load(tmp_path, {"run_dir": str(tmp_path / "runs")})
    url = f"postgresql://me:{SECRET}@{_host()}/s"
    built = dataclasses.replace(sweep, storage=dataclasses.replace(sweep.storage, url=url))
    (tmp_path / "runs").mkdir()
    path = write_sweep(tmp_path / "runs", built)
    assert SECRET not in path.read_text()
    assert yaml.safe_load(path.read_text())["storage"]["url"] == printable_url(url)


def test_run_directory_needing_an_unset_variable_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(VAR, SECRET)
    sweep = _load(tmp_path, f"postgresql://me:${{{VAR}}}@db/s")
    write_sweep(tmp_path, sweep)
    monkeypatch.delenv(VAR)
    with pytest.raises(UnsetVariableError) as err:  # not "damaged": the file is fine
        read_sweep(tmp_path)
    assert str(err.value).startswith(
        f"{tmp_path / 'sweep.yaml'}: storage.url: environment variable {VAR} is not set"
    )
    assert not isinstance(err.value, StoreError)


def test_database_errors_are_shown_without_the_password(tmp_path, monkeypatch):
    monkeypatch.setenv(VAR, SECRET)
    sweep = _load(tmp_path, f"postgresql://me:${{{VAR}}}@{_host()}/s")
    exc = RuntimeError(f"could not parse postgresql://me:{SECRET}@x (also s3cr%40t%2Fpw)")
    line = unreadable(tmp_path, exc, sweep.storage.url)
    assert SECRET not in line and "s3cr%40t%2Fpw" not in line and "me:***@x" in line
    assert scrub(f"pw {SECRET}", "sqlite:///x.db") == f"pw {SECRET}"  # nothing to hide there
