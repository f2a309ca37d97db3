"""Documents travel through the cleaning job in batches: one Beam element per batch.

The in-process runner pays a fixed cost per element and per transform (decoding,
dispatch through the fused operations, output counters and size sampling), and every
stage boundary (a side-input wait, a shuffle) encodes and decodes each element. With one
element per document that overhead was about 40 % on top of the per-document work on the
samples (``tests/benchmarks/bench_corpus.py``); with one per batch it is paid once per
batch. A batch is a plain list of document dicts (see :mod:`pipelines.steps.base`)
wrapped in :class:`DocBatch`, so that Beam picks :class:`DocBatchCoder`: one compressed
pickle for the whole list (:func:`pack`).

Compressed, because the in-process runner holds every PCollection that waits (for a side
input or a shuffle) in memory, encoded: packed, the documents take a third to a quarter of
the space, and peak RSS on the samples fell from 725 to 553 MB at 1x and from 1,528 to
871 MB at 4x (``tests/benchmarks/RESULTS.md``).

A batch holds documents of one input file (the reader cuts them, ``clean.batch_size`` at
a time), or what a step kept of one incoming batch; batches are never merged, so their
number stays that of the reader's and a step that drops most of a batch simply passes a
short one on. Nothing in the output depends on how documents are batched: every decision
(boilerplate votes, dedup groups, shard assignment, row order in a shard) is a function
of the documents alone.
"""

from __future__ import annotations

import pickle

import apache_beam as beam
import zstandard

from pipelines.config import DOC_BATCH_SIZE
from pipelines.steps.base import Doc


class DocBatch:
    """Documents moved between stages as one element (see :class:`DocBatchCoder`)."""

    __slots__ = ("docs",)

    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs

    def __len__(self) -> int:
        return len(self.docs)


class DocBatchCoder(beam.coders.Coder):
    """One packed pickle per batch (:func:`pack`), and a size estimate that does not encode.

    Beam samples element sizes on every PCollection, fused or not, and always samples the
    first ten elements; the default estimate encodes the element, which for batches of
    whole documents nearly doubled the time spent pickling.
    """

    def encode(self, value: DocBatch) -> bytes:
        return pack(value.docs)

    def decode(self, encoded: bytes) -> DocBatch:
        return DocBatch(unpack(encoded))

    def estimate_size(self, value: DocBatch) -> int:
        return sum(len(doc["text"]) for doc in value.docs)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return DocBatch


beam.coders.registry.register_coder(DocBatch, DocBatchCoder)


def pack(value) -> bytes:
    """``value`` pickled and compressed (zstd level 1, ~3-4x on documents): the form in
    which documents wait in a runner's buffers, which the in-process runner keeps in
    memory."""
    return zstandard.ZstdCompressor(level=1).compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def unpack(packed: bytes):
    return pickle.loads(zstandard.ZstdDecompressor().decompress(packed))


class Batched(beam.PTransform):
    """A PCollection of documents as a PCollection of :class:`DocBatch`, for inputs that
    do not come from the reader (tests, other jobs)."""

    def __init__(self, batch_size: int = DOC_BATCH_SIZE) -> None:
        super().__init__()
        self.batch_size = batch_size

    def expand(self, docs: beam.PCollection) -> beam.PCollection:
        return (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=self.batch_size, max_batch_size=self.batch_size)
            | "Wrap" >> beam.Map(DocBatch).with_output_types(DocBatch)
        )
