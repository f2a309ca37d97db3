"""The corpus registry: corpora registered once by name, each admitted by a sample check.

A data engineer runs ``dapt corpus add`` once per corpus; pipelines then name the corpus
(``corpora: [{registered: finance-reuters}]``) instead of repeating its path and fields,
and ``dapt run`` records per corpus what the last run read, kept and tokenized.

Registry file schema (JSON, human-readable, one file)::

    {"version": 1,
     "corpora": {NAME: {
        "config": {...},        # pipelines.config.CorpusConfig fields; paths absolute
        "added": ISO time,
        "check": {...},         # the SampleCheck that admitted it (see below)
        "usage": null | {"run_id", "documents_in", "kept", "tokens", "finished"}}}}

Default path: ``$DAPT_REGISTRY``, else ``dapt-registry.json`` in the current directory.
Every change is a read-modify-write under an exclusive ``flock`` on the sibling
``<registry>.lock`` file, committed by ``os.replace`` of a temporary file, so readers
never see half a file and two writers (a scheduled ``dapt run`` recording usage, a data
engineer adding a corpus) cannot lose each other's update. The lock file is never
deleted: removing it while a writer holds it would let a third writer lock a new file.
``flock`` is per host; a registry shared over NFS between hosts is not serialised.

The sample check reads the first records of the corpus with the real
:class:`pipelines.read.CorpusReader` (the Beam job's code path), so what passes here is
read the same way there; each rule is a small function with its threshold as a keyword
argument, and a refusal names the rule and its numbers.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.config import ConfigError, CorpusConfig, resolve_paths, describe_errors

ENV_VAR = "DAPT_REGISTRY"
DEFAULT_FILE = "dapt-registry.json"
SAMPLE_LIMIT = 200
_TEXT_FIELD_ERROR = re.compile(r"^(missing text field |text field .* is \w+, expected a string)")
_SHOWN_EXAMPLES = 3
_PREVIEW_CHARS = 160


class RegistryError(ConfigError):
    """The registry cannot do what was asked; the message names the file or corpus."""


class UnknownCorpus(RegistryError):
    """No corpus of that name is registered."""


class AlreadyRegistered(RegistryError):
    """The name is taken and replacing was not asked for."""


class SampleRefused(RegistryError):
    """The sample check found the corpus unfit to register."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Problem(_Strict):
    check: str
    message: str


class SampleCheck(_Strict):
    """What the sample check read and which rules, if any, refused the corpus."""

    corpus: str
    problems: list[Problem] = []
    limit: int = Field(ge=1)
    files_matched: int = Field(ge=0)
    files_sampled: list[str] = []
    records: int = Field(0, ge=0, description="reader outputs sampled: documents + quarantined")
    documents: int = Field(0, ge=0)
    quarantined: int = Field(0, ge=0)
    quarantine_examples: list[str] = Field([], description="'file:position: error' of the first few")
    mean_chars: float | None = None
    median_chars: float | None = None
    fields: dict[str, int] = Field({}, description="field -> sampled documents that have it")
    checked: datetime

    @property
    def ok(self) -> bool:
        return not self.problems

    def refusal(self) -> str:
        return f"refused {self.corpus}: " + "; ".join(f"{p.check}: {p.message}" for p in self.problems)

    def summary_lines(self) -> list[str]:
        lines = [
            f"sampled {self.records:,} records (limit {self.limit:,}) from {len(self.files_sampled):,} of "
            f"{self.files_matched:,} matched files: {self.documents:,} documents, {self.quarantined:,} quarantined"
        ]
        if self.median_chars is not None:
            lines.append(f"text length: mean {self.mean_chars:,.0f} chars, median {self.median_chars:,.0f} chars")
        if self.fields:
            lines.append("fields (documents with it): " + ", ".join(f"{k} {n:,}" for k, n in self.fields.items()))
        lines += [f"quarantined: {example}" for example in self.quarantine_examples]
        return lines


class Usage(_Strict):
    """The figures of the last ``dapt run`` that read the corpus."""

    run_id: str = Field(min_length=1)
    documents_in: int = Field(ge=0)
    kept: int = Field(ge=0)
    tokens: int | None = Field(None, ge=0, description="None when the run did not tokenize")
    finished: datetime


class RegistryEntry(_Strict):
    config: CorpusConfig
    added: datetime
    check: SampleCheck
    usage: Usage | None = None

    @property
    def name(self) -> str:
        return self.config.name


class _RegistryFile(_Strict):
    version: Literal[1] = 1
    corpora: dict[str, RegistryEntry] = {}

    @model_validator(mode="after")
    def _keys_are_names(self) -> _RegistryFile:
        for key, entry in self.corpora.items():
            if key != entry.name:
                raise ValueError(f"corpora.{key}: entry is named {entry.name!r}")
        return self


def default_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_FILE)


def absolute_paths(corpus: CorpusConfig) -> CorpusConfig:
    """The corpus with local paths made absolute against the current directory (URIs kept),
    so a registered corpus reads the same files from any directory a pipeline runs in."""
    return corpus.model_copy(update={"path": resolve_paths(corpus.path, Path.cwd())})


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class Registry:
    def __init__(self, path: str | os.PathLike | None = None, lock_timeout: float = 60.0):
        self.path = Path(path) if path else default_path()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout

    def add(self, corpus: CorpusConfig, check: SampleCheck, replace: bool = False) -> RegistryEntry:
        """Register ``corpus`` as admitted by ``check``; replacing forgets the old usage,
        whose figures described what the old entry pointed at."""
        if check.corpus != corpus.name:
            raise RegistryError(f"the sample check is of corpus {check.corpus!r}, not {corpus.name!r}")
        if not check.ok:
            raise SampleRefused(check.refusal())
        entry = RegistryEntry(config=absolute_paths(corpus), added=_now(), check=check)
        with self._change() as corpora:
            old = corpora.get(corpus.name)
            if old and not replace:
                raise AlreadyRegistered(
                    f"corpus {corpus.name!r} is already registered in {self.path} (added {old.added:%Y-%m-%d %H:%M})"
                )
            corpora[corpus.name] = entry
        return entry

    def __contains__(self, name: str) -> bool:
        return name in self._read().corpora

    def get(self, name: str) -> RegistryEntry:
        return self._entry(self._read().corpora, name)

    def list(self) -> list[RegistryEntry]:
        return [entry for _, entry in sorted(self._read().corpora.items())]

    def remove(self, name: str) -> RegistryEntry:
        """Forget the entry; the corpus's files are not touched."""
        with self._change() as corpora:
            entry = self._entry(corpora, name)
            del corpora[name]
        return entry

    def record_run(
        self, name: str, run_id: str, documents_in: int, kept: int, tokens: int | None = None,
        finished: str | datetime | None = None,
    ) -> RegistryEntry:
        """Keep the figures of the run that just used ``name`` (called by ``dapt run``)."""
        try:
            usage = Usage(run_id=run_id, documents_in=documents_in, kept=kept, tokens=tokens,
                          finished=finished or _now())
        except ValidationError as err:
            raise RegistryError(f"usage of {name!r}: " + describe_errors(err).replace("\n", "; ")) from None
        with self._change() as corpora:
            entry = self._entry(corpora, name).model_copy(update={"usage": usage})
            corpora[name] = entry
        return entry

    def corpus_config(self, name: str) -> CorpusConfig:
        """The registered corpus as a pipeline reads it (``corpora: [{registered: NAME}]``)."""
        return self.get(name).config

    def _entry(self, corpora: dict[str, RegistryEntry], name: str) -> RegistryEntry:
        if name in corpora:
            return corpora[name]
        known = ", ".join(sorted(corpora)) if corpora else "none"
        raise UnknownCorpus(f"no corpus {name!r} in the registry {self.path}; registered: {known}")

    def _read(self) -> _RegistryFile:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _RegistryFile()
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or err
            raise RegistryError(f"{self.path}: cannot read the corpus registry: {reason}") from None
        try:
            return _RegistryFile.model_validate(json.loads(text))
        except json.JSONDecodeError as err:
            problem = f"not JSON ({err.msg} at line {err.lineno} column {err.colno})"
        except ValidationError as err:
            problem = describe_errors(err).replace("\n", "; ")
        raise RegistryError(f"{self.path}: corrupt corpus registry: {problem}; fix or move the file")

    @contextmanager
    def _change(self) -> Iterator[dict[str, RegistryEntry]]:
        """Yield the current corpora under the lock; write them back if the block succeeds."""
        with self._locked():
            corpora = dict(self._read().corpora)
            yield corpora
            self._write(_RegistryFile(corpora=dict(sorted(corpora.items()))))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise RegistryError(f"{self.lock_path}: cannot open the registry lock: {err.strerror}") from None
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    # Writers hold the lock for milliseconds; this long means a stuck process.
                    if time.monotonic() > deadline:
                        raise RegistryError(
                            f"{self.lock_path}: another process has held the registry lock for over "
                            f"{self.lock_timeout:g} s"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _write(self, data: _RegistryFile) -> None:
        text = json.dumps(data.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if self.path.exists():
                os.chmod(tmp, self.path.stat().st_mode & 0o7777)
            os.replace(tmp, self.path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise RegistryError(f"{self.path}: cannot write the corpus registry: {err.strerror or err}") from None


# --- the sample check -------------------------------------------------------------------
#
# Each rule takes the observations of one sample and its threshold, and returns the
# problem in words, or None. A rule whose input is missing (no documents) stays silent:
# `records_read`, or the rule that explains why nothing was read, says so.


class _Sample:
    """Observations of the first records of a corpus, as the reader returned them."""

    def __init__(self, corpus: CorpusConfig):
        self.corpus = corpus
        self.unmatched: list[str] = []
        self.files: list[str] = []
        self.files_sampled: list[str] = []
        self.records = 0
        self.lengths: list[int] = []
        self.empty = 0
        self.fields: Counter[str] = Counter()
        self.ids: dict[str, list[str]] = {}
        self.quarantined: list[dict] = []
        self.unreadable: list[dict] = []

    @property
    def documents(self) -> int:
        return len(self.lengths)


def _where(record: dict) -> str:
    return record["file"] if record["position"] <= 0 else f"{record['file']}:{record['position']}"


def _is_unreadable(record: dict) -> bool:
    # The reader marks a file it could not open or parse at all with position -1, and a
    # gzip stream that breaks off with this message at the line where it broke.
    return record["position"] == -1 or record["error"].startswith("corrupt or truncated gzip")


def files_match(sample: _Sample) -> str | None:
    if sample.unmatched:
        return "no file matches " + ", ".join(sample.unmatched)
    if not sample.files:
        return "no file to read"
    return None


def files_readable(sample: _Sample) -> str | None:
    if not sample.unreadable:
        return None
    first = sample.unreadable[0]
    more = f" (and {len(sample.unreadable) - 1} more)" if len(sample.unreadable) > 1 else ""
    return f"cannot read {first['file']}: {first['error']}{more}"


def records_read(sample: _Sample) -> str | None:
    if sample.documents:
        return None
    if not sample.records:
        return f"no record in the {len(sample.files_sampled)} sampled files (empty)"
    first = sample.quarantined[0]
    return f"no document could be read from {sample.records} sampled records (first: {_where(first)}: {first['error']})"


def text_field(sample: _Sample, max_share: float = 0.5) -> str | None:
    bad = [q for q in sample.quarantined if _TEXT_FIELD_ERROR.match(q["error"])]
    if not sample.records or len(bad) / sample.records <= max_share:
        return None
    # The record preview shows which fields the records do have.
    return (
        f"{sample.corpus.text_field!r} missing or not a string in {len(bad)} of {sample.records} sampled records "
        f"(first: {_where(bad[0])}: {bad[0]['error']}; record: {bad[0]['raw'][:_PREVIEW_CHARS]})"
    )


def quarantine_share(sample: _Sample, max_share: float = 0.10) -> str | None:
    n = len(sample.quarantined)
    if not sample.records or n / sample.records <= max_share:
        return None
    first = sample.quarantined[0]
    return (
        f"{n} of {sample.records} sampled records ({100 * n / sample.records:.0f}%) would be quarantined, "
        f"above {100 * max_share:g}% (first: {_where(first)}: {first['error']})"
    )


def text_length(sample: _Sample, min_median_chars: int = 20, max_empty_share: float = 0.5) -> str | None:
    if not sample.documents:
        return None
    if sample.empty / sample.documents > max_empty_share:
        return f"texts mostly empty: {sample.empty} of {sample.documents} sampled documents have no text"
    median = statistics.median(sample.lengths)
    if median < min_median_chars:
        return (
            f"texts implausibly short: median {median:g} chars over {sample.documents} sampled documents, "
            f"below {min_median_chars}"
        )
    return None


def named_fields(sample: _Sample, max_missing_share: float = 0.5) -> str | None:
    """Fields the corpus names explicitly (id, title, source) must be in most records:
    a typo there silently gives every document a made-up id or no title."""
    if not sample.documents:
        return None
    corpus = sample.corpus
    missing = []
    for key in ("id_field", "title_field", "source_field"):
        field = getattr(corpus, key)
        if key in corpus.model_fields_set and field is not None:
            absent = sample.documents - sample.fields[field]
            if absent / sample.documents > max_missing_share:
                missing.append(f"{key} {field!r} missing in {absent} of {sample.documents} sampled documents")
    if not missing:
        return None
    return "; ".join(missing) + f" (fields seen: {', '.join(sorted(sample.fields))})"


def unique_ids(sample: _Sample, max_repeated: int = 0) -> str | None:
    repeated = {doc_id: where for doc_id, where in sample.ids.items() if len(where) > 1}
    if len(repeated) <= max_repeated:
        return None
    doc_id, where = next(iter(repeated.items()))
    values = "1 value" if len(repeated) == 1 else f"{len(repeated)} values"
    return (
        f"{values} of {sample.corpus.id_field!r} occur more than once in {sample.documents} sampled documents "
        f"(first: {doc_id!r} at {' and '.join(where[:2])})"
    )


def check_sample(
    corpus: CorpusConfig,
    limit: int = SAMPLE_LIMIT,
    *,
    max_text_missing_share: float = 0.5,
    max_quarantine_share: float = 0.10,
    min_median_chars: int = 20,
    max_empty_share: float = 0.5,
    max_named_field_missing_share: float = 0.5,
    max_repeated_ids: int = 0,
) -> SampleCheck:
    """Read up to ``limit`` records from the corpus's first files and judge them."""
    sample = _read_sample(corpus, limit)
    unmatched = files_match(sample)
    if unmatched:
        # Nothing was read: every other rule would only repeat it.
        problems = [Problem(check="files_match", message=unmatched)]
    else:
        specific = [
            ("files_readable", files_readable(sample)),
            ("text_field", text_field(sample, max_share=max_text_missing_share)),
        ]
        # These two would only restate a specific problem above (a broken file, a wrong
        # text field) in general words, so they speak only when no specific one did.
        general = [
            ("records_read", records_read(sample)),
            ("quarantine_share", quarantine_share(sample, max_share=max_quarantine_share)),
        ]
        independent = [
            ("text_length", text_length(sample, min_median_chars=min_median_chars, max_empty_share=max_empty_share)),
            ("named_fields", named_fields(sample, max_missing_share=max_named_field_missing_share)),
            ("unique_ids", unique_ids(sample, max_repeated=max_repeated_ids)),
        ]
        found = [(name, message) for name, message in specific if message]
        found += [(name, message) for name, message in (general if not found else []) + independent if message]
        problems = [Problem(check=name, message=message) for name, message in found]
    lengths = sample.lengths
    return SampleCheck(
        corpus=corpus.name,
        problems=problems,
        limit=limit,
        files_matched=len(sample.files),
        files_sampled=sample.files_sampled,
        records=sample.records,
        documents=sample.documents,
        quarantined=len(sample.quarantined),
        quarantine_examples=[f"{_where(q)}: {q['error']}" for q in sample.quarantined[:_SHOWN_EXAMPLES]],
        mean_chars=round(statistics.fmean(lengths), 1) if lengths else None,
        median_chars=statistics.median(lengths) if lengths else None,
        fields=dict(sorted(sample.fields.items())),
        checked=_now(),
    )


def _read_sample(corpus: CorpusConfig, limit: int) -> _Sample:
    # Beam's filesystems (imported by the reader) cost seconds; only the check pays them.
    from pipelines.read import CorpusReader, list_files

    sample = _Sample(corpus)
    files, unmatched = list_files(corpus)
    sample.files = files
    sample.unmatched = [record["file"] for record in unmatched]
    if sample.unmatched:
        return sample
    # No reserved fields and every field as metadata, so the documents show which fields
    # the records really have; what gets quarantined depends on the text field only.
    probe = corpus.model_copy(update={"id_field": None, "source_field": None, "title_field": None,
                                      "metadata_fields": None})
    reader = CorpusReader(probe)
    for path in files:
        if sample.records >= limit:
            break
        sample.files_sampled.append(path)
        with closing(reader.read(path)) as outputs:
            for kind, item in outputs:
                sample.records += 1
                if kind == "doc":
                    _observe(sample, item)
                else:
                    sample.quarantined.append(item)
                    if _is_unreadable(item):
                        sample.unreadable.append(item)
                if sample.records >= limit:
                    break
    return sample


def _observe(sample: _Sample, doc: dict) -> None:
    text = doc["text"]
    sample.lengths.append(len(text))
    sample.empty += not text.strip()
    present = [k for k, v in doc["metadata"].items() if v is not None and v != ""]
    sample.fields.update([sample.corpus.text_field, *present])
    id_field = sample.corpus.id_field
    if id_field and doc["metadata"].get(id_field) not in (None, ""):
        path, position = doc["_origin"]
        where = path if position <= 0 else f"{path}:{position}"
        sample.ids.setdefault(str(doc["metadata"][id_field]), []).append(where)
