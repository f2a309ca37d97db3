"""The dedup index across runs: a corpus re-delivered with additions, on the real samples.

Run 1 cleans the first documents of finance and medical; run 2 cleans the same corpora
re-delivered with more documents and a generated near-copy of a long kept document, with
run 1's ``dedup_index.parquet`` as its index. A third run repeats run 1 with an index that
matches nothing: its output must be run 1's, byte for byte.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import FINANCE, MEDICAL, read_jsonl_gz
from pipelines import output
from pipelines.clean import run_clean
from pipelines.config import parse_config
from pipelines.dedup import DedupIndexError, index_table
from pipelines.output import read_table
from pipelines.steps.minhash import MinHasher, estimate_jaccard

FIRST, ADDED = 300, 150  # documents per corpus in run 1, and added in run 2


def _clean(root: Path, name: str, docs: dict[str, list[dict]], index=(), **clean) -> Path:
    """Clean ``{corpus: documents}`` (each corpus its own domain) into ``root/name``."""
    corpora = []
    for corpus, items in docs.items():
        path = root / f"{name}-{corpus}.jsonl.gz"
        path.write_bytes(gzip.compress("\n".join(json.dumps(d, ensure_ascii=False) for d in items).encode(), mtime=0))
        corpora.append({"name": corpus, "path": str(path), "format": "jsonl.gz", "domain": corpus,
                        "id_field": "id", "title_field": "title"})
    out = root / name
    run_clean(parse_config({"corpora": corpora, "clean": clean}), str(out), show_progress=False, dedup_index=index)
    return out


def _near_copy(doc: dict) -> dict:
    """The document with one word in its middle replaced by two: longer, Jaccard ~0.97."""
    words = doc["text"].split(" ")
    middle = len(words) // 2
    return {**doc, "id": f"near-copy-of-{doc['id']}", "text": " ".join(words[:middle] + ["edited", "twice"] + words[middle + 1 :])}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dedup-index")
    docs = {"finance": read_jsonl_gz(FINANCE, FIRST + ADDED), "medical": read_jsonl_gz(MEDICAL, FIRST + ADDED)}
    first = {corpus: items[:FIRST] for corpus, items in docs.items()}
    run1 = _clean(root, "run1", first)
    kept1 = {r["id"]: r for r in read_table(str(run1), "kept").to_pylist()}
    # The longest medical document run 1 kept (a short one is too coarse for a signature
    # estimate: one word in 66 changes its Jaccard by 0.16).
    original = max((d for d in first["medical"] if d["id"] in kept1), key=lambda d: len(kept1[d["id"]]["text"]))
    copy = _near_copy(original)
    part = str(run1 / output.INDEX_FILE)
    run2 = _clean(root, "run2", {"finance": docs["finance"], "medical": docs["medical"] + [copy]}, index=[part])
    # An index of generated texts that resemble nothing in the samples.
    unrelated = [{"id": f"u{i}", "text": " ".join(f"u{i}w{j}" for j in range(60)), "corpus": "x", "domain": "x"}
                 for i in range(20)]
    noise = output.write_index(str(root / "noise"), index_table(unrelated, MinHasher()), "zstd")
    again = _clean(root, "again", first, index=[noise])
    return {"root": root, "run1": run1, "run2": run2, "again": again, "part": part, "original": original,
            "copy": copy, "first_ids": {d["id"] for items in first.values() for d in items}}


def _rows(out: Path, kind: str) -> dict[str, dict]:
    return {r["id"]: r for r in read_table(str(out), kind).to_pylist()}


def test_index_lists_the_kept_documents_sorted_with_their_signatures(runs):
    kept = read_table(str(runs["run1"]), "kept").to_pylist()
    index = pq.read_table(runs["run1"] / output.INDEX_FILE)
    assert index.column("id").to_pylist() == sorted(r["id"] for r in kept)
    by_id = {r["id"]: r for r in kept}
    rows = index.to_pylist()
    assert [(r["corpus"], r["domain"], r["content_hash"]) for r in rows] == [
        (by_id[r["id"]]["corpus"], by_id[r["id"]]["domain"], by_id[r["id"]]["content_hash"]) for r in rows]
    signatures = np.array([r["signature"] for r in rows], dtype=np.uint32)
    assert np.array_equal(signatures, MinHasher().signatures([by_id[r["id"]]["text"] for r in rows]))
    stats = json.loads((runs["run1"] / "stats.json").read_text())
    assert len(rows) == stats["kept"]


def test_redelivered_corpus_keeps_nothing_kept_before(runs):
    stats = json.loads((runs["run2"] / "stats.json").read_text())
    assert stats["input"] == 2 * (FIRST + ADDED) + 1
    assert stats["input"] == stats["kept"] + sum(stats["rejected"].values()) + stats["quarantined"]
    kept1, kept2 = _rows(runs["run1"], "kept"), _rows(runs["run2"], "kept")
    rejected2 = _rows(runs["run2"], "rejected")
    assert not {r["content_hash"] for r in kept1.values()} & {r["content_hash"] for r in kept2.values()}
    assert len(kept2) == stats["kept"] and len(rejected2) == sum(stats["rejected"].values())
    same_text = changed = 0
    for doc_id, before in kept1.items():
        if doc_id in rejected2 and rejected2[doc_id]["content_hash"] == before["content_hash"]:
            same_text += 1
            assert rejected2[doc_id]["reason"] == "duplicate_exact"
            assert rejected2[doc_id]["reason_detail"] == f"kept earlier: {doc_id} ({runs['part']})"
        else:
            # Boilerplate is found over the whole run, so with more documents of a source
            # a kept document can come out of cleaning with other lines removed. Then it
            # is a near-duplicate of its earlier self, or too different to be one.
            changed += 1
            after = rejected2.get(doc_id) or kept2[doc_id]
            assert after["content_hash"] != before["content_hash"]
            if doc_id in kept2:
                hasher = MinHasher()
                sigs = hasher.signatures([before["text"], after["text"]])
                bands = hasher.band_hashes(sigs)
                assert not ((bands[0] == bands[1]).any() and estimate_jaccard(*sigs) >= 0.8), doc_id
            else:
                assert rejected2[doc_id]["reason_detail"].startswith("kept earlier: ")
    assert same_text > 0.9 * len(kept1), (same_text, changed)
    assert [i for i in kept2 if i not in runs["first_ids"]]
    for doc in rejected2.values():
        if doc["reason_detail"].startswith("kept earlier: "):
            earlier = kept1[doc["reason_detail"].split()[2]]
            if doc["reason"] == "duplicate_exact":
                assert doc["content_hash"] == earlier["content_hash"]


def test_near_copy_of_an_earlier_document_is_rejected_though_longer(runs):
    original, copy = runs["original"], runs["copy"]
    assert len(copy["text"]) > len(original["text"])
    rejected = _rows(runs["run2"], "rejected")[copy["id"]]
    assert rejected["reason"] == "duplicate_near"
    earlier = _rows(runs["run1"], "kept")[original["id"]]
    sigs = MinHasher().signatures([earlier["text"], rejected["text"]])
    assert rejected["reason_detail"] == (
        f"kept earlier: {original['id']} ({runs['part']}, estimated Jaccard {estimate_jaccard(*sigs):.2f})")


def test_index_that_matches_nothing_changes_no_byte(runs):
    """Run 1's input again, with an index of unrelated texts: the output is run 1's,
    dedup index included (so it is also byte-identical across identical runs)."""
    files = [f"{kind}/{p.name}" for kind in ("kept", "rejected", "quarantine") for p in (runs["run1"] / kind).iterdir()]
    for name in [*files, output.INDEX_FILE]:
        assert (runs["again"] / name).read_bytes() == (runs["run1"] / name).read_bytes(), name
    first, again = (json.loads((runs[r] / "stats.json").read_text()) for r in ("run1", "again"))
    assert {k: v for k, v in first.items() if k not in ("seconds", "files")} == {
        k: v for k, v in again.items() if k not in ("seconds", "files")}


def test_index_with_other_settings_is_refused_before_anything_is_touched(runs, tmp_path):
    docs = {"medical": read_jsonl_gz(MEDICAL, 5)}
    for setting, message in (({"seed": 2}, "made with seed=1, this run has seed=2"),
                             ({"num_perm": 128}, "made with num_perm=112, this run has num_perm=128")):
        with pytest.raises(DedupIndexError) as err:
            _clean(tmp_path, "refused", docs, index=[runs["part"]], dedup=setting)
        assert str(err.value).startswith(f"dedup index part {runs['part']}: {message}")
        assert not (tmp_path / "refused").exists()
    with pytest.raises(DedupIndexError, match="cannot read it"):
        _clean(tmp_path, "refused", docs, index=[str(tmp_path / "nowhere" / output.INDEX_FILE)])
