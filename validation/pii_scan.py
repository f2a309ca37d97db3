"""``leftover_pii`` of kept documents: the redactor's own detector run again.

:func:`pipelines.steps.pii.find_pii` with the options the document's domain profile
redacted with (clinical dates in medical text), so validation and redaction share one
definition of PII. Placeholders such as ``<EMAIL>`` are not PII to it. The value is
the types and counts found (``"EMAIL x1, PHONE x2"``), never the PII itself, so the
report does not copy what it found; ``None`` when the text is clean.

:func:`~pipelines.steps.pii.may_hold_pii` first rules out, for the whole column at once,
the texts in which ``find_pii`` cannot find anything (on the clean samples all but 283 of
18,545); ``find_pii`` then reads only the others.

This module imports only the detector and Arrow: worker processes start from it, and Beam
or Great Expectations would cost each of them seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pyarrow as pa

from pipelines.steps.pii import find_pii, may_hold_pii


#: Below this much text to scan the PII scan runs in-process: a spawned worker costs about
#: 0.2 s to start, and find_pii reads about 6 MB/s on one core.
PARALLEL_SCAN_CHARS = 4_000_000


class PIIScan:
    """``leftover_pii`` of every kept document: :func:`find_pii` with the redactor options
    of the document's domain (``clinical_dates(domain)``), over ``texts``, an Arrow string
    array (nulls are not scanned).

    With enough text left to scan after :func:`may_hold_pii`, it runs in ``workers``
    processes (default: one per CPU but one, which is the caller's) and starts at
    construction, so the caller can do other work until :meth:`result`. With
    ``workers=0`` it runs in-process, at construction. ``close`` stops workers that are
    no longer needed.
    """

    def __init__(
        self,
        texts: pa.Array | pa.ChunkedArray,
        domains: list,
        clinical_dates: Callable[[str], bool],
        workers: int | None = None,
        min_parallel_chars: int = PARALLEL_SCAN_CHARS,
    ):
        options = {d: clinical_dates(d) if isinstance(d, str) else False for d in set(domains)}
        clinical = [options[d] for d in domains]
        self._size = len(texts)
        self._rows = []
        for option in set(clinical):
            rows = [i for i, c in enumerate(clinical) if c == option]
            subset = texts if len(rows) == len(texts) else texts.take(pa.array(rows, pa.int64()))
            hits = may_hold_pii(subset, clinical_dates=option).to_pylist()
            self._rows += [i for i, hit in zip(rows, hits) if hit]
        self._rows.sort()
        items = list(zip(texts.take(pa.array(self._rows, pa.int64())).to_pylist(), (clinical[i] for i in self._rows)))
        if workers is None:
            workers = (os.cpu_count() or 1) - 1
        self._pool = None
        self._futures = []
        if workers < 1 or sum(len(t) for t, _ in items) < min_parallel_chars:
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
        """One summary per text, ``None`` where nothing was found."""
        out: list[str | None] = [None] * self._size
        for row, summary in zip(self._rows, self._summaries()):
            out[row] = summary
        return out

    def _summaries(self) -> list[str | None]:
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


def _scan(items: list[tuple[str, bool]]) -> list[str | None]:
    return [_pii_summary(text, clinical) for text, clinical in items]


def _chunks(items: list, n: int) -> list[list]:
    """Contiguous runs of about equal text size, so no worker idles while one scans the
    long documents."""
    target = max(1, sum(len(t) for t, _ in items) // n)
    chunks, current, size = [], [], 0
    for item in items:
        current.append(item)
        size += len(item[0])
        if size >= target:
            chunks.append(current)
            current, size = [], 0
    return chunks + ([current] if current else [])


def _pii_summary(text: str, clinical_dates: bool) -> str | None:
    found = find_pii(text, clinical_dates=clinical_dates)
    return ", ".join(f"{kind} x{len(values)}" for kind, values in sorted(found.items())) or None
