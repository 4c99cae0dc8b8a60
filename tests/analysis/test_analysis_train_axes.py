"""Transfer along the train axes: the analyzer recovers a known β (lr* ∝ D^−β along the
training tokens) and a known batch-size drift from synthetic curves within its error bars,
the lr optimum per weight decay, and `recommend` carries lr along a measured axis and warns
(never stays silent) along an unmeasured one."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest

from umup_sweep.analysis import analyze_run, load_run, recommend
from umup_sweep.analysis._conditional import conditional_optima
from umup_sweep.analysis._transfer import analyze_hp, analyze_trials
from umup_sweep.config import TargetSpec, TrainingPlan, load_sweep
from umup_sweep.search import make_strategy
from umup_sweep.spec import HP_DEFAULTS, ModelSpec, TrialResult, TrialSpec

from .fabricate import _fast_sqlite, _FixtureStore

SEQ = 128
T0 = 150 * 16 * SEQ  # the shortest horizon's tokens: the fit's reference


def _bowl_rows(rng, *, steps, batch, c0, beta, batch_drift, sigma, width=64, seeds=(0, 1)):
    """One proxy's lr line: loss = 3 − 0.1·log2(D/D0) + 0.05·(x − x*)², x* = c0 − β·log2(D/D0)
    + batch_drift·log2(batch/16), plus N(0, σ) per trial."""
    tokens = steps * batch * SEQ
    ut, ub = math.log2(tokens / T0), math.log2(batch / 16)
    opt = c0 - beta * ut + batch_drift * ub
    rows = []
    for seed in seeds:
        for x in range(-5, 4):
            y = 3 - 0.1 * ut + 0.05 * (x - opt) ** 2 + sigma * rng.standard_normal()
            rows.append(
                HP_DEFAULTS
                | {"lr": 2.0**x, "width": width, "depth": 2, "seed": seed, "status": "ok"}
                | {"parametrization": "umup", "precision": "fp32", "val_loss": y}
                | {"train_steps": steps, "batch_size": batch, "train_tokens": tokens}
            )
    return rows


def _coverage(points, truth_axis, truth, n_runs, **bowl):
    """Over ``n_runs`` simulated sweeps: how often truth lies in slope ± 2se, and the mean slope."""
    rng = np.random.default_rng(12345)
    hits, slopes = 0, []
    for _ in range(n_runs):
        rows = [r for s, b in points for r in _bowl_rows(rng, steps=s, batch=b, **bowl)]
        res = analyze_hp(pd.DataFrame(rows), "lr", "val_loss", 0.25, n_boot=30)
        assert res is not None and list(res.drift) == [truth_axis]
        d = res.drift[truth_axis]
        hits += abs(d.slope - truth) <= 2 * d.se
        slopes.append(d.slope)
    return hits, float(np.mean(slopes))


def test_beta_recovered_within_its_error_bars():
    """lr* ∝ D^−0.3 over four horizons (150..1200 steps): the tokens drift is −β. Over 20
    simulated sweeps (σ = 0.01 nats per trial, 2 seeds) β ± 2se covers the truth at least
    17 times (nominal 95%: 19 expected, P(≤ 16) ≈ 2%; an error bar half as wide would cover
    ~68%, 13.6), and the mean estimate is within 0.03 of 0.3."""
    points = [(s, 16) for s in (150, 300, 600, 1200)]
    hits, mean = _coverage(
        points, "tokens", -0.3, 20, c0=-1.0, beta=0.3, batch_drift=0.0, sigma=0.01
    )
    assert hits >= 17
    assert abs(-mean - 0.3) < 0.03


def test_batch_drift_recovered_at_fixed_tokens():
    """The optimum rises by 0.5 log2 per batch doubling at a fixed 614,400 tokens (batch
    8..64): the same coverage rule over 20 sweeps, and no tokens axis (the tokens did not
    vary)."""
    points = [(614400 // (b * SEQ), b) for b in (8, 16, 32, 64)]
    hits, mean = _coverage(points, "batch", 0.5, 20, c0=-1.0, beta=0.3, batch_drift=0.5, sigma=0.01)
    assert hits >= 17
    assert abs(mean - 0.5) < 0.03


def test_width_and_tokens_fitted_jointly():
    """Two widths × two horizons: the width drift (0) and β (0.3) come out of one fit."""
    rng = np.random.default_rng(7)
    rows = [
        r
        for w in (64, 128)
        for s in (150, 600)
        for r in _bowl_rows(
            rng, steps=s, batch=16, c0=-1.0, beta=0.3, batch_drift=0.0, sigma=0.005, width=w
        )
    ]
    res = analyze_hp(pd.DataFrame(rows), "lr", "val_loss", 0.25, n_boot=30)
    assert res.axes == ["width", "tokens"]
    assert abs(res.drift["width"].slope) <= 3 * res.drift["width"].se
    assert abs(res.drift["tokens"].slope + 0.3) <= 3 * res.drift["tokens"].se
    beta, beta_se = res.beta
    assert beta == pytest.approx(-res.drift["tokens"].slope) and beta_se == res.drift["tokens"].se
    assert "β = 0.30" in res.reason
    assert [p.name for p in res.per_proxy][:2] == ["64x2 t=307k b=16", "64x2 t=1.23M b=16"]
    assert res.reference == {"width": 64, "depth": 2, "tokens": T0, "batch": 16}


def _wd_rows(shift_per_wd: float, sigma: float, rng) -> list[dict]:
    rows = []
    for wd in (0.0, 0.03, 0.1, 0.3):
        opt = -1.0 + shift_per_wd * wd
        for seed in (0, 1):
            for x in range(-5, 4):
                y = 3 + 0.5 * wd + 0.05 * (x - opt) ** 2 + sigma * rng.standard_normal()
                rows.append(
                    HP_DEFAULTS
                    | {"lr": 2.0**x, "weight_decay": wd, "width": 64, "depth": 2, "seed": seed}
                    | {"status": "ok", "parametrization": "umup", "val_loss": y}
                )
    return rows


def test_lr_optimum_per_weight_decay():
    """The lr optimum moves by 2·wd log2 (so +0.06, +0.2, +0.6 at 0.03, 0.1, 0.3): each pooled
    shift lies within 2se of its truth, 0.3 moves it beyond the tolerance and 0.03 does not."""
    rows = _wd_rows(2.0, 0.003, np.random.default_rng(3))
    rec = conditional_optima(pd.DataFrame(rows), "lr", "weight_decay", "val_loss", 0.25)
    assert rec["reference"] == 0.0
    shifts = {s["value"]: s for s in rec["shifts"]}
    for wd, s in shifts.items():
        assert abs(s["shift_log2"] - 2.0 * wd) <= 2 * s["se"]
    assert shifts[0.3]["verdict"] == "moves" and shifts[0.03]["verdict"] == "holds"
    assert rec["verdict"] == "moves"
    assert [o["value"] for o in rec["proxies"][0]["optima"]] == [0.0, 0.03, 0.1, 0.3]


def test_lr_per_weight_decay_figure(tmp_path):
    """A grid over lr × weight decay gets `lr_by_weight_decay.png`: one curve per weight
    decay, drawn from each value's seed means (re-read from the record), its optimum dashed."""
    from umup_sweep.analysis import plot_runs
    from umup_sweep.analysis._run import RunData

    rows = pd.DataFrame(_wd_rows(2.0, 0.003, np.random.default_rng(3)))
    run = RunData(tmp_path / "wd", "wd", "val_loss", ("lr", "weight_decay"), 0.25, rows)
    report = analyze_run(run, write=False)
    written = plot_runs([report], tmp_path / "plots", formats=("png",))
    assert tmp_path / "plots" / "lr_by_weight_decay.png" in written
    assert (tmp_path / "plots" / "lr_by_weight_decay.png").stat().st_size > 10_000
    (rec,) = report.conditional["umup"].values()
    optima = rec["proxies"][0]["optima"]
    at_zero = rows[(rows["weight_decay"] == 0) & (rows["lr"] == 1.0)]["val_loss"].mean()
    curve = {round(c["log2"], 6): c["mean"] for c in optima[0]["curve"]}
    assert curve[0.0] == pytest.approx(at_zero)
    assert len(optima[0]["curve"]) == 9


def test_weight_decay_zero_is_no_log2_point():
    """A weight decay sweep with 0 in it: analysed in log2 over its positive values, with a
    note, and its lr analysis still runs (it used to raise a math domain error)."""
    rows = _wd_rows(0.0, 0.003, np.random.default_rng(4))
    results = analyze_trials(pd.DataFrame(rows), ["lr", "weight_decay"], "val_loss", 0.25)
    wd = results["weight_decay"]["umup"]
    assert {c.value for c in wd.per_proxy[0].curve} == {0.03, 0.1, 0.3}
    assert any("weight_decay = 0 (18 trials) is left out" in n for n in wd.notes)
    assert results["lr"]["umup"].per_proxy[0].fit_optimum_log2 is not None


# --- a run in the real store: the train columns, the report and `recommend` -----------------

BETA, C0 = 0.3, -1.0


def _result(spec: TrialSpec) -> TrialResult:
    """A trial on the known bowl (β = 0.3 along the tokens, no batch drift), tiny noise."""
    tokens = spec.train.steps * spec.train.batch_size * spec.model.seq_len
    ut = math.log2(tokens / (40 * 8 * 32))
    opt = C0 - BETA * ut
    seed = int(hashlib.sha256(spec.trial_key.encode()).hexdigest()[:8], 16)
    noise = 1e-4 * np.random.default_rng(seed).standard_normal()
    loss = 2.5 - 0.05 * ut + 0.05 * (math.log2(spec.train.lr) - opt) ** 2 + noise
    return TrialResult(
        spec.trial_key,
        "ok",
        final_train_loss=loss,
        val_loss=loss,
        steps=spec.train.steps,
        tokens=tokens,
        wall_s=1.0,
        curve=[(0, loss, loss)],
    )


@pytest.fixture(scope="module")
def horizon_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("axes")
    sweep = load_sweep(
        {
            "name": "horizon",
            "proxy": {"base": {"head_dim": 16, "seq_len": 32}, "widths": [64], "depths": [2]},
            "hyperparameters": {"lr": {"log2_range": [-5, 2]}},
            "train": {"steps": [40, 80, 160, 320], "batch_size": 8},
            "seeds": [0, 1],
            "storage": {"run_dir": str(root)},
        }
    )
    trials = make_strategy(sweep, "").propose(pd.DataFrame(columns=["trial_key"]), [], 1000)
    with _fast_sqlite(), _FixtureStore.open(sweep) as store:
        for spec in trials:
            store.commit(spec, _result(spec))
    return sweep.run_dir


def test_run_with_train_axes_is_analysed_along_tokens(horizon_run):
    run = load_run(horizon_run)
    assert {"train_steps", "batch_size", "train_tokens"} <= set(run.trials.columns)
    assert sorted(run.trials["train_tokens"].unique()) == [40 * 8 * 32 * k for k in (1, 2, 4, 8)]
    report = analyze_run(run)
    res = report.get("lr", "umup")
    assert res.axes == ["tokens"]
    assert res.beta[0] == pytest.approx(BETA, abs=0.01)
    text = (horizon_run / "transfer.json").read_text()
    assert '"tokens"' in text and "64x2 t=10.2k b=8" in text


def test_recommend_carries_lr_along_tokens_and_warns_on_batch(horizon_run, tmp_path):
    """Target: the proxy's shapes, 2^26 tokens in batches of 32 sequences. lr moves along
    the measured tokens axis to 2^(c0 − β·log2(D_target / D_ref)); the batch size (never
    varied) is warned about, with both values; the training tokens are not."""
    model = ModelSpec(width=64, depth=2, head_dim=16, seq_len=32)
    tokens = 2**26  # 9.7 doublings beyond the longest proxy: more than twice the 3 measured
    target = TargetSpec(model=model, plan=TrainingPlan(tokens=tokens, batch_size=32))
    rec = recommend(horizon_run, target=target, out=tmp_path / "rec.yaml")
    expected = C0 - BETA * math.log2(tokens / (40 * 8 * 32))
    assert math.log2(rec.hyperparameters["lr"]) == pytest.approx(expected, abs=0.02)
    interval = rec.intervals["lr"]
    assert interval["doublings"]["tokens"] == pytest.approx(math.log2(tokens / (320 * 8 * 32)))
    assert interval["ci95"][0] < rec.hyperparameters["lr"] < interval["ci95"][1]
    axes = rec.evidence["hps"]["lr"]["axes"]
    assert set(axes["measured"]) == {"tokens"}
    assert axes["measured"]["tokens"]["beta"] == pytest.approx(BETA, abs=0.01)
    assert axes["assumed"] == ["width", "depth", "batch"]
    assert rec.evidence["axes"]["lr"].startswith("measured: tokens (β = 0.30")
    assert not any(w.startswith("training tokens:") for w in rec.warnings)
    batch = [w for w in rec.warnings if w.startswith("batch size:")]
    assert len(batch) == 1 and "proxies 8 sequences" in batch[0] and "target 32" in batch[0]
    assert any("doublings along training tokens on a β = 0.30" in w for w in rec.warnings)


def test_recommend_without_the_targets_tokens_says_so(horizon_run, tmp_path):
    """A measured tokens axis but a plan without tokens: the value stays the source proxy's
    (the longest horizon's optimum) and a warning says why, rather than a silent guess."""
    model = ModelSpec(width=64, depth=2, head_dim=16, seq_len=32)
    target = TargetSpec(model=model, plan=TrainingPlan(batch_size=8))
    rec = recommend(horizon_run, target=target, out=tmp_path / "rec.yaml")
    source = C0 - BETA * math.log2(320 / 40)
    assert math.log2(rec.hyperparameters["lr"]) == pytest.approx(source, abs=0.02)
    assert any("the target's plan gives no tokens" in w for w in rec.warnings)
    assert rec.source["steps"] == 320 and rec.source["tokens"] == 320 * 8 * 32
