"""The corpus registry: the sample check on real and generated corpora, and the file."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bad_corpus import GOOD_TEXT, write_bad_corpus
from conftest import CORPORA, FINANCE, MEDICAL

from pipelines.config import CorpusConfig
from pipelines.registry import (
    AlreadyRegistered,
    Problem,
    Registry,
    RegistryError,
    SampleCheck,
    SampleRefused,
    UnknownCorpus,
    check_sample,
)


def _corpus(path, name="c", fmt="jsonl", **fields) -> CorpusConfig:
    return CorpusConfig(name=name, path=str(path), format=fmt, domain="finance", **fields)


def _jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def _passed(name: str) -> SampleCheck:
    """A passing check without reading anything, for tests of the file alone."""
    return SampleCheck(corpus=name, limit=1, files_matched=1, records=1, documents=1,
                       checked="2026-11-26T12:00:00Z")


def _checks(result: SampleCheck) -> list[str]:
    return [p.check for p in result.problems]


GENERAL = CORPORA / "general" / "sample.jsonl.gz"


@pytest.mark.parametrize("path, records", [(FINANCE, 200), (MEDICAL, 200), (GENERAL, 81)],
                         ids=["finance", "medical", "general"])
def test_real_samples_pass(path, records):
    corpus = CorpusConfig(name="real", path=str(path), format="jsonl.gz", domain="finance",
                          id_field="id", title_field="title")
    result = check_sample(corpus)
    assert result.ok, result.refusal()
    assert result.documents == result.records == records
    assert result.quarantined == 0 and result.files_sampled == [str(path)]
    assert result.median_chars > 20 and {"id", "text", "title", "source"} <= set(result.fields)
    assert result.fields["id"] == result.documents


def test_gzip_that_is_not_gzip_is_refused(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    _jsonl(path, [{"id": "1", "text": GOOD_TEXT}])
    result = check_sample(_corpus(path, fmt="jsonl.gz"))
    assert _checks(result) == ["files_readable"]
    assert f"cannot read {path}: corrupt or truncated gzip" in result.problems[0].message
    assert "Not a gzipped file" in result.refusal()


def test_bad_corpus_refused_for_its_broken_files(tmp_path):
    write_bad_corpus(tmp_path)
    result = check_sample(_corpus(tmp_path, id_field="id"))
    # The truncated gzip breaks after line 171 and the dangling link cannot be opened;
    # the malformed lines of mixed.jsonl are below the 10% quarantine share.
    assert _checks(result) == ["files_readable"]
    message = result.problems[0].message
    truncated = tmp_path / "truncated.jsonl.gz"
    assert message.startswith(f"cannot read {truncated}: corrupt or truncated gzip after line 171")
    assert message.endswith("(and 1 more)")
    assert result.files_sampled == sorted(str(tmp_path / n) for n in
                                          ("empty.jsonl", "mixed.jsonl", "truncated.jsonl.gz", "unreadable.jsonl"))


def test_missing_text_field_refused_with_count_and_first_record(tmp_path):
    path = _jsonl(tmp_path / "a.jsonl", [{"id": str(i), "body": GOOD_TEXT} for i in range(50)])
    result = check_sample(_corpus(path))
    assert _checks(result) == ["text_field"]
    assert result.refusal().startswith(
        f"refused c: text_field: 'text' missing or not a string in 50 of 50 sampled records (first: {path}:1: "
        "missing text field 'text'; record: {\"id\": \"0\", \"body\""
    )
    assert check_sample(_corpus(path, text_field="body")).ok


def test_quarantine_share_threshold(tmp_path):
    lines = [json.dumps({"text": f"{GOOD_TEXT} {i}"}) for i in range(85)] + ['{"text": "unterminated'] * 15
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = check_sample(_corpus(path))
    assert _checks(result) == ["quarantine_share"]
    assert result.problems[0].message.startswith(
        f"15 of 100 sampled records (15%) would be quarantined, above 10% (first: {path}:86: malformed JSON"
    )
    assert check_sample(_corpus(path), max_quarantine_share=0.2).ok


def test_mostly_empty_and_short_texts_refused(tmp_path):
    empty = _jsonl(tmp_path / "empty.jsonl", [{"text": " " if i % 4 else GOOD_TEXT} for i in range(40)])
    result = check_sample(_corpus(empty))
    assert _checks(result) == ["text_length"]
    assert result.problems[0].message == "texts mostly empty: 30 of 40 sampled documents have no text"

    short = _jsonl(tmp_path / "short.jsonl", [{"text": f"tick {i}"} for i in range(40)])
    result = check_sample(_corpus(short))
    assert _checks(result) == ["text_length"]
    assert result.problems[0].message == "texts implausibly short: median 7 chars over 40 sampled documents, below 20"
    assert check_sample(_corpus(short), min_median_chars=5).ok


def test_repeated_ids_refused_only_when_an_id_field_is_named(tmp_path):
    records = [{"id": f"doc-{i % 30}", "text": GOOD_TEXT} for i in range(40)]
    path = _jsonl(tmp_path / "a.jsonl", records)
    result = check_sample(_corpus(path, id_field="id"))
    assert _checks(result) == ["unique_ids"]
    assert result.problems[0].message == (
        f"10 values of 'id' occur more than once in 40 sampled documents (first: 'doc-0' at {path}:1 and {path}:31)"
    )
    assert check_sample(_corpus(path)).ok


def test_named_field_absent_refused(tmp_path):
    path = _jsonl(tmp_path / "a.jsonl", [{"doc": str(i), "text": GOOD_TEXT} for i in range(20)])
    result = check_sample(_corpus(path, id_field="id", title_field="doc"))
    assert _checks(result) == ["named_fields"]
    assert result.problems[0].message == "id_field 'id' missing in 20 of 20 sampled documents (fields seen: doc, text)"


def test_path_matching_nothing_is_the_only_problem(tmp_path):
    good = _jsonl(tmp_path / "a.jsonl", [{"text": GOOD_TEXT}])
    corpus = CorpusConfig(name="c", path=[good, str(tmp_path / "typo" / "*.jsonl")], format="jsonl", domain="law")
    result = check_sample(corpus)
    assert _checks(result) == ["files_match"] and result.records == 0
    assert result.problems[0].message == f"no file matches {tmp_path / 'typo' / '*.jsonl'}"


def test_empty_files_refused(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"")
    result = check_sample(_corpus(tmp_path))
    assert _checks(result) == ["records_read"]
    assert result.problems[0].message == "no record in the 1 sampled files (empty)"


def test_sample_spans_files_up_to_the_limit_and_reads_parquet(tmp_path):
    for part in ("a", "b", "c"):
        pq.write_table(pa.table({"body": [f"{GOOD_TEXT} {part}{i}" for i in range(30)], "year": [1987] * 30}),
                       tmp_path / f"{part}.parquet")
    result = check_sample(_corpus(tmp_path, fmt="parquet", text_field="body"), limit=50)
    assert result.ok, result.refusal()
    assert (result.records, result.files_matched) == (50, 3)
    assert result.files_sampled == [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]
    assert result.fields == {"body": 50, "year": 50}


# --- the registry file ------------------------------------------------------------------


def test_add_list_get_remove_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    registry = Registry(tmp_path / "reg.json")
    relative = CorpusConfig(name="rel", path="data/*.jsonl", format="jsonl", domain="law")
    remote = CorpusConfig(name="remote", path=["gs://bucket/law/", "data"], format="jsonl", domain="law")
    registry.add(relative, _passed("rel"))
    registry.add(remote, _passed("remote"))

    assert [e.name for e in registry.list()] == ["rel", "remote"]
    assert registry.corpus_config("rel").path == str(tmp_path / "data" / "*.jsonl")
    assert registry.corpus_config("remote").path == ["gs://bucket/law/", str(tmp_path / "data")]
    assert registry.corpus_config("remote").model_dump(exclude={"path"}) == remote.model_dump(exclude={"path"})
    stored = json.loads((tmp_path / "reg.json").read_text())
    assert stored["version"] == 1 and set(stored["corpora"]) == {"rel", "remote"}

    assert registry.remove("rel").name == "rel"
    with pytest.raises(UnknownCorpus, match=r"no corpus 'rel' in the registry .*reg.json; registered: remote$"):
        registry.get("rel")
    assert "rel" not in registry and "remote" in registry


def test_refused_duplicate_and_replaced_entries(tmp_path):
    registry = Registry(tmp_path / "reg.json")
    corpus = _corpus(tmp_path / "a.jsonl", name="a")
    refused = _passed("a").model_copy(update={"problems": [Problem(check="text_length", message="texts mostly empty")]})
    with pytest.raises(SampleRefused, match="^refused a: text_length: texts mostly empty$"):
        registry.add(corpus, refused)
    assert registry.list() == []

    registry.add(corpus, _passed("a"))
    registry.record_run("a", "run-1", documents_in=10, kept=8, tokens=1000)
    with pytest.raises(AlreadyRegistered, match="corpus 'a' is already registered"):
        registry.add(corpus, _passed("a"))
    replaced = registry.add(corpus.model_copy(update={"domain": "law"}), _passed("a"), replace=True)
    assert registry.get("a") == replaced and replaced.config.domain == "law" and replaced.usage is None


def test_record_run_keeps_the_last_run(tmp_path):
    registry = Registry(tmp_path / "reg.json")
    registry.add(_corpus(tmp_path / "a.jsonl", name="a"), _passed("a"))
    registry.record_run("a", "run-1", documents_in=10, kept=8, tokens=1000, finished="2026-11-20T08:00:00Z")
    registry.record_run("a", "run-2", documents_in=12, kept=9, tokens=None)
    usage = Registry(tmp_path / "reg.json").get("a").usage
    assert (usage.run_id, usage.documents_in, usage.kept, usage.tokens) == ("run-2", 12, 9, None)
    with pytest.raises(UnknownCorpus, match="registered: a$"):
        registry.record_run("b", "run-2", documents_in=1, kept=1)
    with pytest.raises(RegistryError, match="usage of 'a': documents_in: Input should be greater than or equal to 0"):
        registry.record_run("a", "run-3", documents_in=-1, kept=0)
    assert registry.get("a").usage.run_id == "run-2"


def test_default_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DAPT_REGISTRY", str(tmp_path / "team.json"))
    assert Registry().path == tmp_path / "team.json"
    monkeypatch.delenv("DAPT_REGISTRY")
    monkeypatch.chdir(tmp_path)
    Registry().add(_corpus(tmp_path / "a.jsonl", name="a"), _passed("a"))
    assert (tmp_path / "dapt-registry.json").exists()


@pytest.mark.parametrize("content, problem", [
    ('{"version": 1, "corpora": {', "corrupt corpus registry: not JSON (Expecting property name"),
    ('{"version": 1, "corpora": {"a": {"config": {"fromat": 1}}}}', "corpora.a.config.fromat: unknown key"),
    ('{"version": 2}', "version: Input should be 1 (got 2)"),
    ("", "not JSON (Expecting value at line 1 column 1)"),
])
def test_corrupt_registry_is_one_clear_line(tmp_path, content, problem):
    path = tmp_path / "reg.json"
    path.write_text(content)
    with pytest.raises(RegistryError) as err:
        Registry(path).list()
    assert str(err.value).startswith(f"{path}: corrupt corpus registry: ") and problem in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(RegistryError):
        Registry(path).add(_corpus(tmp_path / "a.jsonl", name="a"), _passed("a"))
    assert path.read_text() == content


def test_entry_under_another_name_is_corrupt(tmp_path):
    path = tmp_path / "reg.json"
    Registry(path).add(_corpus(tmp_path / "a.jsonl", name="a"), _passed("a"))
    stored = json.loads(path.read_text())
    stored["corpora"] = {"b": stored["corpora"]["a"]}
    path.write_text(json.dumps(stored))
    with pytest.raises(RegistryError, match="corrupt corpus registry: corpora.b: entry is named 'a'; fix or move"):
        Registry(path).corpus_config("b")


def test_write_is_atomic_and_keeps_the_file_mode(tmp_path):
    path = tmp_path / "reg.json"
    registry = Registry(path)
    registry.add(_corpus(tmp_path / "a.jsonl", name="a"), _passed("a"))
    os.chmod(path, 0o640)
    registry.add(_corpus(tmp_path / "b.jsonl", name="b"), _passed("b"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg.json", "reg.json.lock"]


def test_a_held_lock_makes_a_writer_wait_then_give_up(tmp_path):
    registry = Registry(tmp_path / "reg.json", lock_timeout=0.3)
    registry.add(_corpus(tmp_path / "a.jsonl", name="a"), _passed("a"))
    with open(registry.lock_path, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RegistryError, match="another process has held the registry lock for over 0.3 s"):
            registry.remove("a")
        assert [e.name for e in registry.list()] == ["a"]  # readers need no lock
    registry.remove("a")
    assert registry.list() == []


def _add_many(path: str, prefix: str, count: int, start) -> None:
    registry = Registry(path)
    start.wait(timeout=30)
    for i in range(count):
        name = f"{prefix}-{i}"
        registry.add(CorpusConfig(name=name, path=f"/data/{name}.jsonl", format="jsonl", domain="law"), _passed(name))


def test_concurrent_writers_lose_no_update(tmp_path):
    path = str(tmp_path / "reg.json")
    context = multiprocessing.get_context("spawn")
    # Both writers start adding at the same moment, not one after the other's start-up.
    start = context.Barrier(2)
    workers = [context.Process(target=_add_many, args=(path, prefix, 40, start)) for prefix in ("fin", "med")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]
    names = {e.name for e in Registry(path).list()}
    assert names == {f"{p}-{i}" for p in ("fin", "med") for i in range(40)}
