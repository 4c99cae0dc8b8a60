"""The u-μP proxy equals the reference library's maths, op for op, for any spec.

Two oracles: `unit_scaling.TransformerDecoder` itself (default HPs, no RoPE), and the same
architecture as ours composed from `unit_scaling.functional` ops (every HP, RoPE, GELU,
LayerNorm). Same weights, same batch: loss and every parameter gradient agree to rtol 1e-5.
"""

from __future__ import annotations

import pytest
import torch

from umup_sweep.models import build_model
from umup_sweep.models._common import apply_rope, rope_tables
from umup_sweep.spec import ModelSpec

uu = pytest.importorskip("unit_scaling")
R = uu.functional


def _grads(loss, model):
    names, params = zip(*model.named_parameters(), strict=True)
    return dict(zip(names, torch.autograd.grad(loss, params), strict=True))


def _assert_grads_close(ours, ref):
    assert ours.keys() == ref.keys()
    for name in ref:
        atol = 1e-5 * float(ref[name].pow(2).mean().sqrt())
        torch.testing.assert_close(ours[name], ref[name], rtol=1e-5, atol=atol, msg=name)


def _batch(vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (3, 24), generator=g)
    return ids[:, :-1], ids[:, 1:]


def test_equals_reference_transformer_decoder() -> None:
    spec = ModelSpec(width=64, depth=3, head_dim=32, pos="none", vocab_size=101)
    torch.manual_seed(0)
    ours = build_model(spec)
    ref = uu.TransformerDecoder(hidden_size=64, vocab_size=101, layers=3, heads=2)
    mapping = {"embedding.weight": "embedding.weight", "readout.weight": "projection.weight"}
    for i in range(3):
        for a, b in [("attn.qkv", "mhsa.linear_qkv"), ("attn.out", "mhsa.linear_o"),
                     ("ffn.up", "mlp.linear_1"), ("ffn.gate", "mlp.linear_gate"),
                     ("ffn.down", "mlp.linear_2")]:  # fmt: skip
            mapping[f"blocks.{i}.{a}.weight"] = f"layers.{i}.{b}.weight"
    ref_params = dict(ref.named_parameters())
    ours.load_state_dict({k: ref_params[v].detach().clone() for k, v in mapping.items()})
    x, y = _batch(101)
    ref_loss = R.cross_entropy(ref(x).flatten(end_dim=-2), y.flatten())
    our_loss = ours.compute_loss(ours(x), y)
    assert our_loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    ref_grads = {k: v for k, v in _grads(ref_loss, ref).items()}
    _assert_grads_close(_grads(our_loss, ours), {k: ref_grads[v] for k, v in mapping.items()})


def reference_loss(model, spec: ModelSpec, x, y):
    """Our architecture, written with the reference library's functional ops."""
    p = dict(model.named_parameters())
    w, h, dh = spec.width, spec.n_heads, spec.head_dim
    rule = uu.transformer_residual_scaling_rule(spec.residual_mult, spec.residual_attn_ratio)

    def norm(t):
        return R.rms_norm(t, (w,)) if spec.norm == "rms" else R.layer_norm(t, (w,))

    act = R.embedding(x, p["embedding.weight"])
    b, t = x.shape
    for i in range(spec.depth):
        pre = f"blocks.{i}."
        tau = rule(2 * i, 2 * spec.depth)
        r, skip = R.residual_split(act, tau)
        qkv = R.linear(norm(r), p[pre + "attn.qkv.weight"], None)
        q, k, v = qkv.view(b, t, 3, h, dh).permute(2, 0, 3, 1, 4).unbind(0)
        if spec.pos == "rope":
            cos, sin = rope_tables(t, dh, x.device, qkv.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        att = R.scaled_dot_product_attention(q, k, v, is_causal=True, mult=spec.attn_softmax_mult)
        r = R.linear(att.transpose(1, 2).reshape(b, t, w), p[pre + "attn.out.weight"], None)
        act = R.residual_add(r, skip, tau)

        tau = rule(2 * i + 1, 2 * spec.depth)
        r, skip = R.residual_split(act, tau)
        r = norm(r)
        up = R.linear(r, p[pre + "ffn.up.weight"], None, constraint=None)
        if spec.ffn == "swiglu":
            gate = R.linear(r, p[pre + "ffn.gate.weight"], None, constraint=None)
            hid = R.silu_glu(up, gate, mult=spec.ffn_act_mult)
        else:
            hid = R.gelu(up, mult=spec.ffn_act_mult)
        r = R.linear(hid, p[pre + "ffn.down.weight"], None, constraint=None)
        act = R.residual_add(r, skip, tau)
    logits = R.linear_readout(norm(act), p["readout.weight"], None)
    return R.cross_entropy(logits.flatten(end_dim=-2), y.flatten(), mult=spec.loss_softmax_mult)


SPECS = [
    ModelSpec(width=64, depth=2, head_dim=16, vocab_size=97),
    ModelSpec(
        width=64, depth=2, head_dim=32, ffn="gelu", norm="layer", pos="none", vocab_size=97
    ),  # fmt: skip
    ModelSpec(
        width=96,
        depth=3,
        head_dim=32,
        vocab_size=97,
        residual_mult=0.5,
        residual_attn_ratio=2.0,
        attn_softmax_mult=3.0,
        ffn_act_mult=0.5,
        loss_softmax_mult=2.0,
    ),  # fmt: skip
    ModelSpec(
        width=64,
        depth=1,
        head_dim=16,
        ffn="gelu",
        vocab_size=97,
        ffn_act_mult=2.5,
        attn_softmax_mult=0.3,
        loss_softmax_mult=0.5,
        residual_mult=3.0,
    ),  # fmt: skip
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.ffn}-{s.norm}-{s.pos}-w{s.width}")
def test_equals_reference_ops_for_every_hp(spec: ModelSpec) -> None:
    torch.manual_seed(1)
    model = build_model(spec)
    x, y = _batch(spec.vocab_size, seed=2)
    ref_loss = reference_loss(model, spec, x, y)
    our_loss = model.compute_loss(model(x), y)
    assert our_loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    _assert_grads_close(_grads(our_loss, model), _grads(ref_loss, model))
