"""TensorBoard: event files, one folder per trial, under ``<dir>/tensorboard/<sweep name>/``.

No options. Each trial's folder (``<width>x<depth>_<hp>=<value>_seed=<s>-<trial key>``) holds
train_loss / val_loss by step, the final numbers as ``final/<name>`` scalars, and the trial's
HPs and proxy shape in the HParams tab (with the final/ scalars as its metrics). The
``summary`` folder holds, at step = the number of stored trials (a sweep that grows adds
points rather than overwriting), the drift and its standard error per HP
(``drift/<hp>/<parametrization>/<axis>``, ``se/...``), the recommended values, the verdicts
as a text table and the figures as images.
View with ``tensorboard --logdir runs/<name>/tracking/tensorboard``.

Example:
    >>> run_folder("32x1 lr=0.5 seed=0", "0123abcd")
    '32x1_lr=0.5_seed=0-0123abcd'
    >>> header = b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8)
    >>> png_size(header + (640).to_bytes(4, "big") + (480).to_bytes(4, "big"))
    (640, 480)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from umup_sweep.spec import TrialResult, TrialSpec
from umup_sweep.tracking._base import (
    BaseTracker,
    Curve,
    SweepSummary,
    curve_metrics,
    final_metrics,
    trial_config,
)

__all__ = ["TensorBoardTracker", "png_size", "run_folder"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def run_folder(name: str, trial_key: str) -> str:
    """A trial's event-file folder: its readable name (file-name safe) and its key."""
    return f"{_UNSAFE.sub('_', name)}-{trial_key}"


def _short(name: str) -> str:
    """``final_val_loss`` -> ``val_loss`` (under ``final/`` already)."""
    return name.removeprefix("final_")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, from its header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        raise ValueError("not a PNG file")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class TensorBoardTracker(BaseTracker):
    """Log trials as TensorBoard event files (needs the `tensorboard` package)."""

    NAME = "tensorboard"
    PACKAGE = "tensorboard"

    @property
    def root(self) -> Path:
        """The sweep's folder of event files (one subfolder per run)."""
        return self.info.dir / "tensorboard" / self.info.name

    @property
    def destination(self) -> str:
        return f"tensorboard {self.info.where(self.root)}"

    def log_trial(self, spec: TrialSpec, result: TrialResult, curve: Curve) -> None:
        from torch.utils.tensorboard.summary import hparams

        writer = self._writer(run_folder(self.info.trial_name(spec), spec.trial_key))
        try:
            for step, metrics in curve_metrics(curve):
                for key, value in metrics.items():
                    writer.add_scalar(key, value, step)
            last = int(curve[-1][0]) if len(curve) else 0
            finals = {f"final/{_short(k)}": v for k, v in final_metrics(result).items()}
            for key, value in finals.items():
                writer.add_scalar(key, value, last)
            config = {k: v for k, v in trial_config(spec, result).items() if v is not None}
            file_writer = writer._get_file_writer()
            for part in hparams(config, finals):
                file_writer.add_summary(part)
        finally:
            writer.close()

    def log_summary(self, summary: SweepSummary) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        writer = self._writer("summary")
        step = summary.step
        try:
            for key, value in summary.scalars().items():
                writer.add_scalar(key, value, step)
            writer.add_text("verdicts", summary.markdown(), step)
            for row in summary.verdicts:
                tag = f"reason/{row['hp']}/{row['parametrization']}/{row['axis']}"
                writer.add_text(tag, str(row.get("reason") or row["verdict"]), step)
            file_writer = writer._get_file_writer()
            for path in summary.figures:
                data = path.read_bytes()
                width, height = png_size(data)
                image = Summary.Image(
                    height=height, width=width, colorspace=4, encoded_image_string=data
                )
                value = Summary.Value(tag=f"figures/{path.stem}", image=image)
                file_writer.add_summary(Summary(value=[value]), step)
        finally:
            writer.close()

    def _writer(self, folder: str) -> Any:
        from torch.utils.tensorboard import SummaryWriter

        path = self.root / folder
        path.mkdir(parents=True, exist_ok=True)
        return SummaryWriter(log_dir=str(path))
