"""Live progress of a running job: per-step document counters printed every few seconds.

Steps call :func:`count`. The counters live in the process, so the reporter thread of an
in-process run (the embedded DirectRunner default) sees them as they grow; on a remote or
multi-process runner the same counts are Beam metrics, visible in the runner's UI and
in the final summary.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter

from apache_beam.metrics import Metrics

NAMESPACE = "dapt"
_counts: Counter[str] = Counter()
_metrics: dict[str, object] = {}


def count(step: str, n: int = 1) -> None:
    _counts[step] += n
    metric = _metrics.get(step)
    if metric is None:
        metric = _metrics[step] = Metrics.counter(NAMESPACE, step)
    metric.inc(n)


def snapshot() -> dict[str, int]:
    return dict(_counts)


def reset() -> None:
    _counts.clear()


class ProgressReporter:
    """Prints ``[clean 12s] read 20,281 | repair 20,281 | ...`` to stderr while running."""

    def __init__(self, label: str, steps: list[str], interval: float = 2.0, stream=None):
        self.label = label
        self.steps = steps
        self.interval = interval
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = 0.0

    def __enter__(self) -> ProgressReporter:
        reset()
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._print()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._print()

    def _print(self) -> None:
        counts = snapshot()
        if not counts:
            return
        parts = [f"{step} {counts[step]:,}" for step in self.steps if step in counts]
        elapsed = time.monotonic() - self._start
        print(f"[{self.label} {elapsed:4.0f}s] " + " | ".join(parts), file=self.stream, flush=True)
