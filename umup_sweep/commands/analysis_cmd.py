"""`plot`, `recommend`, `coord-check`, `report`: read a run directory, write the analyses.

Thin: parse, call `umup_sweep.analysis`, print. Heavy imports happen inside the commands so
`umup-sweep --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from umup_sweep.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from umup_sweep.analysis import Comparison, TransferReport


def _console() -> Console:
    """A rich console; when not a terminal, wide enough that tables do not wrap."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=140)


def _print_verdicts(report: TransferReport) -> None:
    from rich.table import Table

    table = Table(title=f"transfer: {report.run}  (tolerance ±{report.tolerance:g} log2/doubling)")
    for col in (
        "HP",
        "param",
        "proxies",
        "optimum log2 per proxy",
        "drift / doubling",
        "verdict",
        "cost of carrying",
    ):
        table.add_column(col)
    colours = {"transfers": "green", "drifts": "red", "inconclusive": "yellow"}
    for row in report.rows():
        v = row["verdict"]
        table.add_row(
            row["hp"],
            row["parametrization"],
            row["proxies"],
            row["optima_log2"],
            row["drift"],
            f"[{colours.get(v, 'white')}]{v}[/]",
            row["cost"],
        )
    _console().print(table)
    for by_param in report.results.values():
        for res in by_param.values():
            for note in res.loss_flags + res.notes:
                typer.echo(f"  ! {res.hp}/{res.parametrization}: {note}")


def _parse_ints(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(
            f"{flag}: expected comma-separated integers like 64,128,256, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise UserError(f"{flag}: expected positive integers, got {text!r}")
    return values


def plot(
    runs: list[Path] = typer.Argument(
        ...,
        help="Run directories (runs/<name>/). Several runs are drawn side by side, e.g. "
        "`runs/lr_width runs/sp_lr_width` for u-μP vs SP.",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for the figures (default: the first run's plots/)."
    ),
    tolerance: float | None = typer.Option(
        None,
        help="|drift| in log2 per width doubling that still counts as transferring "
        "(default: the sweep's analysis.tolerance, else 0.25).",
    ),
    svg: bool = typer.Option(True, help="Also write SVG next to each PNG."),
) -> None:
    """Plot loss against each swept HP, one curve per width, and judge transfer.

    Writes, per run: transfer.json (optimum per width, drift per doubling ± se, verdict) and
    plots/<hp>.png/.svg (seed-mean curves with min-max bands, grid best ●, fitted optimum
    dashed, diverged trials ✕ on the top edge; below: optimum vs width with the drift fit).
    With several runs: plots/<hp>_<run1>_vs_<run2>.png/.svg in the first run (or --out).
    """
    from umup_sweep.analysis import analyze_run, plot_runs

    reports = [analyze_run(r, tolerance) for r in runs]
    formats = ("png", "svg") if svg else ("png",)
    written = plot_runs(reports, out, formats)
    for rep in reports:
        _print_verdicts(rep)
    if not written:
        typer.echo(
            "nothing to plot: no HP was swept along a line (≥ 3 values with the other HPs "
            "fixed) in these runs"
        )
    for path in written:
        typer.echo(f"wrote {path}")


def recommend(
    run: Path = typer.Argument(..., help="Run directory (runs/<name>/) of a finished sweep."),
    target_file: Path | None = typer.Option(
        None,
        "--target",
        help="Your target model: a target YAML (width, depth, head_dim, n_kv_heads, ffn, "
        "vocab_size, seq_len, tokens, batch_size, ...) or a Hugging Face config.json. "
        "Default: the sweep's `target:` section.",
    ),
    width: int | None = typer.Option(
        None, "--width", help="Target width (d_model); resizes --target when given with it."
    ),
    depth: int | None = typer.Option(
        None, "--depth", help="Target depth (blocks); resizes --target when given with it."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output YAML (default: <run>/recommended.yaml)."
    ),
    tolerance: float | None = typer.Option(
        None, help="Transfer tolerance in log2 per doubling (default: the sweep's, else 0.25)."
    ),
) -> None:
    """Recommend HPs for the big target model from a proxy sweep, with ≈95% intervals.

    Each swept HP is the joint fit's prediction at the target (the proxy value moved along
    the fitted drift), with an interval that grows with the number of doublings. Writes
    recommended.yaml: `target` (the model), `hyperparameters`, `intervals`, `param_groups`
    (the effective learning rate and weight decay per parameter group of the target's u-μP
    optimizer), `evidence`, `warnings` (every axis where proxies and target differ untested),
    and `paste` (a config block for `umup-sweep train` / your training script).

    Example: umup-sweep recommend runs/lr_width --target proxies/llama2_7b_target.yaml
    """
    from umup_sweep.analysis import recommend as do_recommend
    from umup_sweep.config import load_target
    from umup_sweep.store import RECOMMENDED_FILE

    target = load_target(target_file) if target_file is not None else None
    path = out if out is not None else run / RECOMMENDED_FILE
    rec = do_recommend(run, width, depth, out=path, tolerance=tolerance, target=target)
    t = rec.target
    typer.echo(
        f"target: width {t['width']}, depth {t['depth']}, {t['n_heads']} heads"
        + (f" ({t['n_kv_heads']} kv)" if t.get("n_kv_heads") else "")
        + f", vocab {t['vocab_size']}, seq_len {t['seq_len']} "
        f"({rec.evidence['parametrization']}; from {rec.source['target_from']})"
    )
    for hp, value in rec.hyperparameters.items():
        ci = rec.intervals.get(hp)
        span = f"  [{ci['ci95'][0]:.3g}, {ci['ci95'][1]:.3g}] ≈95%" if ci else ""
        typer.echo(f"  {hp:<20} {value:.3g}{span}")
    for hp, sentence in rec.evidence.get("axes", {}).items():
        typer.echo(f"  axes for {hp}: {sentence}")
    if rec.param_groups:
        typer.echo("per-group learning rates:")
        for g in rec.param_groups:
            typer.echo(
                f"  {g['params']:<40} lr {g['lr']:.4g}  wd {g['weight_decay']:.4g}"
                f"  (x{g['tensors']})"
            )
    for w in rec.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"wrote {path}")


def coord_check(
    proxy: Path = typer.Argument(..., help="Proxy family YAML (name, base, widths, depths)."),
    widths: str | None = typer.Option(
        None, help="Comma-separated widths, e.g. 64,128,256,512 (default: the family's)."
    ),
    steps: int = typer.Option(3, help="AdamW steps between the 'init' and 'trained' snapshots."),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default: runs/coord-check/<family name>)."
    ),
    parametrizations: str = typer.Option("umup,sp", help="Which to compare, comma-separated."),
    lr_umup: float = typer.Option(1.0, help="Learning rate for u-μP models."),
    lr_sp: float = typer.Option(2.0**-7, help="Learning rate for SP models."),
    batch_size: int = typer.Option(8, help="Sequences per batch."),
    data: str = typer.Option(
        "stdlib",
        help="Corpus for the batches (stdlib, a text file/folder/glob, a .bin/.npy "
        "token file) or `random` for uniform random tokens.",
    ),
    threshold: float = typer.Option(
        0.25, help="Flag a layer whose log2 RMS grows faster than this per width doubling."
    ),
    target: Path | None = typer.Option(
        None,
        "--target",
        help="The target model (our YAML or a Hugging Face config.json) that PROXY (a family "
        "with from_target: true) is derived from.",
    ),
) -> None:
    """Check that activations and gradients keep their scale as width grows.

    Measures the RMS of each block's output, attention logits, output logits and every
    parameter's gradient, at init and after --steps steps, across widths, for u-μP and SP.
    Writes coord_check_activations.png/.svg and coord_check_gradients.png/.svg (x: width,
    y: RMS, log2 axes, one line per layer) and coord_check.json (RMS, slopes, flags), and
    prints the layers whose scale grows with width.
    """
    from rich.table import Table

    from umup_sweep.analysis import coord_check as do_check
    from umup_sweep.analysis import plot_coord_check, write_coord_check
    from umup_sweep.commands._target import coord_family, target_lines
    from umup_sweep.spec import DataSpec

    params = tuple(p.strip() for p in parametrizations.split(",") if p.strip())
    for p in params:
        if p not in ("umup", "sp"):
            raise UserError(f"--parametrizations: expected umup and/or sp, got {p!r}")
    if steps < 0:
        raise UserError(f"--steps: expected a non-negative integer, got {steps}")
    ws = _parse_ints(widths, "--widths")
    family, target_spec = coord_family(proxy, target, ws)
    for line in target_lines(target_spec, family) if target_spec else []:
        typer.echo(line)
    data_spec = None if data == "random" else DataSpec(source=data)
    cc = do_check(
        family, ws, steps, params, {"umup": lr_umup, "sp": lr_sp}, batch_size, data_spec, threshold
    )
    out_dir = out if out is not None else Path("runs") / "coord-check" / family.name
    written = plot_coord_check(cc, out_dir) + [write_coord_check(cc, out_dir)]
    table = Table(title=f"layers whose RMS grows faster than {threshold:g} log2 per doubling")
    for col in ("param", "phase", "kind", "layer", "slope"):
        table.add_column(col)
    for f in sorted(cc.flags, key=lambda f: -f["slope"]):
        table.add_row(f["parametrization"], f["phase"], f["kind"], f["layer"], f"{f['slope']:+.2f}")
    console = _console()
    if cc.flags:
        console.print(table)
    for p in params:
        n = sum(1 for f in cc.flags if f["parametrization"] == p)
        total = sum(len(v) for ph in cc.rms[p].values() for v in ph.values())
        typer.echo(f"{p}: {n} of {total} layer measurements grow with width")
    for path in written:
        typer.echo(f"wrote {path}")


def _print_comparison(comp: Comparison) -> None:
    from rich.table import Table

    from umup_sweep.analysis import compare_rows

    header, rows = compare_rows(comp)
    table = Table(title=f"{comp.this.run} vs {comp.other.run}: {comp.metric} ({comp.precision})")
    for col in header:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    _console().print(table)
    typer.echo("* best grid: the lowest seed mean over many configs (selection-biased, low)")
    for c in comp.proxies:
        typer.echo(c.sentence)
    typer.echo(f"overall: {comp.overall}")


def report(
    run: Path = typer.Argument(..., help="Run directory (runs/<name>/)."),
    tolerance: float | None = typer.Option(
        None, help="Transfer tolerance in log2 per doubling (default: the sweep's, else 0.25)."
    ),
    compare: Path | None = typer.Option(
        None,
        "--compare",
        help="Another run directory (e.g. the SP control): its loss next to this run's at "
        "every width both ran (lr only, final, best grid; the gap ± se and a verdict). Adds a "
        "'Compared with' section to report.md, writes compare.json and prints the table.",
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Also print the verdict table."),
) -> None:
    """Write report.md: plots, transfer table and verdict, recommendation, trial counts.

    Also refreshes transfer.json and plots/. The report links them relatively, so the run
    directory can be moved or shared as a whole; open report.md in any Markdown viewer.
    Prints where the report is (and, with --compare, the comparison table).
    """
    from umup_sweep.analysis import COMPARE_FILE, finalize_run, load_comparison, load_run
    from umup_sweep.store import REPORT_FILE

    data = load_run(run)  # read once for the comparison and the report
    comparison = load_comparison(data, compare) if compare is not None else None
    rep = finalize_run(data, tolerance, comparison)
    if verbose:
        _print_verdicts(rep)
    if comparison is not None:
        _print_comparison(comparison)
        typer.echo(f"wrote {run / COMPARE_FILE}")
    typer.echo(f"wrote {run / REPORT_FILE}")


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the CLI app."""
    app.command("plot")(plot)
    app.command("recommend")(recommend)
    app.command("coord-check")(coord_check)
    app.command("report")(report)
