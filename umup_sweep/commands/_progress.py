"""The live view of `umup-sweep run` on stderr: a progress bar, a line per finished trial (all
with --verbose, else the failed ones) and the driver's notices.

`SweepReporter` is what the command passes to `run_sweep` as `on_progress`; the driver itself
prints nothing.

Example:
    >>> import io
    >>> from rich.console import Console
    >>> from umup_sweep.runner import SweepNotice, SweepProgress
    >>> console = Console(file=io.StringIO())
    >>> with SweepReporter(progress=False, verbose=False, console=console) as report:
    ...     report(SweepNotice("warning: GPUs reserved but unused"))
    ...     report(SweepProgress("val_loss", done=0, total=4, running=2))
    >>> console.file.getvalue()
    'warning: GPUs reserved but unused\\n'
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from umup_sweep.commands.summary import trial_line
from umup_sweep.runner import SweepEvent, SweepNotice


class SweepReporter:
    """Shows a running sweep's events; a context manager that takes the bar down on exit.

    Args:
        progress: draw the live progress bar (from the first progress event to the last).
        verbose: a line for every finished trial (otherwise only for failed ones).
        console: where it all goes (default: a rich console on stderr).
    """

    def __init__(self, *, progress: bool, verbose: bool, console: Console | None = None) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.progress = progress
        self.verbose = verbose
        self._bar: Progress | None = None

    def __enter__(self) -> SweepReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def __call__(self, event: SweepEvent) -> None:
        if isinstance(event, SweepNotice):
            self.console.print(event.text, highlight=False)
            return
        spec, result = event.spec, event.result
        if spec is not None and result is not None:
            if self.verbose or result.status == "failed":
                self.console.print(trial_line(spec, result, event.metric), highlight=False)
        if self.progress:
            bar = self._bar if self._bar is not None else self._start()
            best = f"best {event.best:.4f}" if event.best is not None else ""
            bar.update(bar.task_ids[0], completed=event.done, total=event.total, best=best)
        if event.running == 0:  # the trial loop is over
            self._stop()

    def _start(self) -> Progress:
        self._bar = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[best]}"),
            console=self.console,
        )
        self._bar.add_task("trials", total=None, best="")
        self._bar.start()
        return self._bar

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
