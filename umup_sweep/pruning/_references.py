"""`Pruner`: the finished trials of each proxy, kept as the pruning rule reads them, and the
`PruneBound` each new trial runs under.

The driver builds one from the store when a sweep starts (`Pruner.from_store`), gives it every
trial it commits (`add`) and asks it for the bound of each trial it submits (`attach`). Trials
of one *proxy* share everything but their hyperparameters and seed: the same shape, data,
horizon, batch and precision, so their curves are comparable step by step.

A trial the analysis will fit is never pruned, however far behind it is: the optimum is a
parabola through the seed means within `FIT_WINDOW` grid points of the best value, and a
value with a pruned seed drops out of it. So a trial runs unbounded when it shares the best
stored trial's configuration (another seed of it), or differs from it in one HP by at most
`FIT_WINDOW` grid values (the sweep's values of that HP and any other tried). What is pruned
is the far side of the sweep.

Example:
    >>> from umup_sweep.config import PruningSpec
    >>> from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec
    >>> base = TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(steps=4))
    >>> grid = {"lr": tuple(2.0**k for k in range(-8, 2))}  # the sweep's lr values
    >>> pruner = Pruner(PruningSpec(enabled=True, every=2, min_references=2), "val_loss", grid)
    >>> for lr, losses in ((2**-4, [3.0, 2.8, 2.6, 2.5]), (1.0, [2.9, 2.6, 2.5, 2.4])):
    ...     spec = base.with_hps(lr=lr)
    ...     curve = [(i, v, None) for i, v in enumerate(losses)]
    ...     pruner.add(spec, TrialResult(spec.trial_key, "ok", val_loss=losses[-1], curve=curve))
    >>> bound = pruner.attach(base.with_hps(lr=2**-8)).prune  # one checkpoint, after step 2
    >>> bound.best, round(bound.margin[0], 6)  # gains 2.9-2.5 and 2.75-2.4 differ by 0.05, ×2
    ((2.75,), 0.1)
    >>> pruner.attach(base.with_hps(lr=2.0)).prune is None  # next to the best: fitted, kept
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

from umup_sweep.config import PruningSpec
from umup_sweep.errors import StoreError
from umup_sweep.fitting import FIT_WINDOW
from umup_sweep.pruning._rule import Reference, checkpoint_every, prune_bound, window_means
from umup_sweep.spec import HP_DEFAULTS, HP_NAMES, TrialResult, TrialSpec
from umup_sweep.store import RunStore

__all__ = ["Pruner", "proxy_key"]


def proxy_key(spec: TrialSpec) -> str:
    """What the trials of one proxy share: the trial key with the HPs at their defaults and
    seed 0 (so lr, the multipliers, weight decay and the seed may differ, nothing else)."""
    return dataclasses.replace(spec.with_hps(**HP_DEFAULTS), seed=0).trial_key


class Pruner:
    """The stored references per proxy and the bounds they give (see the module docstring).

    Args:
        pruning: the sweep's `pruning:` settings (enabled or not: `attach` checks).
        metric: the sweep's metric (the trials' final value the rule ranks by).
        grid: the sweep's values of each swept HP (where it lists them), which place a trial
            relative to the best one.
    """

    def __init__(
        self, pruning: PruningSpec, metric: str, grid: dict[str, tuple[float, ...]] | None = None
    ) -> None:
        self.pruning = pruning
        self.metric = metric
        self.grid = {h: tuple(v) for h, v in (grid or {}).items()}
        # per proxy: each finished trial's curve summary and its HPs
        self._refs: dict[str, list[tuple[Reference, dict[str, float]]]] = defaultdict(list)

    @classmethod
    def from_store(cls, pruning: PruningSpec, store: RunStore) -> Pruner:
        """A pruner holding every finished (ok) trial of a `RunStore` with its curve."""
        spaces = store.sweep().hyperparameters
        pruner = cls(pruning, store.metric, {h: s.values for h, s in spaces.items() if s.values})
        if not pruning.enabled:
            return pruner
        results = store.results()
        ok = results[results["status"] == "ok"]
        specs = store.specs()
        for row in ok.itertuples(index=False):
            key = str(row.trial_key)
            final = getattr(row, store.metric)
            if key not in specs or final is None or not math.isfinite(float(final)):
                continue
            try:
                losses = store.curve(key)["train_loss"].astype(float).tolist()
            except StoreError:  # a missing or damaged curve file: not a reference
                continue
            pruner._add(specs[key], float(final), losses)
        return pruner

    def add(self, spec: TrialSpec, result: TrialResult) -> None:
        """Keep a committed trial as a reference of its proxy (ok trials with a full curve)."""
        final = getattr(result, self.metric, None)
        if result.status != "ok" or final is None or not math.isfinite(final):
            return
        self._add(spec, float(final), [row[1] for row in result.curve])

    def _add(self, spec: TrialSpec, final: float, losses: list[float]) -> None:
        if len(losses) < spec.train.steps or not all(math.isfinite(v) for v in losses):
            return
        every = checkpoint_every(spec.train, self.pruning.every)
        self._refs[proxy_key(spec)].append(
            (Reference(final, window_means(losses, every)), spec.hps)
        )

    def attach(self, spec: TrialSpec) -> TrialSpec:
        """`spec` with the bound it should run under (unchanged when pruning is off or the
        proxy has too few references yet)."""
        key = proxy_key(spec)
        if not self.pruning.enabled or self._fitted(spec.hps, key):
            return spec
        train = spec.train
        bound = prune_bound(
            [ref for ref, _ in self._refs.get(key, [])],
            steps=train.steps,
            every=checkpoint_every(train, self.pruning.every),
            margin_factor=self.pruning.margin_factor,
            min_references=self.pruning.min_references,
        )
        return spec if bound is None else dataclasses.replace(spec, prune=bound)

    def _fitted(self, hps: dict[str, float], key: str) -> bool:
        """Whether a trial with `hps` lies where the analysis will fit (see the module
        docstring): the best reference's configuration, or one HP at most `FIT_WINDOW`
        tried values away from it."""
        refs = self._refs.get(key, [])
        if not refs:
            return False
        best = min(refs, key=lambda ref: ref[0].final)[1]
        differ = [h for h in HP_NAMES if not math.isclose(hps[h], best[h], rel_tol=1e-9)]
        if len(differ) != 1:
            return not differ  # another seed of the best configuration
        h = differ[0]
        values = [*self.grid.get(h, ()), *(c[h] for _, c in refs), hps[h]]
        tried = sorted({round(v, 12) for v in values})
        return abs(tried.index(round(hps[h], 12)) - tried.index(round(best[h], 12))) <= FIT_WINDOW
