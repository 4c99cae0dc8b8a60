"""Builders of a sweep's sections (name, budget, defaults, train + precisions, metric, storage).

Each takes the sweep's top-level mapping (aliases already resolved) and its source, and
returns the validated value or raises `ConfigError`. `umup_sweep.config._sweep` assembles them.

Example:
    >>> sweep_defaults({"defaults": {"lr": "0.5"}}, ModelSpec(), "s.yaml")["lr"]
    0.5
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from umup_sweep.config._secrets import MissingVariable, load_url
from umup_sweep.config._spaces import hp_name, hp_value
from umup_sweep.config._spec import Metric, StorageSpec, TrainAxes
from umup_sweep.config._train_axes import train_axes
from umup_sweep.config._validate import (
    as_mapping,
    build_section,
    check_keys,
    did_you_mean,
    fail,
    fields,
    join,
    number,
)
from umup_sweep.errors import UnsetVariableError
from umup_sweep.spec import HP_DEFAULTS, MODEL_HPS, ModelSpec, TrainSpec

__all__ = [
    "precision_names",
    "sp_multipliers",
    "sweep_budget",
    "sweep_defaults",
    "sweep_metric",
    "sweep_name",
    "sweep_storage",
    "sweep_train",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_METRICS = typing.get_args(Metric)


def sweep_name(data: Mapping[str, Any], source: str) -> str:
    """`name` (default: the file stem): a folder under the runs directory, so it must not
    escape it. `description` is checked (a string) and dropped."""
    default_name = Path(source).stem if source != "<inline>" else None
    name = data.get("name", default_name)
    if name is None:
        raise fail(source, "name", "missing: expected the sweep name")
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise fail(
            source,
            "name",
            "expected letters, digits, '.', '_' or '-' (no path separators or '..')",
            name,
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail(source, "description", "expected a string", description)
    return name


def sweep_budget(data: Mapping[str, Any], strategy: str, sampled: bool, source: str) -> int | None:
    """`budget`: trials per proxy, required by sampling strategies and refused by the others."""
    budget = data.get("budget")
    if sampled:
        if budget is None:
            raise fail(source, "budget", f"missing: strategy {strategy} needs a trial budget")
        budget = number(budget, source, "budget", integer=True)
        if budget < 1:
            raise fail(source, "budget", "expected trials per proxy >= 1", budget)
        return int(budget)
    if budget is not None:
        raise fail(source, "budget", f"only random/tpe take a budget (strategy is {strategy})")
    return None


def sweep_defaults(data: Mapping[str, Any], base: ModelSpec, source: str) -> dict[str, float]:
    """Every HP's value when not swept: built-in HP defaults < proxy base < `defaults:`."""
    defaults = dict(HP_DEFAULTS) | {n: float(getattr(base, n)) for n in MODEL_HPS}
    for k, v in as_mapping(data.get("defaults"), source, "defaults").items():
        key = join("defaults", k)
        defaults[hp_name(k, source, key)] = hp_value(k, v, source, key)
    return defaults


def sp_multipliers(
    data: Mapping[str, Any], parametrization: str, swept: Iterable[str], source: str
) -> None:
    """Refuse u-μP multipliers (`spec.MODEL_HPS`) in an SP sweep: swept under
    `hyperparameters:`, or set off their default 1.0 under `defaults:` or `model:`. The SP
    model ignores them, so such trials would only repeat each other.

    Example:
        >>> sp_multipliers({"defaults": {"residual_mult": 1}}, "sp", ["lr"], "s.yaml")  # fine
        >>> try:
        ...     sp_multipliers({}, "sp", ["lr", "ffn_act_mult"], "s.yaml")
        ... except Exception as exc:
        ...     print(exc.key)
        hyperparameters.ffn_act_mult
    """
    if parametrization != "sp":
        return
    what = "is a u-μP multiplier that SP (parametrization: sp) does not have"
    for name in swept:
        if name in MODEL_HPS:
            key = join("hyperparameters", name)
            raise fail(source, key, f"{name} {what}; sweep only lr (and weight_decay) for SP")
    for section in ("defaults", "model"):
        for name, value in as_mapping(data.get(section), source, section).items():
            key = join(section, name)
            if name in MODEL_HPS and number(value, source, key) != HP_DEFAULTS[name]:
                raise fail(source, key, f"{name} {what}; leave it at 1.0 or remove it", value)


# A loss above ln(vocab) + this many nats (a uniform guess plus a margin) is the default
# divergence limit when that is above TrainSpec's 10: a 32000-token proxy starts at 10.4.
DIVERGE_MARGIN = 2.0


def vocab_diverge_loss(
    train: TrainSpec, vocab_size: int, given: str | None, source: str
) -> TrainSpec:
    """`train` with a divergence limit that fits the vocabulary: a trial starts near the
    uniform guess, ln(vocab_size) nats, so a limit at or below it would mark every trial
    diverged at step 0. A limit the user gave (`given`: its key) must lie above it (else a
    one-line error); the default 10 is raised to ln(vocab_size) + `DIVERGE_MARGIN` when that
    is larger (so byte-level and small vocabularies keep 10, and their trial keys).

    Example:
        >>> vocab_diverge_loss(TrainSpec(), 256, None, "s.yaml").diverge_loss
        10.0
        >>> vocab_diverge_loss(TrainSpec(), 32000, None, "s.yaml").diverge_loss
        12.37
    """
    floor = math.log(vocab_size)
    if given is not None:
        if train.diverge_loss <= floor:
            raise fail(
                source,
                given,
                f"expected more than ln(vocab_size {vocab_size}) = {floor:.2f}, the loss of a "
                "uniform guess: every trial would start diverged",
                train.diverge_loss,
            )
        return train
    if floor + DIVERGE_MARGIN <= train.diverge_loss:
        return train
    return dataclasses.replace(train, diverge_loss=round(floor + DIVERGE_MARGIN, 2))


def sweep_train(
    data: Mapping[str, Any], source: str, vocab_size: int = 256, seq_len: int = 128
) -> tuple[TrainSpec, tuple[str, ...], TrainAxes | None]:
    """`train:` (with `divergence:`), the `precisions:` axis (train.precision is its first)
    and the train axes (lists of `steps` / `batch_size`, or `tokens`: `config._train_axes`;
    the TrainSpec holds their first point). The divergence limit fits the proxies'
    `vocab_size` (`vocab_diverge_loss`); `seq_len` turns tokens into steps.

    lr and weight_decay are hyperparameters: they live in `defaults`/`hyperparameters`, and
    the TrainSpec keeps its own (unused) values for them.
    """
    train_raw = as_mapping(data.get("train"), source, "train")
    for k in ("lr", "weight_decay"):
        if k in train_raw:
            raise fail(source, f"train.{k}", f"{k} is a hyperparameter: set defaults.{k}")
    sizes, axes = train_axes(train_raw, source, seq_len)
    rest = {k: v for k, v in train_raw.items() if k not in ("steps", "batch_size", "tokens")}
    train_vals = fields(TrainSpec, rest, source, "train") | sizes
    given = "train.diverge_loss" if "diverge_loss" in train_vals else None
    max_loss = _max_loss(data, source)
    if max_loss is not None:
        given = "divergence.max_loss"
        if "diverge_loss" in train_vals and train_vals["diverge_loss"] != max_loss:
            raise fail(source, "divergence.max_loss", "conflicts with train.diverge_loss", max_loss)
        train_vals["diverge_loss"] = max_loss
    if "device" in train_vals:
        train_vals["device"] = train_vals["device"].strip().lower()
    precisions = _precisions(data.get("precisions"), train_vals.get("precision"), source)
    train_vals["precision"] = precisions[0]
    train = vocab_diverge_loss(TrainSpec(**train_vals), vocab_size, given, source)
    return train, precisions, axes


def _max_loss(data: Mapping[str, Any], source: str) -> float | None:
    """`divergence: {max_loss: x}` (= train.diverge_loss), or None."""
    div = as_mapping(data.get("divergence"), source, "divergence")
    check_keys(div, ("max_loss",), source, "divergence")
    if "max_loss" not in div:
        return None
    max_loss = number(div["max_loss"], source, "divergence.max_loss")
    if max_loss <= 0:
        raise fail(source, "divergence.max_loss", "expected > 0", max_loss)
    return float(max_loss)


def precision_names() -> tuple[str, ...]:
    """The precisions a trial can run in (`TrainSpec.precision`; = `precision.PRECISIONS`).

    Example:
        >>> precision_names()
        ('fp32', 'bf16', 'fp8_sim')
    """
    return typing.get_args(typing.get_type_hints(TrainSpec)["precision"])


def _precisions(value: Any, train_precision: str | None, source: str) -> tuple[str, ...]:
    """The `precisions:` axis (default `[train.precision]`, else `[fp32]`).

    `train.precision` is the axis's default; given together with `precisions` it must be one
    of them, and the resolved `train.precision` is the axis's first entry.
    """
    names = precision_names()
    if value is None:
        return (train_precision or "fp32",)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise fail(source, "precisions", f"expected a non-empty list of {', '.join(names)}", value)
    for i, v in enumerate(value):
        if v not in names:
            hint = did_you_mean(str(v), names)
            raise fail(
                source, join("precisions", i), f"expected one of {', '.join(names)}{hint}", v
            )
    if len(set(value)) != len(value):
        raise fail(source, "precisions", "expected distinct precisions", value)
    if train_precision is not None and train_precision not in value:
        raise fail(
            source,
            "train.precision",
            f"expected one of precisions ({', '.join(value)}), or leave it out",
            train_precision,
        )
    return tuple(value)


def sweep_metric(data: Mapping[str, Any], source: str) -> Metric:
    """`metric`: val_loss | final_train_loss, or ``{name:, goal: minimize}`` (W&B style).

    Example:
        >>> sweep_metric({"metric": {"name": "final_train_loss", "goal": "minimize"}}, "s.yaml")
        'final_train_loss'
    """
    metric = data.get("metric", "val_loss")
    metric_key = "metric"
    if isinstance(metric, Mapping):
        m = as_mapping(metric, source, "metric")
        check_keys(m, ("name", "goal"), source, "metric")
        if m.get("goal", "minimize") != "minimize":
            raise fail(source, "metric.goal", "expected minimize (losses)", m.get("goal"))
        metric_key, metric = "metric.name", m.get("name")
    if metric not in _METRICS:
        raise fail(source, metric_key, "expected val_loss or final_train_loss", metric)
    return typing.cast(Metric, metric)


def sweep_storage(value: Any, source: str) -> StorageSpec:
    """`storage:` ({run_dir, url}, or a bare URL string): the URL's ``${NAME}`` references are
    checked against the environment now, and the spec keeps its printable form (references as
    written, a literal password as ``***``; see `umup_sweep.config._secrets`). No message shows
    the URL as given: it may hold a password.

    Example:
        >>> sweep_storage("postgresql://me:secret@db/sweeps", "s.yaml").url
        'postgresql://me:***@db/sweeps'
        >>> try:
        ...     sweep_storage({"url": "postgresql://me:${NO_SUCH_VAR_X}@db/s"}, "s.yaml")
        ... except Exception as exc:
        ...     print(str(exc).split(" (")[0])
        s.yaml: storage.url: environment variable NO_SUCH_VAR_X is not set
    """
    if isinstance(value, str) and value:
        value = {"url": value}
    if value is not None and not isinstance(value, Mapping):
        what = type(value).__name__
        raise fail(source, "storage", f"expected a mapping {{run_dir, url}} or a URL, got a {what}")
    url = (value or {}).get("url")
    if url is not None and not isinstance(url, str):
        raise fail(source, "storage.url", f"expected a storage URL, got a {type(url).__name__}")
    storage = build_section(StorageSpec, value, source, "storage")
    if not storage.url:
        return storage
    try:
        return dataclasses.replace(storage, url=load_url(storage.url))
    except MissingVariable as exc:
        if exc.name is None:
            raise fail(source, "storage.url", exc.expected()) from None
        raise UnsetVariableError(source, "storage.url", exc.expected()) from None
