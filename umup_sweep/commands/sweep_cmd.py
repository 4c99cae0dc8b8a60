"""`umup-sweep run` (run or resume a sweep) and `umup-sweep status` (what a run holds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

RUN_HELP = """Run a sweep: train the proxies it describes and record every finished trial.

Results go to runs/<sweep name>/ (sweep.yaml, study.db, trials.csv, curves/, then the
transfer analysis). Rerunning the same command resumes: finished trials are skipped, so
Ctrl-C (or a crash) loses at most the trials that were running. A sweep that grew (more
seeds, widths, depths, precisions or HP values, a wider range, a larger budget) reuses every
stored trial it still holds and runs only the new ones; any other change under the same name
is refused unless --force (which moves the old run aside).

Examples:

  umup-sweep run sweeps/lr_width.yaml

  umup-sweep run sweeps/lr_width.yaml --executor serial --no-progress

  umup-sweep run sweeps/lr_width.yaml --address auto   # attach to `ray start --head`

  umup-sweep run SWEEP.yaml --target proxies/llama_7b_gqa_config.json   # the model to tune for

  umup-sweep run SWEEP.yaml --track wandb --track tensorboard   # also log to W&B (offline)

  umup-sweep run sweeps/sp_lr_width.yaml --prune   # stop dominated trials early (pruning:)
"""

STATUS_HELP = """Show what a run directory holds: trials done, diverged, failed, remaining,
the best trial so far and, for a sweep that grew, the trials reused and new. Safe to use
while the sweep is running.

Example:

  umup-sweep status runs/lr_width
"""

FORCE_OPTION = typer.Option(
    False,
    "--force",
    help="Start over if runs/<name> holds a different sweep, even one this one only "
    "grows (the old run is moved to runs/<name>.bak-<time>).",
)
VERBOSE_OPTION = typer.Option(
    False, "--verbose", "-v", help="One line per finished trial, Ray's logs and tracebacks."
)
NO_PROGRESS_OPTION = typer.Option(
    False, "--no-progress", help="No live progress bar (e.g. in CI logs)."
)
TARGET_OPTION = typer.Option(
    None,
    "--target",
    help="The target model (our YAML or a Hugging Face config.json), in place of the "
    "sweep's target:; a proxy with from_target: true is derived from it.",
)
PRUNE_OPTION = typer.Option(
    None,
    "--prune/--no-prune",
    help="Stop trials that cannot end near the best of their proxy (calibrated on the stored "
    "curves; sets pruning.enabled). Pruned trials are kept with their partial curves and "
    "never taken as an optimum.",
)
RERUN_PRUNED_OPTION = typer.Option(
    False,
    "--rerun-pruned",
    help="Run the stored pruned trials again, in full (otherwise a pruned trial is final).",
)
TRACK_OPTION = typer.Option(
    None,
    "--track",
    help="Also log every trial to wandb (offline), mlflow (a local store) or tensorboard: "
    "repeat it or give a comma list (none: no tracking). Replaces the sweep's "
    "tracking.backend; its other tracking: keys still apply.",
)


def run(
    sweep_file: Path = typer.Argument(
        ..., metavar="SWEEP.yaml", help="The sweep YAML (see sweeps/ for examples)."
    ),
    force: bool = FORCE_OPTION,
    executor: str | None = typer.Option(
        None,
        "--executor",
        help="ray (default: parallel trials on a local Ray cluster) or "
        "serial (one at a time in this process; for debugging).",
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Attach to a running Ray cluster (host:port, or auto) instead "
        "of starting a local one; implies --executor ray. Also read from RAY_ADDRESS.",
    ),
    max_concurrent: int | None = typer.Option(
        None,
        "--max-concurrent",
        help="Trials running at once (default: the sweep's execution.max_concurrent).",
    ),
    run_dir: Path | None = typer.Option(
        None,
        "--run-dir",
        help="Parent folder of the run directory (default: the sweep's "
        "storage.run_dir, normally runs/).",
    ),
    verbose: bool = VERBOSE_OPTION,
    no_progress: bool = NO_PROGRESS_OPTION,
    target: Path | None = TARGET_OPTION,
    track: list[str] | None = TRACK_OPTION,
    prune: bool | None = PRUNE_OPTION,
    rerun_pruned: bool = RERUN_PRUNED_OPTION,
) -> None:
    from umup_sweep.commands._progress import SweepReporter
    from umup_sweep.commands._target import target_lines
    from umup_sweep.commands.summary import summary_lines
    from umup_sweep.config import load_sweep
    from umup_sweep.runner import SweepInterrupted, run_sweep

    overrides = _overrides(executor, address, max_concurrent, run_dir) | _track(track)
    overrides |= {} if prune is None else {"pruning.enabled": prune}
    sweep = load_sweep(sweep_file, overrides=overrides or None, target=target)
    for line in target_lines(sweep.target, sweep.family) if sweep.target else []:
        typer.echo(line)
    again = f"{sweep_file} --target {target}" if target is not None else f"{sweep_file}"
    try:
        with SweepReporter(progress=not no_progress, verbose=verbose) as report:
            summary = run_sweep(
                sweep,
                force=force,
                address=address,
                verbose=verbose,
                on_progress=report,
                rerun_pruned=rerun_pruned,
            )
    except SweepInterrupted as stop:
        for line in summary_lines(stop.summary):
            typer.echo(line, err=True)
        typer.echo(
            f"interrupted: finished trials are saved in {stop.summary.run_dir}; resume with: "
            f"umup-sweep run {again}",
            err=True,
        )
        raise SystemExit(130) from None
    except KeyboardInterrupt:  # Ctrl-C while shutting down: every trial is already committed
        typer.echo(f"interrupted: resume with: umup-sweep run {again}", err=True)
        raise SystemExit(130) from None
    for line in summary_lines(summary):
        typer.echo(line)


def _overrides(
    executor: str | None, address: str | None, max_concurrent: int | None, run_dir: Path | None
) -> dict[str, Any]:
    """The sweep keys `run`'s flags set (checked: one-line errors on bad values)."""
    from umup_sweep.errors import ConfigError

    overrides: dict[str, Any] = {}
    if executor is not None:
        if executor not in ("ray", "serial"):
            raise ConfigError("--executor", "", f"expected ray or serial, got {executor!r}")
        overrides["execution.executor"] = executor
    if address is not None:  # a flag that names a cluster takes effect, or is an error
        if executor == "serial":
            raise ConfigError(
                "--address", "", "names a Ray cluster, which --executor serial would not use"
            )
        overrides["execution.executor"] = "ray"
    if max_concurrent is not None:
        if max_concurrent < 1:
            raise ConfigError("--max-concurrent", "", f"expected >= 1, got {max_concurrent}")
        overrides["execution.max_concurrent"] = max_concurrent
    if run_dir is not None:
        overrides["storage.run_dir"] = str(run_dir)
    return overrides


def _track(track: list[str] | None) -> dict[str, Any]:
    """`--track` as the override of `tracking.backend` (checked: a one-line error)."""
    from umup_sweep.errors import ConfigError
    from umup_sweep.tracking import TRACKERS

    if not track:
        return {}
    names = [n.strip() for value in track for n in value.split(",") if n.strip()]
    if any(n.lower() in ("none", "off") for n in names):
        return {"tracking.backend": []}
    for name in names:
        if name not in TRACKERS:
            choices = ", ".join(TRACKERS)
            raise ConfigError("--track", "", f"expected {choices} or none, got {name!r}")
    return {"tracking.backend": list(dict.fromkeys(names))}


def status(
    run_dir: Path = typer.Argument(
        ...,
        metavar="RUN_DIR",
        help="A run directory written by `umup-sweep run`, e.g. runs/lr_width.",
    ),
) -> None:
    from umup_sweep.commands.summary import status_lines
    from umup_sweep.run_status import run_status
    from umup_sweep.store import RunStore

    for line in status_lines(run_status(RunStore.load(run_dir))):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add `run` and `status` to the CLI."""
    app.command("run", help=RUN_HELP)(run)
    app.command("status", help=STATUS_HELP)(status)
