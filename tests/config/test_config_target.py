"""The target model in our YAML format: exact shapes and plan, one-line errors naming the file,
the key and the expectation, and the round trip through `target_to_dict`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from umup_sweep.config import TargetSpec, TrainingPlan, load_target, target_to_dict
from umup_sweep.errors import ConfigError
from umup_sweep.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "width": 4096,
    "depth": 32,
    "n_heads": 32,
    "n_kv_heads": 8,
    "ffn_hidden": 11008,
    "vocab_size": 32000,
    "seq_len": 4096,
}


def test_the_example_target_file_gives_exact_shapes_and_plan() -> None:
    t = load_target(REPO / "proxies" / "llama2_7b_target.yaml")
    m = t.model
    assert (m.width, m.depth, m.n_heads, m.kv_heads, m.head_dim) == (4096, 32, 32, 8, 128)
    assert (m.ffn, m.ffn_hidden, m.ffn_hidden_size, m.ffn_ratio) == ("swiglu", 11008, 11008, 2.6875)
    assert (m.vocab_size, m.seq_len, m.pos, m.norm, m.rope_base) == (
        32000,
        4096,
        "rope",
        "rms",
        1e4,
    )
    assert m.parametrization == "umup"
    # Llama-2's AdamW λ 0.1 at lr 3e-4: 3e-5 of every weight a step (independent decay)
    assert t.plan == TrainingPlan(
        tokens=10**12, batch_size=1024, weight_decay=t.plan.weight_decay, seq_len=4096
    )
    assert t.plan.weight_decay == pytest.approx(3e-5, rel=1e-12)
    assert (t.name, t.fmt, t.source) == (
        "llama2_7b_gqa",
        "umup-sweep",
        str(REPO / "proxies" / "llama2_7b_target.yaml"),
    )


def test_the_yaml_and_the_hf_example_describe_the_same_model() -> None:
    ours = load_target(REPO / "proxies" / "llama2_7b_target.yaml")
    hf = load_target(REPO / "proxies" / "llama_7b_gqa_config.json")
    assert hf.fmt == "hf-config" and hf.norm_eps == 1e-5
    assert ours.model == hf.model


def test_defaults_and_the_ratio_and_head_dim_forms() -> None:
    t = load_target(
        {"width": 768, "depth": 12, "head_dim": 64, "ffn_ratio": 4, "vocab_size": 50257}
        | {"seq_len": 1024, "ffn": "gelu", "norm": "layer", "pos": "none"}
    )
    assert t.model == ModelSpec(
        width=768,
        depth=12,
        n_heads=12,
        ffn="gelu",
        ffn_ratio=4.0,
        vocab_size=50257,
        seq_len=1024,
        pos="none",
        norm="layer",
    )
    assert t.model.kv_heads == 12 and t.model.n_kv_heads is None and t.model.ffn_hidden == 3072
    assert t.plan == TrainingPlan(seq_len=1024) and t.name == "target" and t.source == "<inline>"


def test_both_head_keys_when_consistent_and_mha_kv_heads_read_as_none() -> None:
    t = load_target(GOOD | {"head_dim": 128, "n_kv_heads": 32, "rope_theta": 500000})
    assert (t.model.n_heads, t.model.n_kv_heads, t.model.rope_theta) == (32, None, 5e5)


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [(10**12, 10**12), (1e12, 10**12), ("1.0e12", 10**12), ("300B", 3 * 10**11), ("1.5t", 15e11)],
)
def test_tokens_forms(tokens: object, expected: int) -> None:
    assert load_target(GOOD | {"tokens": tokens}).plan.tokens == expected


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ({"widht": 1}, "widht", "unknown key; did you mean 'width'?"),
        ({"width": None}, "width", "missing: expected the target's width"),
        ({"depth": "x"}, "depth", "expected an integer, got 'x' (str)"),
        ({"depth": 0}, "depth", "expected > 0, got 0 (int)"),
        ({"n_heads": 30}, "n_heads", "expected a divisor of width 4096, got 30 (int)"),
        ({"n_heads": None}, "head_dim", "missing: expected head_dim or n_heads"),
        ({"head_dim": 100}, "head_dim", "expected a divisor of width 4096, got 100 (int)"),
        ({"head_dim": 64}, "n_heads", "head_dim 64 × n_heads must equal width 4096"),
        ({"n_kv_heads": 5}, "n_kv_heads", "expected a divisor of n_heads 32, got 5 (int)"),
        ({"ffn_ratio": 2.5}, "ffn_ratio", "give ffn_hidden or ffn_ratio, not both"),
        ({"ffn_hidden": None}, "ffn_hidden", "missing: expected ffn_hidden or ffn_ratio"),
        ({"ffn": "relu"}, "ffn", "expected one of swiglu, gelu, got 'relu' (str)"),
        ({"pos": "alibi"}, "pos", "expected one of rope, none"),
        ({"norm": "batch"}, "norm", "expected one of rms, layer"),
        ({"rope_theta": -1}, "rope_theta", "expected > 0"),
        ({"pos": "none", "rope_theta": 1e4}, "rope_theta", "only with pos: rope"),
        ({"n_heads": 4096}, "n_heads", "gives head_dim 1: rope needs it even"),
        ({"tokens": "lots"}, "tokens", "expected a positive whole number"),
        ({"tokens": 0.5}, "tokens", "expected a positive whole number"),
        ({"batch_size": 0}, "batch_size", "expected > 0"),
        ({"weight_decay": -0.1}, "weight_decay", "expected u-μP's independent weight decay"),
        # torch's λ where the per-step decay belongs: 10% of every weight a step
        ({"weight_decay": 0.1}, "weight_decay", "fraction removed per step, in [0, 0.01]"),
        ({"adamw_weight_decay": 0.1}, "adamw_lr", "expected with adamw_weight_decay"),
        ({"adamw_lr": 3e-4}, "adamw_weight_decay", "expected with adamw_lr"),
        ({"adamw_weight_decay": 0.1, "adamw_lr": 0}, "adamw_lr", "expected > 0"),
        ({"adamw_weight_decay": -1, "adamw_lr": 1e-3}, "adamw_weight_decay", "expected >= 0"),
        (
            {"weight_decay": 1e-4, "adamw_lr": 1e-3},
            "adamw_lr",
            "give weight_decay or adamw_weight_decay with adamw_lr, not both",
        ),
        ({"name": ""}, "name", "expected a non-empty string"),
    ],
)
def test_bad_keys_are_one_line_errors(
    tmp_path: Path, change: dict[str, object], key: str, expected: str
) -> None:
    data = {k: v for k, v in (GOOD | change).items() if v is not None}
    path = tmp_path / "target.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    with pytest.raises(ConfigError) as err:
        load_target(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: ") and expected in message


def test_errors_inside_a_sweep_name_the_dotted_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_target(GOOD | {"n_kv_heads": 3}, "s.yaml", key="target")
    assert (
        str(err.value) == "s.yaml: target.n_kv_heads: expected a divisor of n_heads 32, got 3 (int)"
    )


def test_a_missing_file_and_a_non_mapping_document(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no/such.yaml: file not found"):
        load_target("no/such.yaml")
    path = tmp_path / "t.yaml"
    path.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping of target keys"):
        load_target(path)


def test_target_to_dict_round_trips() -> None:
    ratio = {k: v for k, v in GOOD.items() if k != "ffn_hidden"} | {"ffn_ratio": 8 / 3}
    for data in (GOOD, GOOD | {"tokens": "2T", "weight_decay": 1e-4}, ratio):
        t = load_target(data)
        again = load_target(target_to_dict(t))
        assert again == t and again.model.ffn_hidden == t.model.ffn_hidden
    assert load_target(ratio).model.ffn_hidden == 10928  # 4096 · 8/3 = 10922.7, up to × 8


def test_hf_config_key_takes_shapes_from_the_config_and_the_plan_from_us(tmp_path: Path) -> None:
    (tmp_path / "hf").mkdir()
    config = REPO / "proxies" / "llama_7b_gqa_config.json"
    (tmp_path / "hf" / "config.json").write_text(config.read_text())
    path = tmp_path / "t.yaml"
    path.write_text("name: mine\nhf_config: hf/config.json\nseq_len: 2048\ntokens: 1T\n")
    t = load_target(path)
    assert isinstance(t, TargetSpec) and t.name == "mine" and t.norm_eps == 1e-5
    assert (t.model.width, t.model.kv_heads, t.model.ffn_hidden, t.model.seq_len) == (
        4096,
        8,
        11008,
        2048,
    )
    assert t.plan == TrainingPlan(tokens=10**12, seq_len=2048)
    path.write_text("hf_config: hf/config.json\nwidth: 512\n")
    with pytest.raises(ConfigError) as err:
        load_target(path)
    assert str(err.value).startswith(f"{path}: width: not with hf_config")
