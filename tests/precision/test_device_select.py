"""Device resolution, the pre-flight device check (errors name file and key, one line) and
the Ray resource mapping, all on CPU with CUDA availability and cluster resources passed in."""

from __future__ import annotations

import pytest
import torch

from umup_sweep.device import (
    check_gpus_per_trial,
    parse_device,
    ray_resources,
    resolve_device,
    torch_build,
    trial_threads,
    validate_device_request,
)
from umup_sweep.errors import ConfigError, UserError

CPU_CLUSTER = {"CPU": 2.0, "memory": 1e9}
GPU_CLUSTER = {"CPU": 16.0, "GPU": 2.0}


def test_torch_build_names_this_build() -> None:
    text = torch_build()
    assert text.startswith(f"torch {torch.__version__} ")
    assert text.endswith("CPU build" if torch.version.cuda is None else "build")


@pytest.mark.parametrize(
    ("given", "expected"),
    [("auto", "auto"), (" CPU", "cpu"), ("cuda", "cuda"), ("cuda:3", "cuda:3")],
)
def test_parse_device_normalises(given: str, expected: str) -> None:
    assert parse_device(given) == expected


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "mps", ""])
def test_parse_device_refuses_anything_else(bad: str) -> None:
    with pytest.raises(
        UserError, match=rf"^device must be one of auto, cpu, cuda, cuda:N, got {bad!r}$"
    ):
        parse_device(bad)


def test_resolve_device_without_cuda() -> None:
    assert resolve_device("auto", cuda_available=False) == torch.device("cpu")
    assert resolve_device("cpu", cuda_available=True) == torch.device("cpu")
    with pytest.raises(UserError) as err:
        resolve_device("cuda", cuda_available=False)
    assert str(err.value) == (
        "device 'cuda' requested but torch.cuda.is_available() is False on this machine "
        f"({torch_build()}); use device: cpu or auto"
    )
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"^device 'cuda:1' requested but torch.cuda"):
        resolve_device("cuda:1", cuda_available=False)


def test_resolve_device_with_cuda() -> None:
    assert resolve_device("auto", cuda_available=True) == torch.device("cuda")
    assert resolve_device("cuda:1", cuda_available=True, cuda_count=2) == torch.device("cuda", 1)
    with pytest.raises(UserError, match=r"has 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2", cuda_available=True, cuda_count=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the real answer on a CPU machine")
def test_resolve_device_asks_torch_by_default() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match="is False on this machine"):
        resolve_device("cuda")


def test_trial_threads_are_whole_cpus_at_least_one() -> None:
    assert [trial_threads(c) for c in (0.25, 1, 1.9, 4)] == [1, 1, 1, 4]


def test_ray_resources_map_cpus_and_fractional_gpus() -> None:
    assert ray_resources(1, 0.25) == {"num_cpus": 1.0, "num_gpus": 0.25}
    assert ray_resources(2.0) == {"num_cpus": 2.0, "num_gpus": 0.0}
    assert ray_resources(0.5, 1) == {"num_cpus": 0.5, "num_gpus": 1.0}
    assert ray_resources(4, 2) == {"num_cpus": 4.0, "num_gpus": 2.0}


@pytest.mark.parametrize(
    ("cpus", "gpus", "key", "fragment"),
    [
        (0, 0, "execution.cpus_per_trial", "a number > 0, got 0"),
        (-1, 0, "execution.cpus_per_trial", "a number > 0, got -1"),
        ("two", 0, "execution.cpus_per_trial", "a number > 0, got 'two'"),
        (1, -0.5, "execution.gpus_per_trial", "a number >= 0, got -0.5"),
        (1, 1.5, "execution.gpus_per_trial", "a whole number of GPUs, got 1.5"),
        (1, float("nan"), "execution.gpus_per_trial", "a number >= 0, got nan"),
    ],
)
def test_ray_resources_refuse_what_ray_would_refuse(
    cpus: object, gpus: object, key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as err:
        ray_resources(cpus, gpus, source="sweeps/x.yaml")  # type: ignore[arg-type]
    assert err.value.key == key
    assert str(err.value).startswith(f"sweeps/x.yaml: {key}: ")
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_check_gpus_per_trial_accepts_fractions_and_whole_numbers() -> None:
    assert [check_gpus_per_trial(g) for g in (0, 0.25, 0.5, 1, 3)] == [0.0, 0.25, 0.5, 1.0, 3.0]


# --- the pre-flight check --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "gpus", "cluster", "expected"),
    [
        ("auto", 0, CPU_CLUSTER, "cpu"),
        ("cpu", 0, GPU_CLUSTER, "cpu"),
        ("auto", 0, GPU_CLUSTER, "cpu"),  # Ray hides GPUs from trials that reserve none
        ("auto", 0.25, GPU_CLUSTER, "cuda"),
        ("cuda", 0.25, GPU_CLUSTER, "cuda"),
        ("cuda", 2, GPU_CLUSTER, "cuda"),
    ],
)
def test_ray_device_requests_that_work(
    device: str, gpus: float, cluster: dict[str, float], expected: str
) -> None:
    got = validate_device_request(device, gpus, cluster_resources=cluster, source="s.yaml")
    assert got == expected


@pytest.mark.parametrize(
    ("device", "gpus", "cluster", "key", "fragment"),
    [
        ("cuda", 0.25, CPU_CLUSTER, "execution.gpus_per_trial", "which has no GPUs (CPU 2, GPU 0)"),
        ("auto", 0.5, CPU_CLUSTER, "execution.gpus_per_trial", "which has no GPUs"),
        ("cuda", 0, GPU_CLUSTER, "execution.gpus_per_trial", "Ray hides GPUs from trials"),
        ("cuda", 4, GPU_CLUSTER, "execution.gpus_per_trial", "at most the cluster's 2 GPU(s)"),
        ("cpu", 0.25, GPU_CLUSTER, "execution.gpus_per_trial", "0 when train.device is 'cpu'"),
        ("cuda:1", 1, GPU_CLUSTER, "train.device", "Ray assigns each trial its GPUs"),
        ("tpu", 0, GPU_CLUSTER, "train.device", "one of auto, cpu, cuda, cuda:N, got 'tpu'"),
        ("cuda", 1.5, GPU_CLUSTER, "execution.gpus_per_trial", "a whole number of GPUs"),
    ],
)
def test_ray_device_requests_that_cannot_work_fail_before_any_trial(
    device: str, gpus: float, cluster: dict[str, float] | None, key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as err:
        validate_device_request(device, gpus, cluster_resources=cluster, source="sweeps/g.yaml")
    message = str(err.value)
    assert err.value.key == key and message.startswith(f"sweeps/g.yaml: {key}: ")
    assert fragment in message, message
    assert "\n" not in message


def test_ray_gpu_requests_need_the_clusters_resources() -> None:
    with pytest.raises(ValueError, match="needs cluster_resources"):
        validate_device_request("cuda", 0.5)
    assert validate_device_request("cpu", 0) == "cpu"  # nothing to look up


def test_serial_executor_uses_this_machines_cuda() -> None:
    serial = {"executor": "serial", "source": "s.yaml"}
    assert validate_device_request("auto", cuda_available=False, **serial) == "cpu"  # type: ignore[arg-type]
    assert validate_device_request("auto", cuda_available=True, **serial) == "cuda"  # type: ignore[arg-type]
    assert (
        validate_device_request("cuda:1", cuda_available=True, cuda_count=2, **serial)  # type: ignore[arg-type]
        == "cuda:1"
    )
    with pytest.raises(ConfigError) as err:
        validate_device_request("cuda", cuda_available=False, **serial)  # type: ignore[arg-type]
    assert str(err.value) == (
        "s.yaml: train.device: device 'cuda' requested but torch.cuda.is_available() is False "
        f"on this machine ({torch_build()}); use device: cpu or auto"
    )
