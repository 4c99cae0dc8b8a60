"""CLI commands, one module per area; each exposes `register(app)`."""

from __future__ import annotations

import typer

from umup_sweep.commands import analysis_cmd, dashboard_cmd, sweep_cmd, train_cmd


def register_all(app: typer.Typer) -> None:
    """Register every command module's commands on `app`, in the order `--help` lists them."""
    for module in (train_cmd, sweep_cmd, analysis_cmd, dashboard_cmd):
        module.register(app)
