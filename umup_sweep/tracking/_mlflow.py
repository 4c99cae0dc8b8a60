"""MLflow: one MLflow run per trial in the sweep's experiment; a local store by default.

Options (under `tracking:`):
    tracking_uri  where the runs go (default: a local SQLite store,
                  ``sqlite:///<dir>/mlflow.db``, with artifacts in ``<dir>/mlflow-artifacts``;
                  or a server ``http://host:5000``, a ``file:`` store, ``databricks``...).
                  ``${NAME}`` reads an environment variable; the run directory keeps the
                  reference, never its value.

The experiment is `tracking.project` (default: the sweep name). Each trial run (tag
``kind=trial``, ``sweep=<name>``, ``trial_key``) has its HPs, proxy shape and training
setting as params, train_loss / val_loss by step and the final numbers as metrics. The
summary run (``kind=summary``) has the verdicts as params and metrics (drift, se), the
recommended values, and the figures, transfer.json and report.md as artifacts.

Why SQLite and not ``file:``: MLflow 3 keeps the file store in maintenance mode and refuses
it unless ``MLFLOW_ALLOW_FILE_STORE=true``; a SQLite file is as local, and `mlflow ui
--backend-store-uri sqlite:///runs/<name>/tracking/mlflow.db` opens it.

Example:
    >>> from umup_sweep.config import OptionContext
    >>> ctx = OptionContext("s.yaml", prefix="tracking")
    >>> MLflowTracker.parse_options({"tracking_uri": "http://me:secret@host:5000"}, ctx)
    {'tracking_uri': 'http://me:***@host:5000'}
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from umup_sweep.config._secrets import MissingVariable, connect_url, load_url, scrub
from umup_sweep.spec import TrialResult, TrialSpec
from umup_sweep.tracking._base import (
    BaseTracker,
    Curve,
    SweepSummary,
    curve_metrics,
    final_metrics,
    trial_config,
)

if TYPE_CHECKING:
    from umup_sweep.config import OptionContext

__all__ = ["MLflowTracker"]

_BATCH = 1000  # MLflow's limit of metrics per log_batch call
_PARAM_BATCH = 100  # ... and of params per call


class MLflowTracker(BaseTracker):
    """Log trials to MLflow (`mlflow` or `mlflow-skinny`), to a local store by default."""

    NAME = "mlflow"
    PACKAGE = "mlflow"
    OPTIONS: ClassVar[dict[str, Any]] = {"tracking_uri": None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Any = None
        self._experiment_id: str | None = None

    @classmethod
    def parse_options(cls, options: dict[str, Any], ctx: OptionContext) -> dict[str, Any]:
        uri = options["tracking_uri"]
        if uri is None:
            return {"tracking_uri": None}
        if not isinstance(uri, str) or not uri:
            raise ctx.fail("tracking_uri", "expected an MLflow tracking URI", uri)
        try:
            return {"tracking_uri": load_url(uri)}
        except MissingVariable as exc:
            raise ctx.fail("tracking_uri", exc.expected()) from None

    @property
    def uri(self) -> str:
        """The tracking URI (printable: no password)."""
        given = self.options["tracking_uri"]
        return given if given else f"sqlite:///{(self.info.dir / 'mlflow.db').resolve()}"

    @property
    def destination(self) -> str:
        given = self.options["tracking_uri"]
        store = given if given else f"sqlite {self.info.where(self.info.dir / 'mlflow.db')}"
        return f"mlflow {store} experiment {self.info.project}"

    def scrub(self, text: str) -> str:
        given = self.options["tracking_uri"]
        return scrub(text, connect_url(given)) if given else text

    def log_trial(self, spec: TrialSpec, result: TrialResult, curve: Curve) -> None:
        tags = {"kind": "trial", "trial_key": spec.trial_key, "status": result.status}
        run_id = self._start(self.info.trial_name(spec), tags)
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, value, now, step)
            for step, values in curve_metrics(curve)
            for key, value in values.items()
        ]
        last = int(curve[-1][0]) if len(curve) else 0
        metrics += [Metric(k, v, now, last) for k, v in final_metrics(result).items()]
        params = [Param(k, str(v)) for k, v in trial_config(spec, result).items()]
        self._batch(run_id, metrics, params)
        self._client.set_terminated(run_id)

    def log_summary(self, summary: SweepSummary) -> None:
        run_id = self._start(f"{self.info.name} summary", {"kind": "summary"})
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, summary.step) for k, v in summary.scalars().items()]
        params = [Param(k, v) for k, v in summary.verdict_labels().items()]
        self._batch(run_id, metrics, params)
        client = self._client
        client.log_dict(run_id, {"verdicts": summary.verdicts}, "verdicts.json")
        client.log_text(run_id, summary.markdown() + "\n", "verdicts.md")
        for path in summary.figures:
            client.log_artifact(run_id, str(path), "figures")
        for path in summary.files:
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id)

    def _start(self, name: str, tags: dict[str, str]) -> str:
        """A new run in the sweep's experiment (made on first use); its id."""
        if self._client is None:
            self._connect()
        run = self._client.create_run(
            self._experiment_id, run_name=name, tags={"sweep": self.info.name, **tags}
        )
        return str(run.info.run_id)

    def _connect(self) -> None:
        from mlflow.tracking import MlflowClient

        given = self.options["tracking_uri"]
        if given is None:
            self.info.dir.mkdir(parents=True, exist_ok=True)
        with _quiet("mlflow", "alembic"):  # "Creating initial MLflow database tables..."
            client = MlflowClient(tracking_uri=connect_url(given) if given else self.uri)
            experiment = client.get_experiment_by_name(self.info.project)
        if experiment is not None:
            self._experiment_id = experiment.experiment_id
        else:
            artifacts = None if given else artifact_dir(self.info.dir).resolve().as_uri()
            self._experiment_id = client.create_experiment(
                self.info.project, artifact_location=artifacts
            )
        self._client = client

    def _batch(self, run_id: str, metrics: Sequence[Any], params: Sequence[Any]) -> None:
        """`log_batch` within MLflow's limits (100 params, 1000 metrics a call)."""
        for i in range(0, len(params), _PARAM_BATCH):
            self._client.log_batch(run_id, params=list(params[i : i + _PARAM_BATCH]))
        for i in range(0, len(metrics), _BATCH):
            self._client.log_batch(run_id, metrics=list(metrics[i : i + _BATCH]))


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Hold these loggers at WARNING (the driver prints nothing; MLflow logs at INFO)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def artifact_dir(tracking_dir: Path) -> Path:
    """Where the default local store keeps artifacts (figures, files).

    Example:
        >>> artifact_dir(Path("runs/demo/tracking")).as_posix()
        'runs/demo/tracking/mlflow-artifacts'
    """
    return tracking_dir / "mlflow-artifacts"
