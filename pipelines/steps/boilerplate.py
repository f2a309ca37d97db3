"""Boilerplate lines, found from the corpus itself by line frequency.

Wire sign-offs ("Reuter"), licence headers and footers, navigation lines: a line that
recurs in many documents of the same source carries no information about any one of
them. No hand-written list: the job counts, per source, in how many documents each line
occurs (:func:`distinct_lines`), keeps the frequent ones (:func:`frequent_lines`) and
removes them (:class:`RemoveBoilerplate`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator

from pipelines.steps.base import Doc, Transform

_ALNUM = re.compile(r"[^\W_]")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n")]


SourceKey = tuple[str, str]
"""``(domain, source)``: boilerplate is a property of one source within one domain."""


def distinct_lines(doc: Doc, min_line_chars: int = 6) -> Iterator[tuple[SourceKey, str]]:
    """Yield ``((domain, source), line)`` once per distinct candidate line of a document.

    Only documents with at least two content lines (lines with a letter or digit)
    besides the title vote: a line that *is* the whole body (the 348 identical GHR
    answers in MedQuAD, the 785 Reuters "Blah blah blah." bodies under a "******" flash
    marker) is a duplicate or a placeholder for later steps to name, not boilerplate
    around other content. Short lines ("Net", "Year") are too generic.
    """
    title = doc.get("title")
    lines = {line for line in _lines(doc["text"]) if line and line != title}
    if sum(1 for line in lines if _is_content(line)) < 2:
        return
    key = (doc["domain"], doc["source"])
    for line in lines:
        if len(line) >= min_line_chars:
            yield key, line


def _is_content(line: str) -> bool:
    return _ALNUM.search(line) is not None


def boilerplate_threshold(n_docs: int, min_fraction: float = 0.01, min_docs: int = 5) -> int:
    """How many documents of a source must share a line for it to be boilerplate.

    Defaults follow the measurement in the shared corpora README (a line in >= 1% of a
    file's documents, and in >= 5 of them). The finance profile raises the fraction to
    5% (see :data:`pipelines.config.BUILTIN_PROFILES`).
    """
    return max(min_docs, math.ceil(min_fraction * n_docs))


def frequent_lines(
    line_counts: Iterable[tuple[tuple[SourceKey, str], int]],
    docs_per_source: dict[SourceKey, int],
    thresholds: dict[str, tuple[float, int]],
) -> dict[SourceKey, frozenset[str]]:
    """Per ``(domain, source)``, the lines at or above the domain's threshold.

    ``thresholds`` maps a domain to ``(min_fraction, min_docs)``.
    """
    found: dict[SourceKey, set[str]] = {}
    for (key, line), count in line_counts:
        if count >= boilerplate_threshold(docs_per_source.get(key, 0), *thresholds[key[0]]):
            found.setdefault(key, set()).add(line)
    return {key: frozenset(lines) for key, lines in found.items()}


class RemoveBoilerplate(Transform):
    """Step 3: drop the source's frequent lines from a document.

    ``boilerplate`` maps ``(domain, source)`` to its frequent lines, computed over the
    whole run. A document is never stripped down to its title or to nothing: if every
    body line is boilerplate it is left as it was, so the filters and dedup can name
    what it is (a "Blah blah blah." placeholder, a duplicate) instead of it vanishing
    as "too short".
    """

    name = "boilerplate"

    def __call__(self, doc: Doc, boilerplate: dict[SourceKey, frozenset[str]]) -> Doc:
        lines_to_drop = boilerplate.get((doc["domain"], doc["source"]))
        if not lines_to_drop:
            return doc
        lines = doc["text"].split("\n")
        kept = [line for line in lines if line.strip() not in lines_to_drop]
        title = doc.get("title")
        if len(kept) == len(lines) or not any(_is_content(line) and line != title for line in kept):
            return doc
        doc["boilerplate_lines"] = len(lines) - len(kept)
        doc["text"] = "\n".join(kept).strip()
        return doc
