"""The files ``dapt corpus clean`` hands to the next stages, and their atomic commit.

Layout of an output directory ``DIR`` (documented in the README):

* ``DIR/kept/part-NNNNN-of-MMMMM.parquet``: :data:`KEPT_SCHEMA`
* ``DIR/rejected/part-...parquet``: :data:`REJECTED_SCHEMA` (kept columns + ``reason``,
  ``reason_detail``)
* ``DIR/quarantine/part-...parquet``: :data:`QUARANTINE_SCHEMA`
* ``DIR/dedup_index.parquet``: :func:`index_schema`, one row per kept document (below)
* ``DIR/stats.json``: written last; its presence means the output is complete.

Rows are spread over shards by a hash of their id and sorted by id inside a shard, so
the same input gives byte-identical files on every run, whatever order the runner
processed documents in. Every kind has ``ceil(input records / docs_per_shard)`` shards
(at least one); a shard that no row hashed to is written with zero rows, so the set of
files is always complete. Everything is first written under ``DIR/.staging/`` and moved
into place only after the accounting check passed.

The dedup index (``DIR/dedup_index.parquet``)
    What a later run needs to reject a document this run kept, without the texts: one
    row per kept document, sorted by ``id``, one file (so the same input gives the same
    bytes). Columns: ``id`` (string), ``corpus`` (string), ``domain`` (string),
    ``content_hash`` (string: the exact dedup key, :func:`~pipelines.steps.minhash.content_hash`),
    ``signature`` (``fixed_size_list<uint32>[num_perm]``: the MinHash signature the near
    dedup computes). The Parquet key-value metadata holds the settings that make
    signatures comparable, as strings: ``shingle_size``, ``num_perm``, ``bands``,
    ``rows``, ``seed`` and ``hash_version``
    (:data:`~pipelines.steps.minhash.HASH_VERSION`). A later run given this file as an
    index part (``run_clean(..., dedup_index=[...])``) refuses it unless all six equal its
    own. With the default 112 permutations it takes about 460 bytes per document (8.5 MB
    for the 18,545 documents kept from the samples; signatures are random numbers and do
    not compress).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from pipelines.steps.base import Doc


class _BeamFileSystems:
    """Beam's ``FileSystems``, imported at first use: importing Beam costs about 0.5 s of
    CPU, which readers of an output that never write (``dapt validate``) need not pay."""

    def __getattr__(self, name: str):
        from apache_beam.io.filesystems import FileSystems as beam_filesystems

        return getattr(beam_filesystems, name)


FileSystems = _BeamFileSystems()

KINDS = ("kept", "rejected", "quarantine")
STAGING = ".staging"
STATS_FILE = "stats.json"

KEPT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("domain", pa.string()),
        ("source", pa.string()),
        ("corpus", pa.string()),
        ("title", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float32()),
        ("n_chars", pa.int64()),
        ("n_words", pa.int64()),
        ("content_hash", pa.string()),
        ("pii", pa.string()),
        ("metadata", pa.string()),
    ]
)
#: How a rejected document's ``reason_detail`` starts when the copy kept is an earlier
#: run's (:mod:`pipelines.dedup`): the validation gate tells a re-delivered document
#: from a drop by it.
KEPT_EARLIER = "kept earlier: "
REJECTED_SCHEMA = KEPT_SCHEMA.append(pa.field("reason", pa.string())).append(pa.field("reason_detail", pa.string()))
QUARANTINE_SCHEMA = pa.schema(
    [
        ("corpus", pa.string()),
        ("domain", pa.string()),
        ("file", pa.string()),
        ("position", pa.int64()),
        ("error", pa.string()),
        ("raw", pa.string()),
    ]
)
SCHEMAS = {"kept": KEPT_SCHEMA, "rejected": REJECTED_SCHEMA, "quarantine": QUARANTINE_SCHEMA}
INDEX_FILE = "dedup_index.parquet"
INDEX_COLUMNS = ("id", "content_hash", "signature")


def index_schema(num_perm: int, settings: dict[str, str]) -> pa.Schema:
    """The dedup index's schema, its metadata being the dedup ``settings``."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("corpus", pa.string()),
            ("domain", pa.string()),
            ("content_hash", pa.string()),
            ("signature", pa.list_(pa.uint32(), num_perm)),
        ],
        metadata=settings,
    )


def _json(value) -> str:
    return json.dumps(value or {}, ensure_ascii=False, sort_keys=True, default=str)


def doc_row(doc: Doc, kind: str) -> dict:
    """A document as a row of ``kind``'s schema (missing fields filled in)."""
    from pipelines.steps.minhash import content_hash

    text = doc["text"]
    row = {
        "id": doc["id"],
        "text": text,
        "domain": doc["domain"],
        "source": doc["source"],
        "corpus": doc["corpus"],
        "title": doc.get("title"),
        "language": doc.get("language"),
        "language_score": doc.get("language_score"),
        "n_chars": doc.get("n_chars", len(text)),
        "n_words": doc.get("n_words", len(text.split())),
        "content_hash": doc.get("content_hash") or content_hash(text),
        "pii": _json(doc.get("pii")),
        "metadata": _json(doc.get("metadata")),
    }
    if kind == "rejected":
        row["reason"] = doc["reason"]
        row["reason_detail"] = doc.get("reason_detail", doc["reason"])
    return row


def row_key(kind: str, row: dict) -> tuple:
    if kind == "quarantine":
        return (row["file"], row["position"], row["error"])
    return (row["id"],)


def num_shards(n_rows: int, rows_per_shard: int) -> int:
    return max(1, math.ceil(n_rows / rows_per_shard))


def shard_of(key: tuple, shards: int) -> int:
    return xxhash.xxh64_intdigest(repr(key).encode()) % shards


def shard_name(index: int, shards: int) -> str:
    return f"part-{index:05d}-of-{shards:05d}.parquet"


def write_shard(directory: str, kind: str, index: int, shards: int, rows: list[dict], compression: str) -> tuple[str, int]:
    """Write one sorted shard through Beam's FileSystems (any filesystem URI)."""
    rows = sorted(rows, key=lambda r: row_key(kind, r))
    table = pa.Table.from_pylist(rows, schema=SCHEMAS[kind])
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=None if compression == "none" else compression)
    path = FileSystems.join(directory, kind, shard_name(index, shards))
    with FileSystems.create(path) as out:
        out.write(buffer.getvalue())
    return path, len(rows)


def write_index(directory: str, table: pa.Table, compression: str) -> str:
    """Write the dedup index, rows sorted by id, as ``directory/dedup_index.parquet``."""
    table = table.sort_by("id").combine_chunks()
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=None if compression == "none" else compression)
    path = FileSystems.join(directory, INDEX_FILE)
    with FileSystems.create(path) as out:
        out.write(buffer.getvalue())
    return path


def index_settings_of(path: str) -> tuple[pa.Schema, dict[str, str]]:
    """The schema and key-value metadata of a dedup index file (any Beam filesystem)."""
    with FileSystems.open(path) as f:
        schema = pq.read_schema(f)
    metadata = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    return schema, metadata


def read_index(path: str, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The columns of a dedup index file that a later run's dedup reads, streamed in
    record batches of ``batch_size`` rows."""
    with FileSystems.open(path) as f:
        yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=list(INDEX_COLUMNS))


def read_table(directory: str, kind: str, columns: list[str] | None = None) -> pa.Table:
    """All shards of one kind as one table (tests, validation, the tokenizer); only
    ``columns``, when given."""
    folder = os.path.join(directory, kind)
    files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))
    if not files:
        table = SCHEMAS[kind].empty_table()
        return table if columns is None else table.select(columns)
    return pa.concat_tables([pq.read_table(os.path.join(folder, f), columns=columns) for f in files])


class LocationError(ValueError):
    """An output location on a filesystem Beam cannot use here."""


def check_location(path: str) -> None:
    """Raise :class:`LocationError` when ``path``'s filesystem is unusable: a scheme Beam
    has no filesystem for, or one whose client library is not installed (s3 without boto3)."""
    try:
        FileSystems.exists(path)
    except (OSError, ValueError) as err:  # BeamIOError is an OSError
        raise LocationError(f"{path}: cannot use this location: {err}") from None


def prepare(output_dir: str) -> str:
    """Invalidate any previous output (and its validation verdict) and return a fresh
    staging directory."""
    stats = FileSystems.join(output_dir, STATS_FILE)
    if FileSystems.exists(stats):
        FileSystems.delete([stats])
    remove_tree(FileSystems.join(output_dir, "validation"))
    staging = FileSystems.join(output_dir, STAGING)
    remove_tree(staging)
    return staging


def commit(output_dir: str, stats: dict, rows_per_shard: int, compression: str) -> None:
    """Move staged shards and the dedup index into place, then write ``stats.json`` last
    (atomic rename)."""
    staging = FileSystems.join(output_dir, STAGING)
    shards = num_shards(stats["input"], rows_per_shard)
    for kind in KINDS:
        present = {os.path.basename(p) for p in _list(FileSystems.join(staging, kind))}
        for index in range(shards):
            if shard_name(index, shards) not in present:
                write_shard(staging, kind, index, shards, [], compression)
    for kind in KINDS:
        target = FileSystems.join(output_dir, kind)
        remove_tree(target)
        sources = _list(FileSystems.join(staging, kind))
        if "://" not in target:
            os.makedirs(target, exist_ok=True)
        FileSystems.rename(sources, [FileSystems.join(target, os.path.basename(s)) for s in sources])
    index = FileSystems.join(output_dir, INDEX_FILE)
    if FileSystems.exists(index):
        FileSystems.delete([index])
    FileSystems.rename([FileSystems.join(staging, INDEX_FILE)], [index])
    tmp = FileSystems.join(staging, STATS_FILE)
    with FileSystems.create(tmp) as out:
        out.write((json.dumps(stats, indent=2, sort_keys=True) + "\n").encode())
    FileSystems.rename([tmp], [FileSystems.join(output_dir, STATS_FILE)])
    remove_tree(staging)


def _list(directory: str) -> list[str]:
    try:
        found = FileSystems.match([FileSystems.join(directory, "*.parquet")])[0].metadata_list
    except Exception:  # noqa: BLE001 - an empty or missing folder is "no shards"
        return []
    return sorted(m.path for m in found)


def remove_tree(path: str) -> None:
    if "://" not in path:
        shutil.rmtree(path, ignore_errors=True)
    elif FileSystems.exists(path):
        FileSystems.delete([path])
