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


def reference_attention(x, qkv_weight, spec: ModelSpec):
    """Causal (grouped-query) attention from the reference's ops: q, k and v are three
    unit-scaled linears (fan-in = width) on the rows of our fused weight, RoPE on q and k, query
    head j attends with kv head j // (n_heads // n_kv_heads). Returns (B, H, T, d_head)."""
    b, t, _ = x.shape
    h, kv, dh = spec.n_heads, spec.kv_heads, spec.head_dim
    w_q, w_k, w_v = qkv_weight.split([h * dh, kv * dh, kv * dh])
    q, k, v = (
        R.linear(x, weight, None).view(b, t, -1, dh).transpose(1, 2) for weight in (w_q, w_k, w_v)
    )
    if spec.pos == "rope":
        cos, sin = rope_tables(t, dh, x.device, x.dtype)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    kv_of_head = torch.arange(h) // (h // kv)
    k, v = k.index_select(1, kv_of_head), v.index_select(1, kv_of_head)
    return R.scaled_dot_product_attention(q, k, v, is_causal=True, mult=spec.attn_softmax_mult)


def reference_loss(model, spec: ModelSpec, x, y):
    """Our architecture, written with the reference library's functional ops."""
    p = dict(model.named_parameters())
    w = spec.width
    rule = uu.transformer_residual_scaling_rule(spec.residual_mult, spec.residual_attn_ratio)

    def norm(t):
        return R.rms_norm(t, (w,)) if spec.norm == "rms" else R.layer_norm(t, (w,))

    act = R.embedding(x, p["embedding.weight"])
    b, t = x.shape
    for i in range(spec.depth):
        pre = f"blocks.{i}."
        tau = rule(2 * i, 2 * spec.depth)
        r, skip = R.residual_split(act, tau)
        att = reference_attention(norm(r), p[pre + "attn.qkv.weight"], spec)
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
    # Grouped-query attention: 8 query heads in 2 groups; multi-query (1 kv head) with HPs.
    ModelSpec(width=128, depth=2, head_dim=16, n_kv_heads=2, vocab_size=97),
    ModelSpec(
        width=64,
        depth=2,
        head_dim=16,
        n_kv_heads=1,
        ffn="gelu",
        norm="layer",
        vocab_size=97,
        residual_mult=0.5,
        attn_softmax_mult=3.0,
        loss_softmax_mult=2.0,
    ),  # fmt: skip
]


@pytest.mark.parametrize(
    "spec", SPECS, ids=lambda s: f"{s.ffn}-{s.norm}-{s.pos}-w{s.width}-kv{s.kv_heads}"
)
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


GQA = ModelSpec(width=128, depth=4, head_dim=16, n_kv_heads=2, attn_softmax_mult=2.0)


def test_grouped_query_attention_equals_reference_ops_forward_and_backward() -> None:
    """One u-μP attention block (qkv, RoPE, kv repeat, attention, out projection) against the
    reference library's ops on the same weights: output and the gradients of x and both
    weights, in float64 so that only a difference in the maths could show."""
    from umup_sweep.models._umup import UmupAttention

    torch.manual_seed(3)
    attn = UmupAttention(GQA).double()
    assert attn.qkv.weight.shape == ((8 + 2 * 2) * 16, 128)
    x = torch.randn(3, 20, 128, dtype=torch.float64, requires_grad=True)
    seed = torch.randn(3, 20, 128, dtype=torch.float64)  # upstream gradient
    inputs = (x, attn.qkv.weight, attn.out.weight)

    ours = attn(x)
    att = reference_attention(x, attn.qkv.weight, GQA)
    ref = R.linear(att.transpose(1, 2).reshape(3, 20, 128), attn.out.weight, None)
    assert 0.5 < float(ours.detach().pow(2).mean().sqrt()) < 2.0  # unit-scaled output
    our_grads = torch.autograd.grad(ours, inputs, seed)
    ref_grads = torch.autograd.grad(ref, inputs, seed)
    for name, a, b in zip(("out", "x", "qkv", "w_out"), (ours, *our_grads), (ref, *ref_grads),
                          strict=True):  # fmt: skip
        assert float((a - b).detach().abs().max()) < 1e-12, name
        assert float(b.detach().pow(2).mean().sqrt()) > 0.1, name  # not a comparison of zeros


def test_sp_grouped_query_attention_equals_torch_gqa() -> None:
    """The SP attention's kv repeat equals torch's own grouped-query attention (enable_gqa)."""
    from umup_sweep.models._sp import SPAttention

    spec = ModelSpec(width=128, head_dim=16, n_kv_heads=2, parametrization="sp")
    torch.manual_seed(4)
    attn = SPAttention(spec)
    x = torch.randn(2, 12, 128)
    q, k, v = attn.qkv(x).split([128, 32, 32], dim=-1)
    q, k, v = (t.view(2, 12, -1, 16).transpose(1, 2) for t in (q, k, v))
    cos, sin = rope_tables(12, 16, x.device, x.dtype)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    ref = attn.out(y.transpose(1, 2).reshape(2, 12, 128))
    torch.testing.assert_close(attn(x), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_grouped_query_lrs_equal_reference_optimizer(kind: str) -> None:
    """The k/v rows live in the fused qkv weight, fan-in = width: the reference optimizer gives
    a weight of that shape (and of the multi-head shape) the same LR, lr·width^-½·depth^-½."""
    lr, wd = 0.7, 0.1
    model = build_model(GQA)
    ours = _lr_and_wd(model, make_optimizer(model, lr=lr, weight_decay=wd, optimizer=kind))
    shapes = {"gqa": (192, 128), "mha": (384, 128)}
    ref_params = {
        k: uu.Parameter(torch.zeros(s), mup_type="weight", mup_scaling_depth=GQA.depth)
        for k, s in shapes.items()
    }
    ref_rule = uu.optim.AdamW if kind == "adamw" else uu.optim.SGD
    ref = {
        k: g["lr"]
        for g in ref_rule(list(ref_params.values()), lr=lr, weight_decay=wd).param_groups
        for k, p in ref_params.items()
        if any(p is q for q in g["params"])
    }
    want = lr * 128**-0.5 * GQA.depth**-0.5
    assert ref == pytest.approx({"gqa": want, "mha": want}, rel=1e-12)
    for i in range(GQA.depth):
        got_lr, got_wd = ours[f"blocks.{i}.attn.qkv.weight"]
        assert got_lr == pytest.approx(want, rel=1e-12)
        assert got_lr * got_wd == pytest.approx(wd, rel=1e-12)  # lr-independent decay
    table = {r["name"]: r for r in lr_table(GQA, lr, wd, kind)}
    assert table["blocks.0.attn.qkv.weight"]["shape"] == (192, 128)
    assert table["blocks.0.attn.qkv.weight"]["lr"] == pytest.approx(want, rel=1e-12)
