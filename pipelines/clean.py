"""The cleaning job: one Apache Beam pipeline from raw corpora to ``kept/``,
``rejected/``, ``quarantine/`` and ``stats.json``.

Flow (each box its own transform; per-document logic lives in :mod:`pipelines.steps`)::

    read ─► unique ids ─► repair ─► markup ─► boilerplate ─► quality filters ─► language
         ─► PII ─► counts ─► exact dedup ─► near dedup ─► kept
    rejected = every filter's and dedup's drops (with reason); quarantine = unreadable

The embedded default runs in-process on Beam's FnApiRunner (what the DirectRunner picks
for batch pipelines) and is chosen explicitly, so no Prism binary download is ever
attempted. Any other Beam pipeline option passes through unchanged.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines import output, progress
from pipelines.config import CleanConfig, CorpusConfig, PipelineConfig
from pipelines.dedup import ExactDedup, NearDedup
from pipelines.read import QUARANTINE, CorpusReader, list_files
from pipelines.stats import StatsCombineFn, check_accounting, summarize
from pipelines.steps.base import Doc
from pipelines.steps.boilerplate import RemoveBoilerplate, boilerplate_threshold, distinct_lines
from pipelines.steps.counts import CountDocument
from pipelines.steps.language import LanguageFilter
from pipelines.steps.markup import StripMarkup
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


class ReadFiles(beam.DoFn):
    def __init__(self, corpora: dict[str, CorpusConfig]):
        self.corpora = corpora

    def process(self, task: tuple[str, str]):
        corpus_name, path = task
        for kind, item in CorpusReader(self.corpora[corpus_name]).read(path):
            progress.count("read")
            yield item if kind == "doc" else beam.pvalue.TaggedOutput(QUARANTINE, item)


class QuarantineDuplicateIds(beam.DoFn):
    """Ids must be unique (dedup and the Parquet outputs join on them): the first
    occurrence by (file, position) wins, later ones are quarantined."""

    def process(self, doc: Doc, repeats: dict):
        first = repeats.get(doc["id"])
        if first is not None and first != doc["_origin"]:
            path, position = doc["_origin"]
            yield beam.pvalue.TaggedOutput(
                QUARANTINE,
                {
                    "corpus": doc["corpus"], "domain": doc["domain"], "file": path, "position": position,
                    "error": f"duplicate id {doc['id']!r} (first at {first[0]}:{first[1]})", "raw": doc["text"][:500],
                },
            )
        else:
            yield doc


def _first_origin(kv):
    doc_id, origins = kv
    origins = sorted(origins)
    if len(origins) > 1:
        yield doc_id, origins[0]


class ApplyTransform(beam.DoFn):
    """Runs one :class:`~pipelines.steps.base.Transform` and counts it."""

    def __init__(self, step):
        self.step = step

    def process(self, doc: Doc, *side_inputs):
        doc = self.step(doc, *side_inputs)
        progress.count(self.step.name)
        yield doc


class ApplyDomainSteps(beam.DoFn):
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

    def process(self, doc: Doc):
        steps = self._for(doc["domain"])
        for step in steps.filters:
            verdict = step.check(doc)
            if verdict is not None:
                yield _reject(doc, *verdict)
                return
        progress.count("filters")
        verdict = steps.language.check(doc)
        if verdict is not None:
            yield _reject(doc, *verdict)
            return
        progress.count("language")
        if steps.pii is not None:
            doc = steps.pii(doc)
            progress.count("pii")
        yield doc


def _reject(doc: Doc, reason: str, detail: str):
    doc["reason"] = reason
    doc["reason_detail"] = detail
    progress.count(f"rejected_{reason}")
    return beam.pvalue.TaggedOutput(REJECTED, doc)


class WriteShards(beam.PTransform):
    """Deterministic Parquet shards of one output kind (see :mod:`pipelines.output`).

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
            | "Key" >> beam.Map(_keyed_row, kind, shards)
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.Map(
                lambda kv, n: output.write_shard(self.directory, kind, kv[0], n, list(kv[1]), self.compression),
                shards,
            )
        )


def _keyed_row(item: dict, kind: str, shards: int) -> tuple[int, dict]:
    row = item if kind == "quarantine" else output.doc_row(item, kind)
    return output.shard_of(output.row_key(kind, row), shards), row


def build_pipeline(p: beam.Pipeline, config: PipelineConfig, staging: str) -> beam.PCollection:
    """Add the cleaning job to ``p``; returns the PCollection holding the stats dict."""
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
        | "Read" >> beam.ParDo(ReadFiles(corpora)).with_outputs(QUARANTINE, main="docs")
    )
    unmatched_paths = p | "UnmatchedPaths" >> beam.Create(missing)

    repeats = (
        read.docs
        | "IdOrigin" >> beam.Map(lambda d: (d["id"], d["_origin"]))
        | "GroupIds" >> beam.GroupByKey()
        | "RepeatedIds" >> beam.FlatMap(_first_origin)
    )
    marked = (
        read.docs
        | "Repair" >> beam.ParDo(ApplyTransform(Repair()))
        | "Markup" >> beam.ParDo(ApplyTransform(StripMarkup()))
    )

    profiles = {domain: clean.profile(domain) for domain in {c.domain for c in config.corpora}}
    docs_per_source = marked | "SourceOf" >> beam.Map(lambda d: (d["domain"], d["source"])) | (
        "DocsPerSource" >> beam.combiners.Count.PerElement()
    )
    frequent = (
        marked
        | "CandidateLines" >> beam.FlatMap(lambda d: distinct_lines(d, profiles[d["domain"]].boilerplate.min_line_chars))
        | "LineDocs" >> beam.combiners.Count.PerElement()
        | "Frequent" >> beam.Filter(
            lambda kv, n_docs: kv[1] >= boilerplate_threshold(
                n_docs.get(kv[0][0], 0),
                profiles[kv[0][0][0]].boilerplate.min_fraction,
                profiles[kv[0][0][0]].boilerplate.min_docs,
            ),
            beam.pvalue.AsDict(docs_per_source),
        )
        | "BySource" >> beam.Map(lambda kv: kv[0])
        | "GroupLines" >> beam.GroupByKey()
        | "LineSets" >> beam.MapTuple(lambda key, lines: (key, frozenset(lines)))
    )
    # The id check sits here, not right after reading, so that it shares the one wait
    # for side inputs with the boilerplate step (every wait costs an encode and decode of
    # every document). A repeated-id record thus still votes once in the line counts.
    unique = marked | "UniqueIds" >> beam.ParDo(
        QuarantineDuplicateIds(), beam.pvalue.AsDict(repeats)
    ).with_outputs(QUARANTINE, main="docs")
    debased = unique.docs | "Boilerplate" >> beam.ParDo(
        ApplyTransform(RemoveBoilerplate()), beam.pvalue.AsDict(frequent)
    )

    judged = debased | "FilterLanguagePII" >> beam.ParDo(ApplyDomainSteps(clean)).with_outputs(REJECTED, main="docs")
    counted = judged.docs | "Counts" >> beam.ParDo(ApplyTransform(CountDocument()))

    dedup = clean.dedup
    kept, dedup_rejected = counted, []
    if dedup.exact:
        exact = kept | "ExactDedup" >> ExactDedup()
        kept, dedup_rejected = exact.kept, dedup_rejected + [exact.rejected]
    if dedup.near:
        near = kept | "NearDedup" >> NearDedup(
            shingle_size=dedup.shingle_size, num_perm=dedup.num_perm, bands=dedup.bands, rows=dedup.rows, seed=dedup.seed
        )
        kept, dedup_rejected = near.kept, dedup_rejected + [near.rejected]
    kept = kept | "CountKept" >> beam.Map(lambda d: (progress.count("kept"), d)[1])

    rejected = [judged[REJECTED], *dedup_rejected] | "AllRejected" >> beam.Flatten()
    quarantined = [read[QUARANTINE], unique[QUARANTINE], unmatched_paths] | "AllQuarantined" >> beam.Flatten()

    # Ones, not the records, go into the Flatten: a Flatten of PCollections made in
    # different stages materializes its inputs.
    shards = (
        [
            read.docs | "OneDoc" >> beam.Map(lambda _: 1),
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

    summaries = [
        read.docs | "SumInput" >> beam.Map(lambda d: summarize("input", d)),
        read[QUARANTINE] | "SumInputQ" >> beam.Map(lambda q: summarize("input", q)),
        unmatched_paths | "SumInputMissing" >> beam.Map(lambda q: summarize("input", q)),
        kept | "SumKept" >> beam.Map(lambda d: summarize("kept", d)),
        rejected | "SumRejected" >> beam.Map(lambda d: summarize("rejected", d)),
        quarantined | "SumQuarantined" >> beam.Map(lambda q: summarize("quarantined", q)),
    ]
    return summaries | "AllSummaries" >> beam.Flatten() | "Stats" >> beam.CombineGlobally(StatsCombineFn())


def pipeline_options(beam_args: list[str] | None) -> tuple[PipelineOptions, object]:
    """Options from pass-through Beam arguments, and the runner to use.

    With no ``--runner`` (or ``--runner=DirectRunner``) the in-process FnApiRunner is
    constructed directly: the DirectRunner would first try to download Prism.
    """
    options = PipelineOptions(beam_args or [])
    runner_name = options.view_as(StandardOptions).runner
    if runner_name in (None, "DirectRunner", "direct"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return options, FnApiRunner()
    return options, None


def run_clean(
    config: PipelineConfig,
    output_dir: str,
    beam_args: list[str] | None = None,
    show_progress: bool = True,
) -> dict:
    """Run the cleaning job; returns the stats written to ``output_dir/stats.json``.

    Raises :class:`~pipelines.stats.AccountingError` (and commits nothing) when
    input != kept + rejected + quarantined.
    """
    staging = output.prepare(output_dir)
    options, runner = pipeline_options(beam_args)
    stats_holder = FileSystems.join(staging, "stats.partial.json")
    started = time.monotonic()
    with progress.ProgressReporter("clean", PROGRESS_STEPS) if show_progress else contextlib.nullcontext():
        with beam.Pipeline(runner=runner, options=options) as p:
            stats = build_pipeline(p, config, staging)
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
