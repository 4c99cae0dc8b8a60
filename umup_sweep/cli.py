"""The `umup-sweep` command line: parse, call the library, print. Commands live in
`umup_sweep/commands/` (one module per area) and register themselves on `app`."""

from __future__ import annotations

import sys

import typer

from umup_sweep.errors import UserError

app = typer.Typer(
    name="umup-sweep",
    help=(
        "Tune hyperparameters on small u-μP proxies and carry them to the big model.\n\n"
        "Typical flow: `umup-sweep run sweeps/lr_width.yaml`, then `umup-sweep plot "
        "runs/lr_width`, then `umup-sweep recommend runs/lr_width --width 4096 --depth 32`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    """Import the command modules so their `@app.command()` decorators run."""
    from umup_sweep.commands import register_all

    register_all(app)


def main() -> None:
    """Entry point: run the app, turning `UserError` into one line on stderr and exit code 2."""
    _register_commands()
    try:
        code = app(standalone_mode=False)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: finished trials are saved; rerun the same command to resume", err=True
        )
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors etc.
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
