"""Fakes for the store/executor/driver tests: a trial function with a known answer and a tiny
sweep. The strategy is always the real one (`umup_sweep.search.GridStrategy`). A plain module
(not conftest) so test files and subprocess driver scripts can import it; conftest registers it
to be pickled by value for Ray workers.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from umup_sweep.config import ExecutionSpec, HPSpace, ProxyFamily, StorageSpec, SweepSpec
from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec


@dataclass
class FakeTrial:
    """A trial function with a known answer: loss = 2 + 0.1·(log2 lr + 1)² + 8/width + 0.01·seed.

    Every attempt appends `<trial_key> <lr>` to `log` (to count runs). `lr >= diverge_at`
    returns status diverged; lr in `fail_lrs` raises on every attempt; lr in `flaky_lrs`
    raises on its first attempt only; lr in `crash_lrs` kills its process (os._exit) on the
    first attempt. `sleep` seconds of wall time per trial (busy CPU if `busy`).
    """

    log: Path
    fail_lrs: tuple[float, ...] = ()
    flaky_lrs: tuple[float, ...] = ()
    crash_lrs: tuple[float, ...] = ()
    diverge_at: float = math.inf
    sleep: float = 0.0
    busy: bool = False
    curve_len: int = 3

    def attempts(self, key: str) -> int:
        if not self.log.exists():
            return 0
        return sum(1 for line in self.log.read_text().splitlines() if line.split()[0] == key)

    def __call__(self, spec: TrialSpec) -> TrialResult:
        key, lr = spec.trial_key, spec.train.lr
        before = self.attempts(key)
        with open(self.log, "a") as fh:
            fh.write(f"{key} {lr!r} {os.getpid()}\n")
        start = time.perf_counter()
        if self.sleep:
            if self.busy:
                while time.perf_counter() - start < self.sleep:
                    pass
            else:
                time.sleep(self.sleep)
        if lr in self.fail_lrs:
            raise ValueError(f"boom at lr={lr}")
        if lr in self.flaky_lrs and before == 0:
            raise RuntimeError("transient failure")
        if lr in self.crash_lrs and before == 0:
            os._exit(1)
        if lr >= self.diverge_at:
            return TrialResult(key, "diverged", final_train_loss=math.inf, steps=1)
        loss = expected_loss(spec)
        curve = [(s, loss + 1.0 / (s + 1), None) for s in range(self.curve_len)]
        curve[-1] = (self.curve_len - 1, curve[-1][1], loss)
        return TrialResult(
            key,
            "ok",
            final_train_loss=loss + 0.05,
            val_loss=loss,
            steps=self.curve_len,
            tokens=self.curve_len * 128,
            wall_s=time.perf_counter() - start,
            n_params=spec.model.width * 100,
            curve=curve,
        )


def expected_loss(spec: TrialSpec) -> float:
    """The oracle FakeTrial reports for an ok trial."""
    return 2 + 0.1 * (math.log2(spec.train.lr) + 1) ** 2 + 8 / spec.model.width + 0.01 * spec.seed


def tiny_sweep(
    run_root: Path,
    *,
    name: str = "tiny",
    lrs: Sequence[float] = (0.25, 0.5, 1.0, 2.0),
    widths: Sequence[int] = (32,),
    seeds: Sequence[int] = (0,),
    executor: str = "serial",
    max_concurrent: int = 2,
    max_failures: int = 1,
    steps: int = 10,
) -> SweepSpec:
    """A sweep of tiny proxies (width 32, depth 1, seq 32, batch 4) over lr."""
    base = ModelSpec(width=32, depth=1, head_dim=16, seq_len=32)
    return SweepSpec(
        name=name,
        family=ProxyFamily("tiny", base, tuple(widths), (1,)),
        hyperparameters={"lr": HPSpace(values=tuple(lrs))},
        defaults={},
        train=TrainSpec(steps=steps, batch_size=4, eval_batches=1, final_window=3),
        seeds=tuple(seeds),
        execution=ExecutionSpec(
            executor=executor,  # type: ignore[arg-type]
            max_concurrent=max_concurrent,
            max_failures=max_failures,
        ),
        storage=StorageSpec(run_dir=run_root),
    )
