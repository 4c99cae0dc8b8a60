"""CLI commands, one module per area; each exposes `register(app)`."""

from __future__ import annotations

import importlib

import typer

# Modules that exist register their commands; areas still being built are skipped.
_MODULES = ("train_cmd", "sweep_cmd", "analysis_cmd")


def register_all(app: typer.Typer) -> None:
    """Register every command module's commands on `app`."""
    for name in _MODULES:
        try:
            module = importlib.import_module(f"umup_sweep.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"umup_sweep.commands.{name}":
                continue
            raise
        module.register(app)
