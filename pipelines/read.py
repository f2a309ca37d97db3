"""Reading raw corpora into documents, with every unreadable record quarantined.

The reader emits exactly one output per input record: a document, or a quarantine
record saying which file, which line (JSONL), row (Parquet) or byte offset, and why.
A file that cannot be opened at all, or a path that matches nothing, becomes one
quarantine record with ``position = -1``. These outputs are what ``input`` counts.

Files are listed at pipeline construction through Beam's ``FileSystems``, so any Beam
filesystem URI works (local, ``gs://``, ``s3://``, ``hdfs://``).
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import zlib
from collections.abc import Iterator
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.config import CorpusConfig

QUARANTINE = "quarantine"
_RAW_PREVIEW = 500
_GLOB_CHARS = "*?["
#: A JSON escape of a UTF-16 surrogate (``\ud800``-``\udfff``), the only way a JSON line can
#: give Python a string that UTF-8 (and so Arrow, fastText) cannot hold: an unpaired half.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: The deepest JSON nesting a record may have. Python's recursion limit (1,000 frames) bounds
#: what ``json`` parses and what ``pickle`` writes when Beam hands a document between stages,
#: from inside its own deep stack: a record that parses at 900 levels still crashed the job
#: there. No corpus record plausibly nests beyond a few levels.
MAX_JSON_DEPTH = 100


def quarantine_record(corpus: CorpusConfig, file: str, position: int, error: str, raw: Any = "") -> dict:
    if isinstance(raw, bytes):
        raw = raw[:_RAW_PREVIEW].decode("utf-8", errors="replace")
    else:
        raw = str(raw)[:_RAW_PREVIEW]
    return {
        "corpus": corpus.name,
        "domain": corpus.domain,
        "file": file,
        "position": position,
        "error": error,
        "raw": raw,
    }


def _depth(value: Any) -> int:
    """How deep lists and objects nest in a parsed JSON value (a walk, not a recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def list_files(corpus: CorpusConfig) -> tuple[list[str], list[dict]]:
    """Expand a corpus's paths to files; unmatched or unlistable paths become quarantine
    records."""
    files: list[str] = []
    missing: list[dict] = []
    for path in corpus.paths:
        try:
            found = _match(path)
        except (OSError, ValueError) as err:
            # A scheme Beam has no filesystem for, or one whose client library is missing
            # (BeamIOError is an OSError).
            missing.append(quarantine_record(corpus, path, -1, f"cannot list this path: {err}"))
            continue
        if not found:
            missing.append(quarantine_record(corpus, path, -1, "no file matches this path"))
        files.extend(found)
    return sorted(dict.fromkeys(files)), missing


def _match(path: str) -> list[str]:
    if "://" not in path:
        return _match_local(path)
    FileSystems.get_filesystem(path)  # a scheme with no filesystem here raises, not "no match"
    patterns = [path] if any(c in path for c in _GLOB_CHARS) or FileSystems.exists(path) else [path.rstrip("/") + "/**"]
    try:
        results = FileSystems.match(patterns)
    except Exception:  # noqa: BLE001 - Beam raises BeamIOError for "no match" on some filesystems
        return []
    return [m.path for r in results for m in r.metadata_list if not os.path.basename(m.path).startswith(".")]


def _match_local(path: str) -> list[str]:
    # Python's glob rather than Beam's local match: Beam silently skips names it cannot
    # stat (a dangling link, a file on a lost mount), and those must reach the reader
    # so that the failure is quarantined under the file's name.
    pattern = os.path.join(path, "**") if os.path.isdir(path) else path
    names = glob.glob(pattern, recursive=True)
    return [n for n in names if not os.path.isdir(n) and not os.path.basename(n).startswith(".")]


class CorpusReader:
    """Reads one file of a corpus; yields ``("doc", doc)`` or ``("quarantine", record)``."""

    def __init__(self, corpus: CorpusConfig):
        self.corpus = corpus

    def read(self, path: str) -> Iterator[tuple[str, dict]]:
        fmt = self.corpus.format
        if "://" not in path and os.path.exists(path) and not os.path.isfile(path):
            # Opening a FIFO waits for a writer, and a device such as /dev/zero never ends.
            yield QUARANTINE, quarantine_record(self.corpus, path, -1, "not a regular file (a pipe, socket or device)")
            return
        try:
            if fmt in ("jsonl", "jsonl.gz"):
                yield from self._read_jsonl(path)
            elif fmt == "parquet":
                yield from self._read_parquet(path)
            else:
                yield from self._read_txt(path)
        except OSError as err:
            yield QUARANTINE, quarantine_record(self.corpus, path, -1, f"cannot read file: {err}")

    def _open(self, path: str):
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)

    def _read_jsonl(self, path: str) -> Iterator[tuple[str, dict]]:
        gzipped = self.corpus.format == "jsonl.gz" or path.endswith(".gz")
        line_no = 0
        with self._open(path) as raw:
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            try:
                for line_no, (line, whole) in enumerate(self._lines(stream), start=1):
                    if not whole:
                        yield QUARANTINE, quarantine_record(
                            self.corpus, path, line_no,
                            f"record longer than {self.corpus.max_record_bytes:,} bytes (max_record_bytes)", line,
                        )
                    elif line.strip():
                        yield self._parse_json_line(path, line_no, line)
            except (EOFError, gzip.BadGzipFile, zlib.error) as err:
                # The lines before the damage were already yielded; the rest of the file
                # is one quarantine record so the loss is counted, not silent.
                where = f"after line {line_no}"
                yield QUARANTINE, quarantine_record(
                    self.corpus, path, line_no + 1, f"corrupt or truncated gzip {where}: {err}"
                )

    def _lines(self, stream) -> Iterator[tuple[bytes, bool]]:
        """Each line of ``stream`` and whether it is whole. A line longer than
        ``max_record_bytes`` comes as its first ``max_record_bytes + 1`` bytes and
        ``False``; the rest of it is read past in 1 MiB steps, never held."""
        limit = self.corpus.max_record_bytes
        while line := stream.readline(limit + 1):
            if len(line) <= limit or line.endswith(b"\n"):
                yield line, True
                continue
            rest = line
            while rest and not rest.endswith(b"\n"):
                rest = stream.readline(2**20)
            yield line, False

    def _parse_json_line(self, path: str, line_no: int, line: bytes) -> tuple[str, dict]:
        try:
            decoded = line.decode(self.corpus.encoding)
        except UnicodeDecodeError as err:
            return QUARANTINE, quarantine_record(
                self.corpus, path, line_no, f"invalid {self.corpus.encoding} at byte {err.start}: {err.reason}", line
            )
        try:
            record = json.loads(decoded)
            too_deep = decoded.count("[") + decoded.count("{") > MAX_JSON_DEPTH and _depth(record) > MAX_JSON_DEPTH
        except json.JSONDecodeError as err:
            return QUARANTINE, quarantine_record(self.corpus, path, line_no, f"malformed JSON: {err}", decoded)
        except ValueError as err:
            # Valid JSON Python will not read: an integer of more than 4,300 digits.
            return QUARANTINE, quarantine_record(self.corpus, path, line_no, f"unreadable JSON: {err}", decoded)
        except RecursionError:  # deeper than the parser itself goes
            too_deep = True
        if too_deep:
            return QUARANTINE, quarantine_record(
                self.corpus, path, line_no, f"JSON nested more than {MAX_JSON_DEPTH} levels deep", decoded
            )
        if not isinstance(record, dict):
            return QUARANTINE, quarantine_record(
                self.corpus, path, line_no, f"expected a JSON object, got {type(record).__name__}", decoded
            )
        if _SURROGATE_ESCAPE.search(decoded):
            try:
                json.dumps(record, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                return QUARANTINE, quarantine_record(
                    self.corpus, path, line_no, "a \\u escape gives an unpaired UTF-16 surrogate: not valid Unicode",
                    decoded,
                )
        return self._to_doc(record, path, line_no, decoded)

    def _read_parquet(self, path: str) -> Iterator[tuple[str, dict]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._open(path) as raw:
            try:
                parquet = pq.ParquetFile(raw)
                row = 0
                for batch in parquet.iter_batches(batch_size=1024):
                    for record in batch.to_pylist():
                        row += 1
                        yield self._to_doc(record, path, row, record)
            except (pa.ArrowException, ValueError) as err:
                yield QUARANTINE, quarantine_record(self.corpus, path, -1, f"unreadable Parquet: {err}")

    def _read_txt(self, path: str) -> Iterator[tuple[str, dict]]:
        limit = self.corpus.max_record_bytes
        with self._open(path) as raw:
            data = raw.read(limit + 1)
        if len(data) > limit:
            yield QUARANTINE, quarantine_record(
                self.corpus, path, 0, f"file longer than {limit:,} bytes (max_record_bytes)", data
            )
            return
        try:
            text = data.decode(self.corpus.encoding)
        except UnicodeDecodeError as err:
            yield QUARANTINE, quarantine_record(
                self.corpus, path, 0, f"invalid {self.corpus.encoding} at byte {err.start}: {err.reason}", data
            )
            return
        yield self._to_doc({self.corpus.text_field: text}, path, 0, text)

    def _to_doc(self, record: dict, path: str, position: int, raw: Any) -> tuple[str, dict]:
        corpus = self.corpus
        text = record.get(corpus.text_field)
        if text is None:
            return QUARANTINE, quarantine_record(
                corpus, path, position, f"missing text field {corpus.text_field!r}", raw
            )
        if not isinstance(text, str):
            return QUARANTINE, quarantine_record(
                corpus, path, position,
                f"text field {corpus.text_field!r} is {type(text).__name__}, expected a string", raw,
            )
        if "\x00" in text:
            return QUARANTINE, quarantine_record(
                corpus, path, position, "text contains NUL bytes (binary data, not text)", raw
            )
        doc_id = record.get(corpus.id_field) if corpus.id_field else None
        if doc_id is None or doc_id == "":
            doc_id = f"{corpus.name}:{os.path.basename(path)}:{position}"
        source = record.get(corpus.source_field) if corpus.source_field else None
        title = record.get(corpus.title_field) if corpus.title_field else None
        reserved = {corpus.text_field, corpus.id_field, corpus.source_field, corpus.title_field}
        fields = corpus.metadata_fields if corpus.metadata_fields is not None else record.keys()
        metadata = {k: record[k] for k in fields if k in record and k not in reserved}
        return "doc", {
            "id": str(doc_id),
            "text": text,
            "domain": corpus.domain,
            "source": str(source) if source else corpus.name,
            "corpus": corpus.name,
            "title": str(title) if title else None,
            "metadata": metadata,
            "_origin": (path, position),
        }
