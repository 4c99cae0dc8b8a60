"""The u-μP proxy equals the reference library's maths, op for op, for any spec, and its
optimizer gives every tensor the learning rate and weight decay the reference's does.

Two oracles: `unit_scaling.TransformerDecoder` itself (default HPs, no RoPE), and the same
architecture as ours composed from `unit_scaling.functional` ops (every HP, RoPE, GELU,
LayerNorm). Same weights, same batch: loss and every parameter gradient agree to rtol 1e-5.
The reference's `unit_scaling.optim.AdamW` / `SGD` on its `TransformerDecoder` (LRs from each
parameter's `mup_type` and `mup_scaling_depth`) is the oracle for our `make_optimizer` and
`lr_table` on the real proxy.
"""

from __future__ import annotations

import pytest
import torch
from ci_strict import require_module

from umup_sweep.models import build_model, lr_table, make_optimizer
from umup_sweep.models._common import apply_rope, rope_tables
from umup_sweep.spec import ModelSpec

uu = require_module("unit_scaling", "the test oracle: pip install -e '.[dev]'")
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


# Our block's modules -> the reference `TransformerLayer`'s (SwiGLU: up = linear_1).
BLOCK_NAMES = {
    "attn.qkv": "mhsa.linear_qkv",
    "attn.out": "mhsa.linear_o",
    "ffn.up": "mlp.linear_1",
    "ffn.gate": "mlp.linear_gate",
    "ffn.down": "mlp.linear_2",
}


def reference_names(depth: int) -> dict[str, str]:
    """Our proxy's parameter names -> `unit_scaling.TransformerDecoder`'s, every parameter."""
    mapping = {"embedding.weight": "embedding.weight", "readout.weight": "projection.weight"}
    for i in range(depth):
        for ours, ref in BLOCK_NAMES.items():
            mapping[f"blocks.{i}.{ours}.weight"] = f"layers.{i}.{ref}.weight"
    return mapping


def test_equals_reference_transformer_decoder() -> None:
    spec = ModelSpec(width=64, depth=3, head_dim=32, pos="none", vocab_size=101)
    torch.manual_seed(0)
    ours = build_model(spec)
    ref = uu.TransformerDecoder(hidden_size=64, vocab_size=101, layers=3, heads=2)
    mapping = reference_names(3)
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


def _lr_and_wd(
    model: torch.nn.Module, opt: torch.optim.Optimizer
) -> dict[str, tuple[float, float]]:
    """Parameter name -> (lr, weight_decay) of the param group the optimizer puts it in."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {
        names[id(p)]: (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]
    }
    assert len(out) == len(names), "every parameter is in exactly one group"
    return out


@pytest.mark.parametrize(("width", "depth", "heads"), [(64, 1, 2), (128, 3, 4), (96, 8, 3)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_proxy_optimizer_lrs_equal_reference_optimizer(width, depth, heads, weight_decay) -> None:
    """The real proxy's per-tensor LR and weight decay (AdamW and SGD), and the LR table the
    recommendation writes (`lr_table`), equal what `unit_scaling.optim` gives the reference's
    decoder of the same shape."""
    lr, vocab = 0.7, 101
    spec = ModelSpec(
        width=width, depth=depth, head_dim=width // heads, pos="none", vocab_size=vocab
    )
    ours = build_model(spec)
    ref = uu.TransformerDecoder(hidden_size=width, vocab_size=vocab, layers=depth, heads=heads)
    mapping = reference_names(depth)
    our_params, ref_params = dict(ours.named_parameters()), dict(ref.named_parameters())
    assert set(mapping) == set(our_params) and set(mapping.values()) == set(ref_params)
    for name, ref_name in mapping.items():
        assert our_params[name].shape == ref_params[ref_name].shape, name

    readout_constraint = ref.projection.constraint  # SGD's readout rule depends on it
    for kind, ref_opt in (
        ("adamw", uu.optim.AdamW(ref.parameters(), lr=lr, weight_decay=weight_decay)),
        (
            "sgd",
            uu.optim.SGD(
                ref.parameters(),
                lr=lr,
                weight_decay=weight_decay,
                readout_constraint=readout_constraint,
            ),
        ),
    ):
        our_opt = make_optimizer(ours, lr=lr, weight_decay=weight_decay, optimizer=kind)
        torch_rule = torch.optim.AdamW if kind == "adamw" else torch.optim.SGD
        assert isinstance(our_opt, torch_rule) and isinstance(ref_opt, torch_rule)
        ours_lr, ref_lr = _lr_and_wd(ours, our_opt), _lr_and_wd(ref, ref_opt)
        table = {
            r["name"]: (r["lr"], r["weight_decay"]) for r in lr_table(spec, lr, weight_decay, kind)
        }
        for name, ref_name in mapping.items():
            want_lr, want_wd = ref_lr[ref_name]
            got_lr, got_wd = ours_lr[name]
            assert got_lr == pytest.approx(want_lr, rel=1e-12), (kind, name, got_lr, want_lr)
            assert got_wd == pytest.approx(want_wd, rel=1e-12), (kind, name, got_wd, want_wd)
            assert table[name] == pytest.approx((want_lr, want_wd), rel=1e-12), (kind, name)
    # Not a degenerate comparison: the rules give several different LRs.
    assert len({lr_ for lr_, _ in ours_lr.values()}) >= 3
