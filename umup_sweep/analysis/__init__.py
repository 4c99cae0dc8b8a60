"""Transfer analysis of a finished sweep: optimum per proxy, drift per width/depth doubling and
a verdict per parametrization and precision, and whether the optimum holds in low precision
(fp8_sim vs fp32) (`transfer.json`), plots, the recommendation for a target model
(`recommended.yaml`), the human report (`report.md`), one run's loss next to another's
(`compare.json`) and the coordinate check.

Example:
    >>> from umup_sweep.analysis import analyze_run, plot_runs, recommend, write_report
    >>> report = analyze_run("runs/lr_width")  # doctest: +SKIP
    >>> report.results["lr"]["umup"].verdict  # doctest: +SKIP
    'transfers'
"""

from umup_sweep.analysis._analyze import (
    TransferReport,
    analyze_run,
    finalize_run,
    plot_runs,
    write_report,
)
from umup_sweep.analysis._compare import (
    COMPARE_FILE,
    Comparison,
    compare_markdown,
    compare_rows,
    compare_runs,
    load_comparison,
)
from umup_sweep.analysis._coord import (
    CoordCheck,
    coord_check,
    plot_coord_check,
    write_coord_check,
)
from umup_sweep.analysis._fit import BowlFit, fit_moving_bowl
from umup_sweep.analysis._plots import transfer_figure
from umup_sweep.analysis._points import CurvePoint
from umup_sweep.analysis._precision import (
    PrecisionComparison,
    PrecisionProxy,
    PrecisionReport,
    compare_hp,
    compare_precisions,
    precision_verdict,
)
from umup_sweep.analysis._recommend import Recommendation, best_config, recommend
from umup_sweep.analysis._report import report_markdown
from umup_sweep.analysis._run import RunData, load_run
from umup_sweep.analysis._transfer import (
    Drift,
    HPTransfer,
    ProxyOptimum,
    analyze_hp,
    analyze_trials,
    result_key,
    verdict_for,
)
from umup_sweep.fitting import Parabola, fit_parabola, log2_optimum

__all__ = [
    "COMPARE_FILE",
    "BowlFit",
    "Comparison",
    "CoordCheck",
    "CurvePoint",
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
    "compare_markdown",
    "compare_rows",
    "compare_precisions",
    "compare_runs",
    "coord_check",
    "finalize_run",
    "fit_moving_bowl",
    "fit_parabola",
    "load_comparison",
    "load_run",
    "log2_optimum",
    "plot_coord_check",
    "plot_runs",
    "precision_verdict",
    "recommend",
    "report_markdown",
    "result_key",
    "transfer_figure",
    "verdict_for",
    "write_coord_check",
    "write_report",
]
