"""Sweep YAML → validated `SweepSpec`: aliases, overrides, and the sections put together.

Everything the user can get wrong is raised as `ConfigError(file, "dotted.key", expectation)`:
one line that names the file, the key and what would have been accepted. Keys follow the
W&B sweep conventions where they fit (`method` is accepted for `strategy`, `parameters` for
`hyperparameters`, `metric` may be `{name:, goal: minimize}`).

Sweep keys (all optional unless marked):
    name            run folder name (default: file stem); letters, digits, . _ - only
    proxy*          proxy YAML path (next to the sweep file, the CWD, or one folder up) or an
                    inline mapping {name, base: ModelSpec keys, widths, depths}
    widths, depths, parametrization, model
                    override the family's widths/depths, parametrization, other base keys
                    (with parametrization sp the u-μP multipliers, spec.MODEL_HPS, may be
                    neither swept nor set off 1.0 in defaults or model)
    seeds           list of ints (default [0])
    precisions      list of fp32 | bf16 | fp8_sim: every proxy runs at each (default
                    [train.precision]); train.precision, if given, must be one of them
    strategy        a name in umup_sweep.search.STRATEGIES: grid | bracket | independent |
                    random | tpe
                    (alias: method; default grid)
    hyperparameters* (alias: parameters) per HP in spec.HP_NAMES: a list, {values: [...]},
                    {log2_range: [lo, hi], step: 1}, or {distribution: log_uniform_values |
                    uniform, min, max}; values > 0 (weight_decay >= 0; weight_decay may add
                    coupled: lr, the decay per step then lr × the value)
    defaults        values of the HPs not swept (else proxy base, else spec.HP_DEFAULTS)
    train, data     TrainSpec / DataSpec keys (lr and weight_decay go in defaults); train.steps
                    and train.batch_size may be lists, and train.tokens replaces steps (the
                    train axes, config._train_axes; not with tpe); data also
                    takes tokenizer: PATH (a local tokenizer.json, relative to this file) or
                    {train_bpe: VOCAB}, and allow_vocab_mismatch (see config._data)
    metric          val_loss | final_train_loss, or {name:, goal: minimize}
    divergence      {max_loss: x} (= train.diverge_loss)
    execution       {executor: ray|serial, max_concurrent, cpus_per_trial, gpus_per_trial,
                    address, max_failures, fuse: auto|off|K} (config._execution)
    storage         {run_dir, url}, or a bare Optuna storage URL string (= {url: ...})
    analysis        {tolerance, precision_tolerance, precision_loss_threshold}
    budget          configurations per proxy (random/tpe only, required there)
    strategy_options  per strategy: the strategy class's OPTIONS (umup_sweep.search)
    tracking        {backend: wandb | mlflow | tensorboard or a list, dir, project, and the
                    trackers' options}: log every trial there too (see config._tracking); not
                    part of the sweep hash
    pruning         true, or {enabled, every, margin_factor, min_references}: stop dominated
                    trials early (see config._pruning, umup_sweep.pruning); not hashed
    target          the model the results are for: an inline mapping or a YAML / Hugging Face
                    config.json path relative to this file (see config._target); a proxy
                    {from_target: true, ...} is derived from it; not part of the sweep hash
    description     free text

Example:
    >>> proxy = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}
    >>> s = load_sweep({"name": "demo", "proxy": proxy, "method": "random", "budget": 4,
    ...                 "parameters": {"lr": [0.25, 4]}})
    >>> s.strategy, (s.hyperparameters["lr"].low, s.hyperparameters["lr"].high)
    ('random', (0.25, 4.0))
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from umup_sweep.config._data import data_section
from umup_sweep.config._execution import execution_section
from umup_sweep.config._options import OptionContext, strategy_class, strategy_options
from umup_sweep.config._proxy import sweep_family
from umup_sweep.config._pruning import pruning_section
from umup_sweep.config._sections import (
    sp_multipliers,
    sweep_budget,
    sweep_defaults,
    sweep_metric,
    sweep_name,
    sweep_storage,
    sweep_train,
)
from umup_sweep.config._spaces import fit_to_strategy, hyperparameters
from umup_sweep.config._spec import (
    AnalysisSpec,
    HPSpace,
    SweepSpec,
    TargetSpec,
    TrainAxes,
)
from umup_sweep.config._target import sweep_target
from umup_sweep.config._tracking import sweep_tracking
from umup_sweep.config._validate import NONNEG, build_section, check_keys, fail, int_list
from umup_sweep.config._yaml import document, read_yaml

__all__ = ["load_sweep"]

_TOP_KEYS = (
    "name",
    "description",
    "proxy",
    "widths",
    "depths",
    "parametrization",
    "model",
    "seeds",
    "precisions",
    "strategy",
    "hyperparameters",
    "defaults",
    "train",
    "data",
    "metric",
    "divergence",
    "execution",
    "storage",
    "budget",
    "analysis",
    "strategy_options",
    "target",
    "tracking",
    "pruning",
)
_ALIASES = {"method": "strategy", "parameters": "hyperparameters"}


def _merge(
    base: dict[str, Any], extra: Mapping[str, Any], path: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Deep-merge `extra` (nested mappings and/or dotted keys) into a copy of `base`.

    An HP's search space (``hyperparameters.<hp>``) is replaced whole, not merged.

    Example:
        >>> _merge({"train": {"steps": 5, "batch_size": 4}}, {"train.steps": 50, "method": "tpe"})
        {'train': {'steps': 50, 'batch_size': 4}, 'strategy': 'tpe'}
    """
    out = copy.deepcopy(base)
    for k, v in extra.items():
        k = _ALIASES.get(k, k) if not path else k
        if "." in k:
            head, rest = k.split(".", 1)
            head = _ALIASES.get(head, head) if not path else head
            node = out.get(head)
            out[head] = _merge(node if isinstance(node, dict) else {}, {rest: v}, path + (head,))
        elif (
            isinstance(v, Mapping) and isinstance(out.get(k), dict) and path != ("hyperparameters",)
        ):
            out[k] = _merge(out[k], v, path + (k,))
        else:
            out[k] = copy.deepcopy(v)
    return out


def _normalise_aliases(data: dict[str, Any], source: str) -> dict[str, Any]:
    out = dict(data)
    for alias, canonical in _ALIASES.items():
        if alias in out:
            if canonical in out:
                raise fail(source, alias, f"give either {alias} or {canonical}, not both")
            out[canonical] = out.pop(alias)
    return _storage_shorthand(out)


def _storage_shorthand(data: dict[str, Any]) -> dict[str, Any]:
    """``storage: postgresql://...`` (a bare string) means ``storage: {url: postgresql://...}``."""
    storage = data.get("storage")
    if isinstance(storage, str) and storage:
        data = {**data, "storage": {"url": storage}}
    return data


def load_sweep(
    path: str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    target: TargetSpec | str | Path | None = None,
) -> SweepSpec:
    """Read, validate and resolve a sweep YAML (a path, or an already-parsed mapping).

    Args:
        path: the sweep file (or a mapping, reported as ``<inline>`` in errors).
        overrides: values laid over the file before validation, as nested mappings or dotted
            keys, e.g. ``{"execution.max_concurrent": 4, "train": {"steps": 50}}``.
        target: the target model (a `TargetSpec` or its file), in place of the sweep's
            ``target:`` (as ``umup-sweep run --target FILE``).

    Raises:
        ConfigError: one line naming the file, the dotted key and what was expected.

    Example:
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}
        >>> s = load_sweep({"name": "demo", "proxy": proxy, "hyperparameters": {
        ...     "lr": {"log2_range": [-2, 1]}}}, overrides={"train.steps": 50})
        >>> s.hyperparameters["lr"].values, s.train.steps, len(s.family.specs())
        ((0.25, 0.5, 1.0, 2.0), 50, 2)
    """
    if isinstance(path, Mapping):
        source = "<inline>"
        data = document(dict(path), source, "sweep")
    else:
        source = str(path)
        data = document(read_yaml(path), source, "sweep")
    data = _normalise_aliases(data, source)
    if overrides:
        data = _merge(data, overrides)
    return _sweep_from_mapping(data, source, target)


def _sweep_from_mapping(
    data: dict[str, Any], source: str, given_target: TargetSpec | str | Path | None = None
) -> SweepSpec:
    """The sections in a fixed order, so the first error reported is always the same one."""
    check_keys(data, _TOP_KEYS, source, "")
    name = sweep_name(data, source)
    target = sweep_target(data, source, given_target)
    family = sweep_family(data, source, target)
    seeds = int_list(data.get("seeds", [0]), source, "seeds", NONNEG, unique=True)
    strategy = data.get("strategy", "grid")
    cls = strategy_class(strategy, source)
    if "hyperparameters" not in data:
        raise fail(source, "hyperparameters", "missing: expected the HPs to sweep")
    spaces = fit_to_strategy(
        hyperparameters(data["hyperparameters"], source), strategy, cls.SAMPLED, source
    )
    budget = sweep_budget(data, strategy, cls.SAMPLED, source)
    defaults = sweep_defaults(data, family.base, source)
    sp_multipliers(data, family.base.parametrization, spaces, source)
    train, precisions, axes = sweep_train(data, source, family.base.vocab_size, family.base.seq_len)
    _axes_strategy(axes, strategy, source)
    if spaces.get("weight_decay", HPSpace()).coupled:  # every trial decays by lr × weight_decay
        train = dataclasses.replace(train, weight_decay_coupled=True)
    target_vocab = target.model.vocab_size if target is not None else None
    data_spec = data_section(data.get("data"), source, family.base.vocab_size, target_vocab)
    metric = sweep_metric(data, source)
    execution = execution_section(data.get("execution"), source)
    storage = sweep_storage(data.get("storage"), source)
    analysis = build_section(AnalysisSpec, data.get("analysis"), source, "analysis")
    tracking = sweep_tracking(data.get("tracking"), source)
    pruning = pruning_section(data.get("pruning"), source)
    ctx = OptionContext(source, spaces, family.widths, budget, seeds=tuple(seeds))
    return SweepSpec(
        name=name,
        family=family,
        hyperparameters=spaces,
        defaults=defaults,
        train=train,
        data=data_spec,
        seeds=tuple(seeds),
        precisions=precisions,
        strategy=strategy,
        metric=metric,
        budget=budget,
        execution=execution,
        storage=storage,
        analysis=analysis,
        strategy_options=strategy_options(data.get("strategy_options"), cls, ctx),
        source=source,
        target=target,
        train_axes=axes,
        tracking=tracking,
        pruning=pruning,
    )


def _axes_strategy(axes: TrainAxes | None, strategy: str, source: str) -> None:
    """TPE keeps one study per proxy and finds its history by width and depth, so it cannot
    keep the points of a train axis apart: refuse the pair."""
    if axes is None or strategy != "tpe":
        return
    key = "train.tokens" if axes.tokens else "train.steps" if axes.steps else "train.batch_size"
    raise fail(
        source,
        key,
        "a list of horizons or batch sizes runs with strategy grid, independent or random "
        "(tpe keeps one study per proxy and cannot tell the points apart)",
    )
