"""The run directory and its trial database: the one way a run is written and read.

`RunStore.open(sweep)` (the driver) creates `runs/<sweep name>/` and commits finished trials;
`RunStore.load(run_dir)` (status, analysis) reads them back: `results()` (the trials frame,
`TRIAL_COLUMNS`) and `sweep()` (the validated `SweepSpec`). The file names of a run directory
(`SWEEP_FILE`, `STUDY_FILE`, ...) are defined here and nowhere else.

Example:
    >>> from umup_sweep.store import SWEEP_FILE, TRIAL_COLUMNS
    >>> SWEEP_FILE, TRIAL_COLUMNS[:3]
    ('sweep.yaml', ('trial_key', 'stage', 'parametrization'))
"""

from umup_sweep.store._files import CURVE_COLUMNS, atomic_write_text, read_curve, write_curve
from umup_sweep.store._growth import Growth, SweepChange, classify_change, in_sweep
from umup_sweep.store._layout import (
    COMPARE_FILE,
    CURVES_DIR,
    LOCK_FILE,
    PLOTS_DIR,
    RECOMMENDED_FILE,
    REPORT_FILE,
    STUDY_FILE,
    SWEEP_FILE,
    TRANSFER_FILE,
    TRIALS_FILE,
)
from umup_sweep.store._lock import RunLock, StudyLock, lock_holder, storage_label
from umup_sweep.store._rows import (
    FINAL_STATUSES,
    TRIAL_COLUMNS,
    rows_frame,
    status_counts,
    trial_row,
)
from umup_sweep.store._run_store import RunStore
from umup_sweep.store._sweep import changed_keys, read_sweep

__all__ = [
    "CURVES_DIR",
    "CURVE_COLUMNS",
    "FINAL_STATUSES",
    "LOCK_FILE",
    "PLOTS_DIR",
    "RECOMMENDED_FILE",
    "COMPARE_FILE",
    "REPORT_FILE",
    "STUDY_FILE",
    "SWEEP_FILE",
    "TRANSFER_FILE",
    "TRIALS_FILE",
    "TRIAL_COLUMNS",
    "Growth",
    "RunLock",
    "RunStore",
    "StudyLock",
    "SweepChange",
    "atomic_write_text",
    "changed_keys",
    "classify_change",
    "in_sweep",
    "lock_holder",
    "read_curve",
    "read_sweep",
    "rows_frame",
    "status_counts",
    "storage_label",
    "trial_row",
    "write_curve",
]
