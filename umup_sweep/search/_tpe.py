"""TPE search: Optuna's `TPESampler`, one in-memory study per proxy rebuilt from the results.

Each call re-creates the study from the results frame (finished configurations as COMPLETE,
diverged ones at the sweep's divergence loss, failed ones as FAIL, pending ones as RUNNING so
the constant-liar TPE steers away from them) and asks for new configurations. The sampler seed
is derived from `sampler_seed`, the proxy and the history size, so a call is a pure function
of (results, pending): deterministic and resumable. `budget` configurations per proxy, each
run at every sweep seed (its value is the mean over seeds).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import optuna
import pandas as pd
from optuna.trial import TrialState, create_trial

from umup_sweep.search._base import BaseStrategy
from umup_sweep.search._sampling import distributions, quiet_optuna, sampler_seed
from umup_sweep.search._trials import ResultIndex, make_trial, unstarted
from umup_sweep.spec import ModelSpec, TrialSpec

if TYPE_CHECKING:
    from umup_sweep.config import OptionContext, SweepSpec

__all__ = ["TPEStrategy"]

Config = tuple[float, ...]


class TPEStrategy(BaseStrategy):
    """Tree-structured Parzen estimator over the swept HPs, `budget` configurations per proxy.

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
        >>> sweep = load_sweep({"name": "t", "proxy": proxy, "strategy": "tpe", "budget": 12,
        ...                     "hyperparameters": {"lr": {"log2_range": [-3, 2]}}})
        >>> strategy = TPEStrategy(sweep)
        >>> strategy.n_startup, len(strategy.propose(pd.DataFrame(), [], max_new=2))
        (4, 2)
    """

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "sampler_seed": 0,  # seeds the sampler (with the proxy and the history size)
        "n_startup_trials": None,  # random draws before TPE models (None: `default_startup`)
    }
    SAMPLED: ClassVar[bool] = True

    @staticmethod
    def default_startup(budget: int) -> int:
        """Random start-up draws per proxy: a third of the budget, at least 2, at most 10.

        Example:
            >>> TPEStrategy.default_startup(12), TPEStrategy.default_startup(100)
            (4, 10)
        """
        return max(2, min(10, budget // 3))

    @classmethod
    def parse_options(cls, options: dict[str, Any], ctx: OptionContext) -> dict[str, Any]:
        """`sampler_seed` an integer, `n_startup_trials` an integer >= 0 (resolved if None).

        Example:
            >>> from umup_sweep.config import OptionContext
            >>> TPEStrategy.parse_options(dict(TPEStrategy.OPTIONS), OptionContext(budget=30))
            {'sampler_seed': 0, 'n_startup_trials': 10}
        """
        opts = {**options, "sampler_seed": sampler_seed(options, ctx)}
        n = opts["n_startup_trials"]
        if n is None:
            n = cls.default_startup(ctx.budget or 0)
        n = ctx.number(n, "n_startup_trials", integer=True)
        if n < 0:
            raise ctx.fail("n_startup_trials", "expected >= 0", n)
        opts["n_startup_trials"] = n
        return opts

    def __init__(self, sweep: SweepSpec, data_fingerprint: str = "") -> None:
        super().__init__(sweep, data_fingerprint)
        if sweep.budget is None:
            raise ValueError("TPE search needs sweep.budget")
        self.budget = sweep.budget
        opts = sweep.strategy_options
        self.sampler_seed = int(opts.get("sampler_seed", 0))
        n_startup = opts.get("n_startup_trials")
        self.n_startup = self.default_startup(self.budget) if n_startup is None else n_startup
        self.names = list(sweep.hyperparameters)
        self.dists = distributions(sweep)
        self.models = sweep.family.specs()
        self.label = ",".join(self.names)

    def _trial(self, model: ModelSpec, config: Config, seed: int) -> TrialSpec:
        hps = dict(zip(self.names, config, strict=True))
        return make_trial(
            self.sweep, model, hps, seed, self.data_fingerprint, stage="tpe", hp=self.label
        )

    def _clip(self, name: str, value: float) -> float:
        """Inside the distribution (Optuna refuses out-of-range params in history)."""
        space = self.sweep.hyperparameters[name]
        assert space.low is not None and space.high is not None
        return min(max(value, space.low), space.high)

    def _same_proxy(self, model: ModelSpec, width: int, depth: int, param: str | None) -> bool:
        return (
            model.width == width
            and model.depth == depth
            and (param is None or param == model.parametrization)
        )

    def _history(self, results: pd.DataFrame, model: ModelSpec) -> dict[Config, dict[int, float]]:
        """Finished losses per configuration and seed for one proxy."""
        out: dict[Config, dict[int, float]] = defaultdict(dict)
        if results is None or len(results) == 0:
            return out
        index = ResultIndex(results, self.sweep.metric)
        has_param = "parametrization" in results.columns
        for row in results.itertuples(index=False):
            param = row.parametrization if has_param else None
            if not self._same_proxy(model, int(row.width), int(row.depth), param):
                continue
            if int(row.seed) not in self.sweep.seeds:
                continue
            config = tuple(float(getattr(row, n)) for n in self.names)
            out[config][int(row.seed)] = index.loss(str(row.trial_key))
        return out

    def _study(
        self,
        model_index: int,
        configs: list[Config],
        history: dict[Config, dict[int, float]],
    ) -> optuna.Study:
        quiet_optuna()
        seed = (self.sampler_seed * 1_000_003 + model_index * 10_007 + len(configs)) % 2**32
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=self.n_startup, constant_liar=True
        )
        study = optuna.create_study(sampler=sampler, direction="minimize")
        for config in configs:
            params = {n: self._clip(n, v) for n, v in zip(self.names, config, strict=True)}
            losses = history.get(config, {})
            if len(losses) < len(self.sweep.seeds):
                frozen = create_trial(
                    state=TrialState.RUNNING, params=params, distributions=self.dists
                )
            elif any(math.isinf(x) for x in losses.values()):
                frozen = create_trial(
                    params=params, distributions=self.dists, value=self.sweep.train.diverge_loss
                )
            elif all(math.isnan(x) for x in losses.values()):
                frozen = create_trial(
                    state=TrialState.FAIL, params=params, distributions=self.dists
                )
            else:
                value = statistics.fmean(x for x in losses.values() if not math.isnan(x))
                frozen = create_trial(params=params, distributions=self.dists, value=value)
            study.add_trial(frozen)
        return study

    def propose(
        self, results: pd.DataFrame, pending: Sequence[TrialSpec], max_new: int
    ) -> list[TrialSpec]:
        index = ResultIndex(results, self.sweep.metric)
        out: list[TrialSpec] = []

        def full() -> bool:
            return len(unstarted(out, index, pending, max_new)) >= max_new

        for mi, model in enumerate(self.models):
            if full():
                break
            history = self._history(results, model)
            started: dict[Config, set[int]] = defaultdict(set)
            for config, losses in history.items():
                started[config].update(losses)
            for t in pending:
                if self._same_proxy(model, t.model.width, t.model.depth, t.model.parametrization):
                    hps = t.hps
                    started[tuple(hps[n] for n in self.names)].add(t.seed)
            configs = sorted(started)
            # Finish configurations some of whose seeds were never handed out.
            for config in configs:
                out += [self._trial(model, config, s) for s in self.sweep.seeds]
            remaining = self.budget - len(configs)
            if remaining <= 0 or full():
                continue
            study = self._study(mi, configs, history)
            while remaining > 0 and not full():
                params = study.ask(self.dists).params  # stays RUNNING: the constant liar
                config = tuple(float(params[n]) for n in self.names)
                out += [self._trial(model, config, s) for s in self.sweep.seeds]
                remaining -= 1
        return unstarted(out, index, pending, max_new)

    def total_estimate(self, results: pd.DataFrame) -> int:
        return self.budget * len(self.models) * len(self.sweep.seeds)
