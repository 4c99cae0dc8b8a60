"""Weights & Biases: one W&B run per trial, grouped by sweep; offline by default.

Options (under `tracking:`):
    mode    offline (default: runs are written under ``<dir>/wandb/`` and need no network or
            account; upload them later with ``wandb sync <dir>/wandb/offline-run-*``) or
            online (needs ``wandb login``)
    entity  the W&B team or user (default: yours)
    tags    a list of tags every run of the sweep gets

Each trial run has job_type ``trial``, group = the sweep name, config = its HPs, proxy shape
and training setting, history = train_loss / val_loss by step, summary = its final numbers.
The summary run (job_type ``summary``) has the verdicts as a table and in its summary, the
recommended values, the figures as images and transfer.json / report.md as files.

Example:
    >>> from umup_sweep.config import OptionContext
    >>> ctx = OptionContext("s.yaml", prefix="tracking")
    >>> opts = WandbTracker.parse_options({**WandbTracker.OPTIONS, "tags": "lr"}, ctx)
    >>> opts["mode"], opts["tags"]
    ('offline', ['lr'])
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

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

__all__ = ["WandbTracker"]

_MODES = ("offline", "online")
_COLUMNS: tuple[Any, ...] = ("hp", "parametrization", "axis", "drift", "se", "verdict", "reason")


class WandbTracker(BaseTracker):
    """Log trials to Weights & Biases (`wandb`), offline unless ``mode: online``."""

    NAME = "wandb"
    PACKAGE = "wandb"
    OPTIONS: ClassVar[dict[str, Any]] = {"mode": "offline", "entity": None, "tags": []}

    @classmethod
    def parse_options(cls, options: dict[str, Any], ctx: OptionContext) -> dict[str, Any]:
        mode = options["mode"]
        if mode not in _MODES:
            raise ctx.fail("mode", f"expected {' or '.join(_MODES)}", mode)
        entity = options["entity"]
        if entity is not None and (not isinstance(entity, str) or not entity):
            raise ctx.fail("entity", "expected a W&B team or user name", entity)
        tags = options["tags"]
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) and t for t in tags):
            raise ctx.fail("tags", "expected a list of tags (strings)", options["tags"])
        return {"mode": mode, "entity": entity, "tags": list(tags)}

    @property
    def destination(self) -> str:
        where = f"{self.options['entity']}/" if self.options["entity"] else ""
        project = f"{where}{self.info.project}"
        return f"wandb {self.options['mode']} {project} in {self.info.where(self.info.dir)}"

    def log_trial(self, spec: TrialSpec, result: TrialResult, curve: Curve) -> None:
        run = self._init(self.info.trial_name(spec), "trial", trial_config(spec, result))
        try:
            for step, metrics in curve_metrics(curve):
                run.log(metrics, step=step)
            run.summary.update({**final_metrics(result), "status": result.status})
        finally:
            run.finish()

    def log_summary(self, summary: SweepSummary) -> None:
        import wandb

        run = self._init(f"{self.info.name} summary", "summary", {"sweep": self.info.name})
        try:
            rows = [[r.get(c) for c in _COLUMNS] for r in summary.verdicts]
            table = wandb.Table(columns=list(_COLUMNS), data=rows)
            images = {f"figures/{p.stem}": wandb.Image(str(p)) for p in summary.figures}
            run.log({"transfer": table, **images}, step=summary.step)
            run.summary.update({**summary.scalars(), **summary.verdict_labels()})
            for path in summary.files:  # a copy (a link would follow later rewrites)
                copy = Path(run.dir) / path.name
                shutil.copyfile(path, copy)
                run.save(str(copy), base_path=run.dir, policy="now")
        finally:
            run.finish()

    def _init(self, name: str, job_type: str, config: dict[str, Any]) -> Any:
        import wandb

        self.info.dir.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(
            silent=True,  # the driver prints nothing; the CLI shows progress
            console="off",
            x_disable_stats=True,
            x_disable_meta=True,
            disable_git=True,
            save_code=False,
        )
        return wandb.init(
            mode=self.options["mode"],
            dir=str(self.info.dir),
            project=self.info.project,
            entity=self.options["entity"],
            group=self.info.name,
            job_type=job_type,
            name=name,
            config=config,
            tags=list(self.options["tags"]) or None,
            settings=settings,
        )
