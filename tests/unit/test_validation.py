"""The Great Expectations gate (issue 3) on a real cleaning output of the samples.

A clean output passes; copies of it with one planted defect each fail exactly the check
that the defect breaks and no other. Token statistics come from a SentencePiece model
trained here on the same kept text, written in the format agreed with the tokenizer
stage (``documents.parquet`` + ``manifest.json``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO
from pipelines.cli import main
from pipelines.config import ConfigError, parse_config
from pipelines.output import KEPT_SCHEMA, REJECTED_SCHEMA, read_table
from validation import datadocs
from validation.config import BUILTIN_DOMAIN_CHECKS, CHECKS, ValidateConfig
from validation.gate import RESULT_FILE, ValidationReport, validate
from validation.pii_scan import _pii_summary, _scan_in_processes, scan_pii
from validation.tables import NotAnOutput, OutputError, tokens_schema

DAPT = str(Path(sys.executable).with_name("dapt"))
OUTPUT_SUITES = {"schema", "kept", "accounting", "kept.finance", "kept.medical", "drops.finance", "drops.medical"}
TOKEN_SUITES = {"tokens", "tokens.manifest", "tokens.finance", "tokens.medical"}


def _copy(clean: Path, tmp_path: Path) -> Path:
    out = tmp_path / "clean"
    shutil.copytree(clean, out, ignore=shutil.ignore_patterns("validation"))
    return out


def _run(out: Path, **config) -> ValidationReport:
    """Validate in-process without Data Docs (fast); the report goes under the copy."""
    return validate(str(out), ValidateConfig(data_docs=False, **config), workers=0)


def _replace_kind(out: Path, kind: str, table: pa.Table) -> None:
    """Rewrite all shards of ``kind`` as one, the way the cleaning job writes them."""
    for shard in (out / kind).glob("*.parquet"):
        shard.unlink()
    pq.write_table(table, out / kind / "part-00000-of-00001.parquet", compression="zstd")


def _kept(out: Path) -> pd.DataFrame:
    return read_table(str(out), "kept").to_pandas()


def _put_kept(out: Path, frame: pd.DataFrame, schema: pa.Schema = KEPT_SCHEMA) -> None:
    _replace_kind(out, "kept", pa.Table.from_pandas(frame, schema=schema, preserve_index=False))


def _result(report, name: str):
    return next(r for r in report.results if r.name == name)


# -- the clean output ----------------------------------------------------------------------


def _write_tokens(tokdir: Path, rows: pd.DataFrame, vocab_size: int = 2000) -> Path:
    """``documents.parquet`` and a consistent ``manifest.json`` in the agreed format."""
    tokdir.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(rows[["id", "domain", "source", "corpus", "split", "n_tokens"]], preserve_index=False)
    pq.write_table(table, tokdir / "documents.parquet")

    def grouped(key: str) -> dict:
        return {k: {"documents": int(len(g)), "tokens": int(g["n_tokens"].sum())} for k, g in rows.groupby(key)}

    manifest = {
        "vocab_size": vocab_size, "dtype": "uint16", "val_fraction": 0.05,
        "by_domain": grouped("domain"), "by_source": grouped("source"), "by_corpus": grouped("corpus"),
    }
    (tokdir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return tokdir


@pytest.fixture(scope="module")
def token_rows(clean_subset_for_validation) -> pd.DataFrame:
    """Kept documents with their token counts under a BPE model trained on them."""
    import sentencepiece as spm

    kept = _kept(clean_subset_for_validation)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(kept["text"].tolist()), model_writer=model, vocab_size=2000, model_type="bpe",
        max_sentence_length=100_000, minloglevel=2, num_threads=2,
    )
    encoder = spm.SentencePieceProcessor(model_proto=model.getvalue())
    rows = kept[["id", "domain", "source", "corpus", "text"]].copy()
    rows["n_tokens"] = [len(ids) + 1 for ids in encoder.encode(rows["text"].tolist())]  # + EOS
    rows["split"] = ["val" if int(hashlib.sha256(i.encode()).hexdigest(), 16) % 20 == 0 else "train" for i in rows["id"]]
    return rows


def test_clean_output_and_its_tokens_pass(clean_subset_for_validation, token_rows, tmp_path):
    tokens = _write_tokens(tmp_path / "tokens", token_rows)
    report = validate(str(clean_subset_for_validation), tokens=str(tokens), report_dir=str(tmp_path / "report"))
    assert report.success
    assert report.failed_names == set()
    assert {r.suite for r in report.results} == OUTPUT_SUITES | TOKEN_SUITES
    checks = {r.check for r in report.results}
    assert checks == set(CHECKS)
    assert _result(report, "schema/column_types").element_count == len(KEPT_SCHEMA) + len(tokens_schema())
    # Real numbers, not vacuous passes: every kept document was checked, the language
    # check saw the finance tables that have no confident language, the token total is
    # the model's.
    kept = read_table(str(clean_subset_for_validation), "kept")
    assert _result(report, "kept/id_unique").element_count == kept.num_rows
    und = _result(report, "kept.finance/language_und_share")
    assert 0 < und.unexpected_count and und.unexpected_percent < 100 * BUILTIN_DOMAIN_CHECKS["finance"]["language"]["max_und_fraction"]
    per_domain = _result(report, "tokens.finance/tokens_per_domain")
    assert per_domain.observed_value == int(token_rows.loc[token_rows["domain"] == "finance", "n_tokens"].sum())
    assert _result(report, "kept.finance/text_length").severity == "warning"
    assert _result(report, "kept.finance/no_leftover_pii").severity == "blocking"

    written = json.loads((tmp_path / "report" / RESULT_FILE).read_text())
    assert written["success"] is True and written["blocking_failures"] == 0 and written["checks"] == len(report.results)
    for entry in written["results"]:
        assert {"name", "severity", "success", "unexpected_count", "unexpected_percent", "example_ids"} <= set(entry)

    # Data Docs: one page per suite and per result, nothing loaded from the network,
    # every relative link resolves.
    assert written["data_docs"] == "data-docs/index.html"
    pages = list(Path(report.data_docs).parent.rglob("*.html"))
    assert len(pages) == 1 + 2 * len(OUTPUT_SUITES | TOKEN_SUITES)
    for page in pages:
        html = page.read_text()
        assert not datadocs._EXTERNAL_LOAD.search(html), page
        for ref in re.findall(r'(?:src|href)="([^"#?]+)', html):
            if not ref.startswith(("http", "mailto:")):
                assert (page.parent / ref).exists(), f"{page}: {ref}"


# -- planted defects: each fails exactly its own check ----------------------------------------


def _duplicate_ids(out: Path) -> dict:
    kept = _kept(out)
    finance = kept.index[kept["corpus"] == "finance"]
    kept.loc[finance[10:13], "id"] = kept.loc[finance[0], "id"]
    _put_kept(out, kept)
    return {"failed": {"kept/id_unique"}, "count": 4, "example": kept.loc[finance[0], "id"]}


def _empty_texts(out: Path) -> dict:
    kept = _kept(out)
    finance = kept.index[kept["corpus"] == "finance"]
    kept.loc[finance[[5, 50]], "text"] = ""
    kept.loc[finance[500], "text"] = "  \n "
    _put_kept(out, kept)
    return {"failed": {"kept.finance/text_not_empty"}, "count": 3, "example": kept.loc[finance[5], "id"]}


def _leftover_email(out: Path) -> dict:
    kept = _kept(out)
    row = kept.index[kept["corpus"] == "medical"][7]
    kept.loc[row, "text"] += "\nQuestions: write to jane.doe@example.org."
    _put_kept(out, kept)
    return {"failed": {"kept.medical/no_leftover_pii"}, "count": 1, "example": kept.loc[row, "id"], "value": "EMAIL x1"}


def _leftover_tags(out: Path) -> dict:
    kept = _kept(out)
    finance = kept.index[kept["corpus"] == "finance"]
    kept.loc[finance[3], "text"] += "\n&#3;</BODY>"
    kept.loc[finance[4], "text"] = '<a href="x">' + kept.loc[finance[4], "text"]
    # Not markup: a Reuters ticker and the redactor's placeholders stay text.
    medical = kept.index[kept["corpus"] == "medical"]
    kept.loc[medical[3], "text"] += " Shares of <IP> rose; contact <EMAIL> or <PHONE>; p<0.05."
    _put_kept(out, kept)
    return {"failed": {"kept.finance/no_leftover_markup"}, "count": 2, "example": kept.loc[finance[3], "id"]}


def _finance_mostly_dropped(out: Path) -> dict:
    """A filter gone wrong: 95 % of the finance input ends up rejected, and the job's
    accounting is consistent with that (stats.json updated the way the job writes it)."""
    kept = _kept(out)
    rejected = read_table(str(out), "rejected").to_pandas()
    stats = json.loads((out / "stats.json").read_text())
    keep_n = stats["by_domain"]["finance"]["input"] // 20
    finance = kept.index[kept["corpus"] == "finance"]
    # A spread sample survives, so its language mix stays the corpus's.
    survivors = finance[:: len(finance) // keep_n][:keep_n]
    moved = kept.loc[finance.difference(survivors)].assign(reason="gopher_quality", reason_detail="planted")
    _put_kept(out, kept.drop(moved.index))
    _replace_kind(out, "rejected", pa.Table.from_pandas(pd.concat([rejected, moved]), schema=REJECTED_SCHEMA,
                                                         preserve_index=False))
    stats["kept"] -= len(moved)
    stats["rejected"]["gopher_quality"] = stats["rejected"].get("gopher_quality", 0) + len(moved)
    stats["by_domain"]["finance"]["kept"] -= len(moved)
    stats["by_domain"]["finance"]["rejected"] += len(moved)
    (out / "stats.json").write_text(json.dumps(stats))
    # One expectation, two offending rows: the kept fraction and the reason that grew.
    return {"failed": {"drops.finance/drop_rates"}, "count": 2, "example": "dropped",
            "examples": {"dropped", "rejected:gopher_quality"}, "value": "max_fraction=0.25, fraction=0.95"}


def _wrong_column_type(out: Path) -> dict:
    kept = _kept(out)
    kept["n_words"] = kept["n_words"].astype(str)
    schema = KEPT_SCHEMA.set(KEPT_SCHEMA.get_field_index("n_words"), pa.field("n_words", pa.string()))
    _put_kept(out, kept, schema)
    return {"failed": {"schema/column_types"}, "count": 1, "example": "kept/n_words",
            "value": "actual=string, expected=int64"}


DEFECTS = {
    "duplicate ids": _duplicate_ids,
    "empty texts": _empty_texts,
    "leftover e-mail address": _leftover_email,
    "leftover tags": _leftover_tags,
    "95% of a corpus dropped": _finance_mostly_dropped,
    "wrong column type": _wrong_column_type,
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_planted_defect_fails_exactly_its_check(defect, clean_subset_for_validation, tmp_path):
    out = _copy(clean_subset_for_validation, tmp_path)
    planted = DEFECTS[defect](out)
    report = _run(out)
    assert report.failed_names == planted["failed"]
    assert not report.success
    (failure,) = report.blocking_failures
    assert failure.unexpected_count == planted["count"]
    assert planted["example"] in failure.example_ids
    if "examples" in planted:
        assert set(failure.example_ids) == planted["examples"]
    if "value" in planted:
        assert planted["value"] in failure.example_values
    written = json.loads((out / "validation" / RESULT_FILE).read_text())
    assert written["success"] is False and written["blocking_failures"] == 1
    (entry,) = [r for r in written["results"] if not r["success"]]
    assert entry["name"] == failure.name and entry["unexpected_count"] == planted["count"]


def test_pii_scan_in_worker_processes_matches_the_scan_in_process(clean_subset_for_validation, tmp_path):
    out = _copy(clean_subset_for_validation, tmp_path)
    _leftover_email(out)
    kept = read_table(str(out), "kept")
    texts, domains = kept.column("text"), kept.column("domain").to_pylist()
    in_process = scan_pii(texts, domains, lambda d: d == "medical", workers=0)
    assert scan_pii(texts, domains, lambda d: d == "medical", workers=2, min_parallel_chars=0) == in_process
    assert [v for v in in_process if v] == ["EMAIL x1"]
    # The workers on more texts than the pre-filter passes on here: answers stay in order
    # across chunks, and one text holds an e-mail address and a phone number.
    items = [(t, d == "medical") for t, d in zip(texts.to_pylist(), domains) if t][:200]
    items.append(("mail jane.doe@example.com or call 415-555-0100", False))
    assert _scan_in_processes(items, 2) == [_pii_summary(t, c) for t, c in items]
    # The same answers as find_pii on every text, not only where the RE2 pre-filter let
    # it look.
    assert in_process == [_pii_summary(t, d == "medical") for t, d in zip(texts.to_pylist(), domains)]


# -- severities and config layers ---------------------------------------------------------


def test_warnings_are_reported_without_blocking_and_off_skips_a_check(clean_subset_for_validation, tmp_path):
    out = _copy(clean_subset_for_validation, tmp_path)
    _leftover_tags(out)
    _duplicate_ids(out)
    report = _run(
        out,
        severity={"id_unique": "off"},
        domains={"medical": {"text_length": {"min": 5_000}}},
        corpora={"finance": {"severity": {"no_leftover_markup": "warning"}}},
    )
    assert report.failed_names == {"kept.finance/no_leftover_markup", "kept.medical/text_length"}
    assert {r.name for r in report.warnings} == report.failed_names
    assert report.success and report.blocking_failures == []
    assert "kept/id_unique" not in {r.name for r in report.results}


def _pipeline_config(validate_section: dict, source: str = "config"):
    """A pipeline config with this ``validate:`` section, parsed as ``--config`` YAML is."""
    corpus = {"name": "reuters", "path": "reuters.jsonl", "format": "jsonl", "domain": "finance"}
    return parse_config({"corpora": [corpus], "validate": validate_section}, source)


def test_settings_layer_section_builtin_domain_corpus():
    config = _pipeline_config({
        "language": {"max_und_fraction": 0.3},
        "text_length": {"mostly": 0.95},
        "domains": {"finance": {"drops": {"max_reason_fraction": {"placeholder": 0.2}}}},
        "corpora": {"reuters": {"drops": {"min_kept_fraction": 0.5}, "severity": {"text_length": "blocking"}}},
    }).validation
    reuters = config.for_corpus("reuters", "finance")
    assert reuters.drops.min_kept_fraction == 0.5  # corpus
    assert reuters.drops.reason_bound("placeholder") == 0.2  # domain override
    assert reuters.drops.reason_bound("duplicate_near") == 0.03  # built-in finance default
    assert reuters.text_length.max == 200_000 and reuters.text_length.mostly == 0.95  # built-in, then section
    assert reuters.language.max_und_fraction == 0.15  # built-in finance beats the section
    assert reuters.severity_of("text_length") == "blocking"
    fomc = config.for_corpus("fomc", "finance")
    assert fomc.drops.min_kept_fraction == 0.75 and fomc.severity_of("text_length") == "warning"
    web = config.for_corpus("crawl", "web")
    assert web.language.max_und_fraction == 0.3 and web.drops.reason_bound("placeholder") == 0.5


@pytest.mark.parametrize(
    "section, message",
    [
        ({"drops": {"min_kept": 0.5}}, "cfg.yaml: validate.drops.min_kept: unknown key"),
        ({"domains": {"medical": {"text_length": {"min": 10, "max": 5}}}},
         "cfg.yaml: validate.domains.medical.text_length: min 10 exceeds max 5"),
        ({"severity": {"id_uniqe": "blocking"}}, "cfg.yaml: validate.severity: unknown check id_uniqe"),
        ({"corpora": {"reuters": {"severity": {"no_leftover_pii": "fatal"}}}},
         "cfg.yaml: validate.corpora.reuters.severity.no_leftover_pii: Input should be 'blocking', 'warning' or 'off'"),
        ({"corpora": {"reuters": {"tokens": {}}}}, "cfg.yaml: validate.corpora.reuters.tokens: token bounds are per domain"),
        ({"domains": {"finance": {"drops": {"max_reason_fraction": {"placeholder": 2}}}}},
         "cfg.yaml: validate.domains.finance.drops.max_reason_fraction.placeholder: a fraction must be within 0..1"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(section, message):
    with pytest.raises(ConfigError) as err:
        _pipeline_config(section, "cfg.yaml")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_an_override_for_a_corpus_not_in_the_output_is_a_config_error(clean_subset_for_validation, tmp_path):
    config = ValidateConfig(data_docs=False, corpora={"fiance": {"drops": {"min_kept_fraction": 0.5}}})
    with pytest.raises(ConfigError, match=r"validate\.corpora\.fiance: no corpus of that name .* \(it has finance, medical\)"):
        validate(str(clean_subset_for_validation), config, report_dir=str(tmp_path))


# -- bad input is named, not a traceback ----------------------------------------------------


def test_unreadable_inputs_name_the_file(clean_subset_for_validation, tmp_path):
    with pytest.raises(NotAnOutput, match="no such directory"):
        _run(tmp_path / "nowhere")
    out = _copy(clean_subset_for_validation, tmp_path)
    (out / "stats.json").unlink()
    with pytest.raises(NotAnOutput, match=r"stats\.json: missing"):
        _run(out)

    out = _copy(clean_subset_for_validation, tmp_path / "b")
    kept = read_table(str(out), "kept")
    n_words = KEPT_SCHEMA.get_field_index("n_words")
    odd = kept.slice(0, 5).set_column(n_words, "n_words", pa.array([str(v) for v in kept["n_words"].to_pylist()[:5]]))
    pq.write_table(odd, out / "kept" / "part-00001-of-00002.parquet")
    with pytest.raises(OutputError, match=r"part-00001-of-00002\.parquet: schema differs .*n_words is string") as err:
        _run(out)
    assert err.value.exit_code == 1

    (out / "kept" / "part-00001-of-00002.parquet").write_bytes(b"not parquet")
    with pytest.raises(OutputError, match=r"part-00001-of-00002\.parquet: cannot read Parquet"):
        _run(out)


def test_a_clean_output_without_kept_documents_fails_its_drop_rates_and_nothing_crashes(tmp_path):
    """Every record quarantined, so ``kept/`` has no row: its columns read back with no
    chunks, on which pyarrow 25's ``indices_nonzero`` crashed the process (SIGSEGV). The
    gate must report the drop rates. In a child process, so a crash fails this test alone."""
    from pipelines.clean import run_clean

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a", "text": \n' * 3)
    out = tmp_path / "clean"
    corpus = {"name": "broken", "path": str(broken), "format": "jsonl", "domain": "finance"}
    run_clean(parse_config({"corpora": [corpus]}), str(out), show_progress=False)
    assert json.loads((out / "stats.json").read_text())["kept"] == 0
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "validate", str(out), "--no-data-docs"],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "FAIL drops.broken/drop_rates" in run.stdout
    assert json.loads((out / "validation" / RESULT_FILE).read_text())["blocking_failures"] == 1


# -- the reader beside GE's import: a forked process, else a thread -------------------------

_READER_PROBE = """
import json, multiprocessing, os, signal, sys, threading
import validation.gate as gate

{setup}
executor = type(gate._beside()).__name__
report = gate.validate(sys.argv[1], report_dir=sys.argv[2], workers=0)
print(json.dumps({{"executor": executor, "results": report.to_json()["results"]}}, default=str))
"""

_READER_SETUPS = {
    "forked": ("", "ProcessPoolExecutor"),
    # Another thread (a caller's own, a library's sampler) could hold a lock the child needs.
    "thread": ("threading.Thread(target=threading.Event().wait, daemon=True).start()", "ThreadPoolExecutor"),
    "cannot fork": ("def no_fork():\n    raise OSError(11, 'Resource temporarily unavailable')\nos.fork = no_fork",
                    "ProcessPoolExecutor"),
    "child killed": ("real = gate._read_and_scan\n"
                     "def killed(*args):\n"
                     "    if multiprocessing.parent_process() is not None:\n"
                     "        os.kill(os.getpid(), signal.SIGKILL)\n"
                     "    return real(*args)\n"
                     "gate._read_and_scan = killed", "ProcessPoolExecutor"),
}


@pytest.mark.parametrize("setup", list(_READER_SETUPS))
def test_reader_beside_ge_import_gives_the_same_results_however_it_runs(setup, clean_subset_for_validation, tmp_path):
    """A single-threaded process reads in a forked child; one with another thread, in a
    thread. A fork that fails, or a child killed (the OOM killer), falls back to reading
    in the process. Each gives the results of the plain in-process run."""
    code, executor = _READER_SETUPS[setup]
    run = subprocess.run(
        [sys.executable, "-c", _READER_PROBE.format(setup=code), str(clean_subset_for_validation), str(tmp_path / "r")],
        capture_output=True, text=True, cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    probe = json.loads(run.stdout.splitlines()[-1])
    assert probe["executor"] == executor
    expected = validate(str(clean_subset_for_validation), report_dir=str(tmp_path / "expected"), workers=0)
    assert expected.success and len(expected.results) == 20
    assert probe["results"] == json.loads(json.dumps(expected.to_json()["results"], default=str))


# -- token statistics (the tokenizer stage's files) -------------------------------------------


def test_token_defects_fail_their_checks(clean_subset_for_validation, token_rows, tmp_path):
    """Three independent defects in one tokenizer output: ten kept documents never
    tokenized, finance counted in bytes (a tokenizer trained on other text falls back to
    bytes everywhere), and a manifest whose medical total is off by one."""
    rows = token_rows.iloc[10:].copy()
    finance = rows["domain"] == "finance"
    rows.loc[finance, "n_tokens"] = [len(t.encode()) + 1 for t in rows.loc[finance, "text"]]
    tokdir = _write_tokens(tmp_path / "tokens", rows)
    manifest = json.loads((tokdir / "manifest.json").read_text())
    manifest["by_domain"]["medical"]["tokens"] += 1
    (tokdir / "manifest.json").write_text(json.dumps(manifest))
    report = validate(str(clean_subset_for_validation), ValidateConfig(data_docs=False), tokens=str(tokdir),
                      report_dir=str(tmp_path / "report"), workers=0)
    assert report.failed_names == {
        "tokens/every_kept_document_tokenized", "tokens.finance/tokens_per_domain", "tokens.manifest/manifest_tokens_match",
    }
    assert _result(report, "tokens.manifest/manifest_tokens_match").example_ids == ["medical"]
    assert _result(report, "tokens/every_kept_document_tokenized").observed_value == len(token_rows) - 10


# -- Data Docs --------------------------------------------------------------------------------


def test_vendored_assets_are_the_files_ge_pins():
    """The two assets GE loads with subresource integrity are byte-identical to ours."""
    import great_expectations

    template = Path(great_expectations.__file__).parent / "render/view/templates/js_script_imports.j2"
    pinned = dict(re.findall(r'src="([^"]+)" integrity="(sha384-[^"]+)"', template.read_text()))
    assert len(pinned) == 2
    for url, integrity in pinned.items():
        local = datadocs.ASSETS / datadocs.CDN_ASSETS[url]
        assert integrity == "sha384-" + base64.b64encode(hashlib.sha384(local.read_bytes()).digest()).decode()
    for local in datadocs.CDN_ASSETS.values():
        package = datadocs.ASSETS / local.split("/")[0]
        assert any(package.glob("LICENSE*")), package


def test_every_cdn_url_of_the_ge_templates_is_served_locally():
    import great_expectations

    templates = Path(great_expectations.__file__).parent / "render/view/templates"
    loaded = set()
    for template in templates.glob("*.j2"):
        loaded |= set(re.findall(r'<(?:script|link)[^>]*(?:src|href)="(https://[^"]+)"', template.read_text()))
    assert loaded == set(datadocs.CDN_ASSETS)


def test_an_unknown_external_asset_is_refused(tmp_path):
    (tmp_path / "index.html").write_text('<html><head><script src="https://cdn.example.org/x.js"></script></head></html>')
    with pytest.raises(datadocs.DataDocsError, match=r"index\.html: <script src=\"https://cdn\.example\.org/x\.js"):
        datadocs.localize(str(tmp_path))


# -- the command line and the terminal ------------------------------------------------------------


def test_cli_names_failures_and_keeps_ge_quiet(clean_subset_for_validation, tmp_path):
    """In a fresh process, as the user runs it: import-time warnings would show too."""
    out = _copy(clean_subset_for_validation, tmp_path)
    _leftover_email(out)
    run = subprocess.run([DAPT, "validate", str(out), "--no-data-docs"], capture_output=True, text=True, cwd=REPO,
                         timeout=300)
    assert run.returncode == 1
    assert run.stderr == ""  # no progress bars, warnings or log lines
    assert re.search(r"^FAIL kept\.medical/no_leftover_pii: 1 unexpected of [\d,]+ .*e\.g\. \S+ \(EMAIL x1\)$",
                     run.stdout, re.MULTILINE)
    assert "FAILED: " in run.stdout and "1 blocking failed" in run.stdout


def test_verbose_shows_ge_progress_bars(clean_subset_for_validation, tmp_path, capfd):
    """The other half of the test above: --verbose lets GE's output through."""
    validate(str(clean_subset_for_validation), ValidateConfig(data_docs=False), report_dir=str(tmp_path), workers=0,
             verbose=True)
    assert "Calculating Metrics" in capfd.readouterr().err


def test_cli_exit_codes(clean_subset_for_validation, tmp_path, capsys):
    config = REPO / "examples" / "corpora.yaml"
    assert main(["validate", str(clean_subset_for_validation), "--config", str(config), "--report-dir",
                 str(tmp_path / "ok"), "--no-data-docs"]) == 0
    assert "PASSED: " in capsys.readouterr().out
    assert (tmp_path / "ok" / RESULT_FILE).exists() and not (tmp_path / "ok" / "data-docs").exists()

    assert main(["validate", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"dapt validate: {tmp_path / 'nowhere'}: no such directory\n"

    bad = tmp_path / "pipeline.yaml"
    bad.write_text(json.dumps({"corpora": [{"name": "a", "path": "a.jsonl", "format": "jsonl", "domain": "web"}],
                               "validate": {"drops": {"min_kept_fraction": 2}}}))
    assert main(["validate", str(clean_subset_for_validation), "--config", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"dapt validate: {bad}: validate.drops.min_kept_fraction: Input should be less than or equal to 1 (got 2)\n"
    )


def test_relative_output_dir_builds_data_docs(clean_subset_for_validation, tmp_path, monkeypatch):
    # `make demo` passes a relative folder; GE's site store needs an absolute one.
    import shutil

    from validation.gate import validate

    shutil.copytree(clean_subset_for_validation, tmp_path / "clean")
    monkeypatch.chdir(tmp_path)
    report = validate("clean")
    assert report.success
    assert (tmp_path / "clean" / "validation" / "data-docs" / "index.html").exists()


_IMPORT_PROBE = """
import gc, importlib.util, sys
{before}
import validation.ge as ge
from great_expectations.compatibility import sqlalchemy as gx_sqlalchemy
print(json.dumps({{
    "gc_enabled": gc.isenabled(),
    "sqlalchemy_loaded": "sqlalchemy" in sys.modules,
    "ge_sees_sqlalchemy": not isinstance(gx_sqlalchemy.sqlalchemy, type(gx_sqlalchemy.SQLALCHEMY_NOT_IMPORTED)),
    "scipy_stats_lazy": isinstance(sys.modules["scipy.stats"], importlib.util._LazyModule),
}}))
import sqlalchemy, scipy.stats
print(json.dumps({{"sqlalchemy": sqlalchemy.__version__, "ks": round(scipy.stats.ks_2samp([1, 2, 3], [1, 2, 4]).pvalue, 3)}}))
"""


@pytest.mark.parametrize("before", ["import json", "import json, sqlalchemy"])
def test_ge_import_leaves_out_unused_integrations_until_someone_needs_them(before):
    """GE imported alone does not load SQLAlchemy (its optional SQL extra) and defers
    scipy.stats; both still import and work afterwards, and a process that loaded
    SQLAlchemy first (MLflow's store) gives GE the real one."""
    run = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE.format(before=before)],
        capture_output=True, text=True, cwd=REPO, check=True,
    )
    shaped, later = (json.loads(line) for line in run.stdout.splitlines())
    preloaded = "sqlalchemy" in before
    assert shaped == {
        "gc_enabled": True,
        "sqlalchemy_loaded": preloaded,
        "ge_sees_sqlalchemy": preloaded,
        "scipy_stats_lazy": True,
    }
    assert later["sqlalchemy"].startswith("2.") and later["ks"] == 1.0


def test_data_docs_templates_compile_once_and_render_the_same(clean_subset_for_validation, tmp_path, monkeypatch):
    """The second build loads GE's templates from Jinja's bytecode cache (in the user's
    temporary directory) and writes the same suite pages as the first, which compiled them."""
    import tempfile

    from validation import datadocs_views

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    datadocs_views._bytecode_cache.cache_clear()
    try:
        pages = []
        for run in ("compiled", "cached"):
            report = validate(str(clean_subset_for_validation), report_dir=str(tmp_path / run), workers=0)
            assert report.success
            cache = sorted(p.name for p in (tmp_path / "tmp").glob("_jinja2-cache-*/*.cache"))
            pages.append((tmp_path / run / "data-docs" / "expectations" / "kept" / "finance.html").read_text())
            if run == "compiled":
                compiled = cache
        assert len(compiled) > 20 and cache == compiled
        assert pages[0] == pages[1]
        assert "leftover_pii" in pages[0]
    finally:
        datadocs_views._bytecode_cache.cache_clear()
