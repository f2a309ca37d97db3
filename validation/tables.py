"""The tables the expectation suites run on, read from the stages' output files.

``dapt corpus clean`` output (README, "Output layout"): ``kept/`` becomes one pandas
frame with three derived columns the suites check, computed with the cleaning stage's
own definitions (one source of truth, never a copy):

* ``text_length``: characters of ``text`` (``None`` when it is not a string), counted by
  Arrow;
* ``leftover_pii``: what :func:`pipelines.steps.pii.find_pii` still finds, added by a
  :func:`validation.pii_scan.scan_pii` (which see);
* ``leftover_markup``: the first :data:`pipelines.steps.markup.LEFTOVER_MARKUP` match
  (``</BODY>``, ``&amp;``), ``None`` when clean. Tickers such as ``<IP>`` are text to it.
  Python searches only the texts that Arrow's RE2 does not rule out
  (:func:`pipelines.steps.re2_superset.may_match`).

``rejected/`` and ``quarantine/`` give the per-corpus drop table, ``stats.json`` the
accounting it must agree with. The tokenizer stage's ``TOKDIR/documents.parquet`` and
``TOKDIR/manifest.json`` (interface agreed with issue 4) give the token tables.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.output import KEPT_EARLIER, STATS_FILE, read_table
from validation.config import DropChecks

SPLITS = ("train", "val")
#: The kept columns the suites read, and so the only ones :func:`read_clean_output` turns
#: into pandas. The schema check reads the others' types from the Arrow schema; their
#: values (``metadata`` and ``title``: 5 of 33 MB on the samples) need not be converted.
KEPT_CHECKED = ("id", "text", "domain", "corpus", "content_hash", "language")


class OutputError(ValueError):
    """The input cannot be validated; the message names the file and why."""

    #: 2 when the path is not a stage output at all (a usage error), 1 when it is one
    #: whose files are broken (the data fails its contract).
    exit_code = 1


class NotAnOutput(OutputError):
    exit_code = 2


@dataclass
class CleanOutput:
    directory: str
    stats: dict
    #: The Arrow schema of the kept shards, as written (pandas would blur its types).
    kept_schema: pa.Schema
    #: The :data:`KEPT_CHECKED` columns of the kept documents that the output has, and the
    #: derived ones.
    kept: pd.DataFrame
    #: ``text`` of ``kept`` as Arrow strings; all null when the column is missing or not
    #: strings (a schema defect that the type check reports; the scans must not crash).
    #: ``None`` once the scans have read it: nothing else does.
    kept_text: pa.ChunkedArray | None
    rejected: pd.DataFrame  # corpus, domain, reason
    quarantine: pd.DataFrame  # corpus, domain
    #: corpus name -> domain, over every corpus that has any record in the output.
    corpora: dict[str, str]


@dataclass
class TokenOutput:
    directory: str
    manifest_path: str
    manifest: dict
    schema: pa.Schema
    documents: pd.DataFrame  # tokens_schema() columns + in_kept


def tokens_schema() -> pa.Schema:
    """The ``documents.parquet`` columns the token checks read (the tokenizer stage's own
    schema, less its shard pointers).

    The tokenizer stage's module is imported only when tokens are validated: it imports
    Beam, about 0.5 s of CPU that validating a clean output alone need not pay.
    """
    from pipelines.tokenize import DOCUMENTS_SCHEMA

    return pa.schema(
        [DOCUMENTS_SCHEMA.field(name) for name in ("id", "domain", "source", "corpus", "split", "n_tokens")]
    )


def read_clean_output(directory: str) -> CleanOutput:
    """Read ``directory``; adds ``text_length`` and ``leftover_markup`` (``leftover_pii``
    comes from :func:`~validation.pii_scan.scan_pii` of ``kept``)."""
    if not os.path.isdir(directory):
        raise NotAnOutput(f"{directory}: no such directory")
    stats_path = os.path.join(directory, STATS_FILE)
    if not os.path.exists(stats_path):
        raise NotAnOutput(
            f"{stats_path}: missing; not a complete `dapt corpus clean` output (stats.json is written last)"
        )
    stats = _read_json(stats_path)
    kept_table = _read_kind(directory, "kept")
    kept = kept_table.select([c for c in KEPT_CHECKED if c in kept_table.column_names]).to_pandas()
    rejected = _read_kind(directory, "rejected", ["corpus", "domain", "reason", "reason_detail"]).to_pandas()
    quarantine = _read_kind(directory, "quarantine", ["corpus", "domain"]).to_pandas()
    text = _text_column(kept_table)
    kept["text_length"] = pc.utf8_length(text).cast(pa.int64()).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    kept["leftover_markup"] = _markup(text)
    corpora: dict[str, str] = {}
    for frame in (kept, rejected, quarantine):
        if {"corpus", "domain"} <= set(frame.columns):
            for corpus, domain in frame[["corpus", "domain"]].drop_duplicates().itertuples(index=False):
                corpora.setdefault(str(corpus), str(domain))
    return CleanOutput(
        directory, stats, kept_table.schema, kept, text, rejected, quarantine, dict(sorted(corpora.items()))
    )


def _text_column(kept: pa.Table) -> pa.ChunkedArray:
    if "text" in kept.column_names:
        column = kept.column("text")
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            return column
    return pa.chunked_array([pa.nulls(kept.num_rows, pa.string())])


def _markup(text: pa.ChunkedArray) -> list[str | None]:
    # Imported here, by the reader only: ``dapt validate`` reads in a forked child while the
    # parent imports GE, and these (ftfy's tables, the superset's regex analysis) would
    # add ~0.1 s before the parent starts.
    from pipelines.steps.markup import LEFTOVER_MARKUP
    from pipelines.steps.re2_superset import may_match, superset

    found: list[str | None] = [None] * len(text)
    # Not pc.indices_nonzero: pyarrow 25 crashes (SIGSEGV) on a column of no chunks, which is
    # what a clean output with no kept document reads as.
    rows = [row for row, hit in enumerate(may_match(text, superset(LEFTOVER_MARKUP)).to_pylist()) if hit]
    for row, value in zip(rows, text.take(pa.array(rows, pa.int64())).to_pylist()):
        match = LEFTOVER_MARKUP.search(value)
        found[row] = match.group()[:60] if match else None
    return found


def drop_table(output: CleanOutput, corpus: str, drops: DropChecks) -> pd.DataFrame:
    """One row per measure of ``corpus``: ``dropped`` (everything not kept),
    ``quarantined``, and ``rejected:<reason>`` for each reason that occurred; each with
    its share of the corpus's input records and the largest share allowed.

    Every bound is an upper bound (a kept fraction of at least k is a dropped fraction
    of at most 1 - k), so one expectation covers the whole table.

    A document that an earlier delivery already kept (an exact duplicate whose detail
    starts with :data:`~pipelines.output.KEPT_EARLIER`) was published then, not dropped
    now: such re-deliveries are left out of the table, so a corpus re-delivered with a
    few additions is judged on its new documents.
    """
    kept = int((output.kept["corpus"] == corpus).sum()) if "corpus" in output.kept else 0
    rejected = output.rejected[output.rejected["corpus"] == corpus]
    redelivered = (rejected["reason"] == "duplicate_exact") & rejected["reason_detail"].str.startswith(KEPT_EARLIER)
    rejected = rejected[~redelivered]
    quarantined = int((output.quarantine["corpus"] == corpus).sum())
    total = kept + len(rejected) + quarantined
    rows = [
        ("dropped", total - kept, round(1 - drops.min_kept_fraction, 12)),
        ("quarantined", quarantined, drops.max_quarantined_fraction),
    ]

    for reason, count in sorted(rejected["reason"].value_counts().items()):
        rows.append((f"rejected:{reason}", int(count), drops.reason_bound(reason)))
    table = pd.DataFrame(rows, columns=["measure", "count", "max_fraction"])
    table.insert(2, "input", total)
    table.insert(3, "fraction", table["count"] / total if total else 0.0)
    return table


def accounting_table(output: CleanOutput) -> pd.DataFrame:
    """Row counts of the files against ``stats.json``: overall, per domain, per reason."""
    stats = output.stats
    kept, rejected, quarantine = output.kept, output.rejected, output.quarantine
    try:
        rows = [
            ("kept", len(kept), stats["kept"]),
            ("quarantined", len(quarantine), stats["quarantined"]),
            ("input", len(kept) + len(rejected) + len(quarantine), stats["input"]),
        ]
        by_reason = rejected["reason"].value_counts()
        for reason in sorted(set(by_reason.index) | set(stats["rejected"])):
            rows.append((f"rejected:{reason}", int(by_reason.get(reason, 0)), stats["rejected"].get(reason, 0)))
        for domain in sorted(set(stats["by_domain"]) | set(output.corpora.values())):
            in_stats = stats["by_domain"].get(domain, {})
            files = {
                "kept": int((kept["domain"] == domain).sum()) if "domain" in kept else 0,
                "rejected": int((rejected["domain"] == domain).sum()),
                "quarantined": int((quarantine["domain"] == domain).sum()),
            }
            for kind, n in files.items():
                rows.append((f"{domain}:{kind}", n, in_stats.get(kind, 0)))
    except (KeyError, TypeError, AttributeError) as err:
        path = os.path.join(output.directory, STATS_FILE)
        raise OutputError(f"{path}: not the stats.json schema ({err!r})") from None
    return pd.DataFrame(rows, columns=["measure", "in_files", "in_stats"])


def read_token_output(directory: str, kept_ids) -> TokenOutput:
    from pipelines.tokenize import DOCUMENTS_FILE, MANIFEST_FILE  # see tokens_schema

    if not os.path.isdir(directory):
        raise NotAnOutput(f"{directory}: no such directory")
    manifest_path = os.path.join(directory, MANIFEST_FILE)
    documents_path = os.path.join(directory, DOCUMENTS_FILE)
    for path in (manifest_path, documents_path):
        if not os.path.exists(path):
            raise NotAnOutput(f"{path}: missing; not a `dapt tokenize` output")
    manifest = _read_json(manifest_path)
    try:
        table = pq.read_table(documents_path)
    except (pa.ArrowException, OSError) as err:
        raise OutputError(f"{documents_path}: cannot read Parquet: {err}") from None
    documents = table.to_pandas()
    documents["in_kept"] = documents["id"].isin(set(kept_ids)) if "id" in documents else False
    return TokenOutput(directory, manifest_path, manifest, table.schema, documents)


def schema_table(files: dict[str, tuple[pa.Schema, pa.Schema]]) -> pd.DataFrame:
    """One row per documented column of each file (``{file: (actual, expected)}``): its
    expected and actual Arrow type, ``missing`` when absent. Extra columns are allowed."""
    rows = []
    for name, (actual, expected) in files.items():
        for field in expected:
            found = str(actual.field(field.name).type) if field.name in actual.names else "missing"
            rows.append((f"{name}/{field.name}", str(field.type), found))
    return pd.DataFrame(rows, columns=["column", "expected", "actual"])


def manifest_table(tokens: TokenOutput) -> pd.DataFrame:
    """Per domain: tokens and documents in ``documents.parquet`` against the manifest's
    ``by_domain``; -1 where one side has no count (domain missing, not a number)."""
    by_domain = tokens.manifest.get("by_domain")
    if not isinstance(by_domain, dict):
        raise OutputError(f"{tokens.manifest_path}: no by_domain mapping")
    docs = tokens.documents
    counted = pd.DataFrame(columns=["sum", "size"])
    if {"domain", "n_tokens"} <= set(docs.columns):
        numeric = docs.assign(n_tokens=pd.to_numeric(docs["n_tokens"], errors="coerce"))
        counted = numeric.groupby("domain")["n_tokens"].agg(["sum", "size"])
    rows = []
    for domain in sorted(set(by_domain) | set(counted.index)):
        entry = by_domain[domain] if isinstance(by_domain.get(domain), dict) else {}
        found = counted.loc[domain] if domain in counted.index else {}
        rows.append((
            domain, _count(found.get("sum")), _count(entry.get("tokens")),
            _count(found.get("size")), _count(entry.get("documents")),
        ))
    return pd.DataFrame(rows, columns=["domain", "tokens", "manifest_tokens", "documents", "manifest_documents"])


def _count(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as err:
        raise OutputError(f"{path}: cannot read JSON: {err}") from None
    if not isinstance(value, dict):
        raise OutputError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _read_kind(directory: str, kind: str, columns: list[str] | None = None) -> pa.Table:
    folder = os.path.join(directory, kind)
    if not os.path.isdir(folder):
        raise NotAnOutput(f"{folder}: missing; not a `dapt corpus clean` output")
    try:
        table = read_table(directory, kind)
    except (pa.ArrowException, OSError) as err:
        raise OutputError(_which_shard(folder, err)) from None
    if columns is not None:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise OutputError(f"{folder}: column {', '.join(missing)} missing")
        table = table.select(columns)
    return table


def _which_shard(folder: str, err: Exception) -> str:
    """Name the shard that broke a read of all shards, and why."""
    first = None
    for name in sorted(f for f in os.listdir(folder) if f.endswith(".parquet")):
        path = os.path.join(folder, name)
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError) as shard_err:
            return f"{path}: cannot read Parquet: {shard_err}"
        if first is None:
            first = (path, schema)
        elif not schema.equals(first[1]):
            diff = [
                f"{field.name} is {field.type}, in {os.path.basename(first[0])} {first[1].field(field.name).type}"
                for field in schema if field.name in first[1].names and first[1].field(field.name).type != field.type
            ]
            return f"{path}: schema differs from {os.path.basename(first[0])}: " + ("; ".join(diff) or "other columns")
    return f"{folder}: cannot read: {err}"
