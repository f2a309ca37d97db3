"""``leftover_pii`` of kept documents: the redactor's own detector run again.

:func:`pipelines.steps.pii.find_pii` with the options the document's domain profile
redacted with (clinical dates in medical text), so validation and redaction share one
definition of PII. Placeholders such as ``<EMAIL>`` are not PII to it. The value is
the types and counts found (``"EMAIL x1, PHONE x2"``), never the PII itself, so the
report does not copy what it found; ``None`` when the text is clean.

:func:`~pipelines.steps.pii.may_hold_pii` first rules out, for the whole column at once,
the texts in which ``find_pii`` cannot find anything (on the clean samples all but 283 of
18,545); ``find_pii`` then reads only the others, in worker processes when they add up
to enough text to pay for starting them.

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


def scan_pii(
    texts: pa.Array | pa.ChunkedArray,
    domains: list,
    clinical_dates: Callable[[str], bool],
    workers: int | None = None,
    min_parallel_chars: int = PARALLEL_SCAN_CHARS,
) -> list[str | None]:
    """``leftover_pii`` of every text of ``texts``, an Arrow string array (nulls are not
    scanned): :func:`find_pii` with the redactor options of the text's domain
    (``clinical_dates(domain)``); ``None`` where nothing was found.

    With enough text left to scan after :func:`may_hold_pii`, it runs in ``workers``
    processes (default: one per CPU but one, which is the caller's); ``workers=0`` keeps
    it in this process.
    """
    options = {d: clinical_dates(d) if isinstance(d, str) else False for d in set(domains)}
    clinical = [options[d] for d in domains]
    rows: list[int] = []
    for option in set(clinical):
        subset_rows = [i for i, c in enumerate(clinical) if c == option]
        subset = texts if len(subset_rows) == len(texts) else texts.take(pa.array(subset_rows, pa.int64()))
        hits = may_hold_pii(subset, clinical_dates=option).to_pylist()
        rows += [i for i, hit in zip(subset_rows, hits) if hit]
    rows.sort()
    items = list(zip(texts.take(pa.array(rows, pa.int64())).to_pylist(), (clinical[i] for i in rows)))
    if workers is None:
        workers = (os.cpu_count() or 1) - 1
    if workers < 1 or sum(len(t) for t, _ in items) < min_parallel_chars:
        summaries = _scan(items)
    else:
        summaries = _scan_in_processes(items, workers)
    out: list[str | None] = [None] * len(texts)
    for row, summary in zip(rows, summaries):
        out[row] = summary
    return out


def _scan_in_processes(items: list[tuple[str, bool]], workers: int) -> list[str | None]:
    import concurrent.futures
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the parent holds Arrow and Beam threads that a forked child
    # would inherit in an unknown state.
    context = multiprocessing.get_context("spawn")
    try:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            chunks = [pool.submit(_scan, chunk) for chunk in _chunks(items, workers * 4)]
            return [summary for chunk in chunks for summary in chunk.result()]
    except (BrokenProcessPool, OSError):
        # A worker could not start or died (a sandbox without process spawning, the
        # OOM killer): same answer, one core.
        return _scan(items)


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
