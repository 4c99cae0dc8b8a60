"""Coordinate check on tiny proxies: u-μP keeps its activation scale across widths, SP does not."""

from __future__ import annotations

import json
import math

import pytest

from umup_sweep.analysis import coord_check, plot_coord_check, write_coord_check
from umup_sweep.config import ProxyFamily
from umup_sweep.spec import ModelSpec

FAMILY = ProxyFamily(
    "tiny", ModelSpec(width=32, depth=1, head_dim=16, seq_len=32), widths=(32, 64, 128), depths=(1,)
)


@pytest.fixture(scope="module")
def cc():
    return coord_check(FAMILY, steps=2, batch_size=4, data=None)


def test_umup_activations_flat_sp_attention_logits_grow(cc):
    umup = cc.slopes["umup"]["init"]["activations"]
    sp = cc.slopes["sp"]["init"]["activations"]
    assert set(umup) == {"embedding", "block_0", "attn_logits_0", "logits"}
    for name in ("embedding", "block_0", "attn_logits_0"):
        assert abs(umup[name]) < 0.25, name
    # u-μP: unit scale at init for the embedding and block outputs
    for name in ("embedding", "block_0"):
        assert all(0.5 < v < 2.5 for v in cc.rms["umup"]["init"]["activations"][name])
    # SP: q·k/√d with N(0, 1/fan_in)-ish weights still grows ~ width at init
    assert sp["attn_logits_0"] > 0.5
    flagged = {(f["parametrization"], f["phase"], f["layer"]) for f in cc.flags}
    assert ("sp", "init", "attn_logits_0") in flagged
    assert not any(p == "umup" and ph == "init" and "block" in layer for p, ph, layer in flagged)


def test_gradients_measured_per_parameter(cc):
    grads = cc.rms["umup"]["init"]["gradients"]
    assert "readout.weight" in grads and "blocks.0.attn.qkv.weight" in grads
    assert all(len(v) == 3 and all(x > 0 for x in v) for v in grads.values())
    # u-μP weight gradients are unit-scaled at init (scale_bwd), independent of width
    assert all(abs(cc.slopes["umup"]["init"]["gradients"][n]) < 0.25 for n in grads)


def test_slopes_match_the_rms_values(cc):
    values = cc.rms["sp"]["trained"]["activations"]["block_0"]
    xs = [math.log2(w) for w in cc.widths]
    ys = [math.log2(v) for v in values]
    mx, my = sum(xs) / 3, sum(ys) / 3
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    assert cc.slopes["sp"]["trained"]["activations"]["block_0"] == pytest.approx(slope)


def test_files_written_and_reread(cc, tmp_path):
    written = plot_coord_check(cc, tmp_path, formats=("png",)) + [write_coord_check(cc, tmp_path)]
    assert sorted(p.name for p in written) == [
        "coord_check.json",
        "coord_check_activations.png",
        "coord_check_gradients.png",
    ]
    data = json.loads((tmp_path / "coord_check.json").read_text())
    assert data["widths"] == [32, 64, 128] and data["lr"] == {"umup": 1.0, "sp": 2.0**-7}
    assert len(data["flags"]) == len(cc.flags)
    assert data["rms"]["umup"]["init"]["activations"]["block_0"] == pytest.approx(
        cc.rms["umup"]["init"]["activations"]["block_0"]
    )
