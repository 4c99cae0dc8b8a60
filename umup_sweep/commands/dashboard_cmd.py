"""`umup-sweep dashboard RUN`: serve a run's trial database with optuna-dashboard.

optuna-dashboard is an optional extra (`pip install 'umup-sweep[dashboard]'`); without it the
command says so in one line. It serves on the loopback interface unless told otherwise: the
dashboard can edit and delete studies, so anyone who can reach the port can change the run.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from umup_sweep.errors import UserError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

INSTALL = "pip install 'umup-sweep[dashboard]'"

DASHBOARD_HELP = """Open a run in optuna-dashboard, in a browser: its trials, their
hyperparameters over the sweep's ranges, validation-loss curves, importances
and the key result numbers.

Serves the run's trial database (runs/<name>/study.db, or the sweep's shared
database) until Ctrl-C, on 127.0.0.1 unless --host says otherwise. Safe while
the sweep runs: the page shows new trials as they finish. The dashboard can
edit and delete studies: serve it beyond this machine only on a network you
trust (or reach it through `ssh -L`).

Needs the optional extra: pip install 'umup-sweep\\[dashboard]'

Examples:

  umup-sweep dashboard runs/lr_width       # then open the URL it prints

  umup-sweep dashboard runs/lr_width --port 8090

  ssh -L 8080:127.0.0.1:8080 gpu-box      # on your laptop, for a remote run
"""


def dashboard(
    run_dir: Path = typer.Argument(
        ..., metavar="RUN", help="A run directory (runs/<name>/, what `umup-sweep run` wrote)."
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Interface to listen on (default: loopback only; 0.0.0.0 for every interface).",
    ),
    port: int = typer.Option(
        8080, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."
    ),
) -> None:
    try:
        import optuna_dashboard
    except ImportError:
        raise UserError(f"optuna-dashboard is not installed: {INSTALL}") from None
    from umup_sweep.store import RunStore

    store = RunStore.load(run_dir)
    storage, study_id = store.optuna_study()
    server = _server(optuna_dashboard.wsgi(storage), host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.server_port}/dashboard/studies/{study_id}"
    typer.echo(f"optuna-dashboard for {run_dir} (study {store.sweep().name!r}): {url}")
    if not _loopback(host):
        typer.echo(
            f"warning: listening on {host}: anyone who can reach this port can read, edit and "
            "delete the run's trials",
            err=True,
        )
    stale = store.stale_trials()
    if stale:
        typer.echo(
            f"note: {stale} trials hold params without the sweep's current ranges (stored by "
            "an earlier umup-sweep, or before the sweep grew), so importances may be off; the "
            "next `umup-sweep run` of this sweep rewrites them",
            err=True,
        )
    typer.echo("Ctrl-C to stop")
    _serve_until_interrupted(server)


def _serve_until_interrupted(server: WSGIServer) -> None:
    """Serve until Ctrl-C (SIGINT). The server runs in a thread: wsgiref's request handling
    swallows any exception, a KeyboardInterrupt too, so Ctrl-C must reach another thread."""
    import signal
    import threading

    # Ctrl-C stops the server even when this process was started with SIGINT ignored (a
    # parent that ignores it hands that on, and Python then never raises KeyboardInterrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.shutdown()  # finishes the request in flight, then stops
    finally:
        server.server_close()


def _server(app: Any, host: str, port: int) -> WSGIServer:
    """A quiet wsgiref server for `app`, bound to (host, port) (port 0: a free one)."""
    import socket
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # no line per request

    class Server(WSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        return make_server(host, port, app, server_class=Server, handler_class=Quiet)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise UserError(
            f"cannot listen on {host}:{port} ({why}); try another --port or --host"
        ) from None


def _loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or `localhost`).

    Example:
        >>> [_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "gpu-box")]
        [True, True, True, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    """Add `dashboard` to the CLI."""
    app.command("dashboard", help=DASHBOARD_HELP)(dashboard)
