"""Ray token authentication: for the embedded cluster, and for attaching to a cluster.

Ray (2.5x+) reads `RAY_AUTH_MODE` (`token` or `disabled`) and takes the token from
`RAY_AUTH_TOKEN`, else the file named by `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`.

- Embedded cluster: token auth unless the user set `RAY_AUTH_MODE=disabled`. Left to itself
  Ray would write a new token to `~/.ray/auth_token` (mode 0644 under the usual umask) and
  keep it there; instead each embedded cluster gets a fresh random token that lives only in
  the environment of this process and the Ray processes it starts (owner-only in /proc), and
  is gone when the run ends.
- Attaching (`--address host:port`): the GCS is asked first, without our token, whether it
  wants one; only then is token mode turned on with the user's token. A missing or rejected
  token is one line, within a second, with Ray's own retries and log lines kept off the
  terminal.

Every change to `os.environ` is undone by `AuthEnv.restore()` (Ray itself would leave
`RAY_AUTH_MODE=token` set for the rest of the process).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

from umup_sweep.errors import UserError

MODE = "RAY_AUTH_MODE"
TOKEN = "RAY_AUTH_TOKEN"
TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = "~/.ray/auth_token"
_WHERE = (
    f"set {TOKEN} or {TOKEN_PATH} (or put it in {DEFAULT_TOKEN_FILE}; "
    "`ray get-auth-token` on the head prints it)"
)


class AuthEnv:
    """Changes to Ray's auth variables in `os.environ`; `restore()` puts the old values back
    and makes Ray (already imported) read them again."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        self._saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value
        _reload_ray_auth()

    def restore(self) -> None:
        if not self._saved:
            return
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()
        _reload_ray_auth()


def auth_mode() -> str | None:
    """`RAY_AUTH_MODE` as the user set it (lower case), or None."""
    mode = os.environ.get(MODE)
    return mode.strip().lower() if mode is not None else None


def token_source() -> str | None:
    """Where Ray will read the token from (Ray's order), or None when there is none.

    Raises:
        UserError: `RAY_AUTH_TOKEN_PATH` names a file that cannot be read or is empty (Ray
            would abort).
    """
    if os.environ.get(TOKEN):
        return TOKEN
    path = os.environ.get(TOKEN_PATH)
    if path:
        try:
            ok = bool(Path(path).expanduser().read_text().strip())
        except OSError as exc:
            raise UserError(f"{TOKEN_PATH}={path} cannot be read ({exc.strerror or exc})") from None
        if not ok:
            raise UserError(f"{TOKEN_PATH}={path} is empty: it must hold the cluster's token")
        return f"{TOKEN_PATH} ({path})"
    default = Path(DEFAULT_TOKEN_FILE).expanduser()
    try:
        if default.read_text().strip():
            return DEFAULT_TOKEN_FILE
    except OSError:
        pass
    return None


def embedded_auth() -> AuthEnv:
    """Token auth with a fresh per-run token for the embedded cluster (nothing written to
    disk), unless the user set `RAY_AUTH_MODE=disabled`."""
    env = AuthEnv()
    if auth_mode() == "disabled":
        return env
    env.set(MODE, "token")
    env.set(TOKEN, secrets.token_hex(32))  # 256 bits, as `ray get-auth-token --generate`
    return env


def attach_auth(address: str) -> AuthEnv:
    """Check that the cluster at `address` (host:port) accepts us, turning on token mode
    with the user's token when it asks for one.

    Raises:
        UserError: it wants a token and there is none, or it rejected the token.
    """
    env = AuthEnv()
    mode, source = auth_mode(), token_source()
    if mode == "token" and source is None:
        raise UserError(f"{MODE}=token but no Ray token was found: {_WHERE}")
    answer = _probe(address)
    if answer == "silent":
        raise UserError(
            f"nothing at {address} answers as a Ray cluster (its GCS did not reply in 40 s): "
            "check the host:port that `ray start --head` printed"
        )
    if answer == "unauthenticated" and mode is None and source is not None:
        env.set(MODE, "token")
        answer = _probe(address)
    if answer == "unauthenticated":
        env.restore()
        if source is None or mode == "disabled":
            unset = f"unset {MODE}=disabled and " if mode == "disabled" else ""
            raise UserError(f"the Ray cluster at {address} requires a token: {unset}{_WHERE}")
        raise UserError(
            f"the Ray cluster at {address} rejected the token from {source}: set {TOKEN} or "
            f"{TOKEN_PATH} to the cluster's token (`ray get-auth-token` on the head prints it)"
        )
    return env


def _probe(address: str) -> str:
    """Ask the GCS at `address` for its cluster id: "ok", "unauthenticated", "silent" (no
    reply: not a Ray GCS; Ray gives up after ~40 s, where `ray.init` would retry for many
    minutes) or "other" (left for `ray.init` to report). Ray's log lines are suppressed."""
    try:
        from ray._raylet import GcsClient  # type: ignore[attr-defined]
        from ray.exceptions import AuthenticationError, RpcError
    except ImportError:  # a Ray without token auth (before 2.52)
        return "other"
    with _quiet_stderr():
        try:
            GcsClient(address=address)
        except AuthenticationError:
            return "unauthenticated"
        except RpcError as exc:
            return "silent" if "timed out" in str(exc).lower() else "other"
        except Exception:
            return "other"
    return "ok"


def _reload_ray_auth() -> None:
    """Make an imported Ray re-read the auth variables (its config and token are cached);
    never while connected (re-reading the config would drop the running instance's)."""
    ray = sys.modules.get("ray")
    if ray is None or ray.is_initialized():
        return
    try:
        from ray._raylet import (  # type: ignore[attr-defined]
            AuthenticationTokenLoader,
            Config,
        )
    except ImportError:  # a Ray without token auth (before 2.52)
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null (Ray's C++ logging writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
