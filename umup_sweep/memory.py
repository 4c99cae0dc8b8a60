"""Peak resident memory of this process, per trial: what `TrialResult.peak_rss_mb` reports."""

from __future__ import annotations

import resource
import sys


def reset_peak_rss() -> None:
    """Start a new peak-memory window for this process (Linux: `echo 5 > clear_refs` resets
    VmHWM), so `peak_rss_mb()` after a trial is that trial's own peak, not the process's."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # not Linux, or not allowed: peak_rss_mb() is then the process's peak
        pass


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB since the last `reset_peak_rss()` (Linux
    VmHWM), else since it started (ru_maxrss: KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
