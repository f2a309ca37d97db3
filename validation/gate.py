"""The validation gate: run the suites over a stage's output, write the report, decide.

:func:`validate` is what ``dapt validate`` and the flow runner (``dapt run``, which logs
the report to MLflow) call. It writes, under ``DIR/validation/`` (or ``report_dir``):

* ``result.json`` (:data:`RESULT_FILE`)::

    {"success": bool,                 # no blocking check failed
     "blocking_failures": n, "warnings": n, "checks": n,
     "directory": DIR, "tokens": TOKDIR | null, "data_docs": "data-docs/index.html" | null,
     "great_expectations": "1.24.1", "seconds": s, "timings": {phase: s},
     "results": [{"name": "kept.finance/no_leftover_pii", "suite": "kept.finance",
                  "check": "no_leftover_pii", "severity": "blocking" | "warning",
                  "success": bool, "expectation": "expect_column_values_to_be_null",
                  "kwargs": {...}, "element_count": n | null, "unexpected_count": n | null,
                  "unexpected_percent": p | null, "observed_value": ... | null,
                  "example_ids": [...], "example_values": [...], "error": str | null}, ...]}

  ``example_ids`` are document ids (or the measure/domain of a summary row);
  ``example_values`` the offending values, shortened to 200 characters. ``timings``
  are wall seconds per phase; ``read`` and ``pii_scan`` run alongside ``import_ge``.
* ``data-docs/``: GE's Data Docs for these results, with its CDN assets served locally
  (:mod:`validation.datadocs`).

Great Expectations' progress bars, warnings and log lines are kept out of the terminal
unless ``verbose``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import logging
import multiprocessing
import os
import shutil
import sys
import threading
import time
import warnings
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pipelines.config import CleanConfig, ConfigError
from validation.config import ValidateConfig
from validation.tables import read_clean_output, read_token_output

REPORT_DIR = "validation"
RESULT_FILE = "result.json"
DATA_DOCS_DIR = "data-docs"
_MAX_VALUE_CHARS = 200


@dataclass
class CheckResult:
    name: str
    suite: str
    check: str
    severity: str
    success: bool
    expectation: str
    kwargs: dict
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None
    example_ids: list = field(default_factory=list)
    example_values: list = field(default_factory=list)
    error: str | None = None

    def describe(self) -> str:
        """One line: what failed, how much, and where to look."""
        if self.error:
            return f"{self.name}: could not be evaluated: {self.error}"
        if self.unexpected_count is not None:
            text = f"{self.name}: {self.unexpected_count:,} unexpected"
            if self.element_count is not None:
                text += f" of {self.element_count:,} ({self.unexpected_percent or 0:.2f}%)"
        else:
            bounds = ", ".join(f"{k}={v}" for k, v in self.kwargs.items() if k not in ("column", "batch_id"))
            text = f"{self.name}: observed {_short(self.observed_value)}" + (f", expected {bounds}" if bounds else "")
        if self.example_ids:
            pairs = [f"{i} ({_short(v, 60)})" if v not in (None, "") else str(i)
                     for i, v in zip(self.example_ids, self.example_values or [None] * len(self.example_ids))]
            text += "; e.g. " + ", ".join(pairs)
        return text


@dataclass
class ValidationReport:
    results: list[CheckResult]
    directory: str
    tokens: str | None
    report_dir: str
    data_docs: str | None
    seconds: float
    timings: dict[str, float]

    @property
    def success(self) -> bool:
        """No blocking check failed (warnings do not count)."""
        return not self.blocking_failures

    @property
    def blocking_failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "blocking"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    @property
    def failed_names(self) -> set[str]:
        """Every check that failed, blocking or warning."""
        return {r.name for r in self.results if not r.success}

    def to_json(self) -> dict:
        from validation.ge import gx

        docs = os.path.relpath(self.data_docs, self.report_dir) if self.data_docs else None
        return {
            "success": self.success,
            "blocking_failures": len(self.blocking_failures),
            "warnings": len(self.warnings),
            "checks": len(self.results),
            "directory": self.directory,
            "tokens": self.tokens,
            "data_docs": docs,
            "great_expectations": gx.__version__,
            "seconds": self.seconds,
            "timings": self.timings,
            "results": [asdict(r) for r in self.results],
        }


def validate(
    directory: str,
    config: ValidateConfig | None = None,
    clean=None,
    tokens: str | None = None,
    report_dir: str | None = None,
    verbose: bool = False,
    workers: int | None = None,
) -> ValidationReport:
    """Validate a ``dapt corpus clean`` output (and, with ``tokens``, the tokenizer
    stage's output for it) and write the report.

    ``clean`` is the :class:`~pipelines.config.CleanConfig` the output was cleaned with
    (default: the built-in one): the PII check uses each domain profile's redactor
    options, and the allowed languages default to the profile's. Raises
    :class:`~validation.tables.OutputError` when the input cannot be read and
    :class:`~pipelines.config.ConfigError` when the config names a corpus that is not
    in the output. ``workers``: processes for the PII scan (see
    :func:`~validation.pii_scan.scan_pii`; 0 keeps it in this process).
    """
    config = config or ValidateConfig()
    profile = functools.cache((clean or CleanConfig()).profile)
    # Absolute: GE's Data Docs store refuses a relative base directory.
    report_dir = os.path.abspath(report_dir or os.path.join(directory, REPORT_DIR))
    started = time.monotonic()
    timings: dict[str, float] = {}
    # A run that stops half-way must not leave the previous verdict looking current.
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(report_dir, RESULT_FILE))
    # Reading and the scans run while this thread imports Great Expectations, the largest
    # single cost on small corpora.
    read = functools.partial(_read_and_scan, directory, tokens, config, clean, workers)
    with _beside() as pool:
        try:
            reading = pool.submit(read)
        except OSError:  # no process can be forked here: read after the import instead
            reading = None
        with _quiet(verbose), _phase(timings, "import_ge"):
            from validation.suites import output_suites, schema_suite, token_suites
        try:
            output, token_output, read_timings = reading.result() if reading else read()
        except BrokenProcessPool:  # the child was killed (the OOM killer): read here instead
            output, token_output, read_timings = read()
    timings.update(read_timings)
    allowed = {domain: list(profile(domain).language.allowed) for domain in set(output.corpora.values())}
    plans = [schema_suite(output, token_output, config), *output_suites(output, config, allowed)]
    if token_output is not None:
        plans += token_suites(token_output, output, config)

    docs_dir = os.path.join(report_dir, DATA_DOCS_DIR) if config.data_docs else None
    with _quiet(verbose):
        results = _run(plans, config.examples, docs_dir, verbose, timings)
    report = ValidationReport(
        results=results, directory=directory, tokens=tokens, report_dir=report_dir,
        data_docs=os.path.join(docs_dir, "index.html") if docs_dir else None,
        seconds=round(time.monotonic() - started, 3), timings=timings,
    )
    _write_json(os.path.join(report_dir, RESULT_FILE), report.to_json())
    return report


def _beside() -> concurrent.futures.Executor:
    """Where work runs beside this thread: a forked process when this process has no
    other thread, else a thread.

    Beside a reader thread, GE's import (pure Python) took 2.0-2.1 s instead of 1.3-1.45 s
    alone, for the GIL the reader's Python work holds. A forked child starts with
    everything already imported (a spawned one imported again, ~1.5 CPU-s) and runs on
    another core. Forking is safe only where no other thread can hold a lock the child
    needs, so with any other Python thread alive (a caller's own, a library's sampler) it
    stays a thread; and only on Linux (macOS's system libraries are not fork-safe).
    ``dapt run`` validates after its in-process clean job, whose runner leaves no thread
    behind: it forks too.
    """
    if threading.active_count() == 1 and sys.platform.startswith("linux"):
        return concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="validate-read")


def _read_and_scan(directory, tokens, config, clean, workers):
    """The outputs to check, with ``leftover_pii`` added to the kept documents, and the
    time each phase took."""
    from validation.pii_scan import scan_pii  # the reader's alone, like the markup scan's imports

    profile = functools.cache((clean or CleanConfig()).profile)
    timings: dict[str, float] = {}
    with _phase(timings, "read"):
        output = read_clean_output(directory)
        token_output = read_token_output(tokens, output.kept.get("id", [])) if tokens else None
    unknown = sorted(set(config.corpora) - set(output.corpora))
    if unknown:
        raise ConfigError(
            f"validate.corpora.{unknown[0]}: no corpus of that name in {directory} "
            f"(it has {', '.join(output.corpora) or 'none'})"
        )
    domains = output.kept["domain"].tolist() if "domain" in output.kept else [None] * len(output.kept)
    with _phase(timings, "pii_scan"):
        output.kept["leftover_pii"] = scan_pii(
            output.kept_text, domains, lambda domain: profile(domain).clinical_dates, workers
        )
    # A forked reader sends its result back pickled: 25 MB less to copy on the samples.
    return replace(output, kept_text=None), token_output, timings


@contextlib.contextmanager
def _phase(timings: dict[str, float], name: str):
    started = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.monotonic() - started, 3)


@contextlib.contextmanager
def _quiet(verbose: bool):
    """GE's warnings and log lines stay out of the terminal unless ``verbose``."""
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.WARNING if verbose else logging.ERROR)
    try:
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _run(plans, examples: int, docs_dir: str | None, verbose: bool, timings: dict[str, float]) -> list[CheckResult]:
    from validation import datadocs
    from validation.ge import (
        BatchDefinition,
        DataContextConfig,
        DataFrameAsset,
        InMemoryStoreBackendDefaults,
        PandasDatasource,
        ProgressBarsConfig,
        gx,
    )

    sites = {datadocs.SITE_NAME: datadocs.site_config(docs_dir)} if docs_dir else {}
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            data_docs_sites=sites,
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=verbose, metric_calculations=verbose),
        ),
    )
    # Added whole, not asset by asset: GE writes its entire project config out as YAML
    # after each asset and each batch definition added to a datasource (15 times here).
    source = context.data_sources.add_pandas(PandasDatasource(name="dapt", assets=[
        DataFrameAsset(name=plan.name, batch_definitions=[BatchDefinition(name="all")]) for plan in plans
    ]))
    results: list[CheckResult] = []
    with _phase(timings, "expectations"):
        for plan in plans:
            batch = source.get_asset(plan.name).get_batch_definition("all")
            suite = context.suites.add(gx.ExpectationSuite(name=plan.name, expectations=plan.expectations))
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=plan.name, data=batch, suite=suite)
            )
            result_format = {"result_format": "SUMMARY", "partial_unexpected_count": examples}
            if plan.index_column:
                result_format["unexpected_index_column_names"] = [plan.index_column]
            outcome = definition.run(batch_parameters={"dataframe": plan.frame}, result_format=result_format)
            results += [_check_result(plan, r) for r in outcome.results]
    if docs_dir:
        with _phase(timings, "data_docs"):
            shutil.rmtree(docs_dir, ignore_errors=True)
            context.build_data_docs(site_names=[datadocs.SITE_NAME])
            datadocs.localize(docs_dir)
    order = {plan.name: i for i, plan in enumerate(plans)}
    return sorted(results, key=lambda r: (order[r.suite], r.check))


def _check_result(plan, result) -> CheckResult:
    config = result.expectation_config
    meta = config.meta or {}
    detail = result.result or {}
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
    ids, values = _examples(detail.get("partial_unexpected_index_list") or [], plan.index_column, kwargs)
    error = _error(result.exception_info)
    return CheckResult(
        name=f"{plan.name}/{meta['check']}",
        suite=plan.name,
        check=meta["check"],
        severity=meta["severity"],
        success=bool(result.success) and error is None,
        expectation=config.type,
        kwargs=_jsonable(kwargs),
        element_count=detail.get("element_count"),
        unexpected_count=detail.get("unexpected_count"),
        unexpected_percent=detail.get("unexpected_percent"),
        observed_value=_jsonable(detail.get("observed_value")),
        example_ids=ids,
        example_values=values,
        error=error,
    )


def _examples(rows: list, index_column: str | None, kwargs: dict) -> tuple[list, list]:
    ids, values = [], []
    checked = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    for row in rows:
        if isinstance(row, dict):
            ids.append(_jsonable(row.get(index_column)))
            shown = {c: _jsonable(row[c]) for c in checked if c in row}
            if len(shown) == 1:
                values.append(_short(next(iter(shown.values()))))
            else:
                values.append(", ".join(f"{c}={v}" for c, v in shown.items()) or None)
        else:
            ids.append(_jsonable(row))
            values.append(None)
    return ids, values


def _error(info) -> str | None:
    """GE reports an exception as one dict, or as a dict of them keyed by metric."""
    if not info:
        return None
    found = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    messages = [str(e.get("exception_message")) for e in found if e.get("raised_exception")]
    return "; ".join(messages) or None


def _short(value, limit: int = _MAX_VALUE_CHARS):
    value = _jsonable(value)
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def _jsonable(value):
    """Plain JSON types (GE hands back numpy scalars, tuples, sets)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _write_json(path: str, value: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False, allow_nan=False, default=str)
        f.write("\n")
    os.replace(tmp, path)
