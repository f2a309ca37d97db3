"""The tokenize job's staged segments: written once by the encoder's stream, made shards
by renaming, and refused when the file on disk disagrees with what was written."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pytest

from pipelines.tokenize import TokenizeError, WriteShard, _Stream, assign_shards, segment_name

SCHEMA = pa.schema([("id", pa.string())])


def _stage(staging, batches, tokens_per_shard):
    """Pieces of kept file 0's train split, staged as the encoder stages them."""
    stream = _Stream(str(staging), "train", 0, SCHEMA, tokens_per_shard)
    pieces = []
    for number, sizes in enumerate(batches):
        tokens = np.arange(1, sum(sizes) + 1, dtype=np.uint16)
        ids = [f"{number}-{k}" for k in range(len(sizes))]
        where = stream.append(tokens, np.array(sizes, dtype=np.int64), pa.record_batch([pa.array(ids)], schema=SCHEMA))
        pieces.append({"split": "train", "key": [0, number], "documents": len(sizes), "tokens": sum(sizes), **where})
    stream.close()
    return pieces


def test_segments_close_once_they_reach_the_target_and_become_shards_as_written(tmp_path):
    pieces = _stage(tmp_path, [[3, 4], [5], [2, 2, 2], [1]], tokens_per_shard=8)
    # 7 tokens, then 12 (reached 8: closed), then 6 + 1.
    assert [(p["segment"], p["offset"], p["row_start"]) for p in pieces] == [(0, 0, 0), (0, 7, 2), (1, 0, 3), (1, 6, 6)]
    plan = assign_shards(pieces)
    assert [(s["path"], len(s["pieces"])) for s in plan] == [
        ("train/shard-00000-of-00002.bin", 2), ("train/shard-00001-of-00002.bin", 2)]
    staged = [(tmp_path / segment_name("train", 0, k)).read_bytes() for k in range(2)]
    for shard, data in zip(plan, staged):
        WriteShard(str(tmp_path), "uint16").process(shard)
        summary = json.loads((tmp_path / (shard["path"] + ".json")).read_text())
        assert (tmp_path / shard["path"]).read_bytes() == data
        assert summary["sha256"] == hashlib.sha256(data).hexdigest()
        assert summary["tokens"] == len(data) // 2 and summary["pieces"] == shard["pieces"]
    assert np.load(tmp_path / "train/shard-00000-of-00002.idx.npy").tolist() == [0, 3, 7, 12]
    assert np.load(tmp_path / "train/shard-00001-of-00002.idx.npy").tolist() == [0, 2, 4, 6, 7]
    assert not (tmp_path / segment_name("train", 0, 0)).exists()
    # A retried bundle finds the segment renamed already and gives the same summary.
    before = (tmp_path / (plan[0]["path"] + ".json")).read_bytes()
    WriteShard(str(tmp_path), "uint16").process(plan[0])
    assert (tmp_path / (plan[0]["path"] + ".json")).read_bytes() == before


def test_a_staged_shard_that_disagrees_with_what_was_written_is_refused(tmp_path):
    pieces = _stage(tmp_path, [[3, 4]], tokens_per_shard=100)
    segment = tmp_path / segment_name("train", 0, 0)
    segment.write_bytes(segment.read_bytes()[:-2])
    with pytest.raises(TokenizeError, match=r"00000-00000.bin: the staged shard disagrees with itself: "
                                            r"6 tokens on disk, 7 tokens written, 7 tokens in its pieces"):
        WriteShard(str(tmp_path), "uint16").process(assign_shards(pieces)[0])
    assert not (tmp_path / "train/shard-00000-of-00001.bin").exists()
    segment.unlink()
    with pytest.raises(TokenizeError, match=r"00000-00000.bin: the staged shard is missing"):
        WriteShard(str(tmp_path), "uint16").process(assign_shards(pieces)[0])
