"""Transfer analysis of a finished sweep: optimum per proxy, drift per width/depth doubling and
a verdict per parametrization and precision, and whether the optimum holds in low precision
(fp8_sim vs fp32) (`transfer.json`), plots, the recommendation for a target model
(`recommended.yaml`), the human report (`report.md`) and the coordinate check.

Example:
    >>> from umup_sweep.analysis import analyze_run, plot_runs, recommend, write_report
    >>> report = analyze_run("runs/lr_width")  # doctest: +SKIP
    >>> report.results["lr"]["umup"].verdict  # doctest: +SKIP
    'transfers'
"""

from umup_sweep.analysis._coord import (
    CoordCheck,
    coord_check,
    plot_coord_check,
    write_coord_check,
)
from umup_sweep.analysis._fit import BowlFit, Parabola, fit_moving_bowl, fit_parabola
from umup_sweep.analysis._plots import plot_runs, transfer_figure
from umup_sweep.analysis._precision import (
    PrecisionComparison,
    PrecisionProxy,
    PrecisionReport,
    compare_hp,
    compare_precisions,
    precision_verdict,
)
from umup_sweep.analysis._recommend import Recommendation, best_config, optimizer_groups, recommend
from umup_sweep.analysis._report import finalize_run, write_report
from umup_sweep.analysis._run import RunData, load_run, load_trials
from umup_sweep.analysis._transfer import (
    Drift,
    HPTransfer,
    ProxyOptimum,
    TransferReport,
    analyze_hp,
    analyze_run,
    analyze_trials,
    result_key,
    verdict_for,
)

__all__ = [
    "BowlFit",
    "CoordCheck",
    "Drift",
    "HPTransfer",
    "Parabola",
    "PrecisionComparison",
    "PrecisionProxy",
    "PrecisionReport",
    "ProxyOptimum",
    "Recommendation",
    "RunData",
    "TransferReport",
    "analyze_hp",
    "analyze_run",
    "analyze_trials",
    "best_config",
    "compare_hp",
    "compare_precisions",
    "coord_check",
    "finalize_run",
    "fit_moving_bowl",
    "fit_parabola",
    "load_run",
    "load_trials",
    "optimizer_groups",
    "plot_coord_check",
    "plot_runs",
    "precision_verdict",
    "recommend",
    "result_key",
    "transfer_figure",
    "verdict_for",
    "write_coord_check",
    "write_report",
]
