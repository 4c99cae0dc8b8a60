"""Where trials run: device resolution, the pre-flight device check, and Ray resources.

`validate_device_request` runs in the driver before any trial starts, so an impossible
request (`device: cuda` on a machine or cluster without GPUs, GPUs reserved for CPU trials)
is one line naming the key, never a crash inside a worker. Everything here is a pure
function of its arguments (CUDA availability and the cluster's resources are passed in or
read once), so it is tested on CPU.

Example:
    >>> from umup_sweep.device import ray_resources, validate_device_request
    >>> ray_resources(cpus_per_trial=1, gpus_per_trial=0.25)
    {'num_cpus': 1.0, 'num_gpus': 0.25}
    >>> validate_device_request("auto", 0.25, cluster_resources={"CPU": 8.0, "GPU": 1.0})
    'cuda'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

from umup_sweep.errors import ConfigError, UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def torch_build() -> str:
    """This torch's version and build, for messages.

    Example:
        >>> torch_build().startswith("torch ")
        True
    """
    cuda = torch.version.cuda  # type: ignore[attr-defined]
    kind = "CPU build" if cuda is None else f"CUDA {cuda} build"
    return f"torch {torch.__version__} {kind}"


def parse_device(requested: str) -> str:
    """The normalised device request ("auto", "cpu", "cuda" or "cuda:N").

    Raises:
        UserError: anything else.

    Example:
        >>> parse_device(" CUDA:1 ")
        'cuda:1'
    """
    text = str(requested).strip().lower()
    if not _DEVICE_RE.match(text):
        raise UserError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {requested!r}")
    return text


def resolve_device(
    requested: str = "auto",
    *,
    cuda_available: bool | None = None,
    cuda_count: int | None = None,
) -> torch.device:
    """The torch device for a request on this machine: "auto" picks CUDA when there is one.

    Args:
        requested: "auto", "cpu", "cuda" or "cuda:N".
        cuda_available, cuda_count: override torch's own answers (for tests).

    Raises:
        UserError: CUDA requested but unavailable, or an index beyond the visible devices.

    Example:
        >>> resolve_device("auto", cuda_available=False)
        device(type='cpu')
        >>> resolve_device("cuda:1", cuda_available=True, cuda_count=2)
        device(type='cuda', index=1)
    """
    device = parse_device(requested)
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if device == "cpu":
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if available else "cpu")
    if not available:
        raise UserError(
            f"device '{device}' requested but torch.cuda.is_available() is False on this "
            f"machine ({torch_build()}); use device: cpu or auto"
        )
    if ":" in device:
        count = torch.cuda.device_count() if cuda_count is None else cuda_count
        index = int(device.split(":")[1])
        if index >= count:
            raise UserError(
                f"device '{device}' requested but this machine has {count} CUDA device(s) "
                f"(cuda:0 to cuda:{count - 1}); use device: cuda or a smaller index"
            )
    return torch.device(device)


def trial_threads(cpus_per_trial: float) -> int:
    """Torch intra-op threads of a trial: its whole CPUs, at least 1.

    Ray sets OMP_NUM_THREADS=1 in workers, so the trial sets threads itself from this.

    Example:
        >>> trial_threads(0.5), trial_threads(2.0)
        (1, 2)
    """
    return max(1, int(cpus_per_trial))


def check_gpus_per_trial(gpus_per_trial: float, source: str = "<execution>") -> float:
    """`gpus_per_trial` as Ray accepts it: 0, a fraction in (0, 1], or a whole number > 1.

    A fraction f lets ⌊1/f⌋ trials share one GPU (0.25 → four per GPU); Ray refuses
    fractions above 1, so 1.5 is an error here rather than inside Ray.

    Example:
        >>> check_gpus_per_trial(0.25), check_gpus_per_trial(2)
        (0.25, 2.0)
    """
    key = "execution.gpus_per_trial"
    try:
        gpus = float(gpus_per_trial)
    except (TypeError, ValueError):
        raise ConfigError(source, key, f"a number >= 0, got {gpus_per_trial!r}") from None
    if not math.isfinite(gpus) or gpus < 0:
        raise ConfigError(source, key, f"a number >= 0, got {gpus_per_trial!r}")
    if gpus > 1 and not gpus.is_integer():
        raise ConfigError(
            source,
            key,
            f"0, a fraction in (0, 1] (trials sharing a GPU) or a whole number of GPUs, "
            f"got {gpus_per_trial!r}",
        )
    return gpus


def ray_resources(
    cpus_per_trial: float, gpus_per_trial: float = 0.0, source: str = "<execution>"
) -> dict[str, float]:
    """Ray task options (`.options(**...)`) reserving one trial's CPUs and (fractional) GPUs.

    Example:
        >>> ray_resources(2, 0)
        {'num_cpus': 2.0, 'num_gpus': 0.0}
    """
    try:
        cpus = float(cpus_per_trial)
    except (TypeError, ValueError):
        cpus = float("nan")
    if not (math.isfinite(cpus) and cpus > 0):
        raise ConfigError(
            source, "execution.cpus_per_trial", f"a number > 0, got {cpus_per_trial!r}"
        )
    return {"num_cpus": cpus, "num_gpus": check_gpus_per_trial(gpus_per_trial, source)}


def _describe(resources: Mapping[str, float]) -> str:
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    return f"CPU {cpus:g}, GPU {gpus:g}"


def validate_device_request(
    device: str,
    gpus_per_trial: float = 0.0,
    *,
    executor: str = "ray",
    cluster_resources: Mapping[str, float] | None = None,
    cuda_available: bool | None = None,
    cuda_count: int | None = None,
    source: str = "<sweep>",
) -> str:
    """Check a sweep's device request before any trial starts; return the trials' device.

    The returned string ("cpu", "cuda" or, in-process, "cuda:N") is what trials should put
    in `TrainSpec.device` (and so in their trial key): "auto" never reaches a trial.

    With Ray, a trial only sees the GPUs it reserves (Ray sets CUDA_VISIBLE_DEVICES), so CUDA
    needs `gpus_per_trial > 0` and a cluster with GPUs; "auto" means CUDA exactly when GPUs
    are reserved. In-process (`serial`), this machine's CUDA decides.

    Args:
        device: the `train.device` request ("auto", "cpu", "cuda", "cuda:N").
        gpus_per_trial: `execution.gpus_per_trial`.
        executor: "ray" or "serial".
        cluster_resources: `ray.cluster_resources()` of the cluster the trials run on
            (required for "ray" when GPUs are involved).
        cuda_available, cuda_count: this machine's CUDA (serial; default: ask torch).
        source: file named in error messages.

    Raises:
        ConfigError: one line naming the file, the key and what would work.

    Example:
        >>> validate_device_request("auto", 0, cluster_resources={"CPU": 2.0})
        'cpu'
        >>> validate_device_request("cpu", executor="serial")
        'cpu'
    """
    try:
        requested = parse_device(device)
    except UserError:
        raise ConfigError(
            source, "train.device", f"one of {', '.join(DEVICE_CHOICES)}, got {device!r}"
        ) from None
    gpus = check_gpus_per_trial(gpus_per_trial, source)
    if executor == "serial":
        try:
            resolved = resolve_device(
                requested, cuda_available=cuda_available, cuda_count=cuda_count
            )
        except UserError as err:
            raise ConfigError(source, "train.device", str(err)) from None
        return str(resolved)
    if not _ray_wants_gpus(requested, device, gpus, source):
        return "cpu"
    if cluster_resources is None:
        raise ValueError("validate_device_request needs cluster_resources when GPUs are reserved")
    _check_cluster_gpus(gpus, cluster_resources, source)
    return "cuda"


def _ray_wants_gpus(requested: str, device: str, gpus: float, source: str) -> bool:
    """Under Ray: whether the (parsed) request means CUDA trials, which need the cluster's
    GPUs; False for CPU trials; a `ConfigError` for a request Ray cannot honour."""
    if requested == "cpu":
        if gpus > 0:
            raise ConfigError(
                source,
                "execution.gpus_per_trial",
                f"0 when train.device is 'cpu' (trials would hold {gpus:g} GPU each and never "
                f"use it); set gpus_per_trial: 0 or device: auto",
            )
        return False
    if requested.startswith("cuda:"):
        raise ConfigError(
            source,
            "train.device",
            f"'cuda' or 'auto' under the ray executor (Ray assigns each trial its GPUs), "
            f"got {device!r}",
        )
    if gpus == 0:
        if requested == "auto":
            return False
        raise ConfigError(
            source,
            "execution.gpus_per_trial",
            "> 0 when train.device is 'cuda' under the ray executor (Ray hides GPUs from "
            "trials that reserve none); e.g. gpus_per_trial: 0.25 runs four trials per GPU",
        )
    return True


def _check_cluster_gpus(gpus: float, cluster_resources: Mapping[str, float], source: str) -> None:
    """A `ConfigError` unless the Ray cluster has GPUs, and at least `gpus` of them."""
    resources = dict(cluster_resources)
    total = float(resources.get("GPU", 0.0))
    if total <= 0:
        raise ConfigError(
            source,
            "execution.gpus_per_trial",
            f"0 on this Ray cluster, which has no GPUs ({_describe(resources)}), "
            f"got {gpus:g}; set gpus_per_trial: 0 and device: cpu or auto",
        )
    if gpus > total:
        raise ConfigError(
            source,
            "execution.gpus_per_trial",
            f"at most the cluster's {total:g} GPU(s) ({_describe(resources)}), got {gpus:g}: "
            f"no trial could ever start",
        )
