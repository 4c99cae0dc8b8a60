"""`RunStore`: the run directory of one sweep and its trial database.

How trials map to Optuna: each finished trial is one trial, with params = the swept HPs plus
width, depth, seed, precision and parametrization (over the sweep's ranges, so that
optuna-dashboard can read the run: `umup_sweep.store._optuna_trial`), value = the sweep
metric, its start and end times, each evaluation's validation loss as an intermediate value,
and user attrs `trial_key`, `stage`, `status`, `spec` (TrialSpec dict), `result` (TrialResult
minus curve) and the key numbers of the result on their own.
- ok       -> COMPLETE, value = metric.
- diverged -> COMPLETE, value = +inf (a real, final outcome that Optuna can rank: never best).
- pruned   -> PRUNED, no value (it stopped early: `umup_sweep.pruning`), the reason in user
  attr `pruned`; final like ok and diverged.
- failed   -> FAIL, with the one-line error in user attr `error`. A failed trial is not final:
  a later run of the same sweep tries it again (`has()` is False for it).

The study's user attributes: `sweep_hash`, `metric`, `swept`, `sweep` (the resolved sweep the
stored trials belong to, what a changed sweep is compared with), `growth` (the last accepted
growth or shrink: its changes and `mark`, the number of trials stored before it) and, on a
shared server, `driver`. A changed sweep is accepted when it only grows or (for some
strategies) shrinks the stored one (`umup_sweep.store._growth`); `results()` then holds the
trials of the sweep as it is now.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from umup_sweep.config import SweepSpec, sweep_hash, sweep_to_dict
from umup_sweep.errors import StoreError
from umup_sweep.spec import TrialResult, TrialSpec
from umup_sweep.store._files import (
    PRIVATE_DIR,
    atomic_write_text,
    make_private,
    read_curve,
    write_curve,
)
from umup_sweep.store._growth import Growth, in_sweep
from umup_sweep.store._layout import CURVES_DIR, STUDY_FILE, SWEEP_FILE, TRIALS_FILE
from umup_sweep.store._lock import RunLock, StudyLock
from umup_sweep.store._optuna_trial import (
    contains,
    distributions,
    fitted,
    frozen_trial,
    param_values,
    realign,
    stale,
)
from umup_sweep.store._rows import FINAL_STATUSES, rows_frame, trial_row
from umup_sweep.store._study import (
    connection_url,
    lock_study,
    move_aside,
    open_study,
    remove_created,
    storage_url,
    take_change,
    unreadable,
)
from umup_sweep.store._sweep import plain, read_sweep, write_sweep

# Top-level sweep keys not kept in the study's `sweep` attribute: they never decide trials
# (and `storage` may name a database URL).
_NOT_STORED = ("name", "execution", "storage", "analysis", "target")


class RunStore:
    """The run directory of one sweep: commit finished trials, read them back, export.

    Open it with `RunStore.open(sweep)` (the driver: creates the directory, takes the lock)
    or `RunStore.load(run_dir)` (read-only: status, analysis). Readers get the trials from
    `results()` and the validated sweep from `sweep()`; `trials.csv` is only an export.

    Example:
        >>> import tempfile
        >>> from umup_sweep.config import load_sweep
        >>> sweep = load_sweep({"name": "demo", "hyperparameters": {"lr": [0.5, 1.0]},
        ...     "proxy": {"base": {"head_dim": 16}, "widths": [32], "depths": [1]},
        ...     "storage": {"run_dir": tempfile.mkdtemp()}})
        >>> with RunStore.open(sweep) as store:
        ...     spec = TrialSpec(sweep.family.base, sweep.train)
        ...     store.commit(spec, TrialResult(spec.trial_key, "ok", val_loss=2.5))
        ...     store.has(spec.trial_key)
        True
        >>> reader = RunStore.load(sweep.run_dir)
        >>> reader.sweep().name, reader.results()["val_loss"].tolist()
        ('demo', [2.5])
    """

    def __init__(
        self,
        run_dir: Path,
        study: optuna.Study,
        sweep: SweepSpec,
        *,
        lock: RunLock | None = None,
        storage: optuna.storages.BaseStorage | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.metric: str = sweep.metric
        self.swept: tuple[str, ...] = sweep.swept
        self._sweep = sweep
        self._study = study
        # Trials are read and written through the uncached storage: optuna.Study's cache would
        # keep every trial (with its spec) in memory, ~10 KiB per trial for the whole sweep.
        self._storage = storage or study._storage
        self._study_id = self._storage.get_study_id_from_name(study.study_name)
        self._lock = lock
        self._db_lock: StudyLock | None = None
        self._created: list[Path] = []  # folders open() made: the run directory, new parents
        self._new_study = False  # open() started the study (no sweep recorded in it before)
        self._url = sweep.storage.url  # the storage URL when not the run directory's study.db
        self._rows: dict[str, dict[str, Any]] = {}
        self._numbers: dict[str, int] = {}  # the study's trial number behind each row
        # Read once: open() records a shrink before it builds the store.
        self._shrunk_once = bool(study.user_attrs.get("shrunk_once"))
        # the corpus fingerprint the stored trials ran with (part of their keys; "" if none)
        self.data_fingerprint = ""
        self._seen: dict[str, set[Any]] = defaultdict(set)  # the stored values of each param
        self._load_rows()
        self._dists = distributions(sweep, self._seen)

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, sweep: SweepSpec, *, force: bool = False) -> RunStore:
        """Open (or create) the run directory of `sweep` for writing, holding its lock (and,
        for a shared database, the study's lock on the server).

        A sweep that only grows the stored one (more seeds, widths, depths, precisions, HP
        values, a wider range, a larger budget) or, for grid and random, shrinks it, is taken
        as it is: its stored trials are reused (`umup_sweep.store._growth` has the rule).

        Args:
            sweep: the sweep to run.
            force: if the directory holds a different sweep (even one that only grows it),
                move it aside to `<run_dir>.bak-<timestamp>` (and a remote study to
                `<name>.bak-<timestamp>`) and start over.

        Raises:
            StoreError: another driver holds the lock; the directory holds a sweep this one
                changes other than by growing (without `force`); the trial database is
                unreadable or unreachable.
        """
        run_dir = sweep.run_dir
        created = [d for d in (run_dir, *run_dir.parents) if not d.exists()]
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(mode=PRIVATE_DIR, exist_ok=True)  # owner-only (less the umask)
        locks = _Locks(RunLock(run_dir))
        try:
            store = cls._open_locked(sweep, force, locks)
        except BaseException:
            locks.release()
            remove_created(created)  # a refused or failed open leaves no new folder behind
            raise
        store._created = created
        store.export()
        return store

    @classmethod
    def _open_locked(cls, sweep: SweepSpec, force: bool, locks: _Locks) -> RunStore:
        """`open()` once the run directory's lock is held (the study's lock, when taken, is
        added to `locks`, so the caller releases both on failure)."""
        run_dir, name = sweep.run_dir, sweep.name
        url = storage_url(run_dir, sweep.storage.url)
        new_db = not (run_dir / STUDY_FILE).exists()
        study, storage = open_study(url, name, run_dir, create=True)
        if new_db:  # a database we created: owner-only (one the user relaxed stays so)
            make_private(run_dir / STUDY_FILE)
        locks.study = lock_study(url, name, study)
        new_hash = sweep_hash(sweep)
        old_hash = study.user_attrs.get("sweep_hash")
        why = None  # why the stored run cannot take this sweep: start over, or refuse
        if old_hash is not None and old_hash != new_hash:
            why = "--force" if force else take_change(study, storage, sweep, old_hash, new_hash)
        if why is not None:
            if not force:
                raise StoreError(why)
            locks.run.release()
            move_aside(run_dir, name, sweep.storage.url)
            run_dir.mkdir(mode=PRIVATE_DIR)
            locks.run = RunLock(run_dir)
            study, storage = open_study(url, name, run_dir, create=True)
            make_private(run_dir / STUDY_FILE)
            old_hash = None
        # The sweep, then its hash: a crash in between leaves the new sweep recorded under the
        # old hash, which the next open() compares with the new sweep again (no change).
        write_sweep(run_dir, sweep)
        stored = {k: v for k, v in sweep_to_dict(sweep).items() if k not in _NOT_STORED}
        study.set_user_attr("sweep", plain(stored))
        study.set_user_attr("sweep_hash", new_hash)
        study.set_user_attr("metric", sweep.metric)
        if study.metric_names != [sweep.metric]:  # the objective's name in optuna-dashboard
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([sweep.metric])
        study.set_user_attr("swept", list(sweep.swept))
        if locks.study is not None:
            study.set_user_attr("driver", f"host {socket.gethostname()}, pid {os.getpid()}")
        (run_dir / CURVES_DIR).mkdir(mode=PRIVATE_DIR, exist_ok=True)
        store = cls(run_dir, study, sweep, lock=locks.run, storage=storage)
        store._db_lock = locks.study
        store._new_study = old_hash is None
        store._realign()
        return store

    @classmethod
    def load(cls, run_dir: str | Path) -> RunStore:
        """Open an existing run directory read-only (no lock; safe while a driver runs).

        Raises:
            StoreError: not a run directory, its sweep.yaml is damaged, or its trial database
                is missing or unreadable.
        """
        run_dir = Path(run_dir)
        sweep = read_sweep(run_dir)
        url = sweep.storage.url
        if not url and not (run_dir / STUDY_FILE).is_file():
            raise StoreError(f"{run_dir} has no {STUDY_FILE}: no trial has been recorded there")
        study, storage = open_study(storage_url(run_dir, url), sweep.name, run_dir, create=False)
        return cls(run_dir, study, sweep, storage=storage)

    def close(self) -> None:
        """Release the locks (the driver's store); committed trials are already on disk."""
        if self._lock is not None:
            self._lock.release()
        if self._db_lock is not None:
            self._db_lock.release()
            self._db_lock = None

    def discard_if_unused(self) -> bool:
        """Undo `open()` when it created the run (directory and study) and no trial has been
        committed: a run that fails before its first trial leaves nothing behind. Returns
        whether it removed anything; closes the store either way."""
        unused = bool(self._created) and self._new_study and not self._rows
        if unused:
            try:
                if self._url:
                    real = connection_url(self._url)
                    optuna.delete_study(study_name=self._study.study_name, storage=real)
            except Exception:  # best effort: an empty study is harmless
                pass
        self.close()
        if unused:
            remove_created(self._created)
        return unused

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths ---------------------------------------------------------------------------

    @property
    def sweep_yaml(self) -> Path:
        return self.run_dir / SWEEP_FILE

    @property
    def study_db(self) -> Path:
        return self.run_dir / STUDY_FILE

    @property
    def trials_csv(self) -> Path:
        return self.run_dir / TRIALS_FILE

    @property
    def curves_dir(self) -> Path:
        return self.run_dir / CURVES_DIR

    def curve_path(self, trial_key: str) -> Path:
        """Where the loss curve of a trial lives."""
        return self.curves_dir / f"{trial_key}.csv"

    # -- reading -------------------------------------------------------------------------

    def sweep(self) -> SweepSpec:
        """The validated sweep of this run (what `open()` was given, or what `load()` read
        from sweep.yaml through the config loader)."""
        return self._sweep

    def has(self, trial_key: str) -> bool:
        """True when a final result (ok, diverged or pruned) of this trial is stored."""
        row = self._rows.get(trial_key)
        return row is not None and row["status"] in FINAL_STATUSES

    def results(self) -> pd.DataFrame:
        """The trials of this run's sweep, one row per trial_key, in `TRIAL_COLUMNS` order.

        After a sweep shrank (a seed or width removed from a grid), the stored trials it no
        longer holds are left out here (and in trials.csv), from then on; `all_results()` has
        them too. A sweep that never shrank keeps every stored trial (no matching by value)."""
        frame = self.all_results()
        return frame[self._mine(frame)].reset_index(drop=True)

    def _mine(self, frame: pd.DataFrame) -> pd.Series:
        """Which rows the sweep holds: all of them until it first shrank, then by value."""
        if not self._shrunk_once:
            return pd.Series(True, index=frame.index)
        return in_sweep(frame, self._sweep)

    def all_results(self) -> pd.DataFrame:
        """Every stored trial, whether the sweep holds it now or not (as `results()`)."""
        return rows_frame(list(self._rows.values()))

    def growth(self) -> Growth | None:
        """What the last accepted change of the sweep did: its growths and shrinks, the trials
        reused from before it and run since, and the stored trials it left out (None when the
        sweep never changed)."""
        record = self._study.user_attrs.get("growth")
        if not isinstance(record, dict):
            return None
        frame = self.all_results()
        mine = self._mine(frame)
        before = frame["trial_key"].map(self._numbers) < int(record.get("mark", 0))
        final = frame["status"].isin(FINAL_STATUSES)
        return Growth(
            grown=tuple(str(c) for c in record.get("grown", ())),
            shrunk=tuple(str(c) for c in record.get("shrunk", ())),
            reused=int((mine & before & final).sum()),
            new=int((mine & ~before).sum()),
            outside=int((~mine).sum()),
            retuned=tuple(str(c) for c in record.get("retuned", ())),
        )

    def curve(self, trial_key: str) -> pd.DataFrame:
        """The loss curve of a trial (columns step, train_loss, val_loss).

        Raises:
            StoreError: the curve file is missing or damaged (the message says what to do).
        """
        return read_curve(self.curve_path(trial_key))

    def spec(self, trial_key: str) -> TrialSpec:
        """The full TrialSpec a stored trial ran with."""
        for trial in reversed(self._trials()):
            if trial.user_attrs.get("trial_key") == trial_key:
                return TrialSpec.from_dict(trial.user_attrs["spec"])
        raise KeyError(trial_key)

    def specs(self) -> dict[str, TrialSpec]:
        """The TrialSpec of every stored trial by key, in one read of the study."""
        return {
            str(trial.user_attrs["trial_key"]): TrialSpec.from_dict(trial.user_attrs["spec"])
            for trial in self._trials()
            if "spec" in trial.user_attrs and "trial_key" in trial.user_attrs
        }

    def train_settings(self) -> dict[str, tuple[int, int]]:
        """``{trial_key: (steps, batch_size)}`` as each stored trial was planned (its
        TrainSpec's, not the steps a diverged trial got through), in one read of the study."""
        out: dict[str, tuple[int, int]] = {}
        for trial in self._trials():
            train = (trial.user_attrs.get("spec") or {}).get("train") or {}
            key = trial.user_attrs.get("trial_key")
            if key is not None and "steps" in train and "batch_size" in train:
                out[str(key)] = (int(train["steps"]), int(train["batch_size"]))
        return out

    def optuna_study(self) -> tuple[optuna.storages.BaseStorage, int]:
        """The study's storage and id (what optuna-dashboard serves)."""
        return self._storage, self._study_id

    def stale_trials(self) -> int:
        """How many stored trials still have params from before the sweep's ranges (written
        by an earlier version, or before the sweep grew): the next `open()` rewrites them."""
        return len(stale(self._ours(), self._dists)[0])

    # -- writing -------------------------------------------------------------------------

    def commit(self, spec: TrialSpec, result: TrialResult) -> None:
        """Record one finished trial: curve file, then the study (the commit point), then
        trials.csv. A crash between the steps at worst re-runs this one trial."""
        key = spec.trial_key
        self.data_fingerprint = spec.data_fingerprint
        if result.curve:
            self.curves_dir.mkdir(mode=PRIVATE_DIR, exist_ok=True)
            write_curve(self.curve_path(key), result.curve)
        values = param_values(spec, self.swept)
        if not contains(values, self._dists):  # beyond the sweep's range and every value stored
            self._see(values)
            self._dists = distributions(self._sweep, self._seen)
            self._realign()
        frozen = frozen_trial(spec, result, self.metric, fitted(values, self._dists), time.time())
        trial_id = self._storage.create_new_trial(self._study_id, template_trial=frozen)
        self._see(values)
        self._keep(trial_row(spec, result), self._storage.get_trial_number_from_id(trial_id))
        self.export()

    def export(self) -> Path:
        """Write trials.csv from the stored trials (atomic; cheap enough to call per commit)."""
        atomic_write_text(self.trials_csv, self.results().to_csv(index=False))
        return self.trials_csv

    # -- internals -----------------------------------------------------------------------

    def _trials(self) -> list[optuna.trial.FrozenTrial]:
        try:
            return self._storage.get_all_trials(self._study_id, deepcopy=False)
        except Exception as exc:  # sqlalchemy errors on a damaged database
            raise StoreError(unreadable(self.run_dir, exc, self._url)) from None

    def _load_rows(self) -> None:
        for trial in self._trials():
            attrs = trial.user_attrs
            if "spec" not in attrs or "result" not in attrs:
                continue  # not one of ours (e.g. a trial added by hand)
            try:
                spec = TrialSpec.from_dict(attrs["spec"])
                result = TrialResult.from_dict(attrs["result"])
                self.data_fingerprint = spec.data_fingerprint
            except (TypeError, KeyError, ValueError) as exc:
                raise StoreError(
                    f"{self.run_dir}: trial #{trial.number} in the study has an unreadable "
                    f"record ({exc}); it was not written by this version of umup-sweep"
                ) from None
            self._keep(trial_row(spec, result), trial.number)
            self._see(param_values(spec, self.swept))

    def _see(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            self._seen[name].add(value)

    def _ours(self) -> list[tuple[optuna.trial.FrozenTrial, dict[str, Any]]]:
        """The stored trials this store wrote, each with its param values."""
        return [
            (trial, param_values(TrialSpec.from_dict(trial.user_attrs["spec"]), self.swept))
            for trial in self._trials()
            if "spec" in trial.user_attrs and "result" in trial.user_attrs
        ]

    def _realign(self) -> int:
        """Give every stored trial the params and distributions of the study as it is now
        (`_optuna_trial.realign`: after the sweep changed, or for a study written before)."""
        ours = self._ours()
        try:
            return realign(self._storage, ours, self._dists)
        except Exception as exc:  # sqlalchemy errors: a damaged or unreachable database
            raise StoreError(unreadable(self.run_dir, exc, self._url)) from None

    def _keep(self, row: dict[str, Any], number: int) -> None:
        """Newest row per key wins, except that a failure never hides a final result."""
        old = self._rows.get(row["trial_key"])
        if old is not None and old["status"] in FINAL_STATUSES and row["status"] == "failed":
            return
        self._rows[row["trial_key"]] = row
        self._numbers[row["trial_key"]] = number


class _Locks:
    """The locks `open()` holds: the run directory's, and a shared database study's."""

    def __init__(self, run: RunLock) -> None:
        self.run = run
        self.study: StudyLock | None = None

    def release(self) -> None:
        self.run.release()
        if self.study is not None:
            self.study.release()
