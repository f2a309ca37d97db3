"""Exact and near-duplicate removal as Beam transforms.

Both transforms take a PCollection of :class:`~pipelines.batch.DocBatch` (batches of
document dicts, see :mod:`pipelines.steps.base`; they read ``id`` and ``text``, add
``content_hash`` (exact) or ``signature`` (near) and pass every other key through
untouched) and return the ``DoOutputsTuple`` of their final ``ParDo``: ``result.kept``
(the main output) and ``result.rejected`` (a tagged output), both PCollections of
batches, none of them empty. A rejected
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

Documents kept by earlier runs (the dedup index)
    Every clean output holds ``dedup_index.parquet``: id, content hash and MinHash
    signature of each kept document (schema in :mod:`pipelines.output`). Given such files
    of earlier runs (:func:`read_index`), both transforms also reject a document of this
    run that duplicates one kept earlier, which is already published and cannot be
    un-kept: it has the :data:`EARLIER` rank, before every document of this run, so it
    wins every group it is in; its own decision is dropped. Exact: the earlier content
    hashes join the hash groups. Near: the earlier band keys join the band groups, and
    only the earlier documents in a bucket with a document of this run reach the cluster
    worker, with their signature. There is no shingle set for an earlier document (the
    index holds no text), so a pair of an earlier document and one of this run is joined
    when the signature estimate of their Jaccard is at least ``threshold`` (pairs of this
    run are still checked exactly); two earlier documents are never joined. The
    ``reason`` stays ``duplicate_exact`` / ``duplicate_near``; the ``reason_detail`` says
    ``kept earlier: <id> (<index part>)`` or ``kept earlier: <id> (<index part>,
    estimated Jaccard 0.91)``. Nothing changes for a run without index parts: the graph
    has no earlier inputs at all.

Shape of both transforms
    Deciding needs every document, so each transform is a barrier: the documents wait,
    materialised, while small records (content hashes, or MinHash band keys) are shuffled
    and the decisions are made; the decisions (``id -> reason_detail`` of the *rejected*
    documents only) then come back as a dict side input to a ``ParDo`` over the waiting
    documents. Texts are never shuffled.

Costs on the in-process DirectRunner
    There, each stage has a fixed setup cost and every materialised PCollection is
    encoded and decoded, so both transforms move batches (:mod:`pipelines.batch`): the
    documents wait as whole batches, one packed pickle each, and the shuffles carry one
    element per (batch, shard) or (batch, band, shard). ``num_shards`` spreads the hash
    and band groups over that many keys: 1 suits one process, a distributed runner wants
    enough to keep each group small.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems

from pipelines import output
from pipelines.batch import DocBatch
from pipelines.config import DOC_BATCH_SIZE, ConfigError
from pipelines.steps.base import Doc
from pipelines.steps.minhash import (
    HASH_VERSION,
    MinHasher,
    UnionFind,
    content_hash,
    estimate_jaccard,
    hashed_jaccards,
)

KEPT = "kept"
REJECTED = "rejected"

# The near-duplicate threshold that the corpora README measures with and the tests check:
# Jaccard >= 0.8 on word 5-gram shingles.
NEAR_THRESHOLD = 0.8

# ``(-len(text), id)`` for a document of this run, ``(EARLIER, id, part)`` for one kept
# by an earlier run (``part``: its index file's position in the list given).
Key = tuple

#: The first item of an earlier-run document's key: below every ``-len(text)``.
EARLIER = -(2**63)


def keep_key(doc: Doc) -> Key:
    """Order of preference inside a duplicate group: smallest wins (longest, then id)."""
    return (-len(doc["text"]), doc["id"])


def _is_earlier(key: Key) -> bool:
    return key[0] == EARLIER


def _kept_by(key: Key, parts: Sequence[str], jaccard: str = "") -> str:
    """The ``reason_detail`` of a document rejected in favour of ``key``."""
    if _is_earlier(key):
        return f"{output.KEPT_EARLIER}{key[1]} ({parts[key[2]]}{', estimated ' + jaccard if jaccard else ''})"
    return f"duplicate of {key[1]}{' (' + jaccard + ')' if jaccard else ''}"


@beam.typehints.with_output_types(DocBatch, **{REJECTED: DocBatch})
class _Route(beam.DoFn):
    """Split each batch into its kept documents (main output) and, as a tagged batch, the
    ones whose id is in the decisions side input."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def process(self, batch: DocBatch, rejected: dict[str, str]) -> Iterator[Any]:
        kept, dropped = [], []
        for doc in batch.docs:
            detail = rejected.get(doc["id"])
            if detail is None:
                kept.append(doc)
            else:
                dropped.append({**doc, "reason": self.reason, "reason_detail": detail})
        if kept:
            yield DocBatch(kept)
        if dropped:
            yield pvalue.TaggedOutput(REJECTED, DocBatch(dropped))


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
    <kept id>"``. With ``earlier`` (:func:`read_index`), the content hashes of documents
    kept by earlier runs join the groups and win them.
    """

    def __init__(self, num_shards: int = 1, earlier: Earlier | None = None) -> None:
        super().__init__()
        self.num_shards = num_shards
        self.earlier = earlier

    def expand(self, batches: beam.PCollection) -> pvalue.DoOutputsTuple:
        hashed = batches | "ContentHash" >> beam.Map(_with_content_hash).with_output_types(DocBatch)
        hash_parts = hashed | "HashParts" >> beam.FlatMap(_hash_parts, self.num_shards)
        parts: Sequence[str] = ()
        if self.earlier is not None:
            parts = self.earlier.parts
            earlier_parts = self.earlier.batches | "EarlierHashParts" >> beam.FlatMap(
                _earlier_hash_parts, self.num_shards
            )
            hash_parts = (hash_parts, earlier_parts) | "WithEarlier" >> beam.Flatten()
        rejected = (
            hash_parts
            | "GroupByHashShard" >> beam.GroupByKey()
            | "ExactRejections" >> beam.FlatMap(_exact_rejections, parts)
        )
        return _routed(hashed, "duplicate_exact", rejected)


def _with_content_hash(batch: DocBatch) -> DocBatch:
    return DocBatch([{**doc, "content_hash": content_hash(doc["text"])} for doc in batch.docs])


def _hash_parts(batch: DocBatch, num_shards: int) -> Iterator[tuple[int, list[tuple[str, Key]]]]:
    return _by_hash_shard(((doc["content_hash"], keep_key(doc)) for doc in batch.docs), num_shards)


def _earlier_hash_parts(batch: _Earlier, num_shards: int) -> Iterator[tuple[int, list[tuple[str, Key]]]]:
    _, _, hashes, _ = batch
    keys, _ = _earlier_keyed(batch)
    return _by_hash_shard(zip(hashes, keys), num_shards)


def _by_hash_shard(
    pairs: Iterable[tuple[str, Key]], num_shards: int
) -> Iterator[tuple[int, list[tuple[str, Key]]]]:
    parts: dict[int, list[tuple[str, Key]]] = {}
    for h, key in pairs:
        parts.setdefault(int(h[:8], 16) % num_shards, []).append((h, key))
    yield from parts.items()


def _exact_rejections(
    element: tuple[int, Iterable[list[tuple[str, Key]]]], parts: Sequence[str]
) -> Iterator[tuple[str, str]]:
    _, shards = element
    pairs = [pair for shard in shards for pair in shard]
    best: dict[str, Key] = {}
    for h, key in pairs:
        if h not in best or key < best[h]:
            best[h] = key
    for h, key in pairs:
        if best[h] != key and not _is_earlier(key):
            yield key[1], _kept_by(best[h], parts)


class NearDedup(beam.PTransform):
    """MinHash-LSH near-duplicate removal; one document kept per cluster.

    Stages (see the module docstring for the batching):

    1. **Sign**: each batch of documents yields its :func:`keep_key` list, MinHash
       signatures and shingle hashes (no text). Each document also keeps its signature
       (``signature``, a ``num_perm`` uint32 array) for the dedup index of the output.
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

    With ``earlier`` (:func:`read_index`), the band keys of documents kept by earlier
    runs join stage 2 and those in a bucket with a document of this run join stage 3
    with their signatures (see the module docstring).

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
        hasher: MinHasher | None = None,
        threshold: float = NEAR_THRESHOLD,
        screen: float = 0.1,
        num_shards: int = 1,
        earlier: Earlier | None = None,
    ) -> None:
        super().__init__()
        self.hasher = hasher or MinHasher()
        self.threshold = threshold
        self.screen = screen
        self.num_shards = num_shards
        self.earlier = earlier

    def expand(self, batches: beam.PCollection) -> pvalue.DoOutputsTuple:
        signing = batches | "Sign" >> beam.ParDo(_Sign(self.hasher)).with_outputs(
            _SIGNED, main="batches"
        )
        signed = signing[_SIGNED]
        band_parts = signed | "BandParts" >> beam.FlatMap(_band_parts, self.hasher, self.num_shards)
        if self.earlier is not None:
            earlier = self.earlier.batches | "EarlierKeys" >> beam.Map(_earlier_keyed)
            band_parts = (
                band_parts,
                earlier | "EarlierBandParts" >> beam.FlatMap(_band_parts, self.hasher, self.num_shards),
            ) | "WithEarlier" >> beam.Flatten()
        buckets = (
            band_parts
            | "GroupByBand" >> beam.GroupByKey()
            | "CollidingBuckets" >> beam.FlatMap(_colliding_buckets)
        )
        members = pvalue.AsSingleton(
            buckets | "BucketMembers" >> beam.CombineGlobally(_MemberSet()).without_defaults(),
            default_value=frozenset(),
        )
        tagged = [
            buckets | "TagBuckets" >> beam.Map(lambda b: ("bucket", b)),
            signed
            | "PickCandidates" >> beam.FlatMap(_pick_candidates, members)
            | "TagCandidates" >> beam.Map(lambda c: ("candidates", c)),
        ]
        parts: Sequence[str] = ()
        if self.earlier is not None:
            parts = self.earlier.parts
            tagged.append(
                earlier
                | "PickEarlier" >> beam.FlatMap(_pick_earlier, members)
                | "TagEarlier" >> beam.Map(lambda c: ("candidates", c))
            )
        rejected = (
            tagged
            | "Gather" >> beam.Flatten()
            | "Cluster"
            >> beam.CombineGlobally(_Cluster(self.threshold, self.screen, parts)).without_defaults()
            | "Decisions" >> beam.FlatMap(dict.items)
        )
        return _routed(signing.batches, "duplicate_near", rejected)


def near_duplicate_rejections(
    docs: Sequence[Doc],
    hasher: MinHasher,
    threshold: float = NEAR_THRESHOLD,
    screen: float = 0.1,
    batch_size: int = DOC_BATCH_SIZE,
) -> dict[str, str]:
    """:class:`NearDedup`'s decisions, ``{rejected id: reason_detail}``, without Beam.

    The same stage functions run one after another in this process: the bare-loop
    benchmark's near dedup, and a check that the Beam graph adds nothing to them. As
    there, each document is left with its ``signature`` (set in place), for the index.
    """
    signed = []
    for i in range(0, len(docs), batch_size):
        batch = DocBatch(list(docs[i : i + batch_size]))
        signed.append(_sign_batch(batch, hasher))
        for doc, signature in zip(batch.docs, signed[-1][1]):
            doc["signature"] = signature
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
_SIGNED = "signed"


def _sign_batch(batch: DocBatch, hasher: MinHasher) -> _Signed:
    stacked, starts = hasher.stacked_shingle_hashes([d["text"] for d in batch.docs])
    keys = [keep_key(d) for d in batch.docs]
    return keys, hasher.signatures_of_stacked(stacked, starts), stacked, starts


@beam.typehints.with_output_types(DocBatch)
class _Sign(beam.DoFn):
    """:func:`_sign_batch`; the batch goes on with each document's signature on it."""

    def __init__(self, hasher: MinHasher) -> None:
        self.hasher = hasher

    def process(self, batch: DocBatch) -> Iterator[Any]:
        signed = _sign_batch(batch, self.hasher)
        yield DocBatch([{**doc, "signature": sig} for doc, sig in zip(batch.docs, signed[1])])
        yield pvalue.TaggedOutput(_SIGNED, signed)


def _band_parts(
    signed: _Signed | tuple[list[Key], np.ndarray], hasher: MinHasher, num_shards: int
) -> Iterator[tuple[tuple[int, int], tuple[np.ndarray, list[Key]]]]:
    keys, sigs = signed[:2]
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
        bucket = tuple(sorted(keys[i] for i in order[lo:hi]))
        # Earlier documents sort first: a bucket whose last is earlier has none of this run.
        if not _is_earlier(bucket[-1]):
            yield bucket


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


# keys, signatures, and each document's shingle hashes as an ``np.unique`` array (None
# for an earlier document: the index holds no text)
_Candidates = tuple[list[Key], np.ndarray, list[np.ndarray | None]]


def _pick_candidates(signed: _Signed, members: frozenset[Key]) -> Iterator[_Candidates]:
    keys, sigs, stacked, starts = signed
    rows = [i for i, k in enumerate(keys) if k in members]
    if rows:
        ends = np.r_[starts[1:], len(stacked)]
        sets = [np.unique(stacked[starts[i] : ends[i]]) for i in rows]
        yield [keys[i] for i in rows], sigs[rows], sets


def _pick_earlier(keyed: tuple[list[Key], np.ndarray], members: frozenset[Key]) -> Iterator[_Candidates]:
    keys, sigs = keyed
    rows = [i for i, k in enumerate(keys) if k in members]
    if rows:
        yield [keys[i] for i in rows], sigs[rows], [None] * len(rows)


class _Cluster(beam.CombineFn):
    """Verify bucket pairs and run union-find, on one worker.

    The accumulator is ``(buckets, candidate batches)``; the work happens once, in
    ``extract_output``. The output maps the id of every rejected document to its
    ``reason_detail``. ``parts`` names the index files of earlier documents' keys.
    """

    def __init__(self, threshold: float, screen: float, parts: Sequence[str] = ()) -> None:
        self.threshold = threshold
        self.screen = screen
        self.parts = parts

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
        if self.parts:
            first, second = self._join_earlier(first, second, keys, sigs, uf)
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
            if _is_earlier(node) or node == root:
                continue
            if _is_earlier(root):
                jaccard = estimate_jaccard(sigs[row_of[node]], sigs[row_of[root]])
            else:
                jaccard = hashed_jaccards(sets[row_of[node]], [sets[row_of[root]]])[0]
            rejected[node[1]] = _kept_by(root, self.parts, f"Jaccard {jaccard:.2f}")
        return rejected

    def _join_earlier(self, first, second, keys, sigs, uf) -> tuple[np.ndarray, np.ndarray]:
        """Join the pairs of an earlier document and one of this run whose signature
        estimate reaches the threshold; return the pairs of this run's documents."""
        earlier = np.fromiter((_is_earlier(k) for k in keys), dtype=bool, count=len(keys))
        across = np.flatnonzero(earlier[first] != earlier[second])
        agree = np.count_nonzero(sigs[first[across]] == sigs[second[across]], axis=1)
        for i in across[agree >= self.threshold * sigs.shape[1] - 1e-9].tolist():
            uf.union(keys[first[i]], keys[second[i]])
        inside = ~earlier[first] & ~earlier[second]
        return first[inside], second[inside]

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


# --- the dedup index: what a run keeps, for later runs -------------------------------

# part position, ids, content hashes, signatures: a batch of one index file's rows
_Earlier = tuple[int, list[str], list[str], np.ndarray]


class Earlier(NamedTuple):
    """Documents kept by earlier runs, read from their index files (:func:`read_index`)."""

    batches: beam.PCollection  # of ``_Earlier``
    parts: tuple[str, ...]  # the index files, as given


class DedupIndexError(ConfigError):
    """An index part that cannot be used: unreadable, not an index, other settings."""


def index_settings(hasher: MinHasher) -> dict[str, str]:
    """The settings an index records and a run checks (see :mod:`pipelines.output`)."""
    return {
        "shingle_size": str(hasher.shingle_size),
        "num_perm": str(hasher.num_perm),
        "bands": str(hasher.bands),
        "rows": str(hasher.rows),
        "seed": str(hasher.seed),
        "hash_version": HASH_VERSION,
    }


def check_index_parts(paths: Sequence[str], hasher: MinHasher, output_dir: str) -> None:
    """Raise :class:`DedupIndexError` naming the first part this run cannot use."""
    own = os.path.abspath(FileSystems.join(output_dir, output.INDEX_FILE))
    settings = index_settings(hasher)
    expected = output.index_schema(hasher.num_perm, settings)
    for path in paths:
        if os.path.abspath(path) == own:
            raise DedupIndexError(
                f"dedup index part {path} is the index of the output folder itself; cleaning into the folder "
                "a part belongs to would replace the documents it lists"
            )
        try:
            schema, found = output.index_settings_of(path)
        except Exception as err:  # noqa: BLE001 - any failure to open or parse is this one error
            raise DedupIndexError(f"dedup index part {path}: cannot read it ({type(err).__name__}: {err})") from None
        if not set(settings) <= set(found):
            raise DedupIndexError(f"dedup index part {path}: not a dedup index (no dedup settings in its metadata)")
        for key, value in settings.items():
            if found[key] != value:
                raise DedupIndexError(
                    f"dedup index part {path}: made with {key}={found[key]}, this run has {key}={value}; "
                    "its documents cannot be compared with this run's (clean with its settings, or without it)"
                )
        wrong = [c for c in output.INDEX_COLUMNS if c not in schema.names or schema.field(c).type != expected.field(c).type]
        if wrong:
            raise DedupIndexError(f"dedup index part {path}: not a dedup index (missing or mistyped: {', '.join(wrong)})")


def read_index(p: beam.Pipeline, paths: Sequence[str], batch_size: int = 4096) -> Earlier:
    """The rows of the index files ``paths``, read once, in batches."""
    parts = tuple(paths)
    batches = (
        p
        | "IndexParts" >> beam.Create(list(enumerate(parts)))
        | "ReadIndex" >> beam.FlatMap(_read_index_part, batch_size)
    )
    return Earlier(batches, parts)


def _read_index_part(task: tuple[int, str], batch_size: int) -> Iterator[_Earlier]:
    part, path = task
    for batch in output.read_index(path, batch_size):
        width = batch.schema.field("signature").type.list_size
        sigs = batch.column("signature").flatten().to_numpy().reshape(batch.num_rows, width)
        yield part, batch.column("id").to_pylist(), batch.column("content_hash").to_pylist(), sigs


def _earlier_keyed(batch: _Earlier) -> tuple[list[Key], np.ndarray]:
    part, ids, _, sigs = batch
    return [(EARLIER, doc_id, part) for doc_id in ids], sigs


def index_table(docs: Sequence[Doc], hasher: MinHasher) -> pa.Table:
    """The dedup index rows of kept documents (schema in :mod:`pipelines.output`).

    :class:`NearDedup` leaves each document's signature on it; without near dedup the
    signatures are computed here (and without exact dedup, the content hashes).
    """
    if docs and all("signature" in d for d in docs):
        sigs = np.stack([d["signature"] for d in docs])
    else:
        sigs = hasher.signatures([d["text"] for d in docs])
    signature = pa.FixedSizeListArray.from_arrays(pa.array(sigs.ravel(), pa.uint32()), hasher.num_perm)
    columns = {
        "id": [d["id"] for d in docs],
        "corpus": [d["corpus"] for d in docs],
        "domain": [d["domain"] for d in docs],
        "content_hash": [d.get("content_hash") or content_hash(d["text"]) for d in docs],
    }
    schema = output.index_schema(hasher.num_perm, index_settings(hasher))
    return pa.Table.from_arrays([*(pa.array(v, pa.string()) for v in columns.values()), signature], schema=schema)
