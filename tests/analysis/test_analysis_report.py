"""report.md: verdict table, working relative links to plots, recommendation and counts."""

from __future__ import annotations

import re

from umup_sweep.analysis import analyze_run, finalize_run, recommend, write_report

from .fabricate import make_trials

BASE = {"width": 64, "depth": 2, "head_dim": 16, "seq_len": 32}


def test_report_links_plots_and_tables(run_factory):
    run = run_factory(
        make_trials(widths=(64, 128), diverge_above=2, noise=0.003), base=BASE, name="lr_width"
    )
    finalize_run(run)
    text = (run / "report.md").read_text()
    assert text.startswith("# Transfer report: lr_width")
    assert "Trials: 54 (48 ok, 6 diverged, 0 failed)" in text
    assert re.search(
        r"\| lr \| u-μP \| [-+]\d\.\d\d ± \d\.\d\d /width×2 \| \*\*transfers\*\*", text
    )
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert "plots/lr.png" in links and "transfer.json" in links
    for link in links:
        assert (run / link).exists(), link
    assert "| 64×2 | 0.5000 |" in text and "24 / 3 / 0" in text
    assert "None yet: run `umup-sweep recommend" in text

    recommend(run, width=512, depth=2)
    write_report(analyze_run(run, write=False))
    text = (run / "report.md").read_text()
    assert "For a target of width 512 × depth 2" in text
    assert "- `lr` = 0.5" in text


def test_report_elsewhere_keeps_links_relative(run_factory, tmp_path):
    run = run_factory(make_trials(widths=(64, 128), noise=0.003), base=BASE)
    finalize_run(run)
    out = tmp_path / "elsewhere" / "summary.md"
    out.parent.mkdir()
    write_report(analyze_run(run, write=False), out=out)
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", out.read_text()):
        assert (out.parent / link).resolve() == (run / "plots" / "lr.png").resolve()
