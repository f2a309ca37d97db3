"""The cleaning job: one Apache Beam pipeline from raw corpora to ``kept/``,
``rejected/``, ``quarantine/`` and ``stats.json``.

Flow (each box its own transform; per-document logic lives in :mod:`pipelines.steps`)::

    read ─► unique ids ─► repair ─► markup ─► boilerplate ─► quality filters ─► language
         ─► PII ─► counts ─► exact dedup ─► near dedup ─► kept ─► dedup index
    rejected = every filter's and dedup's drops (with reason); quarantine = unreadable
    earlier runs' dedup index parts (optional) ─► exact dedup, near dedup

The embedded default runs in-process on Beam's FnApiRunner (what the DirectRunner picks
for batch pipelines) and is chosen explicitly, so no Prism binary download is ever
attempted. Any other Beam pipeline option passes through unchanged.

Documents move in batches (:mod:`pipelines.batch`): the reader cuts each file into
batches of ``clean.batch_size`` documents, every step runs over a whole
batch, and only quarantine records travel one by one.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from pipelines.lifelong_imports import lifelong_imports

# Beam and the steps' tables and models live as long as the process: importing them with the
# collector paused and then frozen costs ~0.35 CPU-s less (1.3 -> 0.9 s on the CI machine).
with lifelong_imports():
    import apache_beam as beam
    import pyarrow as pa
    import xxhash
    from apache_beam.io.filesystems import FileSystems

    from pipelines import output, progress
    from pipelines.batch import DocBatch, pack, unpack
    from pipelines.config import CleanConfig, CorpusConfig, PipelineConfig
    from pipelines.dedup import ExactDedup, NearDedup, check_index_parts, index_table, read_index
    from pipelines.read import QUARANTINE, CorpusReader, list_files
    from pipelines.runner import pipeline_options
    from pipelines.stats import StatsCombineFn, check_accounting, partial_stats
    from pipelines.steps.base import Doc
    from pipelines.steps.boilerplate import RemoveBoilerplate, distinct_lines, frequent_lines
    from pipelines.steps.counts import CountDocument
    from pipelines.steps.language import LanguageFilter
    from pipelines.steps.markup import StripMarkup
    from pipelines.steps.minhash import MinHasher
    from pipelines.steps.pii import PIIRedactor
    from pipelines.steps.profiles import build_filters
    from pipelines.steps.repair import Repair

REJECTED = "rejected"
PROGRESS_STEPS = ["read", "repair", "markup", "boilerplate", "filters", "language", "pii", "counts", "kept"]


@dataclass(frozen=True)
class DomainSteps:
    """The per-domain step objects, built once per worker from the config."""

    filters: list
    language: LanguageFilter
    pii: PIIRedactor | None


def domain_steps(config: CleanConfig, domain: str) -> DomainSteps:
    profile = config.profile(domain)
    language = profile.language
    return DomainSteps(
        filters=build_filters(profile.filter_profile, profile.filters),
        language=LanguageFilter(tuple(language.allowed), language.min_score, language.min_chars),
        pii=PIIRedactor(clinical_dates=profile.clinical_dates) if config.pii else None,
    )


class CountingDoFn(beam.DoFn):
    """A DoFn that reports progress (:mod:`pipelines.progress`) in batches of
    :attr:`every` counts, so that a document does not pay a Beam metrics update at
    every step; the live progress lags by at most that many documents per step."""

    every = 256

    def start_bundle(self):
        self._pending: Counter[str] = Counter()
        self._since = 0

    def count(self, step: str, n: int = 1) -> None:
        self._pending[step] += n
        self._since += n
        if self._since >= self.every:
            self._flush()

    def finish_bundle(self):
        self._flush()

    def _flush(self) -> None:
        for step, n in self._pending.items():
            progress.count(step, n)
        self._pending.clear()
        self._since = 0


@beam.typehints.with_output_types(DocBatch)
class ReadFiles(CountingDoFn):
    """One file's documents in batches; its unreadable records one by one, tagged."""

    def __init__(self, corpora: dict[str, CorpusConfig], batch_size: int):
        self.corpora = corpora
        self.batch_size = batch_size

    def process(self, task: tuple[str, str]):
        corpus_name, path = task
        batch = []
        for kind, item in CorpusReader(self.corpora[corpus_name]).read(path):
            self.count("read")
            if kind != "doc":
                yield beam.pvalue.TaggedOutput(QUARANTINE, item)
                continue
            batch.append(item)
            if len(batch) == self.batch_size:
                yield DocBatch(batch)
                batch = []
        if batch:
            yield DocBatch(batch)


@beam.typehints.with_output_types(DocBatch)
class QuarantineDuplicateIds(beam.DoFn):
    """Ids must be unique (dedup and the Parquet outputs join on them): the first
    occurrence by (file, position) wins, later ones are quarantined."""

    def process(self, batch: DocBatch, repeats: dict):
        if not repeats:
            yield batch
            return
        unique = []
        for doc in batch.docs:
            first = repeats.get(doc["id"])
            if first is None or first == doc["_origin"]:
                unique.append(doc)
                continue
            path, position = doc["_origin"]
            yield beam.pvalue.TaggedOutput(
                QUARANTINE,
                {
                    "corpus": doc["corpus"], "domain": doc["domain"], "file": path, "position": position,
                    "error": f"duplicate id {doc['id']!r} (first at {first[0]}:{first[1]})", "raw": doc["text"][:500],
                },
            )
        if unique:
            yield DocBatch(unique)


#: Ids are checked in this many groups, each one key of a shuffle: enough for a
#: distributed runner to spread the check over workers, few enough that a batch sends a
#: handful of elements rather than one per document.
ID_GROUPS = 16


def _ids_by_group(batch: DocBatch) -> Iterator[tuple[int, list[tuple[str, tuple[str, int]]]]]:
    groups: dict[int, list[tuple[str, tuple[str, int]]]] = {}
    for doc in batch.docs:
        groups.setdefault(xxhash.xxh64_intdigest(doc["id"].encode()) % ID_GROUPS, []).append((doc["id"], doc["_origin"]))
    return iter(groups.items())


def repeated_ids(pairs: Iterable[tuple[str, tuple[str, int]]]) -> dict[str, tuple[str, int]]:
    """Each id of the ``(id, (file, position))`` pairs read more than once, with its first
    (file, position): the occurrence that is kept."""
    origins: dict[str, list[tuple[str, int]]] = {}
    for doc_id, origin in pairs:
        origins.setdefault(doc_id, []).append(origin)
    return {doc_id: min(found) for doc_id, found in origins.items() if len(found) > 1}


class FrequentLines(beam.CombineFn):
    """Each source's boilerplate lines (:func:`~pipelines.steps.boilerplate.frequent_lines`)
    from its documents' candidate lines and document count.

    The counts are Counters per bundle, not one element per line: the samples have nine
    candidate lines per document, and an element costs the runner more than counting
    it (one element per line, counted by ``Count.PerElement``, cost about 5 % of the
    job's CPU time on the samples). The distinct lines of the whole run meet on one
    worker, as the dedup's content hashes do.
    """

    def __init__(self, profiles: dict):
        self.min_chars = {d: p.boilerplate.min_line_chars for d, p in profiles.items()}
        self.thresholds = {d: (p.boilerplate.min_fraction, p.boilerplate.min_docs) for d, p in profiles.items()}

    def create_accumulator(self) -> tuple[Counter, Counter]:
        return Counter(), Counter()

    def add_input(self, acc, batch: DocBatch):
        for doc in batch.docs:
            acc[0][(doc["domain"], doc["source"])] += 1
            acc[1].update(distinct_lines(doc, self.min_chars[doc["domain"]]))
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        docs, lines = next(accs)
        for more_docs, more_lines in accs:
            docs.update(more_docs)
            lines.update(more_lines)
        return docs, lines

    def extract_output(self, acc) -> dict:
        docs, lines = acc
        return frequent_lines(lines.items(), docs, self.thresholds)


@beam.typehints.with_output_types(DocBatch)
class ApplyTransform(CountingDoFn):
    """Runs one :class:`~pipelines.steps.base.Transform` over each document of a batch
    and counts it."""

    def __init__(self, step):
        self.step = step

    def process(self, batch: DocBatch, *side_inputs):
        step = self.step
        yield DocBatch([step(doc, *side_inputs) for doc in batch.docs])
        self.count(step.name, len(batch))


@beam.typehints.with_output_types(DocBatch)
class CountKept(CountingDoFn):
    def process(self, batch: DocBatch):
        self.count("kept", len(batch))
        yield batch


@beam.typehints.with_output_types(DocBatch, **{REJECTED: DocBatch})
class ApplyDomainSteps(CountingDoFn):
    """Quality filters, then language, then PII redaction, with each domain's profile.

    The three steps share one DoFn only because they share the per-domain step objects;
    each is still its own class in :mod:`pipelines.steps` with its own tests.
    """

    def __init__(self, config: CleanConfig):
        self.config = config
        self._steps: dict[str, DomainSteps] = {}

    def _for(self, domain: str) -> DomainSteps:
        steps = self._steps.get(domain)
        if steps is None:
            steps = self._steps[domain] = domain_steps(self.config, domain)
        return steps

    def process(self, batch: DocBatch):
        kept, rejected = [], []
        for doc in batch.docs:
            steps = self._for(doc["domain"])
            verdict = self._verdict(steps, doc)
            if verdict is None:
                if steps.pii is not None:
                    doc = steps.pii(doc)
                    self.count("pii")
                kept.append(doc)
            else:
                doc["reason"], doc["reason_detail"] = verdict
                self.count(f"rejected_{verdict[0]}")
                rejected.append(doc)
        if kept:
            yield DocBatch(kept)
        if rejected:
            yield beam.pvalue.TaggedOutput(REJECTED, DocBatch(rejected))

    def _verdict(self, steps: DomainSteps, doc: Doc) -> tuple[str, str] | None:
        """``(reason, detail)`` of the first quality filter or the language check that
        drops the document, else ``None``."""
        for step in steps.filters:
            verdict = step.check(doc)
            if verdict is not None:
                return verdict
        self.count("filters")
        verdict = steps.language.check(doc)
        if verdict is None:
            self.count("language")
        return verdict


class WriteShards(beam.PTransform):
    """Deterministic Parquet shards of one output kind (see :mod:`pipelines.output`), from
    a PCollection of :class:`DocBatch` (``kept``, ``rejected``) or of quarantine records.

    Each batch's rows are grouped by shard before the shuffle, so it moves one element
    per (batch, shard) rather than one per row, packed (:func:`~pipelines.batch.pack`):
    the in-process runner decodes a whole shuffle at once, and as Python rows every
    shard's documents would be in memory together.

    ``shards`` is a singleton PCollection with the shard count. It is derived from the
    input record count, which is known long before the documents reach this step, so
    the keying fuses with the step that produces them instead of making every document
    wait (and be encoded once more) for a count of its own output.
    """

    def __init__(self, kind: str, directory: str, shards, compression: str):
        super().__init__(f"Write{kind.title()}")
        self.kind = kind
        self.directory = directory
        self.shards = shards
        self.compression = compression

    def expand(self, items):
        kind = self.kind
        shards = beam.pvalue.AsSingleton(self.shards)
        return (
            items
            | "Key" >> beam.FlatMap(_rows_by_shard, kind, shards)
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.Map(
                lambda kv, n: output.write_shard(
                    self.directory, kind, kv[0], n, [row for part in kv[1] for row in unpack(part)], self.compression
                ),
                shards,
            )
        )


def _rows_by_shard(item, kind: str, shards: int) -> Iterator[tuple[int, bytes]]:
    rows = [item] if kind == "quarantine" else [output.doc_row(doc, kind) for doc in item.docs]
    by_shard: dict[int, list[dict]] = {}
    for row in rows:
        by_shard.setdefault(output.shard_of(output.row_key(kind, row), shards), []).append(row)
    return ((shard, pack(part)) for shard, part in by_shard.items())


class WriteIndex(beam.PTransform):
    """``dedup_index.parquet`` of the kept documents, one file (see :mod:`pipelines.output`).

    Only the index rows (no text) are gathered on one worker, as small Arrow tables.
    """

    def __init__(self, directory: str, hasher: MinHasher, compression: str):
        super().__init__()
        self.directory = directory
        self.hasher = hasher
        self.compression = compression

    def expand(self, kept):
        return (
            kept
            | "Rows" >> beam.Map(lambda batch, hasher: index_table(batch.docs, hasher), self.hasher)
            | "Gather" >> beam.combiners.ToList()
            | "Write" >> beam.Map(self._write)
        )

    def _write(self, tables: list) -> str:
        # The empty table gives the schema when no document was kept.
        table = pa.concat_tables([index_table([], self.hasher), *tables])
        return output.write_index(self.directory, table, self.compression)


def dedup_hasher(config: CleanConfig) -> MinHasher:
    dedup = config.dedup
    return MinHasher(dedup.shingle_size, dedup.num_perm, dedup.bands, dedup.rows, dedup.seed)


def build_pipeline(
    p: beam.Pipeline, config: PipelineConfig, staging: str, dedup_index: Sequence[str] = ()
) -> beam.PCollection:
    """Add the cleaning job to ``p``; returns the PCollection holding the stats dict.

    ``dedup_index``: index files of earlier runs, already checked (:func:`run_clean`).
    """
    clean = config.clean
    corpora = {c.name: c for c in config.corpora}
    tasks, missing = [], []
    for corpus in config.corpora:
        files, unmatched = list_files(corpus)
        tasks += [(corpus.name, f) for f in files]
        missing += unmatched

    read = (
        p
        | "Files" >> beam.Create(tasks)
        | "SpreadFiles" >> beam.Reshuffle()
        | "Read" >> beam.ParDo(ReadFiles(corpora, clean.batch_size)).with_outputs(QUARANTINE, main="docs")
    )
    unmatched_paths = p | "UnmatchedPaths" >> beam.Create(missing)

    repeats = (
        read.docs
        | "IdOrigins" >> beam.FlatMap(_ids_by_group)
        | "GroupIds" >> beam.GroupByKey()
        | "RepeatedIds" >> beam.FlatMap(lambda group: repeated_ids(pair for part in group[1] for pair in part).items())
    )
    marked = (
        read.docs
        | "Repair" >> beam.ParDo(ApplyTransform(Repair()))
        | "Markup" >> beam.ParDo(ApplyTransform(StripMarkup()))
    )

    profiles = {domain: clean.profile(domain) for domain in {c.domain for c in config.corpora}}
    frequent = marked | "FrequentLines" >> beam.CombineGlobally(FrequentLines(profiles))
    # The id check sits here, not right after reading, so that it shares the one wait
    # for side inputs with the boilerplate step (every wait costs an encode and decode of
    # every document). A repeated-id record thus still votes once in the line counts.
    unique = marked | "UniqueIds" >> beam.ParDo(
        QuarantineDuplicateIds(), beam.pvalue.AsDict(repeats)
    ).with_outputs(QUARANTINE, main="docs")
    debased = unique.docs | "Boilerplate" >> beam.ParDo(
        ApplyTransform(RemoveBoilerplate()), beam.pvalue.AsSingleton(frequent)
    )

    judged = debased | "FilterLanguagePII" >> beam.ParDo(ApplyDomainSteps(clean)).with_outputs(REJECTED, main="docs")
    counted = judged.docs | "Counts" >> beam.ParDo(ApplyTransform(CountDocument()))

    dedup, hasher = clean.dedup, dedup_hasher(clean)
    earlier = read_index(p, dedup_index) if dedup_index and (dedup.exact or dedup.near) else None
    kept, dedup_rejected = counted, []
    if dedup.exact:
        exact = kept | "ExactDedup" >> ExactDedup(earlier=earlier)
        kept, dedup_rejected = exact.kept, dedup_rejected + [exact.rejected]
    if dedup.near:
        near = kept | "NearDedup" >> NearDedup(hasher, earlier=earlier)
        kept, dedup_rejected = near.kept, dedup_rejected + [near.rejected]
    kept = kept | "CountKept" >> beam.ParDo(CountKept())
    kept | "WriteIndex" >> WriteIndex(staging, hasher, clean.compression)

    rejected = [judged[REJECTED], *dedup_rejected] | "AllRejected" >> beam.Flatten()
    quarantined = [read[QUARANTINE], unique[QUARANTINE], unmatched_paths] | "AllQuarantined" >> beam.Flatten()

    # Ones, not the records, go into the Flatten: a Flatten of PCollections made in
    # different stages materializes its inputs.
    shards = (
        [
            read.docs | "Docs" >> beam.Map(len),
            read[QUARANTINE] | "OneBad" >> beam.Map(lambda _: 1),
            unmatched_paths | "OneMissing" >> beam.Map(lambda _: 1),
        ]
        | "AllInput" >> beam.Flatten()
        | "CountInput" >> beam.CombineGlobally(sum)
        | "Shards" >> beam.Map(output.num_shards, clean.docs_per_shard)
    )
    kept | WriteShards("kept", staging, shards, clean.compression)
    rejected | WriteShards("rejected", staging, shards, clean.compression)
    quarantined | WriteShards("quarantine", staging, shards, clean.compression)

    partials = [
        read.docs | "StatsInput" >> beam.Map(lambda b: partial_stats("input", b.docs)),
        read[QUARANTINE] | "StatsInputQ" >> beam.Map(lambda q: partial_stats("input", [q])),
        unmatched_paths | "StatsInputMissing" >> beam.Map(lambda q: partial_stats("input", [q])),
        kept | "StatsKept" >> beam.Map(lambda b: partial_stats("kept", b.docs)),
        rejected | "StatsRejected" >> beam.Map(lambda b: partial_stats("rejected", b.docs)),
        quarantined | "StatsQuarantined" >> beam.Map(lambda q: partial_stats("quarantined", [q])),
    ]
    return partials | "AllStats" >> beam.Flatten() | "Stats" >> beam.CombineGlobally(StatsCombineFn())


def run_clean(
    config: PipelineConfig,
    output_dir: str,
    beam_args: list[str] | None = None,
    show_progress: bool = True,
    dedup_index: Sequence[str] = (),
) -> dict:
    """Run the cleaning job; returns the stats written to ``output_dir/stats.json``.

    ``dedup_index``: ``dedup_index.parquet`` files of earlier runs; a document that
    duplicates one they list is rejected (see :mod:`pipelines.dedup`).

    Raises :class:`~pipelines.stats.AccountingError` (and commits nothing) when
    input != kept + rejected + quarantined, :class:`~pipelines.dedup.DedupIndexError`
    (before touching ``output_dir``) for an index part that is unreadable or was made
    with other dedup settings, and :class:`~pipelines.output.LocationError` when
    ``output_dir`` is on a filesystem that cannot be used here.
    """
    output.check_location(output_dir)
    check_index_parts(dedup_index, dedup_hasher(config.clean), output_dir)
    staging = output.prepare(output_dir)
    options, runner = pipeline_options(beam_args)
    stats_holder = FileSystems.join(staging, "stats.partial.json")
    started = time.monotonic()
    with progress.ProgressReporter("clean", PROGRESS_STEPS) if show_progress else contextlib.nullcontext():
        with beam.Pipeline(runner=runner, options=options) as p:
            stats = build_pipeline(p, config, staging, dedup_index)
            stats | "WriteStats" >> beam.Map(_write_json, stats_holder)
    stats = _read_json(stats_holder)
    stats["seconds"] = round(time.monotonic() - started, 2)
    listed = set()
    for corpus in config.corpora:
        listed.update(list_files(corpus)[0])
    stats["empty_files"] = sorted(f for f in listed if f not in stats["files"])
    check_accounting(stats)
    output.commit(output_dir, stats, config.clean.docs_per_shard, config.clean.compression)
    return stats


def _write_json(value: dict, path: str) -> None:
    with FileSystems.create(path) as out:
        out.write(json.dumps(value, sort_keys=True).encode())


def _read_json(path: str) -> dict:
    with FileSystems.open(path) as f:
        return json.loads(f.read())
