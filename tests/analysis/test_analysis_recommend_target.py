"""recommend for a real target (a target file or a config.json): the target's own shapes, the
per-tensor learning rates of a 7B-like GQA model against u-μP's rules written out here, the
plan's weight decay, a warning per untested axis, the exports, and the CLI's intervals."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml
from cli_helpers import cli
from typer.testing import CliRunner

from umup_sweep.analysis import recommend
from umup_sweep.cli import _register_commands, app
from umup_sweep.config import load_target
from umup_sweep.errors import UserError

from .fabricate import make_trials

REPO = Path(__file__).resolve().parents[2]
TARGET_YAML = REPO / "proxies" / "llama2_7b_target.yaml"
TARGET_JSON = REPO / "proxies" / "llama_7b_gqa_config.json"
BASE = {"width": 64, "depth": 2, "head_dim": 16, "seq_len": 32}
_register_commands()
runner = CliRunner()


@pytest.fixture
def run(run_factory):
    return run_factory(make_trials(widths=(64, 128), noise=0.003, c0=-1.0), base=BASE)


def test_target_file_gives_its_shapes_and_u_mup_per_tensor_lrs(run) -> None:
    rec = recommend(run, target=load_target(TARGET_YAML))
    t = rec.target
    assert (t["width"], t["depth"], t["n_heads"], t["n_kv_heads"]) == (4096, 32, 32, 8)
    assert (t["head_dim"], t["ffn_hidden_size"], t["vocab_size"], t["seq_len"]) == (
        128,
        11008,
        32000,
        4096,
    )
    lr = rec.hyperparameters["lr"]
    # the plan's weight decay (the sweep did not tune it), said in a warning
    # (Llama-2's AdamW λ 0.1 at lr 3e-4: 3e-5 of every weight a step)
    assert rec.hyperparameters["weight_decay"] == pytest.approx(3e-5, rel=1e-12)
    assert any("weight_decay 3e-05 is the target plan's" in w for w in rec.warnings)
    # u-μP's Adam rules (arXiv 2407.17465 Table 3) for these shapes, written out: hidden
    # weights lr·fan_in^-½·depth^-½, embedding lr·width^-½, readout lr
    depth_scale = 1 / math.sqrt(32)
    expected = {
        "embedding.weight": lr / math.sqrt(4096),
        "blocks.*.attn.qkv.weight": lr / math.sqrt(4096) * depth_scale,
        "blocks.*.attn.out.weight": lr / math.sqrt(4096) * depth_scale,
        "blocks.*.ffn.up.weight": lr / math.sqrt(4096) * depth_scale,
        "blocks.*.ffn.gate.weight": lr / math.sqrt(4096) * depth_scale,
        "blocks.*.ffn.down.weight": lr / math.sqrt(11008) * depth_scale,
        "readout.weight": lr,
    }
    groups = {g["params"]: g for g in rec.param_groups}
    assert set(groups) == set(expected)
    for name, want in expected.items():
        assert groups[name]["lr"] == pytest.approx(want, rel=1e-12), name
        assert groups[name]["lr"] * groups[name]["weight_decay"] == pytest.approx(3e-5)
    # GQA shapes: q (32 heads) + k, v (8 heads each) of 128
    assert groups["blocks.*.attn.qkv.weight"]["shape"] == [(32 + 2 * 8) * 128, 4096]
    assert groups["blocks.*.attn.qkv.weight"]["tensors"] == 32
    assert groups["embedding.weight"]["shape"] == [32000, 4096]
    # the exports carry the same numbers in other trainers' terms
    table = rec.exports["param_group_table"]["param_groups"]
    assert table["attn_k"]["shape"] == [8 * 128, 4096]
    assert table["attn_k"]["lr"] == pytest.approx(expected["blocks.*.attn.qkv.weight"])
    assert rec.exports["aleph_alpha_scaling"]["transformer_architecture"]["umup"][
        "normalize_depth_to_num_layers"
    ]
    assert rec.exports["unit_scaling"]["optimizer"]["args"]["lr"] == lr


def test_every_untested_axis_is_warned_with_its_cost(run) -> None:
    rec = recommend(run, target=load_target(TARGET_YAML))
    heads = {w.split(":")[0] for w in rec.warnings}
    assert {"sequence length", "vocabulary", "training tokens", "batch size"} <= heads
    assert any(w.startswith("sequence length: proxies 32, target 4096") for w in rec.warnings)
    cost = [w for w in rec.warnings if w.startswith("vocabulary")][0]
    assert re.search(r"costs ≈ 0\.\d{3} nats at the source proxy", cost)
    # 5 doublings from 128 to 4096 and depth 32 not tested
    assert any("5.0 doublings beyond the largest proxy" in w for w in rec.warnings)
    assert rec.evidence["hps"]["lr"]["interval"]["doublings"] == {"width": 5.0}
    assert rec.source["target_from"] == str(TARGET_YAML)


def test_config_json_and_yaml_give_the_same_recommendation(run, tmp_path) -> None:
    a = recommend(run, target=load_target(TARGET_YAML), out=tmp_path / "a.yaml")
    b = recommend(run, target=load_target(TARGET_JSON), out=tmp_path / "b.yaml")
    assert a.target == b.target
    assert [(g["params"], g["lr"]) for g in a.param_groups] == [
        (g["params"], g["lr"]) for g in b.param_groups
    ]
    # the config.json has no training plan: no weight decay from it, and one warning says so
    # instead of the plan's axes
    assert a.hyperparameters["weight_decay"] == pytest.approx(3e-5)
    assert b.hyperparameters["weight_decay"] == 0.0
    assert any(w.startswith("training plan: the target's tokens") for w in b.warnings)


def test_width_and_depth_resize_a_target_keeping_heads_and_gqa(run) -> None:
    rec = recommend(run, width=1024, depth=8, target=load_target(TARGET_YAML))
    t = rec.target
    assert (t["width"], t["depth"], t["head_dim"], t["n_heads"], t["n_kv_heads"]) == (
        1024,
        8,
        128,
        8,
        2,
    )
    assert t["ffn_hidden_size"] is None and t["ffn_ratio"] == pytest.approx(11008 / 4096)
    with pytest.raises(UserError, match="target width 1000"):
        recommend(run, width=1000, target=load_target(TARGET_YAML))


def test_no_target_at_all_is_a_user_error(run) -> None:
    with pytest.raises(UserError, match="no target: give --target FILE"):
        recommend(run)


def test_cli_prints_each_hp_with_its_interval(run, tmp_path) -> None:
    out = tmp_path / "rec.yaml"
    res = runner.invoke(
        app, ["recommend", str(run), "--target", str(TARGET_JSON), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    lo, hi = data["intervals"]["lr"]["ci95"]
    lr = data["hyperparameters"]["lr"]
    assert lo < lr < hi
    assert f"lr                   {lr:.3g}  [{lo:.3g}, {hi:.3g}] ≈95%" in res.output
    assert "target: width 4096, depth 32, 32 heads (8 kv), vocab 32000, seq_len 4096" in (
        res.output
    )
    bad = cli("recommend", run, "--target", tmp_path / "nope.json")
    assert bad.returncode == 2 and "nope.json" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
