"""``leftover_pii`` of kept documents: the redactor's own detector run again.

:func:`pipelines.steps.pii.find_pii` with the options the document's domain profile
redacted with (clinical dates in medical text), so validation and redaction share one
definition of PII. Placeholders such as ``<EMAIL>`` are not PII to it. The value is
the types and counts found (``"EMAIL x1, PHONE x2"``), never the PII itself, so the
report does not copy what it found; ``None`` when the text is clean.

This module imports only the detector: worker processes start from it, and Beam or
Great Expectations would cost each of them seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pipelines.steps.pii import find_pii


#: Below this much kept text the PII scan runs in-process: a spawned worker costs about
#: 0.2 s to start, and find_pii reads about 6 MB/s on one core.
PARALLEL_SCAN_CHARS = 4_000_000


class PIIScan:
    """``leftover_pii`` of every kept document: :func:`find_pii` with the redactor options
    of the document's domain (``clinical_dates(domain)``).

    With enough text it runs in ``workers`` processes (default: one per CPU but one,
    which is the caller's) and starts at construction, so the caller can do other work
    until :meth:`result`: importing Great Expectations alone takes seconds. With
    ``workers=0`` it runs in-process, at construction. ``close`` stops workers that are
    no longer needed.
    """

    def __init__(
        self,
        texts: list[str | None],
        domains: list,
        clinical_dates: Callable[[str], bool],
        workers: int | None = None,
        min_parallel_chars: int = PARALLEL_SCAN_CHARS,
    ):
        options = {d: clinical_dates(d) if isinstance(d, str) else False for d in set(domains)}
        items = [(t, options[d]) for t, d in zip(texts, domains)]
        if workers is None:
            workers = (os.cpu_count() or 1) - 1
        self._pool = None
        self._futures = []
        if workers < 1 or sum(len(t) for t, _ in items if t) < min_parallel_chars:
            self._done = _scan(items)
            return
        import concurrent.futures
        import multiprocessing

        self._items = items
        # spawn, not fork: the parent holds Arrow and Beam threads that a forked child
        # would inherit in an unknown state.
        self._pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        self._futures = [self._pool.submit(_scan, chunk) for chunk in _chunks(items, workers * 4)]

    def result(self) -> list[str | None]:
        if self._pool is None:
            return self._done
        from concurrent.futures.process import BrokenProcessPool

        try:
            return [summary for future in self._futures for summary in future.result()]
        except (BrokenProcessPool, OSError):
            # A worker could not start or died (a sandbox without process spawning, the
            # OOM killer): same answer, one core.
            return _scan(self._items)
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _scan(items: list[tuple[str | None, bool]]) -> list[str | None]:
    return [_pii_summary(text, clinical) if text is not None else None for text, clinical in items]


def _chunks(items: list, n: int) -> list[list]:
    """Contiguous runs of about equal text size, so no worker idles while one scans the
    long documents."""
    target = max(1, sum(len(t or "") for t, _ in items) // n)
    chunks, current, size = [], [], 0
    for item in items:
        current.append(item)
        size += len(item[0] or "")
        if size >= target:
            chunks.append(current)
            current, size = [], 0
    return chunks + ([current] if current else [])


def _pii_summary(text: str, clinical_dates: bool) -> str | None:
    found = find_pii(text, clinical_dates=clinical_dates)
    return ", ".join(f"{kind} x{len(values)}" for kind, values in sorted(found.items())) or None
