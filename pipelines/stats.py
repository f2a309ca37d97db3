"""Accounting of a cleaning run: every input record is kept, rejected or quarantined.

``stats.json`` schema::

    {"input": n, "kept": n, "rejected": {reason: n}, "quarantined": n,
     "by_domain": {domain: {"input", "kept", "rejected", "quarantined", "chars", "words"}},
     "by_source": {source: {"input", "kept", "rejected", "quarantined", "chars", "words"}},
     "pii_redacted": {type: n}, "chars": n, "words": n,
     "boilerplate_lines_removed": n, "files": {path: records}, "empty_files": [path],
     "unreadable_files": {path: error}, "seconds": s}

``chars`` and ``words`` count kept text. Quarantined records of a file that could not be
parsed have no ``source``; they count under their corpus name in ``by_source``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, NamedTuple

import apache_beam as beam


class AccountingError(RuntimeError):
    """input != kept + rejected + quarantined: a record was lost or made up."""


class Summary(NamedTuple):
    kind: str  # input | kept | rejected | quarantined
    domain: str
    source: str
    file: str | None = None
    chars: int = 0
    words: int = 0
    reason: str | None = None
    pii: dict | None = None
    boilerplate_lines: int = 0


def summarize(kind: str, item: dict) -> Summary:
    """The small record :func:`partial_stats` folds, one per document or quarantine record.

    ``item`` is a document or a quarantine record; ``input`` items are whatever the
    reader emitted, so a record quarantined at read time counts as input too.
    """
    source = item.get("source") or item["corpus"]
    if kind == "input":
        file = item["_origin"][0] if "_origin" in item else item["file"]
        return Summary(kind, item["domain"], source, file=file)
    if kind == "kept":
        return Summary(
            kind, item["domain"], source, chars=item["n_chars"], words=item["n_words"],
            pii=item.get("pii"), boilerplate_lines=item.get("boilerplate_lines", 0),
        )
    if kind == "rejected":
        return Summary(kind, item["domain"], source, reason=item["reason"])
    if item["position"] == -1:
        # A whole file (or path) that could not be read: named in stats and on screen.
        return Summary(kind, item["domain"], source, file=item["file"], reason=item["error"])
    return Summary(kind, item["domain"], source)


def _group() -> dict[str, int]:
    return {"input": 0, "kept": 0, "rejected": 0, "quarantined": 0, "chars": 0, "words": 0}


def partial_stats(kind: str, items: Iterable[dict]) -> dict[str, Any]:
    """The stats of ``items``, all of one kind (as in :func:`summarize`): what goes to
    :class:`StatsCombineFn`, one per batch of documents, so that neither texts nor a
    record per document travel to the combiner."""
    acc = StatsCombineFn().create_accumulator()
    for item in items:
        _add(acc, summarize(kind, item))
    return acc


def _add(acc: dict[str, Any], summary: Summary) -> None:
    kind = summary.kind
    for key, table in ((summary.domain, acc["by_domain"]), (summary.source, acc["by_source"])):
        group = table.setdefault(key, _group())
        group[kind] += 1
        group["chars"] += summary.chars
        group["words"] += summary.words
    if kind == "rejected":
        acc["rejected"][summary.reason] += 1
    else:
        acc[kind] += 1
    if kind == "input":
        acc["files"][summary.file] += 1
    elif kind == "quarantined" and summary.reason:
        acc["unreadable_files"][summary.file] = summary.reason
    elif kind == "kept":
        acc["chars"] += summary.chars
        acc["words"] += summary.words
        acc["pii_redacted"].update(summary.pii or {})
        acc["boilerplate_lines_removed"] += summary.boilerplate_lines


class StatsCombineFn(beam.CombineFn):
    """Merges :func:`partial_stats` into the ``stats.json`` dictionary."""

    def create_accumulator(self) -> dict[str, Any]:
        return {
            "input": 0, "kept": 0, "rejected": Counter(), "quarantined": 0,
            "by_domain": {}, "by_source": {}, "pii_redacted": Counter(),
            "chars": 0, "words": 0, "boilerplate_lines_removed": 0, "files": Counter(),
            "unreadable_files": {},
        }

    def add_input(self, acc, partial: dict[str, Any]):
        return self.merge_accumulators([acc, partial])

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for acc in accumulators:
            for key in ("input", "kept", "quarantined", "chars", "words", "boilerplate_lines_removed"):
                merged[key] += acc[key]
            for key in ("rejected", "pii_redacted", "files", "unreadable_files"):
                merged[key].update(acc[key])
            for table in ("by_domain", "by_source"):
                for name, group in acc[table].items():
                    target = merged[table].setdefault(name, _group())
                    for field, value in group.items():
                        target[field] += value
        return merged

    def extract_output(self, acc):
        return {
            **acc,
            "rejected": dict(sorted(acc["rejected"].items())),
            "pii_redacted": dict(sorted(acc["pii_redacted"].items())),
            "files": dict(sorted(acc["files"].items())),
            "unreadable_files": dict(sorted(acc["unreadable_files"].items())),
        }


def check_accounting(stats: dict) -> None:
    """Raise :class:`AccountingError` unless input == kept + rejected + quarantined,
    overall and for every domain."""
    problems = []
    total = stats["kept"] + sum(stats["rejected"].values()) + stats["quarantined"]
    if stats["input"] != total:
        problems.append(
            f"input {stats['input']} != kept {stats['kept']} + rejected {sum(stats['rejected'].values())}"
            f" + quarantined {stats['quarantined']} = {total}"
        )
    for domain, group in sorted(stats["by_domain"].items()):
        out = group["kept"] + group["rejected"] + group["quarantined"]
        if group["input"] != out:
            problems.append(f"domain {domain}: input {group['input']} != kept + rejected + quarantined = {out}")
    if problems:
        raise AccountingError("record accounting failed: " + "; ".join(problems))


def summary_table(stats: dict, top: int = 8) -> str:
    """The end-of-run table: in, kept, top drop reasons, PII counts, time."""
    n_in = stats["input"] or 1
    lines = [
        f"{'input records':<28}{stats['input']:>12,}",
        f"{'kept':<28}{stats['kept']:>12,}  {100 * stats['kept'] / n_in:5.1f}%",
        f"{'rejected':<28}{sum(stats['rejected'].values()):>12,}  {100 * sum(stats['rejected'].values()) / n_in:5.1f}%",
    ]
    for reason, n in sorted(stats["rejected"].items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
        lines.append(f"  {reason:<26}{n:>12,}  {100 * n / n_in:5.1f}%")
    lines.append(f"{'quarantined':<28}{stats['quarantined']:>12,}  {100 * stats['quarantined'] / n_in:5.1f}%")
    for domain, group in sorted(stats["by_domain"].items()):
        lines.append(f"{'domain ' + domain:<28}{group['input']:>12,} in {group['kept']:>10,} kept")
    if stats["pii_redacted"]:
        lines.append("pii redacted  " + "  ".join(f"{k} {v:,}" for k, v in stats["pii_redacted"].items()))
    lines.append(f"{'kept chars / words':<28}{stats['chars']:>12,} / {stats['words']:,}")
    if "seconds" in stats:
        lines.append(f"{'time':<28}{stats['seconds']:>11.1f}s")
    return "\n".join(lines)
