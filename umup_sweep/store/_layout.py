"""The file names of a run directory, `runs/<sweep name>/` (the one place they are spelled).

Written by the driver (`RunStore`): `sweep.yaml` (the resolved sweep), `study.db` (the Optuna
trial database: the record of what is done), `trials.csv` (an export of it for people and
spreadsheets; nothing reads it back), `curves/<trial_key>.csv` and `.lock` (held by the
driver). Written by the analyses: `transfer.json`, `plots/`, `recommended.yaml`, `report.md`.

Example:
    >>> from pathlib import Path
    >>> str(Path("runs/lr_width") / SWEEP_FILE)
    'runs/lr_width/sweep.yaml'
"""

from __future__ import annotations

SWEEP_FILE = "sweep.yaml"
STUDY_FILE = "study.db"
TRIALS_FILE = "trials.csv"
CURVES_DIR = "curves"
LOCK_FILE = ".lock"
TRANSFER_FILE = "transfer.json"
PLOTS_DIR = "plots"
RECOMMENDED_FILE = "recommended.yaml"
REPORT_FILE = "report.md"
COMPARE_FILE = "compare.json"  # `report --compare OTHER`: this run next to another
