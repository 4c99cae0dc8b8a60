"""Connecting to Ray: start a quiet embedded local cluster, or attach to an existing one.

The embedded cluster has no dashboard and no auth, logs only errors, and keeps its session
files in a temp dir under /tmp that is removed on `close()` (or, after a `kill -9`, by the next
start). Ray 2.60 cannot be bound to loopback: it turns 127.0.0.1 into the node's IP and its
gRPC servers listen on every interface, so on a shared network run behind a firewall. An attached
cluster (`address`, or `RAY_ADDRESS`) is only disconnected from, never shut down; so is a Ray
instance that was already initialised in this process (e.g. by the test suite).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import umup_sweep

# The embedded cluster's object store only carries specs and results: keep it small.
OBJECT_STORE_BYTES = 128 * 1024 * 1024
# Session files of the embedded cluster: /tmp/umup-ray-<driver pid>-<random> (short: Ray's
# socket paths must stay under ~107 characters).
TEMP_PREFIX = "umup-ray-"


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
            ray.init(address=address, **quiet)
        else:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            _make_package_importable()
            _remove_stale_temp_dirs()
            self._temp_dir = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir="/tmp")
            ray.init(
                address="local",
                num_cpus=num_cpus or os.cpu_count() or 1,
                object_store_memory=OBJECT_STORE_BYTES,
                _temp_dir=self._temp_dir,
                **quiet,
            )
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
            if self._temp_dir is not None:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
                self._temp_dir = None


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
