"""The command line as a user runs it: `umup-sweep ...` in a fresh Python process.

One helper for every test that goes through the real CLI. The child gets this checkout first
on `PYTHONPATH` and the caller's environment without `RAY_ADDRESS` (a cluster named in the
developer's shell must not capture a test run); `env` adds to that, and a `None` value
removes a variable. A plain module (not conftest) so test files can import it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = (sys.executable, "-c", "from umup_sweep.cli import main; main()")

Env = Mapping[str, str | None]


def cli_env(env: Env | None = None) -> dict[str, str]:
    """The child's environment: ours minus RAY_ADDRESS, the repository first on PYTHONPATH,
    then `env` applied (a None value deletes the variable)."""
    out = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), out.get("PYTHONPATH")) if p)
    for key, value in (env or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def cli_command(*args: str | os.PathLike[str]) -> list[str]:
    """The argv that runs `umup-sweep *args` with this interpreter."""
    return [*CLI, *map(str, args)]


def cli(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    env: Env | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run `umup-sweep *args` to completion; stdout and stderr captured as text.

    Example:
        out = cli("status", tmp_path / "runs" / "x")
        assert out.returncode == 2 and out.stderr.startswith("error: ")
    """
    return subprocess.run(
        cli_command(*args),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(env),
        timeout=timeout,
    )


def cli_popen(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    env: Env | None = None,
) -> subprocess.Popen[str]:
    """Start `umup-sweep *args` without waiting (to signal it, or to run two at once);
    stdout and stderr are pipes. Finish it with `finish(proc)`."""
    return subprocess.Popen(
        cli_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=cli_env(env),
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Wait for a `cli_popen` process (killed if it outlives `timeout`) and collect its output."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
