"""A real two-node Ray cluster (two `ray start` process groups, 1 CPU each, on this machine,
token auth as docs/CLUSTER.md sets it up): the smoke sweep attached with `--address` and the
cluster's token runs trials on both nodes (node id per trial); a driver with no token or a
wrong one is refused in one line; and a node killed mid-sweep loses only its running trial,
which is rescheduled; the sweep completes with no finished trial lost or recomputed.
Everything started is killed at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import psutil
import pytest
from cli_helpers import cli
from scaleout_helpers import REPO, TESTS, RayCluster, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head (1 CPU) plus one worker node (1 CPU); the node-loss test kills the worker, so it
    runs last in this module."""
    c = RayCluster(tmp_path_factory.mktemp("raycluster"))
    try:
        c.start_head()
        c.add_node()
        yield c
    finally:
        nodes = list(c.nodes)
        c.stop()
    assert not any(psutil.pid_exists(n.proc.pid) for n in nodes)
    assert not any(n.temp_dir.exists() for n in nodes)


def _env(cluster: RayCluster) -> dict[str, str]:
    """A driver's environment with the cluster's token in RAY_AUTH_TOKEN (the smoke test
    uses RAY_AUTH_TOKEN_PATH, the refusals the default file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    assert cluster.token_file is not None
    return {**env, "PYTHONPATH": str(REPO), "RAY_AUTH_TOKEN": cluster.token_file.read_text()}


def test_smoke_sweep_on_an_existing_cluster_uses_both_nodes(cluster, tmp_path):
    head, worker = cluster.nodes
    out = cli(
        "run",
        REPO / "sweeps" / "smoke.yaml",
        "--executor",
        "ray",
        "--address",
        cluster.address,
        "--max-concurrent",
        "2",
        "--run-dir",
        tmp_path / "runs",
        "--no-progress",
        env=cluster.driver_env(),  # RAY_AUTH_TOKEN_PATH
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "token" not in out.stderr.lower()  # no auth warning from Ray
    trials = pd.read_csv(tmp_path / "runs" / "smoke" / "trials.csv")
    assert len(trials) == 3 and set(trials["status"]) <= {"ok", "diverged"}
    # Two trials at once on two 1-CPU nodes: one must run on each.
    assert set(trials["node_id"]) == {head.node_id, worker.node_id}
    assert (trials["peak_rss_mb"] > 50).all()  # the worker's peak memory (torch is loaded)
    # The cluster is the user's: the driver left it running.
    assert all(n.proc.poll() is None for n in cluster.nodes)


WHERE = (
    "set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH (or put it in ~/.ray/auth_token; "
    "`ray get-auth-token` on the head prints it)"
)


@pytest.mark.parametrize(
    "case", ["no-token", "wrong-token", "wrong-token-in-default-file", "auth-disabled-by-user"]
)
def test_driver_without_the_clusters_token_is_refused_in_one_line(cluster, tmp_path, case):
    home = tmp_path / "home"  # Ray's default token file is ~/.ray/auth_token
    env: dict[str, str | None] = {**cluster.driver_env(), "HOME": str(home)}
    if case == "auth-disabled-by-user":  # the right token, but auth switched off
        env["RAY_AUTH_MODE"] = "disabled"
    else:
        env["RAY_AUTH_TOKEN_PATH"] = None
    if case == "wrong-token":
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    elif case == "wrong-token-in-default-file":
        (home / ".ray").mkdir(parents=True)
        (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    runs = tmp_path / "runs"
    start = time.monotonic()
    out = cli(
        "run",
        REPO / "sweeps" / "smoke.yaml",
        "--address",
        cluster.address,
        "--run-dir",
        runs,
        "--no-progress",
        env=env,
    )
    elapsed = time.monotonic() - start
    where = {
        "no-token": "requires a token: " + WHERE,
        "wrong-token": "rejected the token from RAY_AUTH_TOKEN: set RAY_AUTH_TOKEN or "
        "RAY_AUTH_TOKEN_PATH to the cluster's token (`ray get-auth-token` on the head prints it)",
        "wrong-token-in-default-file": "rejected the token from ~/.ray/auth_token: set "
        "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the cluster's token (`ray get-auth-token` "
        "on the head prints it)",
        "auth-disabled-by-user": "requires a token: unset RAY_AUTH_MODE=disabled and " + WHERE,
    }[case]
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.splitlines() == [f"error: the Ray cluster at {cluster.address} {where}"]
    assert not runs.exists()
    assert elapsed < 20, elapsed
    assert all(n.proc.poll() is None for n in cluster.nodes)


NODE_LOSS_DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from sweep_fakes import FakeTrial, tiny_sweep
from umup_sweep.runner import run_sweep
from umup_sweep.search import GridStrategy


class NodeTrial(FakeTrial):
    # FakeTrial that also notes which node each attempt started on.
    def __call__(self, spec):
        import ray

        with open(str(self.log) + ".nodes", "a") as fh:
            fh.write(spec.trial_key + " " + ray.get_runtime_context().get_node_id() + "\\n")
        return super().__call__(spec)


root, address = Path(sys.argv[1]), sys.argv[2]
sweep = tiny_sweep(root, name="nodeloss", lrs=[2.0 ** k for k in range(-3, 3)], executor="ray",
                   max_concurrent=2, max_failures=1)
fake = NodeTrial(root / "log", sleep=1.5)
s = run_sweep(sweep, strategy=GridStrategy(sweep), trial_fn=fake, address=address,
              analyze=False)
print("done", s.n_new, s.n_resumed, s.counts["total"], s.counts["ok"], flush=True)
"""


def _starts(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines() if line.strip()]


def _committed(csv: Path) -> set[str]:
    if not csv.exists():
        return set()
    return set(pd.read_csv(csv)["trial_key"])


def test_killed_node_loses_only_its_running_trial(cluster, tmp_path):
    head, worker = cluster.nodes
    script = tmp_path / "driver.py"
    script.write_text(NODE_LOSS_DRIVER.format(tests=str(TESTS)))
    csv = tmp_path / "nodeloss" / "trials.csv"
    starts = tmp_path / "log.nodes"
    driver = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), cluster.address],
        env=_env(cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def running_on_worker():
            # Kill once a trial run on the worker is committed and another one runs there.
            done = _committed(csv)
            on_worker = [k for k, node in _starts(starts) if node == worker.node_id]
            running = [k for k in on_worker if k not in done]
            if running and any(k in done for k in on_worker):
                return done, running[-1]
            return None

        committed, lost = wait_for(running_on_worker, 90, "a second trial on the worker node")
        worker_procs = [worker.proc.pid] + [
            p.pid for p in psutil.Process(worker.proc.pid).children(recursive=True)
        ]
        worker.kill()  # SIGKILL to its process group and every process it started
        assert not any(psutil.pid_exists(pid) for pid in worker_procs)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, err[-3000:]
    done = [line for line in out.splitlines() if line.startswith("done ")]
    assert done and done[-1].split()[1:] == ["6", "0", "6", "6"]
    trials = pd.read_csv(csv)
    assert len(trials) == 6 and set(trials["status"]) == {"ok"}
    attempts = Counter(key for key, _ in _starts(starts))
    assert all(attempts[key] == 1 for key in committed)  # no finished trial ran again
    assert attempts[lost] == 2  # the lost trial was rescheduled ...
    assert [n for k, n in _starts(starts) if k == lost][-1] == head.node_id  # ... on the head
    assert sum(attempts.values()) == 7  # and nothing else ran twice
    by_key = trials.set_index("trial_key")["node_id"]
    assert by_key[lost] == head.node_id
    assert set(by_key) == {head.node_id, worker.node_id}
