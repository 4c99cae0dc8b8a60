"""recommend: HP values from the sweep, extrapolation when the optimum drifts, per-group LRs
equal to what the project's optimizer gives the target model, warnings, and the YAML."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import yaml

from umup_sweep.analysis import best_config, recommend
from umup_sweep.errors import UserError
from umup_sweep.models import build_model, make_optimizer
from umup_sweep.spec import ModelSpec

from .fabricate import make_trials

BASE = {"width": 64, "depth": 2, "head_dim": 16, "seq_len": 32}


def test_transferring_lr_is_carried_and_groups_match_the_optimizer(run_factory):
    run = run_factory(make_trials(widths=(64, 128), noise=0.003, c0=-1.0), base=BASE)
    rec = recommend(run, width=256, depth=4)
    # one swept HP: the joint fit's prediction at the target (its centre at width 64 plus
    # the width drift over log2(256/64) = 2 doublings; depth was not swept)
    lr = rec.hyperparameters["lr"]
    ev = rec.evidence["hps"]["lr"]
    assert ev["grid_value"] == 0.5 and ev["fit_reference"] == {"width": 64, "depth": 2}
    slope = ev["drift"]["width"]["slope"]
    assert lr == pytest.approx(2.0 ** (ev["fit_centre_log2"] + 2 * slope), rel=1e-12)
    assert lr == pytest.approx(0.5, rel=0.05)
    assert ev["verdict"] == "transfers"
    # the interval: the source proxy's error ⊕ the drift's error times one doubling (128→256)
    ci = ev["interval"]
    assert ci["doublings"] == {"width": 1.0}
    se = math.hypot(ci["source_se_log2"], ev["drift"]["width"]["se"])
    assert ci["log2_se"] == pytest.approx(se, rel=1e-12)
    assert ci["ci95"] == pytest.approx([lr * 2 ** (-2 * se), lr * 2 ** (2 * se)], rel=1e-12)
    assert rec.target["width"] == 256 and rec.target["depth"] == 4
    assert rec.target["head_dim"] == 16 and rec.target["n_heads"] == 16
    # oracle: a real target model and the project's optimizer, param by param
    torch.manual_seed(0)
    model = build_model(ModelSpec(**rec.target))
    opt = make_optimizer(model, lr=lr, weight_decay=0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    expected = {}
    for g in opt.param_groups:
        for p in g["params"]:
            expected[names[id(p)]] = g["lr"]
    got = rec.param_groups
    assert sum(g["tensors"] for g in got) == len(expected)
    for name, lr in expected.items():
        pattern = ".".join("*" if part.isdigit() else part for part in name.split("."))
        match = [g for g in got if g["params"] == pattern]
        assert len(match) == 1, name
        assert match[0]["lr"] == pytest.approx(lr, rel=1e-12)
    qkv = next(g for g in got if "qkv" in g["params"])
    assert qkv["tensors"] == 4 and qkv["shape"][1] == 256
    # the written YAML re-reads to the same values, and its paste block is a trial YAML
    data = yaml.safe_load((run / "recommended.yaml").read_text())
    assert data["hyperparameters"] == rec.hyperparameters
    assert data["param_groups"] == rec.param_groups
    paste = yaml.safe_load(data["paste"])
    assert ModelSpec(**paste["model"]) == ModelSpec(**rec.target)
    assert paste["train"]["lr"] == lr


def test_groups_come_in_the_optimizer_group_order(run_factory):
    t = make_trials(widths=(64, 128), noise=0.003, fixed={"weight_decay": 0.1})
    rec = recommend(run_factory(t, base=BASE), width=128, depth=3)
    model = build_model(ModelSpec(**rec.target))
    opt = make_optimizer(model, lr=rec.hyperparameters["lr"], weight_decay=0.1)
    keys = [(g["lr"], g["weight_decay"]) for g in rec.param_groups]
    assert list(dict.fromkeys(keys)) == [(g["lr"], g["weight_decay"]) for g in opt.param_groups]
    assert all(g["decay_per_step"] == pytest.approx(0.1) for g in rec.param_groups)


def test_weight_decay_groups_follow_the_optimizer(run_factory):
    t = make_trials(widths=(64, 128), noise=0.003, fixed={"weight_decay": 0.1})
    rec = recommend(run_factory(t, base=BASE), width=128, depth=2)
    assert rec.hyperparameters["weight_decay"] == 0.1
    model = build_model(ModelSpec(**rec.target))
    opt = make_optimizer(model, lr=rec.hyperparameters["lr"], weight_decay=0.1)
    assert sorted({(g["lr"], g["weight_decay"]) for g in opt.param_groups}) == sorted(
        {(g["lr"], g["weight_decay"]) for g in rec.param_groups}
    )


def test_drifting_sp_lr_is_extrapolated_with_loud_warning(run_factory):
    t = make_trials(
        widths=(64, 128, 256),
        c0=-4.0,
        drift=-1.0,
        grid=range(-10, 1),
        noise=0.002,
        parametrization="sp",
    )
    rec = recommend(run_factory(t, base=BASE | {"parametrization": "sp"}), width=2048, depth=2)
    ev = rec.evidence["hps"]["lr"]
    slope = ev["drift"]["width"]["slope"]
    assert slope == pytest.approx(-1.0, abs=0.05)
    # the joint fit's line at the target: its centre at 64 plus 5 doublings of drift; the
    # widest proxy's own best (≈2^-6 at 256) sits on the same line
    assert ev["grid_value"] == 2.0**-6
    assert ev["optima_log2"][-1] == pytest.approx(-6.0, abs=0.1)
    expected = 2.0 ** (ev["fit_centre_log2"] + 5 * slope)
    assert rec.hyperparameters["lr"] == pytest.approx(expected, rel=1e-9)
    assert rec.hyperparameters["lr"] == pytest.approx(2.0**-9, rel=0.1)
    assert ev["extrapolated"] is True and ev["shift_log2"] == pytest.approx(3 * slope)
    assert ev["interval"]["doublings"] == {"width": 3.0}
    assert any("does NOT transfer" in w for w in rec.warnings)


def test_far_extrapolation_and_untested_depth_warn(run_factory):
    rec = recommend(
        run_factory(make_trials(widths=(64, 128), noise=0.003), base=BASE), width=4096, depth=32
    )
    assert any("5.0 doublings beyond the largest proxy" in w for w in rec.warnings)
    assert any("depth transfer was not tested" in w for w in rec.warnings)
    assert rec.param_groups  # a 4096 x 32 target costs nothing on the meta device


def test_best_config_prefers_confirmed_configs():
    lines = make_trials(widths=(64,), seeds=(0,), noise=0.0)
    confirm = make_trials(widths=(64,), seeds=(0, 1, 2), grid=(0,), noise=0.0, stage="3-confirm")
    confirm["val_loss"] += 0.001  # slightly worse than the single-seed best, but confirmed
    hps, src = best_config(pd.concat([lines, confirm]), "val_loss")
    assert hps["lr"] == 1.0 and src["seeds"] == 4 and "3-confirm" in src["stage"]


def test_best_config_skips_configs_with_a_diverged_seed():
    t = make_trials(widths=(64,), seeds=(0, 1), noise=0.0)
    bad = (t["lr"] == 0.5) & (t["seed"] == 1)
    t.loc[bad, "status"], t.loc[bad, "val_loss"] = "diverged", math.nan
    hps, _ = best_config(t, "val_loss")
    assert hps["lr"] in (0.25, 1.0)


def test_bad_target_is_a_user_error(run_factory):
    run = run_factory(make_trials(widths=(64, 128)), base=BASE)
    with pytest.raises(UserError, match="not a multiple of head_dim 16"):
        recommend(run, width=100, depth=2)
    with pytest.raises(UserError, match="must be positive"):
        recommend(run, width=0, depth=2)


def test_inconclusive_drift_is_followed_with_a_wide_interval_and_advice(run_factory):
    t = make_trials(widths=(64, 128), noise=0.4, drift=0.0, rng_seed=3)
    rec = recommend(run_factory(t, base=BASE), width=1024, depth=2)
    ev = rec.evidence["hps"]["lr"]
    assert ev["verdict"] == "inconclusive"
    ci = ev["interval"]
    assert ci["doublings"] == {"width": 3.0}
    assert rec.hyperparameters["lr"] == pytest.approx(
        ev["proxy_value"] * 2.0 ** (3 * ev["drift"]["width"]["slope"]), rel=1e-12
    )
    assert ci["ci95"][0] < rec.hyperparameters["lr"] < ci["ci95"][1]
    assert any("the interval carries the doubt" in w for w in rec.warnings)
    # three doublings of a noisy drift: wider than a factor 4, with the cheapest fix named
    assert ci["factor"] > 4
    assert any("spans a factor" in w and "add width 256" in w for w in rec.warnings)


def test_interval_widens_with_the_doublings_to_the_target(run_factory):
    run = run_factory(make_trials(widths=(64, 128), noise=0.01, rng_seed=5), base=BASE)
    cis = [
        recommend(run, width=w, depth=2).evidence["hps"]["lr"]["interval"]
        for w in (128, 512, 2048, 8192)
    ]
    ses = [c["log2_se"] for c in cis]
    assert ses == sorted(ses) and ses[-1] > ses[0]
    # se² grows as (n · se_drift)², n = 0, 2, 4, 6 doublings from the widest proxy
    src, d = cis[0]["source_se_log2"], cis[1]["drift"]["width"]["se"]
    for n, c in zip((0, 2, 4, 6), cis, strict=True):
        assert c["log2_se"] ** 2 == pytest.approx(src**2 + (n * d) ** 2, rel=1e-9)


def test_optimum_at_grid_edge_warns(run_factory):
    t = make_trials(widths=(64, 128), c0=3.0, grid=range(-3, 2), noise=0.001)
    rec = recommend(run_factory(t, base=BASE), width=128, depth=2)
    assert rec.hyperparameters["lr"] == 2.0
    assert any("edge of the swept range" in w for w in rec.warnings)


def test_widths_below_the_regime_are_left_out_of_the_line(run_factory):
    # the optimum jumps by +1.2 from 64 to 128, then stays within ±0.05: over every width the
    # drift is ≈ +0.6 per doubling, but from 128 on it transfers
    centres = {64: -2.2, 128: -1.0, 256: -1.04}
    t = make_trials(widths=(64, 128, 256), seeds=(0, 1), noise=0.003, centres=centres)
    run = run_factory(t, base=BASE)
    rec = recommend(run, width=1024, depth=2)
    ev = rec.evidence["hps"]["lr"]
    assert ev["verdict"] == "drifts" and ev["drift"]["width"]["slope"] > 0.3
    reg = ev["regime"]
    assert reg["used"] is True and reg["from_width"] == 128 and reg["too_narrow"] == [64]
    assert reg["drift"]["verdict"] == "transfers" and abs(reg["drift"]["slope"]) < 0.05
    # from the widest proxy (256, inside the regime) along the regime's slope, not +0.6
    assert ev["proxy_value"] == pytest.approx(2.0 ** ev["optima_log2"][-1], rel=1e-12)
    assert ev["shift_log2"] == pytest.approx(2 * reg["drift"]["slope"], rel=1e-9)
    assert ev["interval"]["drift"]["width"]["slope"] == reg["drift"]["slope"]
    assert rec.hyperparameters["lr"] == pytest.approx(2.0**-1.04, rel=0.1)
    assert any("(left out: width 64)" in w for w in rec.warnings)
    written = yaml.safe_load((run / "recommended.yaml").read_text())
    assert written["evidence"]["hps"]["lr"]["regime"] == reg
