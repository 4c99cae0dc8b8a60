"""The run directory and its trial database (`RunStore`).

Layout of `runs/<sweep name>/`: `sweep.yaml` (the resolved sweep), `study.db` (an Optuna
storage, the record of what is done; only the driver writes it), `trials.csv` (export of the
contract columns), `curves/<trial_key>.csv` and `.lock` (held by the driver).

How trials map to Optuna: each finished trial is one `add_trial`, with params = the swept HPs
plus width, depth and seed (point distributions), value = the sweep metric, and user attrs
`trial_key`, `stage`, `status`, `spec` (TrialSpec dict) and `result` (TrialResult minus curve).
- ok       -> COMPLETE, value = metric.
- diverged -> COMPLETE, value = +inf (a real, final outcome that Optuna can rank: never best).
- failed   -> FAIL, with the one-line error in user attr `error`. A failed trial is not final:
  a later run of the same sweep tries it again (`has()` is False for it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from umup_sweep.config import SweepSpec
from umup_sweep.errors import StoreError
from umup_sweep.spec import HP_NAMES, TrialResult, TrialSpec
from umup_sweep.store_lock import RunLock, StudyLock, storage_label
from umup_sweep.store_rows import (
    FINAL_STATUSES,
    atomic_write_text,
    finite_or_inf,
    read_curve,
    rows_frame,
    trial_row,
    write_curve,
)

SWEEP_FILE = "sweep.yaml"
STUDY_FILE = "study.db"
TRIALS_FILE = "trials.csv"
CURVES_DIR = "curves"


def sweep_dict(sweep: SweepSpec) -> dict[str, Any]:
    """The sweep as a plain dict (config_load's `sweep_to_dict` when available)."""
    try:
        from umup_sweep.config_load import sweep_to_dict
    except ImportError:
        return _plain(dataclasses.asdict(sweep))
    return sweep_to_dict(sweep)


def sweep_identity(sweep: SweepSpec) -> str:
    """Hash of what makes a sweep "the same sweep" (config_load's `sweep_hash` when available)."""
    try:
        from umup_sweep.config_load import sweep_hash
    except ImportError:
        d = sweep_dict(sweep)
        for key in ("execution", "storage", "source"):
            d.pop(key, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return sweep_hash(sweep)


def _plain(obj: Any) -> Any:
    """Tuples to lists, Paths to str: something yaml.safe_dump and json accept."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for key, value in d.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


# Sweep keys that do not decide which trials run (they may change between reruns).
_NOT_IDENTITY = ("source", "name", "execution", "storage", "analysis", "train.threads")


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two sweep dicts, those that decide which trials
    run first (execution, storage, analysis settings only when nothing else differs)."""
    a, b = _flatten(_plain(old)), _flatten(_plain(new))
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k != "source")
    identity = [k for k in keys if not any(k == p or k.startswith(p + ".") for p in _NOT_IDENTITY)]
    return identity or keys


def _storage_url(run_dir: Path, url: str | None) -> str:
    return url if url else f"sqlite:///{(run_dir / STUDY_FILE).resolve()}"


class RunStore:
    """The run directory of one sweep: commit finished trials, read them back, export.

    Open it with `RunStore.open(sweep)` (the driver: creates the directory, takes the lock)
    or `RunStore.load(run_dir)` (read-only: status, analysis).

    Example:
        >>> import tempfile
        >>> from umup_sweep.config import ProxyFamily, StorageSpec, SweepSpec
        >>> from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec
        >>> fam = ProxyFamily("tiny", ModelSpec(width=32, depth=1), (32,), (1,))
        >>> sweep = SweepSpec("demo", fam, {}, {}, TrainSpec(steps=5),
        ...                   storage=StorageSpec(run_dir=Path(tempfile.mkdtemp())))
        >>> with RunStore.open(sweep) as store:
        ...     spec = TrialSpec(fam.base, sweep.train)
        ...     store.commit(spec, TrialResult(spec.trial_key, "ok", val_loss=2.5))
        ...     store.has(spec.trial_key)
        True
    """

    def __init__(
        self,
        run_dir: Path,
        study: optuna.Study,
        *,
        metric: str,
        swept: tuple[str, ...] = HP_NAMES,
        lock: RunLock | None = None,
        url: str | None = None,
        storage: optuna.storages.BaseStorage | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.metric = metric
        self.swept = swept
        self._study = study
        # Trials are read and written through the uncached storage: optuna.Study's cache would
        # keep every trial (with its spec) in memory, ~10 KiB per trial for the whole sweep.
        self._storage = storage or study._storage
        self._study_id = self._storage.get_study_id_from_name(study.study_name)
        self._lock = lock
        self._db_lock: StudyLock | None = None
        self._created: list[Path] = []  # folders open() made: the run directory, new parents
        self._new_study = False  # open() started the study (no sweep recorded in it before)
        self._url = url  # the storage URL when not the run directory's study.db
        self._rows: dict[str, dict[str, Any]] = {}
        self._load_rows()

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, sweep: SweepSpec, *, force: bool = False) -> RunStore:
        """Open (or create) the run directory of `sweep` for writing, holding its lock (and,
        for a shared database, the study's lock on the server).

        Args:
            sweep: the sweep to run.
            force: if the directory holds a different sweep, move it aside to
                `<run_dir>.bak-<timestamp>` (and a remote study to `<name>.bak-<timestamp>`)
                and start over, instead of refusing.

        Raises:
            StoreError: another driver holds the lock; the directory holds a different sweep
                (without `force`); the trial database is unreadable or unreachable.
        """
        run_dir = sweep.run_dir
        created = [d for d in (run_dir, *run_dir.parents) if not d.exists()]
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir)
        db_lock: StudyLock | None = None
        try:
            new_hash = sweep_identity(sweep)
            url = _storage_url(run_dir, sweep.storage.url)
            study, storage = _open_study(url, sweep.name, run_dir, create=True)
            db_lock = _lock_study(url, sweep.name, study)
            old_hash = study.user_attrs.get("sweep_hash")
            if old_hash is not None and old_hash != new_hash:
                if not force:
                    raise StoreError(_changed_message(run_dir, sweep))
                lock.release()
                _move_aside(run_dir, sweep.name, sweep.storage.url)
                run_dir.mkdir(parents=True)
                lock = RunLock(run_dir)
                study, storage = _open_study(url, sweep.name, run_dir, create=True)
                old_hash = None
            study.set_user_attr("sweep_hash", new_hash)
            study.set_user_attr("metric", sweep.metric)
            study.set_user_attr("swept", list(sweep.swept))
            if db_lock is not None:
                study.set_user_attr("driver", f"host {socket.gethostname()}, pid {os.getpid()}")
            text = yaml.safe_dump(_plain(sweep_dict(sweep)), sort_keys=False)
            atomic_write_text(run_dir / SWEEP_FILE, text)
            (run_dir / CURVES_DIR).mkdir(exist_ok=True)
            store = cls(
                run_dir,
                study,
                metric=sweep.metric,
                swept=sweep.swept,
                lock=lock,
                url=sweep.storage.url,
                storage=storage,
            )
        except BaseException:
            lock.release()
            if db_lock is not None:
                db_lock.release()
            _remove_created(created)  # a refused or failed open leaves no new folder behind
            raise
        store._db_lock = db_lock
        store._created = created
        store._new_study = old_hash is None
        store.export()
        return store

    @classmethod
    def load(cls, run_dir: str | Path) -> RunStore:
        """Open an existing run directory read-only (no lock; safe while a driver runs).

        Raises:
            StoreError: not a run directory, or its study.db is unreadable.
        """
        run_dir = Path(run_dir)
        sweep_file = run_dir / SWEEP_FILE
        if not sweep_file.is_file():
            raise StoreError(
                f"{run_dir} is not a run directory (no {SWEEP_FILE}); "
                "give the folder `umup-sweep run` wrote, e.g. runs/<sweep name>"
            )
        try:
            meta = yaml.safe_load(sweep_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise StoreError(_damaged_sweep(sweep_file, exc.__class__.__name__)) from None
        storage = meta.get("storage") if isinstance(meta, dict) else None
        if not isinstance(meta, dict) or not isinstance(storage or {}, dict):
            raise StoreError(_damaged_sweep(sweep_file, "not a sweep mapping"))
        name = str(meta.get("name") or run_dir.name)
        url = (storage or {}).get("url")
        if not url and not (run_dir / STUDY_FILE).is_file():
            raise StoreError(f"{run_dir} has no {STUDY_FILE}: no trial has been recorded there")
        study, storage = _open_study(_storage_url(run_dir, url), name, run_dir, create=False)
        meta_metric = meta.get("metric")
        if isinstance(meta_metric, dict):  # config_load writes {name: ..., goal: ...}
            meta_metric = meta_metric.get("name")
        metric = str(study.user_attrs.get("metric") or meta_metric or "val_loss")
        swept = tuple(study.user_attrs.get("swept") or HP_NAMES)
        return cls(run_dir, study, metric=metric, swept=swept, url=url or None, storage=storage)

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
                    optuna.delete_study(study_name=self._study.study_name, storage=self._url)
            except Exception:  # best effort: an empty study is harmless
                pass
        self.close()
        if unused:
            _remove_created(self._created)
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

    def has(self, trial_key: str) -> bool:
        """True when a final result (ok or diverged) of this trial is stored."""
        row = self._rows.get(trial_key)
        return row is not None and row["status"] in FINAL_STATUSES

    def results(self) -> pd.DataFrame:
        """All stored trials, one row per trial_key, contract columns (see trials.csv)."""
        return rows_frame(list(self._rows.values()))

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

    # -- writing -------------------------------------------------------------------------

    def commit(self, spec: TrialSpec, result: TrialResult) -> None:
        """Record one finished trial: curve file, then the study (the commit point), then
        trials.csv. A crash between the steps at worst re-runs this one trial."""
        key = spec.trial_key
        if result.curve:
            self.curves_dir.mkdir(exist_ok=True)
            write_curve(self.curve_path(key), result.curve)
        row = trial_row(spec, result)
        result_attrs = {k: v for k, v in result.to_dict().items() if k != "curve"}
        attrs = {
            "trial_key": key,
            "stage": spec.labels.get("stage"),
            "status": result.status,
            "spec": spec.to_dict(),
            "result": result_attrs,
        }
        params, dists = self._params(spec)
        if result.status == "failed":
            attrs["error"] = result.error or "unknown error"
            trial = optuna.trial.create_trial(
                state=TrialState.FAIL, params=params, distributions=dists, user_attrs=attrs
            )
        else:
            value = finite_or_inf(getattr(result, self.metric) if result.status == "ok" else None)
            trial = optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                value=value,
                params=params,
                distributions=dists,
                user_attrs=attrs,
            )
        self._storage.create_new_trial(self._study_id, template_trial=trial)
        self._keep(row)
        self.export()

    def export(self) -> Path:
        """Write trials.csv from the stored trials (atomic; cheap enough to call per commit)."""
        atomic_write_text(self.trials_csv, self.results().to_csv(index=False))
        return self.trials_csv

    # -- internals -----------------------------------------------------------------------

    def _params(self, spec: TrialSpec) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
        hps = spec.hps
        params: dict[str, Any] = {name: hps[name] for name in self.swept if name in hps}
        dists: dict[str, BaseDistribution] = {
            name: FloatDistribution(value, value) for name, value in params.items()
        }
        for name in ("width", "depth"):
            params[name] = int(getattr(spec.model, name))
            dists[name] = IntDistribution(params[name], params[name])
        params["seed"] = int(spec.seed)
        dists["seed"] = IntDistribution(spec.seed, spec.seed)
        return params, dists

    def _trials(self) -> list[optuna.trial.FrozenTrial]:
        try:
            return self._storage.get_all_trials(self._study_id, deepcopy=False)
        except Exception as exc:  # sqlalchemy errors on a damaged database
            raise StoreError(_unreadable(self.run_dir, exc, self._url)) from None

    def _load_rows(self) -> None:
        for trial in self._trials():
            attrs = trial.user_attrs
            if "spec" not in attrs or "result" not in attrs:
                continue  # not one of ours (e.g. a trial added by hand)
            try:
                spec = TrialSpec.from_dict(attrs["spec"])
                result = TrialResult.from_dict(attrs["result"])
            except (TypeError, KeyError, ValueError) as exc:
                raise StoreError(
                    f"{self.run_dir}: trial #{trial.number} in the study has an unreadable "
                    f"record ({exc}); it was not written by this version of umup-sweep"
                ) from None
            self._keep(trial_row(spec, result))

    def _keep(self, row: dict[str, Any]) -> None:
        """Newest row per key wins, except that a failure never hides a final result."""
        old = self._rows.get(row["trial_key"])
        if old is not None and old["status"] in FINAL_STATUSES and row["status"] == "failed":
            return
        self._rows[row["trial_key"]] = row


def _open_study(
    url: str, name: str, run_dir: Path, *, create: bool
) -> tuple[optuna.Study, optuna.storages.RDBStorage]:
    """The study, and its storage without Optuna's in-memory trial cache."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = optuna.storages.RDBStorage(url)
        if create:
            study = optuna.create_study(
                storage=storage, study_name=name, direction="minimize", load_if_exists=True
            )
        else:
            study = optuna.load_study(storage=storage, study_name=name)
        return study, storage
    except KeyError:
        where = run_dir if _is_local(url, run_dir) else storage_label(url)
        raise StoreError(f"{where}: the trial database has no study named {name!r}") from None
    except StoreError:
        raise
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the trial database {storage_label(url)} needs the Python package {exc.name!r}, "
            "which is not installed (for PostgreSQL: pip install psycopg2-binary)"
        ) from None
    except Exception as exc:
        raise StoreError(_unreadable(run_dir, exc, url)) from None


def _lock_study(url: str, name: str, study: optuna.Study) -> StudyLock | None:
    """Take the server-side lock of a shared database's study (None for SQLite)."""

    def holder() -> str | None:
        try:
            return str(study.user_attrs.get("driver") or "") or None
        except Exception:
            return None

    try:
        lock = StudyLock(url, name, holder=holder)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(_unreadable(Path("."), exc, url)) from None
    return lock if lock.held else None


def _remove_created(created: list[Path]) -> None:
    """Remove the run directory `open()` created, then the parents it created if empty."""
    if not created:
        return
    shutil.rmtree(created[0], ignore_errors=True)
    for parent in created[1:]:
        try:
            parent.rmdir()
        except OSError:
            break


def _damaged_sweep(path: Path, why: str) -> str:
    return (
        f"{path} is damaged ({why}); the trials are intact in the trial database: rerun "
        "`umup-sweep run <the sweep file>` to rewrite it"
    )


def _is_local(url: str, run_dir: Path) -> bool:
    return url == _storage_url(run_dir, None)


def _unreadable(run_dir: Path, exc: BaseException, url: str | None = None) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    if url is not None and not _is_local(url, run_dir):
        return (
            f"cannot use the trial database {storage_label(url)} ({type(exc).__name__}: "
            f"{first}); check that the server is running and the URL, user and password "
            "are right"
        )
    return (
        f"{run_dir / STUDY_FILE} is not a readable trial database ({type(exc).__name__}: "
        f"{first}); restore it from a backup, or move it aside (mv {run_dir / STUDY_FILE} "
        f"{run_dir / STUDY_FILE}.broken) and rerun to recompute its trials"
    )


def _changed_message(run_dir: Path, sweep: SweepSpec) -> str:
    try:
        old = yaml.safe_load((run_dir / SWEEP_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        old = {}
    keys = changed_keys(old, sweep_dict(sweep)) if old else []
    shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
    return (
        f"{run_dir} holds a different sweep (changed keys: {shown or 'unknown'}); "
        "use --force to start over (the old run is moved aside) or give a new name"
    )


def _move_aside(run_dir: Path, name: str, url: str | None) -> Path:
    """Keep the old run: rename its directory (and copy a remote study) to `.bak-<time>`."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = run_dir.with_name(f"{run_dir.name}.bak-{stamp}")
    if url:
        optuna.copy_study(
            from_study_name=name,
            from_storage=url,
            to_storage=url,
            to_study_name=f"{name}.bak-{stamp}",
        )
        optuna.delete_study(study_name=name, storage=url)
    shutil.move(str(run_dir), str(backup))
    return backup
