"""The trackers of one sweep run, as the driver uses them: after each committed trial, and
once at the end.

The store stays the record of what is done: a trial is logged only after it is committed,
and a tracker that fails says so in one line and is left out for the rest of the run (the
sweep goes on). Each trial is logged once per destination: a ledger
(``<run_dir>/tracking/logged.json``) keeps the trial keys every destination has, so a resumed
sweep does not log its stored trials again, and at the end (`Tracking.finish`) every stored
final trial a destination lacks is logged: the trials of a run that crashed between commit
and log, or of a run that finished before tracking was turned on. Failed trials are not
logged (they are tried again). The summary (verdicts, recommendation, figures) is logged
after each analysis whose verdicts differ from the last one logged.

Example:
    >>> import tempfile
    >>> from umup_sweep.config import load_sweep
    >>> proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
    >>> sweep = load_sweep({"name": "demo", "proxy": proxy, "hyperparameters": {"lr": [1, 2]},
    ...                     "storage": {"run_dir": tempfile.mkdtemp()}})
    >>> Tracking.open(sweep).active  # no `tracking:` section: every call does nothing
    False
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from umup_sweep.spec import TrialResult, TrialSpec
from umup_sweep.store._files import atomic_write_text
from umup_sweep.store._layout import PLOTS_DIR, RECOMMENDED_FILE, REPORT_FILE, TRANSFER_FILE
from umup_sweep.store._rows import FINAL_STATUSES, status_counts
from umup_sweep.tracking._base import TRACKING_DIR, BaseTracker, Curve, SweepInfo, SweepSummary
from umup_sweep.tracking._registry import TRACKERS

if TYPE_CHECKING:
    from umup_sweep.config import SweepSpec
    from umup_sweep.store import RunStore

__all__ = ["LEDGER_FILE", "Tracking", "read_summary", "sweep_info"]

LEDGER_FILE = "logged.json"
Warn = Callable[[str], None]


def sweep_info(sweep: SweepSpec) -> SweepInfo:
    """What the trackers know of `sweep` (its `tracking:` section resolved)."""
    spec = sweep.tracking
    run_dir = sweep.run_dir
    return SweepInfo(
        name=sweep.name,
        run_dir=run_dir,
        dir=spec.dir if spec is not None and spec.dir is not None else run_dir / TRACKING_DIR,
        project=spec.project if spec is not None and spec.project else sweep.name,
        swept=tuple(sweep.swept),
        precisions=tuple(sweep.precisions),
        train_axes=sweep.train_axes is not None,
    )


class Tracking:
    """The sweep's trackers (none without a `tracking:` section: then every call is a no-op).

    Args:
        trackers: the trackers to log to.
        run_dir: the run directory (its ``tracking/logged.json`` is the ledger).
        warn: where one-line warnings go (a tracker failed; stored trials being logged).
    """

    def __init__(self, trackers: list[BaseTracker], run_dir: Path, warn: Warn | None) -> None:
        self.trackers = list(trackers)
        self._ledger = _Ledger(run_dir / TRACKING_DIR / LEDGER_FILE)
        self._warn = warn or (lambda text: None)
        self._failed: set[str] = set()

    @classmethod
    def open(cls, sweep: SweepSpec, warn: Warn | None = None) -> Tracking:
        """The trackers `sweep.tracking` names, their libraries imported now.

        Raises:
            TrackingError: a tracker's package is not installed (one line, before any trial).
        """
        spec = sweep.tracking
        if spec is None or not spec.backends:
            return cls([], sweep.run_dir, warn)
        info = sweep_info(sweep)
        trackers = []
        for name in spec.backends:
            tracker_cls = TRACKERS[name]
            tracker_cls.check_installed()
            options = {k: spec.options[k] for k in tracker_cls.OPTIONS if k in spec.options}
            trackers.append(tracker_cls(info, options))
        return cls(trackers, sweep.run_dir, warn)

    @property
    def active(self) -> bool:
        """Whether any tracker is (still) logging."""
        return any(t.destination not in self._failed for t in self.trackers)

    def log_trial(self, spec: TrialSpec, result: TrialResult, curve: Curve | None = None) -> None:
        """Log a committed trial to every tracker that does not have it (failed trials are
        not logged: they run again)."""
        if result.status not in FINAL_STATUSES:
            return
        for tracker in self._live():
            if not self._ledger.has(tracker.destination, _entry(spec.trial_key, result.status)):
                self._log(tracker, spec, result, result.curve if curve is None else curve)

    def finish(self, store: RunStore, analysed: bool = True) -> None:
        """At the end of the run: log the stored final trials a tracker lacks, then (when the
        analysis ran) the summary, unless the same one was logged before."""
        if not self.active:
            return
        stored = store.results()
        rows = stored[stored["status"].isin(FINAL_STATUSES)]
        for tracker in self._live():
            entries = [_entry(k, s) for k, s in zip(rows["trial_key"], rows["status"], strict=True)]
            missing = [not self._ledger.has(tracker.destination, e) for e in entries]
            if any(missing):
                self._warn(f"tracking: logging {sum(missing)} stored trial(s) to {tracker.NAME}")
            for _, row in rows[missing].iterrows():
                if tracker.destination in self._failed:
                    break
                key = str(row["trial_key"])
                self._log(tracker, store.spec(key), _row_result(row), _stored_curve(store, key))
        summary = read_summary(store.run_dir, status_counts(stored["status"])) if analysed else None
        if summary is not None:
            self._log_summary(summary, _digest(store.run_dir))

    def close(self) -> None:
        """Let every tracker release what it holds (errors ignored: the sweep is done)."""
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception:
                pass

    def _live(self) -> list[BaseTracker]:
        return [t for t in self.trackers if t.destination not in self._failed]

    def _log(
        self, tracker: BaseTracker, spec: TrialSpec, result: TrialResult, curve: Curve
    ) -> None:
        try:
            tracker.log_trial(spec, result, curve)
        except Exception as exc:
            self._fail(tracker, f"trial {spec.trial_key}", exc)
            return
        self._ledger.add(tracker.destination, _entry(spec.trial_key, result.status))

    def _log_summary(self, summary: SweepSummary, digest: str) -> None:
        for tracker in self._live():
            if self._ledger.summary(tracker.destination) == digest:
                continue
            try:
                tracker.log_summary(summary)
            except Exception as exc:
                self._fail(tracker, "the summary", exc)
                continue
            self._ledger.set_summary(tracker.destination, digest)

    def _fail(self, tracker: BaseTracker, what: str, exc: Exception) -> None:
        self._failed.add(tracker.destination)
        first = tracker.scrub((str(exc).splitlines() or [""])[0])[:200]
        self._warn(
            f"warning: tracking to {tracker.NAME} failed on {what} ({type(exc).__name__}: "
            f"{first}); the trials are stored; no more {tracker.NAME} logging in this run "
            "(rerun the sweep to log what it missed)"
        )


def _entry(trial_key: str, status: str) -> str:
    """A trial's name in the ledger: its key, marked when it was pruned, so the same trial
    run in full later (`run --rerun-pruned`) is logged again, with its whole curve."""
    return f"{trial_key}:pruned" if status == "pruned" else str(trial_key)


class _Ledger:
    """Which trials (and which summary) each destination has: ``{destination: {"trials":
    [keys], "summary": digest}}`` in one JSON file, rewritten whole on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, dict[str, Any]] | None = None
        self._keys: dict[str, set[str]] = {}  # the trial lists as sets, for lookups

    def _read(self) -> dict[str, dict[str, Any]]:
        if self._data is None:
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}  # none yet (or unreadable): log everything once more
            self._data = data if isinstance(data, dict) else {}
        return self._data

    def _entry(self, destination: str) -> dict[str, Any]:
        entry = self._read().setdefault(destination, {})
        if not isinstance(entry.get("trials"), list):
            entry["trials"] = []
        return entry

    def has(self, destination: str, key: str) -> bool:
        if destination not in self._keys:
            self._keys[destination] = {str(k) for k in self._entry(destination)["trials"]}
        return key in self._keys[destination]

    def add(self, destination: str, key: str) -> None:
        if not self.has(destination, key):
            self._entry(destination)["trials"].append(key)
            self._keys[destination].add(key)
            self._write()

    def summary(self, destination: str) -> str | None:
        return self._entry(destination).get("summary")

    def set_summary(self, destination: str, digest: str) -> None:
        self._entry(destination)["summary"] = digest
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self._read(), indent=1) + "\n")


def read_summary(run_dir: Path, counts: dict[str, int] | None = None) -> SweepSummary | None:
    """The analysed run's verdicts, recommendation and figures (None before an analysis).

    Example:
        >>> read_summary(Path("/nonexistent")) is None
        True
    """
    path = run_dir / TRANSFER_FILE
    try:
        transfer = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    verdicts = []
    for hp, by_param in (transfer.get("results") or {}).items():
        for param, result in (by_param or {}).items():
            verdicts += _verdict_rows(hp, param, result)
    files = [run_dir / name for name in (TRANSFER_FILE, REPORT_FILE, RECOMMENDED_FILE)]
    counts = counts if counts is not None else dict(transfer.get("counts") or {})
    return SweepSummary(
        verdicts=verdicts,
        recommendation=_recommendation(run_dir / RECOMMENDED_FILE),
        figures=sorted((run_dir / PLOTS_DIR).glob("*.png")),
        files=[p for p in files if p.is_file()],
        counts=counts,
        step=int(counts.get("total", 0)),
    )


def _verdict_rows(hp: str, param: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per axis the HP's drift was measured along (one row without a drift)."""
    base = {"hp": hp, "parametrization": param, "verdict": str(result.get("verdict", ""))}
    base["reason"] = str(result.get("reason") or "")
    drifts = result.get("drift") or {}
    if not isinstance(drifts, dict) or not drifts:
        return [{**base, "axis": "-", "drift": None, "se": None}]
    return [
        {**base, "axis": axis, "drift": d.get("slope"), "se": d.get("se")}
        for axis, d in drifts.items()
        if isinstance(d, dict)
    ]


def _recommendation(path: Path) -> dict[str, float] | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    hps = data.get("hyperparameters") if isinstance(data, dict) else None
    if not isinstance(hps, dict):
        return None
    return {str(k): float(v) for k, v in hps.items() if isinstance(v, (int, float))}


def _digest(run_dir: Path) -> str:
    """What decides whether the summary changed: the verdicts and the recommendation."""
    h = hashlib.sha256()
    for name in (TRANSFER_FILE, RECOMMENDED_FILE):
        path = run_dir / name
        h.update(path.read_bytes() if path.is_file() else b"-")
    return h.hexdigest()[:16]


def _row_result(row: Any) -> TrialResult:
    """A stored trial's result, from its row of `RunStore.results()` (curve aside)."""

    def number(name: str) -> float | None:
        value = row.get(name)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    return TrialResult(
        trial_key=str(row["trial_key"]),
        status=row["status"],
        final_train_loss=number("final_train_loss"),
        val_loss=number("val_loss"),
        steps=int(number("steps") or 0),
        tokens=int(number("tokens") or 0),
        wall_s=float(number("wall_s") or 0.0),
        tokens_per_s=float(number("tokens_per_s") or 0.0),
        n_params=int(number("n_params") or 0),
    )


def _stored_curve(store: RunStore, key: str) -> list[tuple[int, float, float | None]]:
    """A stored trial's curve ([] when its file is missing or damaged: the rest is logged)."""
    from umup_sweep.errors import StoreError

    try:
        frame = store.curve(key)
    except StoreError:
        return []
    return [
        (int(s), float(t), None if math.isnan(v) else float(v))
        for s, t, v in zip(frame["step"], frame["train_loss"], frame["val_loss"], strict=True)
    ]
