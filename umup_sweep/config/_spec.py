"""Sweep and proxy-family specifications (the validated form of `sweeps/*.yaml`, `proxies/*.yaml`).

This module holds the data shapes only; `umup_sweep.config` turns YAML into them and
raises `ConfigError` (one line: file, key, expectation) on anything malformed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from umup_sweep.spec import DataSpec, ModelSpec, TrainSpec

ExecutorName = Literal["ray", "serial"]
Metric = Literal["val_loss", "final_train_loss"]


@dataclass(frozen=True)
class ProxyFamily:
    """A base proxy spec plus the widths and depths to vary.

    By default every width keeps the base's `head_dim` (n_heads = width / head_dim) and its
    `n_kv_heads`. `fixed_heads` keeps the base's `n_heads` instead (head_dim = width /
    n_heads); `kv_group` keeps the number of query heads per kv head (n_kv_heads = n_heads /
    kv_group), as the families derived from a target do. `description` says how the family
    was made (for messages only, so not part of equality).

    Example:
        >>> base = ModelSpec(width=256, head_dim=32, n_kv_heads=2)
        >>> fam = ProxyFamily("f", base, (256, 512), (2,), kv_group=4)
        >>> [(s.n_heads, s.kv_heads, s.head_dim) for s in fam.specs()]
        [(8, 2, 32), (16, 4, 32)]
        >>> fam = ProxyFamily("f", base, (256, 512), (2,), fixed_heads=True)
        >>> [(s.n_heads, s.kv_heads, s.head_dim) for s in fam.specs()]
        [(8, 2, 32), (8, 2, 64)]
    """

    name: str
    base: ModelSpec
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    fixed_heads: bool = False
    kv_group: int | None = None
    description: str = field(default="", compare=False)

    def spec(self, width: int, depth: int) -> ModelSpec:
        """The family's proxy at `width` and `depth` (ValueError if the width cannot hold its
        heads)."""
        n_heads = self.base.n_heads if self.fixed_heads else None
        changes: dict[str, Any] = {"width": width, "depth": depth, "n_heads": n_heads}
        if self.kv_group is not None:
            heads = n_heads or width // self.base.head_dim
            kv = heads // self.kv_group if heads % self.kv_group == 0 else 0
            changes["n_kv_heads"] = None if kv == heads else kv
        return dataclasses.replace(self.base, **changes)

    def specs(self) -> list[ModelSpec]:
        """Every (width, depth) proxy of the family, narrowest and shallowest first."""
        return [self.spec(w, d) for d in self.depths for w in self.widths]


@dataclass(frozen=True)
class HPSpace:
    """Where one hyperparameter is searched.

    `values` are the grid points (grid/independent strategies); `low`/`high`/`log` the
    distribution (random/tpe). Both may be set; a sweep validates that the strategy has what it
    needs. `coupled` ("lr", weight_decay only): every trial of the sweep decays by lr × its
    weight decay per step (`TrainSpec.weight_decay_coupled`), not by the weight decay itself.
    """

    values: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = True
    coupled: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TrainAxes:
    """The training axes every proxy runs along (a list under `train:`): horizons and batch
    sizes. Empty tuples mean the one value of `SweepSpec.train`.

    `steps` are horizons in optimizer steps; `tokens` horizons in tokens, each run at
    ``steps = tokens / (batch_size × seq_len)`` (so a batch-size list at one token budget
    keeps the tokens fixed); at most one of the two. `batch_sizes` are sequences per step.
    `seq_len` is the proxies' sequence length (what turns tokens into steps).

    Example:
        >>> axes = TrainAxes(tokens=(4096,), batch_sizes=(2, 4), seq_len=128)
        >>> axes.points(TrainSpec())
        [(16, 2), (8, 4)]
        >>> TrainAxes(steps=(10, 20)).points(TrainSpec(batch_size=4))
        [(10, 4), (20, 4)]
    """

    steps: tuple[int, ...] = ()
    tokens: tuple[int, ...] = ()
    batch_sizes: tuple[int, ...] = ()
    seq_len: int = 128

    def points(self, train: TrainSpec) -> list[tuple[int, int]]:
        """Every (steps, batch_size) the proxies run at, horizons outermost."""
        batches = self.batch_sizes or (train.batch_size,)
        if self.tokens:
            return [(t // (b * self.seq_len), b) for t in self.tokens for b in batches]
        return [(s, b) for s in self.steps or (train.steps,) for b in batches]


# `execution.fuse`: "off", "auto" or K (see umup_sweep.fused); not a trial's identity.
FuseSetting = int | Literal["auto", "off"]


@dataclass(frozen=True)
class ExecutionSpec:
    """How trials are executed. `fuse` packs compatible trials into fused groups of up to K
    (an int), of the K `auto` picks per width and device, or not at all (`off`)."""

    executor: ExecutorName = "ray"
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: str | None = None
    max_failures: int = 2
    fuse: FuseSetting = "off"


@dataclass(frozen=True)
class StorageSpec:
    """Where results live: the run directory, and optionally an Optuna storage URL."""

    run_dir: Path = Path("runs")
    url: str | None = None


@dataclass(frozen=True)
class AnalysisSpec:
    """Transfer-verdict settings."""

    tolerance: float = 0.25  # |drift| in log2 per width doubling that still "transfers"
    precision_tolerance: float = 0.5  # |optimum shift| in log2 vs fp32 that still "holds"
    precision_loss_threshold: float = 0.05  # loss gap (nats) at the optimum that "degrades"


@dataclass(frozen=True)
class PruningSpec:
    """When running trials stop early as hopeless (`pruning:`, `umup-sweep run --prune`);
    `umup_sweep.pruning` has the rule. Not part of the sweep's identity.

    Attributes:
        enabled: prune at all (off by default).
        every: steps between checkpoints (None: `train.eval_every`, else a tenth of the steps).
        margin_factor: the safety factor on the catch-up measured in the stored curves.
        min_references: finished trials a proxy needs before any of its trials is pruned.
    """

    enabled: bool = False
    every: int | None = None
    margin_factor: float = 2.0
    min_references: int = 4


@dataclass(frozen=True)
class TrackingSpec:
    """Where finished trials are also logged (`tracking:`, `umup-sweep run --track`): W&B,
    MLflow and/or TensorBoard (`umup_sweep.tracking`). Not part of the sweep's identity.

    Attributes:
        backends: the trackers, by name (`umup_sweep.tracking.TRACKERS`).
        dir: their local files (None: ``<run_dir>/tracking``).
        project: W&B project / MLflow experiment (None: the sweep name).
        options: the backends' own options, every one explicit (flat: the names differ).

    Example:
        >>> TrackingSpec(("wandb",), options={"mode": "offline"}).backends
        ('wandb',)
    """

    backends: tuple[str, ...]
    dir: Path | None = None
    project: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingPlan:
    """How the target model will be trained: total tokens, sequences per batch, weight decay
    and sequence length (None: not given)."""

    tokens: int | None = None
    batch_size: int | None = None  # sequences per optimizer step
    weight_decay: float | None = None
    seq_len: int | None = None


@dataclass(frozen=True)
class TargetSpec:
    """The model the sweep's hyperparameters are meant for: its real shapes (`model`, with
    parametrization umup) and its training plan.

    `fmt` is the format it was read from ("umup-sweep" YAML or "hf-config", a Hugging Face
    config.json) and `source` the file; neither is part of equality, so the same target read
    from either compares equal. `norm_eps` records a config's RMSNorm epsilon (our norms use
    their own); `notes` are the differences from the described model that are accepted and
    must be shown to the user (e.g. Qwen2's q/k/v biases).
    """

    model: ModelSpec
    plan: TrainingPlan = field(default_factory=TrainingPlan)
    source: str = field(default="<inline>", compare=False)
    fmt: str = field(default="umup-sweep", compare=False)
    name: str = "target"
    norm_eps: float | None = field(default=None, compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: what to vary, how to search, how to run, where to store."""

    name: str
    family: ProxyFamily
    hyperparameters: dict[str, HPSpace]
    defaults: dict[str, float]  # every HP's value when not swept (incl. lr, weight_decay)
    train: TrainSpec  # its lr/weight_decay are unused: trials take them from `defaults`
    data: DataSpec = field(default_factory=DataSpec)
    seeds: tuple[int, ...] = (0,)
    # The precision axis: every proxy runs at each; empty means (train.precision,).
    precisions: tuple[str, ...] = ()
    strategy: str = "grid"  # a name in `umup_sweep.search.STRATEGIES`
    metric: Metric = "val_loss"
    budget: int | None = None  # trials per proxy for random/tpe
    execution: ExecutionSpec = field(default_factory=ExecutionSpec)
    storage: StorageSpec = field(default_factory=StorageSpec)
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)
    strategy_options: dict[str, Any] = field(default_factory=dict)  # see the strategy's OPTIONS
    # The model the results are for (top-level `target:` or `--target`); not hashed.
    target: TargetSpec | None = None
    # Horizons and batch sizes every proxy runs at (lists under `train:`); None: `train` only.
    train_axes: TrainAxes | None = None
    # Experiment trackers the trials are also logged to (`tracking:`); not hashed.
    tracking: TrackingSpec | None = None
    # When running trials stop early as hopeless (`pruning:`); not hashed.
    pruning: PruningSpec = field(default_factory=PruningSpec)
    # Where the sweep was read from: for messages only, so not part of equality.
    source: str = field(default="<inline>", compare=False)

    def __post_init__(self) -> None:
        if not self.precisions:
            object.__setattr__(self, "precisions", (self.train.precision,))

    @property
    def parametrization(self) -> str:
        """The family's parametrization (`umup` or `sp`)."""
        return self.family.base.parametrization

    def for_precision(self, precision: str) -> SweepSpec:
        """The same sweep at one precision only (what a strategy runs per precision).

        Example:
            >>> sweep = SweepSpec("s", ProxyFamily("f", ModelSpec(), (64,), (2,)), {}, {},
            ...                   TrainSpec(), precisions=("fp32", "fp8_sim"))
            >>> part = sweep.for_precision("fp8_sim")
            >>> part.precisions, part.train.precision
            (('fp8_sim',), 'fp8_sim')
        """
        train = dataclasses.replace(self.train, precision=precision)  # type: ignore[arg-type]
        return dataclasses.replace(self, train=train, precisions=(precision,))

    def train_specs(self) -> list[TrainSpec]:
        """The TrainSpec of every point of the train axes (just `train` without axes).

        Example:
            >>> sweep = SweepSpec("s", ProxyFamily("f", ModelSpec(), (64,), (2,)), {}, {},
            ...                   TrainSpec(), train_axes=TrainAxes(steps=(150, 300)))
            >>> [t.steps for t in sweep.train_specs()]
            [150, 300]
        """
        if self.train_axes is None:
            return [self.train]
        return [
            dataclasses.replace(self.train, steps=s, batch_size=b)
            for s, b in self.train_axes.points(self.train)
        ]

    def for_train(self, train: TrainSpec) -> SweepSpec:
        """The same sweep at one training setting (precision, steps, batch size) only."""
        return dataclasses.replace(
            self, train=train, precisions=(train.precision,), train_axes=None
        )

    def parts(self) -> dict[str, SweepSpec]:
        """One single-setting sweep per precision × train point, by label: the precision
        alone without train axes (so precision-only runs read as before), else
        ``fp32 300x16`` (steps × batch size).

        Example:
            >>> sweep = SweepSpec("s", ProxyFamily("f", ModelSpec(), (64,), (2,)), {}, {},
            ...                   TrainSpec(), train_axes=TrainAxes(steps=(150, 300)))
            >>> list(sweep.parts())
            ['fp32 150x16', 'fp32 300x16']
        """
        out: dict[str, SweepSpec] = {}
        for precision in self.precisions:
            for train in self.for_precision(precision).train_specs():
                label = precision
                if self.train_axes is not None:
                    label += f" {train.steps}x{train.batch_size}"
                out[label] = self.for_train(train)
        return out

    @property
    def swept(self) -> tuple[str, ...]:
        """Names of the swept HPs, in declaration order."""
        return tuple(self.hyperparameters)

    @property
    def run_dir(self) -> Path:
        """The run directory (`<storage.run_dir>/<name>` unless run_dir already ends in name)."""
        base = Path(self.storage.run_dir)
        return base if base.name == self.name else base / self.name
