"""Proxies derived from the target (`proxy: {from_target: true, ...}`): what they keep for
each head_dim mode, the widths that cannot keep it, the sweep's `target:` section and
`--target`, and the sweep identity (a sweep without a target hashes as before)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from umup_sweep.config import (
    TargetSpec,
    load_proxy_family,
    load_sweep,
    load_target,
    proxy_spec_from_target,
    sweep_hash,
    sweep_to_dict,
)
from umup_sweep.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TARGET_YAML = REPO / "proxies" / "llama2_7b_target.yaml"
TARGET_JSON = REPO / "proxies" / "llama_7b_gqa_config.json"


@pytest.fixture(scope="module")
def target() -> TargetSpec:
    return load_target(TARGET_YAML)


def _family(target: TargetSpec, **proxy: Any) -> list[tuple[int, ...]]:
    fam = load_proxy_family({"from_target": True, "depths": [2]} | proxy, target=target)
    return [(s.width, s.n_heads, s.kv_heads, s.head_dim, s.ffn_hidden) for s in fam.specs()]


def test_keep_keeps_head_dim_and_the_gqa_ratio(target: TargetSpec) -> None:
    assert _family(target, widths=[512, 1024, 2048]) == [
        (512, 4, 1, 128, 1376),
        (1024, 8, 2, 128, 2752),
        (2048, 16, 4, 128, 5504),
    ]


def test_scale_keeps_the_number_of_heads(target: TargetSpec) -> None:
    assert _family(target, widths=[256, 512], head_dim="scale") == [
        (256, 32, 8, 8, 688),
        (512, 32, 8, 16, 1376),
    ]


def test_an_integer_sets_head_dim(target: TargetSpec) -> None:
    assert _family(target, widths=[128, 256, 512], head_dim=32) == [
        (128, 4, 1, 32, 344),
        (256, 8, 2, 32, 688),
        (512, 16, 4, 32, 1376),
    ]


def test_everything_else_comes_from_the_target(target: TargetSpec) -> None:
    fam = load_proxy_family(
        {"from_target": True, "widths": [512], "depths": [1, 2], "seq_len": 64}, target=target
    )
    for spec in fam.specs():
        assert (spec.ffn, spec.norm, spec.pos, spec.rope_base) == ("swiglu", "rms", "rope", 1e4)
        assert (spec.vocab_size, spec.seq_len, spec.parametrization) == (32000, 64, "umup")
        assert spec.ffn_hidden_size is None and spec.ffn_ratio == 2.6875
    assert [s.depth for s in fam.specs()] == [1, 2]
    assert fam.name == "llama2_7b_gqa-proxies" and fam.kv_group == 4 and not fam.fixed_heads
    assert (
        "head_dim keep (128)" in fam.description and "4 query heads per kv head" in fam.description
    )


def test_rope_theta_ffn_and_mha_targets() -> None:
    t = load_target(
        {"width": 1024, "depth": 8, "head_dim": 64, "ffn": "gelu", "ffn_ratio": 4}
        | {"vocab_size": 1000, "seq_len": 2048, "rope_theta": 5e5, "norm": "layer"}
    )
    spec = proxy_spec_from_target(t, 192, 2)
    assert (spec.n_heads, spec.n_kv_heads, spec.head_dim, spec.ffn_hidden) == (3, None, 64, 768)
    assert (spec.ffn, spec.norm, spec.rope_theta, spec.seq_len) == ("gelu", "layer", 5e5, 128)
    assert (
        load_proxy_family(
            {"from_target": True, "widths": [64, 128], "depths": [1]}, target=t
        ).kv_group
        is None
    )


@pytest.mark.parametrize(
    ("proxy", "key", "message"),
    [
        (
            {"widths": [256, 512]},
            "proxy.widths[0]",
            "256 cannot keep head_dim 128 with 4 query heads per kv head; widths that can: "
            "512, 1024, 1536, 2048, ...",
        ),
        (
            {"widths": [512, 768]},
            "proxy.widths[1]",
            "768 cannot keep head_dim 128 with 4 query heads per kv head; widths that can: "
            "512, 1024, 1536, 2048, ...",
        ),
        (
            {"widths": [96], "head_dim": "scale"},
            "proxy.widths[0]",
            "96 cannot split into 32 heads of even head_dim; widths that can: 64, 128, 192, "
            "256, ...",
        ),
        (
            {"widths": [64], "head_dim": 32},
            "proxy.widths[0]",
            "64 cannot keep head_dim 32 with 4 query heads per kv head; widths that can: 128, "
            "256, 384, 512, ...",
        ),
        ({"widths": [128], "head_dim": 33}, "proxy.head_dim", "expected an even integer (rope)"),
        ({"widths": [128], "head_dim": "half"}, "proxy.head_dim", "expected keep, scale or"),
        ({"widths": [512], "seq_len": 0}, "proxy.seq_len", "expected > 0"),
        ({"widths": [512], "base": {}}, "proxy.base", "unknown key"),
        ({"depths": None, "widths": [512]}, "proxy.depths", "missing: expected a list"),
    ],
)
def test_widths_that_cannot_keep_the_heads(
    target: TargetSpec, proxy: dict[str, Any], key: str, message: str
) -> None:
    merged = {"from_target": True, "depths": [2]} | proxy
    data = {k: v for k, v in merged.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        load_proxy_family(data, "s.yaml", key="proxy", target=target)
    assert str(err.value).startswith(f"s.yaml: {key}: {message}")


def _sweep(**extra: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "proxy": {"from_target": True, "widths": [128, 256], "depths": [1], "head_dim": 32},
        "hyperparameters": {"lr": [0.5, 1.0]},
        # byte-level proxies of a 32000-token target: allowed only when asked for
        "data": {"allow_vocab_mismatch": True},
    } | extra


def test_the_proxies_vocabulary_must_be_the_targets(target: TargetSpec) -> None:
    plain = {k: v for k, v in _sweep().items() if k != "data"}
    with pytest.raises(ConfigError) as err:
        load_sweep(plain, target=target)
    assert str(err.value) == (
        "<inline>: data.tokenizer: the proxies' vocabulary (256, byte-level text) differs from "
        "the target's vocab_size (32000); train one of the target's size (data.tokenizer: "
        "{train_bpe: 32000}) or give its tokenizer.json, or set data.allow_vocab_mismatch: true"
    )
    bpe = load_sweep(plain | {"data": {"tokenizer": {"train_bpe": 32000}}}, target=target)
    assert bpe.data.train_bpe == 32000 and bpe.family.base.vocab_size == 32000
    mismatch = r"tokenizer's vocabulary \(8192\) differs from the model's"
    with pytest.raises(ConfigError, match=mismatch):
        load_sweep(plain | {"data": {"tokenizer": {"train_bpe": 8192}}}, target=target)


def test_from_target_without_a_target_is_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        load_sweep(_sweep())
    assert str(err.value) == (
        "<inline>: proxy.from_target: no target to derive the proxies from: give the sweep a "
        "top-level target: (a mapping or a file) or pass --target FILE"
    )


def test_sweep_target_inline_file_and_override(tmp_path: Path, target: TargetSpec) -> None:
    inline = load_sweep(_sweep(target=yaml.safe_load(TARGET_YAML.read_text())))
    assert inline.target == target
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "t.json").write_text(TARGET_JSON.read_text())
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(_sweep(target="targets/t.json")))
    from_file = load_sweep(sweep_file)
    assert from_file.target is not None and from_file.target.fmt == "hf-config"
    assert from_file.target.model == target.model
    assert [s.kv_heads for s in from_file.family.specs()] == [1, 2]
    small = {"width": 256, "depth": 2, "n_heads": 8, "n_kv_heads": 2, "ffn_ratio": 3}
    small |= {"vocab_size": 500, "seq_len": 512}
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(small))
    over = load_sweep(sweep_file, target=tmp_path / "small.yaml")
    assert over.target is not None and over.target.model.width == 256
    assert [(s.n_heads, s.kv_heads, s.vocab_size) for s in over.family.specs()] == [
        (4, 1, 500),
        (8, 2, 500),
    ]


def test_a_bad_target_reference_in_a_sweep(tmp_path: Path) -> None:
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(_sweep(target="nope.yaml")))
    with pytest.raises(ConfigError) as err:
        load_sweep(sweep_file)
    assert str(err.value).startswith(f"{sweep_file}: target: target file not found")
    with pytest.raises(ConfigError, match=r"<inline>: target: expected a target mapping"):
        load_sweep(_sweep(target=3))
    with pytest.raises(ConfigError, match=r"<inline>: target.depth: missing"):
        load_sweep(_sweep(target={"width": 64}))


def test_the_sweep_round_trips_and_its_hash_ignores_the_target(target: TargetSpec) -> None:
    sweep = load_sweep(_sweep(target=yaml.safe_load(TARGET_YAML.read_text())))
    written = sweep_to_dict(sweep)
    assert written["proxy"]["kv_group"] == 4 and written["target"]["ffn_hidden"] == 11008
    again = load_sweep(json.loads(json.dumps(written)))
    assert again == sweep and again.family.specs() == sweep.family.specs()
    assert sweep_hash(again) == sweep_hash(sweep)
    plan = dict(written["target"], tokens=2 * 10**12)
    assert sweep_hash(load_sweep(_sweep(target=plan))) == sweep_hash(sweep)


def test_scale_mode_round_trips_with_fixed_heads(target: TargetSpec) -> None:
    proxy = {"from_target": True, "widths": [128, 256], "depths": [1], "head_dim": "scale"}
    sweep = load_sweep(_sweep(proxy=proxy), target=target)
    written = sweep_to_dict(sweep)
    assert written["proxy"]["fixed_heads"] is True and "kv_group" not in written["proxy"]
    assert load_sweep(written).family.specs() == sweep.family.specs()
    assert [(s.n_heads, s.kv_heads, s.head_dim) for s in sweep.family.specs()] == [
        (32, 8, 4),
        (32, 8, 8),
    ]


def test_a_sweep_without_a_target_hashes_as_before() -> None:
    proxy = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}
    sweep = load_sweep({"name": "a", "proxy": proxy, "hyperparameters": {"lr": [1, 2]}})
    written = sweep_to_dict(sweep)
    assert "target" not in written
    assert set(written["proxy"]) == {"name", "base", "widths", "depths"}
    assert not {"ffn_hidden_size", "rope_theta", "n_kv_heads"} & set(written["proxy"]["base"])


def test_top_level_widths_override_a_derived_family(target: TargetSpec) -> None:
    sweep = load_sweep(_sweep(widths=[384, 512]), target=target)
    assert [(s.width, s.n_heads, s.kv_heads) for s in sweep.family.specs()] == [
        (384, 12, 3),
        (512, 16, 4),
    ]
    with pytest.raises(ConfigError) as err:
        load_sweep(_sweep(widths=[128, 200]), target=target)
    assert str(err.value).startswith("<inline>: widths[1]: 200 cannot keep head_dim 32 with 4")


def test_a_family_cannot_fix_its_ffn_size() -> None:
    proxy = {"base": {"head_dim": 16, "ffn_hidden_size": 64}, "widths": [32], "depths": [1]}
    with pytest.raises(ConfigError, match="proxy.base.ffn_hidden_size: a family scales its FFN"):
        load_sweep({"name": "a", "proxy": proxy, "hyperparameters": {"lr": [1]}})


def test_a_given_description_keeps_the_head_dim_mode_and_from_target_false_is_plain(
    target: TargetSpec,
) -> None:
    proxy = {"from_target": True, "widths": [512], "depths": [1], "description": "cpu ones"}
    fam = load_proxy_family(proxy | {"head_dim": "scale"}, target=target)
    assert fam.description.startswith("cpu ones; derived from target llama2_7b_gqa")
    assert "head_dim scale (32 heads)" in fam.description
    plain = {"from_target": False, "base": {"head_dim": 16}, "widths": [32], "depths": [1]}
    assert load_proxy_family(plain, target=target).base.n_heads == 2
