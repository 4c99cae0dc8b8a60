"""`umup-sweep run --target` and `umup-sweep coord-check --target` as a user runs them: the
target's shapes and the derived proxies are printed, a bad target is one line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from cli_helpers import cli

REPO = Path(__file__).resolve().parents[1]
TARGET_YAML = REPO / "proxies" / "llama2_7b_target.yaml"
TARGET_JSON = REPO / "proxies" / "llama_7b_gqa_config.json"
SMALL_TARGET = {
    "name": "small",
    "width": 1024,
    "depth": 8,
    "n_heads": 16,
    "n_kv_heads": 4,
    "ffn_hidden": 2816,
    "vocab_size": 256,
    "seq_len": 1024,
    "rope_theta": 500000,
    "tokens": "10B",
}


def _sweep(tmp_path: Path) -> Path:
    proxy = {"from_target": True, "widths": [32, 64], "depths": [1], "head_dim": 8}
    sweep = {
        "name": "fromtarget",
        "proxy": proxy | {"seq_len": 16},
        "hyperparameters": {"lr": [1.0]},
        "train": {"steps": 3, "batch_size": 2, "eval_batches": 1, "final_window": 2},
        "execution": {"executor": "serial", "max_concurrent": 1, "max_failures": 0},
        "storage": {"run_dir": str(tmp_path / "runs")},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_run_with_a_bad_target_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps(json.loads(TARGET_JSON.read_text()) | {"num_local_experts": 8}))
    out = cli("run", _sweep(tmp_path), "--target", bad, "--no-progress", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: {bad}: num_local_experts: expected absent, null or 0 (mixture-of-experts is "
        "not modelled), got 8 (int)"
    ]


def test_run_trains_the_proxies_derived_from_the_target(tmp_path: Path) -> None:
    target = tmp_path / "small.yaml"
    target.write_text(yaml.safe_dump(SMALL_TARGET))
    out = cli("run", _sweep(tmp_path), "--target", target, "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == (
        f"target: small ({target}, umup-sweep): width 1024, depth 8, 16 heads / 4 kv heads "
        "(head_dim 64), ffn swiglu 2816, vocab 256, seq_len 1024, rope_theta 500000, norm rms"
    )
    assert lines[1] == "plan: tokens 1e+10"
    assert lines[2].startswith("proxies: derived from target small") and "head_dim 8" in lines[2]
    written = yaml.safe_load((tmp_path / "runs" / "fromtarget" / "sweep.yaml").read_text())
    assert written["target"]["rope_theta"] == 500000.0
    assert written["proxy"]["kv_group"] == 4 and written["proxy"]["base"]["rope_theta"] == 5e5
    trials = (tmp_path / "runs" / "fromtarget" / "trials.csv").read_text().splitlines()
    assert len(trials) == 3  # header + widths 32 and 64


def test_coord_check_measures_the_derived_proxies(tmp_path: Path) -> None:
    proxy = REPO / "proxies" / "from_target.yaml"
    out = cli(
        "coord-check",
        proxy,
        "--target",
        TARGET_YAML,
        "--widths",
        "128,256",
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--parametrizations",
        "umup",
        "--out",
        tmp_path / "cc",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "proxies: derived from target llama2_7b_gqa" in out.stdout
    assert "head_dim 32, 4 query heads per kv head" in out.stdout
    assert json.loads((tmp_path / "cc" / "coord_check.json").read_text())["widths"] == [128, 256]
    out = cli("coord-check", proxy, "--target", TARGET_YAML, "--widths", "64", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: --widths: 64 cannot keep head_dim 32 with 4 query heads per kv head; widths "
        "that can: 128, 256, 384, 512, ..."
    ]
    out = cli("coord-check", REPO / "proxies" / "llama_like.yaml", "--target", TARGET_YAML)
    assert out.returncode == 2 and "needs from_target: true" in out.stderr
