"""A sweep's resolved form (`runs/<name>/sweep.yaml`) and its identity hash.

Example:
    >>> from umup_sweep.config import load_sweep
    >>> proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
    >>> sweep = load_sweep({"name": "a", "proxy": proxy, "hyperparameters": {"lr": [1, 2]}})
    >>> load_sweep(sweep_to_dict(sweep)) == sweep
    True
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Any

from umup_sweep.config._data import data_to_dict
from umup_sweep.config._spec import HPSpace, SweepSpec
from umup_sweep.config._target import target_to_dict
from umup_sweep.config._tracking import tracking_to_dict

__all__ = ["UNHASHED_KEYS", "sweep_hash", "sweep_to_dict"]

# Not part of the identity: where and how trials run, how results are judged, the target
# (which reaches the trials only through the proxy family, hashed in full), where trials are
# also logged (tracking), when hopeless trials stop early (pruning: a pruned trial keeps its
# key, and its curve is the start of the full one).
_NOT_HASHED = ("name", "execution", "storage", "analysis", "target", "tracking", "pruning")
# Every dotted key of `sweep_to_dict` that `sweep_hash` leaves out: the above, the proxy's
# description (words), train.threads (not in trial keys either) and data.allow_vocab_mismatch
# (a permission). The store ignores the same keys when it compares a stored sweep with a new one.
UNHASHED_KEYS = (
    *_NOT_HASHED,
    "proxy.description",
    "train.threads",
    "data.allow_vocab_mismatch",
)
# ModelSpec fields written (and hashed) only when set, so older sweeps keep their hash.
_BASE_WHEN_SET = ("n_kv_heads", "ffn_hidden_size", "rope_theta")


def _space_to_dict(space: HPSpace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if space.values:
        out["values"] = list(space.values)
    if space.low is not None:
        out["distribution"] = "log_uniform_values" if space.log else "uniform"
        out["min"] = space.low
        out["max"] = space.high
    if space.coupled:  # only when set: other sweeps keep their hash
        out["coupled"] = space.coupled
    return out


def sweep_to_dict(sweep: SweepSpec) -> dict[str, Any]:
    """The resolved sweep as plain data (what `runs/<name>/sweep.yaml` holds).

    Everything is explicit (proxy inlined, defaults filled in), so `load_sweep` of the written
    file gives an equal `SweepSpec` wherever it is read from. lr and weight_decay appear once,
    in `defaults` (`train` holds no HPs).
    """
    base = dataclasses.asdict(sweep.family.base)
    base.pop("n_heads")  # derived per width (ProxyFamily.spec)
    for k in _BASE_WHEN_SET:  # e.g. multi-head attention: written (and hashed) as before
        if base.get(k, 0) is None:  # the field existed, so old runs keep their hash
            base.pop(k)
    proxy: dict[str, Any] = {
        "name": sweep.family.name,
        "base": base,
        "widths": list(sweep.family.widths),
        "depths": list(sweep.family.depths),
    }
    if sweep.family.fixed_heads:
        proxy["fixed_heads"] = True
    if sweep.family.kv_group is not None:
        proxy["kv_group"] = sweep.family.kv_group
    if sweep.family.description:
        proxy["description"] = sweep.family.description
    train = dataclasses.asdict(sweep.train)
    for k in ("lr", "weight_decay"):
        train.pop(k)
    if not train["weight_decay_coupled"]:
        train.pop("weight_decay_coupled")  # written (and hashed) only when set
    train |= _axes_to_dict(sweep)  # only when the sweep has train axes: old hashes stay
    storage = dataclasses.asdict(sweep.storage)
    storage["run_dir"] = str(sweep.storage.run_dir)
    if train.get("steps", 0) is None:
        train.pop("steps")
    out = {
        "name": sweep.name,
        "proxy": proxy,
        "seeds": list(sweep.seeds),
        "precisions": list(sweep.precisions),
        "strategy": sweep.strategy,
        "metric": {"name": sweep.metric, "goal": "minimize"},
        "hyperparameters": {n: _space_to_dict(s) for n, s in sweep.hyperparameters.items()},
        "defaults": dict(sweep.defaults),
        "budget": sweep.budget,
        "strategy_options": copy.deepcopy(sweep.strategy_options),
        "train": train,
        "data": data_to_dict(sweep.data),
        "execution": _execution_to_dict(sweep),
        "storage": storage,
        "analysis": dataclasses.asdict(sweep.analysis),
    }
    if sweep.target is not None:
        out["target"] = target_to_dict(sweep.target)
    if sweep.tracking is not None:
        out["tracking"] = tracking_to_dict(sweep.tracking)
    if sweep.pruning.enabled:  # only when on: the files of other sweeps stay as they were
        out["pruning"] = dataclasses.asdict(sweep.pruning)
    return out


def _execution_to_dict(sweep: SweepSpec) -> dict[str, Any]:
    """The execution block; `fuse` only when set, so the files of other sweeps stay as they
    were."""
    out = dataclasses.asdict(sweep.execution)
    if out["fuse"] == "off":
        del out["fuse"]
    return out


def _axes_to_dict(sweep: SweepSpec) -> dict[str, Any]:
    """The train axes as `train:` gives them: lists of steps / batch sizes, or tokens (then
    without steps); {} without axes, so a sweep without them writes and hashes as before."""
    axes = sweep.train_axes
    if axes is None:
        return {}
    out: dict[str, Any] = {}
    if axes.steps:
        out["steps"] = list(axes.steps)
    if axes.tokens:
        out["steps"] = None  # dropped below: tokens decide the steps
        out["tokens"] = list(axes.tokens)
    if axes.batch_sizes:
        out["batch_size"] = list(axes.batch_sizes)
    return out


def sweep_hash(sweep: SweepSpec) -> str:
    """Hash of what decides which trials run (not name, execution, storage or analysis).

    Two sweeps with the same hash propose the same trials from the same results, so a run
    directory may be resumed with either; a different hash under the same name is refused.

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
        >>> a = load_sweep({"name": "a", "proxy": proxy, "hyperparameters": {"lr": [1, 2]}})
        >>> b = load_sweep({"name": "a", "proxy": proxy, "hyperparameters": {"lr": [1, 2]},
        ...                 "execution": {"max_concurrent": 8}})
        >>> sweep_hash(a) == sweep_hash(b)
        True
    """
    d = sweep_to_dict(sweep)
    for dotted in UNHASHED_KEYS:
        section, _, leaf = dotted.rpartition(".")
        (d.get(section) or {} if section else d).pop(leaf, None)
    if d["precisions"] == [sweep.train.precision]:
        d.pop("precisions")  # a one-precision sweep hashes as before the axis existed
    blob = json.dumps(d, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
