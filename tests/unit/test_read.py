import gzip
import json
import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq

from bad_corpus import write_bad_corpus
from pipelines.config import CorpusConfig
from pipelines.read import CorpusReader, list_files


def _read_all(corpus):
    files, missing = list_files(corpus)
    out = [("quarantine", m) for m in missing]
    for path in files:
        out += list(CorpusReader(corpus).read(path))
    return out


def test_bad_corpus_every_record_accounted(tmp_path):
    write_bad_corpus(tmp_path)
    corpus = CorpusConfig(name="bad", path=str(tmp_path), format="jsonl", domain="finance", id_field="id")
    out = _read_all(corpus)
    errors = {q["error"].split(":")[0].split(" at ")[0] for kind, q in out if kind == "quarantine"}
    assert {
        "invalid utf-8", "malformed JSON", "expected a JSON object, got list", "missing text field 'text'",
        "text field 'text' is int, expected a string", "text contains NUL bytes (binary data, not text)",
        "corrupt or truncated gzip after line 171", "cannot read file",
        "a \\u escape gives an unpaired UTF-16 surrogate", "JSON nested more than 100 levels deep",
        "unreadable JSON",
    } <= errors
    unreadable = [q for kind, q in out if kind == "quarantine" and q["position"] == -1]
    assert [q["file"] for q in unreadable] == [str(tmp_path / "unreadable.jsonl")]
    docs = [d for kind, d in out if kind == "doc"]
    assert {"good-0", "good-1", "huge", "emoji"} <= {d["id"] for d in docs}
    assert next(d for d in docs if d["id"] == "emoji")["text"].endswith(" \U0001F600")
    deep = [q["position"] for kind, q in out if kind == "quarantine" and q["error"].startswith("JSON nested")]
    assert deep == [11, 12]
    assert len(next(d for d in docs if d["id"] == "huge")["text"]) == 5_000_000
    bad_line = next(q for kind, q in out if kind == "quarantine" and q["error"].startswith("invalid utf-8"))
    assert bad_line["file"].endswith("mixed.jsonl") and bad_line["position"] == 2


def test_missing_path_is_quarantined_not_fatal(tmp_path):
    corpus = CorpusConfig(name="gone", path=str(tmp_path / "nope" / "*.jsonl"), format="jsonl", domain="law")
    [(kind, record)] = _read_all(corpus)
    assert kind == "quarantine" and record["error"] == "no file matches this path"


def test_pipes_and_devices_are_quarantined_not_opened(tmp_path):
    """Opening a FIFO waits for a writer and /dev/zero never ends: each would hang the job."""
    os.mkfifo(tmp_path / "pipe.jsonl")
    (tmp_path / "zero.jsonl").symlink_to("/dev/zero")
    corpus = CorpusConfig(name="odd", path=str(tmp_path), format="jsonl", domain="law")
    out: list = []
    reader = threading.Thread(target=lambda: out.extend(_read_all(corpus)), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "the reader hung on a pipe or a device"
    assert sorted((os.path.basename(q["file"]), q["error"]) for kind, q in out) == [
        ("pipe.jsonl", "not a regular file (a pipe, socket or device)"),
        ("zero.jsonl", "not a regular file (a pipe, socket or device)"),
    ]


def test_a_path_on_a_filesystem_that_cannot_be_used_is_quarantined_with_the_reason():
    corpus = CorpusConfig(name="far", path="foo://bucket/part-*.jsonl", format="jsonl", domain="law")
    [(kind, record)] = _read_all(corpus)
    assert kind == "quarantine" and record["file"] == "foo://bucket/part-*.jsonl"
    assert record["error"].startswith("cannot list this path: Unable to get filesystem from specified path")


def test_parquet_and_txt_formats_and_stable_ids(tmp_path):
    pq.write_table(pa.table({"body": ["first text", "second text"], "year": [1987, 1988]}), tmp_path / "a.parquet")
    corpus = CorpusConfig(name="p", path=str(tmp_path / "*.parquet"), format="parquet", domain="law", text_field="body")
    docs = [d for kind, d in _read_all(corpus) if kind == "doc"]
    assert [(d["id"], d["text"], d["metadata"]) for d in docs] == [
        ("p:a.parquet:1", "first text", {"year": 1987}),
        ("p:a.parquet:2", "second text", {"year": 1988}),
    ]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "one.txt").write_bytes("caf\u00e9 text".encode())
    (tmp_path / "t" / "latin.txt").write_bytes("caf\u00e9".encode("latin-1"))
    corpus = CorpusConfig(name="t", path=str(tmp_path / "t"), format="txt", domain="law")
    out = _read_all(corpus)
    assert [d["text"] for kind, d in out if kind == "doc"] == ["caf\u00e9 text"]
    assert [q["file"].endswith("latin.txt") for kind, q in out if kind == "quarantine"] == [True]


def test_metadata_pass_through_and_source(tmp_path):
    rows = [{"id": "r1", "text": "t", "source": "wire", "title": "T", "topics": ["earn"], "extra": 1}]
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    corpus = CorpusConfig(
        name="c", path=str(path), format="jsonl.gz", domain="finance", id_field="id", title_field="title",
        metadata_fields=["topics"],
    )
    [(kind, doc)] = _read_all(corpus)
    assert (doc["id"], doc["source"], doc["title"], doc["metadata"]) == ("r1", "wire", "T", {"topics": ["earn"]})


def test_a_record_over_max_record_bytes_is_quarantined_and_never_held_whole(tmp_path):
    """A 300 KB gzip that inflates to one 300 MB line: the line is quarantined with its
    line number, the records around it are read, and reading never holds more than the
    limit (1 MiB here)."""
    import tracemalloc

    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(b'{"id": "before", "text": "a record before it"}\n')
        f.write(b'{"id": "bomb", "text": "')
        chunk = b"a" * 2**20
        for _ in range(300):
            f.write(chunk)
        f.write(b'"}\n{"id": "after", "text": "a record after it"}\n')
        f.write(b'{"id": "at-limit", "text": "' + b"b" * (2**20 - 30) + b'"}\n')
    assert path.stat().st_size < 1_000_000
    corpus = CorpusConfig(name="b", path=str(path), format="jsonl.gz", domain="law", id_field="id",
                          max_record_bytes=2**20)
    tracemalloc.start()
    try:
        out = _read_all(corpus)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20
    assert [(kind, r.get("id") or (r["position"], r["error"])) for kind, r in out] == [
        ("doc", "before"),
        ("quarantine", (2, "record longer than 1,048,576 bytes (max_record_bytes)")),
        ("doc", "after"),
        ("doc", "at-limit"),
    ]

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "big.txt").write_bytes(b"x" * (2**20 + 1))
    (tmp_path / "t" / "small.txt").write_bytes(b"a small file")
    corpus = CorpusConfig(name="t", path=str(tmp_path / "t"), format="txt", domain="law", max_record_bytes=2**20)
    assert sorted((kind, os.path.basename(r.get("file") or r["_origin"][0]), r.get("error")) for kind, r in
                  _read_all(corpus)) == [
        ("doc", "small.txt", None),
        ("quarantine", "big.txt", "file longer than 1,048,576 bytes (max_record_bytes)"),
    ]
