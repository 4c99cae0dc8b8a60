"""The `unit_scaling` export builds, with the reference library itself, a model and optimizer
that give every tensor our learning rate and weight decay, and a snippet whose loss and
gradients equal our proxy's. What the reference cannot build is listed, and the test checks the
listed difference is real."""

from __future__ import annotations

import re

import pytest
import torch
from ci_strict import require_module

from umup_sweep.exports import unit_scaling_export
from umup_sweep.models import build_model, lr_table
from umup_sweep.spec import ModelSpec

uu = require_module("unit_scaling", "the test oracle: pip install -e '.[dev]'")

# Role of each parameter, by name, in the reference TransformerDecoder and in our proxy.
REF_ROLES = {
    r"embedding\.weight": "embedding",
    r"layers\.(\d+)\.mhsa\.linear_qkv\.weight": "qkv",
    r"layers\.(\d+)\.mhsa\.linear_o\.weight": "attn_out",
    r"layers\.(\d+)\.mlp\.linear_1\.weight": "ffn_up",
    r"layers\.(\d+)\.mlp\.linear_gate\.weight": "ffn_gate",
    r"layers\.(\d+)\.mlp\.linear_2\.weight": "ffn_down",
    r"projection\.weight": "readout",
}
OUR_ROLES = {
    r"embedding\.weight": "embedding",
    r"blocks\.(\d+)\.attn\.qkv\.weight": "qkv",
    r"blocks\.(\d+)\.attn\.out\.weight": "attn_out",
    r"blocks\.(\d+)\.ffn\.up\.weight": "ffn_up",
    r"blocks\.(\d+)\.ffn\.gate\.weight": "ffn_gate",
    r"blocks\.(\d+)\.ffn\.down\.weight": "ffn_down",
    r"readout\.weight": "readout",
}
# Supported by the reference: plain MHA, no RoPE, SwiGLU 4x, RMSNorm, ffn_act_mult 1.
SPEC = ModelSpec(
    width=64,
    depth=2,
    head_dim=32,
    pos="none",
    vocab_size=101,
    residual_mult=0.5,
    residual_attn_ratio=2.0,
    attn_softmax_mult=1.7,
    loss_softmax_mult=0.6,
)
HPS = {
    "lr": 0.37,
    "weight_decay": 0.05,
    "residual_mult": 0.5,
    "residual_attn_ratio": 2.0,
    "attn_softmax_mult": 1.7,
    "ffn_act_mult": 1.0,
    "loss_softmax_mult": 0.6,
}
TRAIN = {"beta1": 0.8, "beta2": 0.97, "eps": 1e-7}


def _key(name: str, roles: dict[str, str]) -> tuple[str, int | None]:
    """(role, layer index) of a parameter name; fails on a name no role covers."""
    for pattern, role in roles.items():
        m = re.fullmatch(pattern, name)
        if m:
            return role, int(m.group(1)) if m.groups() else None
    raise AssertionError(f"no role for parameter {name}")


def _reference(block: dict, spec: ModelSpec = SPEC):
    """The reference model and optimizer built from the export's plain-data arguments."""
    m = block["model"]
    model = uu.TransformerDecoder(
        **m["args"],
        residual_scaling=uu.transformer_residual_scaling_rule(**m["residual_scaling"]["args"]),
    )
    for layer in model.layers:
        layer.mhsa.mult = m["set_attributes"]["layers.*.mhsa.mult"]
    args = dict(block["optimizer"]["args"])
    if "betas" in args:
        args["betas"] = tuple(args["betas"])
    cls = getattr(uu.optim, block["optimizer"]["class"].rsplit(".", 1)[1])
    return model, cls(model.parameters(), **args)


def _per_tensor(model, opt) -> dict[tuple[str, int | None], dict]:
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    return {_key(n, REF_ROLES): group_of[id(p)] for n, p in model.named_parameters()}


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_reference_optimizer_gives_our_lr_and_weight_decay(optimizer: str) -> None:
    block = unit_scaling_export(SPEC, HPS, TRAIN | {"optimizer": optimizer})
    assert block["unsupported"] == []
    ref = _per_tensor(*_reference(block))
    ours = {_key(r["name"], OUR_ROLES): r for r in lr_table(SPEC, 0.37, 0.05, optimizer)}
    assert ref.keys() == ours.keys()  # same tensors, role by role, layer by layer
    assert {role for role, _ in ref} == set(OUR_ROLES.values())  # norms: no weights in either
    for key, group in ref.items():
        assert group["lr"] == pytest.approx(ours[key]["lr"], rel=1e-12), key
        assert group["weight_decay"] == pytest.approx(ours[key]["weight_decay"], rel=1e-12), key
        # independent decay: what torch multiplies (lr · wd) is the recommended decay per step
        assert group["lr"] * group["weight_decay"] == pytest.approx(0.05, rel=1e-12)
        if optimizer == "adamw":
            assert group["betas"] == (0.8, 0.97) and group["eps"] == 1e-7
        else:
            assert group["momentum"] == 0.8


def _copy_weights(ours: torch.nn.Module, ref: torch.nn.Module) -> None:
    """Give the reference model our proxy's weights, matched by role and layer."""
    mine = {_key(n, OUR_ROLES): p for n, p in ours.named_parameters()}
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(mine[_key(name, REF_ROLES)])


def test_snippet_builds_a_model_with_our_loss_and_gradients() -> None:
    block = unit_scaling_export(SPEC, HPS, TRAIN)
    namespace: dict = {}
    exec(block["snippet"], namespace)  # what a person pastes
    ref, ref_opt, loss_fn = namespace["model"], namespace["opt"], namespace["loss_fn"]
    torch.manual_seed(0)
    ours = build_model(SPEC)
    _copy_weights(ours, ref)
    ids = torch.randint(0, SPEC.vocab_size, (3, 24), generator=torch.Generator().manual_seed(1))
    ref_loss = loss_fn(ids)
    # same input length as loss_fn (the embedding's backward scale counts the input tokens)
    our_loss = ours.compute_loss(ours(ids)[:, :-1], ids[:, 1:])
    assert ref_loss.item() == pytest.approx(our_loss.item(), rel=1e-6)
    ref_loss.backward()
    our_loss.backward()
    mine = {_key(n, OUR_ROLES): p.grad for n, p in ours.named_parameters()}
    for name, p in ref.named_parameters():
        g = mine[_key(name, REF_ROLES)]
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5 * float(g.pow(2).mean().sqrt()))
    # the snippet's optimizer is the block's optimizer
    built = _per_tensor(*_reference(block))
    for key, group in _per_tensor(ref, ref_opt).items():
        assert (group["lr"], group["weight_decay"]) == (
            built[key]["lr"],
            built[key]["weight_decay"],
        )


def test_unsupported_lists_exactly_what_the_reference_lacks() -> None:
    llama = ModelSpec(width=4096, depth=32, head_dim=128, n_kv_heads=8, ffn_ratio=11008 / 4096)
    heads = [u.split(":")[0] for u in unit_scaling_export(llama, {}, {})["unsupported"]]
    assert heads == ["pos=rope", "n_kv_heads=8", "ffn_hidden=11008"]
    other = ModelSpec(width=64, pos="none", ffn="gelu", norm="layer", ffn_act_mult=2.0)
    heads = [u.split(":")[0] for u in unit_scaling_export(other, {}, {})["unsupported"]]
    assert heads == ["ffn=gelu", "norm=layer", "ffn_act_mult=2"]


def test_listed_gqa_and_ffn_size_differences_are_real() -> None:
    """A GQA target with a 3x FFN: the reference builds 3·width qkv rows and a 4x FFN, so its
    down projection's lr differs from ours by exactly √(4/3), as the block says."""
    spec = ModelSpec(width=64, depth=2, head_dim=16, n_kv_heads=1, ffn_ratio=3.0, pos="none")
    block = unit_scaling_export(spec, {"lr": 1.0}, {})
    assert [u.split(":")[0] for u in block["unsupported"]] == ["n_kv_heads=1", "ffn_hidden=192"]
    model, opt = _reference(block, spec)
    shapes = {_key(n, REF_ROLES): tuple(p.shape) for n, p in model.named_parameters()}
    ours = {_key(r["name"], OUR_ROLES): r for r in lr_table(spec, 1.0)}
    assert shapes[("qkv", 0)] == (3 * 64, 64) and ours[("qkv", 0)]["shape"] == (64 + 2 * 16, 64)
    assert shapes[("ffn_down", 0)] == (64, 256) and ours[("ffn_down", 0)]["shape"] == (64, 192)
    ref = _per_tensor(model, opt)
    assert ref[("ffn_down", 0)]["lr"] / ours[("ffn_down", 0)]["lr"] == pytest.approx(
        (192 / 256) ** 0.5
    )
    assert ref[("qkv", 0)]["lr"] == pytest.approx(ours[("qkv", 0)]["lr"])  # fan-in is width in both


def test_sp_target_is_refused() -> None:
    with pytest.raises(ValueError, match="u-μP"):
        unit_scaling_export(ModelSpec(parametrization="sp"), {}, {})
