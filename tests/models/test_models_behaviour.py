"""The proxy factory: shapes, sizes, causality, meta build, HP wiring, coord check, training."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from umup_sweep.analysis._coord import SLOPE_THRESHOLD
from umup_sweep.models import activation_rms, build_model, count_params, lr_table, make_optimizer
from umup_sweep.spec import MODEL_HPS, ModelSpec

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(width=64, depth=2, head_dim=16, vocab_size=61, seq_len=16)


def ids(batch: int = 2, seq: int = 16, vocab: int = 61, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


def expected_params(spec: ModelSpec) -> int:
    w, h, v = spec.width, spec.ffn_hidden, spec.vocab_size
    ffn = (3 if spec.ffn == "swiglu" else 2) * w * h
    kv = 2 * w * spec.kv_heads * spec.head_dim  # k and v: W -> n_kv_heads·d_head each
    return 2 * v * w + spec.depth * (2 * w * w + kv + ffn)  # + q and out: W -> W


ARCHS = [
    dict(ffn="swiglu", norm="rms", pos="rope"),
    dict(ffn="gelu", norm="layer", pos="none"),
    dict(ffn="swiglu", norm="rms", pos="rope", n_kv_heads=2),  # 4 query heads in 2 groups
]


def arch_id(arch: dict) -> str:
    return arch["ffn"] + (f"-kv{arch['n_kv_heads']}" if "n_kv_heads" in arch else "")


@pytest.mark.parametrize("param", ["umup", "sp"])
@pytest.mark.parametrize("arch", ARCHS, ids=arch_id)
def test_shapes_and_param_count(param: str, arch: dict) -> None:
    spec = ModelSpec(**TINY, **arch, parametrization=param)
    model = build_model(spec)
    assert model(ids(3, 10)).shape == (3, 10, 61)
    assert count_params(model) == expected_params(spec)
    assert model.parametrization == param


@pytest.mark.parametrize("param", ["umup", "sp"])
@pytest.mark.parametrize("arch", ARCHS, ids=arch_id)
def test_future_tokens_do_not_change_past_logits(param: str, arch: dict) -> None:
    model = build_model(ModelSpec(**TINY, **arch, parametrization=param))
    x = ids()
    y = x.clone()
    y[:, 9:] = (y[:, 9:] + 7) % 61
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :9], b[:, :9])
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_meta_build_and_lr_table_for_a_big_target() -> None:
    spec = ModelSpec(width=4096, depth=32, head_dim=128)
    with torch.device("meta"):
        model = build_model(spec)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert count_params(model) == expected_params(spec)
    rows = {r["name"]: r for r in lr_table(spec, lr=0.5, weight_decay=0.1)}
    assert rows["embedding.weight"]["lr"] == pytest.approx(0.5 / 64)
    assert rows["readout.weight"]["lr"] == pytest.approx(0.5)
    down = rows["blocks.31.ffn.down.weight"]
    assert down["lr"] == pytest.approx(0.5 / math.sqrt(16384) / math.sqrt(32))
    assert down["lr"] * down["weight_decay"] == pytest.approx(0.1)  # decay per step = 0.1
    sp_rows = lr_table(dataclasses.replace(spec, parametrization="sp"), lr=0.5)
    assert {r["lr"] for r in sp_rows} == {0.5}


@pytest.mark.parametrize("param", ["umup", "sp"])
@pytest.mark.parametrize("n_kv_heads", [1, 8, 32])
def test_grouped_query_param_count_is_the_formula(param: str, n_kv_heads: int) -> None:
    spec = ModelSpec(width=4096, depth=32, head_dim=128, n_kv_heads=n_kv_heads,
                     vocab_size=32000, parametrization=param)  # fmt: skip
    with torch.device("meta"):
        model = build_model(spec)
    qkv = (32 + 2 * n_kv_heads) * 128 * 4096
    ffn = 3 * 4096 * 16384
    assert count_params(model) == 2 * 32000 * 4096 + 32 * (qkv + 4096 * 4096 + ffn)
    assert count_params(model) == expected_params(spec)
    assert model.blocks[0].attn.qkv.weight.shape == ((32 + 2 * n_kv_heads) * 128, 4096)


def test_meta_model_materialises_with_tags() -> None:
    spec = ModelSpec(**TINY)
    with torch.device("meta"):
        model = build_model(spec)
    model.to_empty(device="cpu")
    groups = make_optimizer(model, lr=1.0).param_groups  # would raise on lost tags
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_optimizer_lrs_follow_umup_rules_and_sp_uses_one_lr() -> None:
    spec = ModelSpec(**TINY)
    model = build_model(spec)
    lr_of = {id(p): g["lr"] for g in make_optimizer(model, lr=0.5).param_groups
             for p in g["params"]}  # fmt: skip
    named = dict(model.named_parameters())
    assert lr_of[id(named["embedding.weight"])] == pytest.approx(0.5 / 8)
    assert lr_of[id(named["readout.weight"])] == pytest.approx(0.5)
    assert lr_of[id(named["blocks.1.attn.qkv.weight"])] == pytest.approx(0.5 / 8 / 2**0.5)
    assert lr_of[id(named["blocks.0.ffn.down.weight"])] == pytest.approx(0.5 / 16 / 2**0.5)
    sp = build_model(dataclasses.replace(spec, parametrization="sp"))
    opt = make_optimizer(sp, lr=0.01, weight_decay=0.1)
    assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == [(0.01, 0.1)]
    assert isinstance(make_optimizer(model, lr=1.0, optimizer="sgd"), torch.optim.SGD)
    with pytest.raises(ValueError, match="optimizer must be"):
        make_optimizer(model, lr=1.0, optimizer="lion")  # type: ignore[arg-type]


def test_deepcopy_keeps_roles() -> None:
    model = copy.deepcopy(build_model(ModelSpec(**TINY)))
    make_optimizer(model, lr=1.0)  # raises if a role was lost


def _loss(spec: ModelSpec, x: torch.Tensor) -> float:
    torch.manual_seed(0)  # same weights whatever the multipliers
    model = build_model(spec)
    with torch.no_grad():
        return float(model.compute_loss(model(x[:, :-1]), x[:, 1:]))


@pytest.mark.parametrize("hp", MODEL_HPS)
def test_each_model_hp_reaches_its_op(hp: str) -> None:
    spec = ModelSpec(**TINY)
    x = ids(seed=3)
    base = _loss(spec, x)
    assert _loss(spec, x) == base  # deterministic
    changed = _loss(dataclasses.replace(spec, **{hp: 2.0}), x)
    assert abs(changed - base) > 1e-4, f"{hp} has no effect"
    sp = dataclasses.replace(spec, parametrization="sp")
    assert _loss(dataclasses.replace(sp, **{hp: 2.0}), x) == _loss(sp, x)  # SP ignores it


def test_lr_reaches_every_tensor() -> None:
    spec = ModelSpec(**TINY)
    x = ids(seed=4)
    deltas = []
    for lr in (0.25, 0.5):
        torch.manual_seed(0)
        model = build_model(spec)
        before = [p.detach().clone() for p in model.parameters()]
        opt = make_optimizer(model, lr=lr)
        model.compute_loss(model(x[:, :-1]), x[:, 1:]).backward()
        opt.step()  # Adam's first step moves each weight by ≈ its lr
        deltas.append(
            [
                float((p.detach() - b).abs().max())
                for p, b in zip(model.parameters(), before, strict=True)
            ]
        )
    for small, large in zip(*deltas, strict=True):
        assert large == pytest.approx(2 * small, rel=1e-3)


COORD_WIDTHS = [64, 128, 256, 512, 1024]


def _coord(param: str) -> dict[int, dict[str, float]]:
    out = {}
    for width in COORD_WIDTHS:
        torch.manual_seed(0)
        spec = ModelSpec(width=width, depth=2, head_dim=32, seq_len=16, parametrization=param)
        out[width] = activation_rms(build_model(spec), ids(2, 16, 256))
    return out


def test_coord_check_umup_is_width_stable_and_sp_is_not() -> None:
    umup, sp = _coord("umup"), _coord("sp")
    assert set(umup[64]) == {"embedding", "block_0", "block_1", "attn_logits_0",
                             "attn_logits_1", "logits"}  # fmt: skip
    for width, stats in umup.items():
        for key in ("embedding", "block_0", "block_1"):
            assert 0.5 <= stats[key] <= 2.0, (width, key, stats[key])
        # μP readout: unit input, N(0,1) weight, × 1/fan_in → RMS fan_in^-½.
        assert stats["logits"] * width**0.5 == pytest.approx(1.0, rel=0.2)
        # logits × mult/d_head (μP): ≈ d_head^-½ whatever the width.
        assert stats["attn_logits_0"] * 32**0.5 == pytest.approx(1.0, rel=0.5)
    spread = umup[1024]["attn_logits_1"] / umup[64]["attn_logits_1"]
    assert 0.67 < spread < 1.5
    # SP (GPT-2 init, 1/√d logits): both grow with width (∝ width at init).
    assert sp[1024]["attn_logits_0"] / sp[64]["attn_logits_0"] > 4
    assert sp[1024]["logits"] / sp[64]["logits"] > 2


def _log2_growth(values: list[float], widths: list[int]) -> float:
    """Least-squares slope of log2 RMS on log2 width: growth per width doubling."""
    return float(np.polyfit(np.log2(widths), np.log2(values), 1)[0])


@pytest.mark.parametrize("param", ["umup", "sp"])
def test_coord_check_grouped_query_umup_is_width_stable(param: str) -> None:
    """GQA with a quarter as many kv heads as query heads (head_dim fixed): at init the u-μP
    activations neither grow nor shrink with width (slope under the coord check's threshold),
    as for multi-head attention; SP's attention logits still grow."""
    widths = [64, 128, 256]
    per_width = []
    for width in widths:
        torch.manual_seed(0)
        n_heads = width // 16
        spec = ModelSpec(width=width, depth=2, head_dim=16, n_kv_heads=n_heads // 4,
                         seq_len=16, parametrization=param)  # fmt: skip
        assert spec.kv_heads == n_heads // 4
        per_width.append(activation_rms(build_model(spec), ids(4, 16, 256)))
    growth = {k: _log2_growth([pw[k] for pw in per_width], widths) for k in per_width[0]}
    if param == "sp":
        assert growth["attn_logits_0"] > 0.75, growth  # ∝ width at init
        return
    for key in ("embedding", "block_0", "block_1", "attn_logits_0", "attn_logits_1"):
        assert abs(growth[key]) < SLOPE_THRESHOLD, (key, growth)
        assert all(0.1 < pw[key] < 2.0 for pw in per_width), (key, per_width)
    assert growth["logits"] == pytest.approx(-0.5, abs=SLOPE_THRESHOLD)  # μP readout: fan_in^-½


@pytest.mark.parametrize("param,lr", [("umup", 0.5), ("sp", 0.01)])
@pytest.mark.parametrize("arch", ARCHS, ids=arch_id)
def test_both_parametrizations_train(param: str, lr: float, arch: dict) -> None:
    torch.manual_seed(0)
    model = build_model(ModelSpec(**TINY, **arch, parametrization=param))
    opt = make_optimizer(model, lr=lr)
    x = ids(4, 17, seed=5)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = model.compute_loss(model(x[:, :-1]), x[:, 1:])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(61), abs=0.5)
    assert losses[-1] < losses[0] - 0.5, losses


@pytest.mark.parametrize("name", ["llama_like", "minimal"])
def test_proxy_families_build(name: str) -> None:
    data = yaml.safe_load((ROOT / "proxies" / f"{name}.yaml").read_text())
    assert data["name"] == name and data["depths"] == [2]
    assert data["widths"] == [64, 128, 256]
    for width in data["widths"]:
        spec = ModelSpec(**{**data["base"], "width": width, "depth": 2})
        with torch.device("meta"):
            model = build_model(spec)
        assert count_params(model) == expected_params(spec)
    if name == "llama_like":
        assert (spec.ffn, spec.norm, spec.pos, spec.head_dim) == ("swiglu", "rms", "rope", 32)
    else:
        assert (spec.ffn, spec.norm, spec.pos) == ("gelu", "layer", "none")


def test_bad_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="ffn must be"):
        build_model(ModelSpec(**{**TINY, "ffn": "relu"}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parametrization must be"):
        build_model(ModelSpec(**{**TINY, "parametrization": "mup"}))  # type: ignore[arg-type]


@pytest.mark.parametrize("param", ["umup", "sp"])
def test_bf16_autocast_trains_like_fp32(param: str) -> None:
    spec = ModelSpec(**TINY, parametrization=param)
    x = ids(2, 17, seed=6)
    grads = []
    for autocast in (False, True):
        torch.manual_seed(0)
        model = build_model(spec)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model.compute_loss(model(x[:, :-1]), x[:, 1:])
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        assert all(p.grad.dtype == torch.float32 for p in model.parameters())
    cos = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    assert cos > 0.99
