"""MinHash helpers and the Beam dedup transforms, on the real medical and finance samples.

Near-duplicates are judged here by this file's own exact similarity join (prefix filtering,
below), never by the module's MinHash: Jaccard >= 0.8 on lowercased whitespace 5-word
shingles, the definition the corpora README measured 67,448 medical pairs with.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections import Counter, defaultdict
from functools import cache

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from conftest import FINANCE, MEDICAL, read_jsonl_gz
from pipelines import output
from pipelines.batch import Batched, DocBatch
from pipelines.config import DOC_BATCH_SIZE
from pipelines.dedup import (
    DedupIndexError,
    ExactDedup,
    NearDedup,
    check_index_parts,
    index_table,
    keep_key,
    near_duplicate_rejections,
    read_index,
)
from pipelines.steps.minhash import (
    MinHasher,
    UnionFind,
    content_hash,
    estimate_jaccard,
    normalize_for_hash,
    shingles,
)

NEAR = 0.8
EXACT_DETAIL = re.compile(r"^duplicate of (\S+)$")
NEAR_DETAIL = re.compile(r"^duplicate of (\S+) \(Jaccard ([01]\.\d\d)\)$")


def _shingle_set(text: str) -> frozenset[int]:
    """Lowercased whitespace 5-word shingles (one of all words if fewer), as Python hashes."""
    words = text.lower().split()
    if len(words) < 5:
        return frozenset([hash(tuple(words))])
    return frozenset(map(hash, zip(words, words[1:], words[2:], words[3:], words[4:])))


def _jaccard(a: frozenset, b: frozenset) -> float:
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def _near_pairs(sets: list[frozenset], t: float = NEAR) -> set[tuple[int, int]]:
    """Every pair with Jaccard >= t, exactly, by prefix filtering.

    Order each set's shingles rarest first (ties by value); two sets with Jaccard >= t
    share a shingle among the first ``n - ceil(t * n) + 1`` of either (Chaudhuri et al.
    2006, Bayardo et al. 2007), so only documents sharing a prefix shingle, and whose
    sizes allow it, are candidates. Candidates are then checked with their true Jaccard.
    """
    n_docs = len(sets)
    sizes = np.fromiter(map(len, sets), dtype=np.int64, count=n_docs)
    flat = np.fromiter(itertools.chain.from_iterable(sets), dtype=np.int64, count=int(sizes.sum()))
    doc = np.repeat(np.arange(n_docs), sizes)
    tokens, token_of, df = np.unique(flat, return_inverse=True, return_counts=True)
    rank = np.empty(len(tokens), dtype=np.int64)
    rank[np.lexsort((tokens, df))] = np.arange(len(tokens))
    order = np.lexsort((rank[token_of], doc))
    position = np.arange(len(flat)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    prefix_len = sizes - np.ceil(t * sizes - 1e-9).astype(np.int64) + 1
    in_prefix = position < prefix_len[doc]
    by_token = np.lexsort((doc[order][in_prefix], token_of[order][in_prefix]))
    p_doc, p_tok = doc[order][in_prefix][by_token], token_of[order][in_prefix][by_token]
    starts = np.flatnonzero(np.r_[True, p_tok[1:] != p_tok[:-1]])
    ends = np.r_[starts[1:], len(p_tok)]
    codes = [np.zeros(0, dtype=np.int64)]
    for lo, hi in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
        upper = np.triu_indices(hi - lo, 1)
        a, b = p_doc[lo:hi][upper[0]], p_doc[lo:hi][upper[1]]
        fits = np.minimum(sizes[a], sizes[b]) >= t * np.maximum(sizes[a], sizes[b]) - 1e-9
        codes.append(a[fits] * n_docs + b[fits])
    pairs = (divmod(int(c), n_docs) for c in np.unique(np.concatenate(codes)))
    return {(a, b) for a, b in pairs if _jaccard(sets[a], sets[b]) >= t - 1e-12}


# --- pure helpers -------------------------------------------------------------------


def test_normalize_and_content_hash():
    assert normalize_for_hash("  The\tCAT\n\n sat ") == "the cat sat"
    assert content_hash("The\tCAT\n\n sat") == hashlib.sha256(b"the cat sat").hexdigest()
    assert content_hash("the cat sat") == content_hash(" THE  cat\r\nSAT ")
    assert content_hash("the cat sat") != content_hash("the cat sat.")


def test_shingles_are_lowercased_word_5grams():
    assert shingles("A b C d e F") == {"a b c d e", "b c d e f"}
    assert shingles("Too  short\ttext") == {"too short text"}
    assert shingles("") == {""}


def test_shingle_hashes_one_per_shingle_without_collisions(medical_docs):
    hasher = MinHasher()
    for doc in medical_docs[:2000]:
        words = doc["text"].lower().split()
        hashes = hasher.shingle_hashes(doc["text"])
        assert len(hashes) == max(1, len(words) - 4)
        assert len(set(hashes.tolist())) == len(shingles(doc["text"]))


def test_signatures_deterministic_and_batch_independent(medical_docs, finance_docs):
    texts = [d["text"] for d in medical_docs[:300] + finance_docs[:300]] + ["", "one", "a b c d"]
    a, b = MinHasher(seed=7), MinHasher(seed=7)
    batch = a.signatures(texts)
    assert batch.shape == (len(texts), 112) and batch.dtype == np.uint32
    assert np.array_equal(batch, b.signatures(texts))
    order = list(range(len(texts)))
    random.Random(0).shuffle(order)
    assert np.array_equal(b.signatures([texts[i] for i in order]), batch[order])
    for i in (0, 1, 299, 300, len(texts) - 3, len(texts) - 1):
        assert np.array_equal(a.signature(texts[i]), batch[i])
    assert not np.array_equal(MinHasher(seed=8).signatures(texts[:5]), batch[:5])


def test_lsh_defaults_and_threshold_curve():
    h = MinHasher()
    assert (h.shingle_size, h.bands, h.rows, h.num_perm) == (5, 14, 8, 112)
    assert h.threshold == pytest.approx((1 / 14) ** (1 / 8)) and 0.71 < h.threshold < 0.73
    probs = [h.candidate_probability(j) for j in (0.3, 0.5, 0.7, 0.8, 0.9)]
    assert probs == sorted(probs)
    assert probs[0] < 0.001 and probs[1] < 0.06 and probs[3] > 0.9 and probs[4] > 0.999
    with pytest.raises(ValueError):
        MinHasher(num_perm=100, bands=14, rows=8)


def test_estimated_jaccard_tracks_true_jaccard(medical_docs):
    """Real texts with a share of words replaced: the estimate is unbiased within noise."""
    rng = random.Random(1)
    long_texts = [d["text"] for d in medical_docs if len(d["text"].split()) > 300][:120]
    pairs = []
    for text in long_texts:
        words = text.split()
        edited = list(words)
        for i in rng.sample(range(len(words)), int(len(words) * rng.uniform(0.0, 0.15))):
            edited[i] = f"zz{rng.random()}"
        pairs.append((text, " ".join(edited)))
    hasher = MinHasher()
    sigs = hasher.signatures([t for pair in pairs for t in pair])
    true = np.array([_jaccard(_shingle_set(a), _shingle_set(b)) for a, b in pairs])
    est = np.array([estimate_jaccard(sigs[2 * i], sigs[2 * i + 1]) for i in range(len(pairs))])
    assert true.min() < 0.5 and true.max() > 0.95
    err = est - true
    # One estimate from 112 values has sd sqrt(J(1-J)/112) <= 0.047.
    assert abs(err.mean()) < 0.015
    assert np.abs(err).mean() < 0.04
    assert np.abs(err).max() < 0.15
    unrelated = hasher.signatures([long_texts[0], long_texts[1]])
    assert estimate_jaccard(unrelated[0], unrelated[1]) < 0.05


def test_band_keys():
    h = MinHasher()
    sig = h.signature("the quick brown fox jumps over the lazy dog again and again")
    keys = h.band_keys(sig)
    assert [band for band, _ in keys] == list(range(14))
    assert keys == h.band_keys(sig.copy())
    changed = sig.copy()
    changed[3 * 8 + 2] ^= 1  # one value of band 3
    diff = [i for (i, k), (_, k2) in zip(keys, h.band_keys(changed)) if k != k2]
    assert diff == [3]


def connected_components(edges) -> dict:
    uf = UnionFind()
    for a, b in edges:
        uf.union(a, b)
    return uf.roots()


def test_union_find_roots_are_minimal_and_order_independent():
    edges = [(5, 3), (3, 9), (1, 2), (7, 7), (2, 8), (9, 4)]
    roots = connected_components(edges)
    assert roots == {5: 3, 3: 3, 9: 3, 4: 3, 1: 1, 2: 1, 8: 1, 7: 7}
    rng = random.Random(3)
    for _ in range(20):
        shuffled = [(b, a) if rng.random() < 0.5 else (a, b) for a, b in edges]
        rng.shuffle(shuffled)
        assert connected_components(shuffled) == roots
    uf = UnionFind()
    uf.union((-10, "b"), (-12, "z"))
    uf.union((-10, "a"), (-10, "b"))
    assert set(uf.roots().values()) == {(-12, "z")}


# --- the Beam transforms on the real samples -----------------------------------------------

_COLLECTED: dict[str, list[dict]] = defaultdict(list)


class _Collect(beam.DoFn):
    """Sink into this module's memory: the in-process FnApiRunner shares the interpreter."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def process(self, batch: DocBatch):
        assert batch.docs, "the transforms pass on no empty batch"
        _COLLECTED[self.tag].extend(batch.docs)


def _run_small(docs: list[dict], index: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    _COLLECTED.clear()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        earlier = read_index(p, index) if index else None
        batches = p | beam.Create(docs or [{}]) | beam.Filter(bool) | Batched(batch_size=4)
        exact = batches | "Exact" >> ExactDedup(earlier=earlier)
        near = exact.kept | "Near" >> NearDedup(earlier=earlier)
        exact.rejected | "CollectExact" >> beam.ParDo(_Collect("exact"))
        near.rejected | "CollectNear" >> beam.ParDo(_Collect("near"))
        near.kept | "CollectKept" >> beam.ParDo(_Collect("kept"))
    return {
        tag: sorted((d["id"], d.get("reason_detail")) for d in _COLLECTED[tag])
        for tag in ("exact", "near", "kept")
    }


def test_small_inputs_edge_cases():
    assert _run_small([]) == {"exact": [], "near": [], "kept": []}
    base = " ".join(f"w{i}" for i in range(40))
    docs = [
        {"id": "a", "text": base},
        {"id": "b", "text": base.upper() + "  "},
        {"id": "c", "text": base + " one more"},
        {"id": "d", "text": ""},
        {"id": "e", "text": " \n"},
        {"id": "f", "text": "short"},
    ]
    assert _run_small(docs) == {
        "exact": [("a", "duplicate of b"), ("d", "duplicate of e")],
        "near": [("b", "duplicate of c (Jaccard 0.95)")],
        "kept": [("c", None), ("e", None), ("f", None)],
    }


def test_verification_keeps_colliding_dissimilar_texts_apart():
    """With one-value bands every pair here collides (true Jaccard 0.52-0.76), and two
    pairs estimate 13/16 >= 0.8; only the exact check keeps all six apart. At 0.95 no
    pair even passes the screen, though the buckets exist."""
    base = " ".join(f"w{i}" for i in range(40))
    similar = [{"id": str(i), "text": base[: 60 + 4 * i] + " tail " * i} for i in range(6)]
    hasher = MinHasher(num_perm=16, bands=16, rows=1)
    sigs = hasher.signatures([d["text"] for d in similar])
    assert max(estimate_jaccard(sigs[0], sigs[1]), estimate_jaccard(sigs[2], sigs[3])) >= NEAR
    for threshold in (NEAR, 0.95):
        assert near_duplicate_rejections(similar, hasher, threshold=threshold, screen=0.0) == {}
    near_copy = similar + [{"id": "copy", "text": similar[5]["text"] + " end"}]
    expected = {"5": "duplicate of copy (Jaccard 0.96)"}
    assert near_duplicate_rejections(near_copy, hasher, screen=0.0) == expected


# --- documents kept by earlier runs (the dedup index) -------------------------------


def _index_part(folder, docs: list[dict], hasher: MinHasher | None = None) -> str:
    """An index file listing ``docs`` as kept, written as a clean run writes it."""
    rows = [{"corpus": "c", "domain": "d", **d} for d in docs]
    return output.write_index(str(folder), index_table(rows, hasher or MinHasher()), "zstd")


def test_earlier_documents_win_every_group_they_are_in(tmp_path):
    base = " ".join(f"w{i}" for i in range(40))
    other = " ".join(f"v{i}" for i in range(40))
    part = _index_part(tmp_path / "run1", [{"id": "old", "text": base}, {"id": "reused", "text": other}])
    spare = _index_part(tmp_path / "run0", [{"id": "older", "text": base.upper()}])
    longer = base + " one more"
    docs = [
        {"id": "copy", "text": base.upper() + "  "},  # the same normalised text as "old"
        {"id": "longer", "text": longer},  # in-run, the longer one would win
        {"id": "fresh", "text": " ".join(f"u{i}" for i in range(40))},
        {"id": "reused", "text": " ".join(f"x{i}" for i in range(40))},  # an earlier id, new content
        {"id": "short", "text": "short"},
    ]
    hasher = MinHasher()
    estimate = estimate_jaccard(*hasher.signatures([longer, base]))
    assert _run_small(docs, (part,)) == {
        "exact": [("copy", f"kept earlier: old ({part})")],
        "near": [("longer", f"kept earlier: old ({part}, estimated Jaccard {estimate:.2f})")],
        "kept": [("fresh", None), ("reused", None), ("short", None)],
    }
    # Two parts list the same text: the first in (EARLIER, id, part) order names it.
    both = _run_small(docs[:1], (part, spare))
    assert both["exact"] == [("copy", f"kept earlier: old ({part})")]
    # Earlier documents are never rejected, nor joined to each other, nor output.
    assert _run_small([], (part, spare)) == {"exact": [], "near": [], "kept": []}


def test_earlier_near_duplicate_is_judged_by_the_signature_estimate(tmp_path):
    """No shingle set is kept for an earlier document: the pair passes when the estimate
    does. With one-value bands, the colliding pairs of the verification test above whose
    estimate is >= 0.8 are joined across runs, the others are not."""
    base = " ".join(f"w{i}" for i in range(40))
    similar = [{"id": str(i), "text": base[: 60 + 4 * i] + " tail " * i} for i in range(6)]
    hasher = MinHasher(num_perm=16, bands=16, rows=1)
    sigs = hasher.signatures([d["text"] for d in similar])
    part = _index_part(tmp_path, similar[:1], hasher)
    _COLLECTED.clear()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        earlier = read_index(p, (part,))
        near = p | beam.Create(similar[1:]) | Batched() | NearDedup(hasher, screen=0.0, earlier=earlier)
        near.rejected | "CollectNear" >> beam.ParDo(_Collect("near"))
    joined = {d["id"] for d in _COLLECTED["near"]}
    expected = {str(i) for i in range(1, 6) if estimate_jaccard(sigs[0], sigs[i]) >= NEAR}
    assert expected and joined == expected


def test_index_rows_sorted_with_signatures_and_settings(tmp_path, medical_docs):
    docs = [dict(d, corpus="medical", domain="medical") for d in medical_docs[:50]]
    random.Random(5).shuffle(docs)
    hasher = MinHasher(seed=3)
    path = output.write_index(str(tmp_path), index_table(docs, hasher), "zstd")
    table = pq.read_table(path)
    by_id = sorted(docs, key=lambda d: d["id"])
    assert table.column("id").to_pylist() == [d["id"] for d in by_id]
    assert table.column("content_hash").to_pylist() == [content_hash(d["text"]) for d in by_id]
    sigs = np.array(table.column("signature").to_pylist(), dtype=np.uint32)
    assert np.array_equal(sigs, hasher.signatures([d["text"] for d in by_id]))
    assert table.schema.field("signature").type == pa.list_(pa.uint32(), 112)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items() if not k.startswith(b"ARROW")}
    assert {k: meta[k] for k in ("shingle_size", "num_perm", "bands", "rows", "seed")} == {
        "shingle_size": "5", "num_perm": "112", "bands": "14", "rows": "8", "seed": "3"}
    assert meta["hash_version"].startswith("dapt-dedup-1")
    # Signatures left on the documents by near dedup are used as they are.
    signed = [dict(d, signature=s) for d, s in zip(by_id, sigs)]
    assert index_table(signed, hasher).equals(index_table(by_id, hasher))


def test_unusable_index_parts_are_one_clear_error(tmp_path):
    hasher = MinHasher()
    good = _index_part(tmp_path / "good", [{"id": "a", "text": "some text here"}])
    check_index_parts([good], hasher, str(tmp_path / "out"))
    (tmp_path / "junk.parquet").write_text("not parquet")
    kept_shard, _ = output.write_shard(str(tmp_path), "kept", 0, 1, [], "zstd")
    cases = {
        str(tmp_path / "missing.parquet"): "cannot read it",
        str(tmp_path / "junk.parquet"): "cannot read it",
        kept_shard: "not a dedup index (no dedup settings in its metadata)",
        _index_part(tmp_path / "seed", [], MinHasher(seed=2)): "made with seed=2, this run has seed=1",
        _index_part(tmp_path / "perm", [], MinHasher(num_perm=128)): "made with num_perm=128, this run has num_perm=112",
        str(tmp_path / "out" / "dedup_index.parquet"): "is the index of the output folder itself",
    }
    for path, message in cases.items():
        with pytest.raises(DedupIndexError) as err:
            check_index_parts([good, path], hasher, str(tmp_path / "out"))
        assert message in str(err.value) and path in str(err.value) and "\n" not in str(err.value)


@cache
def _samples() -> tuple[dict, ...]:
    return tuple(read_jsonl_gz(MEDICAL) + read_jsonl_gz(FINANCE))


def _shuffled_samples(seed: int) -> list[dict]:
    docs = [dict(d) for d in _samples()]
    if seed:
        random.Random(seed).shuffle(docs)
    return docs


def _run_dedup(seed: int, batch_size: int = DOC_BATCH_SIZE, **options) -> dict[str, list[dict]]:
    """ExactDedup then NearDedup on both samples, on the in-process FnApiRunner.

    The runner is named outright: ``runner="DirectRunner"`` would first try to download
    Prism. The documents are produced inside the pipeline (``beam.Create`` of 20k
    documents would pickle and compress them into the pipeline proto).
    """
    _COLLECTED.clear()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        docs = p | beam.Create([seed]) | beam.FlatMap(_shuffled_samples)
        exact = docs | Batched(batch_size) | "Exact" >> ExactDedup(**options)
        near = exact.kept | "Near" >> NearDedup(**options)
        exact.rejected | "CollectExact" >> beam.ParDo(_Collect("exact"))
        near.rejected | "CollectNear" >> beam.ParDo(_Collect("near"))
        near.kept | "CollectKept" >> beam.ParDo(_Collect("kept"))
    return {tag: list(_COLLECTED[tag]) for tag in ("exact", "near", "kept")}


@pytest.fixture(scope="module")
def dedup_result():
    return _run_dedup(0)


def test_every_document_accounted_for_and_passed_through(dedup_result):
    inputs = {d["id"]: d for d in _samples()}
    out = [d for docs in dedup_result.values() for d in docs]
    assert len(out) == len(inputs) == 20_281
    assert {d["id"] for d in out} == set(inputs)
    for doc in out:
        original = inputs[doc["id"]]
        assert doc["content_hash"] == content_hash(original["text"])
        assert {k: v for k, v in doc.items() if k in original} == original
    added = {k for d in dedup_result["kept"] for k in d} - {k for d in inputs.values() for k in d}
    assert added == {"content_hash", "signature"}
    some = dedup_result["kept"][:100]
    assert np.array_equal(np.stack([d["signature"] for d in some]), MinHasher().signatures([d["text"] for d in some]))


def test_no_two_kept_documents_share_a_normalized_text(dedup_result):
    keys = Counter(normalize_for_hash(d["text"]) for d in dedup_result["kept"])
    assert keys.most_common(1)[0][1] == 1


def test_rejected_point_at_a_kept_representative(dedup_result):
    kept = {d["id"]: d for d in dedup_result["kept"]}
    exact_kept = kept | {d["id"]: d for d in dedup_result["near"]}
    for doc in dedup_result["exact"]:
        assert doc["reason"] == "duplicate_exact"
        rep = exact_kept[EXACT_DETAIL.match(doc["reason_detail"]).group(1)]
        assert rep["content_hash"] == doc["content_hash"]
        assert keep_key(rep) < keep_key(doc)
    for doc in dedup_result["near"]:
        assert doc["reason"] == "duplicate_near"
        rep = kept[NEAR_DETAIL.match(doc["reason_detail"]).group(1)]
        assert keep_key(rep) < keep_key(doc)


def test_beam_graph_matches_the_in_process_stages(dedup_result):
    """NearDedup decides exactly what its stage functions decide run in one process."""
    survivors = [d for tag in ("kept", "near") for d in dedup_result[tag]]
    expected = near_duplicate_rejections(survivors, MinHasher())
    assert {d["id"]: d["reason_detail"] for d in dedup_result["near"]} == expected


def test_own_near_duplicate_join_reproduces_the_readme(medical_docs):
    """The checker below finds the README's 67,448 medical pairs, so its zero can be trusted."""
    assert len(_near_pairs([_shingle_set(d["text"]) for d in medical_docs])) == 67_448


def test_near_duplicates_left_among_kept_under_half_a_percent(dedup_result):
    kept = dedup_result["kept"]
    pairs = _near_pairs([_shingle_set(d["text"]) for d in kept])
    assert len(pairs) < 0.005 * len(kept), f"{len(pairs)} near-duplicate pairs in {len(kept)} kept"


def test_near_dedup_does_not_merge_unrelated_documents(dedup_result):
    """Removals match the README's count and each resembles what it was merged into.

    The README's "removable" (one kept per cluster of true J >= 0.8 pairs, exact
    duplicates included) is 7.13% of medical and 1.72% of finance: 853 documents.
    """
    removed = len(dedup_result["exact"]) + len(dedup_result["near"])
    assert 0.95 * 853 < removed < 1.05 * 853
    kept = {d["id"]: d for d in dedup_result["kept"]}
    for doc in dedup_result["near"]:
        rep_id, reported = NEAR_DETAIL.match(doc["reason_detail"]).groups()
        true = _jaccard(_shingle_set(doc["text"]), _shingle_set(kept[rep_id]["text"]))
        # Chains A~B~C put C at Jaccard < 0.8 to A; far below would be a false merge.
        assert true >= 0.6, (doc["id"], rep_id, true)
        assert abs(float(reported) - true) <= 0.006, (doc["id"], reported, true)


def test_largest_exact_group_keeps_exactly_one(dedup_result):
    """The README's 348 copies of one GHR answer leave one document standing.

    Exact dedup keeps one copy; near dedup may then fold that copy into a longer near
    variant (GARD answers are the same paragraph after the question), which is kept.
    """
    groups = Counter(content_hash(d["text"]) for d in _samples())
    ghr, size = groups.most_common(1)[0]
    assert size == 348
    text = next(d["text"] for d in _samples() if content_hash(d["text"]) == ghr)
    assert normalize_for_hash(text).startswith("this condition is inherited in an autosomal")
    survivors = [d for t in ("kept", "near") for d in dedup_result[t] if d["content_hash"] == ghr]
    assert len(survivors) == 1
    copies = [d for d in dedup_result["exact"] if d["content_hash"] == ghr]
    assert len(copies) == size - 1
    assert {EXACT_DETAIL.match(d["reason_detail"]).group(1) for d in copies} == {survivors[0]["id"]}
    kept = {d["id"]: d for d in dedup_result["kept"]}
    if survivors[0]["id"] not in kept:
        rep = kept[NEAR_DETAIL.match(survivors[0]["reason_detail"]).group(1)]
        assert _jaccard(_shingle_set(rep["text"]), _shingle_set(text)) >= NEAR


def test_result_does_not_depend_on_input_order_batching_or_shards(dedup_result):
    again = _run_dedup(11, batch_size=97, num_shards=3)
    for tag in ("exact", "near", "kept"):
        assert {d["id"]: d.get("reason_detail") for d in again[tag]} == {
            d["id"]: d.get("reason_detail") for d in dedup_result[tag]
        }
