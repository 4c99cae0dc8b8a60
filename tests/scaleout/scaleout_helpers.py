"""Real components for the scale-out tests, started and stopped by the tests themselves:
a multi-node Ray cluster (`ray start` process groups on this machine, token auth as the
docs tell users to run it) and a throwaway PostgreSQL server. Nothing here is mocked;
everything started is killed by process id.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
RAY_BIN = str(Path(sys.executable).with_name("ray"))
NODE_ID_RE = re.compile(r"Setting node ID node_id=([0-9a-f]{56})")


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def kill_tree(leader: int, extra: list[psutil.Process] | None = None) -> None:
    """SIGKILL a process group and every descendant of its leader (Ray workers start their own
    process groups, so the group alone is not enough)."""
    procs = list(extra or [])
    try:
        procs += psutil.Process(leader).children(recursive=True)
    except psutil.NoSuchProcess:
        pass
    try:
        os.killpg(leader, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def ray_env(token_file: Path | None) -> dict[str, str]:
    """Environment of the `ray start` processes: token auth with the token in `token_file`
    (None: auth disabled), quiet, fast node-death detection, and the package (plus tests/,
    for the fakes) importable by workers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    if token_file is None:
        env["RAY_AUTH_MODE"] = "disabled"
    else:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]),
        RAY_USAGE_STATS_ENABLED="0",
        # A killed node is declared dead after ~1.5 s instead of ~30 s.
        RAY_health_check_period_ms="500",
        RAY_health_check_timeout_ms="500",
        RAY_health_check_failure_threshold="3",
        RAY_health_check_initial_delay_ms="0",
    )
    return env


@dataclass
class RayNode:
    """One `ray start --block` process group and its temp dir."""

    proc: subprocess.Popen
    temp_dir: Path
    log: Path

    @property
    def node_id(self) -> str | None:
        """The node id (read from the raylet's log once it is up)."""
        for path in self.temp_dir.glob("session_*/logs/raylet.out"):
            found = NODE_ID_RE.search(path.read_text(errors="replace"))
            if found:
                return found.group(1)
        return None

    def kill(self) -> None:
        """Hard-kill the node: its process group and every process it started."""
        if self.proc.poll() is None or psutil.pid_exists(self.proc.pid):
            kill_tree(self.proc.pid)
        self.proc.wait(timeout=10)


@dataclass
class RayCluster:
    """A Ray cluster of separate `ray start` nodes on this machine (1 CPU each by default).

    Every node gets `--node-ip-address=127.0.0.1` (Ray maps it to the machine's address so
    that nodes can reach each other), its own temp dir, no dashboard and no usage stats.
    With `auth` (the default) every node runs `RAY_AUTH_MODE=token` with a fresh token kept
    in `root/auth_token` (0600), as docs/CLUSTER.md tells users to do.
    """

    root: Path
    auth: bool = True
    port: int = field(default_factory=free_port)
    nodes: list[RayNode] = field(default_factory=list)
    token_file: Path | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.auth:
            self.token_file = self.root / "auth_token"
            fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def driver_env(self) -> dict[str, str | None]:
        """What a driver (the CLI, via `cli(env=...)`) needs to attach: the cluster's token
        file, and no other Ray auth setting of the developer's shell."""
        return {
            "RAY_AUTH_MODE": None,
            "RAY_AUTH_TOKEN": None,
            "RAY_AUTH_TOKEN_PATH": str(self.token_file) if self.token_file else None,
        }

    def _start(self, name: str, args: list[str], num_cpus: int) -> RayNode:
        temp_dir = Path(f"/tmp/umupt-{os.getpid()}-{self.port}-{name}")  # short: socket paths
        log = self.root / f"{name}.log"
        cmd = [
            RAY_BIN,
            "start",
            *args,
            f"--num-cpus={num_cpus}",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp_dir}",
            "--object-store-memory=80000000",
            "--disable-usage-stats",
            "--block",
        ]
        with open(log, "w") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                cmd,
                env=ray_env(self.token_file),
                start_new_session=True,  # its own process group, killed as one
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        node = RayNode(proc, temp_dir, log)
        self.nodes.append(node)
        node_id = wait_for(lambda: node.node_id or _exited(node), 90, f"Ray node {name}")
        if not isinstance(node_id, str):
            raise RuntimeError(f"ray start {name} failed:\n{log.read_text()[-2000:]}")
        return node

    def start_head(self, num_cpus: int = 1) -> RayNode:
        return self._start(
            "head", ["--head", f"--port={self.port}", "--include-dashboard=false"], num_cpus
        )

    def add_node(self, num_cpus: int = 1) -> RayNode:
        """Start a worker node and wait until the head has registered it."""
        node = self._start(f"node{len(self.nodes)}", [f"--address={self.address}"], num_cpus)
        wait_for(
            lambda: any(
                f"Registering new node. node_id={node.node_id}" in p.read_text(errors="replace")
                for p in self.nodes[0].temp_dir.glob("session_*/logs/gcs_server.out")
            ),
            60,
            "the head to register the worker node",
        )
        time.sleep(1.0)  # let the node's resources reach the scheduler
        return node

    def stop(self) -> None:
        """Kill every node (workers first) and remove their temp dirs."""
        for node in reversed(self.nodes):
            node.kill()
        for node in self.nodes:
            shutil.rmtree(node.temp_dir, ignore_errors=True)
        self.nodes.clear()


def _exited(node: RayNode) -> bool:
    return node.proc.poll() is not None


# -- PostgreSQL --------------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """Folder holding initdb and pg_ctl (PATH, then Debian's /usr/lib/postgresql/*/bin)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    return None


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster in a temp dir, on a free loopback port, trust auth.

    As root it runs as the `postgres` user (PostgreSQL refuses to run as root).
    """

    bin_dir: Path
    root: Path
    port: int = field(default_factory=free_port)
    user: str = "umup"

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        subprocess.run(
            self._cmd("initdb", "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8"),
            check=True,
            capture_output=True,
        )
        opts = f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            self._cmd(
                "pg_ctl",
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(self.root / "pg.log"),
                "-w",
                "-t",
                "60",
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its SQLAlchemy URL."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"),
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)
