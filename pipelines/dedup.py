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
    There, each stage has a fixed setup cost and every materialised PCollection is
    encoded and decoded, so both transforms move batches: the documents are grouped
    (``batch_size``) before the barrier and wait as :class:`_DocBatch` objects, pickled
    whole by :class:`_DocBatchCoder`, and the shuffles carry one element per (batch,
    shard) or (batch, band, shard). ``num_shards`` spreads the hash and band groups over
    that many keys: 1 suits one process, a distributed runner wants enough to keep each
    group small.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterable, Iterator, Sequence
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
    hashed_jaccards,
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

    1. **Sign**: each batch of documents yields its :func:`keep_key` list, MinHash
       signatures and shingle hashes (no text).
    2. **Band shuffle**: per batch, for every band and shard, the band hashes and keys go
       to ``GroupByKey`` keyed ``(band, shard)`` with ``shard = band_hash % num_shards``.
       Many band keys per element change nothing about which documents meet, only how
       many elements the runner moves. Each group is sorted by band hash, and every run
       of two or more equal hashes is a colliding bucket.
    3. **Verify and cluster** (one worker): the buckets, plus the signatures and shingle
       hash sets of only the documents that sit in some bucket (picked from stage 1 with
       the bucket members as a side input), are gathered onto one worker by a
       ``CombineGlobally``, as datatrove's cluster stage gathers its duplicate pairs into
       one task. Two documents of a bucket are joined when the Jaccard of their shingle
       hash sets is at least ``threshold``; union-find turns the joins into clusters
       whose root is the kept document. Only bucket members reach this worker (on the
       samples, 1,259 of 19,738 documents).
    4. **Route**: rejected documents get ``reason="duplicate_near"`` and
       ``reason_detail="duplicate of <kept id> (Jaccard 0.91)"``, the Jaccard being to
       the kept document.

    Why candidate pairs are verified, and exactly (measured on the medical + finance
    samples after exact dedup: 19,738 documents, of which ~310 go if exactly the true
    Jaccard >= 0.8 pairs are merged, the README's "removable" count less exact
    duplicates). Templated answers (GARD symptom tables, CancerGov) share long
    boilerplate at Jaccard 0.5-0.8, and LSH makes such pairs candidates often
    (probability 0.21 at J = 0.6, 0.56 at 0.7). Clustering unverified candidates
    chained them into components of ~850 documents and removed 1,146. Verifying by the
    signature estimate >= 0.8 removed 297-493 depending on the seed: the estimates of
    pairs that share a document are correlated through that document's minima, so an
    unlucky seed lifts a whole template family over the bar (seed 1997: 60 GARD symptom
    tables at true Jaccard 0.53-0.62 estimated at 0.71-0.80, all merged). Exact Jaccard
    on the 32-bit shingle hashes, as the README's measurement did, removed 307-309 for
    seeds 1, 2 and 1997, left 0-1 true pairs among the kept, and no rejected document is
    below Jaccard 0.68 to its kept one.

    The signature estimate screens pairs first: only pairs estimated at
    ``threshold - screen`` or more (0.7: 2.6 standard deviations below 0.8 for a
    112-value estimate) get the exact check, so that a bucket of merely similar
    documents costs one numpy comparison per member rather than a set intersection per
    pair. Exact checks are batched per document and skipped for pairs already in one
    cluster. The work is quadratic in a template family's size and runs on the one
    cluster worker (0.2-0.6 s for the samples, by seed): the place to look if a corpus
    carries tens of thousands of near-copies of one template.
    """

    def __init__(
        self,
        shingle_size: int = SHINGLE_SIZE,
        num_perm: int | None = None,
        bands: int = BANDS,
        rows: int = ROWS,
        seed: int = SEED,
        threshold: float = NEAR_THRESHOLD,
        screen: float = 0.1,
        batch_size: int = BATCH_SIZE,
        num_shards: int = 1,
    ) -> None:
        super().__init__()
        self.hasher = MinHasher(shingle_size, num_perm, bands, rows, seed)
        self.threshold = threshold
        self.screen = screen
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
        candidates = signed | "PickCandidates" >> beam.FlatMap(
            _pick_candidates, pvalue.AsSingleton(members, default_value=frozenset())
        )
        rejected = (
            (
                buckets | "TagBuckets" >> beam.Map(lambda b: ("bucket", b)),
                candidates | "TagCandidates" >> beam.Map(lambda c: ("candidates", c)),
            )
            | "Gather" >> beam.Flatten()
            | "Cluster"
            >> beam.CombineGlobally(_Cluster(self.threshold, self.screen)).without_defaults()
            | "Decisions" >> beam.FlatMap(dict.items)
        )
        return _routed(batches, "duplicate_near", rejected)


def near_duplicate_rejections(
    docs: Sequence[Doc],
    hasher: MinHasher,
    threshold: float = NEAR_THRESHOLD,
    screen: float = 0.1,
    batch_size: int = BATCH_SIZE,
) -> dict[str, str]:
    """:class:`NearDedup`'s decisions, ``{rejected id: reason_detail}``, without Beam.

    The same stage functions run one after another in this process: the bare-loop
    benchmark's near dedup, and a check that the Beam graph adds nothing to them.
    """
    signed = [
        _sign_batch(_DocBatch(list(docs[i : i + batch_size])), hasher)
        for i in range(0, len(docs), batch_size)
    ]
    by_band: dict[tuple[int, int], list] = {}
    for batch in signed:
        for key, part in _band_parts(batch, hasher, 1):
            by_band.setdefault(key, []).append(part)
    buckets = [b for element in by_band.items() for b in _colliding_buckets(element)]
    members = frozenset(k for bucket in buckets for k in bucket)
    cluster = _Cluster(threshold, screen)
    acc = cluster.create_accumulator()
    for bucket in buckets:
        cluster.add_input(acc, ("bucket", bucket))
    for batch in signed:
        for candidates in _pick_candidates(batch, members):
            cluster.add_input(acc, ("candidates", candidates))
    return cluster.extract_output(acc)


# keys, signatures, stacked shingle hashes, where each document's run starts
_Signed = tuple[list[Key], np.ndarray, np.ndarray, np.ndarray]


def _sign_batch(batch: _DocBatch, hasher: MinHasher) -> _Signed:
    stacked, starts = hasher.stacked_shingle_hashes([d["text"] for d in batch.docs])
    keys = [keep_key(d) for d in batch.docs]
    return keys, hasher.signatures_of_stacked(stacked, starts), stacked, starts


def _band_parts(
    signed: _Signed, hasher: MinHasher, num_shards: int
) -> Iterator[tuple[tuple[int, int], tuple[np.ndarray, list[Key]]]]:
    keys, sigs, _, _ = signed
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


# keys, signatures, and each document's shingle hashes as an ``np.unique`` array
_Candidates = tuple[list[Key], np.ndarray, list[np.ndarray]]


def _pick_candidates(signed: _Signed, members: frozenset[Key]) -> Iterator[_Candidates]:
    keys, sigs, stacked, starts = signed
    rows = [i for i, k in enumerate(keys) if k in members]
    if rows:
        ends = np.r_[starts[1:], len(stacked)]
        sets = [np.unique(stacked[starts[i] : ends[i]]) for i in rows]
        yield [keys[i] for i in rows], sigs[rows], sets


class _Cluster(beam.CombineFn):
    """Verify bucket pairs and run union-find, on one worker.

    The accumulator is ``(buckets, candidate batches)``; the work happens once, in
    ``extract_output``. The output maps the id of every rejected document to its
    ``reason_detail``.
    """

    def __init__(self, threshold: float, screen: float) -> None:
        self.threshold = threshold
        self.screen = screen

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
        for b, c in accs:
            buckets |= b
            batches.extend(c)
        return buckets, batches

    def extract_output(self, acc) -> dict[str, str]:
        buckets, batches = acc
        if not buckets:
            return {}
        keys = [k for ks, _, _ in batches for k in ks]
        row_of = {k: i for i, k in enumerate(keys)}
        sigs = np.concatenate([s for _, s, _ in batches])
        sets = [st for _, _, group in batches for st in group]
        first, second = self._screened_pairs(buckets, row_of, sigs)
        uf = UnionFind()
        _, starts = np.unique(first, return_index=True)
        for lo, hi in zip(starts.tolist(), np.r_[starts[1:], len(first)].tolist()):
            a = int(first[lo])
            root = uf.find(keys[a])
            partners = [b for b in second[lo:hi].tolist() if uf.find(keys[b]) != root]
            if partners:
                jaccards = hashed_jaccards(sets[a], [sets[b] for b in partners])
                for b in np.asarray(partners)[jaccards >= self.threshold].tolist():
                    uf.union(keys[a], keys[b])
        rejected = {}
        for node, root in uf.roots().items():
            if node != root:
                jaccard = hashed_jaccards(sets[row_of[node]], [sets[row_of[root]]])[0]
                rejected[node[1]] = f"duplicate of {root[1]} (Jaccard {jaccard:.2f})"
        return rejected

    def _screened_pairs(self, buckets, row_of, sigs) -> tuple[np.ndarray, np.ndarray]:
        """Distinct row pairs ``first < second`` sharing a bucket and passing the screen."""
        needed = math.ceil((self.threshold - self.screen) * sigs.shape[1] - 1e-9)
        codes = [np.zeros(0, dtype=np.int64)]
        for bucket in buckets:
            rows = np.array([row_of[k] for k in bucket])
            block = sigs[rows]
            for i in range(len(rows) - 1):
                agree = np.count_nonzero(block[i + 1 :] == block[i], axis=1)
                partners = rows[i + 1 :][agree >= needed]
                low, high = np.minimum(partners, rows[i]), np.maximum(partners, rows[i])
                codes.append(low * len(sigs) + high)
        return np.divmod(np.unique(np.concatenate(codes)), len(sigs))
