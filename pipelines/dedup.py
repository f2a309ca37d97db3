"""Exact and near-duplicate removal as Beam transforms.

Both transforms take a PCollection of document dicts (see :mod:`pipelines.steps.base`;
they read ``id`` and ``text`` and pass every other key through untouched) and return the
``DoOutputsTuple`` of their final ``ParDo``: ``result.kept`` (the main output) and
``result.rejected`` (a tagged output). A rejected document gets ``reason`` and
``reason_detail``; nothing is dropped silently, so ``kept + rejected == input``.

Which copy is kept
    In every duplicate group the kept document is the one with the smallest
    ``(-len(text), id)``: the longest text, ties broken by ``id``. The rule depends on
    nothing but the documents, so the result is the same for any input order, bundling
    or runner. Document ids are assumed unique (the contract in ``base.py``).

Order in the cleaning job
    ``ExactDedup`` first, then ``NearDedup`` on its ``kept`` output, over all corpora and
    domains of the run together: a duplicate is a duplicate whatever corpus it came from.

Costs on the in-process DirectRunner
    Per-element overhead dominates there, so the near-dedup stages move batches: one
    element per ``batch_size`` documents carries their ids, lengths and signatures, and
    the LSH shuffle has one element per (batch, band, shard) holding numpy arrays. Only
    the two routing passes see one element per document. Full texts are never shuffled by
    ``NearDedup``; they stay in the input PCollection and the decisions come back to them
    as a side input keyed by id (a broadcast join, sized by the number of *rejected*
    documents, not by the corpus).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from pipelines.steps.base import Doc
from pipelines.steps.minhash import (
    BANDS,
    ROWS,
    SEED,
    SHINGLE_SIZE,
    MinHasher,
    UnionFind,
    content_hash,
    estimate_jaccard,
)

KEPT = "kept"
REJECTED = "rejected"

# The near-duplicate threshold that the corpora README measures with and the tests check:
# Jaccard >= 0.8 on word 5-gram shingles.
NEAR_THRESHOLD = 0.8

Key = tuple[int, str]


def keep_key(doc: Doc) -> Key:
    """Order of preference inside a duplicate group: smallest wins (longest, then id)."""
    return (-len(doc["text"]), doc["id"])


class ExactDedup(beam.PTransform):
    """Keep one document per :func:`~pipelines.steps.minhash.content_hash`.

    Every document leaves with ``content_hash`` set. Documents are grouped by that hash
    (one ``GroupByKey`` of the documents themselves: the group has to meet anyway, and
    joining decisions back would shuffle the texts a second time); in each group the
    :func:`keep_key` minimum is kept and the others are rejected with
    ``reason="duplicate_exact"`` and ``reason_detail="duplicate of <kept id>"``.
    """

    def expand(self, docs: beam.PCollection) -> pvalue.DoOutputsTuple:
        return (
            docs
            | "KeyByContentHash" >> beam.Map(_keyed_by_hash)
            | "GroupByContentHash" >> beam.GroupByKey()
            | "KeepOnePerHash" >> beam.ParDo(_KeepOnePerHash()).with_outputs(REJECTED, main=KEPT)
        )


def _keyed_by_hash(doc: Doc) -> tuple[str, Doc]:
    h = content_hash(doc["text"])
    return h, {**doc, "content_hash": h}


class _KeepOnePerHash(beam.DoFn):
    def process(self, element: tuple[str, Iterable[Doc]]) -> Iterator[Any]:
        _, group = element
        group = list(group)
        if len(group) == 1:
            yield group[0]
            return
        keeper = min(group, key=keep_key)
        yield keeper
        detail = f"duplicate of {keeper['id']}"
        for doc in group:
            if doc is not keeper:
                yield pvalue.TaggedOutput(
                    REJECTED, {**doc, "reason": "duplicate_exact", "reason_detail": detail}
                )


class NearDedup(beam.PTransform):
    """MinHash-LSH near-duplicate removal; one document kept per cluster.

    Stages (each moves batches, see the module docstring):

    1. **Sign**: documents are batched and each batch yields ``(keys, signatures)``, the
       :func:`keep_key` of every document and its MinHash signature (no text).
    2. **Band shuffle**: per batch, for every band and shard, the band hashes and keys go
       to ``GroupByKey`` keyed ``(band, shard)`` with ``shard = band_hash % num_shards``.
       Grouping many band keys into one element changes nothing about which documents
       meet, only how many elements the runner moves. Each group is sorted by band hash,
       and every run of two or more equal hashes is a colliding bucket.
    3. **Verify and cluster** (one worker): the buckets, plus the signatures of only the
       documents that appear in some bucket (picked from stage 1 with the bucket members
       as a side input), are combined onto one worker by a ``CombineGlobally``, as
       datatrove's cluster stage gathers its duplicate pairs to one task. Within a
       bucket, every pair whose estimated Jaccard (share of equal signature values over
       all ``num_perm``) is at least ``threshold`` becomes an edge, and union-find turns
       the edges into clusters whose root is the kept document. Only documents in some
       bucket reach this worker; the signatures and edges are small next to the corpus.
    4. **Route**: the decisions ``{id: (kept id, estimated Jaccard)}`` are a side input
       of a ``ParDo`` over the documents; a listed document is rejected with
       ``reason="duplicate_near"`` and ``reason_detail="duplicate of <kept id>
       (estimated Jaccard 0.91)"``, Jaccard to the kept document.

    Why pairs are verified: MinHasher's docstring gives the LSH S-curve. Templated
    answers (GARD, CancerGov) in the medical sample share long boilerplate at Jaccard
    0.6-0.8, and pairs there become candidates often (0.21 at J = 0.6, 0.56 at 0.7).
    Without verification, connected components chained them into clusters of ~850
    documents and near-dedup removed 1,146 documents of the two samples, against ~310
    that true Jaccard >= 0.8 justifies; most of them had Jaccard < 0.5 to their kept
    document. Checking every pair in a bucket (not only against one bucket member, which
    left 14% of the true pairs unmerged) at ``threshold=0.8`` removed 297-493 depending
    on the seed, left 0.02-0.11% of kept documents in a true pair, and no rejected
    document had Jaccard < 0.5 to its kept one. The remaining over-merging is chaining
    through real >= 0.8 edges, which is what connected components mean.

    Verification is quadratic in a bucket's size: fine for the buckets of near-identical
    documents that LSH produces at these settings (the largest on the samples is ~500),
    and the one place to revisit if a corpus has tens of thousands of copies of one
    template that exact dedup did not remove.
    """

    def __init__(
        self,
        shingle_size: int = SHINGLE_SIZE,
        num_perm: int | None = None,
        bands: int = BANDS,
        rows: int = ROWS,
        seed: int = SEED,
        threshold: float = NEAR_THRESHOLD,
        batch_size: int = 512,
        num_shards: int = 1,
    ) -> None:
        super().__init__()
        self.hasher = MinHasher(shingle_size, num_perm, bands, rows, seed)
        self.threshold = threshold
        self.batch_size = batch_size
        self.num_shards = num_shards

    def expand(self, docs: beam.PCollection) -> pvalue.DoOutputsTuple:
        hasher = self.hasher
        signed = (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=self.batch_size, max_batch_size=self.batch_size)
            | "Sign" >> beam.Map(_sign_batch, hasher)
        )
        buckets = (
            signed
            | "BandParts" >> beam.FlatMap(_band_parts, hasher, self.num_shards)
            | "GroupByBand" >> beam.GroupByKey()
            | "CollidingBuckets" >> beam.FlatMap(_colliding_buckets)
        )
        members = buckets | "BucketMembers" >> beam.CombineGlobally(_MemberSet())
        candidate_sigs = signed | "CandidateSignatures" >> beam.FlatMap(
            _pick_signatures, pvalue.AsSingleton(members)
        )
        decisions = (
            (
                buckets | "TagBuckets" >> beam.Map(lambda b: ("bucket", b)),
                candidate_sigs | "TagSignatures" >> beam.Map(lambda s: ("signatures", s)),
            )
            | "Gather" >> beam.Flatten()
            | "Cluster" >> beam.CombineGlobally(_Cluster(self.threshold))
        )
        return docs | "RouteNear" >> beam.ParDo(
            _RouteNear(), pvalue.AsSingleton(decisions)
        ).with_outputs(REJECTED, main=KEPT)


def _sign_batch(batch: list[Doc], hasher: MinHasher) -> tuple[list[Key], np.ndarray]:
    return [keep_key(d) for d in batch], hasher.signatures([d["text"] for d in batch])


def _band_parts(
    signed: tuple[list[Key], np.ndarray], hasher: MinHasher, num_shards: int
) -> Iterator[tuple[tuple[int, int], tuple[np.ndarray, list[Key]]]]:
    keys, sigs = signed
    band_hashes = hasher.band_hashes(sigs)
    shards = band_hashes % np.uint64(num_shards)
    for band in range(hasher.bands):
        column = band_hashes[:, band]
        for shard in range(num_shards):
            rows = np.flatnonzero(shards[:, band] == shard)
            if len(rows):
                yield (band, shard), (column[rows], [keys[i] for i in rows])


def _colliding_buckets(
    element: tuple[tuple[int, int], Iterable[tuple[np.ndarray, list[Key]]]],
) -> Iterator[tuple[Key, ...]]:
    _, parts = element
    parts = list(parts)
    hashes = np.concatenate([h for h, _ in parts])
    keys = [k for _, ks in parts for k in ks]
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    for lo, hi in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
        yield tuple(sorted(keys[i] for i in order[lo:hi]))


class _MemberSet(beam.CombineFn):
    """Union of the documents that sit in some colliding bucket."""

    def create_accumulator(self) -> set[Key]:
        return set()

    def add_input(self, acc: set[Key], bucket: tuple[Key, ...]) -> set[Key]:
        acc.update(bucket)
        return acc

    def merge_accumulators(self, accs: Iterable[set[Key]]) -> set[Key]:
        merged: set[Key] = set()
        for acc in accs:
            merged |= acc
        return merged

    def extract_output(self, acc: set[Key]) -> frozenset[Key]:
        return frozenset(acc)


def _pick_signatures(
    signed: tuple[list[Key], np.ndarray], members: frozenset[Key]
) -> Iterator[tuple[list[Key], np.ndarray]]:
    keys, sigs = signed
    rows = [i for i, k in enumerate(keys) if k in members]
    if rows:
        yield [keys[i] for i in rows], sigs[rows]


class _Cluster(beam.CombineFn):
    """Verify bucket pairs by signature agreement and run union-find on one worker.

    The accumulator is ``(buckets, signature batches)``; all the work is in
    ``extract_output``, once everything has arrived. The output maps the id of every
    rejected document to ``(kept id, estimated Jaccard to it)``.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def create_accumulator(self) -> tuple[set[tuple[Key, ...]], list[tuple[list[Key], np.ndarray]]]:
        return set(), []

    def add_input(self, acc, element):
        kind, value = element
        if kind == "bucket":
            acc[0].add(value)
        else:
            acc[1].append(value)
        return acc

    def merge_accumulators(self, accs):
        buckets, batches = set(), []
        for b, s in accs:
            buckets |= b
            batches.extend(s)
        return buckets, batches

    def extract_output(self, acc) -> dict[str, tuple[str, float]]:
        buckets, batches = acc
        if not buckets:
            return {}
        row_of = {k: i for i, k in enumerate(k for keys, _ in batches for k in keys)}
        sigs = np.concatenate([s for _, s in batches])
        needed = math.ceil(self.threshold * sigs.shape[1] - 1e-9)
        uf = UnionFind()
        for bucket in sorted(buckets):
            block = sigs[[row_of[k] for k in bucket]]
            for i in range(len(bucket) - 1):
                agree = np.count_nonzero(block[i + 1 :] == block[i], axis=1)
                for j in np.flatnonzero(agree >= needed):
                    uf.union(bucket[i], bucket[i + 1 + j])
        decisions = {}
        for node, root in uf.roots().items():
            if node != root:
                jaccard = estimate_jaccard(sigs[row_of[node]], sigs[row_of[root]])
                decisions[node[1]] = (root[1], jaccard)
        return decisions


class _RouteNear(beam.DoFn):
    def process(self, doc: Doc, decisions: dict[str, tuple[str, float]]) -> Iterator[Any]:
        decision = decisions.get(doc["id"])
        if decision is None:
            yield doc
            return
        kept_id, jaccard = decision
        yield pvalue.TaggedOutput(
            REJECTED,
            {
                **doc,
                "reason": "duplicate_near",
                "reason_detail": f"duplicate of {kept_id} (estimated Jaccard {jaccard:.2f})",
            },
        )
