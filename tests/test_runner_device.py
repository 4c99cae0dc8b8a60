"""The driver's device check: an impossible device request is one line (exit code 2) before
any trial runs or any run directory is left behind; "auto" is resolved before trial keys are
made; the Ray executor reserves (fractional) GPUs as `device.ray_resources` maps them."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from cli_helpers import cli
from sweep_fakes import FakeTrial, tiny_sweep

from umup_sweep.config import SweepSpec
from umup_sweep.device import torch_build
from umup_sweep.errors import ConfigError
from umup_sweep.runner import run_sweep, trial_device
from umup_sweep.store import RunStore

NO_CUDA = not __import__("torch").cuda.is_available()

SWEEP = """
name: devtiny
proxy: {{base: {{head_dim: 16, seq_len: 32, ffn_ratio: 2.0}}, widths: [32], depths: [1]}}
hyperparameters: {{lr: [0.5, 1.0]}}
train: {{steps: 3, batch_size: 2, eval_batches: 1, final_window: 1, device: {device}}}
execution: {{executor: {executor}, gpus_per_trial: {gpus}, max_failures: 0}}
"""


def with_device(sweep: SweepSpec, device: str, gpus: float = 0.0, **execution) -> SweepSpec:
    return dataclasses.replace(
        sweep,
        train=dataclasses.replace(sweep.train, device=device),
        execution=dataclasses.replace(sweep.execution, gpus_per_trial=gpus, **execution),
        source="sweeps/dev.yaml",
    )


def cli_run(tmp_path: Path, device: str, executor: str, gpus: float) -> subprocess.CompletedProcess:
    path = tmp_path / "devtiny.yaml"
    path.write_text(SWEEP.format(device=device, executor=executor, gpus=gpus))
    return cli("run", path, "--run-dir", tmp_path / "runs", timeout=120)


@pytest.mark.skipif(not NO_CUDA, reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    ("executor", "gpus", "message"),
    [
        (
            "serial",
            0,
            "train.device: device 'cuda' requested but torch.cuda.is_available() is False on "
            f"this machine ({torch_build()}); use device: cpu or auto",
        ),
        ("ray", 0, "execution.gpus_per_trial: > 0 when train.device is 'cuda' under the ray"),
    ],
)
def test_cli_refuses_cuda_here_in_one_line_before_any_trial(
    tmp_path: Path, executor: str, gpus: float, message: str
) -> None:
    out = cli_run(tmp_path, "cuda", executor, gpus)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith(f"error: {tmp_path / 'devtiny.yaml'}: ")
    assert message in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing left behind


def test_cli_refuses_bad_device_spelling(tmp_path: Path) -> None:
    out = cli_run(tmp_path, "gpu", "serial", 0)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: {tmp_path / 'devtiny.yaml'}: train.device: expected one of auto, cpu, cuda or "
        "cuda:N, got 'gpu' (str)"
    )


@pytest.mark.ray
@pytest.mark.skipif(not NO_CUDA, reason="needs a cluster without GPUs")
def test_ray_gpu_request_is_checked_against_the_cluster_before_any_trial(
    tmp_path: Path, ray_session
) -> None:
    sweep = with_device(tiny_sweep(tmp_path), "cuda", 0.5, executor="ray")
    fake = FakeTrial(tmp_path / "log")
    with pytest.raises(ConfigError) as err:
        run_sweep(sweep, trial_fn=fake, analyze=False)
    assert err.value.key == "execution.gpus_per_trial"
    assert str(err.value).startswith(
        "sweeps/dev.yaml: execution.gpus_per_trial: 0 on this Ray cluster, which has no GPUs (CPU 2"
    )
    assert not (tmp_path / "log").exists() and not (tmp_path / "tiny").exists()


def test_auto_is_resolved_before_trial_keys_are_made(tmp_path: Path) -> None:
    """Trials run (and are keyed) on the resolved device; sweep.yaml keeps `auto`."""
    fake = FakeTrial(tmp_path / "log")
    auto = with_device(tiny_sweep(tmp_path / "a", lrs=(0.5, 1.0)), "auto")
    run_sweep(auto, trial_fn=fake, analyze=False)
    store = RunStore.load(tmp_path / "a" / "tiny")
    expected = "cpu" if NO_CUDA else "cuda"
    keys = list(store.results()["trial_key"])
    assert {store.spec(k).train.device for k in keys} == {expected}
    assert (
        yaml.safe_load((tmp_path / "a" / "tiny" / "sweep.yaml").read_text())["train"]["device"]
        == "auto"
    )
    if NO_CUDA:  # the same trials as a sweep that says cpu
        cpu = with_device(tiny_sweep(tmp_path / "c", lrs=(0.5, 1.0)), "cpu")
        run_sweep(cpu, trial_fn=fake, analyze=False)
        cpu_keys = pd.read_csv(tmp_path / "c" / "tiny" / "trials.csv")["trial_key"]
        assert sorted(cpu_keys) == sorted(keys)
    # rerunning the sweep as written resumes it: nothing recomputed
    again = run_sweep(auto, trial_fn=fake, analyze=False)
    assert again.n_new == 0 and again.n_resumed == 2


@pytest.mark.parametrize(
    ("device", "gpus", "executor", "cluster", "expected"),
    [
        ("auto", 0, "ray", None, "cpu"),
        ("cpu", 0, "ray", None, "cpu"),
        ("auto", 0.25, "ray", None, "cuda"),  # provisional: the cluster is asked once Ray is up
        ("cuda", 0.5, "ray", {"CPU": 8.0, "GPU": 1.0}, "cuda"),
        ("auto", 0.25, "ray", {"CPU": 8.0, "GPU": 2.0}, "cuda"),
        ("auto", 0, "serial", None, "cpu" if NO_CUDA else "cuda"),
    ],
)
def test_trial_device(
    tmp_path: Path,
    device: str,
    gpus: float,
    executor: str,
    cluster: dict[str, float] | None,
    expected: str,
) -> None:
    sweep = with_device(tiny_sweep(tmp_path), device, gpus)
    assert trial_device(sweep, executor, cluster) == expected


@pytest.mark.parametrize(
    ("device", "gpus", "cluster", "key"),
    [
        ("cuda", 0.5, {"CPU": 2.0}, "execution.gpus_per_trial"),  # no GPU in the cluster
        ("cuda", 4, {"CPU": 2.0, "GPU": 2.0}, "execution.gpus_per_trial"),  # never fits
        ("cuda:1", 0.5, None, "train.device"),  # Ray assigns GPUs itself
        ("cpu", 0.5, None, "execution.gpus_per_trial"),  # reserved and never used
    ],
)
def test_trial_device_refusals_name_the_key(
    tmp_path: Path, device: str, gpus: float, cluster: dict[str, float] | None, key: str
) -> None:
    sweep = with_device(tiny_sweep(tmp_path), device, gpus)
    with pytest.raises(ConfigError) as err:
        trial_device(sweep, "ray", cluster)
    assert err.value.key == key and str(err.value).startswith(f"sweeps/dev.yaml: {key}: ")


@pytest.mark.ray
def test_ray_executor_reserves_fractional_gpus_as_mapped(ray_session) -> None:
    from umup_sweep.execute import RayExecutor

    ex = RayExecutor(lambda spec: None, cpus_per_trial=1.5, gpus_per_trial=0.25)  # type: ignore[arg-type,return-value]
    try:
        assert ex.resources == {"num_cpus": 1.5, "num_gpus": 0.25}
        assert ex.threads == 1  # whole CPUs, at least one
        assert ex.cluster_resources()["CPU"] == 2.0
    finally:
        ex.close()
    with pytest.raises(ConfigError, match="execution.gpus_per_trial: .*whole number of GPUs"):
        RayExecutor(lambda spec: None, gpus_per_trial=1.5)  # type: ignore[arg-type,return-value]
