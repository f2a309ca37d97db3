"""``dapt tokenize`` end to end: real Beam, a real bundle, the cleaned subset of the
shared samples; shards read back with memmap and checked token for token."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import xxhash

from pipelines.cli import main
from pipelines.output import read_table
from pipelines.tokenize import TokenizeError, run_tokenize
from tokenizer.bundle import BundleError, load_tokenizer
from tokenizer.config import TokenizeConfig, TokenizerConfig
from tokenizer.kept import KeptError
from tokenizer.train import train_tokenizer

pytestmark = pytest.mark.slow

#: Small shards, so that each split is packed into several.
CONFIG = TokenizeConfig(val_fraction=0.05, tokens_per_shard=300_000, batch_size=256)


@pytest.fixture(scope="module")
def bundle(clean_subset_for_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("tokenize-bundle") / "v1"
    config = TokenizerConfig(vocab_size=1000, input_sentence_size=3000)
    train_tokenizer([str(clean_subset_for_tokenizer)], str(path), config)
    return path


@pytest.fixture(scope="module")
def tokenized(clean_subset_for_tokenizer, bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("tokens") / "out"
    manifest = run_tokenize([str(clean_subset_for_tokenizer)], str(bundle), str(out), CONFIG, show_progress=False)
    kept = read_table(str(clean_subset_for_tokenizer), "kept")
    return {"out": out, "manifest": manifest, "kept": kept, "documents": pq.read_table(out / "documents.parquet")}


def _read_shard(out, shard, dtype):
    tokens = np.memmap(out / shard["path"], dtype=dtype, mode="r")
    offsets = np.load(out / shard["index_path"], mmap_mode="r")
    return tokens, offsets


def test_counts_are_exact_everywhere(tokenized, clean_subset_for_tokenizer):
    manifest, documents, out = tokenized["manifest"], tokenized["documents"], tokenized["out"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    stats = json.loads((clean_subset_for_tokenizer / "stats.json").read_text())
    assert manifest["unique_documents"] == documents.num_rows == tokenized["kept"].num_rows == stats["kept"]
    shards = manifest["shards"]
    for split in ("train", "val"):
        in_shards = sum(s["tokens"] for s in shards if s["split"] == split)
        rows = documents.filter(pc.equal(documents.column("split"), split))
        assert in_shards == manifest[f"{split}_tokens"] == pc.sum(rows.column("n_tokens")).as_py()
        in_shards = sum(s["documents"] for s in shards if s["split"] == split)
        assert in_shards == manifest[f"{split}_documents"] == rows.num_rows
    total = manifest["train_tokens"] + manifest["val_tokens"]
    for table, column in (("by_domain", "domain"), ("by_source", "source"), ("by_corpus", "corpus")):
        assert sum(g["tokens"] for g in manifest[table].values()) == total
        for name, group in manifest[table].items():
            rows = documents.filter(pc.equal(documents.column(column), name))
            assert group == {"documents": rows.num_rows, "tokens": pc.sum(rows.column("n_tokens")).as_py()}
    assert set(manifest["by_domain"]) == {"finance", "medical", "general"}
    for domain, group in manifest["by_domain"].items():
        assert group["documents"] == stats["by_domain"][domain]["kept"]


def test_shards_are_memmappable_with_the_right_dtype_boundaries_and_tokens(tokenized, bundle):
    manifest, out = tokenized["manifest"], tokenized["out"]
    tokenizer = load_tokenizer(str(bundle))
    assert manifest["tokenizer_sha256"] == tokenizer.sha256
    assert manifest["dtype"] == "uint16" and manifest["eos_id"] == tokenizer.eos_id == 2
    assert sum(s["split"] == "train" for s in manifest["shards"]) >= 3
    texts = dict(zip(tokenized["kept"].column("id").to_pylist(), tokenized["kept"].column("text").to_pylist()))
    rows = {r["id"]: r for r in tokenized["documents"].to_pylist()}
    for shard in manifest["shards"]:
        assert hashlib.sha256((out / shard["path"]).read_bytes()).hexdigest() == shard["sha256"]
        assert (out / shard["path"]).stat().st_size == shard["tokens"] * 2
        tokens, offsets = _read_shard(out, shard, np.dtype(manifest["dtype"]))
        assert tokens.dtype == np.uint16 and offsets.dtype == np.int64
        assert offsets[0] == 0 and offsets[-1] == tokens.size == shard["tokens"]
        assert len(offsets) == shard["documents"] + 1 and np.all(np.diff(offsets) > 0)
        assert np.all(tokens[offsets[1:] - 1] == tokenizer.eos_id)
        assert np.count_nonzero(tokens == tokenizer.eos_id) == shard["documents"]
        ids = [r["id"] for r in rows.values() if r["shard"] == shard["path"]]
        ids.sort(key=lambda i: rows[i]["offset"])
        assert len(ids) == shard["documents"]
        encoded = tokenizer.encode([texts[i] for i in ids])
        for doc_id, expected, start, end in zip(ids, encoded, offsets[:-1], offsets[1:]):
            assert rows[doc_id]["offset"] == start and rows[doc_id]["n_tokens"] == end - start
            assert np.array_equal(tokens[start:end - 1], expected)


def test_train_and_validation_are_disjoint_by_document(tokenized):
    documents = tokenized["documents"].to_pylist()
    train = {r["id"] for r in documents if r["split"] == "train"}
    val = {r["id"] for r in documents if r["split"] == "val"}
    assert not train & val
    assert train | val == set(tokenized["kept"].column("id").to_pylist())
    # The documented rule, computed here: xxh64(salt + "\x1f" + id) < val_fraction x 2^64.
    limit = CONFIG.val_fraction * 2.0**64
    assert [r["split"] for r in documents] == [
        "val" if xxhash.xxh64_intdigest(f"{CONFIG.split_salt}\x1f{r['id']}".encode()) < limit else "train"
        for r in documents
    ]
    assert 0.03 < len(val) / len(documents) < 0.07
    for shard in tokenized["manifest"]["shards"]:
        assert {r["split"] for r in documents if r["shard"] == shard["path"]} == {shard["split"]}


def _documents_in_order(out, manifest):
    """Each split's (id, tokens) in shard order, read back from the shards."""
    rows = pq.read_table(out / "documents.parquet").to_pylist()
    result = {}
    for shard in manifest["shards"]:
        tokens, offsets = _read_shard(out, shard, np.dtype(manifest["dtype"]))
        by_offset = {r["offset"]: r["id"] for r in rows if r["shard"] == shard["path"]}
        result.setdefault(shard["split"], []).extend(
            (by_offset[start], tokens[start:end].tobytes()) for start, end in zip(offsets[:-1], offsets[1:])
        )
    return result


def test_several_kept_files_give_the_same_documents_as_one(tokenized, bundle, tmp_path):
    """Each file's pieces are staged as one stream per split; the files' documents land
    in input order, each with its own tokens, however the rows are spread over files, and
    no shard spans two files."""
    kept = tokenized["kept"]
    folder = tmp_path / "kept"
    folder.mkdir()
    bounds = [0, 700, 701, kept.num_rows]  # a one-document file in the middle
    for k, (start, end) in enumerate(zip(bounds, bounds[1:])):
        pq.write_table(kept.slice(start, end - start), folder / f"part-{k:05d}-of-00003.parquet")
    out = tmp_path / "out"
    manifest = run_tokenize([str(folder)], str(bundle), str(out), CONFIG, show_progress=False)
    assert len(manifest["inputs"][0]["files"]) == 3
    for key in ("train_tokens", "val_tokens", "train_documents", "val_documents", "by_domain", "by_source"):
        assert manifest[key] == tokenized["manifest"][key]
    assert _documents_in_order(out, manifest) == _documents_in_order(tokenized["out"], tokenized["manifest"])
    # A shard holds one kept file's documents: each token is written once, into the file
    # that becomes its shard. Within a file's split, every shard but the last reached the target.
    file_of = {i: k for k, (start, end) in enumerate(zip(bounds, bounds[1:]))
               for i in kept.column("id").slice(start, end - start).to_pylist()}
    documents = pq.read_table(out / "documents.parquet").to_pylist()
    shards_of: dict[tuple[str, int], list[dict]] = {}
    for shard in manifest["shards"]:
        files = {file_of[r["id"]] for r in documents if r["shard"] == shard["path"]}
        assert len(files) == 1, f"{shard['path']} holds documents of kept files {files}"
        shards_of.setdefault((shard["split"], files.pop()), []).append(shard)
    assert [len(shards_of.get((split, 1), [])) for split in ("train", "val")] in ([1, 0], [0, 1])
    for group in shards_of.values():
        assert all(shard["tokens"] >= CONFIG.tokens_per_shard for shard in group[:-1])
    assert not (out / ".staging").exists()


def test_kept_files_without_documents_give_an_empty_complete_output(tokenized, bundle, tmp_path):
    """The counts combine has no default value: with nothing encoded it has no output,
    and the manifest still holds empty counts, no shards and an empty document table."""
    pq.write_table(tokenized["kept"].slice(0, 0), tmp_path / "empty.parquet")
    out = tmp_path / "out"
    manifest = run_tokenize([str(tmp_path / "empty.parquet")], str(bundle), str(out), CONFIG, show_progress=False)
    assert manifest["shards"] == [] and manifest["unique_documents"] == 0
    assert manifest["train_tokens"] == manifest["val_tokens"] == 0
    assert manifest["by_domain"] == manifest["by_source"] == manifest["by_corpus"] == {}
    assert pq.read_table(out / "documents.parquet").num_rows == 0
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_rerun_on_the_multiprocess_runner_gives_identical_shards(
    tokenized, clean_subset_for_tokenizer, bundle, tmp_path
):
    out = tmp_path / "again"
    beam = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    manifest = run_tokenize([str(clean_subset_for_tokenizer)], str(bundle), str(out), CONFIG, beam, show_progress=False)
    assert manifest["shards"] == tokenized["manifest"]["shards"]
    assert (out / "documents.parquet").read_bytes() == (tokenized["out"] / "documents.parquet").read_bytes()


def test_bad_inputs_fail_naming_the_record_and_commit_nothing(tokenized, clean_subset_for_tokenizer, bundle, tmp_path):
    kept_file = next((clean_subset_for_tokenizer / "kept").glob("*.parquet"))
    table = pq.read_table(kept_file).slice(0, 300)
    texts = [None if i == 41 else t for i, t in enumerate(table.column("text").to_pylist())]
    nulls = table.set_column(1, "text", pa.array(texts))
    pq.write_table(nulls, tmp_path / "nulls.parquet")
    out = tmp_path / "out"
    with pytest.raises(TokenizeError, match=r"nulls.parquet: row 42: text is null"):
        run_tokenize([str(tmp_path / "nulls.parquet")], str(bundle), str(out), CONFIG, show_progress=False)
    assert not (out / "manifest.json").exists() and not (out / "train").exists()

    pq.write_table(table, tmp_path / "copy.parquet")
    first_id = sorted(table.column("id").to_pylist())[0]
    with pytest.raises(TokenizeError, match=f"document id '{first_id}' appears more than once"):
        run_tokenize([str(kept_file), str(tmp_path / "copy.parquet")], str(bundle), str(out), CONFIG,
                     show_progress=False)
    assert not (out / "manifest.json").exists()

    pq.write_table(table.drop_columns(["domain"]), tmp_path / "nodomain.parquet")
    with pytest.raises(KeptError, match="nodomain.parquet: missing column"):
        run_tokenize([str(tmp_path / "nodomain.parquet")], str(bundle), str(out), CONFIG, show_progress=False)


def test_a_tampered_bundle_is_refused_before_anything_runs(clean_subset_for_tokenizer, bundle, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    model = tampered / "tokenizer.model"
    data = bytearray(model.read_bytes())
    data[100] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="modified or swapped"):
        run_tokenize([str(clean_subset_for_tokenizer)], str(tampered), str(tmp_path / "out"), CONFIG,
                     show_progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_tokenize(clean_subset_for_tokenizer, bundle, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["tokenize", str(clean_subset_for_tokenizer), "--tokenizer", str(bundle), "--output", str(out),
                 "--val-fraction", "0.05", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"{manifest['train_tokens']:,}" in printed and manifest["val_fraction"] == 0.05
    assert main(["tokenize", str(tmp_path / "missing"), "--tokenizer", str(bundle), "--output", str(out)]) == 2
    assert "no kept Parquet files" in capsys.readouterr().err
    # An output on a filesystem this install has no client for: one line, before any work.
    assert main(["tokenize", str(clean_subset_for_tokenizer), "--tokenizer", str(bundle),
                 "--output", "foo://bucket/tok"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dapt tokenize: --output foo://bucket/tok: cannot use this location: ")
    assert len(err.splitlines()) == 1
