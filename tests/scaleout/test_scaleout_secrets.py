"""No database password on disk or screen, on a real PostgreSQL server that checks it.

A role with a password (SCRAM authentication, required for that role by the server's
pg_hba.conf: connecting without the password, or with a wrong one, is refused) runs a tiny
sweep through the CLI, its password given literally in the sweep file's URL or as
``${VAR}``. Afterwards no file of the run directory (binary ones included), no value in any
table of the trial database and no line the commands printed holds the password; the same
command resumes without recomputing a trial; `status` on the run directory takes the password
from the environment (`${VAR}`, PGPASSWORD or ~/.pgpass, passed through to libpq), and says in
one line what is missing when it is not there.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
import yaml
from cli_helpers import cli

pytestmark = pytest.mark.slow

NAME = "secret_sweep"
SWEEP = """
name: {name}
proxy: {{base: {{head_dim: 16, seq_len: 32}}, widths: [32], depths: [1]}}
hyperparameters: {{lr: [0.25, 1.0]}}
train: {{steps: 2, batch_size: 2, eval_batches: 1, final_window: 1}}
execution: {{executor: serial, max_failures: 1}}
storage: {{url: "{url}"}}
"""


class Role:
    """A login role with a password, owning a fresh database, that the server authenticates
    by password (SCRAM) over TCP and the Unix socket alike."""

    def __init__(self, server) -> None:
        import psycopg2

        self.server = server
        self.name = f"sweeper_{uuid.uuid4().hex[:8]}"
        self.db = f"s_{uuid.uuid4().hex[:12]}"
        # A distinctive token (what the checks look for) inside characters a URL must encode.
        self.token = secrets.token_hex(12)
        self.password = f"Pw{self.token}@/:%$ x"
        conn = psycopg2.connect(
            host="127.0.0.1", port=server.port, user=server.user, dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {self.name} LOGIN PASSWORD %s", (self.password,))
            cur.execute(f'CREATE DATABASE "{self.db}" OWNER {self.name}')
            cur.execute("SHOW hba_file")
            hba = Path(cur.fetchone()[0])
            rules = f"host all {self.name} all scram-sha-256\nlocal all {self.name} scram-sha-256\n"
            hba.write_text(rules + hba.read_text())  # first match wins: before the trust lines
            cur.execute("SELECT pg_reload_conf()")
        conn.close()

    def url(self, password: str | None) -> str:
        """SQLAlchemy URL of the role's database; `password` goes in as written."""
        auth = self.name if password is None else f"{self.name}:{password}"
        return f"postgresql+psycopg2://{auth}@127.0.0.1:{self.server.port}/{self.db}"

    def superuser_url(self) -> str:
        return self.server.url(self.db)


@pytest.fixture
def role(postgres_server) -> Role:
    import psycopg2

    r = Role(postgres_server)

    def connect(**kw):
        return psycopg2.connect(
            host="127.0.0.1", port=postgres_server.port, user=r.name, dbname=r.db, **kw
        )

    # The password matters: without it, or with a wrong one, the server refuses the role.
    for wrong in ({"password": ""}, {"password": r.password + "x"}):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            connect(**wrong).close()
    connect(password=r.password).close()
    return r


def _env(**extra: str | None) -> dict[str, str | None]:
    """No password from the developer's shell: no PGPASSWORD, no ~/.pgpass (unless given)."""
    return {"PGPASSWORD": None, "PGPASSFILE": "/nonexistent/pgpass", **extra}


def _run(sweep_file: Path, run_root: Path, **env: str | None):
    return cli(
        "run", sweep_file, "--run-dir", run_root, "--no-progress", "--verbose", env=_env(**env)
    )


def _tables_text(url: str) -> str:
    """Every row of every table of the database, as text (what a dump would show)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        names = conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema='public'")
        ).scalars()
        rows = [conn.execute(text(f'SELECT t::text FROM "{n}" t')).scalars().all() for n in names]
    engine.dispose()
    return "\n".join(str(r) for table in rows for r in table)


def _attrs_text(url: str) -> str:
    """The study's and every trial's user and system attributes, as JSON."""
    storage = optuna.storages.RDBStorage(url)
    study_id = storage.get_study_id_from_name(NAME)
    attrs = [storage.get_study_user_attrs(study_id), storage.get_study_system_attrs(study_id)]
    for t in storage.get_all_trials(study_id, deepcopy=False):
        attrs += [t.user_attrs, t.system_attrs]
    assert any("trial_key" in a for a in attrs)  # the trials' records are there
    storage.engine.dispose()
    return json.dumps(attrs, default=str)


def _assert_nowhere(role: Role, run_dir: Path, *outputs) -> None:
    """The password is in no file of the run directory, no database value, no output."""
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"sweep.yaml", "trials.csv", "report.md"} <= {p.name for p in files}
    for path in files:
        assert role.token.encode() not in path.read_bytes(), path
    dump = _tables_text(role.superuser_url())
    assert NAME in dump and "trial_key" in dump  # the dump does hold the run's records
    assert role.token not in dump
    assert role.token not in _attrs_text(role.superuser_url())
    for out in outputs:
        assert role.token not in out.stdout + out.stderr


def _trial_count(role: Role) -> int:
    study = optuna.load_study(study_name=NAME, storage=role.superuser_url())
    return len(study.get_trials(deepcopy=False))


def _one_line_error(out) -> str:
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def test_literal_password_is_masked_everywhere_and_resume_connects(role, tmp_path):
    url = role.url(quote(role.password, safe=""))
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(SWEEP.format(name=NAME, url=url))
    first = _run(sweep_file, tmp_path / "runs")
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "runs" / NAME
    written = yaml.safe_load((run_dir / "sweep.yaml").read_text())
    assert written["storage"]["url"] == role.url("***")
    assert _trial_count(role) == 2

    again = _run(sweep_file, tmp_path / "runs")  # the same command: connects, reruns nothing
    assert again.returncode == 0, again.stderr
    assert "(0 trials run now, 2 already done" in again.stdout
    assert _trial_count(role) == 2

    # The run directory alone has no password: status says where to give it ...
    status = cli("status", run_dir, env=_env())
    line = _one_line_error(status)
    assert line.startswith(f"error: cannot use the trial database {role.url('***')} (")
    assert "password" in line and "PGPASSWORD or ~/.pgpass" in line
    # ... and libpq's PGPASSWORD and ~/.pgpass work for a URL without one.
    assert cli("status", run_dir, env=_env(PGPASSWORD=role.password)).returncode == 0
    pgpass = tmp_path / "pgpass"
    escaped = role.password.replace("\\", "\\\\").replace(":", "\\:")  # .pgpass syntax
    pgpass.write_text(f"127.0.0.1:{role.server.port}:{role.db}:{role.name}:{escaped}\n")
    pgpass.chmod(0o600)
    from_dir = _run(run_dir / "sweep.yaml", tmp_path / "runs", PGPASSFILE=str(pgpass))
    assert from_dir.returncode == 0, from_dir.stderr
    assert "(0 trials run now, 2 already done" in from_dir.stdout
    _assert_nowhere(role, run_dir, first, again, status, from_dir)


def test_password_from_the_environment_stays_a_reference(role, tmp_path):
    url = role.url("${SWEEP_DB_PASSWORD}")
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(SWEEP.format(name=NAME, url=url))
    unset = _run(sweep_file, tmp_path / "runs")
    assert _one_line_error(unset) == (
        f"error: {sweep_file}: storage.url: environment variable SWEEP_DB_PASSWORD is not set "
        "(the URL reads ${SWEEP_DB_PASSWORD} from it): export SWEEP_DB_PASSWORD=... before "
        "running, or leave the password out of the URL and give it in PGPASSWORD or ~/.pgpass"
    )
    assert not (tmp_path / "runs").exists()
    wrong = _run(sweep_file, tmp_path / "runs", SWEEP_DB_PASSWORD=role.password[:-1] + "y")
    assert "password authentication failed" in _one_line_error(wrong)  # the password matters

    first = _run(sweep_file, tmp_path / "runs", SWEEP_DB_PASSWORD=role.password)
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "runs" / NAME
    assert yaml.safe_load((run_dir / "sweep.yaml").read_text())["storage"]["url"] == url
    again = _run(sweep_file, tmp_path / "runs", SWEEP_DB_PASSWORD=role.password)
    assert again.returncode == 0, again.stderr
    assert "(0 trials run now, 2 already done" in again.stdout
    assert _trial_count(role) == 2

    status = cli("status", run_dir, env=_env())
    assert _one_line_error(status) == (
        f"error: {run_dir / 'sweep.yaml'}: storage.url: environment variable SWEEP_DB_PASSWORD "
        "is not set (the URL reads ${SWEEP_DB_PASSWORD} from it): export SWEEP_DB_PASSWORD=... "
        "before running, or leave the password out of the URL and give it in PGPASSWORD or "
        "~/.pgpass"
    )
    ok = cli("status", run_dir, env=_env(SWEEP_DB_PASSWORD=role.password))
    assert ok.returncode == 0 and "2 stored" in ok.stdout, ok.stderr
    _assert_nowhere(role, run_dir, unset, wrong, first, again, status, ok)
