"""Finding and streaming the corpus stage's kept documents (``DIR/kept/*.parquet``).

An input is a clean-stage output folder (its ``kept/`` is used), a ``kept/`` folder, one
Parquet file or a glob of them, on the local disk (object-store URIs are not read here:
copy the kept files next to the job). Files are read in record batches, so memory does not
grow with the corpus. The columns are :data:`pipelines.output.KEPT_SCHEMA`'s; a file
without ``id``/``text``/``domain``/``source``/``corpus`` or with a null in them is refused
with an error naming the file (and the row).
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.output import KEPT_SCHEMA

#: The kept columns the tokenizer stage reads.
COLUMNS = ("id", "text", "domain", "source", "corpus")


class KeptError(ValueError):
    """An input that is not readable kept data; the message names the file."""


def _match(path: str) -> list[str]:
    if os.path.isdir(os.path.join(path, "kept")):
        path = os.path.join(path, "kept")
    pattern = os.path.join(path, "*.parquet") if os.path.isdir(path) else path
    return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))


def kept_files(inputs: list[str]) -> list[list[str]]:
    """The Parquet files of each input, in input order; an input that matches none is an error."""
    result = []
    for path in inputs:
        files = _match(path)
        if not files:
            raise KeptError(
                f"{path}: no kept Parquet files here (expected a clean output DIR, DIR/kept or *.parquet)"
            )
        result.append(files)
    return result


def check_schema(path: str, columns: tuple[str, ...] = COLUMNS) -> None:
    """Raise :class:`KeptError` unless ``path`` is Parquet with ``columns`` of their
    :data:`~pipelines.output.KEPT_SCHEMA` types."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        raise KeptError(f"{path}: not a readable Parquet file: {err}") from None
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise KeptError(
            f"{path}: missing column(s) {', '.join(missing)}; is this a kept/ file of `dapt corpus clean`?"
        )
    wrong = [
        f"{c} is {schema.field(c).type}, expected {KEPT_SCHEMA.field(c).type}" for c in columns
        if schema.field(c).type != KEPT_SCHEMA.field(c).type
        and not (pa.types.is_large_string(schema.field(c).type) and pa.types.is_string(KEPT_SCHEMA.field(c).type))
    ]
    if wrong:
        raise KeptError(f"{path}: {', '.join(wrong)}")


def iter_batches(path: str, columns: tuple[str, ...] = COLUMNS, batch_rows: int = 1024) -> Iterator[pa.RecordBatch]:
    """The file's ``columns`` in record batches; a null in them is a :class:`KeptError`
    naming the row (1-based, as the corpus stage's quarantine positions)."""
    check_schema(path, columns)
    row = 0
    # Arrow opens the path itself: positional reads into its own buffers. Through a Python
    # file object every read was a fresh ``bytes`` copied once more (at 16x the sample
    # ~30,000 more page faults, of a run's ~90,000).
    with pq.ParquetFile(path) as f:
        try:
            for batch in f.iter_batches(batch_size=batch_rows, columns=list(columns)):
                for column in columns:
                    if batch.column(column).null_count:
                        first = pc.index(batch.column(column).is_null(), True).as_py()
                        raise KeptError(f"{path}: row {row + first + 1}: {column} is null")
                yield batch
                row += batch.num_rows
        except pa.ArrowException as err:
            raise KeptError(f"{path}: unreadable Parquet after row {row}: {err}") from None


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def describe_inputs(inputs: list[str], files: list[list[str]]) -> list[dict]:
    """Each input with its files' sha256 and a digest over them: what a bundle or token
    manifest records so a later run can tell whether its data changed."""
    described = []
    for path, group in zip(inputs, files):
        entries = [{"path": f, "sha256": file_sha256(f)} for f in group]
        combined = hashlib.sha256("".join(f"{os.path.basename(e['path'])}\0{e['sha256']}\n" for e in entries).encode())
        described.append({"input": path, "sha256": combined.hexdigest(), "files": entries})
    return described
