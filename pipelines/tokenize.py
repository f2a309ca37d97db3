"""The tokenize job (``dapt tokenize``): kept documents to token shards, with exact counts.

Flow (Apache Beam)::

    kept Parquet files ─► record batches ─► batched multi-threaded encode with EOS, split
    (train/val by id hash) ─► each batch's documents of a split (a piece) appended to its
    file's staged stream of that split (tokens into shard-sized segments, per-document
    counts, rows)
        ─► one combine: token counts per domain, source, corpus, split + the piece list
        ─► each segment becomes a shard: index written, renamed ─► TOKDIR/{train,val}/shard-*
    driver: documents.parquet, count checks, commit, manifest.json (last)

Only piece summaries travel through the pipeline. Token ids are written once, by the
encoder, into the file that becomes their shard (hashed as they are written); document
rows go from a batch to a staged Arrow stream and from there into ``documents.parquet``.
What the job adds to SentencePiece's own encode is reading Parquet, writing the shards,
the staged rows and the document table, hashing the inputs, and Beam's start-up
(measured in ``tests/benchmarks/bench_tokenizer.py``).

**Output layout** (``TOKDIR``), the input of the pretraining stage's loader:

``TOKDIR/train/shard-NNNNN-of-MMMMM.bin`` (and ``val/``)
    The token ids of whole documents, concatenated: a flat little-endian array of
    ``manifest["dtype"]`` (``uint16`` when the vocabulary has at most 65,536 pieces, else
    ``uint32``), no header. Every document ends with the EOS id (``manifest["eos_id"]``),
    so ``np.memmap(path, dtype=dtype, mode="r")`` is the whole shard. Documents are in
    input order (input, kept file, row; id order within a kept file), not shuffled:
    loaders sample windows at random.
``TOKDIR/train/shard-NNNNN-of-MMMMM.idx.npy``
    Document boundaries: an ``int64`` ``.npy`` array of ``documents + 1`` offsets in
    tokens, ``offsets[0] == 0`` and ``offsets[-1] == len(bin)``; document ``i`` is
    ``tokens[offsets[i]:offsets[i + 1]]``, its last token EOS. ``np.load(path,
    mmap_mode="r")`` reads it.
``TOKDIR/documents.parquet``
    One row per document, sorted by id: ``id``, ``domain``, ``source``, ``corpus``,
    ``split`` (``train``/``val``), ``n_tokens`` (int64, EOS included), ``shard`` (path of its
    ``.bin`` relative to ``TOKDIR``), ``offset`` (int64, its first token in the shard).
``TOKDIR/manifest.json`` (written last; present means complete)
    ``tokenizer_sha256``, ``tokenizer`` (bundle path), ``vocab_size``, ``dtype``,
    ``eos_id``, ``val_fraction``, ``split_salt``, ``train_tokens``, ``val_tokens``,
    ``train_documents``, ``val_documents``, ``unique_documents``, ``by_domain``,
    ``by_source``, ``by_corpus`` (each ``{name: {documents, tokens}}``), ``shards`` (a
    list of ``{split, path, index_path, documents, tokens, bytes, sha256, index_sha256}``,
    paths relative to ``TOKDIR``), ``inputs`` (each kept input with its files' sha256),
    ``config`` (the ``TokenizeConfig``), ``seconds``, ``dapt_version``, ``created``.

**Split**: a document is in ``val`` when ``xxh64(split_salt + "\\x1f" + id) < val_fraction
x 2^64``: the same document is in the same split on every run and runner, and a document
never straddles the two. **Shards**: each split's pieces, ordered by (kept file, record
batch), are packed into shards closed once they reach ``tokens_per_shard`` tokens; the
batches are fixed by the files and ``batch_size``, so reruns on any runner give
byte-identical shards. A shard holds the documents of one kept file only (a file's split
that ends below the target closes its last shard early): shards that spanned files had
to be assembled by copying the tokens after every file was encoded, writing each token
twice (at 16x the sample: 382 against 204 MB written, 508 against 330 MB read, and
0.5-0.85 CPU-s of ~20 in two A/B runs; ``tests/benchmarks/RESULTS.md``).

**Exact counts**: the token statistics come from the encoded documents (a combiner) and,
independently, from the shards on disk (each shard writer checks its file's size against
what the encoder wrote, the pieces and the documents' sizes); the job fails and commits nothing
unless the two agree per split, the document table agrees with both per domain, source
and corpus, and, when the inputs are clean outputs with ``stats.json``, the documents
equal their ``kept`` counts. Ids must be unique across the inputs (the split is a
function of the id); a repeated id or a null field fails the run naming it.

Writes are atomic as in :mod:`pipelines.output`: the old ``manifest.json`` goes first,
everything is staged in ``TOKDIR/.staging/`` and moved into place after the checks, the
manifest last.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import time
from collections import Counter

from pipelines.lifelong_imports import lifelong_imports

# Without it the collector spent ~0.2 CPU-s per run tracing what these imports create
# (5 % of a 1x run, measured with gc.callbacks); with it ~0.02 s.
with lifelong_imports():
    import apache_beam as beam
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import xxhash
    from apache_beam.io.filesystems import FileSystems

    from pipelines import progress
    from pipelines.output import STAGING, check_location, remove_tree
    from tokenizer.config import TokenizeConfig

SPLITS = ("train", "val")
MANIFEST_FILE = "manifest.json"
DOCUMENTS_FILE = "documents.parquet"
INVALID = "invalid"
PROGRESS_STEPS = ["documents", "tokens", "shards"]
#: The kept columns each document's row carries into ``documents.parquet``.
ROW_COLUMNS = ["id", "domain", "source", "corpus"]

DOCUMENTS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("domain", pa.string()),
        ("source", pa.string()),
        ("corpus", pa.string()),
        ("split", pa.string()),
        ("n_tokens", pa.int64()),
        ("shard", pa.string()),
        ("offset", pa.int64()),
    ]
)


class TokenizeError(RuntimeError):
    """The run cannot produce exact, complete output; nothing was committed."""


def val_members(ids: pa.Array, val_fraction: float, salt: str) -> np.ndarray:
    """Which of ``ids`` are in the validation split (the rule in the module docstring)."""
    prefix = f"{salt}\x1f".encode()
    limit = val_fraction * 2.0**64
    digest = xxhash.xxh64_intdigest
    return np.fromiter((digest(prefix + i) < limit for i in ids.cast(pa.binary()).to_pylist()), dtype=bool,
                       count=len(ids))


def shard_path(split: str, index: int, shards: int) -> str:
    return f"{split}/shard-{index:05d}-of-{shards:05d}.bin"


def index_path(bin_path: str) -> str:
    return bin_path[: -len(".bin")] + ".idx.npy"


def stream_name(split: str, file_number: int) -> str:
    """Staged ``.sizes`` (int64 tokens per document) and ``.arrow`` (document rows) of one
    kept file's documents in one split."""
    return f"pieces/{split}/{file_number:05d}"


def segment_name(split: str, file_number: int, segment: int) -> str:
    """Staged token ids of the ``segment``-th shard of one kept file's documents in one
    split, and beside it (``.json``) the tokens and sha256 of what was written."""
    return f"pieces/{split}/{file_number:05d}-{segment:05d}.bin"


class _Stream:
    """One kept file's documents of one split, staged batch by batch: its pieces are
    consecutive ranges of appended files, not a file each. Token ids go into segments of
    about ``tokens_per_shard`` tokens, each the whole content of a future shard: a new
    segment is begun once the current one reaches the target."""

    def __init__(self, staging: str, split: str, file_number: int, schema: pa.Schema, tokens_per_shard: int):
        self.staging, self.split, self.file_number = staging, split, file_number
        self.tokens_per_shard = tokens_per_shard
        base = FileSystems.join(staging, stream_name(split, file_number))
        self.sizes = FileSystems.create(base + ".sizes")
        self.rows_file = FileSystems.create(base + ".arrow")
        self.rows = pa.ipc.new_stream(self.rows_file, schema)
        self.row_count = 0
        self.segment, self.segment_file, self.digest, self.segment_tokens = -1, None, None, 0

    def append(self, tokens: np.ndarray, sizes: np.ndarray, rows: pa.RecordBatch) -> dict:
        """Write one piece; returns where it is: ``segment``, ``offset`` (its first token
        in the segment) and ``row_start`` (its first row in the stream)."""
        if self.segment_file is None or self.segment_tokens >= self.tokens_per_shard:
            self._next_segment()
        # The arrays' own buffers, not a bytes copy of each.
        self.segment_file.write(tokens.data)
        self.digest.update(tokens.data)
        self.sizes.write(sizes.data)
        self.rows.write_batch(rows)
        where = {"segment": self.segment, "offset": self.segment_tokens, "row_start": self.row_count}
        self.segment_tokens += tokens.size
        self.row_count += rows.num_rows
        return where

    def _next_segment(self) -> None:
        self._close_segment()
        self.segment += 1
        self.segment_file = FileSystems.create(self._segment_path())
        self.digest, self.segment_tokens = hashlib.sha256(), 0

    def _close_segment(self) -> None:
        if self.segment_file is not None:
            self.segment_file.close()
            written = {"tokens": self.segment_tokens, "sha256": self.digest.hexdigest()}
            _write_json(written, self._segment_path() + ".json")

    def _segment_path(self) -> str:
        return FileSystems.join(self.staging, segment_name(self.split, self.file_number, self.segment))

    def close(self) -> None:
        self._close_segment()
        self.rows.close()
        for f in (self.rows_file, self.sizes):
            f.close()


class EncodeFile(beam.DoFn):
    """One kept file, record batch by record batch: batched, multi-threaded SentencePiece
    encode with EOS, split by id hash; each split's documents of a batch (a piece) are
    appended to the file's staged stream of that split and only a small summary goes on.

    SentencePiece releases the GIL while it encodes, so batch ``k`` is encoded on a
    background thread while this one reads batch ``k + 1`` and writes batch ``k - 1``:
    the encoder's threads are not left idle while Parquet is decoded or pieces written.
    """

    def __init__(self, bundle: str, config: TokenizeConfig, staging: str):
        self.bundle = bundle
        self.config = config
        self.staging = staging

    def setup(self):
        from concurrent.futures import ThreadPoolExecutor

        from tokenizer.bundle import load_tokenizer

        self.tokenizer = load_tokenizer(self.bundle, opener=FileSystems.open)
        self.pool = self.tokenizer.thread_pool(self.config.num_threads)
        self.encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dapt-encode")

    def teardown(self):
        self.encoder.shutdown()

    def process(self, task: tuple[int, str]):
        from tokenizer.kept import KeptError, iter_batches

        number, path = task
        streams: dict[str, _Stream] = {}
        pending = None
        try:
            for batch_number, batch in enumerate(iter_batches(path, batch_rows=self.config.batch_size)):
                texts = batch.column("text").to_pylist()
                future = self.encoder.submit(self.tokenizer.encode, texts, self.pool, True)
                if pending:
                    yield from self._pieces(streams, *pending)
                pending = ((number, batch_number), batch, future)
            if pending:
                yield from self._pieces(streams, *pending)
        except KeptError as err:
            _write(FileSystems.join(self.staging, INVALID, f"{number:05d}.txt"), str(err).encode())
        finally:
            for stream in streams.values():
                stream.close()

    def _pieces(self, streams: dict[str, _Stream], key: tuple[int, int], batch: pa.RecordBatch, future):
        """A batch's documents of each split (a piece) appended to the file's stream of
        that split; yields each piece's summary."""
        encoded = future.result()
        sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        val = val_members(batch.column("id"), self.config.val_fraction, self.config.split_salt)
        rows = batch.select(ROW_COLUMNS)
        names = {column: rows.column(column).dictionary_encode() for column in ("domain", "source", "corpus")}
        for split, member in zip(SPLITS, (~val, val)):
            documents = int(np.count_nonzero(member))
            if not documents:
                continue
            if split not in streams:
                streams[split] = _Stream(self.staging, split, key[0], rows.schema, self.config.tokens_per_shard)
            whole = documents == len(encoded)
            # Ids are below the vocabulary size, so the unsafe cast to uint16/uint32 is exact.
            tokens = np.concatenate(encoded if whole else list(itertools.compress(encoded, member)),
                                    dtype=self.tokenizer.dtype, casting="unsafe")
            where = streams[split].append(
                tokens, sizes if whole else sizes[member], rows if whole else rows.filter(pa.array(member)))
            yield {"split": split, "key": key, "documents": documents, "tokens": int(tokens.size), **where,
                   "counts": {f"by_{column}": _sums(names[column], sizes, member) for column in names}}
        progress.count("documents", len(encoded))
        progress.count("tokens", int(sizes.sum()))


def _group() -> dict:
    return {"documents": 0, "tokens": 0}


def _sums(names: pa.DictionaryArray, sizes: np.ndarray, member: np.ndarray) -> dict:
    """``{name: {documents, tokens}}`` of a batch's ``member`` rows (``names`` and
    ``sizes`` are the whole batch's). (Not ``Table.group_by``: its ~2 ms a call cost more
    than the encode of a piece.)"""
    indices = names.indices.to_numpy()[member]
    documents = np.bincount(indices, minlength=len(names.dictionary))
    tokens = np.bincount(indices, weights=sizes[member], minlength=len(names.dictionary))
    return {
        name: {"documents": int(d), "tokens": int(t)}
        for name, d, t in zip(names.dictionary.to_pylist(), documents, tokens) if d
    }


class TokenStatsFn(beam.CombineFn):
    """Piece summaries into the manifest's counts (``by_domain``, ``by_source``,
    ``by_corpus``, ``by_split``: ``{name: {documents, tokens}}``)."""

    TABLES = ("by_domain", "by_source", "by_corpus", "by_split")

    def create_accumulator(self):
        return {table: Counter() for table in self.TABLES}

    def add_input(self, acc, piece):
        groups = {**piece["counts"], "by_split": {piece["split"]: piece}}
        for table in self.TABLES:
            for name, group in groups[table].items():
                acc[table][(name, "documents")] += group["documents"]
                acc[table][(name, "tokens")] += group["tokens"]
        return acc

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for acc in accumulators:
            for table, counts in acc.items():
                merged[table].update(counts)
        return merged

    def extract_output(self, acc):
        result = {}
        for table, counts in acc.items():
            groups: dict[str, dict] = {}
            for (name, field), n in counts.items():
                groups.setdefault(name, _group())[field] = n
            result[table] = dict(sorted(groups.items()))
        return result


def assign_shards(pieces: list[dict]) -> list[dict]:
    """Each split's staged segments, in (file, segment) order, as its numbered shards,
    each with its pieces in batch order."""
    plan = []
    for split in SPLITS:
        ordered = sorted((p for p in pieces if p["split"] == split), key=lambda p: tuple(p["key"]))
        shards = [list(members) for _, members in
                  itertools.groupby(ordered, key=lambda p: (p["key"][0], p["segment"]))]
        for index, members in enumerate(shards):
            plan.append({
                "split": split, "path": shard_path(split, index, len(shards)),
                "pieces": [{k: v for k, v in piece.items() if k != "counts"} for piece in members],
            })
    return plan


class WriteShard(beam.DoFn):
    """Make a staged segment its shard: check it, write its ``.idx.npy`` from the staged
    document sizes, rename it, and write its summary (with its pieces, whose ``offset``
    lets the driver place each document) as ``SHARD.bin.json``. The token count is what the
    file on disk holds, checked against what the encoder wrote and what the pieces and
    document sizes say."""

    def __init__(self, staging: str, dtype: str):
        self.staging = staging
        self.itemsize = np.dtype(dtype).itemsize

    def process(self, shard: dict):
        pieces = shard["pieces"]
        file_number, segment = pieces[0]["key"][0], pieces[0]["segment"]
        staged = FileSystems.join(self.staging, segment_name(shard["split"], file_number, segment))
        target = FileSystems.join(self.staging, shard["path"])
        # A retried bundle (distributed runners retry) may find the segment renamed already.
        if FileSystems.exists(staged):
            current = staged
        elif FileSystems.exists(target):
            current = target
        else:
            raise TokenizeError(f"{staged}: the staged shard is missing")
        written = _read_json(staged + ".json")
        on_disk = FileSystems.match([current])[0].metadata_list[0].size_in_bytes
        sizes_path = FileSystems.join(self.staging, stream_name(shard["split"], file_number)) + ".sizes"
        documents = sum(piece["documents"] for piece in pieces)
        with FileSystems.open(sizes_path) as f:
            f.seek(pieces[0]["row_start"] * 8)
            sizes = np.frombuffer(f.read(documents * 8), dtype=np.int64)
        index = np.zeros(sizes.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=index[1:])
        tokens = on_disk // self.itemsize
        claimed = {"on disk": tokens, "written": written["tokens"], "in its pieces": sum(p["tokens"] for p in pieces),
                   "in its documents' sizes": int(index[-1])}
        if on_disk % self.itemsize or len(set(claimed.values())) > 1 or sizes.size != documents:
            raise TokenizeError(f"{staged}: the staged shard disagrees with itself: "
                                f"{', '.join(f'{n} tokens {k}' for k, n in claimed.items())}; "
                                f"{sizes.size} of {documents} document sizes")
        saved = io.BytesIO()
        np.save(saved, index, allow_pickle=False)
        index_bytes = saved.getvalue()
        # The index first: creating it makes the folder (a rename does not).
        _write(FileSystems.join(self.staging, index_path(shard["path"])), index_bytes)
        if current == staged:
            FileSystems.rename([staged], [target])
        _write_json({
            "split": shard["split"], "path": shard["path"], "index_path": index_path(shard["path"]),
            "documents": documents, "tokens": tokens, "bytes": on_disk,
            "sha256": written["sha256"], "index_sha256": hashlib.sha256(index_bytes).hexdigest(),
            "pieces": pieces,
        }, FileSystems.join(self.staging, shard["path"] + ".json"))
        progress.count("shards")


def _write(path: str, data: bytes) -> None:
    with FileSystems.create(path) as out:
        out.write(data)


def _write_json(value, path: str) -> None:
    _write(path, json.dumps(value, sort_keys=True).encode())


def _read(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


def _read_json(path: str):
    return json.loads(_read(path))


def build_pipeline(
    p: beam.Pipeline, files: list[str], bundle: str, dtype: str, config: TokenizeConfig, staging: str
) -> None:
    """Add the tokenize job to ``p``; its results land in ``staging``: ``stats.json``
    (absent when no file had a document), a ``.json`` summary next to each shard and
    ``invalid/*.txt`` for unreadable files.

    Few transforms on purpose: each combine or reshuffle costs the in-process runner
    ~0.1-0.15 CPU-seconds however little data it moves, so the counts and the piece list
    are one combine, and shard summaries and problems are files, not collected lists.
    The combine has no default (``without_defaults``): the default for an empty input is
    a side input of its own stage (~0.05 CPU-s on every run), and the driver reads a
    missing ``stats.json`` as the empty counts it would have held. The stats are written
    by the step that plans the shards, not by a branch of their own. (``Create`` of more
    than one file already reshuffles them across workers.)"""
    from apache_beam.transforms.combiners import SingleInputTupleCombineFn, ToListCombineFn

    (
        p
        | "Files" >> beam.Create(list(enumerate(files)))
        | "Encode" >> beam.ParDo(EncodeFile(bundle, config, staging))
        | "Collect" >> beam.CombineGlobally(
            SingleInputTupleCombineFn(TokenStatsFn(), ToListCombineFn())).without_defaults()
        | "Plan" >> beam.FlatMap(_plan, staging)
        | "SpreadShards" >> beam.Reshuffle()
        | "WriteShards" >> beam.ParDo(WriteShard(staging, dtype))
    )


def _plan(collected: tuple[dict, list[dict]], staging: str) -> list[dict]:
    """Write the counts as ``stats.json``; the shards of the pieces, to be written."""
    stats, pieces = collected
    _write_json(stats, FileSystems.join(staging, "stats.json"))
    return assign_shards(pieces)


def _matching(pattern: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _documents_table(staging: str, shards: list[dict]) -> pa.Table:
    """Every staged document row with its split, token count, shard and offset in it,
    sorted by id. A stream's pieces are consecutive row ranges, so each row's shard and
    offset come from its piece by ``np.repeat``, not a loop over documents."""
    placed: dict[tuple[str, int], list[tuple[dict, int]]] = {}
    paths = [shard["path"] for shard in shards]
    for number, shard in enumerate(shards):
        for piece in shard["pieces"]:
            placed.setdefault((shard["split"], piece["key"][0]), []).append((piece, number))
    parts = []
    for (split, file_number), members in sorted(placed.items()):
        members.sort(key=lambda m: m[0]["row_start"])
        base = FileSystems.join(staging, stream_name(split, file_number))
        rows = pa.ipc.open_stream(_read(base + ".arrow")).read_all()
        sizes = np.frombuffer(_read(base + ".sizes"), dtype=np.int64)
        counts = [piece["documents"] for piece, _ in members]
        if not rows.num_rows == sizes.size == sum(counts):
            raise TokenizeError(f"{base}: {rows.num_rows} staged rows, {sizes.size} sizes, {sum(counts)} in pieces")
        # A document's first token in the stream, moved to where its piece starts in its shard.
        in_stream = np.cumsum(sizes) - sizes
        shift = np.repeat([piece["offset"] - in_stream[piece["row_start"]] for piece, _ in members], counts)
        shard = np.repeat([number for _, number in members], counts)
        parts.append(pa.table({
            **{column: rows.column(column) for column in ROW_COLUMNS},
            "split": pa.repeat(split, rows.num_rows), "n_tokens": sizes,
            "shard": pa.array(paths, pa.string()).take(shard), "offset": in_stream + shift,
        }).cast(DOCUMENTS_SCHEMA))
    table = pa.concat_tables(parts) if parts else DOCUMENTS_SCHEMA.empty_table()
    return table.sort_by("id")


def repeated_ids(documents: pa.Table) -> list[str]:
    """Ids that occur more than once in the id-sorted document table."""
    ids = documents.column("id")
    if ids.length() < 2:
        return []
    same = pc.equal(ids.slice(1), ids.slice(0, ids.length() - 1))
    return sorted(set(ids.slice(1).filter(same).to_pylist()))


def _grouped(table: pa.Table, column: str) -> dict:
    rows = table.group_by(column).aggregate([("n_tokens", "sum"), ("n_tokens", "count")]).to_pylist()
    return {
        r[column]: {"documents": r["n_tokens_count"], "tokens": r["n_tokens_sum"]}
        for r in sorted(rows, key=lambda r: r[column])
    }


def check_counts(stats: dict, shards: list[dict], documents: pa.Table, clean_stats: list[dict]) -> None:
    """Raise :class:`TokenizeError` unless every count agrees (see the module docstring)."""
    problems = []
    for split in SPLITS:
        expected = stats["by_split"].get(split, _group())
        written = {
            "documents": sum(s["documents"] for s in shards if s["split"] == split),
            "tokens": sum(s["tokens"] for s in shards if s["split"] == split),
        }
        if written != expected:
            problems.append(f"{split}: shards hold {written}, the encoder counted {expected}")
    for column in ("domain", "source", "corpus", "split"):
        table = f"by_{column}"
        found = _grouped(documents, column)
        if found != stats[table]:
            problems.append(f"{table}: documents.parquet gives {found}, the encoder counted {stats[table]}")
    if clean_stats:
        kept = sum(s["kept"] for s in clean_stats)
        if kept != documents.num_rows:
            problems.append(f"the inputs' stats.json list {kept} kept documents, {documents.num_rows} were tokenized")
    if problems:
        raise TokenizeError("token accounting failed: " + "; ".join(problems))


def _clean_stats(inputs: list[str]) -> list[dict]:
    """The ``stats.json`` of each input that is a whole clean output, or [] if any is not."""
    found = []
    for path in inputs:
        stats = FileSystems.join(path, "stats.json")
        if not FileSystems.exists(stats):
            return []
        found.append(_read_json(stats))
    return found


def _commit(output_dir: str, staging: str, documents: pa.Table, manifest: dict) -> None:
    buffer = io.BytesIO()
    # Ids are unique: a dictionary page for them is built, overflows and is abandoned
    # (at 16x the sample 0.12 against 0.05 s, and 1.40 against 1.07 MB written).
    pq.write_table(documents, buffer, compression="zstd",
                   use_dictionary=[name for name in DOCUMENTS_SCHEMA.names if name != "id"])
    _write(FileSystems.join(staging, DOCUMENTS_FILE), buffer.getvalue())
    for split in SPLITS:
        remove_tree(FileSystems.join(output_dir, split))
    for shard in manifest["shards"]:
        for key in ("path", "index_path"):
            target = FileSystems.join(output_dir, shard[key])
            if "://" not in target:
                os.makedirs(os.path.dirname(target), exist_ok=True)
            FileSystems.rename([FileSystems.join(staging, shard[key])], [target])
    target = FileSystems.join(output_dir, DOCUMENTS_FILE)
    if FileSystems.exists(target):
        FileSystems.delete([target])
    FileSystems.rename([FileSystems.join(staging, DOCUMENTS_FILE)], [target])
    _write_json_pretty(manifest, FileSystems.join(staging, MANIFEST_FILE))
    FileSystems.rename([FileSystems.join(staging, MANIFEST_FILE)], [FileSystems.join(output_dir, MANIFEST_FILE)])
    remove_tree(staging)


def _write_json_pretty(value, path: str) -> None:
    _write(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def run_tokenize(
    inputs: list[str],
    bundle: str,
    output_dir: str,
    config: TokenizeConfig | None = None,
    beam_args: list[str] | None = None,
    show_progress: bool = True,
) -> dict:
    """Encode every kept document of ``inputs`` with the frozen ``bundle``; returns the
    manifest written to ``output_dir/manifest.json``. Raises :class:`TokenizeError`
    (committing nothing) on invalid input or counts that disagree, and
    :class:`~tokenizer.kept.KeptError` / :class:`~tokenizer.bundle.BundleError` /
    :class:`~pipelines.output.LocationError` before starting when an input, the bundle or
    the output location is unusable."""
    import importlib.metadata
    from datetime import UTC, datetime

    from pipelines.runner import pipeline_options
    from tokenizer.bundle import load_tokenizer
    from tokenizer.kept import check_schema, describe_inputs, kept_files

    config = config or TokenizeConfig()
    check_location(output_dir)
    tokenizer = load_tokenizer(bundle, opener=FileSystems.open)
    groups = kept_files(inputs)
    files = [f for group in groups for f in group]
    for path in files:
        check_schema(path)
    if len(set(files)) != len(files):
        repeated = sorted(f for f, n in Counter(files).items() if n > 1)
        raise TokenizeError(f"{repeated[0]} is given more than once; every kept file must be read once")

    manifest_path = FileSystems.join(output_dir, MANIFEST_FILE)
    if FileSystems.exists(manifest_path):
        FileSystems.delete([manifest_path])
    staging = FileSystems.join(output_dir, STAGING)
    remove_tree(staging)
    options, runner = pipeline_options(beam_args)
    started = time.monotonic()
    with progress.ProgressReporter("tokenize", PROGRESS_STEPS) if show_progress else contextlib.nullcontext():
        with beam.Pipeline(runner=runner, options=options) as p:
            build_pipeline(p, files, bundle, tokenizer.dtype.name, config, staging)
    invalid = [_read(path).decode() for path in _matching(FileSystems.join(staging, INVALID, "*.txt"))]
    if invalid:
        remove_tree(staging)
        more = f" (and {len(invalid) - 1} more problems)" if len(invalid) > 1 else ""
        raise TokenizeError(f"{sorted(invalid)[0]}{more}")
    stats_path = FileSystems.join(staging, "stats.json")
    # No stats.json: no document was encoded, and the combine (without a default) had no output.
    counts = TokenStatsFn()
    stats = _read_json(stats_path) if FileSystems.exists(stats_path) else counts.extract_output(
        counts.create_accumulator())
    shards = sorted(
        (_read_json(path) for path in _matching(FileSystems.join(staging, "*", "shard-*.json"))),
        key=lambda s: s["path"],
    )
    documents = _documents_table(staging, shards)
    try:
        repeated = repeated_ids(documents)
        if repeated:
            more = f" (and {len(repeated) - 1} more ids)" if len(repeated) > 1 else ""
            raise TokenizeError(
                f"document id {repeated[0]!r} appears more than once in the inputs{more}; ids must be unique"
            )
        check_counts(stats, shards, documents, _clean_stats(inputs))
    except TokenizeError:
        remove_tree(staging)
        raise
    for shard in shards:
        del shard["pieces"]
    by_split = stats["by_split"]
    manifest = {
        "tokenizer": bundle,
        "tokenizer_sha256": tokenizer.sha256,
        "vocab_size": tokenizer.vocab_size,
        "dtype": tokenizer.dtype.name,
        "eos_id": tokenizer.eos_id,
        "val_fraction": config.val_fraction,
        "split_salt": config.split_salt,
        "train_tokens": by_split.get("train", _group())["tokens"],
        "val_tokens": by_split.get("val", _group())["tokens"],
        "train_documents": by_split.get("train", _group())["documents"],
        "val_documents": by_split.get("val", _group())["documents"],
        "unique_documents": documents.num_rows,
        "by_domain": stats["by_domain"],
        "by_source": stats["by_source"],
        "by_corpus": stats["by_corpus"],
        "shards": shards,
        "inputs": describe_inputs(inputs, groups),
        "config": config.model_dump(),
        "seconds": round(time.monotonic() - started, 2),
        "dapt_version": importlib.metadata.version("dapt"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _commit(output_dir, staging, documents, manifest)
    return manifest
