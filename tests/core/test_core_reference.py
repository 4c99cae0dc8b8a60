"""Agreement with the u-μP reference library `unit-scaling` 0.3.5 (used here only, as oracle).

Identical seeded inputs through our op and the reference op: forward outputs and every input
gradient agree to rtol 1e-5; so do the residual taus and the per-parameter LRs / weight decays.
"""

from __future__ import annotations

import pytest
import torch
from ci_strict import require_module

from umup_sweep.core import SGD, AdamW, rules
from umup_sweep.core import functional as U

uu = require_module("unit_scaling", "the test oracle: pip install -e '.[dev]'")
R = uu.functional

RTOL = 1e-5


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    # rtol 1e-5; the absolute floor is relative to the tensor's scale (elements near zero
    # only carry float32 rounding of the large terms that cancelled in them).
    atol = 1e-5 * float(b.detach().pow(2).mean().sqrt())
    torch.testing.assert_close(a, b, rtol=RTOL, atol=atol)


def _inputs(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g) for s in shapes]


def assert_same_op(ours, ref, shapes, seed=0) -> None:
    """Run both on clones of the same inputs and the same upstream gradient; compare all."""
    xs = _inputs(shapes, seed)
    a = [x.clone().requires_grad_() for x in xs]
    b = [x.clone().requires_grad_() for x in xs]
    out_a, out_b = ours(*a), ref(*b)
    assert_close(out_a, out_b)
    grad = torch.randn(out_a.shape, generator=torch.Generator().manual_seed(seed + 1))
    out_a.backward(grad)
    out_b.backward(grad)
    for xa, xb in zip(a, b, strict=True):
        assert_close(xa.grad, xb.grad)


@pytest.mark.parametrize("constraint", ["to_output_scale", None, "gmean"])
@pytest.mark.parametrize("fan_in,fan_out", [(64, 256), (256, 32)])
def test_linear(constraint, fan_in, fan_out) -> None:
    assert_same_op(
        lambda x, w, b: U.linear(x, w, b, constraint),
        lambda x, w, b: R.linear(x, w, b, constraint),
        [(4, 16, fan_in), (fan_out, fan_in), (fan_out,)],
    )


def test_linear_readout() -> None:
    assert_same_op(
        U.linear_readout, lambda x, w: R.linear_readout(x, w, None), [(8, 16, 128), (256, 128)]
    )


@pytest.mark.parametrize("constraint", ["to_output_scale", None])
def test_matmul(constraint) -> None:
    assert_same_op(
        lambda a, b: U.matmul(a, b, constraint),
        lambda a, b: R.matmul(a, b, constraint),
        [(3, 32, 64), (3, 64, 48)],
    )


def test_embedding() -> None:
    ids = torch.randint(0, 100, (4, 32), generator=torch.Generator().manual_seed(3))
    assert_same_op(lambda w: U.embedding(ids, w), lambda w: R.embedding(ids, w), [(100, 64)])


@pytest.mark.parametrize("mult", [0.25, 1.0, 3.0])
@pytest.mark.parametrize("constraint", ["to_output_scale", None])
def test_gelu_silu(mult, constraint) -> None:
    assert_same_op(
        lambda x: U.gelu(x, mult, constraint),
        lambda x: R.gelu(x, mult, constraint),
        [(64, 128)],
    )
    assert_same_op(
        lambda x: U.silu(x, mult, constraint),
        lambda x: R.silu(x, mult, constraint),
        [(64, 128)],
    )


@pytest.mark.parametrize("mult", [0.25, 1.0, 3.0])
def test_silu_glu(mult) -> None:
    assert_same_op(
        lambda x, g: U.silu_glu(x, g, mult),
        lambda x, g: R.silu_glu(x, g, mult),
        [(64, 128), (64, 128)],
    )


@pytest.mark.parametrize("mult", [0.5, 1.0, 4.0])
def test_softmax(mult) -> None:
    assert_same_op(
        lambda x: U.softmax(x, -1, mult),
        lambda x: R.softmax(x, -1, mult=mult),
        [(16, 96)],
    )


@pytest.mark.parametrize("mult", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("causal", [True, False])
def test_attention(mult, causal) -> None:
    assert_same_op(
        lambda q, k, v: U.scaled_dot_product_attention(q, k, v, is_causal=causal, mult=mult),
        lambda q, k, v: R.scaled_dot_product_attention(q, k, v, is_causal=causal, mult=mult),
        [(2, 3, 48, 16)] * 3,
    )


def test_norms() -> None:
    assert_same_op(U.rms_norm, lambda x: R.rms_norm(x, (64,)), [(8, 10, 64)])
    assert_same_op(U.layer_norm, lambda x: R.layer_norm(x, (64,)), [(8, 10, 64)])


@pytest.mark.parametrize("tau", [0.1, 0.7, 1.0, 2.5])
def test_residual_split_add(tau) -> None:
    def run(split, add):
        def f(x, w):
            branch, skip = split(x, tau)
            return add(torch.tanh(branch @ w), skip, tau)

        return f

    assert_same_op(
        run(U.residual_split, U.residual_add),
        run(R.residual_split, R.residual_add),
        [(32, 16), (16, 16)],
    )


@pytest.mark.parametrize("mult", [0.5, 1.0, 2.0])
def test_cross_entropy(mult) -> None:
    t = torch.randint(0, 50, (40,), generator=torch.Generator().manual_seed(1))
    assert_same_op(
        lambda x: U.cross_entropy(x, t, mult=mult),
        lambda x: R.cross_entropy(x, t, mult=mult),
        [(40, 50)],
    )


@pytest.mark.parametrize("residual_mult", [0.25, 1.0, 2.0])
@pytest.mark.parametrize("ratio", [0.25, 1.0, 4.0])
def test_residual_taus(residual_mult, ratio) -> None:
    ours = rules.transformer_residual_scaling_rule(residual_mult, ratio)
    ref = uu.transformer_residual_scaling_rule(residual_mult, ratio)
    for depth in range(1, 17):
        for index in range(2 * depth):
            assert ours(index, 2 * depth) == pytest.approx(ref(index, 2 * depth), rel=1e-12)
        taus = rules.residual_taus(depth, residual_mult, ratio)
        assert taus[-1][1] == pytest.approx(ref(2 * depth - 1, 2 * depth), rel=1e-12)


def _ref_decoder(width, depth, vocab):
    torch.manual_seed(0)
    return uu.TransformerDecoder(hidden_size=width, vocab_size=vocab, layers=depth, heads=2)


def _our_decoder_like(ref, width, depth, vocab):
    """Our core layers arranged with the reference's module names and residual depth."""
    from umup_sweep.core import DepthStack, Embedding, Linear, LinearReadout

    class Layer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mhsa = torch.nn.Module()
            self.mhsa.linear_qkv = Linear(width, 3 * width)
            self.mhsa.linear_o = Linear(width, width)
            self.mlp = torch.nn.Module()
            self.mlp.linear_1 = Linear(width, 4 * width, constraint=None)
            self.mlp.linear_gate = Linear(width, 4 * width, constraint=None)
            self.mlp.linear_2 = Linear(4 * width, width, constraint=None)

    ours = torch.nn.Module()
    ours.embedding = Embedding(vocab, width)
    ours.layers = DepthStack(Layer() for _ in range(depth))
    ours.projection = LinearReadout(width, vocab)
    return ours


@pytest.mark.parametrize("width,depth", [(64, 1), (128, 3), (256, 8)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_per_parameter_lr_and_weight_decay(width, depth, weight_decay) -> None:
    vocab = 97
    ref = _ref_decoder(width, depth, vocab)
    ours = _our_decoder_like(ref, width, depth, vocab)
    ref_names = {id(p): n for n, p in ref.named_parameters()}
    our_names = {id(p): n for n, p in ours.named_parameters()}
    assert sorted(ref_names.values()) == sorted(our_names.values())
    for ours_cls, ref_cls in ((AdamW, uu.optim.AdamW), (SGD, uu.optim.SGD)):
        ref_opt = ref_cls(ref.parameters(), lr=0.7, weight_decay=weight_decay)
        our_opt = ours_cls(ours, lr=0.7, weight_decay=weight_decay)
        ref_lr = {ref_names[id(p)]: (g["lr"], g["weight_decay"]) for g in ref_opt.param_groups
                  for p in g["params"]}  # fmt: skip
        our_lr = {our_names[id(p)]: (g["lr"], g["weight_decay"]) for g in our_opt.param_groups
                  for p in g["params"]}  # fmt: skip
        assert our_lr.keys() == ref_lr.keys()
        for name, (lr, wd) in ref_lr.items():
            assert our_lr[name][0] == pytest.approx(lr, rel=1e-12), name
            assert our_lr[name][1] == pytest.approx(wd, rel=1e-12), name
