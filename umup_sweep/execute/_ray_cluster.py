"""Connecting to Ray: start a quiet embedded local cluster, or attach to an existing one.

The embedded cluster has no dashboard, logs only errors, listens on loopback only, uses Ray's
token auth with a fresh token per run (unless the user set `RAY_AUTH_MODE=disabled`; see
`_ray_auth`), and keeps its session files in an owner-only temp dir under /tmp that is
removed on `close()` (or, after a `kill -9`, by the next start). Loopback: Ray 2.60 rewrites
127.0.0.1 to the machine's routable IP (and then listens on every interface) unless its "no
multi-node clusters" switch is on; we turn it on just for the embedded `ray.init`, so every
Ray server binds 127.0.0.1. An attached cluster (`address`, or `RAY_ADDRESS`) is only
disconnected from, never shut down; so is a Ray instance that was already initialised in
this process (e.g. by the test suite). Attaching sends the user's token only to a cluster
that asks for one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import umup_sweep
from umup_sweep.errors import UserError
from umup_sweep.execute._ray_auth import AuthEnv, attach_auth, embedded_auth

# The embedded cluster's object store only carries specs and results: keep it small.
OBJECT_STORE_BYTES = 128 * 1024 * 1024
# Session files of the embedded cluster: /tmp/umup-ray-<driver pid>-<random> (short: Ray's
# socket paths must stay under ~107 characters).
TEMP_PREFIX = "umup-ray-"
LOOPBACK = "127.0.0.1"
# Ray reads this at import; when false, Ray keeps 127.0.0.1 as the node IP (single-node mode).
_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RayConnection:
    """A live connection to Ray; `close()` undoes exactly what `__init__` did.

    Args:
        address: `host:port` or `"auto"` to attach to a running cluster; None (and no
            `RAY_ADDRESS` in the environment) or `"local"` starts an embedded one.
        num_cpus: CPUs of the embedded cluster (default: all cores).
        verbose: show Ray's info logs and the workers' output.
    """

    def __init__(
        self, address: str | None = None, num_cpus: int | None = None, verbose: bool = False
    ) -> None:
        import ray

        self.owned = False  # whether close() disconnects this process from Ray
        self.embedded = False  # whether we started (and will stop) a local cluster
        self._temp_dir: str | None = None
        self._auth = AuthEnv()  # our changes to RAY_AUTH_*, undone by close()
        if ray.is_initialized():
            return
        if address is None:
            address = os.environ.get("RAY_ADDRESS") or None
        quiet: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.INFO if verbose else logging.ERROR,
            "log_to_driver": verbose,
            "configure_logging": True,
        }
        if address and address != "local":
            self._auth = _attach(address, quiet)
        else:
            self._auth = embedded_auth()
            _make_package_importable()
            _remove_stale_temp_dirs()
            self._temp_dir = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir="/tmp")
            try:
                with _single_node_mode():
                    ray.init(
                        address="local",
                        num_cpus=num_cpus or os.cpu_count() or 1,
                        object_store_memory=OBJECT_STORE_BYTES,
                        _temp_dir=self._temp_dir,
                        _node_ip_address=LOOPBACK,
                        **quiet,
                    )
                # Ray makes its temp dir world-writable (0777) and its logs world-readable:
                # close the top folder to other users (Ray's processes run as us).
                os.chmod(self._temp_dir, 0o700)
            except BaseException:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
                self._temp_dir = None
                self._auth.restore()
                raise
            self.embedded = True
        self.owned = True

    def close(self) -> None:
        """Disconnect (and stop the embedded cluster, removing its temp dir)."""
        import ray

        try:
            if self.owned and ray.is_initialized():
                ray.shutdown()
        finally:  # even when a second Ctrl-C interrupts the shutdown
            self.owned = False
            self._auth.restore()
            if self._temp_dir is not None:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
                self._temp_dir = None


def _attach(address: str, quiet: dict[str, Any]) -> AuthEnv:
    """`ray.init(address=...)`, failing fast with one line when nothing listens there (Ray
    itself retries for minutes) or when the cluster wants a token we lack; returns the auth
    settings made for it (undone on close)."""
    import ray
    from ray.exceptions import RayError

    auth = AuthEnv()
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit() and "://" not in address:
        _check_listener(address, host or LOOPBACK, int(port))
        auth = attach_auth(address)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError, RayError) as exc:
        auth.restore()
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(f"cannot attach to the Ray cluster at {address!r}: {first}") from None
    except BaseException:
        auth.restore()
        raise
    return auth


# An HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS) answers
# with its own SETTINGS frame (frame type 4) at once.
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _check_listener(address: str, host: str, port: int) -> None:
    """One line, within seconds, when nothing listens at `host:port` or what listens there
    is not a gRPC server (where `ray.init` would wait for many minutes)."""
    try:
        conn = socket.create_connection((host, port), timeout=3)
    except OSError as exc:
        raise UserError(
            f"no Ray cluster at {address} ({exc.strerror or exc}); start one with "
            "`ray start --head` on that machine, or check the host:port it printed"
        ) from None
    with conn:
        if os.environ.get("RAY_USE_TLS", "0").lower() not in ("0", "false", ""):
            return  # a TLS GCS expects a TLS hello first
        try:
            conn.sendall(_HTTP2_HELLO)
            frame = conn.recv(9)
        except TimeoutError:
            return  # slow to answer: let Ray decide
        except OSError:
            frame = b""
    if len(frame) < 4 or frame[3] != 4:
        raise UserError(
            f"nothing at {address} answers as a Ray cluster (not a gRPC server): check the "
            "host:port that `ray start --head` printed"
        )


@contextlib.contextmanager
def _single_node_mode() -> Iterator[None]:
    """Make this `ray.init` keep 127.0.0.1 as the node IP (so Ray binds loopback only); the
    servers it starts inherit the setting, later attaches in this process do not."""
    from ray._private import ray_constants

    old_env = os.environ.get(_CLUSTER_SWITCH)
    old_value = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_CLUSTER_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = old_value
        if old_env is None:
            os.environ.pop(_CLUSTER_SWITCH, None)
        else:
            os.environ[_CLUSTER_SWITCH] = old_env


def _make_package_importable() -> None:
    """Workers start in another directory: put this package's root on their PYTHONPATH by
    absolute path, so an uninstalled checkout (PYTHONPATH=.) works too."""
    root = str(Path(umup_sweep.__file__).resolve().parent.parent)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    absolute = [str(Path(p).resolve()) for p in parts]
    if root not in absolute:
        absolute.insert(0, root)
    os.environ["PYTHONPATH"] = os.pathsep.join(absolute)


def _remove_stale_temp_dirs() -> None:
    """Remove temp dirs left by drivers that were killed (`kill -9` skips `close()`)."""
    for path in Path("/tmp").glob(f"{TEMP_PREFIX}*-*"):
        pid_text = path.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, another user's
            continue
