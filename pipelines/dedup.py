"""Exact and near-duplicate removal as Beam transforms.

Both transforms take a PCollection of document dicts (see :mod:`pipelines.steps.base`;
they read ``id`` and ``text`` and pass every other key through untouched) and return the
``DoOutputsTuple`` of their final ``ParDo``: ``result.kept`` (the main output) and
``result.rejected`` (a tagged output), both PCollections of documents. A rejected
document gets ``reason`` and ``reason_detail``; nothing is dropped silently, so
``kept + rejected == input``.

Which copy is kept
    In every duplicate group the kept document is the one with the smallest
    :func:`keep_key` ``(-len(text), id)``: the longest text, ties broken by ``id``. The rule
    depends on nothing but the documents, so the result is the same for any input order,
    bundling or runner. Document ids are assumed unique (the contract in ``base.py``).

Order in the cleaning job
    ``ExactDedup`` first, then ``NearDedup`` on its ``kept`` output, over all corpora and
    domains of the run together: a duplicate is a duplicate whatever corpus it came from.

Shape of both transforms
    Deciding needs every document, so each transform is a barrier: the documents wait,
    materialised, while small records (content hashes, or MinHash band keys) are shuffled
    and the decisions are made; the decisions (``id -> reason_detail`` of the *rejected*
    documents only) then come back as a dict side input to a ``ParDo`` over the waiting
    documents. Texts are never shuffled.

Costs on the in-process DirectRunner
    Per-element overhead and the coder dominate there, so the documents are batched
    (``batch_size``) before the barrier and wait as :class:`_DocBatch` objects, which the
    runner pickles whole (about half the coder time of encoding the dicts one by one).
    Shuffles carry one element per (batch, shard) or (batch, band, shard). ``num_shards``
    spreads the hash and band groups over that many keys: 1 suits one process, a
    distributed runner wants enough to keep each group small.
"""

from __future__ import annotations

import math
import pickle
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
BATCH_SIZE = 512

Key = tuple[int, str]


def keep_key(doc: Doc) -> Key:
    """Order of preference inside a duplicate group: smallest wins (longest, then id)."""
    return (-len(doc["text"]), doc["id"])


class _DocBatch:
    """Documents moved between stages as one object (see :class:`_DocBatchCoder`)."""

    __slots__ = ("docs",)

    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs


class _DocBatchCoder(beam.coders.Coder):
    """One pickle per batch, and a size estimate that does not encode.

    Beam samples element sizes on every PCollection, fused or not, and always samples the
    first ten elements; the default estimate encodes the element, which for batches of
    whole documents nearly doubled the time spent pickling.
    """

    def encode(self, value: _DocBatch) -> bytes:
        return pickle.dumps(value.docs, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> _DocBatch:
        return _DocBatch(pickle.loads(encoded))

    def estimate_size(self, value: _DocBatch) -> int:
        return sum(len(doc["text"]) for doc in value.docs)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return _DocBatch


beam.coders.registry.register_coder(_DocBatch, _DocBatchCoder)


def _batched(docs: beam.PCollection, batch_size: int) -> beam.PCollection:
    return (
        docs
        | "Batch" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size)
        | "Wrap" >> beam.Map(_DocBatch).with_output_types(_DocBatch)
    )


class _Route(beam.DoFn):
    """Unbatch, rejecting the documents whose id is in the decisions side input."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def process(self, batch: _DocBatch, rejected: dict[str, str]) -> Iterator[Any]:
        for doc in batch.docs:
            detail = rejected.get(doc["id"])
            if detail is None:
                yield doc
            else:
                yield pvalue.TaggedOutput(
                    REJECTED, {**doc, "reason": self.reason, "reason_detail": detail}
                )


def _routed(batches: beam.PCollection, reason: str, rejected: beam.PCollection):
    return batches | "Route" >> beam.ParDo(_Route(reason), pvalue.AsDict(rejected)).with_outputs(
        REJECTED, main=KEPT
    )


class ExactDedup(beam.PTransform):
    """Keep one document per :func:`~pipelines.steps.minhash.content_hash`.

    Every document leaves with ``content_hash`` set. The ``(content_hash, keep_key)``
    pairs, not the documents, are grouped (by ``num_shards`` hash shards, then by hash in
    the reducer); in each hash group the :func:`keep_key` minimum is kept and the others
    are rejected with ``reason="duplicate_exact"`` and ``reason_detail="duplicate of
    <kept id>"``.
    """

    def __init__(self, batch_size: int = BATCH_SIZE, num_shards: int = 1) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_shards = num_shards

    def expand(self, docs: beam.PCollection) -> pvalue.DoOutputsTuple:
        hashed = _batched(docs, self.batch_size) | "ContentHash" >> beam.Map(
            _with_content_hash
        ).with_output_types(_DocBatch)
        rejected = (
            hashed
            | "HashParts" >> beam.FlatMap(_hash_parts, self.num_shards)
            | "GroupByHashShard" >> beam.GroupByKey()
            | "ExactRejections" >> beam.FlatMap(_exact_rejections)
        )
        return _routed(hashed, "duplicate_exact", rejected)


def _with_content_hash(batch: _DocBatch) -> _DocBatch:
    return _DocBatch([{**doc, "content_hash": content_hash(doc["text"])} for doc in batch.docs])


def _hash_parts(batch: _DocBatch, num_shards: int) -> Iterator[tuple[int, list[tuple[str, Key]]]]:
    parts: dict[int, list[tuple[str, Key]]] = {}
    for doc in batch.docs:
        h = doc["content_hash"]
        parts.setdefault(int(h[:8], 16) % num_shards, []).append((h, keep_key(doc)))
    yield from parts.items()


def _exact_rejections(
    element: tuple[int, Iterable[list[tuple[str, Key]]]],
) -> Iterator[tuple[str, str]]:
    _, parts = element
    pairs = [pair for part in parts for pair in part]
    best: dict[str, Key] = {}
    for h, key in pairs:
        if h not in best or key < best[h]:
            best[h] = key
    for h, key in pairs:
        if best[h] != key:
            yield key[1], f"duplicate of {best[h][1]}"


class NearDedup(beam.PTransform):
    """MinHash-LSH near-duplicate removal; one document kept per cluster.

    Stages (see the module docstring for the batching):

    1. **Sign**: each batch of documents yields ``(keys, signatures)``, the
       :func:`keep_key` of every document and its MinHash signature (no text).
    2. **Band shuffle**: per batch, for every band and shard, the band hashes and keys go
       to ``GroupByKey`` keyed ``(band, shard)`` with ``shard = band_hash % num_shards``.
       Many band keys per element change nothing about which documents meet, only how
       many elements the runner moves. Each group is sorted by band hash, and every run
       of two or more equal hashes is a colliding bucket.
    3. **Verify and cluster** (one worker): the buckets, plus the signatures of only the
       documents that sit in some bucket (picked from stage 1 with the bucket members as
       a side input), are gathered onto one worker by a ``CombineGlobally``, as
       datatrove's cluster stage gathers its duplicate pairs into one task. Within a
       bucket, every pair whose estimated Jaccard (share of equal values over all
       ``num_perm``) is at least ``threshold`` is an edge, and union-find turns the edges
       into clusters whose root is the kept document. Only bucket members reach this
       worker: their signatures and edges are small next to the corpus.
    4. **Route**: rejected documents get ``reason="duplicate_near"`` and
       ``reason_detail="duplicate of <kept id> (estimated Jaccard 0.91)"``, the estimate
       being to the kept document.

    Why pairs are verified, measured on the medical + finance samples after exact dedup
    (19,738 documents; 310 removals are justified by true Jaccard >= 0.8, the README's
    "removable" figure): templated answers (GARD, CancerGov) share long boilerplate at
    Jaccard 0.6-0.8, and such pairs become LSH candidates often (probability 0.21 at
    J = 0.6, 0.56 at 0.7). Without verification, connected components chained them into
    clusters of ~850 documents and removed 1,146, most with Jaccard < 0.5 to the kept
    document. Checking each member only against one bucket member left 14% of the true
    pairs unmerged. Checking every pair in a bucket at ``threshold=0.8`` removed 297-493
    (four seeds), left 0.02-0.11% of kept documents in a true pair, and no rejected
    document had Jaccard < 0.5 to its kept one; at 0.85 one seed left 7% in true pairs.
    The estimate reads high on candidates (they were chosen for an equal band), so 0.8
    also admits some pairs at true 0.75-0.8; what over-merging remains is chaining through
    such edges, which is what connected components mean.

    Verification is quadratic in a bucket's size, done as one numpy comparison per member:
    fine for the buckets LSH produces at these settings (the largest on the samples has
    ~500 members), and the place to revisit if a corpus carries tens of thousands of
    copies of one template that exact dedup did not catch.
    """

    def __init__(
        self,
        shingle_size: int = SHINGLE_SIZE,
        num_perm: int | None = None,
        bands: int = BANDS,
        rows: int = ROWS,
        seed: int = SEED,
        threshold: float = NEAR_THRESHOLD,
        batch_size: int = BATCH_SIZE,
        num_shards: int = 1,
    ) -> None:
        super().__init__()
        self.hasher = MinHasher(shingle_size, num_perm, bands, rows, seed)
        self.threshold = threshold
        self.batch_size = batch_size
        self.num_shards = num_shards

    def expand(self, docs: beam.PCollection) -> pvalue.DoOutputsTuple:
        batches = _batched(docs, self.batch_size)
        signed = batches | "Sign" >> beam.Map(_sign_batch, self.hasher)
        buckets = (
            signed
            | "BandParts" >> beam.FlatMap(_band_parts, self.hasher, self.num_shards)
            | "GroupByBand" >> beam.GroupByKey()
            | "CollidingBuckets" >> beam.FlatMap(_colliding_buckets)
        )
        members = buckets | "BucketMembers" >> beam.CombineGlobally(_MemberSet()).without_defaults()
        candidate_sigs = signed | "CandidateSignatures" >> beam.FlatMap(
            _pick_signatures, pvalue.AsSingleton(members, default_value=frozenset())
        )
        rejected = (
            (
                buckets | "TagBuckets" >> beam.Map(lambda b: ("bucket", b)),
                candidate_sigs | "TagSignatures" >> beam.Map(lambda s: ("signatures", s)),
            )
            | "Gather" >> beam.Flatten()
            | "Cluster" >> beam.CombineGlobally(_Cluster(self.threshold)).without_defaults()
            | "Decisions" >> beam.FlatMap(dict.items)
        )
        return _routed(batches, "duplicate_near", rejected)


def _sign_batch(batch: _DocBatch, hasher: MinHasher) -> tuple[list[Key], np.ndarray]:
    return [keep_key(d) for d in batch.docs], hasher.signatures([d["text"] for d in batch.docs])


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
    shared = ends - starts > 1
    for lo, hi in zip(starts[shared], ends[shared]):
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
    """Verify bucket pairs by signature agreement and run union-find, on one worker.

    The accumulator is ``(buckets, signature batches)``; the work happens once, in
    ``extract_output``. The output maps the id of every rejected document to its
    ``reason_detail``.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def create_accumulator(self):
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

    def extract_output(self, acc) -> dict[str, str]:
        buckets, batches = acc
        if not buckets:
            return {}
        row_of = {k: i for i, k in enumerate(k for keys, _ in batches for k in keys)}
        sigs = np.concatenate([s for _, s in batches])
        needed = math.ceil(self.threshold * sigs.shape[1] - 1e-9)
        uf = UnionFind()
        for bucket in sorted(buckets):
            # A bucket whose members are already one cluster cannot add an edge that matters.
            if len({uf.find(k) for k in bucket}) == 1:
                continue
            label = _verified_components(sigs[[row_of[k] for k in bucket]], needed)
            for i, first in enumerate(label):
                if first != i:
                    uf.union(bucket[first], bucket[i])
        rejected = {}
        for node, root in uf.roots().items():
            if node != root:
                jaccard = estimate_jaccard(sigs[row_of[node]], sigs[row_of[root]])
                rejected[node[1]] = f"duplicate of {root[1]} (estimated Jaccard {jaccard:.2f})"
        return rejected


def _verified_components(block: np.ndarray, needed: int) -> list[int]:
    """Components of one bucket's graph of pairs agreeing on ``needed`` values or more.

    Returns, per row, the lowest row of its component. Labels are merged with numpy so
    that a bucket of a few hundred copies costs a few hundred array operations rather
    than tens of thousands of union-find calls.
    """
    label = np.arange(len(block))
    for i in range(len(block) - 1):
        agree = np.count_nonzero(block[i + 1 :] == block[i], axis=1)
        linked = np.flatnonzero(agree >= needed) + i + 1
        if len(linked):
            merged = np.unique(np.r_[label[i], label[linked]])
            if len(merged) > 1:
                label[np.isin(label, merged)] = merged[0]
    return label.tolist()
