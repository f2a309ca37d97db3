"""What the benchmarks measure of their own child processes."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's own peak RSS. (Not ``ru_maxrss``: Linux carries it over ``exec``, so
    a child would report at least the parent's peak, the benchmark's input tables.)"""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def cpu_seconds() -> float:
    """User + system seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
