"""The adaptive bracket on synthetic bowls with a known optimum (no training): where it runs,
when it stops, that it resumes from stored results, and that the analysis reads its points."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from collections.abc import Callable, Sequence

import pandas as pd
import pytest
from search_synthetic import drive, frame, row

from umup_sweep.analysis import analyze_trials
from umup_sweep.config import SweepSpec, load_sweep
from umup_sweep.errors import ConfigError
from umup_sweep.search import BracketStrategy, make_strategy
from umup_sweep.search._bracket_line import Measured
from umup_sweep.spec import TrialSpec

CURVATURE = 0.05  # nats per log2² (u-μP lr at 300 steps: ≈ 0.045)


def make_sweep(
    widths: Sequence[int] = (32,),
    seeds: Sequence[int] = (0, 1),
    log2_range: Sequence[float] = (-6, 4),
    hps: dict | None = None,
    **options,
) -> SweepSpec:
    return load_sweep(
        {
            "name": "br",
            "proxy": {"base": {"head_dim": 16}, "widths": list(widths), "depths": [1]},
            "seeds": list(seeds),
            "strategy": "bracket",
            "hyperparameters": hps or {"lr": {"log2_range": list(log2_range)}},
            "strategy_options": options,
        }
    )


def bowl(
    centre: float | Callable[[int], float],
    sigma: float = 0.0,
    run: int = 0,
    diverge_above: float = math.inf,
    hp: str = "lr",
) -> Callable[[TrialSpec], float]:
    """2 + 8/width + CURVATURE·(log2 hp − centre)² + Gaussian noise of sd `sigma`, drawn
    per (value, width, seed, run); inf above `diverge_above`. `centre` may depend on width."""

    def objective(t: TrialSpec) -> float:
        x = math.log2(t.hps[hp])
        if x > diverge_above:
            return math.inf
        c = centre(t.model.width) if callable(centre) else centre
        loss = 2 + 8 / t.model.width + CURVATURE * (x - c) ** 2
        if sigma:
            blob = repr((round(x, 9), t.model.width, t.seed, run)).encode()
            rng = random.Random(int(hashlib.sha256(blob).hexdigest()[:12], 16))
            loss += rng.gauss(0.0, sigma)
        return loss

    return objective


def lines(strategy: BracketStrategy, results: pd.DataFrame) -> list[dict]:
    summary = strategy.summary(results)
    assert summary["complete"]
    return summary["lines"]


# -- where it runs ---------------------------------------------------------------------------


def test_first_round_is_start_and_a_step_either_side_at_every_proxy_and_seed() -> None:
    strategy = make_strategy(make_sweep(widths=(32, 64)))
    assert isinstance(strategy, BracketStrategy)
    first = strategy.propose(frame([]), [], max_new=100)
    assert len(first) == 3 * 2 * 2
    got = {(t.model.width, t.seed, t.train.lr) for t in first}
    assert got == {(w, s, lr) for w in (32, 64) for s in (0, 1) for lr in (0.5, 1.0, 2.0)}
    assert [t.model.width for t in first] == [64] * 6 + [32] * 6  # the dearer proxy first
    assert {(t.labels["stage"], t.labels["hp"]) for t in first} == {("bracket", "lr")}
    assert strategy.propose(frame([]), [], max_new=5) == first[:5]
    assert strategy.propose(frame([]), first, max_new=100) == []  # wait for the round
    # SP: the bracket starts at the sweep's default lr
    sp = load_sweep(
        {
            "name": "sp",
            "proxy": {"base": {"head_dim": 16}, "widths": [32], "depths": [1]},
            "parametrization": "sp",
            "strategy": "bracket",
            "hyperparameters": {"lr": {"log2_range": [-12, -4]}},
            "defaults": {"lr": 2.0**-9},
        }
    )
    lrs = sorted({math.log2(t.train.lr) for t in make_strategy(sp).propose(frame([]), [], 100)})
    assert lrs == [-10.0, -9.0, -8.0]


@pytest.mark.parametrize(
    ("centre", "n_values"),
    [
        (-5.3, 8),  # -1, 0, 1; down a step at a time to -6; the window [-6, -3] is 4 values
        (-3.2, 6),  # -1, 0, 1; -2, -3, -4
        (-1.4, 4),  # -1, 0, 1; -2 brackets it and fills the window
        (-0.4, 4),  # bracketed at once; the fill goes to the vertex's side: -2
        (0.6, 4),  # 2 brackets it
        (2.2, 5),  # 2, 3
        (3.6, 7),  # 2, 3, 4 (the bound is best, the vertex inside): 3.5 takes the lead
    ],
)
def test_brackets_an_optimum_anywhere_in_the_range(centre: float, n_values: int) -> None:
    strategy = BracketStrategy(make_sweep())
    results = drive(strategy, bowl(centre), max_new=4)
    (line,) = lines(strategy, results)
    xs = line["log2_values"]
    assert line["status"] == "converged"
    assert min(xs) < centre < max(xs)  # bracketed
    assert -6 <= min(xs) and max(xs) <= 4 and len(set(xs)) == len(xs)
    assert line["optimum_log2"] == pytest.approx(centre, abs=1e-6)  # a bowl: the fit is exact
    assert line["n_window"] == 4 and line["se"] == pytest.approx(0, abs=1e-6)
    assert len(xs) == n_values and line["trials"] == len(results) == 2 * n_values


@pytest.mark.parametrize(
    ("centre", "status", "bound"), [(5.0, "edge_high", 4), (-7.5, "edge_low", -6)]
)
def test_an_optimum_beyond_a_bound_stops_there_and_the_analysis_flags_it(
    centre: float, status: str, bound: float
) -> None:
    strategy = BracketStrategy(make_sweep(widths=(32, 64)))
    results = drive(strategy, bowl(centre), max_new=4)
    for line in lines(strategy, results):
        assert line["status"] == status
        assert -6 <= min(line["log2_values"]) and max(line["log2_values"]) <= 4
        assert line["optimum_log2"] == pytest.approx(bound)
    res = analyze_trials(results, ["lr"])["lr"]["umup"]
    assert all(p.at_edge for p in res.per_proxy) and res.verdict == "inconclusive"


def test_a_narrow_range_shifts_the_first_round_inside() -> None:
    strategy = BracketStrategy(make_sweep(log2_range=(-0.5, 3)))
    first = strategy.propose(frame([]), [], max_new=100)
    assert sorted({math.log2(t.train.lr) for t in first}) == pytest.approx([-0.5, 0.5, 1.5])
    results = drive(strategy, bowl(1.0), max_new=4)
    (line,) = lines(strategy, results)
    assert line["status"] == "converged" and line["optimum_log2"] == pytest.approx(1.0)
    assert -0.5 - 1e-9 <= min(line["log2_values"]) and max(line["log2_values"]) <= 3


def test_divergence_bounds_the_bracket_and_gaps_are_halved_toward_it() -> None:
    strategy = BracketStrategy(make_sweep())
    results = drive(strategy, bowl(1.9, diverge_above=2.4), max_new=4)
    (line,) = lines(strategy, results)
    # 1 is best of the first round; 2 then; 3 diverges (a wall); halfway, 2.5 diverges too;
    # 2.25 gives the fit window its fourth value
    assert line["log2_values"] == [-1.0, 0.0, 1.0, 2.0, 3.0, 2.5, 2.25]
    assert line["phases"] == ["bracket"] * 5 + ["fill"] * 2
    assert set(results[results.lr > 2**2.4].status) == {"diverged"}
    assert line["status"] == "converged" and line["optimum_log2"] == pytest.approx(1.9)


# -- when it stops ---------------------------------------------------------------------------


def test_stops_at_the_first_round_whose_fit_meets_the_target_se() -> None:
    sweep = make_sweep(widths=(32, 64, 128), target_se=0.1)
    strategy = BracketStrategy(sweep)
    results = drive(strategy, bowl(-0.4, sigma=0.02, run=7), max_new=4)
    rule = strategy.rules["lr"]
    for line in lines(strategy, results):
        assert line["status"] == "converged"
        assert line["se"] <= 0.1 and line["n_window"] >= 4 and line["method"] == "parabola"
        ours = results[results.width == line["width"]]
        # every earlier round's points: the search had not yet reached the target there
        xs = line["log2_values"]
        for k in range(3, len(xs)):
            step = rule.decide(_measured(ours, xs[:k]))
            assert step.status == "running"
            assert not (step.se <= 0.1 and step.n_window >= 4), (line["width"], xs[:k])


def test_a_tighter_target_costs_more_trials_and_max_trials_is_a_hard_cap() -> None:
    used = {}
    for target in (0.2, 0.03):
        strategy = BracketStrategy(make_sweep(target_se=target, max_trials=16))
        results = drive(strategy, bowl(-0.4, sigma=0.02, run=3), max_new=4)
        (line,) = lines(strategy, results)
        used[target] = len(results)
    assert used[0.2] < used[0.03] <= 16
    strategy = BracketStrategy(make_sweep(max_trials=8))
    results = drive(strategy, bowl(-4.5), max_new=4)  # far from the start: runs out
    (line,) = lines(strategy, results)
    assert line["status"] == "max_trials" and len(results) == 8 and line["trials"] == 8


# -- resuming ---------------------------------------------------------------------------------


def test_resumes_from_stored_results_with_the_same_decisions() -> None:
    """A fresh strategy on the stored rows (a crash anywhere, pending trials lost) proposes
    what the first one would, and the resumed search runs exactly the trials of an
    uninterrupted one, none twice."""
    sweep = make_sweep(widths=(32, 64))
    objective = bowl(lambda w: -0.4 + 0.3 * math.log2(w / 32), sigma=0.02, run=11)
    full = drive(BracketStrategy(sweep), objective, max_new=3)
    rng = random.Random(0)
    for cut in sorted(rng.sample(range(1, len(full)), 6)):
        stored = full.iloc[:cut]  # everything after the crash is lost, pending trials too
        first = BracketStrategy(sweep)
        resumed = BracketStrategy(sweep)
        assert [t.trial_key for t in resumed.propose(stored, [], 100)] == [
            t.trial_key for t in first.propose(stored, [], 100)
        ]
        rows = [dict(r) for r in stored.to_dict("records")]
        while new := resumed.propose(frame(rows), [], 3):
            assert not {t.trial_key for t in new} & {r["trial_key"] for r in rows}
            rows += [row(t, objective(t)) for t in new]
        assert sorted(r["trial_key"] for r in rows) == sorted(full.trial_key)
    # a failed trial counts as finished: not proposed again, the search goes on without it
    rows = [dict(r) for r in full.iloc[:2].to_dict("records")]
    rows[0]["status"], rows[0]["val_loss"] = "failed", None
    again = BracketStrategy(sweep).propose(frame(rows), [], 100)
    assert rows[0]["trial_key"] not in {t.trial_key for t in again}


def test_a_proxy_waits_only_for_its_own_round() -> None:
    strategy = BracketStrategy(make_sweep(widths=(32, 64)))
    objective = bowl(-0.4)
    first = strategy.propose(frame([]), [], max_new=100)
    done = [row(t, objective(t)) for t in first if t.model.width == 32]
    waiting = [t for t in first if t.model.width == 64]
    nxt = strategy.propose(frame(done), waiting, max_new=100)
    assert nxt and {t.model.width for t in nxt} == {32}  # width 32's next value, at both seeds
    assert len({t.train.lr for t in nxt}) == 1 and {t.seed for t in nxt} == {0, 1}


# -- what the analysis sees -------------------------------------------------------------------


def test_the_analysis_finds_the_same_optimum_and_standard_error() -> None:
    strategy = BracketStrategy(make_sweep(widths=(32, 64, 128)))
    results = drive(strategy, bowl(-0.4, sigma=0.02, run=5), max_new=4)
    res = analyze_trials(results, ["lr"])["lr"]["umup"]
    found = {p.width: p for p in res.per_proxy}
    for line in lines(strategy, results):
        p = found[line["width"]]
        assert p.fit_method == line["method"] == "parabola"
        assert p.fit_optimum_log2 == pytest.approx(line["optimum_log2"], abs=1e-9)
        assert p.fit_optimum_se == pytest.approx(line["se"], rel=1e-6)
    assert res.verdict == "transfers"


def test_several_hps_get_one_line_each_sharing_the_default_point() -> None:
    hps = {"lr": {"log2_range": [-4, 3]}, "residual_mult": {"log2_range": [-4, 3]}}
    sweep = make_sweep(hps=hps, start={"residual_mult": 0.5})
    strategy = BracketStrategy(sweep)
    first = strategy.propose(frame([]), [], max_new=100)
    configs = {(t.train.lr, t.model.residual_mult) for t in first}
    assert configs == {(0.5, 1.0), (1.0, 1.0), (2.0, 1.0), (1.0, 0.25), (1.0, 0.5)}
    assert len(first) == 5 * 2  # (1, 1) is in both lines, run once

    def objective(t: TrialSpec) -> float:
        return bowl(-0.4)(t) + CURVATURE * (math.log2(t.model.residual_mult) + 1.5) ** 2

    results = drive(strategy, objective, max_new=4)
    got = {line["hp"]: line["optimum_log2"] for line in lines(strategy, results)}
    assert got == pytest.approx({"lr": -0.4, "residual_mult": -1.5})
    res = analyze_trials(results, ["lr", "residual_mult"])
    assert res["residual_mult"]["umup"].per_proxy[0].fit_optimum_log2 == pytest.approx(-1.5)


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"hyperparameters": {"lr": [0.5, 1, 2], "residual_mult": [1, 2]}, "start": 0.5},
            "strategy_options.start: expected a mapping {hp: value} of the swept HPs"
            " ['lr', 'residual_mult'], got 0.5 (float)",
        ),
        (
            {"hyperparameters": {"weight_decay": [0, 0.1, 1]}},
            "hyperparameters.weight_decay: strategy bracket needs a range of values > 0 to step"
            " through in log2 (e.g. log2_range: [-6, 4]), got [0.0, 0.1, 1.0]",
        ),
        ({"start": 100}, "strategy_options.start: expected a value of lr in its range"),
        ({"start": {"residual_mult": 2}}, "strategy_options.start.residual_mult: expected one"),
        ({"step": 0}, "strategy_options.step: expected a number > 0 (log2), got 0"),
        ({"target_se": -0.1}, "strategy_options.target_se: expected a number > 0"),
        ({"min_points": 2}, "strategy_options.min_points: expected an integer >= 3"),
        ({"max_trials": 5}, "strategy_options.max_trials: expected an integer >= 6 (3 values"),
        ({"stage2": ["lr"]}, "strategy_options.stage2: unknown key; did you mean 'step'?"),
    ],
)
def test_bad_options_are_one_line_errors_naming_file_and_key(
    extra: dict, message: str, tmp_path
) -> None:
    import yaml

    hps = extra.pop("hyperparameters", {"lr": {"log2_range": [-6, 4]}})
    doc = {
        "name": "bad",
        "proxy": {"base": {"head_dim": 16}, "widths": [32], "depths": [1]},
        "seeds": [0, 1],
        "strategy": "bracket",
        "hyperparameters": hps,
        "strategy_options": extra,
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
    assert "\n" not in str(err.value)


def test_options_resolve_explicitly_and_round_trip() -> None:
    from umup_sweep.config import sweep_to_dict

    s = make_sweep(seeds=(0, 1, 2), start=0.5, step=0.5)
    assert s.strategy_options == {
        "start": 0.5,
        "step": 0.5,
        "target_se": 0.07,
        "min_points": 4,
        "max_trials": 24,
    }
    assert load_sweep(sweep_to_dict(s)) == s
    first = BracketStrategy(s).propose(frame([]), [], 100)
    assert sorted({math.log2(t.train.lr) for t in first}) == pytest.approx([-1.5, -1.0, -0.5])


def _measured(results: pd.DataFrame, xs: Sequence[float]) -> list[Measured]:
    """One proxy's results at the values `xs` as the rule sees them."""
    out = []
    for x in xs:
        at = results[(results.lr.map(math.log2) - x).abs() < 1e-9]
        losses = [
            (int(r.seed), math.inf if r.status == "diverged" else float(r.val_loss))
            for r in at.itertuples()
        ]
        out.append(Measured(x, tuple(losses)))
    return out


# -- through the real runner -------------------------------------------------------------------


def _tiny(root, seeds=(0,), widths=(32,), steps=10):
    from sweep_fakes import tiny_sweep

    sweep = tiny_sweep(root, lrs=[2.0**k for k in range(-4, 4)], seeds=seeds, widths=widths)
    return dataclasses.replace(
        sweep, strategy="bracket", train=dataclasses.replace(sweep.train, steps=steps)
    )


def test_real_trials_through_the_runner_then_a_rerun_computes_nothing(tmp_path) -> None:
    from umup_sweep.runner import run_sweep
    from umup_sweep.store import RunStore

    sweep = _tiny(tmp_path, steps=20)
    summary = run_sweep(sweep, analyze=False)
    results = RunStore.load(summary.run_dir).results()
    strategy = make_strategy(sweep, RunStore.load(summary.run_dir).data_fingerprint)
    (line,) = lines(strategy, results)
    assert summary.n_new == len(results) == line["trials"] >= 3
    assert set(results["stage"]) <= {"bracket", "fill", "refine"}
    assert all(2.0**-4 <= v <= 2.0**3 for v in results["lr"])
    res = analyze_trials(results, ["lr"])["lr"]["umup"]
    assert res.per_proxy[0].fit_optimum_log2 == pytest.approx(line["optimum_log2"], abs=1e-9)
    again = run_sweep(sweep, analyze=False)
    assert again.n_new == 0 and again.n_resumed == len(results)


def test_an_interrupted_run_resumes_into_exactly_the_uninterrupted_search(tmp_path) -> None:
    """Ctrl-C after a few trials, then a rerun (as tests/test_runner.py does for the grid, with
    decisions in between): the rerun takes the same decisions from the stored trials, runs no
    finished trial again, and ends with exactly the trials of an uninterrupted search."""
    from sweep_fakes import FakeTrial, expected_loss

    from umup_sweep.runner import SweepInterrupted, run_sweep
    from umup_sweep.store import RunStore

    sweep = _tiny(tmp_path, widths=(32, 64))
    fake = FakeTrial(tmp_path / "log")

    def interrupt_fifth(spec: TrialSpec):
        if (tmp_path / "log").exists() and len((tmp_path / "log").read_text().splitlines()) == 4:
            raise KeyboardInterrupt
        return fake(spec)

    with pytest.raises(SweepInterrupted):
        run_sweep(sweep, trial_fn=interrupt_fifth, analyze=False)
    store = RunStore.load(tmp_path / "tiny")
    committed = set(store.results()["trial_key"])
    summary = run_sweep(sweep, trial_fn=fake, analyze=False)
    final = RunStore.load(tmp_path / "tiny").results()
    # the uninterrupted search, driven in-process on the same (noise-free) losses
    expected = drive(BracketStrategy(sweep, store.data_fingerprint), expected_loss, max_new=2)
    assert sorted(final["trial_key"]) == sorted(expected["trial_key"])
    assert len(committed) == 4 and summary.n_new == len(expected) - 4
    runs = pd.Series([line.split()[0] for line in (tmp_path / "log").read_text().splitlines()])
    assert runs.is_unique  # no trial ran twice


def test_a_bracket_runs_at_every_horizon_of_a_train_axis() -> None:
    """With `train: {steps: [...]}` each horizon gets its own brackets (one strategy per
    training setting), each converging on that horizon's optimum: 0.5 log2 lower per
    doubling of the steps here."""
    sweep = load_sweep(
        {
            "name": "br_axes",
            "proxy": {"base": {"head_dim": 16}, "widths": [32], "depths": [1]},
            "seeds": [0, 1],
            "strategy": "bracket",
            "hyperparameters": {"lr": {"log2_range": [-6, 4]}},
            "train": {"steps": [20, 40], "batch_size": 4},
        }
    )
    strategy = make_strategy(sweep)
    centre = {20: 0.5, 40: 0.0}

    def objective(t: TrialSpec) -> float:
        return bowl(centre[t.train.steps])(t)

    results = drive(strategy, objective, max_new=4)
    assert set(results["trial_key"]) and len(results) == results["trial_key"].nunique()
    summary = strategy.summary(results)
    assert sorted(summary) == ["fp32 20x4", "fp32 40x4"]
    for label, steps in (("fp32 20x4", 20), ("fp32 40x4", 40)):
        assert summary[label]["complete"]
        (line,) = summary[label]["lines"]
        assert line["status"] == "converged"
        assert line["optimum_log2"] == pytest.approx(centre[steps], abs=1e-6)
