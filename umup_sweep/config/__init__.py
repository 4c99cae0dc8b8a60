"""Sweep, proxy-family and trial configuration: YAML in, validated specs out.

`load_sweep` reads `sweeps/*.yaml` into a `SweepSpec`, `load_proxy_family` reads
`proxies/*.yaml` into a `ProxyFamily`, `load_target` reads a target model (our YAML or a
Hugging Face config.json) into a `TargetSpec`, `load_trial` reads the trial YAML of
`umup-sweep train` into a `TrialSpec`. Bad input raises `ConfigError`: one line naming the
file, the dotted key and what was expected. `sweep_to_dict` is the resolved form written to
`runs/<name>/sweep.yaml` and `sweep_hash` the identity a run directory is resumed under.

Example:
    >>> proxy = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}
    >>> sweep = load_sweep({"name": "demo", "proxy": proxy, "hyperparameters": {"lr": [0.5, 1]}},
    ...                    overrides=parse_overrides(["train.steps=20"]))
    >>> sweep.train.steps, len(sweep.family.specs()), sweep_to_dict(sweep)["defaults"]["lr"]
    (20, 2, 1.0)
"""

from umup_sweep.config._identity import UNHASHED_KEYS, sweep_hash, sweep_to_dict
from umup_sweep.config._options import OptionContext
from umup_sweep.config._proxy import (
    HeadDimMode,
    family_with_widths,
    load_proxy_family,
    proxy_spec_from_target,
)
from umup_sweep.config._secrets import (
    MissingVariable,
    connect_url,
    only_references,
    password_left_out,
    printable_url,
    scrub,
)
from umup_sweep.config._sections import precision_names
from umup_sweep.config._spec import (
    AnalysisSpec,
    ExecutionSpec,
    HPSpace,
    ProxyFamily,
    PruningSpec,
    StorageSpec,
    SweepSpec,
    TargetSpec,
    TrackingSpec,
    TrainAxes,
    TrainingPlan,
)
from umup_sweep.config._sweep import load_sweep
from umup_sweep.config._target import load_target, target_to_dict
from umup_sweep.config._trial import TRIAL_YAML_KEYS, load_trial
from umup_sweep.config._validate import build_section
from umup_sweep.config._yaml import parse_overrides, read_yaml

__all__ = [
    "UNHASHED_KEYS",
    "MissingVariable",
    "connect_url",
    "only_references",
    "password_left_out",
    "printable_url",
    "scrub",
    "TRIAL_YAML_KEYS",
    "AnalysisSpec",
    "ExecutionSpec",
    "HPSpace",
    "HeadDimMode",
    "OptionContext",
    "ProxyFamily",
    "PruningSpec",
    "StorageSpec",
    "SweepSpec",
    "TargetSpec",
    "TrackingSpec",
    "TrainAxes",
    "TrainingPlan",
    "build_section",
    "family_with_widths",
    "load_proxy_family",
    "load_sweep",
    "load_target",
    "load_trial",
    "parse_overrides",
    "precision_names",
    "proxy_spec_from_target",
    "read_yaml",
    "sweep_hash",
    "sweep_to_dict",
    "target_to_dict",
]
